"""Samplers: NeRF's and pixelNeRF's layouts against hand numbers, shapes, order, seeding."""

from __future__ import annotations

import torch

from inerf.rays.samplers import (
    NeRFSampler,
    PixelNeRFSampler,
    depth_guided_samples,
    importance_positions,
    positions_to_distances,
    stratified_positions,
    stratified_samples,
)


def test_pixelnerf_positions():
    like = torch.zeros(())
    s = stratified_positions((2,), 4, like, deterministic=True)
    assert torch.allclose(s, torch.tensor([[0.125, 0.375, 0.625, 0.875]] * 2))
    g = torch.Generator().manual_seed(0)
    r = stratified_positions((1000,), 64, like, generator=g)
    assert ((r * 64).floor() == torch.arange(64)).all()  # one sample per stratum
    assert torch.allclose(
        positions_to_distances(torch.tensor([0.0, 0.5, 1.0]), 0.8, 1.8), torch.tensor([0.8, 1.3, 1.8])
    )
    assert torch.allclose(
        positions_to_distances(torch.tensor([0.5]), 1.0, 3.0, lindisp=True), torch.tensor([1.5])
    )


def test_pixelnerf_importance_and_depth_guided():
    g = torch.Generator().manual_seed(0)
    # All weight in bin 5 of 64 -> every importance sample lands in [5, 6] / 64 (the 1e-5 floor is tiny).
    w = torch.zeros(3, 64)
    w[:, 5] = 1.0
    for det in (True, False):
        s_imp = importance_positions(w, 16, deterministic=det, generator=g)
        assert s_imp.shape == (3, 16) and ((s_imp * 64 >= 5) & (s_imp * 64 <= 6)).all()
    assert torch.allclose(importance_positions(w, 16, deterministic=True), torch.full((3, 16), 5.5 / 64))
    # Empty rays (all weights 0): the 1e-5 floor makes the pdf uniform, quantiles hit bins 2, 6, ..., 62.
    flat = importance_positions(torch.zeros(1, 64), 16, deterministic=True)
    assert torch.allclose(flat * 64, torch.arange(16) * 4.0 + 2.5)
    # Depth-guided: symmetric Gaussian quantiles, clamped to [near, far].
    d = depth_guided_samples(torch.tensor([1.3, 0.8]), 16, 0.01, 0.8, 1.8, deterministic=True)
    assert torch.allclose(d[0].mean(), torch.tensor(1.3)) and torch.allclose(d[0], (2.6 - d[0]).flip(0))
    assert (d[1] >= 0.8).all() and torch.isclose(d[1, :8], torch.tensor(0.8)).all()


def test_pixelnerf_sampler_two_stages():
    sampler = PixelNeRFSampler(
        n_coarse=8, n_importance=4, n_depth=2, depth_std=0.05, jitter=False, deterministic=True
    )
    like = torch.zeros(())
    t = sampler.coarse(1.0, 3.0, (2, 3), like=like)
    assert t.shape == (2, 3, 8) and torch.allclose(t[0, 0], 1.0 + (torch.arange(8) + 0.5) / 4)
    w = torch.zeros(2, 3, 8)
    w[..., 2] = 1.0  # all weight in bin 2 = [1.5, 1.75]
    t_all = sampler.fine(t, w, torch.full((2, 3), 1.6), 1.0, 3.0)
    assert t_all.shape == (2, 3, 14) and (t_all.diff(dim=-1) >= 0).all()
    # Importance quantiles land at the centre of bin 2 (1.625); depth samples at 1.6 -+ 0.05 Phi^-1(3 / 4).
    extra = torch.tensor([1.625] * 4 + [1.6 - 0.05 * 0.67449, 1.6 + 0.05 * 0.67449])
    assert torch.allclose(t_all[1, 2], torch.sort(torch.cat([t[1, 2], extra])).values, atol=1e-5)
    # Seeded jitter and random fine samples repeat with the same generator.
    rnd = PixelNeRFSampler(n_coarse=8, n_importance=4, n_depth=2)
    a, b = (
        rnd.coarse(1.0, 3.0, (5,), like=like, generator=torch.Generator().manual_seed(1)) for _ in range(2)
    )
    assert torch.equal(a, b) and not torch.equal(a, sampler.coarse(1.0, 3.0, (5,), like=like))


def test_nerf_sampler_layouts():
    t = stratified_samples(2.0, 6.0, 5, 3)
    assert torch.allclose(t[0], torch.tensor([2.0, 3.0, 4.0, 5.0, 6.0]))  # bin edges, both ends included
    disp = stratified_samples(1.0, 4.0, 3, (), lindisp=True)
    assert torch.allclose(1.0 / disp, torch.tensor([1.0, 0.625, 0.25]))  # equal steps in 1 / t
    sampler = NeRFSampler(n_coarse=5, n_fine=16)
    tc = sampler.coarse(2.0, 6.0, (1,), like=torch.zeros(()))
    assert torch.equal(tc, t[:1])
    w = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]])
    t_all = sampler.fine(tc, w, None, 2.0, 6.0)
    assert t_all.shape == (1, 21) and ((t_all >= 3.5) & (t_all <= 4.5)).sum() >= 15
