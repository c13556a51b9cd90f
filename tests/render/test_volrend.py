import torch

from inerf.render import volrend


def test_hand_computed_compositing():
    alpha = torch.tensor([0.5, 0.5])
    w = volrend.render_weights(alpha)
    assert torch.allclose(w, torch.tensor([0.5, 0.25]))
    assert torch.allclose(volrend.transmittance(alpha), torch.tensor([1.0, 0.5]))
    assert volrend.accumulated_opacity(w).item() == 0.75
    colors = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    assert torch.allclose(volrend.composite(w, colors, 1.0), torch.tensor([0.75, 0.5, 0.25]))
    assert torch.allclose(volrend.composite(w, colors, 0.0), torch.tensor([0.5, 0.25, 0.0]))
    assert torch.allclose(
        volrend.composite(w, colors, torch.tensor([0.0, 0.0, 1.0])), torch.tensor([0.5, 0.25, 0.25])
    )
    t = torch.tensor([2.0, 4.0])
    assert torch.allclose(volrend.expected_depth(w, t), torch.tensor(2.0))
    assert torch.allclose(volrend.expected_depth(w, t, normalize=True), torch.tensor(2.0 / 0.75))


def test_alpha_and_deltas():
    t = torch.tensor([[1.0, 1.5, 3.0]])
    d = volrend.deltas(t)
    assert torch.allclose(d[0, :2], torch.tensor([0.5, 1.5]))
    assert d[0, 2] == volrend.FAR_DELTA
    d2 = volrend.deltas(t, torch.tensor([[0.0, 3.0, 4.0]]))
    assert torch.allclose(d2[0, :2], torch.tensor([2.5, 7.5]))
    sigma = torch.tensor([[0.0, 2.0, 1.0]])
    a = volrend.alpha_from_density(sigma, d)
    assert torch.allclose(a, torch.tensor([[0.0, 1 - torch.exp(torch.tensor(-3.0)), 1.0]]))


def test_delta_density_gives_one_hot_weights():
    sigma = torch.zeros(4, 16)
    idx = torch.tensor([0, 5, 9, 15])
    sigma[torch.arange(4), idx] = 1e6
    t = torch.linspace(2, 6, 16).expand(4, 16)
    w = volrend.render_weights(volrend.alpha_from_density(sigma, volrend.deltas(t)))
    assert torch.allclose(w, torch.nn.functional.one_hot(idx, 16).float(), atol=1e-6)
    assert torch.allclose(volrend.expected_depth(w, t), t[torch.arange(4), idx], atol=1e-4)


def test_opaque_sample_blocks_everything_behind():
    alpha = torch.tensor([0.2, 1.0, 0.7])
    w = volrend.render_weights(alpha)
    assert torch.allclose(w, torch.tensor([0.2, 0.8, 0.0]))


def test_weights_gradcheck():
    sigma = torch.rand(3, 8, dtype=torch.float64, requires_grad=True)
    t = torch.sort(torch.rand(3, 8, dtype=torch.float64), -1).values
    colors = torch.rand(3, 8, 3, dtype=torch.float64, requires_grad=True)

    def f(s, c):
        w = volrend.render_weights(volrend.alpha_from_density(s, volrend.deltas(t)))
        return volrend.composite(w, c, 1.0)

    assert torch.autograd.gradcheck(f, (sigma, colors))
