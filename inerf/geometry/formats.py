"""Camera poses in the formats other tools read and write, to and from the internal OpenCV c2w.

Inside inerf a pose is always an OpenCV-axes camera-to-world ``c2w [4, 4]``
(:mod:`inerf.geometry.conventions`). These are the only functions that write or read other conventions;
each names its format's direction and camera axes:

============  =====================================================  ===========  =========
format        one pose is                                            camera axes  direction
============  =====================================================  ===========  =========
opencv        4x4 matrix (JSON)                                      OpenCV       c2w
opengl        4x4 matrix (JSON)                                      OpenGL       c2w
nerfstudio    ``transform_matrix`` of a transforms.json frame;        OpenGL       c2w
              ``camera_to_world`` (16 numbers, row-major) of a
              camera-path entry, with ``fov`` (vertical, degrees)
colmap        images.txt line ``ID QW QX QY QZ TX TY TZ CAM NAME``   OpenCV       w2c
tum           ``timestamp tx ty tz qx qy qz qw``                     OpenCV       c2w
kitti         12 numbers, the 3x4 ``[R | t]`` row-major              OpenCV       c2w
============  =====================================================  ===========  =========

OpenCV axes: x right, y down, the camera looks along +z; OpenGL axes: x right, y up, looks along -z.
Quaternions are Hamilton, unit, and written with ``w >= 0`` (q and -q are the same rotation). TUM and KITTI
do not fix camera axes themselves; their datasets use the camera's optical frame, which is OpenCV's, and
so do we. COLMAP's pixel centres (+0.5) and camera axes are ours, so its intrinsics are written as is.

Readers return ``torch.float64`` tensors; writers accept torch tensors or numpy arrays. File problems
raise :class:`~inerf.errors.InerfError` with one line naming the file (and line).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from inerf.errors import InerfError
from inerf.geometry.conventions import check_rigid, opencv_to_opengl_c2w, opengl_to_opencv_c2w

__all__ = [
    "POSE_FORMATS",
    "PinholeIntrinsics",
    "PoseRecords",
    "colmap_image_line",
    "kitti_line",
    "matrix_to_quaternion",
    "parse_colmap_image_line",
    "parse_kitti_line",
    "parse_tum_line",
    "pose_json_entry",
    "quaternion_to_matrix",
    "read_nerfstudio_camera_path",
    "read_poses",
    "tum_line",
    "write_nerfstudio_camera_path",
    "write_poses",
]

POSE_FORMATS = ("opencv", "opengl", "nerfstudio", "colmap", "tum", "kitti")
"""Names accepted by :func:`write_poses` / :func:`read_poses` (and, later, ``--pose-format``)."""

_AXES = {
    "opencv": "OpenCV camera axes: x right, y down, looks along +z",
    "opengl": "OpenGL camera axes: x right, y up, looks along -z",
}


@dataclass(frozen=True)
class PinholeIntrinsics:
    """Pinhole intrinsics in pixels, pixel centres at +0.5 (a centred camera has ``cx = width / 2``)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


@dataclass
class PoseRecords:
    """Poses read from a file.

    Attributes:
        c2w: ``[N, 4, 4]`` float64, OpenCV axes, camera-to-world.
        names: image names (COLMAP, nerfstudio, the JSON formats) or ``""`` where the format has none.
        timestamps: ``[N]`` float64 (TUM) or None.
        intrinsics: per pose, where the file states them (COLMAP model, nerfstudio), else None.
    """

    c2w: torch.Tensor
    names: list[str]
    timestamps: torch.Tensor | None = None
    intrinsics: list[PinholeIntrinsics | None] = field(default_factory=list)

    def __len__(self) -> int:
        return self.c2w.shape[0]


# --------------------------------------------------------------------------------------------------------
# Rotations <-> quaternions


