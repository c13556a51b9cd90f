"""Pixel-sampling strategies: supports, determinism, batch/single agreement, counter-based hash."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inerf.errors import InerfError
from inerf.pose.config import SamplingConfig
from inerf.pose.sampling import (
    PixelSampler,
    detect_keypoints,
    flat_to_uv,
    hash_keys,
    interest_region_mask,
    mix32,
)


def textured_image(h=64, w=80, seed=0) -> torch.Tensor:
    """Smooth background with a few sharp dark/bright squares: corners that SIFT and ORB both find."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 0.8, np.float32)
    for _ in range(8):
        y, x = rng.integers(4, h - 14), rng.integers(4, w - 14)
        img[y : y + 8, x : x + 8] = rng.uniform(0, 1, 3)
    return torch.from_numpy(img)


def test_mix32_is_a_bijection_on_a_block():
    x = torch.arange(1 << 16, dtype=torch.int64)
    h = mix32(x)
    assert h.min() >= 0 and h.max() < (1 << 32)
    assert torch.unique(h).numel() == x.numel()


def test_hash_keys_depend_on_seed_and_step_but_not_on_batch():
    c = torch.arange(1000)
    a = hash_keys(torch.tensor([3, 7]), 5, c)
    assert torch.equal(a[1], hash_keys(torch.tensor([7]), 5, c)[0])  # row of a batch == single
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[0], hash_keys(torch.tensor([3]), 6, c)[0])
    assert torch.unique(a[0]).numel() == 1000  # distinct counters -> distinct keys


def test_random_sampling_is_without_replacement_and_roughly_uniform():
    s = PixelSampler(20, 30, 100, SamplingConfig("random"))
    counts = torch.zeros(600)
    for step in range(300):
        idx = s.sample(0, step)
        assert idx.shape == (1, 100)
        assert torch.unique(idx).numel() == 100
        counts += torch.bincount(idx[0], minlength=600)
    # Each pixel expected 50 times; a binomial(300, 1/6) has sd ~6.5. Generous bounds catch a broken hash.
    assert counts.min() > 20 and counts.max() < 85
    assert abs(counts.mean() - 50) < 1e-6


def test_selection_is_deterministic_and_batch_equals_single():
    s = PixelSampler(16, 16, 40, SamplingConfig("random"))
    batch = s.sample(torch.tensor([11, 12, 13]), 4)
    for g, seed in enumerate((11, 12, 13)):
        assert torch.equal(batch[g], s.sample(seed, 4)[0])
    assert torch.equal(s.sample(11, 4), s.sample(11, 4))
    assert not torch.equal(s.sample(11, 4), s.sample(11, 5))


def test_center_sampling_stays_in_the_central_box():
    s = PixelSampler(40, 60, 200, SamplingConfig("center", center_fraction=0.5))
    uv = flat_to_uv(s.sample(torch.tensor([0, 1]), 0), 60)
    assert uv[..., 0].min() >= 15 and uv[..., 0].max() < 45
    assert uv[..., 1].min() >= 10 and uv[..., 1].max() < 30


def test_patch_is_one_contiguous_square():
    s = PixelSampler(40, 50, 100, SamplingConfig("patch"))
    for step in range(5):
        uv = flat_to_uv(s.sample(3, step)[0], 50)
        assert s.n == 100
        cols, rows = uv[:, 0], uv[:, 1]
        assert cols.max() - cols.min() == 9 and rows.max() - rows.min() == 9
        assert torch.unique(uv[:, 1] * 50 + uv[:, 0]).numel() == 100
        assert cols.max() < 50 and rows.max() < 40


def test_mask_sampling_only_returns_foreground():
    alpha = torch.zeros(30, 30)
    alpha[5:12, 8:20] = 1.0
    s = PixelSampler(30, 30, 50, SamplingConfig("mask"), alpha=alpha)
    idx = s.sample(torch.tensor([0, 1, 2]), 3)
    assert (alpha.reshape(-1)[idx] > 0.5).all()
    with pytest.raises(InerfError, match="alpha"):
        PixelSampler(30, 30, 50, SamplingConfig("mask"), alpha=None)
    with pytest.raises(InerfError, match="no foreground"):
        PixelSampler(30, 30, 50, SamplingConfig("mask"), alpha=torch.zeros(30, 30))


def test_mask_dilation_adds_exactly_the_band_around_the_silhouette():
    alpha = torch.zeros(30, 30)
    alpha[5:12, 8:20] = 1.0
    s = PixelSampler(30, 30, 2000, SamplingConfig("mask", mask_dilate=2), alpha=alpha)
    support = s.support_mask()
    expected = torch.zeros(30, 30, dtype=torch.bool)
    expected[3:14, 6:22] = True  # the 7 x 12 box grown by 2 pixels on every side
    assert torch.equal(support, expected)
    idx = s.sample(torch.tensor([0]), 0)
    assert idx.numel() == 11 * 16  # fewer candidates than rays: all of them


