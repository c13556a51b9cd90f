"""The iNeRF solver: camera pose by gradient descent through a frozen radiance field.

For a target image ``I`` with intrinsics ``K`` and an initial camera-to-world pose ``T0`` (OpenCV axes),
iNeRF minimises the photometric error of rendered pixels over a twist ``xi`` (se3 order (rho, phi)):

    T(xi) = exp(xi^) @ T0                          (left update in the world frame, iNeRF eq. 2)
    xi*   = argmin_xi  sum_{p in P_s} l(C(r_p(T(xi))), I[p]) / |P_s|

where ``P_s`` are the pixels chosen at step ``s`` (:mod:`inerf.pose.sampling`), ``r_p(T)`` the ray through
pixel ``p`` and ``C`` volume rendering. ``xi`` starts at 0, so every solve starts exactly at ``T0`` and
the pose is rigid at every step (it is a matrix exponential times a rigid matrix; a raw 4x4 would drift
off SE(3) as in iNeRF-public).

**Batched hypotheses.** ``init_c2w`` has shape ``[G, K, 4, 4]``: ``G`` independent problems (e.g.
benchmark trials, each with its own pixel seed) of ``K`` hypotheses each (different starting poses
of one problem, sharing that problem's pixels at every step so their losses compare fairly). All
``G * K`` renders go through one batched ``render_rays`` call per chunk. The objective is the sum over
hypotheses of per-hypothesis means; its gradient with respect to ``xi[g, k]`` is the gradient of
hypothesis ``(g, k)``'s own loss, and Adam acts elementwise, so the batch solve equals ``G * K``
separate solves with the same seeds (tested). Optionally the worse half of each problem's hypotheses is
dropped at ``config.prune_steps``; the result is the lowest-loss hypothesis of each problem.

**Optimisers.** ``adam`` is the paper's. ``lm`` (Levenberg-Marquardt) linearises the colour residuals
``r_i`` around the current pose ``T`` for a left update ``exp(delta) @ T``: each rendered colour depends
only on its own ray, so the per-pixel Jacobians ``J_i = d colour_i / d delta`` ``[3, 6]`` come from three
backward passes to the ray tensors (one per colour channel) chained with the ray's derivative at
``delta = 0`` (:meth:`_Problem.linearize`). The step ``-(H + lambda diag H)^-1 g`` with ``H = sum J^T W J``,
``g = sum J^T W r`` (IRLS weights ``W`` for Huber) is kept only if it lowers the loss on the same pixels,
and the damping adapts per hypothesis. ``adam+lm`` runs Adam and finishes with LM steps.

**Coarse-to-fine blur.** With ``blur.sigma > 0`` the first ``blur.steps`` steps compare a blurred render
(the mean colour of ``blur.rays`` rays on a ring of radius ``sqrt(2) sigma`` around each pixel, the ring's
second moment matching a Gaussian's) with the target blurred by a Gaussian of the same ``sigma``, which
shrinks linearly to 0. This widens the basin of the loss to about the blur's size.

**Numerical safety.** A hypothesis whose loss or gradient is not finite is frozen at its last finite
pose and marked ``"nan"`` (with the step); the others continue. Nothing non-finite ever enters a pose.

**Device efficiency.** Per-step bookkeeping (losses, poses, NaN flags, the stop test's running maximum)
stays on the device; the host syncs only to refresh the progress bar every ``progress_every`` steps and
to check the stop test every ``stop.window`` steps (when enabled).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, replace

import torch

from inerf.errors import InerfError
from inerf.geometry import se3
from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import check_rigid
from inerf.pose.config import PoseConfig
from inerf.pose.sampling import PixelSampler, flat_to_uv
from inerf.rays.rays import Rays, rays_from_pixels
from inerf.render.model import Model
from inerf.render.renderer import RenderConfig, render_rays

__all__ = [
    "PoseResult",
    "PoseTarget",
    "PoseTrajectory",
    "adam_update",
    "estimate_pose",
    "frozen_fields",
    "lm_step",
    "photometric_loss",
    "require_finite",
]


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


@dataclass
class PoseTrajectory:
    """Everything recorded during a solve, on the CPU. ``S`` = steps taken; entry ``s`` is the pose after
    ``s`` updates and the loss of that pose on step ``s``'s pixels (the last entry: the final pose, scored
    on step ``S``'s pixels without an update). Hypotheses keep their original index ``k``; after they are
    pruned their entries are NaN.

    Attributes:
        c2w: ``[S + 1, G, K, 4, 4]`` camera-to-world per step and hypothesis (float64).
        loss: ``[S + 1, G, K]`` photometric loss (NaN when pruned or failed).
        lr: ``[S + 1]`` learning rate of the update taken at that step (NaN for the final entry).
    """

    c2w: torch.Tensor
    loss: torch.Tensor
    lr: torch.Tensor

    @property
    def steps(self) -> int:
        return self.loss.shape[0] - 1

    def best_hypothesis(self) -> torch.Tensor:
        """``[S + 1, G]`` index of the lowest-loss live hypothesis at every step (NaN counts as +inf)."""
        return torch.nan_to_num(self.loss, nan=math.inf).argmin(-1)

    def best_c2w(self) -> torch.Tensor:
        """``[S + 1, G, 4, 4]``: at every step, the pose of the hypothesis that is best at that step (what a
        solve stopped at that step would return)."""
        idx = self.best_hypothesis()
        return torch.take_along_dim(self.c2w, idx[..., None, None, None], dim=2)[:, :, 0]

    def errors(
        self, gt_c2w: torch.Tensor, c2w: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotation error (degrees, geodesic) and translation error (scene units) against ``gt_c2w``
        ``[G, 4, 4]`` (or ``[4, 4]``) for ``c2w`` (default: all entries, ``[S + 1, G, K]`` each)."""
        c2w = self.c2w if c2w is None else c2w
        gt = gt_c2w.to(c2w.dtype).reshape(-1, 4, 4)
        # [G, 4, 4] -> [1, G, 1, 4, 4] against [S + 1, G, K, 4, 4] (or [1, G, 4, 4] against [S + 1, G, 4, 4]).
        gt = gt.reshape(1, gt.shape[0], *([1] * (c2w.ndim - 4)), 4, 4)
        return se3.rotation_error_deg(c2w, gt), se3.translation_error(c2w, gt)


