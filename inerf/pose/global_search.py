"""Global localisation: the camera pose of an image with no initial guess.

iNeRF's basin is about +-40 degrees wide, so a solve needs a start near the answer. Here the start comes from
the scene itself, in three stages:

1. **Candidates** (:func:`candidate_poses`). Where cameras of this scene can be, from a
   :class:`CameraPrior`: the training cameras themselves, and a Fibonacci sphere of viewpoints over the
   radius range of the training cameras, inside their elevation band, each looking at the scene centre.
   Every viewpoint is repeated with ``rolls`` in-plane rotations about its optical axis.
2. **Cheap scoring** (:func:`score_candidates`). Every candidate is rendered at a few hundred pixels of a
   low-resolution, blurred copy of the target (the target is area-downsampled so its long side is
   ``score_size`` pixels; each pixel's render is the mean of ``score_blur_rays`` rays on the blur ring, see
   :mod:`inerf.pose.problem`), all candidates in one batched, chunked render without gradients. The
   photometric loss ranks them.
3. **Refinement** (:func:`localize`). The ``keep`` best candidates, spread out by a minimum angular
   separation (non-maximum suppression, so that ``keep`` starts do not all sit in one basin), are the
   hypotheses of one :func:`~inerf.pose.solver.estimate_pose` solve with the caller's coarse-to-fine
   settings; the worse half is pruned at evenly spaced steps until ``survivors`` remain (Parallel iNeRF's
   scheme), and the lowest-loss hypothesis is the answer.

Optionally (``GlobalConfig.retrieval``) candidates also come from image retrieval: ORB matches of the target
against reference renders with the field's depth, and PnP-RANSAC (:mod:`inerf.pose.retrieval`). They join
the grid before scoring, so a good retrieved pose is ranked and refined like any other candidate.

All poses are camera-to-world with OpenCV axes (:mod:`inerf.geometry.conventions`).

Example::

    prior = CameraPrior.from_cameras(train_views.cameras.c2w)         # or CameraPrior.from_bounds(near, far)
    found = localize(run.model, target, prior, GlobalConfig(), ROBUST)
    found.result.c2w[0]                                                # [4, 4] c2w, OpenCV axes
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Literal, get_args

import torch

from inerf.geometry import se3
from inerf.geometry.cameras import look_at, orthogonal_unit
from inerf.pose.config import BlurConfig, PoseConfig, SamplingConfig
from inerf.pose.problem import PoseTarget, Problem, frozen_fields
from inerf.pose.solver import PoseResult, estimate_pose
from inerf.render.model import Model

__all__ = [
    "CANDIDATE_SOURCES",
    "CameraPrior",
    "GlobalConfig",
    "GlobalResult",
    "ReferenceCache",
    "candidate_poses",
    "default_prune_steps",
    "fibonacci_sphere",
    "localize",
    "look_at",
    "low_resolution_target",
    "retrieval_references",
    "roll_about_axis",
    "score_candidates",
    "select_diverse",
]

CandidateSource = Literal["both", "sphere", "cameras"]
CANDIDATE_SOURCES: tuple[str, ...] = get_args(CandidateSource)
"""Where candidates come from: ``sphere`` (Fibonacci viewpoints looking at the scene centre), ``cameras``
(the training cameras) or ``both``."""


@dataclass
class GlobalConfig:
    """Settings of global localisation (no initial pose): candidates, their cheap scoring, the refinement."""

    source: CandidateSource = "both"
    """Candidate viewpoints: one of :data:`CANDIDATE_SOURCES`. Without training cameras (or when their
    optical axes do not meet, as in forward-facing captures) only what is available is used."""
    viewpoints: int = 256
    """Fibonacci-sphere viewpoints (before the elevation band is applied), at each radius."""
    radii: int = 1
    """Radii between the smallest and the largest training-camera distance (1: their mean)."""
    rolls: int = 4
    """In-plane rotations of every viewpoint about its optical axis, evenly spaced over 360 degrees (1: the
    upright view only)."""
    elevation_margin: float = 10.0
    """Degrees added on both sides of the training cameras' elevation band (the sphere is cut to it)."""
    score_size: int = 32
    """Long side, in pixels, of the downsampled target the candidates are scored on."""
    score_rays: int = 256
    """Pixels of the downsampled target rendered per candidate (all of them when the image has fewer)."""
    score_blur: float = 1.0
    """Blur (pixels of the downsampled target, Gaussian sigma) of the scoring renders and target."""
    score_blur_rays: int = 4
    """Rays per scored pixel on the blur ring (1: one ray through the centre)."""
    score_samples: int = 64
    """Stratified samples per ray while scoring (0: the model's own); a coarse ranking at low resolution
    needs far fewer than a sharp render."""
    score_chunk: int = 65536
    """Rays per render call while scoring (bounds memory; no gradients are kept)."""
    keep: int = 8
    """Candidates refined (the hypotheses of the solve), chosen best-first with ``min_separation``."""
    min_separation: float = 15.0
    """Degrees two refined candidates' viewing directions (seen from the scene centre) or rolls must differ
    by at least (0: plain top-``keep``)."""
    survivors: int = 1
    """Automatic pruning (when the solver config has no ``prune_steps``): halve the hypotheses at evenly
    spaced steps of the first ``prune_fraction`` of the solve until this many remain."""
    prune_fraction: float = 0.5
    """Share of the solve over which the automatic pruning steps are spread."""
    retrieval: bool = False
    """Also seed candidates by image retrieval (:mod:`inerf.pose.retrieval`): ORB matches of the target
    against reference views (renders of the field at the training cameras, or at ``retrieval_references``
    sphere viewpoints without them) with the field's depth there, and a PnP-RANSAC pose per well-matched
    reference. The poses found join every trial's candidates and are scored like them."""
    retrieval_references: int = 64
    """Sphere viewpoints rendered as retrieval references when the prior has no training cameras."""
    retrieval_size: int = 160
    """Long side, in pixels, of the reference renders and of the target copy that is matched."""

    def __post_init__(self) -> None:
        if self.source not in CANDIDATE_SOURCES:
            raise ValueError(f"unknown candidate source {self.source!r}; expected one of {CANDIDATE_SOURCES}")
        ints = ("viewpoints", "radii", "rolls", "score_size", "score_rays", "score_blur_rays", "keep")
        ints += ("retrieval_references", "retrieval_size")
        for name in ints:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.score_samples < 0 or 0 < self.score_samples < 3:
            raise ValueError(f"score_samples must be 0 or >= 3, got {self.score_samples}")
        if self.score_chunk < 1 or self.survivors < 1:
            raise ValueError(
                f"score_chunk and survivors must be >= 1, got {self.score_chunk}, {self.survivors}"
            )
        for name in ("elevation_margin", "score_blur", "min_separation"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        if not 0.0 < self.prune_fraction <= 1.0:
            raise ValueError(f"prune_fraction must be in (0, 1], got {self.prune_fraction}")


# ------------------------------------------------------------------------------------------ the prior


@dataclass
class CameraPrior:
    """Where the cameras of a scene are: a shell around a centre, an elevation band, the training poses.

    Attributes:
        center: ``[3]`` the point the cameras look at (float64, world frame).
        radius_min, radius_max: camera distances from ``center`` (scene units).
        up: ``[3]`` unit world direction that appears "up" in upright images.
        elevation: ``(lowest, highest)`` camera elevation above the plane normal to ``up``, in degrees.
        cameras: ``[N, 4, 4]`` training c2w (OpenCV axes), or None.
        orbit: whether the cameras look at a common centre (object-centred captures); sphere candidates
            are only made then.
        source: how the prior was made, for reports.
    """

    center: torch.Tensor
    radius_min: float
    radius_max: float
    up: torch.Tensor
    elevation: tuple[float, float] = (-90.0, 90.0)
    cameras: torch.Tensor | None = None
    orbit: bool = True
    source: str = ""

    @classmethod
    def from_cameras(cls, c2w: torch.Tensor, source: str = "training cameras") -> CameraPrior:
        """The prior of training cameras ``c2w`` ``[N, 4, 4]`` (OpenCV axes).

        The centre is the least-squares point nearest to every optical axis (for an orbit, where they
        meet). ``up`` is the normal of the plane the cameras' x axes lie in when they do (upright cameras
        have level x axes, whatever their elevation), oriented along their image-up directions (-y axes);
        otherwise the mean of those image-up directions (a forward-facing capture), or world +z when they
        disagree (cameras with random roll). When the axes are nearly parallel (a forward-facing capture)
        there is no centre to orbit: ``orbit`` is False and only the training cameras serve as candidates.
        """
        c2w = torch.as_tensor(c2w, dtype=torch.float64).reshape(-1, 4, 4)
        eyes, fwd = c2w[:, :3, 3], c2w[:, :3, 2]
        # Sum over cameras of the projector onto the plane normal to each axis: A x = b is the normal
        # equation of "the point closest to all lines".
        P = torch.eye(3, dtype=torch.float64) - fwd[:, :, None] * fwd[:, None, :]
        A, b = P.sum(0), (P @ eyes[:, :, None]).sum(0)[:, 0]
        evals = torch.linalg.eigvalsh(A)
        orbit = len(c2w) >= 2 and bool(evals[0] > 0.05 * evals[-1])
        center = torch.linalg.solve(A, b) if orbit else eyes.mean(0)
        up = -c2w[:, :3, 1].mean(0)
        up = up / up.norm() if up.norm() > 0.5 else torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        # The mean image-up of cameras spread over a hemisphere leans by the sampling noise of their
        # azimuths (~5 degrees for 100 random views); their x axes, level when the cameras are upright,
        # pin the vertical exactly: the direction they have no component along.
        xs = c2w[:, :3, 0]
        xvals, xvecs = torch.linalg.eigh(xs.T @ xs / len(xs))
        if len(c2w) >= 3 and bool(xvals[0] < 0.05 * xvals[1]):
            normal = xvecs[:, 0]
            up = normal if float(normal @ up) >= 0 else -normal
        rel = eyes - center
        dist = rel.norm(dim=-1)
        elev = torch.rad2deg(torch.asin((rel @ up / dist.clamp_min(1e-12)).clamp(-1, 1)))
        return cls(
            center=center,
            radius_min=float(dist.min()),
            radius_max=float(dist.max()),
            up=up,
            elevation=(float(elev.min()), float(elev.max())),
            cameras=c2w,
            orbit=orbit,
            source=source,
        )

    @classmethod
    def from_bounds(
        cls, near: float, far: float, center=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0), source: str = ""
    ) -> CameraPrior:
        """A prior without cameras: a sphere of radius ``(near + far) / 2`` around ``center`` (the camera
        distance at which a scene rendered between ``near`` and ``far`` is centred in depth, e.g. 4 for
        NeRF-synthetic's 2 and 6), every elevation, ``up`` world +z."""
        r = 0.5 * (float(near) + float(far))
        up_t = torch.as_tensor(up, dtype=torch.float64)
        return cls(
            center=torch.as_tensor(center, dtype=torch.float64),
            radius_min=r,
            radius_max=r,
            up=up_t / up_t.norm(),
            source=source or f"sphere of radius (near + far) / 2 = {r:g}",
        )

    def to_json(self) -> dict:
        """A summary for reports (no camera list)."""
        return {
            "source": self.source,
            "center": [float(x) for x in self.center],
            "radius": [self.radius_min, self.radius_max],
            "up": [float(x) for x in self.up],
            "elevation_deg": list(self.elevation),
            "training_cameras": 0 if self.cameras is None else len(self.cameras),
            "orbit": self.orbit,
        }


