"""``inerf train``: fit a NeRF (or grid field) to a posed dataset and write a run directory.

Its flags are :class:`inerf.train.TrainConfig`'s fields (help: their docstrings), see
:mod:`inerf.cli.config_args`. Under ``torchrun --nproc_per_node N -m inerf.cli.main -- train ...`` the N processes
train one model with data parallelism (:mod:`inerf.distributed`); rank 0 prints and writes the run.
"""

from __future__ import annotations

import argparse
import json

from inerf import distributed
from inerf.cli.common import HelpFormatter, add_quiet, device_arg
from inerf.cli.config_args import ConfigFlags, attribute_docs
from inerf.errors import InerfError
from inerf.fields.factory import FIELD_KINDS
from inerf.train.trainer import PRECISIONS, TrainConfig, train

TRAIN_FLAGS = ConfigFlags(
    TrainConfig,
    key="train",
    skip={"field", "progress"},  # KEY=VALUE pairs and --quiet, added by hand
    required={"out"},
    choices={"model": FIELD_KINDS, "background": ("white", "black"), "precision": PRECISIONS},
    types={"device": device_arg},
    metavars={"data": "DIR", "out": "RUN_DIR"},
)
"""One flag per :class:`TrainConfig` field (``--max-steps``, ``--lr``, ``--n-coarse``, ...)."""


def _field_override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value  # a bare string
    return key.strip(), parsed


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train a NeRF on a posed dataset",
        description="Train a radiance field (NeRF MLP or grid) on a Blender or LLFF dataset. Writes RUN_DIR/"
        "config.json, model.safetensors (keys coarse.*/fine.*), optimizer.pt and train_log.jsonl; "
        "checkpoints are written atomically, so a run can be stopped and --resume'd at any time. Runs on several "
        "GPUs under torchrun (torchrun --nproc_per_node N -m inerf.cli.main -- train ...; --rays-per-batch is then "
        "the global batch), and resumes on any number of them.",
        formatter_class=HelpFormatter,
    )
    TRAIN_FLAGS.add_to(p)
    p.add_argument(
        "--field",
        metavar="KEY=VALUE",
        type=_field_override,
        action="append",
        default=[],
        help=attribute_docs(TrainConfig)["field"] + " Repeatable; VALUE is JSON (e.g. --field width=64 "
        "--field depth=4).",
    )
    add_quiet(p, no_progress_alias=True)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    config = TRAIN_FLAGS.build(TrainConfig(field=dict(args.field), progress=not args.quiet), args)
    if not config.resume and config.data is None:
        raise InerfError("--data is required (the dataset folder to train on)")
    result = train(config)
    if not distributed.is_main():  # under torchrun, rank 0 speaks for the run
        return 0

    def db(v):
        return "n/a" if v is None else f"{v:.2f} dB"

    print(
        f"trained {result.step} steps ({result.elapsed_s / 60:.1f} min of training); validation PSNR "
        f"{db(result.val_psnr_start)} -> {db(result.val_psnr)}; run: {result.run_dir}"
    )
    return 0
