"""Batch localisation in two processes (torchrun, gloo on the CPU) writes the one-process tables exactly.

Three held-out views of the bundled demo field (a real checkpoint) as PNGs: rank 0 localises images 0 and 2,
rank 1 image 1. Every row of summary.csv and summary.md, every pose file and every image's pose.json equal
the one-process ones, digit for digit, except wall-clock time (the ``seconds`` column and the total).
"""

from __future__ import annotations

import csv
import json
import re
import shutil

import torch

from inerf.cli.main import main as inerf_main
from inerf.geometry.formats import write_poses

TIMING = {"seconds", "elapsed_s", "wall_s", "time_s"}


def _photos(base):
    from inerf.demo import DEMO_ROOT

    targets = json.loads((DEMO_ROOT / "targets.json").read_text())["targets"][:3]
    (base / "photos").mkdir()
    names = [f"view_{t['name'].split('_')[-1]}.png" for t in targets]
    for t, name in zip(targets, names, strict=True):
        shutil.copy(DEMO_ROOT / t["image"], base / "photos" / name)
    write_poses(
        base / "gt.json",
        torch.tensor([t["c2w"] for t in targets], dtype=torch.float64),
        "opencv",
        names=names,
    )
    k = {key: targets[0][key] for key in ("fx", "fy", "cx", "cy", "width", "height")}
    (base / "k.json").write_text(json.dumps(k))
    return DEMO_ROOT / "run", names


def _argv(base, run, out) -> list[str]:
    return [
        *("estimate", "--run", str(run), "--images", str(base / "photos" / "*.png")),
        *("--intrinsics", str(base / "k.json"), "--gt-poses", str(base / "gt.json"), "--init-from-gt"),
        *("--perturb-rot", "3", "--perturb-trans", "0.02", "--steps", "8", "--rays", "64"),
        *("--samples", "32", "--frames", "0", "--no-uncertainty", "--pose-format", "colmap,tum"),
        *("--device", "cpu", "--quiet", "--out", str(out)),
    ]


def _table(path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(path.open())]


def _without_timing(obj):
    if isinstance(obj, dict):
        return {k: _without_timing(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [_without_timing(v) for v in obj]
    return obj


def test_two_processes_write_the_one_process_tables(tmp_path, torchrun):
    run, names = _photos(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert inerf_main(_argv(tmp_path, run, one)) == 0
    finally:
        torch.set_num_threads(old)
    # `--` ends torchrun's options: it would read `--run` as an abbreviation of its own `--run-path`.
    proc = torchrun(["--", *_argv(tmp_path, run, two)])
    assert proc.stdout.count("inerf estimate: 3 images") == 1  # rank 0 speaks once

    rows1, rows2 = _table(one / "summary.csv"), _table(two / "summary.csv")
    assert len(rows1) == 3 and rows2 == rows1
    assert [r["folder"] for r in rows2] == [n[:-4] for n in sorted(names)]  # the input order
    # summary.md: the same lines once the seconds (a row's cell, the total line) are blanked out.
    md1, md2 = ((d / "summary.md").read_text() for d in (one, two))
    num = re.compile(r"\d+\.\d s\b|\| \d+\.\d \|")
    assert num.sub("T", md2) == num.sub("T", md1)
    for name in ("poses/colmap/images.txt", "poses/tum.txt"):
        assert (two / name).read_text() == (one / name).read_text(), name
    for r in rows1:
        p1, p2 = (json.loads((d / r["folder"] / "pose.json").read_text()) for d in (one, two))
        assert _without_timing(p2) == _without_timing(p1), r["folder"]