@dataclass
class PoseResult:
    """Outcome of :func:`estimate_pose` for ``G`` problems.

    Attributes:
        c2w: ``[G, 4, 4]`` estimated camera-to-world (OpenCV axes), float64 on the CPU.
        loss: ``[G]`` its photometric loss on the last step's pixels.
        hypothesis: ``[G]`` index of the returned hypothesis among the ``K`` starts.
        status: per problem, ``"ok"`` or ``"nan"`` (every hypothesis hit a non-finite loss or gradient; the
            pose is then the last finite one of hypothesis ``hypothesis``).
        failed_step: ``[G, K]`` step at which each hypothesis went non-finite (-1: never).
        steps: updates taken (fewer than ``config.steps`` when the stop test fired).
        stopped_early: whether the stop test fired.
        seconds: wall time of the solve (including keypoint detection, excluding nothing else).
        device: where it ran.
        init_c2w: ``[G, K, 4, 4]`` the starting poses.
        trajectory: per-step record, see :class:`PoseTrajectory`.
    """

    c2w: torch.Tensor
    loss: torch.Tensor
    hypothesis: torch.Tensor
    status: list[str]
    failed_step: torch.Tensor
    steps: int
    stopped_early: bool
    seconds: float
    device: str
    init_c2w: torch.Tensor
    trajectory: PoseTrajectory

    def track(self) -> torch.Tensor:
        """``[S + 1, G, 4, 4]`` the trajectory of each problem's returned hypothesis."""
        idx = self.hypothesis[None, :, None, None, None].expand(self.trajectory.steps + 1, -1, 1, 4, 4)
        return torch.take_along_dim(self.trajectory.c2w, idx, dim=2)[:, :, 0]


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


