"""Flags derived from config dataclasses (:mod:`inerf.cli.config_args`) and the solver's presets as bases."""

from __future__ import annotations

import argparse
import math
import shlex
from dataclasses import dataclass, field
from typing import Literal

import pytest

from inerf.cli.config_args import ConfigFlags, attribute_docs, finite_float
from inerf.cli.estimate import POSE_FLAGS, add_solver_arguments, pose_config_from_args
from inerf.errors import InerfError
from inerf.pose.config import FAST, PAPER, ROBUST, AdamConfig, LMConfig, PoseConfig


# ----------------------------------------------------------------------------------------- a toy config
@dataclass
class Inner:
    """Inner settings."""

    rate: float = 0.5
    """How fast, in ``[0, 1]``; see ``size``."""
    size: int = 3
    """How big."""

    def __post_init__(self):
        if not 0 <= self.rate <= 1:
            raise ValueError(f"rate must be in [0, 1], got {self.rate}")


@dataclass
class Outer:
    """Outer settings."""

    mode: Literal["a", "b"] = "a"
    """Which mode."""
    steps: int = 10
    """Steps; at least ``inner.size``."""
    fancy: bool = True
    """Be fancy."""
    plain: bool = False
    """Be plain."""
    marks: tuple[int, ...] = ()
    """Marked steps."""
    inner: Inner = field(default_factory=Inner)
    """The inner part."""

    def __post_init__(self):
        if self.steps < self.inner.size:
            raise ValueError(f"steps must be >= inner.size, got {self.steps} < {self.inner.size}")


TOY = ConfigFlags(Outer, key="toy", names={"inner.rate": "--rate"}, aliases={"inner.rate": ("--r",)})


def toy_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(exit_on_error=False)
    TOY.add_to(p, title="toy")
    return p


def test_flags_follow_fields_types_and_docs():
    p = toy_parser()
    args = p.parse_args(
        ["--mode", "b", "--r", "0.25", "--inner-size", "2", "--no-fancy", "--plain", "--marks", "3,1"]
    )
    cfg = TOY.build(Outer(), args)
    assert cfg == Outer(mode="b", fancy=False, plain=True, marks=(3, 1), inner=Inner(rate=0.25, size=2))
    assert TOY.flag("inner.size") == "--inner-size" and TOY.flag("inner.rate") == "--rate"
    text = p.format_help()
    assert "Which mode. (default: a)" in " ".join(text.split())
    # Docstring literals naming fields are written as their flags.
    assert "see --inner-size" in " ".join(text.split()) and "--no-fancy" in text
    with pytest.raises(argparse.ArgumentError):
        p.parse_args(["--mode", "c"])  # a Literal is a choice


def test_only_typed_flags_replace_the_base():
    args = toy_parser().parse_args(["--steps", "20"])
    base = Outer(mode="b", inner=Inner(rate=0.9))
    assert TOY.build(base, args) == Outer(mode="b", steps=20, inner=Inner(rate=0.9))
    assert TOY.build(base, toy_parser().parse_args([])) is base


def test_errors_name_the_typed_flag_and_spell_fields_as_flags():
    with pytest.raises(InerfError) as e:
        TOY.build(Outer(), toy_parser().parse_args(["--rate", "2"]))
    assert str(e.value) == "--rate 2: --rate must be in [0, 1], got 2.0"
    # A cross-field check blames the flag whose value breaks it, not every flag typed.
    with pytest.raises(InerfError) as e:
        TOY.build(Outer(), toy_parser().parse_args(["--mode", "b", "--inner-size", "30"]))
    assert str(e.value) == "--inner-size 30: --steps must be >= --inner-size, got 10 < 30"


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "x"])
def test_floats_must_be_finite(text):
    with pytest.raises(argparse.ArgumentTypeError):
        finite_float(text)
    with pytest.raises(argparse.ArgumentError, match="--rate"):
        toy_parser().parse_args(["--rate", text])


def test_attribute_docs_of_classes_and_modules():
    import inerf.pose.config as module

    assert attribute_docs(Inner)["size"] == "How big."
    assert attribute_docs(module)["FAST"].startswith("A quicker")


# ------------------------------------------------------------------------------------- the pose solver
def solver(*argv: str, strategy: str = "random") -> PoseConfig:
    p = argparse.ArgumentParser()
    add_solver_arguments(p)
    return pose_config_from_args(p.parse_args(list(argv)), strategy)


