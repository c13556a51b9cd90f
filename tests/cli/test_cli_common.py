"""What every verb shares (:mod:`inerf.cli.common`): help texts, ``--version``, the verb's usage on a stray
option, ``--device``, ``--quiet``, input files, output folders, JSON files, refusing to overwrite."""

from __future__ import annotations

import argparse
import json
import re

import pytest
import torch

import inerf
from inerf.cli.common import check_out_dir, input_file, prepare_out_dir, refuse_existing, write_json
from inerf.cli.main import build_parser, main
from inerf.device import resolve_device
from inerf.errors import InerfError

VERBS = [
    ["demo"],
    ["train"],
    ["render"],
    ["estimate"],
    ["benchmark", "pose"],
    ["calibrate"],
    ["synth", "scene"],
    ["synth", "category"],
    ["pixelnerf", "video"],
    ["pixelnerf", "pose"],
    ["pixelnerf", "metrics"],
]


def _leaf_parser(path: list[str]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_help_states_each_default_once_and_never_none(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([*verb, "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text
    assert not re.search(r"\(default:[^()]*(\([^()]*\))?[^()]*\)\s*\(default:", text), text
    assert not re.search(r"[\[(]'[^']*', '", text), text  # no Python lists or tuples of strings
    parser = _leaf_parser(verb)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.required and action.option_strings:
            assert "default" not in formatter._get_help_string(action), action.option_strings


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"inerf {inerf.__version__}"


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--max-minuts", "1", "--out", "x"],
        ["benchmark", "pose", "--run", "r", "--out", "o", "--stepz", "3"],
        ["pixelnerf", "video", "-n", "srn_car", "-D", "d", "--fancy"],
    ],
)
def test_a_mistyped_option_prints_the_usage_of_its_verb(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    verb = " ".join(a for a in argv[:2] if not a.startswith("-") and a not in ("1", "x"))
    assert err.startswith(f"usage: inerf {verb}"), err
    assert (
        "unrecognized arguments: " + next(a for a in argv if a in ("--max-minuts", "--stepz", "--fancy"))
        in err
    )


@pytest.mark.parametrize("verb", [["train", "--out", "x"], ["render", "--run", "r"], ["estimate"], ["demo"]])
def test_device_names_the_accepted_values(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([*verb, "--device", "gpu"])
    assert e.value.code == 2
    assert "--device: unknown device 'gpu'; expected cpu, cuda, cuda:N or auto" in capsys.readouterr().err


def test_resolve_device():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InerfError, match="--device gpu: unknown device; expected cpu, cuda, cuda:N or auto"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(InerfError, match="--device cuda:1: CUDA is not available"):
            resolve_device("cuda:1")


@pytest.mark.parametrize("verb", [["train", "--out", "x"], ["render", "--run", "r"]])
def test_quiet_and_the_older_no_progress(verb):
    parser = build_parser()
    assert parser.parse_args([*verb, "--quiet"]).quiet
    assert parser.parse_args([*verb, "--no-progress"]).quiet
    assert not parser.parse_args(verb).quiet


def test_input_file(tmp_path):
    with pytest.raises(InerfError, match=r"^--image .*: is a directory, expected an image file$"):
        input_file(tmp_path, "--image", "an image file")
    with pytest.raises(InerfError, match=r"^--gt .*nope\.json: not found$"):
        input_file(tmp_path / "nope.json", "--gt")
    (tmp_path / "a.png").write_bytes(b"x")
    assert input_file(tmp_path / "a.png", "--image") == tmp_path / "a.png"


def test_a_directory_as_image_is_named(tmp_path, capsys):
    argv = ["estimate", "--run", "r", "--image", str(tmp_path), "--fx", "50", "--init", "i.json"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"inerf estimate: error: --image {tmp_path}: is a directory, " + ("expected an image file")
    )


def test_bad_values_are_refused_before_any_work(tmp_path, capsys):
    """Solver flags are checked before any file is read or the run is loaded (which would fail here)."""
    base = [
        "estimate",
        "--run",
        str(tmp_path / "no_run"),
        "--image",
        "no.png",
        "--fx",
        "5",
        "--init",
        "no.json",
    ]
    with pytest.raises(SystemExit):
        main([*base, "--lr", "nan", "--out", str(tmp_path / "o")])
    assert "argument --lr: expected a finite number, got 'nan'" in capsys.readouterr().err
    assert main([*base, "--rays", "0", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("inerf estimate: error: --rays 0: ")
    assert not (tmp_path / "o").exists()


def test_write_json_is_strict_and_atomic(tmp_path):
    path = write_json(tmp_path / "a.json", {"loss": float("nan"), "x": [1.5, float("inf")], "t": (1, 2)})
    text = path.read_text()
    assert json.loads(text) == {"loss": None, "x": [1.5, None], "t": [1, 2]} and "NaN" not in text
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left behind
    write_json(path, {"loss": 1.0})
    assert json.loads(path.read_text()) == {"loss": 1.0}


def test_output_folders(tmp_path):
    assert check_out_dir(tmp_path / "new", overwrite=False) == tmp_path / "new"
    assert not (tmp_path / "new").exists()  # checks only
    out = prepare_out_dir(tmp_path / "new" / "deeper", overwrite=False)
    assert out.is_dir()
    (out / "mine.txt").write_text("x")
    with pytest.raises(InerfError, match=r"--out .*deeper: directory is not empty \(pass --overwrite"):
        prepare_out_dir(out, overwrite=False)
    assert prepare_out_dir(out, overwrite=True) == out
    with pytest.raises(InerfError, match="exists and is not a directory"):
        check_out_dir(out / "mine.txt", overwrite=True)
    with pytest.raises(InerfError, match=r"mine\.txt: exists \(pass --overwrite to replace it\)"):
        refuse_existing([out / "other.txt", out / "mine.txt"], overwrite=False)
    refuse_existing([out / "mine.txt"], overwrite=True)


@pytest.mark.parametrize("name", ["metrics.json", "test.gif", "000_r_0.png"])
def test_render_refuses_an_earlier_render_before_loading_anything(tmp_path, capsys, name):
    out = tmp_path / "renders"
    out.mkdir()
    (out / name).write_text("mine")
    assert main(["render", "--run", str(tmp_path / "no_run"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"inerf render: error: {out / name}: exists (pass --overwrite to replace it)"
    assert (out / name).read_text() == "mine"
    # With --overwrite it goes on (and fails on the missing run instead).
    assert main(["render", "--run", str(tmp_path / "no_run"), "--out", str(out), "--overwrite"]) == 2
    assert "run directory not found" in capsys.readouterr().err