def matrix_to_quaternion(R) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` -> unit quaternions ``[..., 4]`` in ``(w, x, y, z)`` order, w >= 0.

    Shepperd's method: of the four algebraically equal formulas, use the one whose pivot (4 w^2, 4 x^2,
    4 y^2 or 4 z^2) is largest, so no division by a number near zero happens at any angle.
    """
    R = np.asarray(R, dtype=np.float64)
    m = R.reshape(-1, 3, 3)
    tr = np.trace(m, axis1=1, axis2=2)
    pivots = np.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], axis=1)  # ~ 4w^2-1, 4x^2-1... up to offsets
    k = pivots.argmax(axis=1)
    q = np.empty((len(m), 4))
    for case in range(4):
        sel = k == case
        if not sel.any():
            continue
        a = m[sel]
        if case == 0:
            s = 2.0 * np.sqrt(1.0 + tr[sel])  # s = 4 w
            q[sel] = np.stack(
                [
                    s / 4,
                    (a[:, 2, 1] - a[:, 1, 2]) / s,
                    (a[:, 0, 2] - a[:, 2, 0]) / s,
                    (a[:, 1, 0] - a[:, 0, 1]) / s,
                ],
                1,
            )
        elif case == 1:
            s = 2.0 * np.sqrt(1.0 + a[:, 0, 0] - a[:, 1, 1] - a[:, 2, 2])  # s = 4 x
            q[sel] = np.stack(
                [
                    (a[:, 2, 1] - a[:, 1, 2]) / s,
                    s / 4,
                    (a[:, 0, 1] + a[:, 1, 0]) / s,
                    (a[:, 0, 2] + a[:, 2, 0]) / s,
                ],
                1,
            )
        elif case == 2:
            s = 2.0 * np.sqrt(1.0 + a[:, 1, 1] - a[:, 0, 0] - a[:, 2, 2])  # s = 4 y
            q[sel] = np.stack(
                [
                    (a[:, 0, 2] - a[:, 2, 0]) / s,
                    (a[:, 0, 1] + a[:, 1, 0]) / s,
                    s / 4,
                    (a[:, 1, 2] + a[:, 2, 1]) / s,
                ],
                1,
            )
        else:
            s = 2.0 * np.sqrt(1.0 + a[:, 2, 2] - a[:, 0, 0] - a[:, 1, 1])  # s = 4 z
            q[sel] = np.stack(
                [
                    (a[:, 1, 0] - a[:, 0, 1]) / s,
                    (a[:, 0, 2] + a[:, 2, 0]) / s,
                    (a[:, 1, 2] + a[:, 2, 1]) / s,
                    s / 4,
                ],
                1,
            )
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)  # canonical sign: q and -q are the same rotation
    return q.reshape(*R.shape[:-2], 4)


def quaternion_to_matrix(q) -> np.ndarray:
    """Quaternions ``[..., 4]`` in ``(w, x, y, z)`` order (normalised here) -> rotations ``[..., 3, 3]``."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if not np.all(n > 0):
        raise ValueError("a zero quaternion is not a rotation")
    w, x, y, z = np.moveaxis(q / n, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


# --------------------------------------------------------------------------------------------------------
# One pose <-> one line


def _c2w_numpy(c2w, name: str = "pose") -> np.ndarray:
    """``[4, 4]``, ``[3, 4]`` or batches of them (torch or numpy) -> validated float64 numpy ``[..., 4, 4]``.

    Kept in float64 throughout (``check_rigid`` only validates here: it returns float32), so that writing
    and reading back is exact to the last digit."""
    a = c2w.detach().cpu().double().numpy() if isinstance(c2w, torch.Tensor) else np.asarray(c2w, np.float64)
    check_rigid(torch.from_numpy(a), name=name)
    if a.shape[-2:] == (3, 4):
        bottom = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (*a.shape[:-2], 1, 4))
        a = np.concatenate([a, bottom], axis=-2)
    return a


def _num(v: float) -> str:
    # repr: the shortest text that reads back to the same float64 (exact round trips).
    return repr(float(v))


def colmap_image_line(c2w, image_id: int = 1, camera_id: int = 1, name: str = "image.png") -> str:
    """The first line of an ``images.txt`` entry: ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME``.

    COLMAP stores world-to-camera (``x_cam = R x_world + t``) with OpenCV camera axes, so this inverts the
    c2w and keeps the axes. ``name`` may not contain whitespace: COLMAP's text reader ends it at a space.
    """
    m = _c2w_numpy(c2w)
    R_w2c = m[:3, :3].T
    t_w2c = -R_w2c @ m[:3, 3]
    q = matrix_to_quaternion(R_w2c)
    if not name or any(c.isspace() for c in name):
        raise InerfError(f"COLMAP image name {name!r}: must be non-empty and without spaces")
    return " ".join([str(int(image_id)), *map(_num, q), *map(_num, t_w2c), str(int(camera_id)), name])


def parse_colmap_image_line(line: str, source: str = "images.txt") -> tuple[int, np.ndarray, int, str]:
    """Inverse of :func:`colmap_image_line`: ``(image_id, c2w [4, 4] OpenCV, camera_id, name)``."""
    parts = line.split(maxsplit=9)
    if len(parts) != 10:
        raise InerfError(f"{source}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME', got {line!r}")
    try:
        image_id, camera_id = int(parts[0]), int(parts[8])
        q = np.array([float(v) for v in parts[1:5]])
        t = np.array([float(v) for v in parts[5:8]])
    except ValueError:
        raise InerfError(f"{source}: non-numeric pose in {line.strip()!r}") from None
    if not (np.isfinite(q).all() and np.isfinite(t).all()) or np.linalg.norm(q) < 1e-12:
        raise InerfError(f"{source}: invalid quaternion or translation in {line.strip()!r}")
    R_w2c = quaternion_to_matrix(q)
    c2w = np.eye(4)
    c2w[:3, :3] = R_w2c.T
    c2w[:3, 3] = -R_w2c.T @ t
    return image_id, c2w, camera_id, parts[9].strip()


def tum_line(c2w, timestamp: float) -> str:
    """``timestamp tx ty tz qx qy qz qw``: the camera centre and orientation (c2w, OpenCV axes)."""
    m = _c2w_numpy(c2w)
    w, x, y, z = matrix_to_quaternion(m[:3, :3])
    return " ".join(map(_num, [timestamp, *m[:3, 3], x, y, z, w]))


def parse_tum_line(line: str, source: str = "TUM file") -> tuple[float, np.ndarray]:
    """Inverse of :func:`tum_line`: ``(timestamp, c2w [4, 4] OpenCV)``."""
    parts = line.split()
    try:
        v = [float(p) for p in parts]
    except ValueError:
        raise InerfError(f"{source}: non-numeric values in {line.strip()!r}") from None
    if len(v) != 8 or not all(math.isfinite(x) for x in v):
        raise InerfError(
            f"{source}: expected 8 numbers 'timestamp tx ty tz qx qy qz qw', got {line.strip()!r}"
        )
    c2w = np.eye(4)
    c2w[:3, :3] = quaternion_to_matrix([v[7], v[4], v[5], v[6]])
    c2w[:3, 3] = v[1:4]
    return v[0], c2w


def kitti_line(c2w) -> str:
    """12 numbers: the first three rows of the c2w, row-major (KITTI odometry poses, OpenCV axes)."""
    return " ".join(map(_num, _c2w_numpy(c2w)[:3].reshape(-1)))


def parse_kitti_line(line: str, source: str = "KITTI file") -> np.ndarray:
    """Inverse of :func:`kitti_line`: c2w ``[4, 4]`` OpenCV, validated as a rigid transform."""
    try:
        v = [float(p) for p in line.split()]
    except ValueError:
        raise InerfError(f"{source}: non-numeric values in {line.strip()!r}") from None
    if len(v) != 12:
        raise InerfError(f"{source}: expected 12 numbers (3x4 row-major c2w), got {len(v)}")
    return _c2w_numpy(np.array(v).reshape(3, 4), name=source)


def pose_json_entry(c2w, frame: str) -> dict:
    """What a pose file should say about one pose: both conventions, each named, and the world frame.

    Returns ``{"frame", "convention": "opencv_c2w", "c2w" (OpenCV), "c2w_opengl", "axes"}``.
    """
    m = torch.from_numpy(_c2w_numpy(c2w))
    return {
        "frame": frame,
        "convention": "opencv_c2w",
        "c2w": m.tolist(),
        "c2w_opengl": opencv_to_opengl_c2w(m).tolist(),
        "axes": {"c2w": _AXES["opencv"], "c2w_opengl": _AXES["opengl"]},
    }


# --------------------------------------------------------------------------------------------------------
# Files


def _intrinsics_list(intrinsics, n: int) -> list[PinholeIntrinsics] | None:
    if intrinsics is None:
        return None
    if isinstance(intrinsics, PinholeIntrinsics):
        return [intrinsics] * n
    items = list(intrinsics)
    if len(items) != n:
        raise ValueError(f"expected {n} intrinsics, got {len(items)}")
    return items


def write_poses(
    path: str | Path,
    c2w,
    fmt: str,
    *,
    names: list[str] | None = None,
    timestamps=None,
    intrinsics: PinholeIntrinsics | list[PinholeIntrinsics] | None = None,
    frame: str = "",
) -> list[Path]:
    """Write ``N`` OpenCV c2w poses ``[N, 4, 4]`` to ``path`` in format ``fmt``; return the files written.

    * ``opencv`` / ``opengl``: JSON ``{"convention", "axes", "frame", "poses": [{"name", "c2w"}]}``.
    * ``nerfstudio``: a transforms.json (``frames[].transform_matrix``, OpenGL c2w; with ``intrinsics``
      also ``camera_model: PINHOLE, fl_x, fl_y, cx, cy, w, h``, per frame when they differ), which
      :func:`inerf.data.load_nerfstudio` reads back.
    * ``colmap``: ``images.txt`` at ``path`` (an empty 2D-points line after each pose); with
      ``intrinsics`` also ``cameras.txt`` (PINHOLE) and an empty ``points3D.txt`` beside it, which makes
      the folder a COLMAP text model that COLMAP and pycolmap open.
    * ``tum``: ``timestamp tx ty tz qx qy qz qw`` lines after a ``#`` header (default timestamps 0, 1, ...).
    * ``kitti``: 12 numbers per line, no header.

    Args:
        names: image names (default ``000000.png``, ...), used by the formats that store names.
        timestamps: ``[N]`` seconds for TUM.
        frame: words naming the world frame of the poses, stored where the format has room.
    """
    if fmt not in POSE_FORMATS:
        raise InerfError(f"unknown pose format {fmt!r}; expected one of {', '.join(POSE_FORMATS)}")
    m = _c2w_numpy(c2w, name="poses")
    m = m[None] if m.ndim == 2 else m
    n = len(m)
    names = list(names) if names is not None else [f"{i:06d}.png" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"expected {n} names, got {len(names)}")
    intr = _intrinsics_list(intrinsics, n)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path]
    if fmt in ("opencv", "opengl"):
        mats = m if fmt == "opencv" else opencv_to_opengl_c2w(torch.from_numpy(m)).numpy()
        doc = {
            "convention": f"{fmt}_c2w",
            "axes": _AXES[fmt],
            "frame": frame,
            "poses": [{"name": nm, "c2w": mat.tolist()} for nm, mat in zip(names, mats, strict=True)],
        }
        path.write_text(json.dumps(doc, indent=2) + "\n")
    elif fmt == "nerfstudio":
        gl = opencv_to_opengl_c2w(torch.from_numpy(m)).numpy()
        doc: dict = {}
        frames = [
            {"file_path": nm, "transform_matrix": mat.tolist()} for nm, mat in zip(names, gl, strict=True)
        ]
        if intr is not None:
            doc["camera_model"] = "PINHOLE"
            shared = all(k == intr[0] for k in intr)
            keys = lambda k: {"fl_x": k.fx, "fl_y": k.fy, "cx": k.cx, "cy": k.cy, "w": k.width, "h": k.height}
            if shared:
                doc.update(keys(intr[0]))
            else:
                for fr, k in zip(frames, intr, strict=True):
                    fr.update(keys(k))
        if frame:
            doc["inerf_frame"] = frame
        doc["frames"] = frames
        path.write_text(json.dumps(doc, indent=2) + "\n")
    elif fmt == "colmap":
        cam_ids, cameras = _colmap_camera_ids(intr, n)
        lines = [
            "# Image list with two lines of data per image:",
            "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
            "#   POINTS2D[] as (X, Y, POINT3D_ID)",
            f"# Number of images: {n}, world-to-camera, OpenCV camera axes"
            + (f"; frame: {frame}" if frame else ""),
        ]
        for i in range(n):
            lines += [colmap_image_line(m[i], i + 1, cam_ids[i], names[i]), ""]
        path.write_text("\n".join(lines) + "\n")
        if cameras:
            cam_lines = [
                "# Camera list with one line of data per camera:",
                "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
                f"# Number of cameras: {len(cameras)}",
            ]
            for cid, k in cameras:
                cam_lines.append(
                    f"{cid} PINHOLE {int(k.width)} {int(k.height)} "
                    + " ".join(map(_num, (k.fx, k.fy, k.cx, k.cy)))
                )
            (path.parent / "cameras.txt").write_text("\n".join(cam_lines) + "\n")
            (path.parent / "points3D.txt").write_text("# 3D point list (none: poses only)\n")
            written += [path.parent / "cameras.txt", path.parent / "points3D.txt"]
    elif fmt == "tum":
        ts = np.arange(n, dtype=np.float64) if timestamps is None else np.asarray(timestamps, np.float64)
        if ts.shape != (n,):
            raise ValueError(f"expected {n} timestamps, got shape {ts.shape}")
        head = [
            "# timestamp tx ty tz qx qy qz qw (camera-to-world, OpenCV camera axes: x right, y down, z forward)"
        ]
        if frame:
            head.append(f"# frame: {frame}")
        path.write_text("\n".join(head + [tum_line(m[i], ts[i]) for i in range(n)]) + "\n")
    else:  # kitti
        path.write_text("\n".join(kitti_line(m[i]) for i in range(n)) + "\n")
    return written


def _colmap_camera_ids(intr: list[PinholeIntrinsics] | None, n: int):
    """Camera id of each image (equal intrinsics share one camera) and the ``(id, intrinsics)`` list."""
    if intr is None:
        return [1] * n, []
    ids, cameras = [], []
    for k in intr:
        for cid, known in cameras:
            if known == k:
                ids.append(cid)
                break
        else:
            cameras.append((len(cameras) + 1, k))
            ids.append(len(cameras))
    return ids, cameras


def _data_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InerfError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InerfError(f"{path}: not a UTF-8 text file") from None
    return [(i + 1, ln) for i, ln in enumerate(text.splitlines())]


def read_poses(path: str | Path, fmt: str) -> PoseRecords:
    """Read poses written in format ``fmt`` (see :func:`write_poses`) into OpenCV c2w.

    COLMAP: reads ``images.txt`` (the poses, in file order) and, when present beside it, ``cameras.txt``
    (PINHOLE / SIMPLE_PINHOLE intrinsics). For whole COLMAP models with distortion, points and binary
    files use :func:`inerf.data.load_colmap`.
    """
    if fmt not in POSE_FORMATS:
        raise InerfError(f"unknown pose format {fmt!r}; expected one of {', '.join(POSE_FORMATS)}")
    path = Path(path)
    if not path.is_file():
        raise InerfError(f"{path}: file not found")
    names: list[str] = []
    mats: list[np.ndarray] = []
    stamps: list[float] | None = None
    intr: list[PinholeIntrinsics | None] = []
    if fmt in ("opencv", "opengl", "nerfstudio"):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InerfError(f"{path}: not a readable JSON file ({exc})") from None
        entries = doc.get("frames" if fmt == "nerfstudio" else "poses") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            key = "frames" if fmt == "nerfstudio" else "poses"
            raise InerfError(f"{path}: expected a JSON object with a '{key}' list")
        key = "transform_matrix" if fmt == "nerfstudio" else "c2w"
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or key not in e:
                raise InerfError(f"{path}: entry {i} has no '{key}'")
            try:
                mat = torch.from_numpy(_c2w_numpy(e[key], name=f"{path}: entry {i}"))
            except (TypeError, ValueError):
                raise InerfError(f"{path}: entry {i}: '{key}' is not a numeric matrix") from None
            gl = fmt != "opencv"
            mats.append((opengl_to_opencv_c2w(mat) if gl else mat).numpy())
            names.append(str(e.get("file_path" if fmt == "nerfstudio" else "name", "")))
            intr.append(_nerfstudio_intrinsics(doc, e) if fmt == "nerfstudio" else None)
    elif fmt == "colmap":
        cameras = _read_colmap_cameras_txt(path.parent / "cameras.txt")
        expect_points = False
        for lineno, ln in _data_lines(path):
            if ln.startswith("#"):
                continue
            if expect_points:  # every pose line is followed by its 2D points line (maybe empty)
                expect_points = False
                continue
            if not ln.strip():
                continue
            _, c2w, cam_id, name = parse_colmap_image_line(ln, source=f"{path}, line {lineno}")
            mats.append(c2w)
            names.append(name)
            intr.append(cameras.get(cam_id))
            expect_points = True
    else:
        stamps = [] if fmt == "tum" else None
        for lineno, ln in _data_lines(path):
            if ln.startswith("#") or not ln.strip():
                continue
            where = f"{path}, line {lineno}"
            if fmt == "tum":
                ts, c2w = parse_tum_line(ln, source=where)
                stamps.append(ts)
            else:
                c2w = parse_kitti_line(ln, source=where)
            mats.append(c2w)
            names.append("")
            intr.append(None)
    if not mats:
        raise InerfError(f"{path}: no poses in the file")
    c2w = torch.from_numpy(np.stack(mats))
    return PoseRecords(
        c2w=c2w,
        names=names,
        timestamps=None if stamps is None else torch.tensor(stamps, dtype=torch.float64),
        intrinsics=intr,
    )


def _nerfstudio_intrinsics(doc: dict, frame: dict) -> PinholeIntrinsics | None:
    get = lambda k: frame.get(k, doc.get(k))
    if any(get(k) is None for k in ("fl_x", "fl_y", "cx", "cy", "w", "h")):
        return None
    return PinholeIntrinsics(
        float(get("fl_x")),
        float(get("fl_y")),
        float(get("cx")),
        float(get("cy")),
        int(get("w")),
        int(get("h")),
    )


def _read_colmap_cameras_txt(path: Path) -> dict[int, PinholeIntrinsics]:
    if not path.is_file():
        return {}
    out = {}
    for lineno, ln in _data_lines(path):
        if ln.startswith("#") or not ln.strip():
            continue
        p = ln.split()
        try:
            cid, model, w, h, params = int(p[0]), p[1], int(p[2]), int(p[3]), [float(v) for v in p[4:]]
        except (IndexError, ValueError):
            raise InerfError(
                f"{path}, line {lineno}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'"
            ) from None
        if model == "PINHOLE" and len(params) == 4:
            out[cid] = PinholeIntrinsics(params[0], params[1], params[2], params[3], w, h)
        elif model == "SIMPLE_PINHOLE" and len(params) == 3:
            out[cid] = PinholeIntrinsics(params[0], params[0], params[1], params[2], w, h)
    return out


# --------------------------------------------------------------------------------------------------------
# nerfstudio camera paths (ns-render --camera-path-filename)


def write_nerfstudio_camera_path(
    path: str | Path, c2w, intrinsics: PinholeIntrinsics, *, fps: float = 24.0, frame: str = ""
) -> Path:
    """A nerfstudio camera-path JSON for ``ns-render camera-path``.

    Each entry holds ``camera_to_world`` (the OpenGL c2w, 16 numbers row-major), ``fov`` (the *vertical*
    field of view in degrees, from ``fy`` and the height, as nerfstudio's viewer defines it) and
    ``aspect`` (width / height). nerfstudio's format has one focal length and a centred principal point,
    so ``fx`` and ``cx, cy`` are not stored. The poses must be in the frame the nerfstudio model was
    trained in for the path to render there.
    """
    m = _c2w_numpy(c2w, name="poses")
    m = m[None] if m.ndim == 2 else m
    gl = opencv_to_opengl_c2w(torch.from_numpy(m)).numpy()
    k = intrinsics
    fov = math.degrees(2.0 * math.atan(0.5 * k.height / k.fy))
    doc = {
        "camera_type": "perspective",
        "render_height": int(k.height),
        "render_width": int(k.width),
        "fps": fps,
        "seconds": len(gl) / fps,
        "camera_path": [
            {"camera_to_world": mat.reshape(-1).tolist(), "fov": fov, "aspect": k.width / k.height}
            for mat in gl
        ],
    }
    if frame:
        doc["inerf_frame"] = frame
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def read_nerfstudio_camera_path(path: str | Path) -> PoseRecords:
    """Read a nerfstudio camera path: OpenCV c2w and centred intrinsics with ``fx = fy`` from ``fov``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        H, W = int(doc["render_height"]), int(doc["render_width"])
        entries = doc["camera_path"]
        mats, intr = [], []
        for i, e in enumerate(entries):
            gl = _c2w_numpy(
                np.asarray(e["camera_to_world"], np.float64).reshape(4, 4), name=f"{path}: entry {i}"
            )
            mats.append(opengl_to_opencv_c2w(torch.from_numpy(gl)).numpy())
            f = 0.5 * H / math.tan(math.radians(float(e["fov"])) / 2)
            intr.append(PinholeIntrinsics(f, f, W / 2, H / 2, W, H))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InerfError(f"{path}: not a nerfstudio camera path ({type(exc).__name__}: {exc})") from None
    if not mats:
        raise InerfError(f"{path}: the camera path is empty")
    return PoseRecords(torch.from_numpy(np.stack(mats)), [""] * len(mats), None, intr)
