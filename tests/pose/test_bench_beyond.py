"""benchmarks/bench_beyond.py at the smallest size on the CPU: every part runs and reports its figures."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_beyond.py"


def test_bench_beyond_smoke(tmp_path, capsys, monkeypatch):
    pytest.importorskip("pybullet")
    monkeypatch.setenv("INERF_CACHE_DIR", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("bench_beyond", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "beyond"
    report = bench.main(
        [
            "--demo",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--figures",
            str(tmp_path / "fig"),
            "--samples",
            "32",
        ]
        + [
            "--images",
            "1",
            "--trials",
            "1",
            "--viewpoints",
            "16",
            "--rolls",
            "1",
            "--keep",
            "2",
            "--score-rays",
            "32",
        ]
        + ["--steps", "8", "--rays", "64", "--lm-average", "2", "--warmup"]
        + ["--make-sequence", "orbit", "--frames", "4", "--size", "48", "--track-frames", "3"]
        + ["--track-seconds", "0", "--scene-radius", "1.0"]
        + ["--track-rays", "128", "--track-steps", "3", "--calib-images", "1", "--calib-trials", "1"]
        + ["--calib-steps", "8", "--perturb-rot", "5", "--perturb-trans", "0.02", "--uncertainty-rays", "256"]
    )
    stdout = capsys.readouterr().out
    assert report["global"]["candidates"] == 16 and report["global"]["seconds_per_image"] > 0
    assert report["global"]["warmup_seconds"] > 0 and report["global"]["lm_average"] == 2
    assert "--lm-average 2 --samples 32" in report["global"]["command"]
    # --track-frames 3 of the 4 rendered; --track-seconds 0 stops after the first two (always solved).
    t = report["track"]
    assert t["frames_available"] == 3 and t["frames"] == 2 and t["fps"] > 0 and t["frame_ms_median"] > 0
    assert t["scene_radius"] == 1.0 and 0.0 <= t["within_1deg_1pct_scene"] <= t["within_1deg_1pct"]
    assert "--max-frames 3" in t["command"]
    assert report["calibration"]["trials"] == 1 and report["calibration"]["solve_seconds"] > 0
    assert set(report["part_seconds"]) == {"global", "track", "calibration"} and report["load_seconds"] > 0
    assert json.loads((out / "beyond.json").read_text())["track"]["frames"] == 2
    for name in (
        "global/results.md",
        "global/success_curve.png",
        "track/trajectory.tum",
        "calibration/results.md",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (tmp_path / "fig" / "global_success.png").exists() and (
        tmp_path / "fig" / "track_trajectory.png"
    ).exists()
    assert (
        "## Global localisation" in stdout
        and "## Tracking" in stdout
        and "## Uncertainty calibration" in stdout
    )
    assert (
        "frame 1 " in stdout
        and "track: stopping after 2 frames" in stdout
        and "Wall time: model loading" in stdout
    )
