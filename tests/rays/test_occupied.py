"""Static-shape empty-space skipping: compaction equals a per-ray nonzero, and compositing the compacted
samples equals compositing every sample with zeros in empty space."""

from __future__ import annotations

import pytest
import torch

from inerf.rays.occupied import compact_occupied, compact_occupied_reference
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
