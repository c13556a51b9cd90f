"""Estimated poses in the user's frame and in the formats other tools read (what ``--pose-format`` writes).

A field is trained in a *training frame*: the loaders of COLMAP and nerfstudio captures centre and scale the
user's world to fit the samplers (:class:`~inerf.data.views.SceneTransform` records how). Every pose the
solver returns is in that training frame. Users want it back in their own world, the *original frame*
(COLMAP's world, the frame of their ``transforms.json``), and in their tool's format. This module does both:

* :func:`pose_frames_record`: the ``pose.json`` entries that say which frame and convention a pose is in,
  with the pose in both camera conventions (OpenCV and OpenGL c2w) and, when the run recorded its
  :class:`SceneTransform`, in the original frame too.
* :func:`write_pose_files`: the files of ``--pose-format``, in the frame of ``--pose-frame``, under
  ``OUT/poses/``:

  ==========  ====================================================================================
  format      files
  ==========  ====================================================================================
  opencv      ``opencv.json``: ``{"convention": "opencv_c2w", "frame", "poses": [{"name", "c2w"}]}``
  opengl      ``opengl.json``: the same with OpenGL camera axes (Blender, nerfstudio, three.js)
  nerfstudio  ``transforms.json`` (nerfstudio's frames, OpenGL c2w, PINHOLE intrinsics) and
              ``camera_path.json`` (``ns-render camera-path --camera-path-filename``)
  colmap      ``colmap/images.txt`` (world-to-camera quaternions) with ``cameras.txt`` and an empty
              ``points3D.txt``: a COLMAP text model that COLMAP and pycolmap open
  tum         ``tum.txt``: ``timestamp tx ty tz qx qy qz qw`` (evo, the TUM RGB-D tools)
  kitti       ``kitti.txt``: the 3x4 c2w, 12 numbers a line (evo, the KITTI odometry tools)
  ==========  ====================================================================================

The conversions themselves live in :mod:`inerf.geometry.formats`; the frame change is
:meth:`SceneTransform.c2w_to_original`, applied here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from inerf.errors import InerfError
from inerf.geometry.formats import POSE_FORMATS, PinholeIntrinsics, pose_json_entry, write_poses

if TYPE_CHECKING:
    from inerf.data.views import SceneTransform

__all__ = [
    "POSE_FILES_DIR",
    "POSE_FRAMES",
    "PoseOutput",
    "parse_pose_formats",
    "pinhole_of",
    "pose_frames_record",
    "write_pose_files",
]

POSE_FRAMES = ("original", "training")
"""Values of ``--pose-frame``: the user's world (when the run recorded how it was moved) or the run's own."""

POSE_FILES_DIR = "poses"
"""Sub-folder of an output folder that holds the ``--pose-format`` files."""

_FILE_NAMES = {
    "opencv": "opencv.json",
    "opengl": "opengl.json",
    "nerfstudio": "transforms.json",
    "colmap": "colmap/images.txt",
    "tum": "tum.txt",
    "kitti": "kitti.txt",
}


def parse_pose_formats(text: str, flag: str = "--pose-format") -> tuple[str, ...]:
    """``"colmap,tum"`` -> ``("colmap", "tum")``; one-line :class:`InerfError` for an unknown name."""
    names = tuple(dict.fromkeys(s.strip().lower() for s in str(text).split(",") if s.strip()))
    bad = [s for s in names if s not in POSE_FORMATS]
    if bad or not names:
        raise InerfError(
            f"{flag} {text}: unknown pose format {', '.join(bad) or repr(text)}; choose from "
            f"{', '.join(POSE_FORMATS)} (comma-separated for several)"
        )
    return names


def pinhole_of(camera, i: int = 0) -> PinholeIntrinsics:
    """The :class:`PinholeIntrinsics` of camera ``i`` of a :class:`~inerf.geometry.cameras.Cameras`."""
    fx, fy, cx, cy = camera.intrinsics(i)
    return PinholeIntrinsics(fx, fy, cx, cy, int(camera.width), int(camera.height))


@dataclass(frozen=True)
class PoseOutput:
    """Which pose files to write and in which world frame (``--pose-format``, ``--pose-frame``).

    Attributes:
        formats: names from :data:`~inerf.geometry.formats.POSE_FORMATS` (empty: only ``pose.json``).
        frame: ``original`` or ``training`` (:data:`POSE_FRAMES`).
        transform: original -> training frame of the run, or None when the run recorded none (then the
            original frame is unknown and the training frame is written, saying so).
        run: the run directory, named in the frame descriptions.
    """

    formats: tuple[str, ...] = ()
    frame: str = "original"
    transform: SceneTransform | None = None
    run: str = ""

    def __post_init__(self) -> None:
        if self.frame not in POSE_FRAMES:
            raise ValueError(f"frame must be one of {POSE_FRAMES}, got {self.frame!r}")
        bad = [f for f in self.formats if f not in POSE_FORMATS]
        if bad:
            raise ValueError(f"unknown pose formats {bad}; expected {POSE_FORMATS}")

    @property
    def training_frame(self) -> str:
        """The training frame in words."""
        return f"training frame of the run {self.run}" if self.run else "the run's training frame"

    @property
    def written_frame(self) -> str:
        """``original`` or ``training``: the frame the files are actually in (``training`` when the original
        one was asked for but the run recorded none)."""
        return "original" if self.frame == "original" and self.transform is not None else "training"

    def describe(self) -> str:
        """The frame of the written files, in words (stored in each file that has room)."""
        if self.written_frame == "original":
            return f"original frame: {self.transform.original}"
        return self.training_frame

    def to_written_frame(self, c2w_train: torch.Tensor) -> torch.Tensor:
        """OpenCV c2w ``[..., 4, 4]`` in the training frame -> the frame the files are written in."""
        c2w = c2w_train.detach().double().cpu()
        return self.transform.c2w_to_original(c2w) if self.written_frame == "original" else c2w


def pose_frames_record(c2w_train: torch.Tensor, output: PoseOutput) -> dict:
    """The ``pose.json`` entries that state the frame: ``frame`` (the training frame, where ``c2w`` and
    ``c2w_opengl`` are), ``axes``, and ``original`` (the pose in the user's original frame in both camera
    conventions, with the recorded transform) or None with ``original_note`` saying why.

    Args:
        c2w_train: ``[4, 4]`` OpenCV c2w in the training frame.
    """
    entry = pose_json_entry(c2w_train.detach().double().cpu(), output.training_frame)
    record = {"frame": entry["frame"], "axes": entry["axes"]}
    if output.transform is None:
        record["original"] = None
        record["original_note"] = (
            "the run recorded no original frame (trained before inerf recorded it, or its data is gone)"
        )
        return record
    orig = output.transform.c2w_to_original(c2w_train.detach().double().cpu())
    original = pose_json_entry(orig, output.transform.original)
    original["transform"] = output.transform.to_dict()
    record["original"] = original
    return record


def write_pose_files(
    out_dir: str | Path,
    c2w_train: torch.Tensor,
    output: PoseOutput,
    *,
    names: list[str],
    intrinsics: list[PinholeIntrinsics] | PinholeIntrinsics,
    timestamps=None,
) -> dict[str, Path]:
    """Write ``N`` poses in every format of ``output`` under ``out_dir/poses/``; return the files by format.

    Args:
        c2w_train: ``[N, 4, 4]`` (or ``[4, 4]``) OpenCV c2w in the training frame.
        names: ``N`` image names (COLMAP and nerfstudio store them; spaces become ``_``, as COLMAP's text
            reader ends a name at a space).
        intrinsics: one per pose, or one for all (nerfstudio and COLMAP store them; the camera path takes
            the first pose's).
        timestamps: ``[N]`` seconds for TUM (default 0, 1, ...).
    """
    if not output.formats:
        return {}
    c2w = output.to_written_frame(c2w_train)
    c2w = c2w[None] if c2w.ndim == 2 else c2w
    names = ["_".join(str(n).split()) or f"{i:06d}.png" for i, n in enumerate(names)]
    first = intrinsics if isinstance(intrinsics, PinholeIntrinsics) else intrinsics[0]
    folder = Path(out_dir) / POSE_FILES_DIR
    frame = output.describe()
    paths: dict[str, Path] = {}
    for fmt in output.formats:
        path = folder / _FILE_NAMES[fmt]
        stored = intrinsics if fmt in ("nerfstudio", "colmap") else None
        write_poses(path, c2w, fmt, names=names, timestamps=timestamps, intrinsics=stored, frame=frame)
        paths[fmt] = path
        if fmt == "nerfstudio":
            from inerf.geometry.formats import write_nerfstudio_camera_path

            paths["nerfstudio_camera_path"] = write_nerfstudio_camera_path(
                folder / "camera_path.json", c2w, first, frame=frame
            )
    return paths
