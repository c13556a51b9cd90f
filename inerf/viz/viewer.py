"""Drawing a run and its pose estimates in a 3D web viewer (viser, nerfstudio's viewer; ``pip install
'inerf[view]'``). Reading them from a run's files is :mod:`inerf.view`'s job; this module takes arrays and, like
the rest of ``viz``, imports nothing else of inerf.

What is drawn, all in the run's training frame (where the field and every pose inerf solves live):

* the field's **training cameras**, as frustums with a thumbnail of their image (blue);
* each **estimate** (a folder written by ``inerf estimate``, or every image of an ``--images`` batch): the
  estimated camera with its target image (orange), the ground truth when known (green), the start (grey),
  and the **path of every hypothesis during the solve** (``trace.json``: the returned one red, the others
  grey, a pruned one ending where it was pruned);
* a **tracked trajectory** (``inerf track``'s ``trajectory.json``) as a line with a frustum every few frames
  (purple).

Frustums follow viser's camera convention, which is OpenCV's (x right, y down, looking along +z), inerf's
own: a c2w is drawn as it is, its rotation as a ``(w, x, y, z)`` quaternion. The scene's up direction is the
training cameras' mean "up" (minus their y axis), so the viewer's orbit controls turn about the scene's
vertical.

:func:`build_scene` puts a :class:`ViewerScene` on a viser server and returns the names of the nodes it
added; :func:`serve` starts the server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["COLOURS", "CameraSet", "EstimateView", "ViewerScene", "build_scene", "import_viser", "serve"]

COLOURS = {
    "training": (40, 110, 255),
    "estimate": (255, 140, 0),
    "gt": (30, 180, 60),
    "start": (130, 130, 130),
    "returned_path": (220, 30, 30),
    "other_path": (150, 150, 150),
    "track": (150, 60, 200),
}
"""RGB of each kind of node (the browser test looks for the training cameras' blue)."""


def import_viser():
    """``import viser``, or None when it is not installed (``pip install 'inerf[view]'``)."""
    try:
        import viser
    except ImportError:
        return None
    return viser


@dataclass
class CameraSet:
    """Cameras to draw: OpenCV c2w ``[N, 4, 4]`` (training frame), one pinhole size and focal, names and
    optional uint8 thumbnails ``[h, w, 3]`` (one per camera)."""

    c2w: np.ndarray
    fy: np.ndarray
    width: int
    height: int
    names: list[str]
    thumbnails: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.c2w)

    @property
    def fov(self) -> np.ndarray:
        """``[N]`` vertical field of view in radians (what viser's frustums take)."""
        return 2.0 * np.arctan(0.5 * self.height / self.fy)


@dataclass
class EstimateView:
    """One estimate: its pose, target thumbnail, ground truth, start and the hypotheses' paths.

    Attributes:
        name: the target's name.
        c2w: ``[4, 4]`` the estimate (OpenCV, training frame).
        fy, width, height: its camera.
        thumbnail: uint8 target image (reduced), or None.
        gt: ``[4, 4]`` ground truth or None; start: ``[4, 4]`` the returned hypothesis's start or None.
        paths: per hypothesis, ``[P, 3]`` camera centres along the solve.
        returned: index of the returned hypothesis in ``paths``.
    """

    name: str
    c2w: np.ndarray
    fy: float
    width: int
    height: int
    thumbnail: np.ndarray | None = None
    gt: np.ndarray | None = None
    start: np.ndarray | None = None
    paths: list[np.ndarray] = field(default_factory=list)
    returned: int = 0


@dataclass
class ViewerScene:
    """Everything :func:`build_scene` draws (see the module docstring)."""

    training: CameraSet | None = None
    estimates: list[EstimateView] = field(default_factory=list)
    track: np.ndarray | None = None
    """``[T, 4, 4]`` tracked c2w."""
    track_camera: tuple[float, int, int] | None = None
    """``(fy, width, height)`` of the tracked frames, when known."""
    notes: list[str] = field(default_factory=list)
    """What could not be shown, and why (printed by ``inerf view``)."""

    def extent(self) -> float:
        """A length of the scene: the spread of every camera centre drawn (at least 1e-3)."""
        centres = [c[:3, 3] for c in self._all_c2w()]
        if len(centres) < 2:
            return 1.0
        c = np.stack(centres)
        return max(float(np.linalg.norm(c - c.mean(0), axis=1).max()), 1e-3)

    def _all_c2w(self) -> list[np.ndarray]:
        out = list(self.training.c2w) if self.training is not None else []
        out += [e.c2w for e in self.estimates]
        out += list(self.track) if self.track is not None else []
        return out

    def up(self) -> np.ndarray:
        """The scene's up direction: minus the mean y axis of the training cameras (OpenCV: y points down;
        around a scene their tilts cancel), or of every camera drawn when there are none."""
        cams = (
            list(self.training.c2w) if self.training is not None and len(self.training) else self._all_c2w()
        )
        if not cams:
            return np.array([0.0, 0.0, 1.0])
        up = -np.mean([c[:3, 1] for c in cams], axis=0)
        n = np.linalg.norm(up)
        return up / n if n > 1e-6 else np.array([0.0, 0.0, 1.0])


