"""``inerf train``: fit a NeRF (or grid field) to a posed dataset and write a run directory."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import json
import textwrap

from inerf.errors import InerfError
from inerf.fields.factory import FIELD_KINDS
from inerf.train.trainer import PRECISIONS, TrainConfig, train


def attribute_docs(cls) -> dict[str, str]:
    """The docstrings written under a dataclass's attributes (our configs' documentation), by name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in itertools.pairwise(body):
        is_attr = isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        value = getattr(nxt, "value", None)
        is_doc = (
            isinstance(nxt, ast.Expr) and isinstance(value, ast.Constant) and isinstance(value.value, str)
        )
        if is_attr and is_doc:
            docs[node.target.id] = " ".join(value.value.split())
    return docs


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" where a default is worth showing (not None/flags, not already stated)."""

    def _get_help_string(self, action):
        text = action.help or ""
        trivial = action.default in (None, True, False, [], argparse.SUPPRESS)
        if "default" not in text.lower() and not trivial and action.option_strings:
            text += " (default: %(default)s)"
        return text


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
    doc = attribute_docs(TrainConfig)
    d = TrainConfig()
    p = subparsers.add_parser(
        "train",
        help="train a NeRF on a posed dataset",
        description="Train a radiance field (NeRF MLP or grid) on a Blender or LLFF dataset. Writes RUN_DIR/"
        "config.json, model.safetensors (keys coarse.*/fine.*), optimizer.pt and train_log.jsonl; "
        "checkpoints are written atomically, so a run can be stopped and --resume'd at any time.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--data", metavar="DIR", help=doc["data"])
    p.add_argument("--out", metavar="RUN_DIR", required=True, help=doc["out"])
    p.add_argument("--model", choices=FIELD_KINDS, default=d.model, help=doc["model"])
    p.add_argument(
        "--field",
        metavar="KEY=VALUE",
        type=_field_override,
        action="append",
        default=[],
        help=doc["field"] + " Repeatable; VALUE is JSON (e.g. --field width=64 --field depth=4).",
    )
    p.add_argument("--max-steps", type=int, default=d.max_steps, help=doc["max_steps"])
    p.add_argument("--max-minutes", type=float, default=d.max_minutes, help=doc["max_minutes"])
    p.add_argument("--lr", type=float, default=None, help=doc["lr"])
    p.add_argument("--lr-final", type=float, default=None, help=doc["lr_final"])
    p.add_argument("--rays-per-batch", type=int, default=None, help=doc["rays_per_batch"])
    p.add_argument("--n-coarse", type=int, default=d.n_coarse, help=doc["n_coarse"])
    p.add_argument("--n-fine", type=int, default=d.n_fine, help=doc["n_fine"])
    p.add_argument("--image-scale", type=float, default=d.image_scale, help=doc["image_scale"])
    p.add_argument("--background", choices=("white", "black"), default=d.background, help=doc["background"])
    p.add_argument("--near", type=float, default=None, help=doc["near"])
    p.add_argument("--far", type=float, default=None, help=doc["far"])
    p.add_argument("--val-every", type=int, default=d.val_every, help=doc["val_every"])
    p.add_argument("--val-view", type=int, default=d.val_view, help=doc["val_view"])
    p.add_argument("--save-every", type=int, default=d.save_every, help=doc["save_every"])
    p.add_argument("--log-every", type=int, default=d.log_every, help=doc["log_every"])
    p.add_argument("--precrop-steps", type=int, default=d.precrop_steps, help=doc["precrop_steps"])
    p.add_argument("--precrop-frac", type=float, default=d.precrop_frac, help=doc["precrop_frac"])
    p.add_argument("--chunk", type=int, default=d.chunk, help=doc["chunk"])
    p.add_argument("--seed", type=int, default=d.seed, help=doc["seed"])
    p.add_argument("--device", default=d.device, help=doc["device"])
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision, help=doc["precision"])
    p.add_argument("--resume", action="store_true", help=doc["resume"])
    p.add_argument("--overwrite", action="store_true", help=doc["overwrite"])
    p.add_argument("--no-progress", dest="progress", action="store_false", help="Do not show a progress bar.")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    kw = {k: v for k, v in vars(args).items() if k in names}
    kw["field"] = dict(args.field)
    if not args.resume and args.data is None:
        raise InerfError("--data is required (the dataset folder to train on)")
    result = train(TrainConfig(**kw))

    def db(v):
        return "n/a" if v is None else f"{v:.2f} dB"

    print(
        f"trained {result.step} steps ({result.elapsed_s / 60:.1f} min of training); validation PSNR "
        f"{db(result.val_psnr_start)} -> {db(result.val_psnr)}; run: {result.run_dir}"
    )
    return 0
