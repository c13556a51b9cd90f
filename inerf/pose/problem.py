"""The fixed part of a pose solve: the target, its pixel sampler and the frozen model, and what they say about
a batch of poses (photometric loss, its gradient, the Gauss-Newton system).

Poses are always ``c2w = exp(xi) @ c2w0`` for twists ``xi`` ``[G, K, 6]`` (se3 order (rho, phi), a left
update in the world frame) and start poses ``c2w0`` ``[G, K, 4, 4]``: ``G`` problems of ``K`` hypotheses.
Pixels ``pix`` ``[G, n]`` are flat row-major indices, shared by the hypotheses of a problem.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from inerf.geometry import se3
from inerf.geometry.cameras import Cameras
from inerf.pose.config import PoseConfig
from inerf.pose.sampling import PixelSampler, flat_to_uv
from inerf.rays.rays import Rays, camera_directions, rays_from_directions
from inerf.render.model import Model

__all__ = [
    "FAST_CHUNK_MIN_POINTS",
    "FAST_SAMPLE_CHUNK",
    "PoseTarget",
    "Problem",
    "field_precision",
    "frozen_fields",
    "photometric_loss",
]


def fast_sample_budget(n_samples: int) -> int:
    """Occupied samples per ray the GPU fast path queries for fields with an occupancy grid (see
    :attr:`inerf.render.renderer.RenderConfig.sample_budget`): a quarter of the samples, within [48, 192].
    Measured on the shared chair's grid field (933 samples per ray over [2, 6]): object rays have 6% of their
    samples in occupied cells on average, so 192 holds every ray's occupied samples with a wide margin."""
    return min(192, max(48, n_samples // 4))


FAST_SAMPLE_CHUNK = 16
"""Samples per chunk of the fast path's two-level occupancy test
(:attr:`inerf.render.renderer.RenderConfig.sample_chunk`): on the shared chair's grid field (933 samples per
ray, 2048 rays) it finds the same kept samples as testing every sample (3 poses, every ray), touching
``S / 16 + 19 x 16 = 363`` points per ray instead of 933, and the occupancy stage runs 3-6x faster on the
CPU (``benchmarks/count_pose_ops.py``, BENCHMARKS.md)."""

FAST_POOLED_RAY_CHUNK = 1 << 16
"""Rays per render pass of the fast path through a field with an occupancy grid (instead of
:attr:`PoseConfig.ray_chunk`'s default 8192): 64 hypotheses x 1024 rays in one pass. Memory stays small (the
field's activations exist for the pooled occupied samples only)."""

FAST_PACKED_COMPOSITE = True
"""The fast path composites a pooled field's samples in the pool
(:attr:`inerf.render.renderer.RenderConfig.packed_composite`) instead of scattering them into the
``[R, sample_budget]`` layout. Measured on an H200 (chair grid field, ``bench_pose_speed.py --paths fast
fast-slots``, same run, 2026-11-30): 64 hypotheses x 300 steps 3.14 -> 2.26 s."""

FAST_CHUNK_MIN_POINTS = 1 << 22
"""The fast path uses the two-level occupancy test for render passes of at least this many samples
(:attr:`inerf.render.renderer.RenderConfig.chunk_min_points`; 4 M: batched hypotheses, e.g. 8192 rays x 933
samples, not one hypothesis of 2048 rays). It adds ~70 small ops (218 -> 287 per chair step of 2048 rays,
``benchmarks/count_pose_ops.py``). One hypothesis's step on an H200 is bound by its kernel count (1.17 ms,
294 kernels, measured without this test), so it keeps the one-level test until a GPU measurement says
otherwise; large batched passes are bound by the dense per-sample work this test removes (on one CPU
thread the chair's occupancy stage ran 3-6x faster). On the GPU, compare the ``fast`` and ``fast-onelevel``
paths of ``benchmarks/bench_pose_speed.py``."""

_GOLDEN_ANGLE = 2.399963229728653
"""Radians the blur ring turns from one step to the next, so successive steps cover the circle evenly."""


@dataclass
class PoseTarget:
    """The observed image whose camera pose is sought.

    Attributes:
        image: ``[H, W, 3]`` float RGB in [0, 1], composited on the field's background.
        camera: one :class:`Cameras` of size ``H x W``; only its intrinsics are used (pixel centres at +0.5,
            so a centred camera has ``cx = W / 2``), its ``c2w`` is what the solve looks for.
        alpha: ``[H, W]`` foreground coverage in [0, 1] if known (used by ``mask`` sampling), else None.
    """

    image: torch.Tensor
    camera: Cameras
    alpha: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[-1] != 3:
            raise ValueError(f"target image must be [H, W, 3], got {tuple(self.image.shape)}")
        if self.alpha is not None and self.alpha.shape != self.image.shape[:2]:
            raise ValueError(
                f"alpha must be [H, W] = {tuple(self.image.shape[:2])}, got {tuple(self.alpha.shape)}"
            )
        if len(self.camera) != 1 or (self.camera.height, self.camera.width) != tuple(self.image.shape[:2]):
            raise ValueError(
                f"the target camera must be one camera of the image's size {tuple(self.image.shape[:2])}, got "
                f"{len(self.camera)} of {(self.camera.height, self.camera.width)}"
            )

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


def photometric_loss(pred: torch.Tensor, target: torch.Tensor, config: PoseConfig) -> torch.Tensor:
    """Per-ray loss ``[R]`` (mean over colour channels) between rendered and target colours ``[R, 3]``.

    * ``mse``:   (c - c*)^2
    * ``huber``: (c - c*)^2 / 2 for |c - c*| <= delta, else delta (|c - c*| - delta / 2); divided by delta
      so that it equals MSE / 2 / delta near zero and grows like |c - c*| beyond delta.
    * ``mape``:  |c - c*| / (|c*| + eps)
    """
    if config.loss == "mse":
        per = (pred - target).square()
    elif config.loss == "huber":
        per = torch.nn.functional.huber_loss(pred, target, reduction="none", delta=config.huber_delta)
        per = per / config.huber_delta
    elif config.loss == "mape":
        per = (pred - target).abs() / (target.abs() + config.mape_eps)
    else:
        raise ValueError(f"unknown loss {config.loss!r}")
    return per.mean(-1)


@contextlib.contextmanager
def frozen_fields(*fields):
    """Put ``nn.Module`` fields in eval mode with ``requires_grad=False`` for the duration, then restore.

    Eval mode: normalisation layers use their running statistics. No weight gradients: only the pose is
    optimised, and weight gradients would cost memory and time (iNeRF-public accumulated them forever).
    Plain callables (analytic fields) pass through untouched.
    """
    modules = [f for f in fields if isinstance(f, torch.nn.Module)]
    # Every submodule's own flag: a wrapper field (e.g. a view of an encoded pixelNeRF) is in train mode by
    # default, and restoring it with a recursive .train(True) would leave the model it wraps in train mode.
    modes = [(sub, sub.training) for m in modules for sub in m.modules()]
    params = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    try:
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
        yield
    finally:
        for sub, training in modes:
            sub.training = training
        for p, rg in params:
            p.requires_grad_(rg)


@contextlib.contextmanager
def field_precision(dtype: torch.dtype | None, *fields):
    """Set ``mlp_dtype`` (the dtype of their wide networks' matrix products, e.g. pixelNeRF's ResnetFC) on the
    fields that have one, for the duration; others pass through. ``dtype=None`` changes nothing."""
    tuned = [f for f in fields if dtype is not None and hasattr(f, "mlp_dtype")]
    saved = [f.mlp_dtype for f in tuned]
    try:
        for f in tuned:
            f.mlp_dtype = dtype
        yield
    finally:
        for f, d in zip(tuned, saved):
            f.mlp_dtype = d


def _pose_jacobian(rgb: torch.Tensor, leaves: list[torch.Tensor]) -> torch.Tensor:
    """``[R, 3, 6]``: per ray, the Jacobian ``d rgb / d delta`` for a left update ``exp(delta) @ T`` of the
    pose, from the gradients of the colours ``rgb`` ``[P, 3]`` with respect to the ray tensors ``leaves``
    (origins ``o``, directions ``d``, unit view directions ``v``; ``[R, 3]`` each). ``P = R`` or, with ``k``
    rays per pixel, ``P = R / k`` pixels whose colour is the mean of their rays'.

    Each colour depends only on its own ray, so one backward pass per colour channel gives every ray's
    gradients ``g_o, g_d, g_v`` at once. At ``delta = 0`` a point moves by ``rho + phi x p`` and a direction
    by ``phi x d``, hence ``J = [g_o, o x g_o + d x g_d + v x g_v]``.
    """
    J = torch.empty(leaves[0].shape[0], 3, 6, device=rgb.device, dtype=rgb.dtype)
    for c in range(3):
        grads = torch.autograd.grad(rgb[:, c].sum(), leaves, retain_graph=c < 2, allow_unused=True)
        g_o, g_d, g_v = (torch.zeros_like(t) if gr is None else gr for gr, t in zip(grads, leaves))
        J[:, c, :3] = g_o
        J[:, c, 3:] = (
            torch.linalg.cross(leaves[0].detach(), g_o)
            + torch.linalg.cross(leaves[1].detach(), g_d)
            + torch.linalg.cross(leaves[2].detach(), g_v)
        )
    return J


class Problem:
    """The fixed parts of one solve: the target's pixels and their sampler, the frozen model and its render
    settings for pose solves (deterministic samples; the coarse pass kept out of the graph when only the fine
    colours are scored). Everything lives on the target image's device.

    Args:
        model: the fields and their render settings.
        target: the observed image and its intrinsics.
        config: the solver's settings (loss, rays, sampling, blur, chunking).
    """

    def __init__(self, model: Model, target: PoseTarget, config: PoseConfig):
        device = target.image.device
        self.config = config
        changes = {"colour_only": True}  # the loss scores colours: no depth, opacity or full weights
        if config.deterministic_render:
            changes.update(jitter=False, deterministic_fine=True)
        if config.coarse_loss_weight <= 0:
            # only the fine colours are scored: the coarse pass just places samples, keep it out of the graph
            changes.update(coarse_grad=False)
        if config.fast and device.type == "cuda":
            # Static-shape empty-space skipping (no host sync: the step can be a CUDA graph).
            changes.update(
                sample_budget=model.config.sample_budget or fast_sample_budget(model.config.n_coarse),
                sample_chunk=model.config.sample_chunk or FAST_SAMPLE_CHUNK,
                chunk_min_points=model.config.chunk_min_points or FAST_CHUNK_MIN_POINTS,
                packed_composite=model.config.packed_composite or FAST_PACKED_COMPOSITE,
            )
        self.model = model.with_config(**changes)
        # Static-shape skipping queries the field at a pool of packed samples, sized at the first evaluation
        # and grown when it overflows (see `check_pool`).
        self.pooled = self.model.config.sample_budget > 0 and hasattr(self.model.coarse, "occupied")
        self.ray_chunk = config.ray_chunk
        if self.pooled and config.fast and device.type == "cuda" and config.ray_chunk == PoseConfig.ray_chunk:
            # A pooled field keeps activations only for its occupied samples: render batched hypotheses
            # in one pass instead of 8192-ray chunks (fewer, larger kernels).
            self.ray_chunk = FAST_POOLED_RAY_CHUNK
        self.dropped = torch.zeros((), dtype=torch.long, device=device)
        self.pool_grown = 0
        self.target = target
        self.width = target.width
        self.target_flat = target.image.to(device=device, dtype=torch.float32).reshape(-1, 3)
        self._blurred: dict[float, torch.Tensor] = {}
        self._blur_weights: dict[tuple[float, ...], torch.Tensor] = {}
        self.sampler = PixelSampler.for_target(target, config, device)
        self._pixel_dirs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.batched_jacobian = device.type == "cuda"
        """Whether :meth:`gauss_newton` takes the three colour channels' gradients in one backward pass."""
        self._rings: dict[tuple[float, int], torch.Tensor | None] = {}
        self._scalar_cache: dict[float, torch.Tensor] = {}
        # CUDA graphs of the fast path (None: eager): the loss and gradient (Adam), the loss alone (a solve's
        # final score), the Gauss-Newton system and the Levenberg-Marquardt update.
        self.graphed = self.graphed_loss = self.graphed_gn = self.graphed_lm = None
        self.uses_graphs = config.fast and device.type == "cuda"
        if self.uses_graphs:
            from inerf.pose.fast import GraphedFn, GraphedLossAndGrad

            self.graphed = GraphedLossAndGrad(self)
            self.graphed_loss = GraphedFn(self._loss_only, "the loss")
            self.graphed_gn = GraphedFn(self.gauss_newton, "the Gauss-Newton system")
            self.graphed_lm = GraphedFn(self.lm_update, "the Levenberg-Marquardt update")
        self._graphed_by_name: dict[str, object] = {}
        self.reused = False
        """Whether :meth:`retarget` made this problem serve another image (graphs of once-per-solve work are
        captured only then)."""

    IMAGE_FREE_SAMPLING = ("random", "center", "patch")
    """Sampling strategies whose pixels do not depend on the target image (:meth:`retarget` keeps the sampler)."""

    def retarget(self, target: PoseTarget) -> bool:
        """Make ``target`` this problem's image, keeping what does not depend on it: the model with its sized
        query pool, the pixel directions, the blur rings, the sampler (for :data:`IMAGE_FREE_SAMPLING`
        strategies without an alpha) and the captured CUDA graphs (same shapes). For the frames of a track,
        instead of a new :class:`Problem` per frame. Returns False, changing nothing, when ``target`` differs
        in size, intrinsics or device (build a new problem then)."""
        old, new = self.target.camera, target.camera
        same = (
            (target.height, target.width) == (self.target.height, self.width)
            and target.image.device == self.target_flat.device
            and all(
                torch.equal(torch.as_tensor(getattr(old, a)), torch.as_tensor(getattr(new, a)))
                for a in ("fx", "fy", "cx", "cy")
            )
        )
        if not same:
            return False
        self.reused = True
        self.target = target
        self.target_flat = target.image.to(dtype=torch.float32).reshape(-1, 3)
        self._blurred.clear()
        if self.config.sampling.strategy not in self.IMAGE_FREE_SAMPLING or target.alpha is not None:
            self.sampler = PixelSampler.for_target(target, self.config, self.target_flat.device)
        return True

    def target_at(self, sigma: float) -> torch.Tensor:
        """``[H * W, 3]`` target colours blurred by a Gaussian of ``sigma`` pixels (cached per 0.25 px). The
        first call blurs the target for every blur of the solve's schedule at once (:func:`_gaussian_blurs`:
        a few device ops for all of them, where one blur at a time took ~17 each)."""
        key = round(sigma * 4) / 4
        if key <= 0:
            return self.target_flat
        if key not in self._blurred:
            if len(self._blurred) > 64:
                self._blurred.clear()
            blur = self.config.blur
            keys = {round(blur.at(s) * 4) / 4 for s in range(min(self.config.steps, blur.steps))} | {key}
            keys = tuple(sorted(k for k in keys if k > 0 and k not in self._blurred))
            weights = self._blur_weights.get(keys)
            if weights is None:
                weights = self._blur_weights[keys] = _gaussian_kernels(keys, self.target_flat.device)
            img = self.target_flat.reshape(self.target.height, self.width, 3).permute(2, 0, 1)
            self._blurred.update(zip(keys, _gaussian_blurs(img, weights)))
        return self._blurred[key]

    def ring(self, sigma: float, step: int) -> torch.Tensor | None:
        """``[k, 2]`` pixel offsets of the ``k = blur.rays`` rays that stand for one blurred pixel: a ring of
        radius ``sqrt(2) sigma`` around the pixel centre, turned by the golden angle each step; None
        without blur (one ray through the centre)."""
        k = self.config.blur.rays if sigma > 0 else 1
        if k == 1:
            return None
        key = (float(sigma), int(step))
        ring = self._rings.get(key)
        if ring is None:  # cached: every frame of a track repeats the same (sigma, step) pairs
            if len(self._rings) > 256:
                self._rings.clear()
            device = self.target_flat.device
            angle = step * _GOLDEN_ANGLE + torch.arange(k, device=device) * (2 * math.pi / k)
            ring = self._rings[key] = math.sqrt(2.0) * sigma * torch.stack([angle.cos(), angle.sin()], -1)
        return ring

    def targets(self, pix: torch.Tensor, sigma: float, K: int) -> torch.Tensor:
        """Target colours ``[G * K * n, 3]`` of pixels ``pix`` ``[G, n]`` (blurred by ``sigma``), one copy per
        hypothesis."""
        G, n = pix.shape
        return self.target_at(sigma)[pix][:, None].expand(G, K, n, 3).reshape(-1, 3)

    def pixel_directions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``([H * W, 3], [H * W, 3])``: camera-frame directions through every pixel centre and the same
        normalised (computed once: a step then gathers its pixels' directions with one op each instead of
        recomputing them)."""
        if self._pixel_dirs is None:
            H, W = self.target.height, self.width
            flat = torch.arange(H * W, device=self.target_flat.device)
            self._pixel_dirs = self._directions(flat_to_uv(flat, W).to(torch.float32))
        return self._pixel_dirs

    def _directions(self, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = self.target.camera
        d = camera_directions(uv, *(v.to(uv.device)[0] for v in (cam.fx, cam.fy, cam.cx, cam.cy)))
        return d, d / d.norm(dim=-1, keepdim=True)

    def rays(self, xi: torch.Tensor, c2w0: torch.Tensor, pix: torch.Tensor, ring: torch.Tensor | None):
        """Ray tensors (origins, directions, view directions; each ``[G * K * n * k, 3]``) through pixels
        ``pix`` ``[G, n]`` of the poses ``exp(xi) @ c2w0``, ``k`` per pixel at the ``ring`` offsets (or one
        through the centre when ``ring`` is None)."""
        G = xi.shape[0]
        n = pix.shape[-1]
        if ring is None:
            # [G, 1, n, 3]: the same for every hypothesis.
            d_cam, unit = (d[pix][:, None] for d in self.pixel_directions())
        else:
            uv = flat_to_uv(pix, self.width).to(torch.float32)
            uv = (uv[..., None, :] + ring).reshape(G, 1, n * ring.shape[0], 2)
            d_cam, unit = self._directions(uv)
        # The series form of exp: the same pose in fewer, larger ops (a CUDA graph's cost is its kernel count).
        c2w = se3.se3_exp_series(xi) @ c2w0  # [G, K, 4, 4]
        rays = rays_from_directions(d_cam, c2w, unit)
        return [rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3), rays.viewdirs.reshape(-1, 3)]

    POOL_MARGIN = 1.5
    """The pool holds this many times the occupied samples counted at the first evaluation (poses move)."""

    def _size_pool(self, xi, c2w0, pix, ring) -> None:
        """Set the model's ``sample_pool`` from the occupied samples of the first evaluation's rays (one
        host sync, before any graph is captured): a pool of one point leaves all but one out, and
        ``RenderOutput.dropped`` counts them."""
        k = 1 if ring is None else ring.shape[0]
        probe = self.model.with_config(sample_pool=1e-12)
        per_ray = []
        with torch.no_grad():
            ray_t = self.rays(xi, c2w0, pix, ring)
            chunk_size = self._chunk(k)
            for a in range(0, ray_t[0].shape[0], chunk_size):
                chunk = [t[a : a + chunk_size] for t in ray_t]
                out = probe.render_rays(Rays(*chunk))
                per_ray.append((out.dropped + 1).double() / chunk[0].shape[0])
        need = float(torch.stack(per_ray).max())
        self.model = self.model.with_config(sample_pool=max(1.0, self.POOL_MARGIN * need))

    def check_pool(self) -> bool:
        """Grow the query pool if samples were left out since the last check (a host sync: call it every
        ``progress_every`` steps). Returns whether it grew; graphs captured with the old size are dropped."""
        if not self.pooled or int(self.dropped) == 0:
            return False
        self.model = self.model.with_config(sample_pool=2.0 * self.model.config.sample_pool)
        self.dropped.zero_()
        self.pool_grown += 1
        for graphed in (self.graphed, self.graphed_loss, self.graphed_gn, self.graphed_lm):
            if graphed is not None:
                graphed.captures.clear()
        return True

    def chunk_loss(self, origins, directions, viewdirs, tgt, k: int):
        """Per-pixel loss ``[P]`` of one chunk of rays (``k`` consecutive rays per pixel, ``P`` pixels with
        colours ``tgt [P, 3]``) and the samples the query pool left out (None without a pool)."""
        cfg = self.config
        out = self.model.render_rays(Rays(origins, directions, viewdirs))
        rgb = out.rgb if k == 1 else out.rgb.reshape(-1, k, 3).mean(1)
        loss = photometric_loss(rgb, tgt, cfg)
        if cfg.coarse_loss_weight > 0 and out.rgb_coarse is not None:
            rgb_c = out.rgb_coarse if k == 1 else out.rgb_coarse.reshape(-1, k, 3).mean(1)
            loss = loss + cfg.coarse_loss_weight * photometric_loss(rgb_c, tgt, cfg)
        return loss, out.dropped

    def _count_dropped(self, out) -> None:
        if out.dropped is not None:
            self.dropped += out.dropped

    def _chunk(self, k: int) -> int:
        """Rays per render call: a multiple of the rays per pixel, so a pixel's rays stay together."""
        return max(k, self.ray_chunk // k * k)

    def evaluate(
        self,
        xi: torch.Tensor,
        c2w0: torch.Tensor,
        pix: torch.Tensor,
        need_grad: bool,
        sigma: float = 0.0,
        step: int = 0,
        graph: bool = False,
    ):
        """Loss ``[G, K]`` of the poses ``exp(xi) @ c2w0`` on pixels ``pix`` ``[G, n]`` and, with
        ``need_grad``, its gradient with respect to ``xi`` ``[G, K, 6]`` (else None). The gradient is replayed
        from a CUDA graph on the fast path; the loss alone too with ``graph`` once the problem is :attr:`reused`
        (for calls of few shapes repeated over many solves)."""
        ring = self.ring(sigma, step)
        tgt = self.targets(pix, sigma, xi.shape[1])
        if self.pooled and self.model.config.sample_pool <= 0:
            self._size_pool(xi, c2w0, pix, ring)
        if self.graphed is not None and need_grad:
            return self.graphed(xi, c2w0, pix, ring, tgt)
        if self.graphed_loss is not None and graph and self.reused and not need_grad:
            return self.graphed_loss(xi, c2w0, pix, ring, tgt)
        return self.loss_and_grad(xi, c2w0, pix, ring, tgt, need_grad)

    def _loss_only(self, xi, c2w0, pix, ring, tgt):
        return self.loss_and_grad(xi, c2w0, pix, ring, tgt, need_grad=False)

    def loss_and_grad(self, xi, c2w0, pix, ring, tgt, need_grad: bool = True):
        """:meth:`evaluate` on tensors only (the ring offsets and the target colours are given), so that one
        call has fixed shapes and never waits for the host: what a CUDA graph captures.

        Rays that fit in one chunk (``config.ray_chunk``) are rendered and back-propagated to the twist in
        one pass. More rays: a two-stage backward, chunks of rays are rendered and back-propagated to the ray
        tensors only (so each chunk's field activations are freed before the next chunk runs), then one
        backward pass takes the accumulated ray gradients through ray generation into the twist.
        """
        G, K = xi.shape[:2]
        n = pix.shape[-1]
        k = 1 if ring is None else ring.shape[0]
        xi = xi.detach().requires_grad_(need_grad)
        with torch.set_grad_enabled(need_grad):
            ray_t = self.rays(xi, c2w0, pix, ring)
        total = ray_t[0].shape[0]
        chunk_size = self._chunk(k)
        if total <= chunk_size:
            # One chunk: one backward pass from the loss to the twist (no ray-gradient buffers to fill).
            with torch.set_grad_enabled(need_grad):
                loss, dropped = self.chunk_loss(*ray_t, tgt, k)
            if dropped is not None:
                self.dropped += dropped
            loss_k = loss.detach().reshape(G, K, n).mean(-1)
            if not need_grad:
                return loss_k, None
            # d(sum_k mean_n l) / d l_pixel = 1 / n for every pixel: seeded directly (one fill, where
            # backward(loss.sum() / n) launches a sum, a division and their gradients).
            torch.autograd.backward(loss, torch.full_like(loss, 1.0 / n), inputs=[xi])
            return loss_k, xi.grad
        per_pix = torch.empty(tgt.shape[0], device=tgt.device, dtype=tgt.dtype)
        ray_grads = [torch.zeros_like(t) for t in ray_t] if need_grad else None
        for a in range(0, total, chunk_size):
            b = min(a + chunk_size, total)
            chunk = [t[a:b].detach().requires_grad_(need_grad) for t in ray_t]
            with torch.set_grad_enabled(need_grad):
                loss, dropped = self.chunk_loss(*chunk, tgt[a // k : b // k], k)
            if dropped is not None:
                self.dropped += dropped
            if need_grad:
                # d(sum_k mean_n l) / d l_pixel = 1 / n for every pixel.
                torch.autograd.backward(loss.sum() / n, inputs=chunk)
                for acc, leaf in zip(ray_grads, chunk):
                    if leaf.grad is not None:  # None: the field ignores that input (e.g. view directions)
                        acc[a:b] = leaf.grad
            per_pix[a // k : b // k] = loss.detach()
        loss_k = per_pix.reshape(G, K, n).mean(-1)
        if not need_grad:
            return loss_k, None
        torch.autograd.backward(ray_t, ray_grads, inputs=[xi])
        return loss_k, xi.grad

    def linearize(
        self, xi: torch.Tensor, c2w0: torch.Tensor, pix: torch.Tensor, sigma: float = 0.0, step: int = 0
    ):
        """Gauss-Newton system of the poses ``exp(xi) @ c2w0`` on pixels ``pix``: ``(loss [G, K],
        H [G, K, 6, 6], g [G, K, 6])`` with ``H = sum_i J_i^T W_i J_i`` and ``g = sum_i J_i^T W_i r_i``
        (float64), where ``r_i`` is pixel ``i``'s colour residual, ``W_i`` its IRLS weights (1 for MSE) and
        ``J_i = d colour_i / d delta`` the ``[3, 6]`` Jacobian for a left update ``exp(delta) @ T``
        (:func:`_pose_jacobian`). On the GPU fast path it is replayed from a CUDA graph
        (:meth:`gauss_newton`); the slow reference is :func:`inerf.pose._reference.linearize`.
        """
        ring = self.ring(sigma, step)
        tgt = self.targets(pix, sigma, xi.shape[1])
        if self.pooled and self.model.config.sample_pool <= 0:
            self._size_pool(xi, c2w0, pix, ring)
        fn = self.gauss_newton if self.graphed_gn is None else self.graphed_gn
        return fn(xi, c2w0, pix, ring, tgt)

    def gauss_newton(self, xi, c2w0, pix, ring, tgt):
        """:meth:`linearize` on tensors only (fixed shapes, no host sync): what a CUDA graph captures.

        With :attr:`batched_jacobian` (on CUDA), per chunk of rays the colours of three copies of the rays are
        rendered in one batch and one backward pass seeds copy ``c`` with colour channel ``c``: every ray's
        gradients for the three channels at once (one forward and one backward of the field, where a kernel
        launch costs more than the arithmetic); else one backward pass per channel (fewer operations: the
        CPU's choice). Each pixel's ``J^T W J`` and ``J^T W r`` are summed per
        hypothesis by a reshape (pixels of a hypothesis are consecutive), in float64.
        """
        cfg = self.config
        G, K = xi.shape[:2]
        n = pix.shape[-1]
        k = 1 if ring is None else ring.shape[0]
        with torch.no_grad():
            ray_t = self.rays(xi, c2w0, pix, ring)
        total = ray_t[0].shape[0]
        chunk_size = self._chunk(k)
        seed = torch.eye(3, device=tgt.device, dtype=tgt.dtype)[:, None]  # [3 copies, 1, 3 channels]
        losses, hs, gs = [], [], []
        for a in range(0, total, chunk_size):
            b = min(a + chunk_size, total)
            pa, pb = a // k, b // k  # the chunk's pixels
            if self.batched_jacobian:
                rays3 = [t[a:b].detach()[None].expand(3, -1, -1) for t in ray_t]
                leaves = [t.reshape(-1, 3).requires_grad_(True) for t in rays3]
                with torch.enable_grad():
                    out = self.model.render_rays(Rays(*leaves))
                    self._count_dropped(out)
                    rgb = out.rgb.reshape(3, -1, k, 3).mean(2) if k > 1 else out.rgb.reshape(3, -1, 3)
                    del out
                    grads = torch.autograd.grad(rgb, leaves, seed.expand_as(rgb), allow_unused=True)
                rgb = rgb[0].detach()
                J = _jacobian_from_grads([t[0] for t in rays3], grads)  # [R, 3, 6]
            else:
                leaves = [t[a:b].detach().requires_grad_(True) for t in ray_t]
                with torch.enable_grad():
                    out = self.model.render_rays(Rays(*leaves))
                    self._count_dropped(out)
                    rgb = out.rgb if k == 1 else out.rgb.reshape(-1, k, 3).mean(1)
                    del out
                J = _pose_jacobian(rgb, leaves)
                rgb = rgb.detach()
            tgt_c = tgt[pa:pb]
            res = rgb - tgt_c
            losses.append(photometric_loss(rgb, tgt_c, cfg))
            if (
                k > 1
            ):  # a pixel's colour is the mean of its rays': its Jacobian is the sum of theirs (1/k inside)
                J = J.reshape(-1, k, 3, 6).sum(1)
            if cfg.loss == "huber":  # IRLS: quadratic inside delta, linear (weight delta / |r|) outside
                sqrt_w = (cfg.huber_delta / res.abs().clamp_min(1e-12)).clamp(max=1.0).sqrt()
                J, res = J * sqrt_w[..., None], res * sqrt_w  # J^T W J and J^T W r from sqrt(W) J, sqrt(W) r
            Jt = J.transpose(-1, -2)
            hs.append((Jt @ J).double())  # [P, 6, 6]
            gs.append((Jt @ res[..., None]).double())  # [P, 6, 1]
        per_pix = losses[0] if len(losses) == 1 else torch.cat(losses)
        H = (hs[0] if len(hs) == 1 else torch.cat(hs)).reshape(G, K, n, 6, 6).sum(2)
        g = (gs[0] if len(gs) == 1 else torch.cat(gs)).reshape(G, K, n, 6).sum(2)
        return per_pix.reshape(G, K, n).mean(-1), H, g

    def lm_update(self, xi, c2w0, pix, ring, tgt, H, g, loss, damping, fraction, max_rot, max_trans):
        """One Levenberg-Marquardt update decided on the device (fixed shapes, no host sync: what a CUDA graph
        captures): the candidate of :func:`inerf.pose.steps.lm_step` from the system ``H [G, K, 6, 6]``,
        ``g [G, K, 6]`` with ``damping [G, K]``, its loss on the same pixels and target colours, kept where
        it is finite and below ``loss [G, K]``; the damping divided by 3 where kept, else multiplied by 4.
        ``fraction``, ``max_rot``, ``max_trans``: 0-d tensors (see :func:`lm_step`). Returns ``(xi [G, K, 6],
        damping [G, K])``."""
        from inerf.pose.steps import lm_step

        cand = lm_step(xi, H, g, damping, max_rot, max_trans, fraction)
        loss_c, _ = self.loss_and_grad(cand, c2w0, pix, ring, tgt, need_grad=False)
        accept = (loss_c < loss) & ((cand * 0).sum(-1) == 0)  # a NaN loss compares false; x * 0: finite
        xi = torch.where(accept[..., None], cand, xi)
        damping = torch.where(accept, damping / 3, damping * 4).clamp(1e-7, 1e7)
        return xi, damping

    def lm_step(self, xi, c2w0, pix, H, g, loss, damping, fraction, max_rot, max_trans, sigma=0.0, step=0):
        """:meth:`lm_update` at blur ``sigma`` and ``step`` (the ring and target colours of :meth:`linearize`),
        replayed from a CUDA graph on the fast path. ``fraction``, ``max_rot``, ``max_trans``: floats."""
        ring = self.ring(sigma, step)
        tgt = self.targets(pix, sigma, xi.shape[1])
        scalars = self._scalars(fraction, max_rot, max_trans)
        fn = self.lm_update if self.graphed_lm is None else self.graphed_lm
        return fn(xi, c2w0, pix, ring, tgt, H, g, loss, damping, *scalars)

    def run(self, name: str, fn, *inputs):
        """``fn(*inputs)`` (a tensor-only function of fixed shapes returning a tuple of tensors, without host
        sync), replayed from a CUDA graph named ``name`` on the fast path once the problem is :attr:`reused`
        (e.g. the LM average of a solve's last iterates, once per solve: a capture pays off over many solves
        only); a plain call otherwise."""
        if not (self.uses_graphs and self.reused):
            return fn(*inputs)
        graphed = self._graphed_by_name.get(name)
        if graphed is None:
            from inerf.pose.fast import GraphedFn

            graphed = self._graphed_by_name[name] = GraphedFn(fn, name)
        return graphed(*inputs)

    def _scalars(self, *values: float) -> list[torch.Tensor]:
        """0-d float64 device tensors of ``values`` (cached: a float that changes from step to step enters a
        captured graph as a tensor, and a cached one costs no upload)."""
        out = []
        for v in values:
            t = self._scalar_cache.get(v)
            if t is None:
                if len(self._scalar_cache) > 256:
                    self._scalar_cache.clear()
                t = self._scalar_cache[v] = torch.tensor(
                    v, dtype=torch.float64, device=self.target_flat.device
                )
            out.append(t)
        return out


def _gaussian_kernels(sigmas: tuple[float, ...], device) -> torch.Tensor:
    """``[S, 2 r + 1]`` normalised 1-D Gaussian kernels of standard deviations ``sigmas`` (pixels), each
    ``2 ceil(3 sigma) + 1`` taps (torchvision's ``gaussian_blur`` size), centred and zero-padded to the
    largest radius ``r``. Built on the host, uploaded once."""
    r = max(math.ceil(3 * s) for s in sigmas)
    rows = []
    for s in sigmas:
        h = math.ceil(3 * s)
        taps = [math.exp(-0.5 * (x / s) ** 2) for x in range(-h, h + 1)]
        total = sum(taps)
        rows.append([0.0] * (r - h) + [t / total for t in taps] + [0.0] * (r - h))
    return torch.tensor(rows, dtype=torch.float32, device=device)


def _gaussian_blurs(img: torch.Tensor, kernels: torch.Tensor) -> list[torch.Tensor]:
    """The image ``[3, H, W]`` blurred by each of the separable Gaussians ``kernels`` ``[S, 2 r + 1]``
    (:func:`_gaussian_kernels`), as ``[H * W, 3]`` each: one reflect padding and two grouped convolutions for
    all of them (the same numbers as torchvision's ``gaussian_blur``, to float32 rounding: a tap the zero
    padding adds reads a reflected pixel times 0)."""
    S, size = kernels.shape
    r = size // 2
    # Reflect padding: the border pixels of an object-centred image are background on both sides.
    padded = torch.nn.functional.pad(img[None], (r, r, r, r), mode="reflect")  # [1, 3, H + 2r, W + 2r]
    cols = torch.nn.functional.conv2d(padded, kernels.repeat(3, 1)[:, None, :, None], groups=3)
    out = torch.nn.functional.conv2d(cols, kernels.repeat(3, 1)[:, None, None, :], groups=3 * S)
    out = out.reshape(3, S, *img.shape[1:]).permute(1, 2, 3, 0)  # [S, H, W, 3]
    return list(out.reshape(S, -1, 3).unbind(0))


def _jacobian_from_grads(rays: list[torch.Tensor], grads) -> torch.Tensor:
    """``[R, 3, 6]`` pose Jacobians of :func:`_pose_jacobian` from the gradients ``grads`` (``[3 * R, 3]``
    each, channel-major: rows ``c * R + r`` are ray ``r``'s gradients of colour channel ``c``; None for an
    input the field ignores) with respect to the ray tensors ``rays`` (origins, directions, view directions,
    ``[R, 3]`` each): ``J = [g_o, o x g_o + d x g_d + v x g_v]``."""
    R = rays[0].shape[0]
    g = [
        torch.zeros(3, R, 3, device=t.device, dtype=t.dtype) if gr is None else gr.reshape(3, R, 3)
        for t, gr in zip(rays, grads)
    ]
    rot = sum(torch.linalg.cross(t[None].expand_as(gr), gr) for t, gr in zip(rays, g))
    return torch.cat([g[0], rot], -1).transpose(0, 1)
