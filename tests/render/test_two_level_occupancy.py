"""The two-level occupancy test (``RenderConfig.sample_chunk``) on trained grid fields, float32: the same
colours and pose gradients as the one-level static-shape path (bit for bit) and as the field's own skipping
(the slow reference), on the shipped demo field and, where the lead's run exists, the chair's grid run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from inerf.geometry.se3 import se3_exp
from inerf.rays.rays import rays_from_pixels
from inerf.render.renderer import render_rays

CHAIR_RUN = Path("/work/main/.carry/chair_grid")


def _demo():
    from inerf.demo import load_demo

    assets = load_demo("cpu")
    camera = assets.targets[0].camera
    return assets.run.model, camera, assets.targets[0].gt_c2w


def _chair():
    if not (CHAIR_RUN / "model.safetensors").exists():
        pytest.skip(f"the chair grid run is not here ({CHAIR_RUN}): a local check only")
    from inerf.train.checkpoint import load_run

    loaded = load_run(str(CHAIR_RUN), torch.device("cpu"))
    views = loaded.dataset.load("test", run_dir=loaded.run_dir, max_views=1)
    return loaded.model, views.cameras[0], views.cameras.c2w[0]


@pytest.mark.parametrize("scene", [_demo, _chair], ids=["demo", "chair"])
def test_two_level_render_equals_one_level_and_reference(scene):
    torch.set_num_threads(1)
    model, camera, c2w = scene()
    field, cfg = model.coarse, replace(model.config, n_fine=0, jitter=False)
    g = torch.Generator().manual_seed(0)
    n = 384
    uv = torch.stack(
        [
            torch.randint(0, camera.width, (n,), generator=g),
            torch.randint(0, camera.height, (n,), generator=g),
        ],
        -1,
    )
    # Half the rays aimed at the object's image region (the middle half of the image): most of them hit.
    uv[: n // 2] = uv[: n // 2] // 2 + torch.tensor([camera.width // 4, camera.height // 4])
    budget = cfg.n_coarse  # holds every occupied sample: all paths keep the same samples

    def render(config):
        xi = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        pose = (se3_exp(xi) @ c2w.double()).float()
        rays = rays_from_pixels(uv, pose, camera.fx[0], camera.fy[0], camera.cx[0], camera.cy[0])
        out = render_rays(field, rays, config)
        (grad,) = torch.autograd.grad(out.rgb.sum(), xi)
        return out.rgb, grad

    ref, g_ref = render(cfg)
    one, g_one = render(replace(cfg, sample_budget=budget, colour_only=True))
    two, g_two = render(replace(cfg, sample_budget=budget, colour_only=True, sample_chunk=16, chunk_budget=0))
    assert torch.equal(two, one) and torch.equal(g_two, g_one)
    torch.testing.assert_close(two, ref, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(g_two, g_ref, atol=1e-4, rtol=1e-3)
    assert (ref < 0.99).any(-1).sum() > n // 8  # rays hit the object
