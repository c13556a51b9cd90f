"""The GPU fast path's preconditions, checked on the CPU: the render-and-backward step that
:mod:`inerf.pose.fast` captures in a CUDA graph builds no tensor from host data, and with the fast path's
settings (static-shape empty-space skipping) it computes what the reference path computes."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch
from pose_scene import FOCAL, H, W, look_at

from inerf.geometry.cameras import Cameras
from inerf.pose.config import PoseConfig
from inerf.pose.problem import PoseTarget, Problem, fast_sample_budget, frozen_fields
from inerf.render.model import Model
from inerf.render.renderer import RenderConfig


def _grid_model():
    sys.path.insert(0, str(Path(__file__).parents[1] / "fields"))
    from test_grid import carved_box_field

    field = carved_box_field(dtype=torch.float32)
    return Model(field, None, RenderConfig(n_coarse=64, n_fine=0, near=1.0, far=6.0))


def _problem(model, config):
    gt = look_at((2.4, -2.8, 1.6)).float()
    camera = Cameras.from_intrinsics(FOCAL, FOCAL, W / 2, H / 2, H, W)
    with torch.no_grad():
        image = model.render_image(camera.with_c2w(gt)).rgb
    return Problem(model, PoseTarget(image, camera), config), gt


def _step_inputs(problem, gt, sigma=0.0):
    pix = problem.sampler.sample(torch.zeros(1, dtype=torch.int64), 3)
    xi = torch.full((1, 2, 6), 2e-3)
    xi[0, 1] *= -1
    c2w0 = gt[None, None].expand(1, 2, 4, 4).contiguous()
    return xi, c2w0, pix, problem.ring(sigma, 3), problem.targets(pix, sigma, 2)


def test_step_builds_no_tensor_from_host_data(field, render_config, host_copy_spy):
    config = PoseConfig(n_rays=32, blur=replace(PoseConfig().blur, sigma=2.0))
    for model in (_grid_model().with_config(sample_budget=16), Model(field, None, render_config)):
        with frozen_fields(*model.fields()):
            problem, gt = _problem(model, config)
            for sigma in (0.0, 2.0):
                inputs = _step_inputs(problem, gt, sigma)
                with host_copy_spy:
                    problem.loss_and_grad(*inputs)
    assert host_copy_spy.calls == []


def test_fast_settings_compute_what_the_reference_computes():
    model = _grid_model()
    config = PoseConfig(n_rays=64)
    with frozen_fields(*model.fields()):
        ref, gt = _problem(model, config)
        fast, _ = _problem(model.with_config(sample_budget=fast_sample_budget(model.config.n_coarse)), config)
        loss_r, grad_r = ref.loss_and_grad(*_step_inputs(ref, gt))
        loss_f, grad_f = fast.loss_and_grad(*_step_inputs(fast, gt))
    assert grad_r.abs().max() > 0
    torch.testing.assert_close(loss_f, loss_r, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(grad_f, grad_r, rtol=1e-4, atol=1e-7)


def test_fast_budget_is_a_quarter_of_the_samples_within_bounds():
    assert [fast_sample_budget(n) for n in (64, 256, 933, 4000)] == [48, 64, 192, 192]


def test_query_pool_is_sized_from_the_first_step_and_grows_when_it_overflows():
    """The pool of packed field queries holds 1.5x the occupied samples of the first evaluation; a pool that
    overflowed (poses moved) doubles at the next check, and results equal the unpooled reference."""
    model = _grid_model()
    config = PoseConfig(n_rays=64)
    with frozen_fields(*model.fields()):
        ref, gt = _problem(model, config)
        fast, _ = _problem(model.with_config(sample_budget=fast_sample_budget(model.config.n_coarse)), config)
        assert fast.pooled and fast.model.config.sample_pool == 0
        inputs = _step_inputs(fast, gt)
        loss_f, grad_f = fast.evaluate(*inputs[:3], need_grad=True)
        pool = fast.model.config.sample_pool
        assert 1.0 <= pool < fast_sample_budget(model.config.n_coarse)
        loss_r, grad_r = ref.evaluate(*inputs[:3], need_grad=True)
        torch.testing.assert_close(loss_f, loss_r, rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(grad_f, grad_r, rtol=1e-4, atol=1e-7)
        assert not fast.check_pool() and fast.model.config.sample_pool == pool
        fast.model = fast.model.with_config(sample_pool=0.25)  # too small: samples are left out, counted
        fast.evaluate(*inputs[:3], need_grad=True)
        assert int(fast.dropped) > 0
        assert fast.check_pool() and fast.model.config.sample_pool == 0.5 and int(fast.dropped) == 0


def test_shipped_pixelnerf_step_has_no_host_copy_or_sync(host_copy_spy):
    """The shipped pixelNeRF's pose step, as the GPU fast path captures it: no tensor built from host data and
    no op that reads a device value back (nonzero, item, masked_select, unique, a tensor of repeats)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from inerf.pixelnerf.bundle import default_bundle
    from inerf.pixelnerf.pose import canonical_source_c2w, encode_source
    from inerf.pixelnerf.rendering import pixelnerf_model, render_config
    from inerf.pose.problem import field_precision

    class SyncSpy(TorchDispatchMode):
        SYNCING = ("nonzero", "_local_scalar_dense", "masked_select", "unique", "repeat_interleave")

        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.__name__.split(".")[0] in self.SYNCING:
                self.calls.append(func.__name__)
            return func(*args, **(kwargs or {}))

    bundle = default_bundle()
    net = bundle.load()
    source = torch.rand(*bundle.camera["image_size"], 3)
    encode_source(net, source, bundle.camera["focal"], bundle.camera["radius"])
    r = net.full_config.renderer
    model = pixelnerf_model(
        net, render_config(r, bundle.camera["near"], bundle.camera["far"], deterministic=True)
    )
    H, W = bundle.camera["image_size"]
    camera = Cameras.from_intrinsics(
        bundle.camera["focal"], bundle.camera["focal"], W / 2 + 0.5, H / 2 + 0.5, H, W
    )
    spy = SyncSpy()
    with frozen_fields(*model.fields()), field_precision(torch.bfloat16, *model.fields()):
        problem = Problem(model, PoseTarget(source, camera), PoseConfig(n_rays=16))
        pix = problem.sampler.sample(torch.zeros(1, dtype=torch.int64), 0)
        c2w0 = canonical_source_c2w(bundle.camera["radius"]).float()[None, None]
        inputs = (torch.full((1, 1, 6), 1e-3), c2w0, pix, None, problem.targets(pix, 0.0, 1))
        with host_copy_spy, spy:
            loss, grad = problem.loss_and_grad(*inputs)
    assert host_copy_spy.calls == [] and spy.calls == []
    assert torch.isfinite(loss).all() and grad.abs().max() > 0


