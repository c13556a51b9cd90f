"""Start poses a known distance from a reference pose, and when an estimate counts as a success.

One definition for every verb (``inerf demo``, ``inerf estimate --init-from-gt``, ``inerf benchmark pose``,
the hypotheses spread around a start, ``inerf track``'s re-localisation), so "30 degrees / 0.1 off" means
the same everywhere.

**The move** (:class:`Perturbation`, :func:`perturb`). A pose ``T* = [R* | c*]`` (camera-to-world, OpenCV
axes: ``c*`` is the camera centre) is moved by a rotation ``R_D`` by an angle about a uniformly random axis
(a normalised Gaussian vector) and by an offset ``d`` of the camera centre:

    pivot "camera" (the default):  R0 = R_D @ R*,  c0 = c* + d
        the camera turns about its own centre. The start errors are exactly the move's: rotation error
        (geodesic angle) = the angle, translation error (camera-centre distance) = |d|.
    pivot "origin" (the iNeRF paper's code):  T0 = D @ T*,  D = [R_D | d]
        the camera turns about the world origin, so an object there stays in view, but its centre also
        swings along an arc: the translation error is |R_D c* + d - c*| <= 2 |c*| sin(angle / 2) + |d|
        (a camera 4 units from the origin turned by 30 degrees about an axis square to it moves 2.07).

How the amounts are drawn (``sampling``):

    "exact" (the default):  the angle is ``rot_deg``; ``d`` points in a uniformly random direction and
        has length ``trans``. Every start is exactly ``rot_deg`` / ``trans`` off (with pivot "camera").
    "uniform" (the iNeRF paper's):  the angle is uniform in ``[-rot_deg, rot_deg]`` (so its size is
        uniform in ``[0, rot_deg]``); each coordinate of ``d`` is uniform in ``[-trans, trans]`` (so
        ``|d| <= sqrt(3) trans``).

The random numbers are drawn in this order, all draws of a batch at once: axes ``[n, 3]``, then (uniform
only) angles ``[n]``, then offsets ``[n, 3]``; a view's generator is :func:`start_generator` ``(seed,
index)``, and :func:`start_pose` is its first start, the same in every verb. With
:data:`PAPER_PERTURBATION` the protocol (:func:`inerf.pose.protocol.initial_poses`) draws, bit for bit,
the starts of every protocol run recorded in BENCHMARKS.md. The extra hypotheses searched around a start
are drawn by :func:`spread` (uniform, about the world origin).

Why the camera pivot is the default: a start then is what it says. Why the protocol keeps the paper's
origin pivot: its object-centred scenes fill a ~40 degree field of view, so turning the camera 30-40
degrees about its own centre turns the object out of the picture (measured on the demo duck: exactly 30
degrees about the camera centre, 0 of 5 targets recovered; about the origin, the paper's way, all of them).

**Success** (:class:`SuccessThresholds`, :data:`SUCCESS`): rotation error < 5 degrees and translation error
< 0.05 scene units, the iNeRF paper's 5 degrees and 5 cm: 0.05 in the units of the NeRF-synthetic scenes
(cameras 4 units from the object), which the Blender loader keeps. The threshold is absolute, not relative
to the scene: for scenes the loaders rescale (COLMAP and nerfstudio captures are normalised into a
cube of side 2) or of another size, pass your own (``SuccessThresholds(trans=...)``, ``--trans-thresh``).

Example::

    c2w0 = start_pose(gt_c2w, Perturbation(rot_deg=10.0, trans=0.1), seed=0, index=3)  # 10 deg / 0.1 off
    starts = perturb(gt_c2w, PAPER_PERTURBATION, start_generator(0, 3), (5,))  # [5, 4, 4], the paper's
    SUCCESS.ok(se3.rotation_error_deg(est, gt_c2w), se3.translation_error(est, gt_c2w))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from inerf.geometry import se3

__all__ = [
    "PAPER_PERTURBATION",
    "PIVOTS",
    "SAMPLINGS",
    "SUCCESS",
    "Perturbation",
    "SuccessThresholds",
    "apply_moves",
    "perturb",
    "sample_moves",
    "spread",
    "start_generator",
    "start_pose",
]

Sampling = Literal["exact", "uniform"]
SAMPLINGS: tuple[str, ...] = get_args(Sampling)
"""How the amounts are drawn: ``exact`` (the angle and the offset's length are the given values) or
``uniform`` (the iNeRF paper's: angle uniform in [-rot, rot], offset uniform in [-trans, trans] per axis)."""

Pivot = Literal["camera", "origin"]
PIVOTS: tuple[str, ...] = get_args(Pivot)
"""What the camera turns about: its own centre (``camera``: start errors equal the move) or the world
origin (``origin``: the iNeRF paper's code; the camera centre also moves along an arc)."""


@dataclass(frozen=True)
class Perturbation:
    """How a start is drawn around a pose: a rotation about a random axis and an offset of the camera centre
    (the formulas and the start errors of each choice: :mod:`inerf.pose.perturb`)."""

    rot_deg: float = 0.0
    """Rotation of the start in degrees, about a uniformly random axis: exactly this with ``sampling``
    exact, uniform in [-rot, rot] with uniform."""
    trans: float = 0.0
    """Offset of the camera centre (scene units): exactly this long in a random direction with ``sampling``
    exact, uniform in [-trans, trans] along each axis with uniform."""
    sampling: Sampling = "exact"
    """How the angle and the offset are drawn: exact (the given amounts) or uniform (the iNeRF paper's: up to
    them)."""
    pivot: Pivot = "camera"
    """What the camera turns about: camera (its own centre: the start's translation error is the offset) or
    origin (the world origin, as the iNeRF paper's code: an object there stays in view, but the camera
    centre also swings along an arc)."""

    def __post_init__(self) -> None:
        if (
            not (math.isfinite(self.rot_deg) and math.isfinite(self.trans))
            or self.rot_deg < 0
            or self.trans < 0
        ):
            raise ValueError(
                f"rot_deg and trans must be finite and >= 0, got {self.rot_deg:g} and {self.trans:g}"
            )
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.pivot not in PIVOTS:
            raise ValueError(f"pivot must be one of {', '.join(PIVOTS)}, got {self.pivot!r}")

    def describe(self) -> str:
        """How the start is moved, for reports and help texts: ``turned by exactly 10 degrees about a random
        axis through the camera centre and shifted by exactly 0.1 in a random direction``."""
        pivot = "the camera centre" if self.pivot == "camera" else "the world origin"
        if self.sampling == "exact":
            return (
                f"turned by exactly {self.rot_deg:g} degrees about a random axis through {pivot} and shifted by "
                f"exactly {self.trans:g} in a random direction"
            )
        return (
            f"turned by an angle uniform in [-{self.rot_deg:g}, {self.rot_deg:g}] degrees about a random axis "
            f"through {pivot} and shifted by up to {self.trans:g} along each axis (uniform)"
        )


PAPER_PERTURBATION = Perturbation(rot_deg=40.0, trans=0.1, sampling="uniform", pivot="origin")
"""The iNeRF paper's starts (§V-A, as its code applies them): an angle uniform in [-40, 40] degrees about a
random axis through the world origin, an offset uniform in [-0.1, 0.1] per axis. The default of
:class:`inerf.pose.protocol.ProtocolConfig` and of ``inerf benchmark pose``."""


def spread(rot_deg: float, trans: float) -> Perturbation:
    """The move of the extra hypotheses searched around a start (``--hypotheses``, the protocol's, ``inerf
    track``'s re-localisation): angles uniform in [-rot_deg, rot_deg] and offsets uniform in [-trans, trans]
    per axis, so the search covers the range, about the world origin, which our loaders put at the scene's
    centre, so every hypothesis keeps the scene in view."""
    return Perturbation(rot_deg, trans, sampling="uniform", pivot="origin")


def start_generator(seed: int, index: int = 0) -> torch.Generator:
    """The generator of the start(s) of view or target ``index`` under ``seed``: a start does not depend
    on which other views are run, and the same ``(seed, index)`` gives the same start in every verb."""
    # A large odd multiplier keeps (seed, index) pairs apart for any index below a million.
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


def sample_moves(n: int, perturbation: Perturbation, generator: torch.Generator) -> torch.Tensor:
    """``n`` random moves ``D = [R_D | d]`` ``[n, 4, 4]`` (float64, on the CPU) drawn as the module
    docstring says (axes, then angles for ``uniform``, then offsets); :func:`perturb` applies them."""
    p = perturbation
    f64 = torch.float64
    axis = torch.randn(n, 3, generator=generator, dtype=f64)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    if p.sampling == "exact":
        angle = torch.full((n,), math.radians(p.rot_deg), dtype=f64)
        direction = torch.randn(n, 3, generator=generator, dtype=f64)
        offset = p.trans * direction / direction.norm(dim=-1, keepdim=True)
    else:
        angle = torch.deg2rad((2 * torch.rand(n, generator=generator, dtype=f64) - 1) * p.rot_deg)
        offset = (2 * torch.rand(n, 3, generator=generator, dtype=f64) - 1) * p.trans
    moves = torch.eye(4, dtype=f64).repeat(n, 1, 1)
    moves[:, :3, :3] = se3.axis_angle_to_matrix(axis, angle)
    moves[:, :3, 3] = offset
    return moves


def perturb(
    c2w: torch.Tensor,
    perturbation: Perturbation,
    generator: torch.Generator,
    shape: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """``c2w`` ``[..., 4, 4]`` moved by random draws of ``perturbation``, one per entry of ``shape``.

    Args:
        c2w: the pose(s) to move, camera-to-world.
        perturbation: how (:class:`Perturbation`).
        generator: the random source (:func:`start_generator` for a view's starts).
        shape: batch shape of the draws, broadcast against ``c2w``'s (default: ``c2w``'s own, one draw per
            pose). ``perturb(gt, p, gen, (T,))`` gives ``T`` starts around one pose; ``perturb(starts[:, None],
            p, gen, (T, K))`` ``K`` around each of ``T``. Draws are made in row-major order of ``shape``.
    Returns:
        The moved poses ``[*broadcast(shape, c2w batch), 4, 4]`` in float64 on ``c2w``'s device. With pivot
        ``camera`` the rotation error of each is its drawn angle and the translation error its drawn offset's
        length (exactly ``rot_deg`` / ``trans`` with ``exact`` sampling); for ``origin`` see the module
        docstring.
    """
    c2w = c2w.double()
    shape = tuple(c2w.shape[:-2] if shape is None else shape)
    moves = sample_moves(math.prod(shape), perturbation, generator).reshape(*shape, 4, 4)
    return apply_moves(c2w, moves.to(c2w.device), perturbation.pivot)


def start_pose(c2w: torch.Tensor, perturbation: Perturbation, seed: int, index: int = 0) -> torch.Tensor:
    """The start ``[4, 4]`` (float64) drawn for view ``index`` under ``seed``: the first trial of ``inerf
    benchmark pose`` on that view, the start of ``inerf demo``'s target ``index`` and of ``inerf estimate
    --view index --init-from-gt`` (the same bits: drawn as a batch of one, as the protocol draws its trials)."""
    return perturb(c2w, perturbation, start_generator(seed, index), (1,))[0]


def apply_moves(c2w: torch.Tensor, moves: torch.Tensor, pivot: Pivot = "camera") -> torch.Tensor:
    """``c2w`` ``[..., 4, 4]`` moved by ``moves = [R_D | d]`` ``[..., 4, 4]`` (broadcasting) about ``pivot``:
    ``camera``: ``R0 = R_D @ R``, ``c0 = c + d``; ``origin``: ``T0 = D @ T`` (module docstring)."""
    moves = moves.to(c2w.dtype)
    if pivot == "origin":
        return moves @ c2w
    c2w, moves = torch.broadcast_tensors(c2w, moves)
    out = c2w.clone()
    out[..., :3, :3] = moves[..., :3, :3] @ c2w[..., :3, :3]  # turned about the camera centre: c stays put
    out[..., :3, 3] = c2w[..., :3, 3] + moves[..., :3, 3]
    return out


@dataclass(frozen=True)
class SuccessThresholds:
    """An estimate succeeds when both its errors are below these (default the iNeRF paper's 5 degrees and
    0.05; why: :mod:`inerf.pose.perturb`)."""

    rot_deg: float = 5.0
    """Rotation error (geodesic angle) below this many degrees."""
    trans: float = 0.05
    """Translation error (camera-centre distance) below this, in scene units."""

    def __post_init__(self) -> None:
        if not (self.rot_deg > 0 and self.trans > 0):
            raise ValueError(f"rot_deg and trans must be > 0, got {self.rot_deg:g} and {self.trans:g}")

    def ok(self, rot_err, trans_err):
        """Success of each estimate: floats give a bool, tensors or arrays an elementwise mask."""
        return (rot_err < self.rot_deg) & (trans_err < self.trans)

    def describe(self) -> str:
        """``< 5 deg and < 0.05``: for table headers and messages."""
        return f"< {self.rot_deg:g} deg and < {self.trans:g}"


SUCCESS = SuccessThresholds()
"""The one success threshold set of inerf (5 degrees, 0.05): the demo, ``inerf estimate``'s report, ``inerf
benchmark pose`` and ``inerf track`` all count success with it."""
