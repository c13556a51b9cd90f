"""Issue 11 items 6 and 7 (training side): the progress bar of a time-limited run shows its time budget, the
run directory records its validation PSNR, and the verbs that use a run warn when that PSNR is low."""

from __future__ import annotations

import io
import json
import re

import pytest
from conftest import TINY_FIELD_ARGS, tiny_config

from inerf.cli.main import main
from inerf.errors import InerfError
from inerf.train import Trainer, load_run, train
from inerf.train.checkpoint import LOW_VAL_PSNR_DB, undertrained_warning, validation_psnr
from inerf.train.trainer import progress_bar


def test_time_budget_bar_reads_used_over_budget():
    """A 3-minute run with the default 200 000-step budget: the bar is over the 3 minutes, not the steps."""
    out = io.StringIO()
    bar = progress_bar(0, 200_000, 0.0, 180.0, file=out, ncols=100)
    bar.advance(1234, 72.0)
    text = str(bar)
    assert "01:12 / 03:00 of training, step 1234" in text and " 40%|" in text
    bar.advance(1300, 500.0)  # the last step may overrun the budget: the bar stops at it
    assert "03:00 / 03:00" in str(bar)
    bar.close()
    steps = progress_bar(10, 100, 0.0, float("inf"), file=io.StringIO(), ncols=100)
    steps.advance(50, 3.0)
    assert " 50/100 " in str(steps)  # no time budget: a plain bar over the steps
    steps.close()


def test_training_with_a_time_budget_shows_no_step_eta(sphere_scene, tmp_path, capsys):
    cfg = tiny_config(
        sphere_scene, tmp_path / "r", max_steps=200_000, max_minutes=0.02, val_every=0, progress=True
    )
    result = train(cfg)
    err = capsys.readouterr().err
    last = [line for line in re.split(r"[\r\n]", err) if line.startswith("train:")][-1]
    assert re.search(r"\d\d:\d\d / 00:01 of training, step \d+", last), last
    assert f"step {result.step}" in last
    assert "step/s" not in last and "<" not in last and "200000" not in last  # no steps-based ETA


def test_validation_psnr_is_recorded_at_each_validation(sphere_scene, tmp_path, monkeypatch):
    written = []
    original = Trainer.write_metrics

    def spy(self):
        original(self)
        written.append(json.loads((self.run_dir / "metrics.json").read_text()))

    monkeypatch.setattr(Trainer, "write_metrics", spy)
    run_dir = tmp_path / "r"
    result = train(tiny_config(sphere_scene, run_dir, max_steps=4, val_every=2, n_coarse=8, n_fine=4))
    val_steps = [m["val_step"] for m in written]
    assert val_steps[:3] == [0, 2, 4]  # before the first step, then every --val-every steps
    final = json.loads((run_dir / "metrics.json").read_text())
    assert final["step"] == 4 and final["val_step"] == 4 and final["val_split"] == "val"
    assert final["val_psnr"] == pytest.approx(result.val_psnr)
    assert validation_psnr(run_dir) == pytest.approx(result.val_psnr)  # from config.json, with the weights
    assert validation_psnr(load_run(run_dir)) == pytest.approx(result.val_psnr)


@pytest.fixture(scope="module")
def undertrained_run(sphere_scene, tmp_path_factory):
    """Three steps: the sphere's validation view is at ~10 dB, far below the warning threshold."""
    run_dir = tmp_path_factory.mktemp("under") / "run"
    args = ["--n-coarse", "8", "--n-fine", "4", "--rays-per-batch", "64", "--device", "cpu", "--quiet"]
    assert (
        main(
            [
                "train",
                "--data",
                str(sphere_scene),
                "--out",
                str(run_dir),
                "--max-steps",
                "3",
                *TINY_FIELD_ARGS,
                *args,
            ]
        )
        == 0
    )
    assert validation_psnr(run_dir) < LOW_VAL_PSNR_DB
    return run_dir


def test_validation_psnr_of_old_and_unvalidated_runs(undertrained_run, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(undertrained_run, old)
    cfg = json.loads((old / "config.json").read_text())
    for metrics in ({}, {"val_psnr": None}, {"val_psnr": "n/a"}):  # before it was recorded; no val view
        (old / "config.json").write_text(json.dumps({**cfg, "metrics": metrics}))
        assert validation_psnr(old) is None and undertrained_warning(old) is None
    del cfg["metrics"]
    (old / "config.json").write_text(json.dumps(cfg))
    assert validation_psnr(old) is None
    with pytest.raises(InerfError, match="run directory not found"):
        validation_psnr(tmp_path / "missing")


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if "warning:" in line]


def test_render_and_estimate_warn_about_an_undertrained_field(undertrained_run, tmp_path, capsys):
    psnr = validation_psnr(undertrained_run)
    render = [
        "render",
        "--run",
        str(undertrained_run),
        "--out",
        str(tmp_path / "renders"),
        "--max-views",
        "1",
    ]
    assert main([*render, "--video", "none", "--device", "cpu", "--quiet"]) == 0
    (line,) = _warnings(capsys.readouterr().err)
    assert line == (
        f"inerf render: warning: {undertrained_run} scores {psnr:.1f} dB validation PSNR at step 3, below 20 dB: "
        "the field is undertrained, so renders are blurred and pose estimates unreliable (train longer: "
        f"inerf train --out {undertrained_run} --resume --max-minutes M)"
    )
    estimate = [
        "estimate",
        "--run",
        str(undertrained_run),
        "--view",
        "0",
        "--init-from-gt",
        "--perturb-rot",
        "5",
        "--steps",
        "2",
        "--rays",
        "16",
        "--frames",
        "0",
        "--out",
        str(tmp_path / "est"),
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(estimate) == 0
    (line,) = _warnings(capsys.readouterr().err)
    assert line.startswith(f"inerf estimate: warning: {undertrained_run} scores {psnr:.1f} dB")


def test_no_warning_for_a_trained_field(undertrained_run, tmp_path, capsys):
    import shutil

    good = tmp_path / "good"
    shutil.copytree(undertrained_run, good)
    cfg = json.loads((good / "config.json").read_text())
    cfg["metrics"]["val_psnr"] = LOW_VAL_PSNR_DB + 0.1
    (good / "config.json").write_text(json.dumps(cfg))
    render = [
        "render",
        "--run",
        str(good),
        "--max-views",
        "1",
        "--video",
        "none",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(render) == 0
    assert _warnings(capsys.readouterr().err) == []