@pytest.mark.parametrize("detector", ["sift", "orb"])
def test_detectors_find_corners(detector):
    img = textured_image(128, 128)
    kp = detect_keypoints(img, detector)
    assert kp.shape[1] == 2 and len(kp) > 0
    assert (kp[:, 0] < 128).all() and (kp[:, 1] < 128).all() and (kp >= 0).all()
    assert len(np.unique(kp[:, 1] * 128 + kp[:, 0])) == len(kp)
    assert len(detect_keypoints(img, detector, max_keypoints=3)) <= 3


def test_interest_region_is_the_dilated_keypoint_mask():
    img = textured_image()
    kp = detect_keypoints(img, "sift")
    assert len(kp) > 0
    mask = interest_region_mask(img, "sift", kernel=5, iterations=3)
    # Reference: dilating a point 3 times with a 5x5 square gives the 13x13 square around it (Chebyshev
    # radius 3 * 2 = 6), clipped to the image.
    ref = np.zeros(img.shape[:2], bool)
    for c, r in kp:
        ref[max(r - 6, 0) : r + 7, max(c - 6, 0) : c + 7] = True
    assert np.array_equal(mask, ref)
    s = PixelSampler(*img.shape[:2], 256, SamplingConfig("interest_region"), image=img)
    assert s.n == min(256, int(ref.sum()))
    for step in range(10):
        uv = flat_to_uv(s.sample(torch.tensor([0, 5]), step), img.shape[1])
        assert ref[uv[..., 1].numpy(), uv[..., 0].numpy()].all()
    assert torch.equal(s.support_mask(), torch.from_numpy(ref))


def test_interest_region_smaller_than_batch_returns_the_whole_region_only():
    img = textured_image()
    s = PixelSampler(*img.shape[:2], 10**6, SamplingConfig("interest_region", dilate_iterations=0), image=img)
    idx = s.sample(0, 0)[0]
    assert idx.numel() == len(s.keypoints) == s.n
    assert torch.equal(idx.sort().values, s.candidates.sort().values)


def test_interest_points_topped_up_with_other_pixels():
    img = textured_image()
    s = PixelSampler(*img.shape[:2], 500, SamplingConfig("interest_points"), image=img)
    kp_flat = torch.from_numpy(s.keypoints[:, 1] * img.shape[1] + s.keypoints[:, 0])
    assert len(kp_flat) < 500
    idx = s.sample(torch.tensor([1, 2]), 0)
    assert idx.shape == (2, 500)
    for row in idx:
        assert torch.unique(row).numel() == 500
        assert torch.isin(kp_flat, row).all()  # every keypoint is rendered


def test_interest_region_without_keypoints_is_an_error():
    flat = torch.full((32, 32, 3), 0.5)
    with pytest.raises(InerfError, match="no keypoints"):
        PixelSampler(32, 32, 64, SamplingConfig("interest_region"), image=flat)


def test_selections_served_from_a_block_equal_each_step_drawn_alone():
    """The sampler draws a block of consecutive steps at once (fewer device ops per step); every step equals
    the selection drawn for that step alone, for each strategy, however the steps are asked for."""
    g = torch.Generator().manual_seed(0)
    image, alpha = torch.rand(23, 29, 3, generator=g), (torch.rand(23, 29, generator=g) > 0.6).float()
    seeds = torch.tensor([3, 11])
    for strategy in ("random", "patch", "mask", "center"):
        sampler = PixelSampler(23, 29, 50, SamplingConfig(strategy=strategy), image=image, alpha=alpha)
        sampler.MAX_BLOCK = 4
        got = [sampler.sample(seeds, s) for s in (*range(10), 3, 12)]
        alone = [sampler.sample_steps(seeds, torch.tensor([s]))[0] for s in (*range(10), 3, 12)]
        assert all(torch.equal(a, b) for a, b in zip(got, alone)), strategy
        assert torch.equal(
            sampler.sample(7, 2), sampler.sample_steps(torch.tensor([7]), torch.tensor([2]))[0]
        )
    # The random strategy written out: the n pixels of lowest hash key at (seed, step).
    sampler = PixelSampler(23, 29, 50, SamplingConfig(strategy="random"))
    for s in (0, 5, 9):
        keys = hash_keys(seeds, s, torch.arange(23 * 29))
        expected = torch.topk(keys, 50, dim=-1, largest=False, sorted=False).indices
        assert torch.equal(sampler.sample(seeds, s), expected)
