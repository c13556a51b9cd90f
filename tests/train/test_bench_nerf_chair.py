"""The chair benchmark script runs end to end on the CPU with tiny settings (on the analytic sphere scene)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_nerf_chair.py"


def test_bench_script_smoke(sphere_scene, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_nerf_chair", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench"
    rc = bench.main(
        [
            str(sphere_scene),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--max-steps",
            "5",
            "--tiny",
            "--minutes",
            "1",
            "--max-test-views",
            "2",
            "--no-progress",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "test PSNR:" in printed
    result = json.loads((out / "bench_result.json").read_text())
    assert result["steps"] == 5 and result["test_views"] == 2 and result["device"] == "cpu"
    assert result["test_psnr"] > 0 and (out / "renders" / "test" / "test.gif").is_file()
