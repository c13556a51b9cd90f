"""``make demo`` twice in a row: without ``--out`` the demo replaces its own previous run, and nothing else."""

from __future__ import annotations

import json

from inerf.cli.main import main

QUICK = ["demo", "--steps", "2", "--frames", "0", "--quiet", "--device", "cpu"]


def test_the_demo_runs_twice_in_the_default_folder(tmp_path, monkeypatch, capsys, one_thread):
    monkeypatch.chdir(tmp_path)
    assert main(QUICK) == 0
    out = tmp_path / "outputs" / "demo"
    first = json.loads((out / "demo.json").read_text())
    (out / "notes.txt").write_text("mine")  # the user's: must survive
    capsys.readouterr()
    assert main([*QUICK, "--seed", "1"]) == 0
    assert f"replacing the previous demo run in {out.relative_to(tmp_path)}/" in capsys.readouterr().out
    second = json.loads((out / "demo.json").read_text())
    assert second["seed"] == 1 and first["seed"] == 0
    assert (out / "notes.txt").read_text() == "mine"
    # A folder given with --out is never replaced without --overwrite.
    assert main([*QUICK, "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_a_default_folder_not_written_by_the_demo_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "outputs" / "demo"
    out.mkdir(parents=True)
    (out / "pose.json").write_text("{}")
    assert main(QUICK) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds files that inerf demo did not write (pass --overwrite" in err[0]
    assert (out / "pose.json").read_text() == "{}"
