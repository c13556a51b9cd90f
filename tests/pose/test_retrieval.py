"""Retrieval seeding: back-projection of reference pixels, a PnP pose from ORB matches against a rendered
reference of the bundled demo field, and global localisation that finds the target through a retrieved
candidate when the viewpoint grid has none near it."""

from __future__ import annotations

import math

import pytest
import torch

from inerf.geometry import se3
from inerf.geometry.cameras import Cameras, look_at, project
from inerf.pose.config import BlurConfig, PoseConfig
from inerf.pose.global_search import (
    CameraPrior,
    GlobalConfig,
    ReferenceCache,
    localize,
    low_resolution_target,
)
from inerf.pose.problem import PoseTarget
from inerf.pose.retrieval import RetrievalConfig, back_project, render_references, retrieve_poses

ORBIT_DEG = 15.0
"""How far the reference camera is orbited from the target's (about the world up axis)."""


def _orbit(c2w: torch.Tensor, deg: float) -> torch.Tensor:
    """``c2w`` turned about the world z axis through the origin by ``deg`` degrees (an orbit step)."""
    move = torch.eye(4, dtype=torch.float64)
    move[:3, :3] = se3.axis_angle_to_matrix(
        torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),
        torch.tensor(math.radians(deg), dtype=torch.float64),
    )
    return move @ c2w.double()


def test_back_project_inverts_projection():
    c2w = look_at(torch.tensor([0.5, -4.0, 1.0], dtype=torch.float64))
    cam = Cameras.from_intrinsics(120.0, 110.0, 50.0, 40.0, 80, 100).with_c2w(c2w)
    pts = torch.tensor([[0.1, 0.2, 0.3], [-0.5, 0.0, 0.4], [0.3, -0.2, -0.1]], dtype=torch.float64)
    uv, z = project(pts, c2w, 120.0, 110.0, 50.0, 40.0)
    torch.testing.assert_close(back_project(uv, z, cam, 0, "z"), pts)
    ray = (pts - c2w[:3, 3]).norm(dim=-1)  # metric depth: the distance along the unit ray
    torch.testing.assert_close(back_project(uv, ray, cam, 0, "metric"), pts)


@pytest.fixture(scope="module")
def demo():
    from inerf.demo import load_demo

    assets = load_demo("cpu")
    return assets, assets.run.model.with_config(n_coarse=48)


def test_pnp_pose_from_a_rendered_reference_is_nearer_than_the_reference(demo):
    """ORB matches between a held-out photo of the duck and the field's render 15 degrees around the orbit,
    with the rendered depth, give a PnP pose nearer the truth than the reference camera itself."""
    assets, model = demo
    t = assets.targets[4]
    refs = render_references(model, _orbit(t.gt_c2w, ORBIT_DEG)[None], t.camera, 200)
    found = retrieve_poses(PoseTarget(t.image, t.camera), refs, RetrievalConfig(size=200))
    assert found.matches[0] >= 30 and len(found.inliers) == 1 and found.inliers[0] >= 12
    rot = float(se3.rotation_error_deg(found.c2w[0], t.gt_c2w))
    trans = float(se3.translation_error(found.c2w[0], t.gt_c2w))
    ref_rot = float(se3.rotation_error_deg(refs.cameras.c2w[0].double(), t.gt_c2w))
    assert ref_rot == pytest.approx(ORBIT_DEG, abs=0.01)
    assert rot < 0.75 * ref_rot and trans < 0.6, (rot, trans)


def test_retrieval_seed_finds_a_target_the_grid_misses(demo):
    """The grid holds only cameras 90 degrees or more from the target; retrieval against a reference 15
    degrees away adds a candidate in the right basin, which is scored best and refined to the pose."""
    assets, model = demo
    t = assets.targets[4]
    far = torch.stack([_orbit(t.gt_c2w, a) for a in (90.0, 180.0, 270.0)])
    prior = CameraPrior.from_cameras(far)
    refs = render_references(model, _orbit(t.gt_c2w, ORBIT_DEG)[None], t.camera, 200)
    target = PoseTarget(t.image, t.camera)
    config = GlobalConfig(
        source="cameras", rolls=1, score_rays=64, score_blur_rays=1, score_samples=32, keep=1, retrieval=True
    )
    refine = PoseConfig(optimizer="lm", steps=30, n_rays=512, blur=BlurConfig(sigma=4.0, steps=15, rays=4))
    found = localize(model, target, prior, config, refine, references=refs)
    assert found.candidates.shape[1] == 3 + len(found.retrieved.inliers) == 4
    assert int(found.chosen[0, 0]) == 3  # the retrieved candidate
    rot = float(se3.rotation_error_deg(found.result.c2w[0], t.gt_c2w))
    trans = float(se3.translation_error(found.result.c2w[0], t.gt_c2w))
    assert rot < 2.0 and trans < 0.1, (rot, trans)
    assert found.record()["retrieval"]["poses"] == 1


def test_reference_cache_renders_once_per_camera(demo):
    """Localising several images of one camera through a :class:`ReferenceCache` renders the references once,
    and gives exactly what rendering them afresh gives; a target of another size gets its own render."""
    assets, model = demo
    t, other = assets.targets[4], assets.targets[0]
    prior = CameraPrior.from_cameras(torch.stack([_orbit(t.gt_c2w, a) for a in (15.0, 120.0, 240.0)]))
    config = GlobalConfig(
        source="cameras", rolls=1, score_rays=32, score_blur_rays=1, score_samples=16, keep=1, retrieval=True,
        retrieval_size=96,
    )  # fmt: skip
    refine = PoseConfig(optimizer="lm", steps=1, n_rays=64)
    cache = ReferenceCache()
    localize(model, PoseTarget(t.image, t.camera), prior, config, refine, references=cache)
    cached = localize(model, PoseTarget(other.image, other.camera), prior, config, refine, references=cache)
    assert cache.renders == 1 and len(cache) == 1
    fresh = localize(model, PoseTarget(other.image, other.camera), prior, config, refine)
    torch.testing.assert_close(cached.candidates, fresh.candidates, rtol=0, atol=0)
    torch.testing.assert_close(cached.result.c2w, fresh.result.c2w, rtol=0, atol=0)
    small = low_resolution_target(PoseTarget(t.image, t.camera), 100)
    localize(model, small, prior, config, refine, references=cache)
    assert cache.renders == 2 and len(cache) == 2
