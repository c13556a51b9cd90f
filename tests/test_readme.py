"""Every code block of README.md runs (issue 11): what a new user copies must work.

* ```` ```python ```` blocks run as written, in a subprocess, in an empty temporary folder: they may use only
  what a user has after ``make demo`` (the demo bundled in the package, :data:`inerf.demo.DEMO_ROOT`). When
  the prose right after a block says ``It prints `...` ``, the printed lines must match it, and a comment
  stating a start's errors (``# 10 deg / 0.05 off``) must match the printed start.
* ```` ```bash ```` blocks run with ``bash -e`` in an empty temporary folder whose ``.venv`` links to the
  virtual environment running the tests (so ``source .venv/bin/activate`` works), with its ``bin`` on the
  ``PATH``. ``make ...`` lines are left out: they are what runs these tests. Long budgets are cut by
  :data:`SUBSTITUTIONS`, each entry used by some block (checked, so the table cannot rot).
* A block that needs what CI does not have is marked on the line right before it with
  ``<!-- readme-test: skip (reason) -->``; it is reported as a skip with its line and reason, and
  :data:`EXPECTED_SKIPS` counts them, so a new skip is a decision, not an accident.

Each block is its own test case, so ``pytest -n 2`` (``make test``) runs them on both cores; the slowest
block takes about 40 s on 2 busy cores.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

SUBSTITUTIONS: list[tuple[str, str]] = [
    # README text -> what runs here (each cuts minutes to seconds on 2 CPU cores).
    ("--target all", "--target all --steps 20 --frames 0"),  # 5 targets x 300 steps -> x 20, no GIF frames
    ("--size 200 --preview", "--size 32 --train 12 --val 2 --test 4 --supersample 1 --preview"),
    ("--max-minutes 10", "--max-minutes 0.05"),  # 10 min of training -> 3 s
    ("--hypotheses 8 --preset robust", "--hypotheses 2 --preset robust --steps 20 --rays 256 --frames 2"),
    ("--images 5 --trials 5", "--images 1 --trials 1 --steps 10 --rays 256"),
    # structure from motion needs real texture: keep 128 px, but 16 views instead of 160 (2 to localise)
    (
        "--size 128 --environment room",
        "--size 128 --train 16 --val 1 --test 2 --supersample 1 --environment room",
    ),
    # global localisation: 16 upright candidates, 2 refined for 8 steps (instead of 1024 x 8 for 300)
    (
        "--global --pose-format",
        " ".join(
            [
                "--global --global-viewpoints 16 --global-rolls 1 --global-keep 2",
                "--steps 8 --rays 128 --frames 0",
            ]
            + ["--no-uncertainty --pose-format"]
        ),
    ),
]
"""``(README text, what the test runs instead)``: plain text replacements, applied in order."""

EXPECTED_SKIPS = 4
"""Blocks marked ``readme-test: skip``: the published pixelNeRF checkpoints and datasets are not in CI; the global
localisation and tracking examples need a trained run (their commands run at tiny size in tests/pose);
``inerf view`` serves until Ctrl-C (tests/viz/test_viewer.py runs it in headless Chromium)."""

SKIP_MARK = re.compile(r"^<!--\s*readme-test:\s*skip\s*\((?P<reason>.+)\)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")


@dataclass
class Block:
    """One fenced code block of the README."""

    lang: str
    code: str
    line: int
    """1-based line of the opening fence."""
    skip: str | None
    """The reason of a ``readme-test: skip`` mark on the line before, else None."""
    after: str
    """The prose paragraph after the block (where ``It prints `...` `` is looked for)."""

    @property
    def name(self) -> str:
        return f"{self.lang}@L{self.line}"


def readme_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        before = next((ln.strip() for ln in reversed(lines[:start]) if ln.strip()), "")
        mark = SKIP_MARK.match(before)
        after = []
        for ln in lines[i + 1 :]:
            if not ln.strip() and after:
                break
            if ln.strip():
                after.append(ln)
        blocks.append(
            Block(
                m["lang"],
                "\n".join(body) + "\n",
                start + 1,
                mark["reason"] if mark else None,
                " ".join(after),
            )
        )
        i += 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
RUNNABLE = [b for b in BLOCKS if b.lang in ("python", "bash")]


def shell_script(code: str) -> tuple[str, list[str]]:
    """The commands of a bash block as run here: continuation lines joined, ``make`` lines dropped,
    :data:`SUBSTITUTIONS` applied. Returns ``(script, dropped lines)``."""
    joined = code.replace("\\\n", " ")
    kept, dropped = [], []
    for line in joined.splitlines():
        command = " ".join(line.split("#", 1)[0].split())
        if not command:
            continue
        if command.split()[0] == "make":
            dropped.append(command)
            continue
        for old, new in SUBSTITUTIONS:
            command = command.replace(old, new)
        kept.append(command)
    return "\n".join(kept) + "\n", dropped


def _env(tmp_path: Path) -> dict:
    venv_bin = Path(sys.executable).parent
    if not (venv_bin / "inerf").is_file():
        pytest.skip(f"the inerf command is not installed next to {sys.executable} (pip install -e .)")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    env = dict(os.environ)
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # this checkout, even if the environment has another one installed
    env["MPLBACKEND"] = "Agg"
    if os.environ.get("PYTEST_XDIST_WORKER"):
        env["OMP_NUM_THREADS"] = "1"  # one thread per pytest worker, as in tests/conftest.py
    return env


NUMBER = re.compile(r"-?\d+\.\d+|-?\d+")

EXACT_LABELS = ("start",)
"""Printed lines that are a pure function of the seed (a start pose's errors): the README must state them to
the digit. Other lines (a solve's final errors) vary with the CPU's float rounding."""

STATED_START = re.compile(r"#.*?\b(?P<rot>\d+(?:\.\d+)?) deg / (?P<trans>\d+(?:\.\d+)?) off\b")
"""A code comment stating a start's errors: ``# 10 deg / 0.05 off``."""


def _numbers(line: str) -> list[float]:
    return [float(x) for x in NUMBER.findall(line)]


def check_stated_output(block: Block, stdout: str) -> None:
    """The lines the README says the block prints (``It prints `a` and `b` ``) are printed: the words as
    stated, the numbers within 30 % or 0.01 (the final pose of a solve varies with the CPU's float rounding),
    and lines labelled as in :data:`EXACT_LABELS` to the digit."""
    if not block.after.startswith("It prints"):
        return
    printed, checked = stdout.splitlines(), 0
    sentence = re.split(r"\.\s", block.after, maxsplit=1)[0]  # "It prints `a: 1.0` and `b: 2`." only
    for stated in re.findall(r"`(\w+:[^`]*)`", sentence):
        label = stated.split(":", 1)[0]
        got = next((ln for ln in printed if ln.startswith(label + ":")), None)
        assert got is not None, f"README.md line {block.line}: says it prints {stated!r}; printed:\n{stdout}"
        if label in EXACT_LABELS:
            assert got == stated, f"README says {stated!r}, printed {got!r}"
        assert NUMBER.sub("#", got) == NUMBER.sub("#", stated), f"README says {stated!r}, printed {got!r}"
        for want, have in zip(_numbers(stated), _numbers(got), strict=True):
            assert have == pytest.approx(want, rel=0.3, abs=0.01), f"README says {stated!r}, printed {got!r}"
        checked += 1
    assert checked, f"README.md line {block.line}: 'It prints' names no `label: value` line"


def check_stated_starts(block: Block, stdout: str) -> None:
    """A code comment that states a start's errors (``# 10 deg / 0.05 off``) agrees with the ``start:`` line
    the block prints (rotation in degrees, translation), to the comment's digits."""
    for m in STATED_START.finditer(block.code):
        got = next((ln for ln in stdout.splitlines() if ln.startswith("start:")), None)
        assert got is not None, f"README.md line {block.line}: {m[0]!r} but no 'start:' line is printed"
        rot, trans = _numbers(got)[:2]
        for want, have in ((m["rot"], rot), (m["trans"], trans)):
            digits = len(want.split(".")[1]) if "." in want else 0
            assert round(have, digits) == float(want), (
                f"README.md line {block.line}: {m[0]!r}, printed {got!r}"
            )


def _run(cmd: list[str], tmp_path: Path, block: Block) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        pytest.fail(f"README.md line {block.line}: {shlex.join(cmd)} exited {proc.returncode}\n{tail}")
    return proc


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.name for b in RUNNABLE])
def test_readme_block_runs(block: Block, tmp_path):
    if block.skip:
        pytest.skip(f"README.md line {block.line}: {block.skip}")
    if block.lang == "python":
        script = tmp_path / "block.py"
        script.write_text(block.code, encoding="utf-8")
        proc = _run([sys.executable, str(script)], tmp_path, block)
        check_stated_output(block, proc.stdout)
        check_stated_starts(block, proc.stdout)
        return
    script, _ = shell_script(block.code)
    if not script.strip():
        pytest.skip(f"README.md line {block.line}: only make lines (they run these tests)")
    _run(["bash", "-e", "-c", script], tmp_path, block)


