"""The dataclass every multi-view scene loader returns, and the record of how a loader moved the scene.

Loaders may re-centre and re-scale a capture so that it fits the samplers' bounds (COLMAP and nerfstudio
scenes come in arbitrary units and places). :class:`SceneTransform` records that move as one similarity,
so a pose estimated in the training frame can be handed back **in the user's original frame**:

    x_train = scale * rotation @ x_orig + translation

Camera axes are not part of it: both sides are OpenCV c2w (:mod:`inerf.geometry.conventions`); a
format's own camera axes are converted separately, by the named converters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from inerf.geometry.cameras import Cameras

__all__ = ["SceneTransform", "ViewSet"]

_Mat3 = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
_IDENTITY3: _Mat3 = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


@dataclass(frozen=True)
class SceneTransform:
    """A similarity from the user's original world frame to the training frame.

    ``x_train = scale * rotation @ x_orig + translation`` for points; for a camera-to-world pose (OpenCV
    axes on both sides) ``R_train = rotation @ R_orig`` and ``centre_train = scale * rotation @ centre_orig
    + translation``, so lengths in the training frame are ``scale`` times those of the original frame.

    Axis flips of the world (Instant-NGP's axis cycle, nerfstudio's COLMAP -> transforms.json swap) are
    rotations here; a mirror (det -1) is refused, because a mirrored world has no rigid camera poses.

    Attributes:
        scale: positive scale factor (training units per original unit).
        rotation: ``3 x 3`` proper rotation, row-major nested tuples.
        translation: ``(tx, ty, tz)`` in training units.
        original: what the original frame is, in words (e.g. ``"COLMAP world of sparse/0"``).
    """

    scale: float = 1.0
    rotation: _Mat3 = _IDENTITY3
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    original: str = "the dataset's world frame"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be a positive number, got {self.scale}")
        R = torch.tensor(self.rotation, dtype=torch.float64)
        t = torch.tensor(self.translation, dtype=torch.float64)
        if R.shape != (3, 3) or t.shape != (3,) or not (torch.isfinite(R).all() and torch.isfinite(t).all()):
            raise ValueError("rotation must be a finite 3x3 matrix and translation a finite 3-vector")
        if (R.T @ R - torch.eye(3, dtype=torch.float64)).abs().max() > 1e-6 or torch.linalg.det(R) < 0:
            raise ValueError("rotation must be a proper rotation (orthonormal, det +1)")
        # Store plain floats so the record is hashable, comparable and JSON-able.
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "rotation", tuple(tuple(float(v) for v in row) for row in R.tolist()))
        object.__setattr__(self, "translation", tuple(float(v) for v in t.tolist()))

    # ---- construction ------------------------------------------------------------------------------

    @classmethod
    def identity(cls, original: str = "the dataset's world frame") -> SceneTransform:
        """No change: the training frame is the original frame."""
        return cls(original=original)

    @classmethod
    def from_matrix(cls, matrix, original: str = "the dataset's world frame") -> SceneTransform:
        """From a ``[4, 4]`` (or ``[3, 4]``) matrix ``[s R | t]``; ``s`` is recovered as ``det(sR)^(1/3)``.

        Raises ValueError if the 3x3 block is not a positive multiple of a rotation.
        """
        M = torch.as_tensor(matrix, dtype=torch.float64)
        if M.shape not in ((4, 4), (3, 4)):
            raise ValueError(f"expected a 4x4 or 3x4 matrix, got shape {tuple(M.shape)}")
        A = M[:3, :3]
        det = float(torch.linalg.det(A))
        if not det > 0:
            raise ValueError(f"the 3x3 block must have a positive determinant, got {det:.3g}")
        s = det ** (1.0 / 3.0)
        return cls(s, tuple(map(tuple, (A / s).tolist())), tuple(M[:3, 3].tolist()), original)

    # ---- algebra -----------------------------------------------------------------------------------

    def matrix(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """``[4, 4]`` homogeneous matrix ``[s R | t; 0 0 0 1]`` (original -> training)."""
        M = torch.eye(4, dtype=torch.float64)
        M[:3, :3] = self.scale * torch.tensor(self.rotation, dtype=torch.float64)
        M[:3, 3] = torch.tensor(self.translation, dtype=torch.float64)
        return M.to(dtype=dtype, device=device)

    def inverse(self) -> SceneTransform:
        """The similarity from the training frame back to the original frame."""
        R = torch.tensor(self.rotation, dtype=torch.float64)
        t = torch.tensor(self.translation, dtype=torch.float64)
        return SceneTransform(
            1.0 / self.scale,
            tuple(map(tuple, R.T.tolist())),
            tuple((-(R.T @ t) / self.scale).tolist()),
            original=f"training frame of {self.original}",
        )

    def then(self, outer: SceneTransform) -> SceneTransform:
        """Apply ``self`` first, then ``outer``: the result maps this record's original frame to the frame
        ``outer`` produces (``outer.original`` should describe this record's training frame)."""
        M = outer.matrix() @ self.matrix()
        return SceneTransform.from_matrix(M, original=self.original)

    def is_identity(self, atol: float = 1e-12) -> bool:
        return bool((self.matrix() - torch.eye(4, dtype=torch.float64)).abs().max() <= atol)

    # ---- mapping points and poses ------------------------------------------------------------------

    def points_to_training(self, points: torch.Tensor) -> torch.Tensor:
        """``[..., 3]`` points in the original frame -> training frame (same dtype)."""
        M = self.matrix(dtype=points.dtype, device=points.device)
        return points @ M[:3, :3].T + M[:3, 3]

    def points_to_original(self, points: torch.Tensor) -> torch.Tensor:
        """``[..., 3]`` points in the training frame -> original frame (same dtype)."""
        return self.inverse().points_to_training(points)

    def c2w_to_training(self, c2w: torch.Tensor) -> torch.Tensor:
        """``[..., 4, 4]`` OpenCV c2w in the original frame -> OpenCV c2w in the training frame."""
        return _map_c2w(c2w, self)

    def c2w_to_original(self, c2w: torch.Tensor) -> torch.Tensor:
        """``[..., 4, 4]`` OpenCV c2w in the training frame -> OpenCV c2w in the original frame."""
        return _map_c2w(c2w, self.inverse())

    # ---- serialisation -----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-able description (what ``config.json`` and pose files record)."""
        return {
            "maps": "x_train = scale * rotation @ x_original + translation",
            "scale": self.scale,
            "rotation": [list(r) for r in self.rotation],
            "translation": list(self.translation),
            "original": self.original,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SceneTransform:
        return cls(
            float(d["scale"]),
            tuple(tuple(float(v) for v in r) for r in d["rotation"]),
            tuple(float(v) for v in d["translation"]),
            str(d.get("original", "the dataset's world frame")),
        )


def _map_c2w(c2w: torch.Tensor, tf: SceneTransform) -> torch.Tensor:
    """Apply the similarity ``tf`` to camera-to-world poses: rotate the camera frame, map its centre.

    The camera axes stay orthonormal (a similarity scales lengths, not the camera's own axes)."""
    R = torch.tensor(tf.rotation, dtype=torch.float64)
    t = torch.tensor(tf.translation, dtype=torch.float64)
    R, t = R.to(device=c2w.device, dtype=c2w.dtype), t.to(device=c2w.device, dtype=c2w.dtype)
    out = c2w.clone()
    out[..., :3, :3] = R @ c2w[..., :3, :3]
    out[..., :3, 3] = tf.scale * (c2w[..., :3, 3] @ R.T) + t
    return out


@dataclass
class ViewSet:
    """Posed images of one scene, in the internal convention (OpenCV axes, c2w, pixel centres +0.5).

    Attributes:
        images: ``[N, H, W, 3]`` float32 in [0, 1], already composited on ``background`` when the
            source had alpha.
        alphas: ``[N, H, W]`` float32 in [0, 1] (foreground coverage), or None when the source has none.
        cameras: ``N`` cameras (c2w ``[N, 4, 4]`` and intrinsics at this image size).
        near: start of the ray segment that encloses the scene (scene units, z-depth).
        far: end of that segment.
        background: RGB the images were composited on (meaningful when ``alphas`` is not None).
        names: ``N`` file paths of the images (relative to the dataset root), for reports.
        root: the dataset folder.
        split: the split these views come from (``train``, ``val``, ``test``).
        transform: how the loader moved the user's world into this (training) frame: identity for
            Blender scenes (used as stored), LLFF's ``bd_factor`` rescale, the COLMAP / nerfstudio
            loaders' centring and scaling (see each loader).
        bounds: ``[2, 3]`` axis-aligned box (min, max corners, training frame) that holds the scene's
            content, when the format tells (COLMAP sparse points, Instant-NGP's ``aabb_scale``); None
            otherwise.
    """

    images: torch.Tensor
    alphas: torch.Tensor | None
    cameras: Cameras
    near: float
    far: float
    background: tuple[float, float, float]
    names: list[str]
    root: str = ""
    split: str = ""
    transform: SceneTransform = field(default_factory=SceneTransform)
    bounds: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    def c2w_to_original(self, c2w: torch.Tensor) -> torch.Tensor:
        """OpenCV c2w ``[..., 4, 4]`` in this set's (training) frame -> the user's original frame."""
        return self.transform.c2w_to_original(c2w)

    def c2w_to_training(self, c2w: torch.Tensor) -> torch.Tensor:
        """OpenCV c2w ``[..., 4, 4]`` in the user's original frame -> this set's (training) frame."""
        return self.transform.c2w_to_training(c2w)
