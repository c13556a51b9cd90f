"""``inerf view``: a 3D web viewer (viser) of a run's training cameras, pose estimates and tracked paths.

    inerf view RUN [--estimate OUT_DIR ...] [--track OUT_DIR] [--port N] [--host H]

Serves a page (open the printed URL in a browser; it works on a headless machine, through an SSH tunnel for
instance) until Ctrl-C. What is read: :mod:`inerf.view`; what is drawn: :mod:`inerf.viz.viewer`.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from inerf.cli.common import HelpFormatter

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "view",
        help="3D web viewer of a run's cameras, pose estimates and tracked paths (viser)",
        description="Serve a web page showing, in the run's training frame: the training cameras (frustums with "
        "thumbnails), each estimate of --estimate folders (its image, ground truth, start and the path of "
        "every hypothesis during the solve) and a --track trajectory. Prints the URL; Ctrl-C stops. Needs "
        "viser: pip install 'inerf[view]'.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("run", metavar="RUN_DIR", type=Path, help="run directory written by `inerf train`")
    p.add_argument(
        "--estimate",
        metavar="OUT_DIR",
        type=Path,
        action="append",
        default=[],
        help="an `inerf estimate --out` folder (one image, or a --images batch); repeat for several",
    )
    p.add_argument("--track", metavar="OUT_DIR", type=Path, help="an `inerf track --out` folder")
    p.add_argument("--data", metavar="DIR", help="the run's dataset folder, if it moved (default: the run's)")
    p.add_argument(
        "--max-cameras", type=int, default=200, help="draw at most this many training cameras (evenly spread)"
    )
    p.add_argument("--port", type=int, default=8080, help="port to serve on (0: any free port)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (0.0.0.0 serves other machines too: anyone who reaches it sees the scene)",
    )
    p.set_defaults(func=run)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(args) -> int:
    from inerf.errors import InerfError
    from inerf.view import load_scene
    from inerf.viz.viewer import import_viser, serve

    if not 0 <= args.port <= 65535:
        raise InerfError(f"--port {args.port}: must be in 0..65535")
    if args.max_cameras < 0:
        raise InerfError(f"--max-cameras {args.max_cameras}: must be >= 0")
    if import_viser() is None:  # before reading anything: a missing extra is the first thing to say
        raise InerfError("inerf view needs viser: pip install 'inerf[view]' (or pip install viser)")
    scene = load_scene(
        args.run, estimates=args.estimate, track=args.track, data=args.data, max_cameras=args.max_cameras
    )
    for note in scene.notes:
        print(f"inerf view: note: {note}")
    try:
        server, names = serve(scene, args.host, args.port)
    except OSError as exc:
        raise InerfError(f"--host {args.host} --port {args.port}: cannot serve there ({exc})") from None
    host = "localhost" if args.host in ("127.0.0.1", "0.0.0.0", "::") else args.host
    parts = [
        f"{len(scene.training)} training cameras" if scene.training is not None else "no training cameras"
    ]
    parts += [f"{len(scene.estimates)} estimate(s)"] if scene.estimates else []
    parts += [f"a {len(scene.track)}-frame track"] if scene.track is not None else []
    print(f"inerf view: {', '.join(parts)} ({len(names)} scene nodes)")
    print(f"inerf view: serving http://{host}:{server.get_port()} (Ctrl-C to stop)", flush=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops it as cleanly as Ctrl-C
    try:
        while True:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    print("inerf view: stopped", flush=True)
    return 0