def test_the_readme_has_the_blocks_this_test_expects():
    """Every block is python or bash, the skips are the counted ones, and every substitution is used."""
    assert {b.lang for b in BLOCKS} <= {"python", "bash"}, [b.name for b in BLOCKS]
    assert sum(b.lang == "python" for b in BLOCKS) >= 1
    skipped = [f"{b.name} ({b.skip})" for b in BLOCKS if b.skip]
    assert len(skipped) == EXPECTED_SKIPS, skipped
    shell = "\n".join(b.code.replace("\\\n", " ") for b in BLOCKS if b.lang == "bash" and not b.skip)
    unused = [old for old, _ in SUBSTITUTIONS if old not in shell]
    assert not unused, f"SUBSTITUTIONS entries no README block uses: {unused}"


def test_make_lines_are_dropped_and_substitutions_applied():
    script, dropped = shell_script(
        "make demo     # creates .venv\ninerf train --data d --out r \\\n    --max-minutes 10\n"
    )
    assert dropped == ["make demo"]
    assert script == "inerf train --data d --out r --max-minutes 0.05\n"


def test_stated_numbers_are_checked():
    """The checks above catch what issue 11 found: a comment saying 0.05 off over a start 0.825 off, and a
    start stated as other numbers than printed."""
    block = Block(
        "python", "c2w0 = f(gt)  # 11.5 deg / 0.05 off\n", 1, None, "It prints `start: 11.5 deg, 0.05`"
    )
    with pytest.raises(AssertionError):
        check_stated_starts(block, "start: 11.462 deg, 0.8250\n")
    with pytest.raises(AssertionError):
        check_stated_output(block, "start: 11.462 deg, 0.8250\n")
    check_stated_starts(block, "start: 11.500 deg, 0.0500\n")
    ok = Block(
        "python", "", 1, None, "It prints `start: 11.500 deg, 0.0500` and `final: 0.10 deg, success True`"
    )
    check_stated_output(ok, "start: 11.500 deg, 0.0500\nfinal: 0.12 deg, success True\n")
    with pytest.raises(AssertionError):  # the words count too
        check_stated_output(ok, "start: 11.500 deg, 0.0500\nfinal: 0.12 deg, success False\n")


