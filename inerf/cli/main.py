"""``inerf`` entry point: dispatches to one module per verb.

Every verb module defines ``add_parser(subparsers)`` (which registers its options, each with help text)
and ``run(args) -> int``. User errors (:class:`inerf.errors.InerfError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from inerf.errors import InerfError

# verb -> module under inerf.cli. Order is the order shown in --help.
VERBS = {
    "demo": "demo",
    "train": "train",
    "render": "render",
    "estimate": "estimate",
    "benchmark": "benchmark",
    "synth": "synth",
    "colmap": "colmap",
    "pixelnerf": "pixelnerf",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inerf",
        description="Estimate camera poses by inverting neural radiance fields (iNeRF); train and render "
        "NeRFs; generate datasets; run pixelNeRF.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for module in VERBS.values():
        try:
            mod = importlib.import_module(f"inerf.cli.{module}")
        except ModuleNotFoundError as exc:  # a verb whose module is not built yet
            if exc.name != f"inerf.cli.{module}":
                raise
            continue
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except InerfError as exc:
        print(f"inerf {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = (
            " (training steps done so far are checkpointed: continue with --resume)"
            if args.verb == "train"
            else ""
        )
        print(f"inerf {args.verb}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