def adam_update(
    x: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    t: int,
    lr: torch.Tensor | float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
):
    """One Adam step (Kingma & Ba 2015), written out so the solver can index the moments of individual
    hypotheses when pruning. Same arithmetic as ``torch.optim.Adam`` (tested against it).

    Args:
        x, grad, m, v: parameter, gradient, first and second moments, all the same shape.
        t: 1-based step count (for the bias corrections).
        lr: learning rate, a float or a tensor broadcastable to ``x`` (per-coordinate rates).
    Returns:
        ``(x, m, v)`` updated (new tensors).
    """
    b1, b2 = betas
    m = b1 * m + (1 - b1) * grad
    v = b2 * v + (1 - b2) * grad * grad
    denom = v.sqrt() / math.sqrt(1 - b2**t) + eps
    return x - (lr / (1 - b1**t)) * m / denom, m, v


@contextlib.contextmanager
def frozen_fields(*fields):
    """Put ``nn.Module`` fields in eval mode with ``requires_grad=False`` for the duration, then restore.

    Eval mode: normalisation layers use their running statistics. No weight gradients: only the pose is
    optimised, and weight gradients would cost memory and time (iNeRF-public accumulated them forever).
    Plain callables (analytic fields) pass through untouched.
    """
    modules = [f for f in fields if isinstance(f, torch.nn.Module)]
    saved = [(m, m.training, [(p, p.requires_grad) for p in m.parameters()]) for m in modules]
    try:
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
        yield
    finally:
        for m, training, params in saved:
            m.train(training)
            for p, rg in params:
                p.requires_grad_(rg)


def _as_batch(init_c2w: torch.Tensor) -> torch.Tensor:
    """``[4, 4]``, ``[K, 4, 4]`` or ``[G, K, 4, 4]`` -> ``[G, K, 4, 4]``."""
    if init_c2w.ndim == 2:
        return init_c2w[None, None]
    if init_c2w.ndim == 3:
        return init_c2w[None]
    if init_c2w.ndim == 4:
        return init_c2w
    raise ValueError(f"init_c2w must be [4, 4], [K, 4, 4] or [G, K, 4, 4], got {tuple(init_c2w.shape)}")