def test_stated_starts_and_thresholds_are_the_code_s():
    """What the README says about starts and success is what the code does (issue 11): the demo's start, the
    protocol's paper starts, the one success threshold set, and the credit file's name."""
    from inerf.demo import DEMO_PERTURBATION, DEMO_ROOT
    from inerf.pose.perturb import PAPER_PERTURBATION, SUCCESS

    text = " ".join(README.read_text(encoding="utf-8").split())  # line breaks do not matter
    demo = DEMO_PERTURBATION
    assert (demo.sampling, demo.pivot) == ("exact", "camera")
    assert f"start exactly {demo.rot_deg:g} degrees / {demo.trans:g} off" in text
    assert f"--perturb-rot {demo.rot_deg:g} --perturb-trans {demo.trans:g}" in text  # the tour, as the demo
    paper = PAPER_PERTURBATION
    assert (paper.sampling, paper.pivot) == ("uniform", "origin")
    assert (
        f"angles uniform in +-{paper.rot_deg:g} degrees about the world origin, offsets uniform in +-{paper.trans:g} per axis"
        in text
    )
    assert (
        f"below {SUCCESS.rot_deg:g} degrees and translation error below {SUCCESS.trans:g} scene units" in text
    )
    assert "CREDITS" not in text and "`ATTRIBUTION.txt`" in text and (DEMO_ROOT / "ATTRIBUTION.txt").is_file()
