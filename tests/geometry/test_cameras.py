import math

import pytest
import torch

from inerf.errors import InerfError
from inerf.geometry import Cameras, check_rigid, opencv_to_opengl_c2w, opengl_to_opencv_c2w, se3
from inerf.geometry.cameras import project, unproject
from inerf.rays import rays_from_pixels


def test_opengl_opencv_round_trip_and_axes():
    c2w_gl = se3.se3_exp(torch.randn(6, dtype=torch.float64))
    c2w_cv = opengl_to_opencv_c2w(c2w_gl)
    assert torch.allclose(opencv_to_opengl_c2w(c2w_cv), c2w_gl)
    # OpenGL looks along -z_cam, OpenCV along +z_cam: the world viewing direction must agree.
    assert torch.allclose(
        c2w_gl[:3, :3] @ torch.tensor([0, 0, -1.0], dtype=torch.float64),
        c2w_cv[:3, :3] @ torch.tensor([0, 0, 1.0], dtype=torch.float64),
    )
    # OpenGL's +y (up in the image) is OpenCV's -y (rows grow downwards).
    assert torch.allclose(c2w_gl[:3, 1], -c2w_cv[:3, 1])
    assert torch.equal(c2w_cv[:3, 3], c2w_gl[:3, 3])


def test_pixel_centre_convention():
    # The ray through pixel (0, 0) of a 2x2 image with cx = cy = 1 and f = 1 points at (-0.5, -0.5, 1).
    rays = rays_from_pixels(torch.tensor([[0, 0]]), torch.eye(4), 1.0, 1.0, 1.0, 1.0)
    assert torch.allclose(rays.directions, torch.tensor([[-0.5, -0.5, 1.0]]))
    # The principal point of a centred camera is the shared corner of the four central pixels.
    rays = rays_from_pixels(torch.tensor([[1, 1]]), torch.eye(4), 1.0, 1.0, 1.0, 1.0)
    assert torch.allclose(rays.directions, torch.tensor([[0.5, 0.5, 1.0]]))


def test_pixel_ray_pixel_round_trip():
    g = torch.Generator().manual_seed(0)
    c2w = se3.se3_exp(torch.randn(6, generator=g, dtype=torch.float64) * 0.5)
    uv = torch.randint(0, 64, (100, 2), generator=g)
    fx, fy, cx, cy = 70.0, 72.0, 31.5, 33.0
    rays = rays_from_pixels(uv, c2w.double(), fx, fy, cx, cy)
    t = torch.rand(100, 1, generator=g, dtype=torch.float64) * 4 + 1
    pts = rays.origins + rays.directions * t
    back, z = project(pts, c2w, torch.tensor(fx), torch.tensor(fy), torch.tensor(cx), torch.tensor(cy))
    assert torch.allclose(back, uv.double() + 0.5, atol=1e-9)
    # directions have unit camera-z, so t is the z-depth
    assert torch.allclose(z, t[:, 0], atol=1e-9)
    again = unproject(back, z, c2w, fx, fy, cx, cy)
    assert torch.allclose(again, pts, atol=1e-9)


def test_cameras_from_fov_and_scaling():
    cams = Cameras.from_fov(torch.eye(4), 400, 400, 0.6911112070083618)
    assert cams.fx.item() == pytest.approx(0.5 * 400 / math.tan(0.6911112070083618 / 2), rel=1e-6)
    assert cams.cx.item() == 200 and cams.cy.item() == 200
    half = cams.scaled(0.5)
    assert (half.height, half.width) == (200, 200)
    assert half.fx.item() == pytest.approx(cams.fx.item() / 2)
    assert half.cx.item() == 100
    assert half.K().shape == (1, 3, 3)


def test_cameras_wrong_shape_raises():
    with pytest.raises(ValueError):
        Cameras(torch.eye(3), 1.0, 1.0, 0.0, 0.0, 4, 4)


@pytest.mark.parametrize(
    "bad",
    [
        torch.full((4, 4), float("nan")),
        torch.diag(torch.tensor([2.0, 1.0, 1.0, 1.0])),
        torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0])),
        torch.eye(3),
    ],
)
def test_check_rigid_rejects(bad):
    with pytest.raises(InerfError):
        check_rigid(bad, "init")


def test_check_rigid_accepts_3x4():
    T = se3.se3_exp(torch.randn(6))[:3]
    assert check_rigid(T).shape == (4, 4)
