"""The Levenberg-Marquardt step's capturable fast functions (issue 16), checked on the CPU against the slow
references of :mod:`inerf.pose._reference`: the same Gauss-Newton system and the same update, no host data or
sync inside them, a :class:`Problem` reused across the frames of a track giving what a new one gives, and
bounded device-op counts per LM step and per frame."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from pose_scene import perturb
from torch.utils._python_dispatch import TorchDispatchMode

from inerf.pose import _reference
from inerf.pose.config import BlurConfig, LMConfig, PoseConfig
from inerf.pose.problem import PoseTarget, Problem
from inerf.pose.solver import estimate_pose
from inerf.render.model import Model
from inerf.render.renderer import render_image

SYNCING_OPS = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "unique", "_linalg_check_errors"})
"""ATen ops that read a value back to the host (or produce a data-dependent shape): none may run inside a
captured function."""


class _OpNames(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.__name__.split(".")[0])
        return func(*args, **(kwargs or {}))


def _inputs(problem, gt, sigma, K=2, G=2):
    pix = problem.sampler.sample(torch.tensor([3, 8][:G]), 5)
    c2w0 = torch.stack(
        [perturb(gt, 3.0 * (1 + i), 0.02, axis=(0.2, 0.4 * i - 0.5, 0.8)) for i in range(G * K)]
    )
    return torch.zeros(G, K, 6), c2w0.float().reshape(G, K, 4, 4), pix


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize(
    ("loss", "sigma", "chunk"),
    [("mse", 0.0, 8192), ("huber", 0.0, 8192), ("mse", 2.0, 8192), ("mse", 2.0, 96)],
)
def test_gauss_newton_equals_the_reference(field, render_config, scene, loss, sigma, chunk, batched):
    """One backward pass for the three colour channels (``batched``, the GPU's choice) or one per channel, and
    a reshape-sum, give the reference's per-channel backward passes and scatter-add: the same loss,
    ``J^T W J`` and ``J^T W r`` (several chunks too)."""
    target, gt = scene
    config = PoseConfig(n_rays=120, loss=loss, huber_delta=0.02, ray_chunk=chunk, blur=BlurConfig(rays=4))
    problem = Problem(Model(field, None, render_config), target, config)
    problem.batched_jacobian = batched  # the GPU's choice (True) on the CPU too
    xi, c2w0, pix = _inputs(problem, gt, sigma)
    loss_r, H_r, g_r = _reference.linearize(problem, xi, c2w0, pix, sigma=sigma, step=5)
    loss_f, H_f, g_f = problem.linearize(xi, c2w0, pix, sigma=sigma, step=5)
    assert g_r.abs().max() > 1e-3 and H_f.dtype == g_f.dtype == torch.float64
    torch.testing.assert_close(loss_f, loss_r, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(H_f, H_r, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(g_f, g_r, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("sigma", [0.0, 2.0])
def test_lm_update_equals_the_reference(field, render_config, scene, sigma):
    """The device-side update (candidate, its loss, accept test, damping) equals the eager calls, for a mix of
    accepted and rejected hypotheses; the scalars enter as tensors, so a graph serves every step."""
    target, gt = scene
    config = PoseConfig(n_rays=120, optimizer="lm", lm=LMConfig(max_rot=0.05, max_trans=0.1))
    problem = Problem(Model(field, None, render_config), target, config)
    xi, c2w0, pix = _inputs(problem, gt, sigma)
    loss, H, g = problem.linearize(xi, c2w0, pix, sigma=sigma, step=2)
    # Hypothesis (1, 1) gets a useless system (its step moves away): rejected, its damping grows.
    g[1, 1] *= -1
    damping = torch.tensor([[1e-2, 1.0], [1e-3, 1e-2]])
    args = (xi, c2w0, pix, H, g, loss, damping, 0.5, 0.05, 0.1)
    xi_r, d_r = _reference.lm_update(problem, *args, sigma=sigma, step=2)
    xi_f, d_f = problem.lm_step(*args, sigma=sigma, step=2)
    torch.testing.assert_close(xi_f, xi_r, rtol=0, atol=0)
    torch.testing.assert_close(d_f, d_r, rtol=0, atol=0)
    accepted = d_f < damping
    assert accepted.any() and not accepted[1, 1]


def test_fast_functions_read_nothing_back_and_build_nothing_from_host_data(
    field, render_config, scene, host_copy_spy
):
    target, gt = scene
    config = PoseConfig(n_rays=64, optimizer="lm", loss="huber", blur=BlurConfig(rays=4))
    problem = Problem(Model(field, None, render_config), target, config)
    xi, c2w0, pix = _inputs(problem, gt, 2.0)
    ring, tgt = problem.ring(2.0, 1), problem.targets(pix, 2.0, 2)
    loss, H, g = problem.linearize(xi, c2w0, pix, sigma=2.0, step=1)
    scalars = problem._scalars(0.5, 0.05, 0.1)
    damping = torch.full((2, 2), 1e-2)
    ops = _OpNames()
    with host_copy_spy, ops:
        problem.gauss_newton(xi, c2w0, pix, ring, tgt)
        problem.lm_update(xi, c2w0, pix, ring, tgt, H, g, loss, damping, *scalars)
    assert host_copy_spy.calls == []
    assert SYNCING_OPS.isdisjoint(ops.names), SYNCING_OPS & set(ops.names)


def _frames(field, render_config, camera, poses):
    return [
        PoseTarget(render_image(field, camera.with_c2w(c.float()), render_config).rgb, camera) for c in poses
    ]


def test_a_retargeted_problem_solves_like_a_new_one(field, render_config, scene):
    """The per-frame solves of a track reuse one :class:`Problem` (:meth:`Problem.retarget`): each frame's
    result equals a solve with a new problem; a different size is refused."""
    target, gt = scene
    model = Model(field, None, render_config)
    config = PoseConfig(steps=4, optimizer="lm", n_rays=96, blur=BlurConfig(sigma=2.0, steps=2, rays=4))
    poses = [perturb(gt, 4.0 * i, 0.02 * i) for i in range(3)]
    targets = _frames(field, render_config, target.camera, poses)
    shared = Problem(model, targets[0], config)
    for k, (tgt, pose) in enumerate(zip(targets, poses)):
        assert shared.retarget(tgt)
        start = perturb(pose, 2.0, 0.01, axis=(0.5, 0.1, -0.3))
        a = estimate_pose(model, tgt, start, config, seeds=k, problem=shared)
        b = estimate_pose(model, tgt, start, config, seeds=k)
        torch.testing.assert_close(a.c2w, b.c2w, rtol=0, atol=1e-6)
        torch.testing.assert_close(a.loss, b.loss, rtol=1e-6, atol=0)
    small = target.camera.scaled(0.5)
    assert not shared.retarget(PoseTarget(torch.zeros(small.height, small.width, 3), small))


def _count_pose_ops():
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    import count_pose_ops

    return count_pose_ops


def test_lm_step_and_frame_launch_few_eager_device_ops(monkeypatch):
    """What the GPU launches outside its CUDA graphs, counted on the CPU with the grid field's fast settings
    (:func:`count_pose_ops.track_ops`): per LM step of a tracked frame, the ops between the graph replays
    (pixel sampling from a block, the finite test, the record, the damping state); per frame, those plus the
    solve's set-up and result. Before issue 16's capture of the LM step every op of the step was eager (over
    a thousand per LM step with the Jacobian's three backward passes)."""
    from inerf.fields import grid

    monkeypatch.setattr(grid, "PACKED_QUERY_DEVICES", {"cuda", "cpu"})
    counting = _count_pose_ops()
    sys.path.insert(0, str(Path(__file__).parent))
    from test_fast import _grid_model, _problem

    model = _grid_model()
    problem, gt = _problem(model, PoseConfig(n_rays=64))
    config = replace(
        PoseConfig(steps=8, optimizer="lm", n_rays=64, blur=BlurConfig(sigma=2.0, steps=5, rays=4)),
        lm=LMConfig(average=3),
    )
    counts = counting.track_ops(model, problem.target, perturb(gt, 2.0, 0.02).float(), config, frames=3)
    print(counts)
    assert counts["captured_per_step"] > 300  # the graphs hold the bulk of the work
    assert counts["eager_per_lm_step"] <= 50, counts
    assert counts["eager_per_frame"] <= 700, counts


def test_static_so3_log_equals_the_branching_one_near_pi_and_elsewhere():
    from inerf.geometry import se3

    axes = torch.nn.functional.normalize(
        torch.tensor([[0.3, -0.5, 0.8], [1.0, 0.2, 0.1], [0.0, 0.0, 1.0]]), dim=-1
    )
    angles = torch.tensor([1e-6, 0.3, 3.14159, torch.pi - 1e-5, torch.pi]).double()
    phi = (axes.double()[:, None] * angles[None, :, None]).reshape(-1, 3)
    T = se3.se3_exp(torch.cat([torch.full_like(phi, 0.2), phi], -1))
    torch.testing.assert_close(se3.se3_log(T, static=True), se3.se3_log(T), rtol=0, atol=0)


def test_batched_target_blurs_equal_torchvision():
    """Every blur of a solve's schedule at once (two grouped convolutions) equals torchvision's
    ``gaussian_blur`` one sigma at a time (kernel ``2 ceil(3 sigma) + 1``, reflect padding)."""
    from torchvision.transforms.functional import gaussian_blur

    from inerf.pose.problem import _gaussian_blurs, _gaussian_kernels

    img = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(0))
    sigmas = (0.5, 1.25, 2.0, 3.25)
    for s, out in zip(sigmas, _gaussian_blurs(img, _gaussian_kernels(sigmas, "cpu"))):
        size = 2 * math.ceil(3 * s) + 1
        ref = gaussian_blur(img, [size, size], [s, s]).permute(1, 2, 0).reshape(-1, 3)
        torch.testing.assert_close(out, ref, rtol=0, atol=2e-6)


def test_solve_spd_equals_an_lu_solve_and_flags_a_singular_system():
    """The GPU's capturable elimination (:func:`inerf.pose.steps.solve_spd`) solves damped Gauss-Newton
    systems of badly scaled columns like ``torch.linalg.solve``; a singular one gives NaN (rejected)."""
    from inerf.pose.steps import solve_spd

    gen = torch.Generator().manual_seed(0)
    scale = torch.tensor([1e-3, 1.0, 10.0, 1e2, 0.1, 1.0], dtype=torch.float64)
    J = torch.randn(20, 200, 6, generator=gen, dtype=torch.float64) * scale
    H = J.transpose(-1, -2) @ J
    A = H + torch.diag_embed(1e-2 * H.diagonal(dim1=-2, dim2=-1))
    b = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(solve_spd(A, b), torch.linalg.solve(A, b), rtol=1e-8, atol=0)
    assert (
        solve_spd(torch.zeros(1, 6, 6, dtype=torch.float64), torch.ones(1, 6, dtype=torch.float64))
        .isnan()
        .all()
    )
