"""The ``inerf synth`` command line, through the real entry point."""

from __future__ import annotations

import json

from synth_helpers import synth_scene_argv

from inerf.cli.main import main


def test_scene_command(tmp_path, capsys):
    out = tmp_path / "jenga"
    rc = main(synth_scene_argv(out, "--preview", "--seed", "7", size=24, views=(2, 1, 1)))
    assert rc == 0
    assert "wrote 4 views" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 7 and "--asset jenga" in meta["generator"]["command"]
    assert (out / "preview.png").is_file()


def test_category_command(tmp_path, capsys):
    rc = main(
        [
            "synth",
            "category",
            "--source",
            "random-urdfs",
            "--out",
            str(tmp_path / "blobs"),
            "--instances",
            "3",
            "--views",
            "1",
            "--size",
            "16",
            "--workers",
            "1",
            "--quiet",
        ]
    )
    assert rc == 0
    assert "wrote 3 instances" in capsys.readouterr().out
    assert (tmp_path / "blobs_train" / "meta.json").is_file()


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    assert main(["synth", "scene", "--asset", "no_such_asset_anywhere", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("inerf synth: error: unknown asset") and err.count("\n") == 1

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "data.txt").write_text("mine")
    assert main(["synth", "scene", "--asset", "duck", "--out", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err

    monkeypatch.setenv("INERF_SWEETHOME3D_DIR", str(tmp_path / "nowhere"))
    args = [
        "synth",
        "category",
        "--source",
        "sweethome3d",
        "--category",
        "chair",
        "--out",
        str(tmp_path / "c"),
    ]
    assert main(args) == 2
    assert "apt-get install sweethome3d-furniture" in capsys.readouterr().err


def test_bare_synth_prints_help(capsys):
    assert main(["synth"]) == 1
    assert "scene" in capsys.readouterr().out


def test_assets_listing(capsys):
    assert main(["synth", "assets"]) == 0
    listing = capsys.readouterr().out
    for name in ("duck", "soccerball", "jenga", "torus", "textured_sphere", "table"):
        assert name in listing
