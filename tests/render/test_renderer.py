import torch

from inerf.fields import NeRFConfig, NeRFField
from inerf.geometry import se3
from inerf.geometry.cameras import Cameras
from inerf.rays import importance_samples, rays_for_image, rays_from_pixels, stratified_samples
from inerf.render import RenderConfig, render_image, render_rays


def small_field(seed=0):
    torch.manual_seed(seed)
    return NeRFField(NeRFConfig(depth=2, width=32, skip=0, pos_freqs=4, dir_freqs=2)).eval()


def camera():
    c2w = torch.eye(4)
    c2w[2, 3] = -4.0  # 4 units behind the origin, looking along +z at it
    return c2w


def test_chunked_equals_unchunked():
    f, g = small_field(0), small_field(1)
    c2w = camera()
    cfg = RenderConfig(n_coarse=16, n_fine=8, chunk=7)
    cam = Cameras.from_intrinsics(12.0, 12.0, 5.5, 4.5, 9, 11, c2w=c2w)
    a = render_image(f, cam, cfg, fine=g)
    rays = rays_for_image(cam)
    b = render_rays(f, rays, cfg, fine=g)
    assert torch.allclose(a.rgb.reshape(-1, 3), b.rgb, atol=1e-6)
    assert torch.allclose(a.depth.reshape(-1), b.depth, atol=1e-5)
    assert a.rgb.shape == (9, 11, 3) and a.acc.shape == (9, 11)


def test_arbitrary_pixels_match_full_image():
    f = small_field()
    cfg = RenderConfig(n_coarse=16, n_fine=0)
    full = render_image(f, Cameras.from_intrinsics(10.0, 10.0, 4.0, 4.0, 8, 8, c2w=camera()), cfg)
    uv = torch.tensor([[0, 0], [7, 3], [2, 6]])
    part = render_rays(f, rays_from_pixels(uv, camera(), 10.0, 10.0, 4.0, 4.0), cfg)
    assert torch.allclose(part.rgb, full.rgb[uv[:, 1], uv[:, 0]], atol=1e-6)


def test_gradient_reaches_pose():
    f = small_field()
    xi = torch.zeros(6, requires_grad=True)
    c2w = se3.se3_exp(xi) @ camera()
    out = render_rays(
        f,
        rays_from_pixels(torch.tensor([[1, 2], [3, 4]]), c2w, 10.0, 10.0, 4.0, 4.0),
        RenderConfig(n_coarse=8, n_fine=4),
    )
    out.rgb.sum().backward()
    assert torch.isfinite(xi.grad).all() and xi.grad.abs().sum() > 0


def test_stratified_and_importance_samples():
    t = stratified_samples(2.0, 6.0, 5, 3)
    assert torch.allclose(t[0], torch.tensor([2.0, 3.0, 4.0, 5.0, 6.0]))
    tj = stratified_samples(2.0, 6.0, 5, 100, jitter=True, generator=torch.Generator().manual_seed(0))
    assert (tj[:, 1:] >= tj[:, :-1]).all() and tj.min() >= 2.0 and tj.max() <= 6.0
    # all coarse weight in the bin around 4.0 -> importance samples land in [3.5, 4.5]
    w = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]])
    t_all = importance_samples(t[:1], w, 16)
    assert t_all.shape == (1, 21)
    # the quantiles 0 and 1 map to the ends of the PDF's support; the 14 between lie in the heavy bin
    inside = ((t_all >= 3.5) & (t_all <= 4.5)).sum().item()
    assert inside >= 14 + 1  # + the coarse sample at 4.0
    assert (t_all[:, 1:] >= t_all[:, :-1]).all()
