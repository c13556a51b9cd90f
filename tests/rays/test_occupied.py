"""Static-shape empty-space skipping: compaction equals a per-ray nonzero, and compositing the compacted
samples equals compositing every sample with zeros in empty space."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inerf.fields.occupancy import OccupancyGrid
from inerf.rays.occupied import compact_occupied, compact_occupied_reference, pool_slots, pool_slots_reference
from inerf.render import volrend


@pytest.mark.parametrize("budget", [1, 5, 16, 40])
def test_compaction_equals_the_reference(budget):
    g = torch.Generator().manual_seed(budget)
    occupied = torch.rand(37, 40, generator=g) < torch.rand(37, 1, generator=g)  # from empty to full rays
    occupied[0] = False
    occupied[1] = True
    index, valid, overflow = compact_occupied(occupied, budget)
    ref_index, ref_valid, ref_overflow = compact_occupied_reference(occupied, budget)
    assert torch.equal(valid, ref_valid) and torch.equal(overflow, ref_overflow)
    assert torch.equal(torch.where(valid, index, -1), torch.where(ref_valid, ref_index, -1))
    assert not valid[0].any() and overflow[1] == (budget < 40)


@pytest.mark.parametrize("pool", [1, 17, 200, 2000])
def test_pool_equals_the_reference(pool):
    g = torch.Generator().manual_seed(pool)
    valid = torch.rand(37, 24, generator=g) < torch.rand(37, 1, generator=g)
    slots, kept, dropped = pool_slots(valid, pool)
    ref_slots, ref_kept, ref_dropped = pool_slots_reference(valid, pool)
    assert torch.equal(slots, ref_slots) and torch.equal(kept, ref_kept) and int(dropped) == int(ref_dropped)
    assert int(dropped) == max(0, int(valid.sum()) - pool)


def test_compacted_composite_equals_the_full_composite():
    g = torch.Generator().manual_seed(0)
    R, S, M = 64, 50, 50
    t = torch.linspace(2.0, 6.0, S).expand(R, S)
    occupied = torch.rand(R, S, generator=g) < 0.3
    sigma = torch.rand(R, S, generator=g) * 5 * occupied  # the field is zero in empty cells
    rgb = torch.rand(R, S, 3, generator=g)
    delta = volrend.deltas(t)
    full = volrend.composite(volrend.render_weights(volrend.alpha_from_density(sigma, delta)), rgb, 1.0)

    index, valid, _ = compact_occupied(occupied, M)
    sigma_c = torch.gather(sigma, 1, index)
    delta_c = torch.gather(delta, 1, index) * valid  # padding slots: zero-length intervals
    rgb_c = torch.gather(rgb, 1, index[..., None].expand(R, M, 3))
    compact = volrend.composite(
        volrend.render_weights(volrend.alpha_from_density(sigma_c, delta_c)), rgb_c, 1.0
    )
    torch.testing.assert_close(compact, full, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("chunk", [0, 4])
@pytest.mark.parametrize(("budget", "pool"), [(64, 0.0), (7, 0.0), (64, 48.0), (64, 0.5)])
def test_static_budget_render_equals_the_fields_own_skipping(budget, pool, chunk):
    """The renderer's static-shape skipping (``sample_budget``) against the grid's ``nonzero`` skipping:
    values and pose gradients equal with a budget that holds every occupied sample; with a small one, only
    rays with more occupied samples than the budget differ."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "fields"))
    from dataclasses import replace

    from test_grid import carved_box_field

    from inerf.geometry.se3 import se3_exp
    from inerf.rays.rays import rays_from_pixels
    from inerf.render.renderer import RenderConfig, render_rays

    field = carved_box_field()
    field.requires_grad_(False)
    c2w0 = torch.eye(4, dtype=torch.float64)
    c2w0[2, 3] = -3.0
    uv = torch.stack(torch.meshgrid(torch.arange(0, 16, 2), torch.arange(0, 16, 2), indexing="xy"), -1)
    cfg = RenderConfig(n_coarse=48, n_fine=0, near=1.5, far=4.5)

    def render(config):
        xi = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        out = render_rays(
            field, rays_from_pixels(uv.reshape(-1, 2), se3_exp(xi) @ c2w0, 12.0, 12.0, 8.0, 8.0), config
        )
        (grad,) = torch.autograd.grad(out.rgb.sum() + out.depth.sum(), xi)
        return out, grad

    ref, g_ref = render(cfg)
    fast, g_fast = render(replace(cfg, sample_budget=budget, sample_pool=pool, sample_chunk=chunk))
    if chunk:  # the two-level test keeps the same samples: equal to the one-level path, bit for bit
        one, g_one = render(replace(cfg, sample_budget=budget, sample_pool=pool))
        assert torch.equal(fast.rgb, one.rgb) and torch.equal(fast.weights, one.weights)
        assert torch.equal(g_fast, g_one)
    if pool > 0:  # the pool's ray gradients as run sums (no atomics): the same values and pose gradient
        det, g_det = render(
            replace(cfg, sample_budget=budget, sample_pool=pool, sample_chunk=chunk, deterministic=True)
        )
        assert torch.equal(det.rgb, fast.rgb)
        torch.testing.assert_close(g_det, g_fast, atol=1e-12, rtol=1e-10)

        def colours(config):  # colours only (pose solves): composited in the slot layout or in the pool
            xi = torch.zeros(6, dtype=torch.float64, requires_grad=True)
            rays = rays_from_pixels(uv.reshape(-1, 2), se3_exp(xi) @ c2w0, 12.0, 12.0, 8.0, 8.0)
            rgb = render_rays(field, rays, replace(config, colour_only=True)).rgb
            return rgb, torch.autograd.grad((rgb * torch.linspace(-1, 1, 3, dtype=rgb.dtype)).sum(), xi)[0]

        pooled = replace(cfg, sample_budget=budget, sample_pool=pool, sample_chunk=chunk)
        slot_rgb, g_slot = colours(pooled)
        pack_rgb, g_pack = colours(replace(pooled, packed_composite=True))
        torch.testing.assert_close(pack_rgb, slot_rgb, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(g_pack, g_slot, atol=1e-12, rtol=1e-9)
    occupied_total = int(ref.weights.gt(0).sum())
    if pool > 0:  # ceil(pool * R) packed slots hold every valid sample, or not: the rest is counted
        assert int(fast.dropped) == max(0, occupied_total - math.ceil(pool * len(ref.rgb)))
    if pool == 0.5:  # the pool's tail rays lose samples: those and only those differ
        lost = fast.weights.gt(0).sum(-1) < ref.weights.gt(0).sum(-1)
        assert lost.any() and (~lost).any()
        torch.testing.assert_close(fast.rgb[~lost], ref.rgb[~lost], atol=1e-12, rtol=1e-10)
    elif budget == 64:
        torch.testing.assert_close(fast.rgb, ref.rgb, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(fast.depth, ref.depth, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(fast.weights, ref.weights, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(g_fast, g_ref, atol=1e-10, rtol=1e-8)
    else:
        pts_per_ray = ref.weights.gt(0).sum(-1)
        same = pts_per_ray <= budget
        assert same.any() and (~same).any()
        torch.testing.assert_close(fast.rgb[same], ref.rgb[same], atol=1e-12, rtol=1e-10)


# ------------------------------------------------------------------ two-level occupancy test


def _random_grid(seed: int, res=(7, 5, 6), fraction=0.08):
    from inerf.fields.occupancy import OccupancyGrid

    g = torch.Generator().manual_seed(seed)
    grid = OccupancyGrid(torch.tensor([[-1.0, -0.8, -0.5], [1.2, 0.9, 0.7]]), res)
    grid.mask = torch.rand(res, generator=g) < fraction
    return grid, g


@pytest.mark.parametrize("seed", range(4))
def test_segment_test_never_misses_an_occupied_point(seed):
    """Conservative: a segment called empty has no occupied point, checked densely along random segments of
    all lengths (within a cell to longer than the widest dilation), crossing the box faces and grazing
    occupied cells (end points on cell faces and corners), in float32."""
    grid, g = _random_grid(seed)
    lo, hi = grid.aabb
    cell = (hi - lo) / torch.tensor(grid.resolution)
    n = 3000
    first = lo - 0.3 + torch.rand(n, 3, generator=g) * (hi - lo + 0.6)
    length = torch.rand(n, 1, generator=g) ** 2 * 8 * cell.max()
    last = first + torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * length
    # Grazing: end points snapped to cell faces/corners of the grid (on the box border too).
    snap = torch.rand(n, generator=g) < 0.3
    first[snap] = lo + torch.round((first[snap] - lo) / cell) * cell
    axis_aligned = torch.rand(n, generator=g) < 0.2  # segments along one axis, on a cell face
    last[axis_aligned] = first[axis_aligned] + torch.tensor([0.0, 0.0, 1.0]) * length[axis_aligned]
    s = torch.linspace(0, 1, 257)
    along = first[:, None] + (last - first)[:, None] * s[:, None]  # [n, 257, 3]
    truth = grid(along.reshape(-1, 3)).reshape(n, -1).any(-1)
    coarse = grid.segments_occupied(first, last)
    assert not (truth & ~coarse).any()
    assert truth.any() and (~coarse).sum() > n // 4  # not trivially all occupied
    # NaN segments are empty, like NaN points.
    assert not grid.segments_occupied(torch.full((2, 3), float("nan")), torch.zeros(2, 3)).any()


@pytest.mark.parametrize(("chunk", "chunk_budget"), [(3, 0), (8, 0), (16, 40), (5, 2)])
def test_two_level_equals_compaction_of_every_sample(chunk, chunk_budget):
    """Same ``index, valid`` as :func:`compact_occupied` of every sample, slot for slot (padding included),
    on every ray that is not reported truncated; with a chunk budget that holds every chunk, on all rays."""
    from inerf.rays.occupied import occupied_two_level

    grid, g = _random_grid(chunk, res=(9, 8, 7), fraction=0.15)
    R, S, M = 300, 101, 10
    origins = torch.randn(R, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, -2.5])
    dirs = torch.nn.functional.normalize(
        torch.randn(R, 3, generator=g) * 0.25 + torch.tensor([0, 0, 1.0]), dim=-1
    )
    t = torch.sort(torch.rand(R, S, generator=g) * 3.5 + 0.5, -1).values  # non-uniform, per ray

    def points(tt):
        return origins[:, None] + dirs[:, None] * tt[..., None]

    occ = grid(points(t).reshape(-1, 3)).reshape(R, S)
    ref_index, ref_valid, _ = compact_occupied(occ, M)
    index, valid, truncated = occupied_two_level(
        points, grid, grid.segments_occupied, t, M, chunk, chunk_budget
    )
    same = (index == ref_index).all(-1) & (valid == ref_valid).all(-1)
    assert occ.any(-1).sum() > R // 4 and (occ.sum(-1) > M).any()  # rays hit, and some overflow
    assert same[~truncated].all()
    if chunk_budget == 2:
        assert truncated.any()
        # A truncated ray keeps a prefix of the kept samples: nothing before them is lost.
        kept = torch.where(valid, index, -1)
        for r in truncated.nonzero().squeeze(1).tolist():
            k = int(valid[r].sum())
            assert torch.equal(kept[r, :k], ref_index[r, :k])
    full_index, full_valid, full_trunc = occupied_two_level(
        points, grid, grid.segments_occupied, t, M, chunk, -(-S // chunk)
    )
    assert not full_trunc.any()
    assert torch.equal(full_index, ref_index) and torch.equal(full_valid, ref_valid)


def _grid_and_rays(R: int, S: int, seed: int = 0):
    torch.manual_seed(seed)
    grid = OccupancyGrid(torch.tensor([[-1.0, -0.8, -0.6], [1.0, 0.9, 0.7]]), (8, 6, 5))
    grid.mask.copy_(torch.rand(8, 6, 5) < 0.3)
    origins = torch.randn(R, 3) * 0.3 - torch.tensor([0.0, 0.0, 2.5])
    step = torch.nn.functional.normalize(torch.randn(R, 3) * 0.2 + torch.tensor([0.0, 0.0, 1.0]), dim=-1)
    return grid, origins, step


def test_compact_along_rays_equals_testing_every_sample():
    """The grid's compaction along rays (torch ops on the CPU) is compact_occupied of its per-point test,
    for shared and per-ray sample distances."""
    grid, o, d = _grid_and_rays(23, 90)
    for t in (torch.linspace(0.5, 5.0, 90)[None], torch.linspace(0.5, 5.0, 90) + torch.rand(23, 1) * 0.05):
        pts = o[:, None] + d[:, None] * t.expand(23, 90)[..., None]
        want_i, want_v, _ = compact_occupied(grid(pts.reshape(-1, 3)).reshape(23, 90), 12)
        seg = torch.rand_like(t)
        got_i, got_v, got_t, got_s = grid.compact_along_rays(o, d, t, 12, seg)
        assert torch.equal(got_i, want_i) and torch.equal(got_v, want_v) and want_v.any()
        assert torch.equal(got_t, torch.gather(t.expand(23, 90), 1, want_i))
        assert torch.equal(got_s, torch.gather(seg.expand(23, 90), 1, want_i) * want_v)


KERNEL_CHECK = """
import torch
from inerf.fields.occupancy import OccupancyGrid
from inerf.rays import _triton_occupied as K
from inerf.rays.occupied import compact_occupied

torch.manual_seed(0)
grid = OccupancyGrid(torch.tensor([[-1.0, -0.8, -0.6], [1.0, 0.9, 0.7]]), (8, 6, 5))
grid.mask.copy_(torch.rand(8, 6, 5) < 0.3)
R = 9
o = torch.randn(R, 3) * 0.3 - torch.tensor([0.0, 0.0, 2.5])
d = torch.nn.functional.normalize(torch.randn(R, 3) * 0.2 + torch.tensor([0.0, 0.0, 1.0]), dim=-1)
for S, budget in ((150, 20), (150, 400), (1100, 30)):  # 1100: two blocks of 1024 samples
    for t in (torch.linspace(0.5, 5.0, S)[None], torch.linspace(0.5, 5.0, S) + torch.rand(R, 1) * 0.01):
        pts = o[:, None] + d[:, None] * t.expand(R, S)[..., None]
        want_i, want_v, _ = compact_occupied(grid(pts.reshape(-1, 3)).reshape(R, S), min(budget, S))
        seg = torch.rand_like(t)
        got_i, got_v, got_t, got_s = K.compact_along_rays(o, d, t, budget, grid, seg)
        assert torch.equal(got_i, want_i) and torch.equal(got_v, want_v), (S, budget)
        assert want_v.any()
        assert torch.equal(got_t, torch.gather(t.expand(R, S), 1, want_i)), (S, budget)
        assert torch.equal(got_s, torch.gather(seg.expand(R, S), 1, want_i) * want_v), (S, budget)
        _, _, _, no_seg = K.compact_along_rays(o, d, t, budget, grid)
        assert not no_seg.any()
print("occupied kernel ok")
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")
def test_compact_kernel_in_the_interpreter(tmp_path):
    """The Triton compaction against compact_occupied of the per-point test, slot for slot, run by Triton's
    interpreter on the CPU (the GPU benchmark runs the compiled kernel)."""
    script = tmp_path / "check.py"
    script.write_text(KERNEL_CHECK)
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    res = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert res.returncode == 0 and "occupied kernel ok" in res.stdout, res.stderr[-3000:]


def test_compaction_kernel_that_fails_falls_back(monkeypatch):
    """If the Triton compaction cannot be built, one warning and the torch ops give the same result."""
    import types

    from inerf.rays import occupied

    def fail(*args, **kwargs):
        raise RuntimeError("no kernel for this GPU")

    monkeypatch.setitem(
        sys.modules, "inerf.rays._triton_occupied", types.SimpleNamespace(compact_along_rays=fail)
    )
    monkeypatch.setattr(occupied, "fused_available", lambda t: occupied.FUSED)
    monkeypatch.setattr(occupied, "FUSED", True)
    grid, o, d = _grid_and_rays(11, 60)
    t = torch.linspace(0.5, 5.0, 60)[None]
    with pytest.warns(UserWarning, match="Triton kernel unusable"):
        got = grid.compact_along_rays(o, d, t, 9)
    assert not occupied.FUSED
    want = grid.compact_along_rays(o, d, t, 9)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_gather_sorted_rows_equals_gather_and_its_gradient():
    """The pool's ray gather with a run-sum backward gives torch.gather's values and gradients."""
    from inerf.rays.occupied import gather_sorted_rows

    g = torch.Generator().manual_seed(3)
    src = torch.randn(9, 5, generator=g, requires_grad=True)
    index = torch.sort(torch.randint(0, 9, (40,), generator=g)).values
    index[index == 4] = 5  # a row nothing gathers gets a zero gradient
    w = torch.randn(40, 5, generator=g)
    got = gather_sorted_rows(src, index)
    (g_got,) = torch.autograd.grad((got * w).sum(), src)
    want = torch.gather(src, 0, index[:, None].expand(40, 5))
    (g_want,) = torch.autograd.grad((want * w).sum(), src)
    assert torch.equal(got, want)
    assert torch.allclose(g_got, g_want, atol=1e-6) and not g_got[4].any()