def test_presets_without_flags_are_the_presets():
    assert solver() == PAPER
    assert solver("--preset", "robust") == ROBUST
    assert solver("--preset", "fast") == FAST


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        # The bug: options equal to the paper's default were dropped, so robust kept its own values.
        (["--blur", "0"], {"blur.sigma": 0.0, "optimizer": "adam+lm", "lm.steps": 50}),
        (["--optimizer", "adam"], {"optimizer": "adam", "blur.sigma": 8.0}),
        (["--lr", "0.01", "--rays", "2048"], {"adam.lr": 0.01, "n_rays": 2048, "blur.sigma": 8.0}),
        (["--blur-sigma", "4", "--lm-steps", "20"], {"blur.sigma": 4.0, "lm.steps": 20, "blur.steps": 100}),
    ],
)
def test_typed_flags_override_the_preset_even_at_paper_values(flags, expected):
    cfg = solver("--preset", "robust", *flags)
    for path, value in expected.items():
        obj = cfg
        for name in path.split("."):
            obj = getattr(obj, name)
        assert obj == value, path


def test_steps_rescale_a_preset():
    assert solver("--preset", "robust", "--steps", "40") == ROBUST.with_steps(40)
    cfg = solver("--preset", "robust", "--steps", "100")
    assert (cfg.steps, cfg.blur.steps, cfg.lm.steps) == (100, 33, 17)
    assert cfg.blur.steps <= cfg.steps - cfg.lm.steps  # the blur is gone before the LM phase starts
    # Flags typed with --steps are taken as they are, not rescaled.
    cfg = solver("--preset", "robust", "--steps", "100", "--lm-steps", "30", "--blur-steps", "50")
    assert (cfg.lm.steps, cfg.blur.steps, cfg.adam.lr_decay_steps) == (30, 50, 33)
    # The paper's solver has no phases: --steps leaves its decay per 100 steps (recorded commands reproduce).
    assert solver("--steps", "600") == PoseConfig(steps=600)


def test_every_older_flag_still_works():
    cfg = solver(
        *shlex.split(
            "--steps 60 --optimizer adam+lm --lm-steps 15 --lm-average 3 --lm-decay 0.5 --lm-damping 0.1 --lr 0.02 "
            "--trans-lr-scale 2 --lr-decay 0.9 --lr-decay-steps 30 --rays 256 --blur 3 --blur-steps 30 --blur-rays 2 "
            "--loss huber --huber-delta 0.2 --coarse-loss-weight 0.5 --detector orb --max-keypoints 9 "
            "--dilate-kernel 3 --dilate-iters 2 --mask-dilate 4 --center-fraction 0.4 --prune-steps 20,10 "
            "--stop-tol 1e-4 --stop-window 5 --ray-chunk 128"
        ),
        strategy="interest_region",
    )
    assert cfg == PoseConfig(
        steps=60,
        optimizer="adam+lm",
        adam=AdamConfig(lr=0.02, trans_lr_scale=2, lr_decay=0.9, lr_decay_steps=30),
        lm=LMConfig(steps=15, damping=0.1, average=3, decay=0.5),
        n_rays=256,
        sampling=cfg.sampling,
        loss="huber",
        huber_delta=0.2,
        blur=cfg.blur,
        coarse_loss_weight=0.5,
        prune_steps=(10, 20),
        stop=cfg.stop,
        ray_chunk=128,
    )
    s = cfg.sampling
    assert (s.strategy, s.detector, s.max_keypoints, s.dilate_kernel, s.dilate_iterations) == (
        "interest_region",
        "orb",
        9,
        3,
        2,
    )
    assert (s.mask_dilate, s.center_fraction) == (4, 0.4)
    assert (cfg.blur.sigma, cfg.blur.steps, cfg.blur.rays, cfg.stop.tol, cfg.stop.window) == (
        3,
        30,
        2,
        1e-4,
        5,
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rays", "0"], "--rays 0: --steps must be >= 0, --rays, --ray-chunk"),
        (["--optimizer", "adam+lm"], "--optimizer adam+lm: adam+lm needs 0 < --lm-steps <= --steps"),
        (["--lm-damping", "0"], "--lm-damping 0: --lm-damping must be finite and > 0"),
        (["--stop-window", "0"], "--stop-window 0: --stop-window must be >= 1"),
        (["--center-fraction", "2"], "--center-fraction 2: --center-fraction must be in (0, 1]"),
        (["--lr-decay", "2"], "--lr-decay 2: --lr-decay must be in (0, 1]"),
        (["--preset", "robust", "--steps", "0"], "--steps 0: adam+lm needs 0 < --lm-steps"),
    ],
)
def test_solver_errors_name_the_flag_and_value(flags, message):
    with pytest.raises(InerfError) as e:
        solver(*flags)
    assert str(e.value).startswith(message), str(e.value)
    assert "n_rays" not in str(e.value) and "lm_steps" not in str(e.value)


def test_no_internal_field_name_is_left_in_solver_messages():
    """Every field name a config message could contain is spelled as a flag."""
    for path in POSE_FLAGS._fields:
        dotted = ".".join(path)
        assert POSE_FLAGS.spell_fields(f"x {dotted} y").startswith("x --"), dotted
        if len(path) == 1:
            assert POSE_FLAGS.spell_fields(f"{path[0]} must").startswith("--"), path
    assert not math.isnan(solver("--lr", "1e-3").adam.lr)