class _Problem:
    """The fixed parts of one solve: target pixels, sampler, fields and renderer settings."""

    def __init__(
        self,
        coarse,
        fine,
        target: PoseTarget,
        config: PoseConfig,
        render_config: RenderConfig,
        device: torch.device,
    ):
        self.coarse, self.fine, self.config = coarse, fine, config
        if config.deterministic_render:
            render_config = replace(render_config, jitter=False, deterministic_fine=True)
        if config.coarse_loss_weight <= 0:
            # only the fine colours are scored: the coarse pass just places samples, keep it out of the graph
            render_config = replace(render_config, coarse_grad=False)
        self.render_config = render_config
        self.target = target
        self.width = target.width
        self.target_flat = target.image.to(device=device, dtype=torch.float32).reshape(-1, 3)
        self._blurred: dict[float, torch.Tensor] = {}
        self.sampler = PixelSampler(
            target.height,
            target.width,
            config.n_rays,
            config.sampling,
            image=target.image,
            alpha=target.alpha,
            device=device,
        )

    def target_at(self, sigma: float) -> torch.Tensor:
        """``[H * W, 3]`` target colours blurred by a Gaussian of ``sigma`` pixels (cached per 0.25 px)."""
        key = round(sigma * 4) / 4
        if key <= 0:
            return self.target_flat
        if key not in self._blurred:
            from torchvision.transforms.functional import gaussian_blur

            if len(self._blurred) > 64:
                self._blurred.clear()
            img = self.target_flat.reshape(self.target.height, self.width, 3).permute(2, 0, 1)
            size = 2 * math.ceil(3 * key) + 1
            # Reflect padding: the border pixels of an object-centred image are background on both sides.
            self._blurred[key] = gaussian_blur(img, [size, size], [key, key]).permute(1, 2, 0).reshape(-1, 3)
        return self._blurred[key]

    def rays(self, xi: torch.Tensor, c2w0: torch.Tensor, pix: torch.Tensor, sigma: float, step: int):
        """Ray tensors (origins, directions, view directions; each ``[G * K * n * k, 3]``), the target colours
        ``[G * K * n, 3]`` and ``k``, the rays per pixel: 1 without blur, else ``blur.rays`` rays on a ring of
        radius ``sqrt(2) sigma`` around the pixel centre (turned by the golden angle each step), whose mean
        colour stands for the blurred render."""
        G, K = xi.shape[:2]
        n = pix.shape[-1]
        uv = flat_to_uv(pix, self.width)[:, None].expand(G, K, n, 2).to(torch.float32)
        k = self.config.blur.rays if sigma > 0 else 1
        if k > 1:
            angle = step * 2.399963229728653 + torch.arange(k, device=uv.device) * (2 * math.pi / k)
            ring = math.sqrt(2.0) * sigma * torch.stack([angle.cos(), angle.sin()], -1)  # [k, 2]
            uv = (uv[..., None, :] + ring).reshape(G, K, n * k, 2)
        c2w = se3.se3_exp(xi) @ c2w0  # [G, K, 4, 4]
        cam = self.target.camera
        rays = rays_from_pixels(uv, c2w, *(v.to(uv.device)[0] for v in (cam.fx, cam.fy, cam.cx, cam.cy)))
        ray_t = [rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3), rays.viewdirs.reshape(-1, 3)]
        tgt = self.target_at(sigma)[pix][:, None].expand(G, K, n, 3).reshape(-1, 3)
        return ray_t, tgt, k

    def _chunk(self, k: int) -> int:
        """Rays per render call: a multiple of the rays per pixel, so a pixel's rays stay together."""
        return max(k, self.config.ray_chunk // k * k)

    def evaluate(
        self,
        xi: torch.Tensor,
        c2w0: torch.Tensor,
        pix: torch.Tensor,
        need_grad: bool,
        sigma: float = 0.0,
        step: int = 0,
    ):
        """Loss ``[G, K]`` of the poses ``exp(xi) @ c2w0`` on pixels ``pix`` ``[G, n]`` and, with
        ``need_grad``, its gradient with respect to ``xi`` ``[G, K, 6]``.

        Two-stage backward: chunks of rays are rendered and back-propagated to the ray tensors only (so
        each chunk's field activations are freed before the next chunk runs), then one backward pass takes
        the accumulated ray gradients through ray generation into the twist.
        """
        cfg = self.config
        G, K = xi.shape[:2]
        n = pix.shape[-1]
        xi = xi.detach().requires_grad_(need_grad)
        with torch.set_grad_enabled(need_grad):
            ray_t, tgt, k = self.rays(xi, c2w0, pix, sigma, step)
        total = ray_t[0].shape[0]
        per_pix = torch.empty(tgt.shape[0], device=tgt.device, dtype=tgt.dtype)
        ray_grads = [torch.zeros_like(t) for t in ray_t] if need_grad else None
        chunk_size = self._chunk(k)
        for a in range(0, total, chunk_size):
            b = min(a + chunk_size, total)
            chunk = [t[a:b].detach().requires_grad_(need_grad) for t in ray_t]
            with torch.set_grad_enabled(need_grad):
                out = render_rays(self.coarse, Rays(*chunk), self.render_config, fine=self.fine)
                rgb = out.rgb if k == 1 else out.rgb.reshape(-1, k, 3).mean(1)
                loss = photometric_loss(rgb, tgt[a // k : b // k], cfg)
                if cfg.coarse_loss_weight > 0 and out.rgb_coarse is not None:
                    rgb_c = out.rgb_coarse if k == 1 else out.rgb_coarse.reshape(-1, k, 3).mean(1)
                    loss = loss + cfg.coarse_loss_weight * photometric_loss(rgb_c, tgt[a // k : b // k], cfg)
                del out, rgb  # drop the coarse pass's graph now, not at the end of the loop body
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
        ``J_i = d colour_i / d delta`` the ``[3, 6]`` Jacobian for a left update ``exp(delta) @ T``.

        Each colour depends only on its own ray, so the per-pixel Jacobians come from three backward passes
        (one per colour channel) to the ray tensors, chained with the ray's derivative at ``delta = 0``:
        a point moves by ``rho + phi x p`` and a direction by ``phi x d``, hence
        ``J = [g_o, o x g_o + d x g_d + v x g_v]`` for the colour's gradients ``g_o, g_d, g_v`` with respect
        to the ray's origin ``o``, direction ``d`` and unit view direction ``v``.
        """
        cfg = self.config
        G, K = xi.shape[:2]
        n = pix.shape[-1]
        with torch.no_grad():
            ray_t, tgt, k = self.rays(xi, c2w0, pix, sigma, step)
        total = ray_t[0].shape[0]
        device = tgt.device
        per_pix = torch.empty(tgt.shape[0], device=device, dtype=tgt.dtype)
        hyp = torch.arange(tgt.shape[0], device=device) // n
        H = torch.zeros(G * K, 6, 6, device=device, dtype=torch.float64)
        g = torch.zeros(G * K, 6, device=device, dtype=torch.float64)
        chunk_size = self._chunk(k)
        for a in range(0, total, chunk_size):
            b = min(a + chunk_size, total)
            pa, pb = a // k, b // k  # the chunk's pixels
            leaves = [t[a:b].detach().requires_grad_(True) for t in ray_t]
            with torch.enable_grad():
                rgb = render_rays(self.coarse, Rays(*leaves), self.render_config, fine=self.fine).rgb
                if k > 1:
                    rgb = rgb.reshape(-1, k, 3).mean(1)
            res = rgb.detach() - tgt[pa:pb]
            per_pix[pa:pb] = photometric_loss(rgb.detach(), tgt[pa:pb], cfg)
            J = torch.empty(b - a, 3, 6, device=device, dtype=res.dtype)
            for c in range(3):
                grads = torch.autograd.grad(rgb[:, c].sum(), leaves, retain_graph=c < 2, allow_unused=True)
                g_o, g_d, g_v = (torch.zeros_like(t) if gr is None else gr for gr, t in zip(grads, leaves))
                J[:, c, :3] = g_o
                J[:, c, 3:] = (
                    torch.linalg.cross(leaves[0].detach(), g_o)
                    + torch.linalg.cross(leaves[1].detach(), g_d)
                    + torch.linalg.cross(leaves[2].detach(), g_v)
                )
            del rgb
            if (
                k > 1
            ):  # a pixel's colour is the mean of its rays': its Jacobian is the sum of theirs (1/k inside)
                J = J.reshape(-1, k, 3, 6).sum(1)
            if cfg.loss == "huber":  # IRLS: quadratic inside delta, linear (weight delta / |r|) outside
                w = (cfg.huber_delta / res.abs().clamp_min(1e-12)).clamp(max=1.0)
            else:
                w = torch.ones_like(res)
            H.index_add_(0, hyp[pa:pb], torch.einsum("rci,rc,rcj->rij", J, w, J).double())
            g.index_add_(0, hyp[pa:pb], torch.einsum("rci,rc,rc->ri", J, w, res).double())
        return per_pix.reshape(G, K, n).mean(-1), H.reshape(G, K, 6, 6), g.reshape(G, K, 6)


def _average_tail(xi, c2w0, recorded, rows, ids, dead):
    """Polyak-Ruppert averaging of the last LM iterates: the twists ``xi`` (``[G, K, 6]``) of the mean of the
    current poses ``exp(xi) @ c2w0`` and the ``recorded`` earlier ones (``[G, K0, 4, 4]`` each, indexed by
    the original hypothesis ``ids``). The mean is taken in the tangent space at the current pose (left
    perturbations), where the iterates jitter by a fraction of a degree. Failed hypotheses keep theirs."""
    current = se3.se3_exp(xi.double()) @ c2w0.double()
    inv = se3.inverse(current)
    deltas = [torch.zeros_like(xi, dtype=torch.float64)]
    deltas += [se3.se3_log(T[rows, ids].double() @ inv) for T in recorded]
    mean = torch.stack(deltas).mean(0)
    averaged = se3.se3_log(se3.se3_exp(mean) @ se3.se3_exp(xi.double())).to(xi.dtype)
    ok = torch.isfinite(averaged).all(-1) & ~dead
    return torch.where(ok[..., None], averaged, xi)


def lm_step(
    xi: torch.Tensor,
    H: torch.Tensor,
    g: torch.Tensor,
    damping: torch.Tensor,
    max_rot: float,
    max_trans: float,
    fraction: float = 1.0,
) -> torch.Tensor:
    """Candidate twists after one damped Gauss-Newton step from ``exp(xi)``: ``[..., 6]``.

    ``delta = -(H + damping * diag(H))^-1 g`` (Marquardt's scaling, so the damping is unit-free), shortened to
    the trust region (``|phi| <= max_rot``, ``|rho| <= max_trans``), scaled by ``fraction`` (see
    :meth:`PoseConfig.lm_fraction`), applied on the left as the gradient was:
    ``exp(xi') = exp(delta) exp(xi)``. Solved in float64.
    """
    Hd = H.double()
    diag = torch.diagonal(Hd, dim1=-2, dim2=-1)
    # A direction no pixel constrains (diag 0) gets a tiny floor, so the system stays solvable.
    floor = 1e-9 * diag.amax(-1, keepdim=True).clamp_min(1e-30)
    A = Hd + torch.diag_embed(damping.double()[..., None] * diag + floor)
    delta = -torch.linalg.solve(A, g.double()[..., None])[..., 0]
    shrink = torch.minimum(
        max_trans / delta[..., :3].norm(dim=-1).clamp_min(1e-30),
        max_rot / delta[..., 3:].norm(dim=-1).clamp_min(1e-30),
    ).clamp(max=1.0)
    delta = delta * (shrink * fraction)[..., None]
    return se3.se3_log(se3.se3_exp(delta) @ se3.se3_exp(xi.double())).to(xi.dtype)


def estimate_pose(
    model: Model,
    target: PoseTarget,
    init_c2w: torch.Tensor,
    config: PoseConfig | None = None,
    *,
    seeds: int | list[int] = 0,
    progress: bool = False,
    desc: str = "iNeRF",
) -> PoseResult:
    """Estimate camera poses by inverting a radiance field (iNeRF).

    Args:
        model: the fields and their render settings (frozen for the solve; pixelNeRF callers encode their
            source views first and pass the conditioned fields).
        target: the observed image and its intrinsics; its device is the solve's device.
        init_c2w: starting camera-to-world poses, OpenCV axes: ``[4, 4]``, ``[K, 4, 4]`` (one problem, K
            hypotheses) or ``[G, K, 4, 4]`` (G independent problems).
        config: solver settings (default: the paper's, :data:`inerf.pose.config.PAPER`).
        seeds: pixel-sampling seed per problem; an int ``s`` means ``s, s + 1, ..., s + G - 1``. Problem ``g``
            of a batch gives exactly what a single solve with seed ``seeds[g]`` gives.
        progress: show a tqdm progress bar.
        desc: the progress bar's label.
    Returns:
        :class:`PoseResult`.
    Raises:
        InerfError: ``init_c2w`` is not rigid or not finite; the sampling strategy cannot be used on this
            target (no keypoints, no alpha).
    """
    config = config or PoseConfig()
    coarse, fine, render_config = model.coarse, model.fine, model.config
    device = target.image.device
    c2w0 = _as_batch(torch.as_tensor(init_c2w)).detach().cpu()  # validated on the CPU: one check, one sync
    c2w0 = check_rigid(c2w0, "initial pose").to(device=device, dtype=torch.float32)
    G, K0 = c2w0.shape[:2]
    if isinstance(seeds, int):
        seed_list = [seeds + g for g in range(G)]
    else:
        seed_list = [int(s) for s in seeds]
        if len(seed_list) != G:
            raise ValueError(f"need {G} seeds (one per problem), got {len(seed_list)}")
    seed_t = torch.tensor(seed_list, dtype=torch.int64, device=device)

    t_start = time.perf_counter()
    with frozen_fields(coarse, fine):
        problem = _Problem(coarse, fine, target, config, render_config, device)
        # Per-coordinate learning-rate scale: twist order (rho, phi) = (translation, rotation).
        lr_scale = torch.tensor([config.adam.trans_lr_scale] * 3 + [1.0] * 3, device=device)
        xi = torch.zeros(G, K0, 6, device=device)
        m, v = torch.zeros_like(xi), torch.zeros_like(xi)
        ids = torch.arange(K0, device=device).expand(G, K0).contiguous()  # original index of each live slot
        rows = torch.arange(G, device=device)[:, None]
        dead = torch.zeros(G, K0, dtype=torch.bool, device=device)
        failed_step = torch.full((G, K0), -1, dtype=torch.int64, device=device)
        rec_c2w, rec_loss, rec_lr = [], [], []

        def record(xi_now, loss_now, dead_now, ids_now, c2w0_now):
            full_c2w = torch.full((G, K0, 4, 4), math.nan, device=device)
            full_loss = torch.full((G, K0), math.nan, device=device)
            full_c2w[rows, ids_now] = (se3.se3_exp(xi_now) @ c2w0_now).detach()
            full_loss[rows, ids_now] = torch.where(dead_now, math.nan, loss_now)
            rec_c2w.append(full_c2w)
            rec_loss.append(full_loss)

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=config.steps, desc=desc, unit="step", leave=False, dynamic_ncols=True)
        window_max = torch.zeros((), device=device)
        stopped_early = False
        step = 0
        damping = torch.full((G, K0), config.lm.damping, device=device)
        for step in range(config.steps):
            pix = problem.sampler.sample(seed_t, step)
            use_lm = config.uses_lm(step)
            sigma = config.blur.at(step)
            if use_lm:
                loss_k, H, grad = problem.linearize(xi, c2w0, pix, sigma, step)
                rec_lr.append(math.nan)  # no learning rate: the damping adapts per hypothesis
            else:
                loss_k, grad = problem.evaluate(xi, c2w0, pix, need_grad=True, sigma=sigma, step=step)
                lr = config.adam.lr_at(step)
                rec_lr.append(lr)
            # A hypothesis fails for good the first time its loss or gradient is not finite.
            bad = ~torch.isfinite(loss_k) | ~torch.isfinite(grad).all(-1)
            if use_lm:
                bad = bad | ~torch.isfinite(H).flatten(-2).all(-1)
            failed_step[rows, ids] = torch.where(
                bad & ~dead & (failed_step[rows, ids] < 0), step, failed_step[rows, ids]
            )
            dead = dead | bad
            record(xi, loss_k, dead, ids, c2w0)
            if step in config.prune_steps and xi.shape[1] > 1:
                # Rank on this step's loss (same pixels for every hypothesis of a problem); failed ones last.
                score = torch.where(dead, math.inf, loss_k)
                keep = torch.topk(score, xi.shape[1] // 2, dim=1, largest=False).indices.sort(dim=1).values
                xi, m, v, grad, dead, ids, loss_k, damping = (
                    t[rows, keep] for t in (xi, m, v, grad, dead, ids, loss_k, damping)
                )
                c2w0 = c2w0[rows, keep]
                if use_lm:
                    H = H[rows, keep]
            grad = torch.where(dead[..., None], 0.0, grad)
            new_m, new_v = m, v
            if use_lm:
                H = torch.where(dead[..., None, None], torch.eye(6, device=device, dtype=H.dtype), H)
                cand = lm_step(
                    xi, H, grad, damping, config.lm.max_rot, config.lm.max_trans, config.lm_fraction(step)
                )
                # Accept a step only if it lowers the loss on the same pixels (Levenberg-Marquardt).
                loss_c, _ = problem.evaluate(cand, c2w0, pix, need_grad=False, sigma=sigma, step=step)
                accept = torch.isfinite(loss_c) & (loss_c < loss_k) & torch.isfinite(cand).all(-1)
                new_xi = torch.where(accept[..., None], cand, xi)
                damping = torch.where(accept, damping / 3, damping * 4).clamp(1e-7, 1e7)
            else:
                new_xi, new_m, new_v = adam_update(
                    xi, grad, m, v, step + 1, lr * lr_scale, config.adam.betas, config.adam.eps
                )
            # Failed hypotheses stay where they were (their last finite pose).
            frozen = dead[..., None]
            delta = torch.where(frozen, 0.0, new_xi - xi)
            xi = xi + delta
            m, v = torch.where(frozen, m, new_m), torch.where(frozen, v, new_v)
            if bar is not None:
                bar.update(1)
                if step % config.progress_every == 0 or step == config.steps - 1:
                    best = torch.where(dead, math.inf, loss_k).min()
                    bar.set_postfix(loss=f"{best.item():.3e}", refresh=False)
            if config.stop.tol > 0:
                # Step size of each hypothesis: max of the translation and rotation parts of the change.
                moved = torch.maximum(delta[..., :3].norm(dim=-1), delta[..., 3:].norm(dim=-1)).amax()
                window_max = torch.maximum(window_max, moved)
                if (step + 1) % config.stop.window == 0:
                    if window_max.item() < config.stop.tol:
                        stopped_early = True
                        step += 1
                        break
                    window_max.zero_()
        else:
            step = config.steps
        if bar is not None:
            bar.close()
        n_avg = min(config.lm.average, sum(config.uses_lm(s) for s in range(step)))
        if n_avg > 1:
            xi = _average_tail(xi, c2w0, rec_c2w[len(rec_c2w) - (n_avg - 1) :], rows, ids, dead)
        # Score the final poses on the next step's pixels (no update): the loss of the returned pose.
        pix = problem.sampler.sample(seed_t, step)
        loss_k, _ = problem.evaluate(xi, c2w0, pix, need_grad=False)
        bad = ~torch.isfinite(loss_k)
        failed_step[rows, ids] = torch.where(bad & ~dead, step, failed_step[rows, ids])
        dead = dead | bad
        record(xi, loss_k, dead, ids, c2w0)
        rec_lr.append(math.nan)

        score = torch.where(dead, math.inf, loss_k)
        best_slot = score.argmin(dim=1)  # all failed: argmin of all-inf is slot 0, its last finite pose
        final_c2w = (se3.se3_exp(xi) @ c2w0)[rows[:, 0], best_slot]
        final_loss = loss_k[rows[:, 0], best_slot]
        hyp = ids[rows[:, 0], best_slot]
        all_dead = dead.all(dim=1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t_start

    trajectory = PoseTrajectory(
        c2w=torch.stack(rec_c2w).double().cpu(),
        loss=torch.stack(rec_loss).double().cpu(),
        lr=torch.tensor(rec_lr, dtype=torch.float64),
    )
    all_dead_cpu = all_dead.cpu().tolist()
    return PoseResult(
        c2w=final_c2w.detach().double().cpu(),
        loss=torch.where(all_dead, math.nan, final_loss).double().cpu(),
        hypothesis=hyp.cpu(),
        status=["nan" if d else "ok" for d in all_dead_cpu],
        failed_step=failed_step.cpu(),
        steps=step,
        stopped_early=stopped_early,
        seconds=seconds,
        device=str(device),
        init_c2w=_as_batch(torch.as_tensor(init_c2w)).detach().double().cpu(),
        trajectory=trajectory,
    )


def require_finite(result: PoseResult) -> None:
    """Raise :class:`InerfError` if any problem of ``result`` failed numerically (for callers that want an
    exception rather than a status)."""
    for g, s in enumerate(result.status):
        if s != "ok":
            first = int(result.failed_step[g].clamp_min(0).min())
            raise InerfError(
                f"the photometric loss became NaN or infinite at step {first} for every hypothesis; "
                "check the field, the target image and the learning rate"
            )
