"""``inerf`` entry point: dispatches to one module per verb.

Every verb module defines ``add_parser(subparsers)`` (which registers its options, each with help text)
and ``run(args) -> int``. User errors (:class:`inerf.errors.InerfError`) print one line and exit 2; a
mistyped option prints the usage of the verb it was typed after. Conventions shared by the verbs:
:mod:`inerf.cli.common`. CPU threads (``inerf --threads N VERB``): :mod:`inerf.device`. Several processes
(``torchrun --nproc_per_node N -m inerf.cli.main -- VERB ...``): :mod:`inerf.distributed`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from inerf import __version__
from inerf.distributed import launched_by_torchrun
from inerf.errors import InerfError

DISTRIBUTED_VERBS = frozenset({"train", "benchmark", "estimate", "pixelnerf train"})
"""Verbs that split their work over the processes of ``torchrun`` (:mod:`inerf.distributed`); any other verb
under torchrun would only repeat the same work in every process, writing the same files at once."""

# verb -> module under inerf.cli. Order is the order shown in --help.
VERBS = {
    "demo": "demo",
    "train": "train",
    "render": "render",
    "estimate": "estimate",
    "benchmark": "benchmark",
    "calibrate": "calibrate",
    "track": "track",
    "synth": "synth",
    "colmap": "colmap",
    "view": "view",
    "pixelnerf": "pixelnerf",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inerf",
        description="Estimate camera poses by inverting neural radiance fields (iNeRF); train and render "
        "NeRFs; generate datasets; run pixelNeRF.",
    )
    parser.add_argument("--version", action="version", version=f"inerf {__version__}")
    parser.add_argument(
        "--threads",
        dest="torch_threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for torch (default: the CPUs other processes leave free, measured at start; "
        "also INERF_THREADS=N; OMP_NUM_THREADS leaves torch's own choice)",
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
    _remember_parsers(parser)
    return parser


def _remember_parsers(parser: argparse.ArgumentParser) -> None:
    """Give every (sub-)command parser ``_parser`` = itself as a default: the innermost one that parsed
    wins, so :func:`main` reports a stray option with the usage of the verb it was typed after."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.set_defaults(_parser=sub)
                _remember_parsers(sub)


def main(argv: list[str] | None = None) -> int:
    from inerf.device import configure_cpu_threads, prepare_openmp_env

    # A new `inerf` process sets its CPU threads policy; a call from Python code that already imported torch
    # (tests, notebooks) keeps its own settings unless --threads is given.
    own_process = "torch" not in sys.modules
    if own_process:
        prepare_openmp_env()  # before the verbs import torch: libgomp reads it once, at load
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--"]:
        # `torchrun ... -m inerf.cli.main -- benchmark pose --run DIR`: torchrun's parser rejects `--run` (an
        # abbreviation of its --run-path) unless `--` ends its options; some Pythons pass the `--` on.
        argv = argv[1:]
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse would blame the top-level parser and print its usage
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        world = os.environ.get("WORLD_SIZE", "1") if launched_by_torchrun() else "1"
        verb = " ".join(filter(None, (args.verb, getattr(args, "pixelnerf_command", None))))
        if world != "1" and args.verb not in DISTRIBUTED_VERBS and verb not in DISTRIBUTED_VERBS:
            raise InerfError(
                f"does not run under torchrun (WORLD_SIZE={world}); run it as one process (verbs that split "
                f"their work over processes: {', '.join(sorted(DISTRIBUTED_VERBS))})"
            )
        if own_process or args.torch_threads is not None:
            configure_cpu_threads(args.torch_threads)
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
