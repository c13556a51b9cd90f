"""``inerf benchmark pose`` in two processes (torchrun, gloo on the CPU) writes the one-process table exactly.

Three views over two ranks (rank 0 solves views 0 and 2, rank 1 view 1), two strategies, two trials each,
with the uncertainty columns (on by default): every row of results.csv and trials.csv, in the same order, with the same
numbers to the last digit. (Here, beside the training tests, because it needs a trained run directory.)
"""

from __future__ import annotations

import json

import torch

from inerf.cli.main import main as inerf_main


def _bench_args(run, out) -> list[str]:
    return [
        *("benchmark", "pose", "--run", str(run), "--images", "3", "--trials", "2"),
        *("--sampling", "random,center", "--steps", "8", "--checkpoints", "4,8", "--rays", "48"),
        *("--perturb-rot", "10", "--perturb-trans", "0.05", "--uncertainty-rays", "256", "--device", "cpu"),
        *("--out", str(out), "--quiet"),
    ]


def test_sharded_benchmark_table_equals_one_process(sphere_scene, tmp_path, torchrun):
    run, one, two = tmp_path / "run", tmp_path / "one", tmp_path / "two"
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train = [
            "train",
            "--data",
            str(sphere_scene),
            "--out",
            str(run),
            "--model",
            "grid",
            "--device",
            "cpu",
        ]
        assert inerf_main([*train, "--max-steps", "10", "--rays-per-batch", "128", "--quiet"]) == 0
        assert inerf_main(_bench_args(run, one)) == 0
    finally:
        torch.set_num_threads(old)
    # `--` ends torchrun's options: it would read `--run` as an abbreviation of its own `--run-path`.
    proc = torchrun(["--", *_bench_args(run, two)])

    assert proc.stdout.count("Success rate (") == 1  # rank 0 prints the table once
    for name in ("results.csv", "trials.csv"):
        assert (two / name).read_text() == (one / name).read_text(), name
    r1, r2 = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert r2["summary"] == r1["summary"] and r2["trials"] == r1["trials"]
    assert r2["success_curve"] == r1["success_curve"] and r2["calibration"] == r1["calibration"]
    assert [t["view"] for t in r2["trials"]][:4] == [0, 0, 0, 0] and r2["meta"]["views"] == [0, 1, 2]
    assert r2["meta"]["processes"] == 2 and "processes" not in r1["meta"]
    assert "summed over 2 processes" in (two / "results.md").read_text()