# ------------------------------------------------------------------------------------------ candidates


def fibonacci_sphere(n: int) -> torch.Tensor:
    """``[n, 3]`` unit vectors spread evenly by area (z = 1 - (2 i + 1) / n, azimuth advancing by the golden
    angle), float64. Neighbours are about ``sqrt(4 pi / n)`` radians apart."""
    i = torch.arange(n, dtype=torch.float64)
    z = 1.0 - (2.0 * i + 1.0) / n
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    s = (1.0 - z * z).clamp_min(0.0).sqrt()
    return torch.stack([s * phi.cos(), s * phi.sin(), z], dim=-1)


def roll_about_axis(c2w: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """``[N, R, 4, 4]``: each camera ``c2w`` ``[N, 4, 4]`` turned about its own optical axis (camera z) by
    each of ``angles`` ``[R]`` radians (a right multiplication: the centre and the viewing direction stay)."""
    c, s = angles.cos(), angles.sin()
    Rz = torch.zeros(len(angles), 4, 4, dtype=c2w.dtype)
    Rz[:, 0, 0], Rz[:, 0, 1], Rz[:, 1, 0], Rz[:, 1, 1] = c, -s, s, c
    Rz[:, 2, 2] = Rz[:, 3, 3] = 1.0
    return c2w[:, None] @ Rz[None]


def _sphere_viewpoints(prior: CameraPrior, config: GlobalConfig, azimuth: float) -> torch.Tensor:
    """``[V, 4, 4]`` sphere cameras of the prior: Fibonacci directions in the elevation band, turned by
    ``azimuth`` radians about ``up``, at ``config.radii`` radii, looking at the centre."""
    dirs = fibonacci_sphere(config.viewpoints)  # z is "up" here
    lo, hi = prior.elevation
    lo, hi = max(-90.0, lo - config.elevation_margin), min(90.0, hi + config.elevation_margin)
    elev = torch.rad2deg(torch.asin(dirs[:, 2].clamp(-1, 1)))
    dirs = dirs[(elev >= lo - 1e-9) & (elev <= hi + 1e-9)]
    # A frame (e1, e2, up) of the world in which the directions were drawn.
    up = prior.up
    e1 = orthogonal_unit(up)
    e2 = torch.linalg.cross(up, e1, dim=-1)
    ca, sa = math.cos(azimuth), math.sin(azimuth)
    e1, e2 = ca * e1 + sa * e2, -sa * e1 + ca * e2
    world = dirs[:, :1] * e1 + dirs[:, 1:2] * e2 + dirs[:, 2:] * up
    if config.radii == 1:
        radii = torch.tensor([0.5 * (prior.radius_min + prior.radius_max)], dtype=torch.float64)
    else:
        radii = torch.linspace(prior.radius_min, prior.radius_max, config.radii, dtype=torch.float64)
    eyes = (prior.center + radii[:, None, None] * world[None]).reshape(-1, 3)
    return look_at(eyes, prior.center, up)


def candidate_poses(
    prior: CameraPrior, config: GlobalConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Candidate camera poses ``[N, 4, 4]`` (float64, OpenCV c2w) for a scene with this prior.

    Sphere viewpoints (when ``config.source`` allows and the prior is an orbit) and training cameras (when
    allowed and known), each at ``config.rolls`` in-plane rolls. With a ``generator`` the sphere is turned by
    a random azimuth and the rolls by a random offset within their spacing (so that repeated trials sample
    different grids); without one the grid is fixed.
    """
    azimuth = roll0 = 0.0
    if generator is not None:
        u, v = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        azimuth = 2 * math.pi * u
        # Within one roll spacing of the grid's (none with a single, upright roll: the scene's cameras are
        # upright, a random roll would leave no candidate that is).
        roll0 = (v - 0.5) * 2 * math.pi / config.rolls if config.rolls > 1 else 0.0
    views = []
    if config.source in ("both", "sphere") and prior.orbit:
        views.append(_sphere_viewpoints(prior, config, azimuth))
    if config.source in ("both", "cameras") and prior.cameras is not None:
        views.append(prior.cameras.to(torch.float64))
    if not views:  # e.g. "sphere" asked for a forward-facing capture: fall back to what exists
        views.append(
            prior.cameras if prior.cameras is not None else _sphere_viewpoints(prior, config, azimuth)
        )
    c2w = torch.cat(views)
    angles = roll0 + torch.arange(config.rolls, dtype=torch.float64) * (2 * math.pi / config.rolls)
    return roll_about_axis(c2w, angles).reshape(-1, 4, 4)


# ------------------------------------------------------------------------------------------ scoring


def low_resolution_target(target: PoseTarget, size: int) -> PoseTarget:
    """``target`` area-downsampled so that its long side is at most ``size`` pixels (intrinsics scaled with
    the image, pixel centres staying at +0.5); unchanged when already that small."""
    s = size / max(target.height, target.width)
    if s >= 1.0:
        return target
    camera = target.camera.scaled(s)
    # Area averaging: every low-resolution pixel is the mean of the pixels it covers (an anti-aliased
    # image, which the blurred scoring compares with blurred renders).
    image = torch.nn.functional.interpolate(
        target.image.permute(2, 0, 1)[None], size=(camera.height, camera.width), mode="area"
    )[0].permute(1, 2, 0)
    alpha = None
    if target.alpha is not None:
        alpha = torch.nn.functional.interpolate(
            target.alpha[None, None], size=(camera.height, camera.width), mode="area"
        )[0, 0]
    return PoseTarget(image=image.contiguous(), camera=camera, alpha=alpha)


def _score_problem(model: Model, target: PoseTarget, config: GlobalConfig) -> Problem:
    """The :class:`Problem` that scores candidates on the low-resolution, blurred target."""
    low = low_resolution_target(target, config.score_size)
    pose_cfg = PoseConfig(
        steps=0,
        n_rays=min(config.score_rays, low.height * low.width),
        sampling=SamplingConfig("random"),
        blur=BlurConfig(sigma=config.score_blur, steps=1, rays=config.score_blur_rays),
        ray_chunk=config.score_chunk,
        fast=False,  # scoring takes no gradient: nothing to capture
    )
    if config.score_samples:
        model = model.with_config(n_coarse=config.score_samples)
    return Problem(model, low, pose_cfg)


def score_candidates(
    model: Model, target: PoseTarget, candidates: torch.Tensor, config: GlobalConfig, seeds=0
) -> torch.Tensor:
    """Photometric loss ``[G, N]`` of candidates ``[N, 4, 4]`` or ``[G, N, 4, 4]`` (``G`` trials) on the
    low-resolution, blurred target: ``config.score_rays`` pixels per trial (seeded by ``seeds``, an int or
    ``G`` ints), the same pixels for every candidate of a trial, all candidates in one batched render."""
    device = target.image.device
    c2w0 = torch.as_tensor(candidates)
    c2w0 = (c2w0[None] if c2w0.ndim == 3 else c2w0).to(device=device, dtype=torch.float32)
    G, N = c2w0.shape[:2]
    seed_list = [seeds + g for g in range(G)] if isinstance(seeds, int) else list(seeds)
    with frozen_fields(model.coarse, model.fine), torch.no_grad():
        problem = _score_problem(model, target, config)
        pix = problem.sampler.sample(torch.tensor(seed_list, device=device), 0)
        xi = torch.zeros(G, N, 6, device=device)
        loss, _ = problem.evaluate(xi, c2w0, pix, need_grad=False, sigma=config.score_blur, step=0)
    return torch.nan_to_num(loss, nan=math.inf)


def _view_direction(c2w: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Unit direction from ``center`` to each camera ``[..., 3]``."""
    d = c2w[..., :3, 3] - center
    return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def select_diverse(
    candidates: torch.Tensor, scores: torch.Tensor, k: int, min_separation_deg: float, center: torch.Tensor
) -> torch.Tensor:
    """Indices ``[k]`` of the best-scoring candidates ``[N, 4, 4]`` (lowest ``scores`` ``[N]``) such that
    every two differ by at least ``min_separation_deg`` in viewing direction (seen from ``center``) or in
    orientation (geodesic angle); topped up best-first when too few are that far apart."""
    order = torch.argsort(scores).tolist()
    if min_separation_deg <= 0:
        return torch.tensor(order[:k])
    dirs = _view_direction(candidates, center.to(candidates.dtype))
    chosen: list[int] = []
    cos_min = math.cos(math.radians(min_separation_deg))
    for i in order:
        if len(chosen) == k:
            break
        if chosen:
            c = torch.tensor(chosen)
            near_dir = (dirs[c] @ dirs[i]) > cos_min
            near_rot = se3.rotation_error_deg(candidates[c], candidates[i]) < min_separation_deg
            if bool((near_dir & near_rot).any()):
                continue
        chosen.append(i)
    for i in order:  # too few distinct basins: fill with the best remaining
        if len(chosen) == k:
            break
        if i not in chosen:
            chosen.append(i)
    return torch.tensor(chosen)


def default_prune_steps(
    hypotheses: int, steps: int, survivors: int = 1, fraction: float = 0.5
) -> tuple[int, ...]:
    """Steps at which to halve ``hypotheses`` until at most ``survivors`` (at least 1) remain, evenly spread
    over the first ``fraction`` of a ``steps``-step solve (none for a single hypothesis)."""
    n = 0
    k = hypotheses
    while k > max(1, survivors):
        k //= 2
        n += 1
    if n == 0 or steps < 2:
        return ()
    span = max(1, round(steps * fraction))
    return tuple(sorted({max(1, min(steps - 1, round(span * (i + 1) / (n + 1)))) for i in range(n)}))


# ------------------------------------------------------------------------------------------ the search


@dataclass
class GlobalResult:
    """Outcome of :func:`localize` for ``G`` trials.

    Attributes:
        result: the refinement (:class:`PoseResult`, ``G`` problems of ``keep`` hypotheses); ``result.c2w``
            is the answer.
        candidates: ``[G, N, 4, 4]`` every candidate scored (float64, OpenCV c2w).
        scores: ``[G, N]`` their low-resolution loss (inf where not finite).
        chosen: ``[G, keep]`` indices of the refined candidates, best score first.
        score_seconds: wall time of candidate generation and scoring.
        refine_seconds: wall time of the refinement.
        prior: the camera prior used.
        config: the settings used.
        pose_config: the refinement's solver settings (with the pruning steps applied).
        retrieved: what retrieval seeding found (:class:`~inerf.pose.retrieval.RetrievalResult`; its poses
            are the last candidates of every trial), or None without it.
        retrieval_seconds: wall time of retrieval seeding (reference renders included; part of
            ``score_seconds``).
    """

    result: PoseResult
    candidates: torch.Tensor
    scores: torch.Tensor
    chosen: torch.Tensor
    score_seconds: float
    refine_seconds: float
    prior: CameraPrior
    config: GlobalConfig
    pose_config: PoseConfig
    retrieved: object = None
    retrieval_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return self.score_seconds + self.refine_seconds

    def record(self, g: int = 0) -> dict:
        """A summary of trial ``g`` for ``pose.json``."""
        return {
            "candidates": int(self.candidates.shape[1]),
            "refined": int(self.chosen.shape[1]),
            "best_score": float(self.scores[g].min()),
            "chosen_scores": [float(self.scores[g, i]) for i in self.chosen[g]],
            "score_seconds": self.score_seconds,
            "refine_seconds": self.refine_seconds,
            "prune_steps": list(self.pose_config.prune_steps),
            "prior": self.prior.to_json(),
            **(
                {"retrieval": {**self.retrieved.to_json(), "seconds": self.retrieval_seconds}}
                if self.retrieved is not None
                else {}
            ),
        }


def localize(
    model: Model,
    target: PoseTarget,
    prior: CameraPrior,
    config: GlobalConfig | None = None,
    pose_config: PoseConfig | None = None,
    *,
    trials: int = 1,
    seed: int = 0,
    progress: bool = False,
    desc: str = "global",
    references=None,
) -> GlobalResult:
    """The camera pose of ``target`` with no initial guess (see the module docstring).

    Args:
        model: the frozen fields and their render settings.
        target: the image and its intrinsics (its device is the solve's).
        prior: where the scene's cameras are (:class:`CameraPrior`).
        config: candidates, scoring and pruning (default :class:`GlobalConfig`).
        pose_config: the refinement's solver settings (default: the paper's); without ``prune_steps`` the
            automatic pruning of ``config`` is added.
        trials: independent searches solved together; trial 0 uses the fixed candidate grid, the others a
            grid turned by a random azimuth and roll (seeded by ``seed``) and their own pixel seeds.
        seed: seeds the pixel sampling (trial ``g``: ``seed + g``) and the grid offsets.
        references: with ``config.retrieval``, the :class:`~inerf.pose.retrieval.ReferenceViews` to match
            against (render them once with :func:`retrieval_references` to localise many images), or a
            :class:`ReferenceCache` that renders them on first use and keeps them for later calls; None:
            rendered here.
    Returns:
        :class:`GlobalResult`.
    """
    config = config or GlobalConfig()
    pose_config = pose_config or PoseConfig()
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    grids = [candidate_poses(prior, config, None if g == 0 else gen) for g in range(trials)]
    candidates = torch.stack(grids)  # [G, N, 4, 4]; every trial has the same count
    retrieved, t_ret = None, 0.0
    if config.retrieval:
        from inerf.pose.retrieval import RetrievalConfig, retrieve_poses

        t_r = time.perf_counter()
        if isinstance(references, ReferenceCache):
            refs = references.get(model, target, prior, config)
        elif references is not None:
            refs = references
        else:
            refs = retrieval_references(model, target, prior, config)
        retrieved = retrieve_poses(target, refs, RetrievalConfig(size=config.retrieval_size))
        if len(retrieved.c2w):  # the same retrieved poses join every trial's grid
            extra = retrieved.c2w.to(candidates.dtype)[None].expand(trials, -1, 4, 4)
            candidates = torch.cat([candidates, extra], dim=1)
        t_ret = time.perf_counter() - t_r
    scores = score_candidates(
        model, target, candidates, config, seeds=[seed + g for g in range(trials)]
    ).cpu()
    k = min(config.keep, candidates.shape[1])
    chosen = torch.stack(
        [
            select_diverse(candidates[g], scores[g], k, config.min_separation, prior.center)
            for g in range(trials)
        ]
    )
    starts = torch.stack([candidates[g, chosen[g]] for g in range(trials)])  # [G, k, 4, 4]
    if target.image.device.type == "cuda":
        torch.cuda.synchronize(target.image.device)
    t1 = time.perf_counter()
    if not pose_config.prune_steps and k > 1:
        prune = default_prune_steps(k, pose_config.steps, config.survivors, config.prune_fraction)
        pose_config = replace(pose_config, prune_steps=prune)
    result = estimate_pose(model, target, starts, pose_config, seeds=seed, progress=progress, desc=desc)
    t2 = time.perf_counter()
    return GlobalResult(
        result, candidates, scores, chosen, t1 - t0, t2 - t1, prior, config, pose_config, retrieved, t_ret
    )


def retrieval_references(model: Model, target: PoseTarget, prior: CameraPrior, config: GlobalConfig):
    """The reference views of retrieval seeding (:mod:`inerf.pose.retrieval`) for targets with the
    intrinsics of ``target``: renders (colour and depth) of the field at the prior's training cameras, or at
    ``config.retrieval_references`` upright sphere viewpoints when it has none, ``config.retrieval_size``
    pixels on the long side."""
    from inerf.pose.retrieval import render_references

    if prior.cameras is not None:
        poses = prior.cameras
    else:
        poses = candidate_poses(
            prior, replace(config, source="sphere", viewpoints=config.retrieval_references, rolls=1)
        )
    return render_references(model, poses, target.camera, config.retrieval_size)


class ReferenceCache:
    """Reference views of retrieval seeding, rendered once and reused by every :func:`localize` call that
    passes this cache as ``references`` (localising many images: the renders are most of retrieval's cost).

    One cache serves one model and one prior (what a localisation call or a benchmark holds fixed). Views are
    kept per target intrinsics and retrieval settings, since the references are rendered with the target's
    camera scaled to ``retrieval_size``.

    Attributes:
        renders: how many sets of reference views were rendered (the others were reused).
    """

    def __init__(self) -> None:
        self._views: dict[tuple, object] = {}
        self.renders = 0

    @staticmethod
    def key(target: PoseTarget, config: GlobalConfig) -> tuple:
        """What the reference views depend on besides the model and prior: the target's intrinsics and size,
        the retrieval size and the sphere viewpoint count (used when the prior has no training cameras)."""
        cam = target.camera
        intrinsics = tuple(round(v, 6) for v in cam.intrinsics(0))
        return (*intrinsics, cam.height, cam.width, config.retrieval_size, config.retrieval_references)

    def get(self, model: Model, target: PoseTarget, prior: CameraPrior, config: GlobalConfig):
        """The :class:`~inerf.pose.retrieval.ReferenceViews` for ``target`` (rendered on the first call)."""
        k = self.key(target, config)
        if k not in self._views:
            self._views[k] = retrieval_references(model, target, prior, config)
            self.renders += 1
        return self._views[k]

    def __len__(self) -> int:
        return len(self._views)
