"""A fast radiance field: TensoRF vector-matrix factorised grids, a tiny MLP, and empty-space skipping.

Model (TensoRF-VM, Chen et al. 2022, §4). Points are normalised to the box ``aabb``,
``u = 2 (xyz - lo) / (hi - lo) - 1`` in ``[-1, 1]^3``. For the three axis pairs
``(a, b | c) in {(x, y | z), (x, z | y), (y, z | x)}`` a plane ``P_k [C, R_b, R_a]`` is sampled bilinearly
at ``(u_a, u_b)`` and a line ``L_k [C, R_c]`` linearly at ``u_c``; their product ``f_k = P_k(u_a, u_b) *
L_k(u_c)`` is ``[C]`` per point, ``C = Cd + Ca`` channels (density components, then appearance ones):

    sigma = density_scale * softplus(sum_k sum_{i < Cd} f_k[i] + density_shift)        [N]
    feat  = B [f_0[Cd:], f_1[Cd:], f_2[Cd:]]                     B: [app_dim, 3 Ca]  -> [N, app_dim]
    rgb   = sigmoid(MLP([feat, gamma(viewdir)]))                 two ReLU layers of mlp_width -> [N, 3]

Each product is rank one in (plane, line), so the density is a sum of 3 Cd separable terms: a box
``1[x0<x<x1] 1[y0<y<y1] 1[z0<z<z1]`` is exactly one of them (the benchmark builds a chair from six).

Why TensoRF and not a hash grid or a dense grid. The binding constraint is a pose step (forward and
backward of 1024 rays with respect to the camera) in 50 ms on two CPU cores, so gradients with respect to
sample positions must flow through the encoding cheaply. ``F.grid_sample`` gives them from one vectorised
ATen kernel per plane, on CPU and GPU. Measured on the 2-core CPU at 65 k points, forward and backward with
respect to the points: three 2-D planes of 24 channels take 15 ms, while 3-D ``grid_sample`` (what a dense
voxel grid, or each level of a hash grid written in plain PyTorch, needs) takes 38 ms for only 4 channels;
a hash grid adds 16 levels of 8-corner gathers and hashing. The factorisation also keeps the weights small:
the default final field (about 160^3 voxels, 8 + 24 components per plane) is about 2.5 M numbers, 5 MB
with float16 planes in safetensors.

Empty-space skipping. On the same CPU the whole field costs about 1 us per point forward and backward, so
the 65 k samples of 1024 rays x 64 would use the budget alone; but an object fills a few percent of its
box (5.5 % of the samples of rays aimed at the benchmark chair). The field owns an
:class:`~inerf.fields.occupancy.OccupancyGrid` and **defines** density (and colour) as zero outside it;
:meth:`GridField.forward` then evaluates only the occupied points and scatters zeros elsewhere. Because the mask is part of the field, skipping is exact: any
renderer (``inerf.render.render_rays``) gets the same values and gradients as from evaluating every point
(:meth:`GridField.forward` with ``skip_empty=False``, tested), and it needs to know nothing about grids.
The mask gets no gradient; a sample's gradient with respect to its position is zero in empty cells.

Fast path and reference. :meth:`GridField.forward` interpolates with ``F.grid_sample``
(``align_corners=True``: the first and last grid vertices sit on the box faces; ``padding_mode="border"``,
irrelevant in practice because points outside the box are empty). The slow reference beside it,
:func:`inerf.fields._reference.grid_forward_reference`, does the same with explicit index arithmetic
(floor, clamp, four-corner gather), evaluates every point and multiplies by the mask. Tests assert that
the two agree in values and in gradients with respect to points and parameters.

Sampling inside the box. ``render_rays`` gives the last sample an open interval (delta = 1e10, as in NeRF).
A softplus density is small but never exactly zero inside the box until the occupancy grid has carved the
empty space, so with a fixed ``far`` that ends inside the box (Blender: cameras at 4.5, far = 6, box corners
at 2.6) the last sample is opaque, its saturated alpha has no gradient, and training learns a white shell
instead of the object (measured: 17 dB after 2000 steps on the chair, then an empty occupancy grid).
:meth:`GridField.ray_bounds` returns per-ray ``near, far`` that span the box and put the last sample just
outside it; training must use them. A trained field is exactly zero outside its occupancy grid, so pose
estimation and evaluation may use either these bounds or the plain ``near``/``far``.

Training hooks (TensoRF's schedule; all steps in :class:`GridConfig`): call :meth:`GridField.on_train_step`
once per step before the loss; it updates the occupancy grid, shrinks the box to the occupied region and
upsamples the grids at the configured steps, and returns True when it replaced the parameter tensors, after
which the optimiser must be rebuilt from :meth:`GridField.param_groups`. Add :meth:`GridField.regularization`
to the loss. :meth:`GridField.samples_per_ray` gives a sample count that keeps the sample spacing at
``step_ratio`` voxels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from inerf.device import in_graph_capture
from inerf.fields.encoding import PositionalEncoding
from inerf.fields.occupancy import OccupancyGrid, resize_to_state

__all__ = [
    "PACKED_QUERY_DEVICES",
    "PLANE_AXES",
    "GridConfig",
    "GridField",
    "ray_aabb_intersect",
]

PLANE_AXES = ((0, 1, 2), (0, 2, 1), (1, 2, 0))
"""``(a, b, c)`` per factor: plane over axes ``(a, b)`` (``a`` indexes its width), line along ``c``."""

FUSED_FACTORS = True
"""On CUDA, compute :meth:`GridField._query_packed`'s factors in one Triton kernel
(:mod:`inerf.fields._triton_grid`) instead of ``grid_sample`` and products, for queries of at least
:data:`FUSED_FACTORS_MIN_POINTS` points. Equal to float rounding (tested in Triton's interpreter)."""

FUSED_FACTORS_MIN_POINTS = 262_144
"""Smallest query that takes the factor kernel. Measured on an H200 (``bench_pose_speed.py --paths fast
fast-vmkernel``, 2026-11-30): 64 hypotheses x 300 steps (about 950 k pooled points per step) 4.09 -> 3.18 s
with it; a single solve (about 30 k points per step at 2048 rays) 0.29 -> 0.52 s over 300 steps, so small
queries keep the ``grid_sample`` path."""


def vm_factors_torch(xyz, grids, coord_w, coord_b, cd: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference of :func:`inerf.fields._triton_grid.vm_factors` with ``grid_sample`` on the channels-first
    packed textures ``grids [6, C, Hm, Wm]``: ``(f [N, 3 C], raw [N])``."""
    n, C = xyz.shape[0], grids.shape[1]
    coords = (xyz[None, :, None, :] * coord_w[:, None]).sum(-1) + coord_b[:, None]
    out = F.grid_sample(
        grids, coords.view(6, 1, n, 2), mode="bilinear", padding_mode="border", align_corners=True
    )
    plane, line = out.view(2, 3, C, n).unbind(0)
    f = plane * line
    return f.permute(2, 0, 1).reshape(n, 3 * C), f[:, :cd].sum((0, 1))


def _fused_factors(xyz: torch.Tensor, packed: dict, cd: int):
    """``(f [N, 3 C], raw [N])`` from the Triton kernel when :data:`FUSED_FACTORS` is on, the query is large
    enough and the kernel can run here;
    None otherwise (or after a kernel that failed to build: one warning, then the torch ops)."""
    global FUSED_FACTORS
    if not (
        FUSED_FACTORS
        and xyz.is_cuda
        and xyz.dtype == torch.float32
        and xyz.shape[0] >= FUSED_FACTORS_MIN_POINTS
    ):
        return None
    try:
        from inerf.fields._triton_grid import vm_factors

        if "grids_cl" not in packed:
            packed["grids_cl"] = packed["grids"].permute(0, 2, 3, 1).contiguous()
        return vm_factors(xyz, packed["grids_cl"], packed["coord_w"], packed["coord_b"], cd)
    except Exception as exc:  # a kernel that does not build: the torch ops serve
        if in_graph_capture():  # possibly the capture's failure, not the kernel's: the capture is retried
            raise
        FUSED_FACTORS = False
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        warnings.warn(f"grid field: Triton factor kernel unusable, using torch ops ({first})", stacklevel=3)
        return None


PACKED_QUERY_DEVICES = {"cuda"}
"""Device types on which a frozen field is queried through :meth:`GridField._query_packed`. Its few batched
ops pay on a GPU, where a pose step replayed from a CUDA graph is bound by its kernel count; on the CPU the
per-plane path is faster (the demo field, 40 k points forward and backward on one core: 48 ms per plane,
70 ms packed: a width-1 line is cheaper to sample than a line padded to a plane's size), so the CPU keeps it.
Tests and ``benchmarks/count_pose_ops.py`` add ``"cpu"`` to run the packed path on the CPU."""


@dataclass
class GridConfig:
    """A TensoRF-VM field, its occupancy grid and its training schedule.

    The defaults are the GPU preset for a 400x400 Blender object in a ``[-1.5, 1.5]^3`` box, with TensoRF's
    schedule (tens of thousands of steps of 4096 rays); :meth:`cpu` is the preset for small scenes trained
    on a few CPU cores.
    """

    aabb: tuple[float, float, float, float, float, float] = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
    """Scene box ``(x0, y0, z0, x1, y1, z1)``; everything outside is empty. Objects normalised to a cube of
    side 2 fit in the default (the Blender chair fits in +-1.2)."""
    n_voxels_init: int = 128**3
    """Voxels (product of the three per-axis resolutions) at the start; the per-axis resolutions follow the
    box's aspect ratio."""
    n_voxels_final: int = 160**3
    """Voxels after the last upsampling step (counted in the possibly shrunk box)."""
    density_components: int = 8
    """Density components per plane/line pair (``Cd``)."""
    appearance_components: int = 24
    """Appearance components per plane/line pair (``Ca``)."""
    appearance_dim: int = 27
    """Width of the appearance feature fed to the MLP (output of the basis matrix ``B``)."""
    mlp_width: int = 64
    """Width of the two hidden layers of the colour MLP."""
    view_dependent: bool = True
    """Colour depends on the view direction (fed to the MLP through a positional encoding)."""
    view_freqs: int = 2
    """Frequencies of the view-direction encoding."""
    density_shift: float = -10.0
    """Added before the softplus: a fresh field (features near 0) starts almost empty, sigma ~ 1e-3."""
    density_scale: float = 25.0
    """Multiplies the softplus (TensoRF's ``distance_scale``): a summed feature of 10 gives sigma = 17 per
    unit, 20 gives 250 (opaque within a voxel)."""
    init_scale: float = 0.1
    """Standard deviation of the initial plane and line values."""
    occupancy_resolution: int = 128
    """Most cells of the occupancy grid along an axis (cells are never smaller than a voxel)."""
    occupancy_threshold: float = 1e-3
    """A cell is empty when one cell length of ray through its centre absorbs less than this (alpha)."""
    occupancy_steps: tuple[int, ...] = (2000, 4000)
    """Training steps at which :meth:`GridField.on_train_step` rebuilds the occupancy grid."""
    shrink: bool = True
    """At the first occupancy update, crop the box to the occupied cells (more voxels on the object)."""
    upsample_steps: tuple[int, ...] = (2000, 3000, 4000, 5500, 7000)
    """Training steps at which the voxel count grows, log-uniformly from ``n_voxels_init`` to
    ``n_voxels_final``."""
    lr_grid: float = 0.02
    """Adam learning rate of the planes and lines."""
    lr_network: float = 1e-3
    """Adam learning rate of the basis matrix and the MLP."""
    l1_weight: float = 8e-5
    """Weight of the L1 norm of the density factors (sparsity: clears floaters) before the first occupancy
    update."""
    l1_weight_after_occupancy: float = 4e-5
    """Weight of that L1 norm once the occupancy grid exists."""
    tv_weight_density: float = 0.0
    """Weight of the total variation of the density factors (useful with few views)."""
    tv_weight_appearance: float = 0.0
    """Weight of the total variation of the appearance factors."""
    step_ratio: float = 0.5
    """Sample spacing in voxels suggested by :meth:`GridField.samples_per_ray`."""

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists.
        self.aabb = tuple(float(v) for v in self.aabb)  # type: ignore[assignment]
        self.occupancy_steps = tuple(int(s) for s in self.occupancy_steps)
        self.upsample_steps = tuple(int(s) for s in self.upsample_steps)
        if len(self.aabb) != 6 or any(self.aabb[i] >= self.aabb[i + 3] for i in range(3)):
            raise ValueError(f"aabb must be (x0, y0, z0, x1, y1, z1) with x0 < x1 etc., got {self.aabb}")

    @classmethod
    def cpu(cls, **overrides) -> GridConfig:
        """Preset for small scenes (about 200x200) trained for minutes on a few CPU cores.

        Coarser grids, fewer components and an earlier schedule: each step is ~30x cheaper than with the
        GPU preset and the schedule fits ~1-2 k steps.
        """
        base = {
            "n_voxels_init": 48**3,
            "n_voxels_final": 112**3,
            "density_components": 8,
            "appearance_components": 12,
            "appearance_dim": 16,
            "mlp_width": 32,
            "occupancy_resolution": 96,
            "occupancy_steps": (300, 700),
            "upsample_steps": (300, 500, 700),
            "step_ratio": 1.0,
        }
        base.update(overrides)
        return cls(**base)


def _resolution_for(aabb: torch.Tensor, n_voxels: int) -> tuple[int, int, int]:
    """Per-axis vertex counts (voxels + 1) with near-cubic voxels and about ``n_voxels`` voxels in
    ``aabb [2, 3]``."""
    ext = (aabb[1] - aabb[0]).double()
    voxel = (ext.prod() / n_voxels) ** (1.0 / 3.0)
    return tuple(max(1, round(e)) + 1 for e in (ext / voxel).tolist())  # type: ignore[return-value]


def ray_aabb_intersect(origins: torch.Tensor, directions: torch.Tensor, aabb: torch.Tensor):
    """Slab test: ``(t_enter [R], t_exit [R])`` of rays ``o + t d`` (``[R, 3]`` each) with ``aabb [2, 3]``.

    ``t_enter > t_exit`` for rays that miss the box. Components of ``d`` that are exactly zero give
    infinite slab distances (the ray is parallel to that slab), handled by ``where`` rather than 0 * inf.
    """
    lo, hi = aabb.to(origins.dtype)
    safe = torch.where(directions == 0, torch.full_like(directions, 1e-30), directions)
    t0, t1 = (lo - origins) / safe, (hi - origins) / safe
    return torch.minimum(t0, t1).amax(-1), torch.maximum(t0, t1).amin(-1)


class GridField(nn.Module):
    """``(xyz [N, 3], viewdirs [N, 3] or None) -> (rgb [N, 3] in [0, 1], sigma [N] >= 0)``, see the module
    docstring for the model.

    State (all in ``state_dict``, so a checkpoint restores the exact field whatever the grid sizes; a fresh
    ``GridField(config)`` adopts the checkpoint's shapes in ``load_state_dict``):

    * ``aabb [2, 3]``: the current box (the config's, or the shrunk one).
    * ``planes.k [1, C, R_b, R_a]`` and ``lines.k [1, C, R_c, 1]`` for ``(a, b, c) = PLANE_AXES[k]``;
      channels ``[:Cd]`` are density components, ``[Cd:]`` appearance ones.
    * ``basis.weight [app_dim, 3 Ca]``, ``mlp.*``: the colour network.
    * ``occupancy.aabb``, ``occupancy.mask``: the occupancy grid (one occupied cell until updated).
    """

    def __init__(self, config: GridConfig | None = None):
        super().__init__()
        self.config = cfg = config or GridConfig()
        self.register_buffer("aabb", torch.tensor(cfg.aabb, dtype=torch.float32).reshape(2, 3))
        res = _resolution_for(self.aabb, cfg.n_voxels_init)
        C = cfg.density_components + cfg.appearance_components
        g = torch.Generator().manual_seed(0)  # same initial field for the same config
        self.planes = nn.ParameterList(
            nn.Parameter(cfg.init_scale * torch.randn(1, C, res[b], res[a], generator=g))
            for a, b, _ in PLANE_AXES
        )
        self.lines = nn.ParameterList(
            nn.Parameter(cfg.init_scale * torch.randn(1, C, res[c], 1, generator=g)) for _, _, c in PLANE_AXES
        )
        self.basis = nn.Linear(3 * cfg.appearance_components, cfg.appearance_dim, bias=False)
        self.dir_enc = PositionalEncoding(cfg.view_freqs) if cfg.view_dependent else None
        in_dim = cfg.appearance_dim + (self.dir_enc.out_dim if self.dir_enc is not None else 0)
        w = cfg.mlp_width
        self.mlp = nn.Sequential(nn.Linear(in_dim, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 3))
        self.occupancy = OccupancyGrid(self.aabb)

    # ---------------------------------------------------------------- geometry of the grids

    @property
    def resolution(self) -> tuple[int, int, int]:
        """Vertices per axis ``(R_x, R_y, R_z)``."""
        r = [0, 0, 0]
        for (a, b, _), p in zip(PLANE_AXES, self.planes):
            r[a], r[b] = p.shape[3], p.shape[2]
        return tuple(r)  # type: ignore[return-value]

    @property
    def voxel_size(self) -> torch.Tensor:
        """``[3]`` edge lengths of a voxel (the spacing of grid vertices) in scene units."""
        res = torch.tensor(self.resolution, dtype=self.aabb.dtype, device=self.aabb.device)
        return (self.aabb[1] - self.aabb[0]) / (res - 1)

    def normalize(self, xyz: torch.Tensor) -> torch.Tensor:
        """World points ``[N, 3]`` -> box coordinates ``[N, 3]``, in ``[-1, 1]`` inside the box."""
        lo, hi = self.aabb.to(xyz.dtype)
        return (xyz - lo) * (2.0 / (hi - lo)) - 1.0

    def occupied(self, xyz: torch.Tensor) -> torch.Tensor:
        """``bool [N]``: inside the box and in an occupied cell; the field is zero everywhere else."""
        lo, hi = self.aabb.to(xyz.dtype)
        inside = ((xyz >= lo) & (xyz <= hi)).all(-1)
        if self._same_box():  # the occupancy grid tiles this same box (always, once updated): test it once
            return self.occupancy(xyz, inside)
        return inside & self.occupancy(xyz)

    def occupied_along_rays(self, origins, step, t, budget: int, seg=None):
        """``(index, valid, t_c, seg_c)`` of each ray's first ``budget`` occupied samples at
        ``origins + step * t`` (:meth:`OccupancyGrid.compact_along_rays`) when the occupancy grid tiles the
        field's box and the fused kernel is available; None otherwise (the caller tests the samples)."""
        from inerf.rays.occupied import fused_available

        if not (fused_available(origins) and self._same_box()):
            return None
        return self.occupancy.compact_along_rays(origins, step, t, budget, seg)

    def _same_box(self) -> bool:
        """Whether the occupancy grid's box is the field's (checked once per state of the two boxes)."""
        key = tuple((id(t), t._version, t.data_ptr()) for t in (self.aabb, self.occupancy.aabb))
        cached = getattr(self, "_same_box_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, bool(torch.equal(self.aabb, self.occupancy.aabb.to(self.aabb))))
            self._same_box_cache = cached
        return cached[1]

    @torch.no_grad()
    def ray_bounds(
        self, origins: torch.Tensor, directions: torch.Tensor, near: float, n_samples: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-ray ``(near [R], far [R])`` spanning the box, for ``render_rays(..., near=, far=)`` with
        ``n_samples`` stratified samples per ray (``RenderConfig.n_coarse``), jittered or not.

        Why: the renderer gives the last sample an open interval (delta = 1e10, as in NeRF). Inside the box
        a softplus density is small but never zero until the occupancy grid has carved empty space, so a
        last sample inside the box is opaque, and stays so, since its saturated alpha has no gradient.
        Here ``near = max(near, t_enter)`` and ``far`` lies one bin past ``t_exit``: with ``S`` samples
        over ``[near, far]`` and ``L = t_exit - near``, ``far = t_exit + L / (S - 2)`` puts the whole last
        jitter bin ``[far - w / 2, far]`` (``w = L / (S - 2)``) outside the box, where the field is exactly
        zero. All other samples land where the field can be non-zero. Rays that miss the box get
        ``near = far`` (every sample at one empty point). Detached: samples follow the rays (so a pose
        gets gradients), their distances do not.
        """
        if n_samples < 3:
            raise ValueError(f"ray_bounds needs at least 3 samples per ray, got {n_samples}")
        t_in, t_out = ray_aabb_intersect(origins, directions, self.aabb)
        near_t = t_in.clamp_min(near)
        hit = t_out > near_t
        length = (t_out - near_t).clamp_min(0)
        far_t = t_out + length / (n_samples - 2) + 1e-4  # + 1e-4: a grazing exit is not lost to rounding
        near_t = torch.where(hit, near_t, torch.full_like(near_t, near))
        return near_t, torch.where(hit, far_t, near_t)

    def samples_per_ray(self, near: float, far: float) -> int:
        """Samples per ray that space ``[near, far]`` at ``step_ratio`` times the mean voxel edge.

        Our rays have unit z, so a step in ``t`` is at least as long in space; the suggestion is a lower
        bound on the density of samples off the optical axis.
        """
        step = self.config.step_ratio * self.voxel_size.mean().item()
        return max(2, math.ceil((far - near) / step - 1e-4))  # tolerance: float32 voxel sizes

    # ---------------------------------------------------------------- the field

    def _check(self, xyz: torch.Tensor, viewdirs: torch.Tensor | None) -> None:
        if xyz.ndim != 2 or xyz.shape[-1] != 3:
            raise ValueError(f"xyz must be [N, 3], got {tuple(xyz.shape)}")
        if self.config.view_dependent:
            if viewdirs is None:
                raise ValueError("this field is view-dependent: pass viewdirs")
            if viewdirs.shape != xyz.shape:
                raise ValueError(
                    f"viewdirs must be [N, 3] like xyz {tuple(xyz.shape)}, got {tuple(viewdirs.shape)}"
                )

    def _factors(self, u: torch.Tensor, channels: int | None = None) -> list[torch.Tensor]:
        """Fast path: ``f_k = P_k(u_a, u_b) * L_k(u_c)``, one ``[C, N]`` per plane, for ``u [N, 3]``; only
        the first ``channels`` channels if given (the density components)."""
        n = u.shape[0]
        zeros = torch.zeros_like(u[:, 0])
        out = []
        for (a, b, c), plane, line in zip(PLANE_AXES, self.planes, self.lines):
            plane, line = plane[:, :channels], line[:, :channels]
            # grid_sample wants [1, H_out, W_out, 2] with (x -> width, y -> height); one row of N points.
            gp = torch.stack([u[:, a], u[:, b]], -1).view(1, 1, n, 2)
            gl = torch.stack([zeros, u[:, c]], -1).view(1, 1, n, 2)  # the line is an [R_c x 1] image
            p = F.grid_sample(plane, gp, mode="bilinear", padding_mode="border", align_corners=True)
            ln = F.grid_sample(line, gl, mode="bilinear", padding_mode="border", align_corners=True)
            out.append(p.view(plane.shape[1], n) * ln.view(line.shape[1], n))  # explicit C: n may be 0
        return out

    def _sigma(self, factors: list[torch.Tensor]) -> torch.Tensor:
        """Density ``[N]`` from the factors ``3 x [C, N]`` (their first ``Cd`` channels)."""
        cd = self.config.density_components
        raw = sum(f[:cd].sum(0) for f in factors)
        return self.config.density_scale * F.softplus(raw + self.config.density_shift)

    def _decode(self, factors: list[torch.Tensor], viewdirs: torch.Tensor | None):
        """Factors ``3 x [C, N]`` -> ``(rgb [N, 3], sigma [N])``."""
        cd = self.config.density_components
        app = torch.cat([f[cd:] for f in factors], 0).t()  # [N, 3 Ca]
        h = self.basis(app)
        if self.dir_enc is not None:
            h = torch.cat([h, self.dir_enc(viewdirs.to(h.dtype))], -1)
        return torch.sigmoid(self.mlp(h)), self._sigma(factors)

    def query(self, xyz: torch.Tensor, viewdirs: torch.Tensor | None = None):
        """The unmasked field (fast path) at every point: ``(rgb [N, 3], sigma [N])``.

        Defined everywhere (border-clamped outside the box); :meth:`forward` applies the box and the mask.
        A frozen field (no parameter requires a gradient: pose solves, rendering) on a GPU
        (:data:`PACKED_QUERY_DEVICES`) is evaluated by :meth:`_query_packed`, the same function in fewer,
        batched ops.
        """
        self._check(xyz, viewdirs)
        packed = self._packed() if xyz.device.type in PACKED_QUERY_DEVICES else None
        if packed is not None:
            return self._query_packed(xyz, viewdirs, packed)
        return self._decode(self._factors(self.normalize(xyz)), viewdirs)

    def _packed(self) -> dict[str, torch.Tensor] | None:
        """The frozen field's factors packed for :meth:`_query_packed` (None if a parameter requires a
        gradient: training needs the per-plane path, whose gradients reach the parameters).

        ``grids [6, C, Hm, Wm]``: the three planes, then the three lines, each edge-padded (replicated) to
        the largest height ``Hm`` and width ``Wm``, so that one ``grid_sample`` reads all six. Replicated
        edges keep ``padding_mode="border"`` exact: beyond a grid's own edge the padded vertices repeat it,
        as the clamp would (value and zero coordinate gradient). A line ``[C, R_c, 1]`` repeated across the
        width is read at x = -1, exactly its first column. ``coord_w [6, 2, 3]``, ``coord_b [6, 2]``: the
        affine maps from world points to the six ``grid_sample`` coordinates (the box normalisation and each
        grid's padding rescale folded in). ``basis [3 C, app_dim]``: the basis matrix with zero rows at the
        density channels, so the appearance feature is one product with all factors.

        Built once per parameter state (keyed on the tensors' identities, versions and storage) and reused.
        """
        params = [*self.planes, *self.lines, self.basis.weight, self.aabb]
        if any(p.requires_grad for p in params):
            return None
        key = tuple((id(p), p._version, p.data_ptr(), p.dtype, p.device) for p in params)
        cached = getattr(self, "_packed_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad():
            packed = self._pack()
        self._packed_cache = (key, packed)
        return packed

    def _pack(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        grids = [p[0] for p in self.planes] + [ln[0] for ln in self.lines]  # [C, H, W] each
        Hm = max(g.shape[1] for g in grids)
        Wm = max(g.shape[2] for g in grids)
        padded = torch.stack(
            [F.pad(g[None], (0, Wm - g.shape[2], 0, Hm - g.shape[1]), mode="replicate")[0] for g in grids]
        )
        dtype, device = padded.dtype, padded.device
        lo, hi = self.aabb.to(dtype)
        scale = 2.0 / (hi - lo)  # u = (xyz - lo) * scale - 1, the box coordinates of normalize()

        def ratio(n: int, m: int) -> float:  # grid coordinate of u for n vertices padded to m: (u + 1) r - 1
            return (n - 1) / (m - 1) if m > 1 else 1.0

        w = torch.zeros(6, 2, 3, dtype=dtype, device=device)
        b = torch.full((6, 2), -1.0, dtype=dtype, device=device)
        for k, (a, bb, c) in enumerate(PLANE_AXES):
            H, W = grids[k].shape[1:]
            for j, (axis, r) in enumerate(((a, ratio(W, Wm)), (bb, ratio(H, Hm)))):
                w[k, j, axis] = scale[axis] * r
                b[k, j] = -lo[axis] * scale[axis] * r - 1.0
            r = ratio(grids[3 + k].shape[1], Hm)
            w[3 + k, 1, c] = scale[c] * r  # row 0 stays (0, -1): x = -1, the line's first column
            b[3 + k, 1] = -lo[c] * scale[c] * r - 1.0
        C, cd = padded.shape[1], cfg.density_components
        basis = torch.zeros(3, C, cfg.appearance_dim, dtype=self.basis.weight.dtype, device=device)
        basis[:, cd:] = self.basis.weight.t().reshape(3, C - cd, -1)
        packed = {"grids": padded, "coord_w": w, "coord_b": b, "basis": basis.reshape(3 * C, -1)}
        if self.dir_enc is not None:
            # Frequencies and phases (0, pi / 2) per sin row of the encoding, pi / 2 rounded in this dtype.
            n_freqs = self.dir_enc.n_freqs
            freqs = self.dir_enc._freqs[0].to(dtype)
            phases = torch.tensor([0.0, math.pi / 2] * n_freqs, dtype=dtype, device=device)[:, None]
            packed.update(enc_freqs=freqs, enc_phases=phases)
        return packed

    def _query_packed(self, xyz: torch.Tensor, viewdirs: torch.Tensor | None, packed: dict):
        """:meth:`query` of a frozen field from :meth:`_packed`: one ``grid_sample`` for all planes and lines,
        one product for the appearance feature, the view encoding in one ``sin``. Equal to the per-plane
        path to float rounding (tested, values and gradients with respect to points and directions)."""
        cfg = self.config
        n = xyz.shape[0]
        grids = packed["grids"]
        C = grids.shape[1]
        fused = _fused_factors(xyz, packed, cfg.density_components)
        if fused is not None:
            f_points, raw = fused  # [N, 3 C] point-major, [N]
            sigma = cfg.density_scale * F.softplus(raw + cfg.density_shift)
            return self._appearance(f_points @ packed["basis"], viewdirs, packed), sigma
        # [6, N, 2] grid coordinates: x * w summed over the 3 axes (one non-zero term: exact), plus b.
        coords = (xyz[None, :, None, :] * packed["coord_w"][:, None]).sum(-1) + packed["coord_b"][:, None]
        out = F.grid_sample(
            grids, coords.view(6, 1, n, 2), mode="bilinear", padding_mode="border", align_corners=True
        )
        plane, line = out.view(2, 3, C, n).unbind(0)
        f = plane * line  # [3, C, N]: the factors f_k
        raw = f[:, : cfg.density_components].sum((0, 1))
        sigma = cfg.density_scale * F.softplus(raw + cfg.density_shift)
        h = f.view(3 * C, n).t() @ packed["basis"]  # [N, app_dim]
        return self._appearance(h, viewdirs, packed), sigma

    def _appearance(self, h: torch.Tensor, viewdirs, packed: dict) -> torch.Tensor:
        """The colour from the appearance feature ``h [N, app_dim]`` and the view directions."""
        if self.dir_enc is not None:
            v = viewdirs.to(h.dtype)
            # sin(f v + phase): cos as a shifted sin, so sines and cosines of all frequencies in one op.
            z = torch.addcmul(packed["enc_phases"], v[:, None, :], packed["enc_freqs"])
            parts = [h, v] if self.dir_enc.include_input else [h]
            h = torch.cat([*parts, torch.sin(z).flatten(1)], -1)
        return torch.sigmoid(self.mlp(h))

    def forward(self, xyz: torch.Tensor, viewdirs: torch.Tensor | None = None, *, skip_empty: bool = True):
        """``(rgb [N, 3], sigma [N])``; zero outside :meth:`occupied`.

        With ``skip_empty`` (default) only occupied points are evaluated and zeros are scattered elsewhere;
        ``skip_empty=False`` evaluates every point and multiplies by the mask (same values and gradients,
        used to test the skipping).
        """
        self._check(xyz, viewdirs)
        keep = self.occupied(xyz)
        if not skip_empty:
            rgb, sigma = self.query(xyz, viewdirs)
            m = keep.to(sigma.dtype)
            return rgb * m[:, None], sigma * m
        idx = keep.nonzero().squeeze(1)
        d = viewdirs[idx] if self.dir_enc is not None else None
        rgb_k, sigma_k = self.query(xyz[idx], d)
        # Out-of-place index_copy: differentiable with respect to the copied values, zeros elsewhere.
        rgb = torch.zeros(xyz.shape[0], 3, dtype=rgb_k.dtype, device=xyz.device).index_copy(0, idx, rgb_k)
        sigma = torch.zeros(xyz.shape[0], dtype=sigma_k.dtype, device=xyz.device).index_copy(0, idx, sigma_k)
        return rgb, sigma

    def density(self, xyz: torch.Tensor) -> torch.Tensor:
        """``sigma [N]`` alone (density channels only, no colour network), zero outside :meth:`occupied`."""
        idx = self.occupied(xyz).nonzero().squeeze(1)
        sigma = self._sigma(self._factors(self.normalize(xyz[idx]), self.config.density_components))
        return torch.zeros(xyz.shape[0], dtype=sigma.dtype, device=xyz.device).index_copy(0, idx, sigma)

    # ---------------------------------------------------------------- training

    def param_groups(self, lr: float | None = None) -> list[dict]:
        """Adam parameter groups: grids at ``lr`` (default ``config.lr_grid``), basis and MLP at
        ``lr * lr_network / lr_grid`` (so a decayed ``lr`` decays both)."""
        cfg = self.config
        lr = cfg.lr_grid if lr is None else lr
        grids = list(self.planes) + list(self.lines)
        network = list(self.basis.parameters()) + list(self.mlp.parameters())
        return [
            {"params": grids, "lr": lr, "name": "grids"},
            {"params": network, "lr": lr * cfg.lr_network / cfg.lr_grid, "name": "network"},
        ]

    def regularization(self) -> torch.Tensor:
        """Scalar to add to the loss: weighted L1 of the density factors (mean absolute value of planes and
        lines) and total variation (mean squared difference of neighbouring vertices) of the density and
        appearance factors. The L1 weight drops to ``l1_weight_after_occupancy`` once the occupancy grid
        has been computed, as in TensoRF."""
        cfg = self.config
        cd = cfg.density_components
        has_mask = self.occupancy.mask.numel() > 1
        w_l1 = cfg.l1_weight_after_occupancy if has_mask else cfg.l1_weight
        total = self.aabb.new_zeros(())
        for plane, line in zip(self.planes, self.lines):
            if w_l1 > 0:
                total = total + w_l1 * (plane[:, :cd].abs().mean() + line[:, :cd].abs().mean())
            for w, sl in (
                (cfg.tv_weight_density, slice(None, cd)),
                (cfg.tv_weight_appearance, slice(cd, None)),
            ):
                if w > 0:
                    total = total + w * (_tv(plane[:, sl]) + _tv(line[:, sl]))
        return total

    @torch.no_grad()
    def update_occupancy(self, threshold: float | None = None) -> float:
        """Rebuild the occupancy grid over the current box from the current density; returns the occupied
        fraction. Cells are cubes no smaller than a voxel, at most ``occupancy_resolution`` per axis."""
        cfg = self.config
        ext = self.aabb[1] - self.aabb[0]
        cell = max(self.voxel_size.max().item(), ext.max().item() / cfg.occupancy_resolution)
        res = [max(1, math.ceil(e / cell - 1e-6)) for e in ext.tolist()]
        self.occupancy.update(
            self.density, self.aabb, res, cfg.occupancy_threshold if threshold is None else threshold
        )
        return self.occupancy.fraction()

    @torch.no_grad()
    def resample(self, aabb: torch.Tensor, resolution: tuple[int, int, int]) -> None:
        """Re-grid the planes and lines to ``resolution`` vertices over ``aabb [2, 3]`` (bilinear, from the
        current grids). Replaces the parameter tensors: rebuild the optimiser afterwards."""
        aabb = torch.as_tensor(aabb, dtype=self.aabb.dtype, device=self.aabb.device).reshape(2, 3)
        lo, hi = self.aabb

        def coords(d: int) -> torch.Tensor:  # new vertex positions along axis d, in the old [-1, 1]
            x = torch.linspace(
                aabb[0, d].item(), aabb[1, d].item(), resolution[d], dtype=lo.dtype, device=lo.device
            )
            return (x - lo[d]) * (2.0 / (hi[d] - lo[d])) - 1.0

        for k, (a, b, c) in enumerate(PLANE_AXES):
            plane, line = self.planes[k], self.lines[k]
            ub, ua = torch.meshgrid(coords(b), coords(a), indexing="ij")
            gp = torch.stack([ua, ub], -1)[None].to(plane.dtype)  # [1, R_b, R_a, 2]
            uc = coords(c)
            gl = torch.stack([torch.zeros_like(uc), uc], -1)[None, :, None].to(line.dtype)  # [1, R_c, 1, 2]
            new_p = F.grid_sample(plane, gp, mode="bilinear", padding_mode="border", align_corners=True)
            new_l = F.grid_sample(line, gl, mode="bilinear", padding_mode="border", align_corners=True)
            self.planes[k] = nn.Parameter(new_p.contiguous(), plane.requires_grad)
            self.lines[k] = nn.Parameter(new_l.contiguous(), line.requires_grad)
        self.aabb = aabb.clone()

    def upsample(self, n_voxels: int) -> None:
        """Re-grid to about ``n_voxels`` cubic voxels over the current box (rebuild the optimiser)."""
        self.resample(self.aabb, _resolution_for(self.aabb, n_voxels))

    def shrink(self, margin_voxels: int = 2) -> bool:
        """Crop the box to the occupied cells plus ``margin_voxels``, at existing vertices (rebuild the
        optimiser). The new grids are a sub-block of the old ones, so the field inside the new box is
        unchanged. Returns False (and does nothing) when nothing is occupied."""
        box = self.occupancy.bbox()
        if box is None:
            return False
        lo, vox = self.aabb[0], self.voxel_size
        last = torch.tensor(self.resolution, device=lo.device) - 1
        first_v = ((box[0] - lo) / vox).floor().long() - margin_voxels
        last_v = ((box[1] - lo) / vox).ceil().long() + margin_voxels
        first_v, last_v = first_v.clamp(0, None), torch.minimum(last_v, last)
        last_v = torch.maximum(last_v, first_v + 1)  # at least one voxel per axis
        new = torch.stack([lo + first_v * vox, lo + last_v * vox])
        self.resample(new, tuple((last_v - first_v + 1).tolist()))  # type: ignore[arg-type]
        return True

    def upsample_schedule(self) -> list[int]:
        """Voxel counts reached at each of ``upsample_steps`` (log-uniform up to ``n_voxels_final``)."""
        cfg = self.config
        n = len(cfg.upsample_steps)
        lo, hi = math.log(cfg.n_voxels_init), math.log(cfg.n_voxels_final)
        return [round(math.exp(lo + (hi - lo) * (i + 1) / n)) for i in range(n)]

    def on_train_step(self, step: int) -> bool:
        """Training hook: call once per optimisation step, before the forward pass of step ``step``
        (0-based count of completed optimiser steps). At ``occupancy_steps`` it rebuilds the occupancy grid
        (and at the first one, with ``shrink``, crops the box); at ``upsample_steps`` it upsamples. Returns
        True when the parameter tensors were replaced: rebuild the optimiser from :meth:`param_groups`.
        """
        cfg = self.config
        changed = False
        if step in cfg.occupancy_steps:
            self.update_occupancy()
            if cfg.shrink and step == min(cfg.occupancy_steps):
                changed = self.shrink()
                self.update_occupancy()  # cells follow the new box
        if step in cfg.upsample_steps:
            self.upsample(self.upsample_schedule()[sorted(cfg.upsample_steps).index(step)])
            changed = True
        return changed

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        resize_to_state(self, state_dict, prefix)
        for name, plist in (("planes", self.planes), ("lines", self.lines)):
            resize_to_state(plist, state_dict, f"{prefix}{name}.")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _tv(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of vertically and horizontally adjacent entries of ``x [1, C, H, W]``."""
    tv = x.new_zeros(())
    if x.shape[2] > 1:
        tv = tv + (x[:, :, 1:] - x[:, :, :-1]).pow(2).mean()
    if x.shape[3] > 1:
        tv = tv + (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).mean()
    return tv
