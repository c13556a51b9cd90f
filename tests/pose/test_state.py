"""The solver's state and record: Hypotheses.select/freeze/advance and the Recorder, on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch

from inerf.geometry import se3
from inerf.pose.recorder import Recorder
from inerf.pose.state import Hypotheses, as_batch


def hypotheses(G=2, K=4) -> Hypotheses:
    c2w0 = torch.eye(4).repeat(G, K, 1, 1)
    c2w0[..., 0, 3] = torch.arange(G * K, dtype=torch.float32).reshape(G, K)  # tell the slots apart
    h = Hypotheses.start(c2w0)
    h.optim = {"m": torch.randn(G, K, 6), "damping": torch.rand(G, K)}
    return h


def test_start_is_the_zero_twist_with_nothing_failed():
    h = Hypotheses.start(torch.eye(4).repeat(2, 3, 1, 1))
    assert h.xi.shape == (2, 3, 6) and not h.xi.any() and h.size == 3
    assert torch.equal(h.ids, torch.tensor([[0, 1, 2], [0, 1, 2]]))
    assert not h.failed.any() and (h.failed_step == -1).all()
    assert torch.equal(h.c2w(), h.c2w0)  # exp(0) @ c2w0


def test_as_batch_shapes():
    assert as_batch(torch.eye(4)).shape == (1, 1, 4, 4)
    assert as_batch(torch.eye(4).repeat(3, 1, 1)).shape == (1, 3, 4, 4)
    assert as_batch(torch.eye(4).repeat(2, 3, 1, 1)).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"\[G, K, 4, 4\]"):
        as_batch(torch.zeros(4))


def test_select_reindexes_every_per_hypothesis_tensor_but_not_failed_step():
    h = hypotheses()
    h.xi = torch.randn(2, 4, 6)
    h.freeze(torch.tensor([[False, True, False, False], [False, False, False, True]]), step=3)
    keep = torch.tensor([[1, 2], [0, 3]])
    s = h.select(keep)
    rows = torch.arange(2)[:, None]
    assert torch.equal(s.ids, torch.tensor([[1, 2], [0, 3]]))
    for name in ("xi", "c2w0", "failed"):
        assert torch.equal(getattr(s, name), getattr(h, name)[rows, keep]), name
    for name in h.optim:
        assert torch.equal(s.optim[name], h.optim[name][rows, keep]), name
    assert torch.equal(s.failed, torch.tensor([[True, False], [False, True]]))
    assert s.failed_step is h.failed_step and s.failed_step.shape == (2, 4)  # per original hypothesis


def test_freeze_records_the_first_failure_by_original_id():
    h = hypotheses().select(torch.tensor([[3, 1], [2, 0]]))  # slot order differs from original ids
    h.freeze(torch.tensor([[True, False], [False, False]]), step=5)
    h.freeze(torch.tensor([[True, True], [False, False]]), step=7)  # id 3 already failed: keeps step 5
    assert torch.equal(h.failed, torch.tensor([[True, True], [False, False]]))
    assert torch.equal(h.failed_step, torch.tensor([[-1, 7, -1, 5], [-1, -1, -1, -1]]))


def test_advance_moves_only_live_hypotheses_and_their_state():
    h = hypotheses(G=1, K=3)
    h.freeze(torch.tensor([[False, True, False]]), step=0)
    xi_new = torch.ones(1, 3, 6)
    m_new, d_new = torch.full((1, 3, 6), 7.0), torch.full((1, 3), 9.0)
    m_old, d_old = h.optim["m"].clone(), h.optim["damping"].clone()
    delta = h.advance(xi_new, {"m": m_new, "damping": d_new})
    assert torch.equal(delta[0, 1], torch.zeros(6)) and torch.equal(delta[0, [0, 2]], torch.ones(2, 6))
    assert torch.equal(h.xi[0, 1], torch.zeros(6)) and torch.equal(h.xi[0, [0, 2]], torch.ones(2, 6))
    assert torch.equal(h.optim["m"][0, 1], m_old[0, 1]) and (h.optim["m"][0, [0, 2]] == 7).all()
    assert h.optim["damping"][0, 1] == d_old[0, 1] and (h.optim["damping"][0, [0, 2]] == 9).all()
    # State not given is left alone.
    h.advance(h.xi, {})
    assert (h.optim["damping"][0, [0, 2]] == 9).all()


def test_best_half_ranks_failed_hypotheses_last_and_keeps_slot_order():
    h = hypotheses(G=2, K=4)
    h.freeze(torch.tensor([[True, False, False, False], [False, False, False, False]]), step=0)
    loss = torch.tensor([[0.0, 3.0, 1.0, 2.0], [4.0, 1.0, 3.0, 2.0]])
    assert torch.equal(h.best_half(loss), torch.tensor([[2, 3], [1, 3]]))
    assert torch.equal(h.scores(loss)[0], torch.tensor([math.inf, 3.0, 1.0, 2.0]))


def test_recorder_writes_by_original_id_with_nan_for_pruned_and_failed():
    h = hypotheses(G=1, K=4)
    h.xi = 0.01 * torch.randn(1, 4, 6)
    rec = Recorder(1, 4, steps=3, device=torch.device("cpu"))
    rec.record(h, torch.tensor([[1.0, 2.0, 3.0, 4.0]]), 0.5)
    h = h.select(torch.tensor([[3, 1]]))
    h.freeze(torch.tensor([[False, True]]), step=1)
    rec.record(h, torch.tensor([[5.0, 6.0]]), math.nan)
    tr = rec.trajectory()
    assert tr.c2w.shape == (2, 1, 4, 4, 4) and tr.c2w.dtype == torch.float64 and tr.steps == 1
    expected = (se3.se3_exp(h.xi) @ h.c2w0).double()
    assert torch.equal(tr.c2w[1, 0, [3, 1]], expected[0])
    assert torch.isnan(tr.c2w[1, 0, [0, 2]]).all()  # pruned
    assert tr.loss[1, 0, 3] == 5.0 and torch.isnan(tr.loss[1, 0, [0, 1, 2]]).all()  # 1 failed, 0 and 2 pruned
    assert tr.lr[0] == 0.5 and torch.isnan(tr.lr[1])
    assert torch.allclose(rec.recent(1)[0], rec.c2w(1, 2)[0], equal_nan=True) and rec.recent(2).shape == (
        2,
        1,
        4,
        4,
        4,
    )
