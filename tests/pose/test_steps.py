"""The step objects and their schedule: which optimiser acts when, Adam's rate table, masking failures."""

from __future__ import annotations

import math

import pytest
import torch

from inerf.pose.config import AdamConfig, BlurConfig, LMConfig, PoseConfig
from inerf.pose.state import Hypotheses
from inerf.pose.steps import AdamStep, Evaluation, LMStep, Schedule, adam_update

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("config", "names"),
    [
        (PoseConfig(steps=5), ["adam"] * 5),
        (PoseConfig(steps=5, optimizer="lm"), ["lm"] * 5),
        (PoseConfig(steps=5, optimizer="adam+lm", lm=LMConfig(steps=2)), ["adam"] * 3 + ["lm"] * 2),
    ],
)
def test_schedule_phases(config, names):
    schedule = Schedule.from_config(config, CPU)
    assert [schedule.at(s).name for s in range(config.steps)] == names
    hyps = schedule.init_state(Hypotheses.start(torch.eye(4).repeat(2, 3, 1, 1)))
    expected = {"adam": {"m", "v"}, "lm": {"damping"}}
    assert set(hyps.optim) == set().union(*(expected[n] for n in names))
    for t in hyps.optim.values():
        assert t.shape[:2] == (2, 3)


def test_schedule_blur_and_learning_rates():
    config = PoseConfig(
        steps=6, adam=AdamConfig(lr=0.1, lr_decay=0.5, lr_decay_steps=2), blur=BlurConfig(2.0, 4)
    )
    schedule = Schedule.from_config(config, CPU)
    assert [schedule.blur_at(s) for s in range(6)] == [2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
    assert schedule.at(2).lr_at(2) == pytest.approx(0.05)
    lm = LMStep(LMConfig(), start=0)
    assert math.isnan(lm.lr_at(3))


def test_adam_rate_table_is_the_schedule_times_the_translation_scale():
    config = AdamConfig(lr=0.02, trans_lr_scale=3.0, lr_decay=0.5, lr_decay_steps=4)
    adam = AdamStep(config, steps=9, device=CPU)
    assert adam.rates.shape == (9, 6) and adam.rates.dtype == torch.float32
    for s in range(9):
        # The same float32 product as a Python float times the scale tensor.
        expected = config.lr_at(s) * torch.tensor([3.0] * 3 + [1.0] * 3)
        assert torch.equal(adam.rates[s], expected)


def test_adam_step_is_adam_update_with_the_steps_rate():
    hyps = Hypotheses.start(torch.eye(4).repeat(1, 2, 1, 1))
    adam = AdamStep(AdamConfig(lr=0.05), steps=3, device=CPU)
    hyps.optim = adam.init_state(hyps.xi)
    grad = torch.randn(1, 2, 6)
    xi, state = adam.step(None, hyps, Evaluation(torch.zeros(1, 2), grad), None, 0.0, 2)
    ref = adam_update(hyps.xi, grad, torch.zeros(1, 2, 6), torch.zeros(1, 2, 6), 3, 0.05 * 0.8 ** (2 / 100))
    torch.testing.assert_close(xi, ref[0])
    assert torch.equal(state["m"], ref[1]) and torch.equal(state["v"], ref[2])


def test_lm_fraction_and_finish_count():
    config = PoseConfig(optimizer="adam+lm", steps=20, lm=LMConfig(steps=10, decay=0.5, average=4))
    schedule = Schedule.from_config(config, CPU)
    assert schedule.lm.start == 10 and schedule.adam is not None
    assert [schedule.lm.fraction(s) for s in (10, 12, 13, 19)] == [1.0, 1.0, 2 / 3, 2 / 9]


def test_evaluation_flags_and_masks_non_finite_numbers():
    loss = torch.tensor([[1.0, math.nan, 1.0, 1.0]])
    grad = torch.ones(1, 4, 6)
    grad[0, 2, 1] = math.inf
    H = torch.eye(6).repeat(1, 4, 1, 1)
    H[0, 3, 2, 2] = math.nan
    assert torch.equal(Evaluation(loss, grad, H).bad(), torch.tensor([[False, True, True, True]]))
    assert torch.equal(Evaluation(loss, grad).bad(), torch.tensor([[False, True, True, False]]))
    masked = Evaluation(loss, grad, H).masked(torch.tensor([[False, True, True, True]]))
    assert torch.isfinite(masked.grad).all() and torch.isfinite(masked.hessian).all()
    assert torch.equal(masked.grad[0, 0], grad[0, 0]) and not masked.grad[0, 2].any()
    assert torch.equal(masked.hessian[0, 3], torch.eye(6))
    sel = Evaluation(loss, grad, H).select(torch.arange(1)[:, None], torch.tensor([[2, 0]]))
    assert torch.equal(sel.grad, grad[:, [2, 0]]) and sel.hessian.shape == (1, 2, 6, 6)
