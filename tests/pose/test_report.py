"""The estimate's summary and pose.json: start errors belong to the returned hypothesis (issue 11, item 5)."""

from __future__ import annotations

import json

import pytest
import torch
from pose_scene import perturb

from inerf.geometry import se3
from inerf.pose.config import PoseConfig
from inerf.pose.report import OutputOptions, pose_record, start_errors, summary_lines, write_estimate_outputs
from inerf.pose.solver import estimate_pose
from inerf.render.model import Model


@pytest.fixture(scope="module")
def three_starts(field, render_config, scene):
    """Hypothesis 0 starts 30 degrees off, 1 starts 4 degrees / 0.01 off and is returned, 2 starts 3 degrees
    off but 0.3 away (the best start by rotation, not the returned one)."""
    target, gt = scene
    starts = torch.stack(
        [
            perturb(gt, 30.0, 0.02),
            perturb(gt, 4.0, 0.01, axis=(1, 0, 0)),
            perturb(gt, 3.0, 0.3, axis=(0, 1, 0)),
        ]
    )
    result = estimate_pose(
        Model(field, None, render_config), target, starts, PoseConfig(steps=6, n_rays=64), seeds=1
    )
    return result, target, gt


def test_start_errors_are_the_returned_hypothesis_own_and_the_best(three_starts):
    result, _, gt = three_starts
    hyp = int(result.hypothesis[0])
    assert hyp == 1  # the far start loses, so hypothesis 0's start must not be reported
    start = start_errors(result, gt)
    assert start["rot"] == pytest.approx(float(se3.rotation_error_deg(result.init_c2w[0, hyp], gt)))
    assert start["trans"] == pytest.approx(float(se3.translation_error(result.init_c2w[0, hyp], gt)))
    assert start["rot"] == pytest.approx(4.0, abs=1e-4)
    assert start["best_hypothesis"] == 2
    assert start["best_rot"] == pytest.approx(3.0, abs=1e-4) and start["best_trans"] == pytest.approx(
        0.3, abs=1e-6
    )


def test_summary_pairs_the_returned_start_with_its_end(three_starts):
    result, _, gt = three_starts
    hyp = int(result.hypothesis[0])
    lines = summary_lines(result, gt.float())  # a float32 ground truth against float64 poses is fine
    own = start_errors(result, gt)["rot"]
    end = float(se3.rotation_error_deg(result.c2w[0], gt))
    assert f"rotation error {own:.3f} -> {end:.3f} deg" in lines[2]
    assert f"hypothesis {hyp}'s start" in lines[2] and "30.000" not in "\n".join(lines)
    assert lines[3] == "best of the 3 starts: hypothesis 2, 3.000 deg, 0.3000"


def test_pose_json_start_errors_match_its_init_c2w(three_starts, tmp_path):
    result, target, gt = three_starts
    hyp = int(result.hypothesis[0])
    rec = pose_record(result, gt)
    init = torch.tensor(rec["init_c2w"], dtype=torch.float64)
    assert torch.equal(init, result.init_c2w[0, hyp])
    assert rec["init_rotation_error_deg"] == pytest.approx(float(se3.rotation_error_deg(init, gt)))
    assert rec["best_init_hypothesis"] == 2 and rec["best_init_rotation_error_deg"] == pytest.approx(
        3.0, abs=1e-4
    )
    # The files: pose.json as above; the first frame's label is the returned hypothesis's start.
    paths = write_estimate_outputs(
        tmp_path, result, target, None, gt_c2w=gt, options=OutputOptions(frames=0), meta={"note": "x"}
    )
    data = json.loads(paths["pose"].read_text())
    assert data["init_rotation_error_deg"] == rec["init_rotation_error_deg"] and data["note"] == "x"
    hyps = json.loads(paths["hypotheses"].read_text())
    assert [h["hypothesis"] for h in hyps] == [0, 1, 2] and all(h["last_step"] == 6 for h in hyps)
    assert list(paths) == ["pose", "trajectory", "hypotheses", "trace", "target", "plot"]
    # trace.json: every hypothesis's camera path (what `inerf view` draws), ending at its last pose.
    trace = json.loads(paths["trace"].read_text())
    assert trace["returned"] == hyp and [h["hypothesis"] for h in trace["hypotheses"]] == [0, 1, 2]
    for h in trace["hypotheses"]:
        assert h["steps"] == list(range(7))  # 6 steps: every one kept (up to 60 are)
        k = h["hypothesis"]
        torch.testing.assert_close(
            torch.tensor(h["centres"][-1]), result.trajectory.c2w[6, 0, k, :3, 3].float()
        )
        torch.testing.assert_close(torch.tensor(h["forward"][0]), result.init_c2w[0, k, :3, 2].float())


def test_single_hypothesis_summary_has_no_best_start_line(field, render_config, scene):
    target, gt = scene
    result = estimate_pose(
        Model(field, None, render_config), target, perturb(gt, 5.0, 0.02), PoseConfig(steps=2, n_rays=32)
    )
    lines = summary_lines(result, gt)
    assert (
        len(lines) == 3 and lines[2].startswith("rotation error 5.000 -> ") and "hypothesis" not in lines[2]
    )
    assert "best_init_hypothesis" not in pose_record(result, gt)


def test_convergence_verdict_compares_the_final_loss_with_the_fields_own_error():
    from inerf.pose.report import CONVERGED_RATIO, convergence_verdict

    field_mse = 10 ** (-30 / 10)  # a 30 dB field
    ok = convergence_verdict(2e-3, "mse", field_mse)
    assert ok["verdict"] == "converged" and ok["ratio"] == pytest.approx(2.0)
    off = convergence_verdict(field_mse * (CONVERGED_RATIO + 1), "mse", field_mse)
    assert off["verdict"] == "not converged"
    assert convergence_verdict(1e-3, "mse", None)["verdict"] == "unknown"
    assert convergence_verdict(1e-3, "huber", field_mse) == {
        "verdict": "unknown",
        "reason": "the loss is not the MSE",
    }