def _count_pose_ops():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "count_pose_ops.py"
    spec = importlib.util.spec_from_file_location("count_pose_ops", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fast_step_launches_few_device_ops(monkeypatch):
    """The grid field's fast pose step (what the GPU replays from a CUDA graph) is bound by its kernel count
    (issue #12): its ATen ops that do work, forward and backward, stay below a bound. It was 483 before the
    step was restructured (se3 by squaring, one grid_sample for all factors, packed gathers, ...), 231 after;
    the count does not depend on the number of rays or the field's size."""
    from inerf.fields import grid

    monkeypatch.setattr(grid, "PACKED_QUERY_DEVICES", {"cuda", "cpu"})  # the field's GPU path, on the CPU
    counting = _count_pose_ops()
    model = _grid_model()
    with frozen_fields(*model.fields()):
        problem, gt = _problem(model, PoseConfig(n_rays=64))
        problem = counting.fast_problem(model, problem.target, PoseConfig(n_rays=64))
        assert problem.pooled
        inputs = counting.step_inputs(problem, gt)
        kernels = counting.count_ops(lambda: problem.loss_and_grad(*inputs), attribute=False).kernels()
        # On failure, the count by stage (slower: it reads Python stacks).
        table = (
            ""
            if len(kernels) <= 240
            else counting.table(counting.count_ops(lambda: problem.loss_and_grad(*inputs)))
        )
    assert len(kernels) <= 240, table
    assert 0 < sum(1 for op in kernels if op[2]) < len(kernels)  # backward ops are counted too