def _wxyz(c2w: np.ndarray) -> np.ndarray:
    """The ``(w, x, y, z)`` quaternion of a c2w's rotation (viser's own conversion)."""
    from viser.transforms import SO3

    return SO3.from_matrix(np.asarray(c2w[:3, :3], dtype=np.float64)).wxyz


def _polyline(points: np.ndarray) -> np.ndarray:
    """``[P, 3]`` -> the ``[P - 1, 2, 3]`` segments viser draws."""
    return np.stack([points[:-1], points[1:]], axis=1)


def build_scene(server, scene: ViewerScene) -> list[str]:
    """Add ``scene`` to a viser server; return the names of the nodes added (``/training/...``,
    ``/estimates/...``, ``/track/...``)."""
    size = 0.1 * scene.extent()  # frustum depth: a fraction of the scene, whatever its units
    up = scene.up()
    server.scene.set_up_direction(tuple(float(v) for v in up))
    names: list[str] = []

    def frustum(name, c2w, fy, width, height, colour, image=None, scale=size):
        server.scene.add_camera_frustum(
            name,
            fov=float(2.0 * math.atan(0.5 * height / fy)),
            aspect=width / height,
            scale=scale,
            thickness=2.0,
            thickness_units="screen",  # lines stay visible however far the scene is zoomed out
            color=colour,
            image=image,
            wxyz=_wxyz(c2w),
            position=c2w[:3, 3],
        )
        names.append(name)

    if scene.training is not None:
        t = scene.training
        for i in range(len(t)):
            thumb = t.thumbnails[i] if t.thumbnails else None
            frustum(f"/training/{i:04d}", t.c2w[i], t.fy[i], t.width, t.height, COLOURS["training"], thumb)
    for j, e in enumerate(scene.estimates):
        base = f"/estimates/{j:03d}"
        frustum(
            f"{base}/estimate", e.c2w, e.fy, e.width, e.height, COLOURS["estimate"], e.thumbnail, size * 1.3
        )
        if e.gt is not None:
            frustum(f"{base}/gt", e.gt, e.fy, e.width, e.height, COLOURS["gt"])
        if e.start is not None:
            frustum(f"{base}/start", e.start, e.fy, e.width, e.height, COLOURS["start"], scale=size * 0.7)
        for k, path in enumerate(e.paths):
            if len(path) < 2:
                continue
            colour = COLOURS["returned_path"] if k == e.returned else COLOURS["other_path"]
            segments = _polyline(path)
            server.scene.add_line_segments(
                f"{base}/paths/{k:02d}", segments, colour, thickness=3.0, thickness_units="screen"
            )
            names.append(f"{base}/paths/{k:02d}")
    if scene.track is not None and len(scene.track):
        c2w = scene.track
        if len(c2w) > 1:
            server.scene.add_line_segments(
                "/track/path",
                _polyline(c2w[:, :3, 3]),
                COLOURS["track"],
                thickness=3.0,
                thickness_units="screen",
            )
            names.append("/track/path")
        fy, w, h = scene.track_camera or (3.0, 4, 3)  # unknown intrinsics: a generic 4:3 frustum
        for i in range(0, len(c2w), max(1, len(c2w) // 20)):
            frustum(f"/track/frames/{i:05d}", c2w[i], fy, w, h, COLOURS["track"], scale=size * 0.6)
    _add_gui(server, scene)
    return names


def _add_gui(server, scene: ViewerScene) -> None:
    """A short legend in the side panel."""
    lines = ["**inerf view** (training frame)"]
    if scene.training is not None:
        lines.append(f"- blue: {len(scene.training)} training cameras")
    if scene.estimates:
        lines.append(f"- orange: {len(scene.estimates)} estimate(s); green: ground truth; grey: start")
        lines.append("- red: the returned hypothesis's path during the solve; grey: the others")
    if scene.track is not None:
        lines.append(f"- purple: tracked trajectory ({len(scene.track)} frames)")
    server.gui.add_markdown("\n".join(lines))


def serve(scene: ViewerScene, host: str = "127.0.0.1", port: int = 8080):
    """Start a viser server on ``host:port`` (0: any free port) showing ``scene``; return ``(server, names)``.

    The caller stops it with ``server.stop()``."""
    import contextlib
    import io

    import viser

    # viser prints its own table of URLs; `inerf view` prints one line.
    with contextlib.redirect_stdout(io.StringIO()):
        server = viser.ViserServer(host=host, port=port, verbose=False)
    names = build_scene(server, scene)
    # Start the viewer's camera behind the cameras, looking at their centre.
    cams = scene._all_c2w()
    if cams:
        centre = np.mean([c[:3, 3] for c in cams], axis=0)
        server.initial_camera.look_at = centre
        server.initial_camera.up = scene.up()
        server.initial_camera.position = centre + 1.6 * scene.extent() * (0.5 * scene.up() + _side(scene))
    return server, names


def _side(scene: ViewerScene) -> np.ndarray:
    """A horizontal unit direction (perpendicular to up) for the viewer's first position."""
    up = scene.up()
    a = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    side = np.cross(up, a)
    return side / np.linalg.norm(side)
