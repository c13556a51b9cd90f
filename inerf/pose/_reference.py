"""Slow references of the pose solve's fast paths, kept beside them and tested against them.

* :func:`linearize`: the Gauss-Newton system ray chunk by ray chunk, one backward pass per colour channel
  and a scatter-add per hypothesis: what :meth:`inerf.pose.problem.Problem.gauss_newton` computes with one
  backward pass for the three channels and a reshape-sum.
* :func:`lm_update`: the Levenberg-Marquardt update as separate eager calls (:func:`inerf.pose.steps.lm_step`,
  :meth:`~inerf.pose.problem.Problem.evaluate` of the candidate, the accept test): what
  :meth:`~inerf.pose.problem.Problem.lm_update` does in one capturable call.
"""

from __future__ import annotations

import torch

from inerf.pose.problem import Problem, _pose_jacobian, photometric_loss
from inerf.rays.rays import Rays

__all__ = ["linearize", "lm_update"]


def linearize(problem: Problem, xi: torch.Tensor, c2w0: torch.Tensor, pix: torch.Tensor, sigma=0.0, step=0):
    """``(loss [G, K], H [G, K, 6, 6], g [G, K, 6])`` of :meth:`Problem.linearize`, computed the slow way."""
    cfg = problem.config
    G, K = xi.shape[:2]
    n = pix.shape[-1]
    ring = problem.ring(sigma, step)
    k = 1 if ring is None else ring.shape[0]
    tgt = problem.targets(pix, sigma, K)
    if problem.pooled and problem.model.config.sample_pool <= 0:
        problem._size_pool(xi, c2w0, pix, ring)
    with torch.no_grad():
        ray_t = problem.rays(xi, c2w0, pix, ring)
    total = ray_t[0].shape[0]
    device = tgt.device
    per_pix = torch.empty(tgt.shape[0], device=device, dtype=tgt.dtype)
    hyp = torch.arange(tgt.shape[0], device=device) // n
    H = torch.zeros(G * K, 6, 6, device=device, dtype=torch.float64)
    g = torch.zeros(G * K, 6, device=device, dtype=torch.float64)
    chunk_size = problem._chunk(k)
    for a in range(0, total, chunk_size):
        b = min(a + chunk_size, total)
        pa, pb = a // k, b // k  # the chunk's pixels
        leaves = [t[a:b].detach().requires_grad_(True) for t in ray_t]
        with torch.enable_grad():
            out = problem.model.render_rays(Rays(*leaves))
            problem._count_dropped(out)
            rgb = out.rgb
            del out
            if k > 1:
                rgb = rgb.reshape(-1, k, 3).mean(1)
        res = rgb.detach() - tgt[pa:pb]
        per_pix[pa:pb] = photometric_loss(rgb.detach(), tgt[pa:pb], cfg)
        J = _pose_jacobian(rgb, leaves)
        del rgb
        if k > 1:  # a pixel's colour is the mean of its rays': its Jacobian is the sum of theirs (1/k inside)
            J = J.reshape(-1, k, 3, 6).sum(1)
        if cfg.loss == "huber":  # IRLS: quadratic inside delta, linear (weight delta / |r|) outside
            w = (cfg.huber_delta / res.abs().clamp_min(1e-12)).clamp(max=1.0)
        else:
            w = torch.ones_like(res)
        H.index_add_(0, hyp[pa:pb], torch.einsum("rci,rc,rcj->rij", J, w, J).double())
        g.index_add_(0, hyp[pa:pb], torch.einsum("rci,rc,rc->ri", J, w, res).double())
    return per_pix.reshape(G, K, n).mean(-1), H.reshape(G, K, 6, 6), g.reshape(G, K, 6)


def lm_update(
    problem: Problem, xi, c2w0, pix, H, g, loss, damping, fraction, max_rot, max_trans, sigma, step
):
    """``(xi, damping)`` of :meth:`Problem.lm_step`, computed the slow way (floats for the scalars)."""
    from inerf.pose.steps import lm_step

    cand = lm_step(xi, H, g, damping, max_rot, max_trans, fraction)
    loss_c, _ = problem.evaluate(cand, c2w0, pix, need_grad=False, sigma=sigma, step=step)
    accept = torch.isfinite(loss_c) & (loss_c < loss) & torch.isfinite(cand).all(-1)
    xi = torch.where(accept[..., None], cand, xi)
    damping = torch.where(accept, damping / 3, damping * 4).clamp(1e-7, 1e7)
    return xi, damping
