"""``inerf train`` / ``inerf render`` through ``inerf.cli.main.main``: outputs, help, one-line errors."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest
import torch
from conftest import TINY_FIELD_ARGS

from inerf.cli.main import build_parser, main

TINY = [
    *TINY_FIELD_ARGS,
    "--n-coarse",
    "16",
    "--n-fine",
    "8",
    "--rays-per-batch",
    "64",
    "--device",
    "cpu",
    "--no-progress",
]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_help_describes_every_option():
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for verb in ("train", "render"):
        for action in subs.choices[verb]._actions:
            assert action.help and len(action.help) > 10, f"inerf {verb} {action.option_strings}: no help"
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0


def test_train_then_render(sphere_scene, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(sphere_scene), "--out", str(run), "--max-steps", "3", *TINY]) == 0
    assert "trained 3 steps" in capsys.readouterr().out
    # A second `train` into the same folder must not clobber the checkpoint.
    assert main(["train", "--data", str(sphere_scene), "--out", str(run), *TINY]) == 2
    assert "already holds a checkpoint (step 3); pass --resume" in _error_line(capsys)
    assert main(["train", "--out", str(run), "--resume", "--max-steps", "4", *TINY]) == 0
    assert "trained 4 steps" in capsys.readouterr().out
    out = tmp_path / "renders"
    assert (
        main(
            [
                "render",
                "--run",
                str(run),
                "--out",
                str(out),
                "--max-views",
                "2",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "2 test views at 32x32: PSNR" in capsys.readouterr().out
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["n_views"] == 2 and summary["step"] == 4 and summary["split"] == "test"
    assert [v["file"] for v in summary["views"]] == ["000_r_0.png", "001_r_1.png"]
    assert summary["mean"]["psnr"] == pytest.approx(sum(v["psnr"] for v in summary["views"]) / 2)
    assert 0 < summary["mean"]["ssim"] <= 1
    assert (out / "000_r_0.png").is_file() and (out / "test.gif").is_file()
    assert summary["videos"][0] == "test.gif"
    # A second render into the same folder must not replace the first one's files without --overwrite.
    again = ["render", "--run", str(run), "--out", str(out), "--max-views", "1", "--device", "cpu", "--quiet"]
    assert main(again) == 2
    assert (
        _error_line(capsys)
        == f"inerf render: error: {out / 'metrics.json'}: exists (pass --overwrite to replace it)"
    )
    assert json.loads((out / "metrics.json").read_text())["n_views"] == 2
    assert main([*again, "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text())["n_views"] == 1
    capsys.readouterr()
    # Default output folder, another split, no video, the dataset folder given explicitly.
    assert (
        main(
            [
                "render",
                "--run",
                str(run),
                "--split",
                "val",
                "--data",
                str(sphere_scene),
                "--video",
                "none",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads((run / "renders" / "val" / "metrics.json").read_text())["n_views"] == 2


def _broken_copy(sphere_scene, tmp_path):
    dst = tmp_path / "scene"
    shutil.copytree(sphere_scene, dst)
    return dst


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("missing_folder", "dataset folder not found"),
        ("malformed_json", "transforms_train.json: malformed JSON"),
        ("missing_image", "image not found"),
        ("escaping_path", "points outside the dataset folder"),
        ("unreadable_image", "unreadable image"),
    ],
)
def test_train_bad_dataset_one_line_errors(sphere_scene, tmp_path, capsys, breakage, expected):
    data = _broken_copy(sphere_scene, tmp_path)
    transforms = data / "transforms_train.json"
    if breakage == "missing_folder":
        data = tmp_path / "does_not_exist"
    elif breakage == "malformed_json":
        transforms.write_text(transforms.read_text()[:-10])
    elif breakage == "missing_image":
        (data / "train" / "r_2.png").unlink()
    elif breakage == "escaping_path":
        meta = json.loads(transforms.read_text())
        meta["frames"][1]["file_path"] = "../../../etc/passwd"
        transforms.write_text(json.dumps(meta))
    elif breakage == "unreadable_image":
        (data / "train" / "r_1.png").write_bytes(b"garbage")
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--max-steps", "1", *TINY])
    assert rc == 2
    line = _error_line(capsys)
    assert line.startswith("inerf train: error: ") and expected in line
    if breakage not in ("missing_folder",):
        assert str(data) in line  # names the offending file


def test_render_bad_run(tmp_path, capsys):
    assert main(["render", "--run", str(tmp_path / "nope"), "--device", "cpu"]) == 2
    assert "run directory not found" in _error_line(capsys)
    assert main(["render", "--run", str(tmp_path), "--device", "cpu"]) == 2
    assert "no checkpoint here" in _error_line(capsys)


def test_train_bad_options(sphere_scene, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "--data is required" in _error_line(capsys)
    if not torch.cuda.is_available():
        assert (
            main(
                [
                    "train",
                    "--data",
                    str(sphere_scene),
                    "--out",
                    str(tmp_path / "r"),
                    "--device",
                    "cuda",
                    "--no-progress",
                ]
            )
            == 2
        )
        assert "CUDA is not available" in _error_line(capsys)
    with pytest.raises(SystemExit):
        main(["train", "--data", str(sphere_scene), "--out", str(tmp_path / "r"), "--field", "width"])
