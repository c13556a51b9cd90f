"""SceneTransform: the record of how a loader moved the user's world, checked by round trips and by hand."""

from __future__ import annotations

import math

import pytest
import torch

from inerf.data import SceneTransform, ViewSet
from inerf.geometry import se3
from inerf.geometry.cameras import Cameras


def _rot(axis: str, deg: float) -> tuple:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return {
        "x": ((1, 0, 0), (0, c, -s), (0, s, c)),
        "z": ((c, -s, 0), (s, c, 0), (0, 0, 1)),
    }[axis]


def test_hand_values():
    # Scale 2, 90 degrees about z, then shift by (1, 0, 0): the point (1, 0, 0) -> (0, 2, 0) + (1, 0, 0).
    tf = SceneTransform(2.0, _rot("z", 90), (1.0, 0.0, 0.0))
    p = tf.points_to_training(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(p, torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64))
    # A camera at (1, 0, 0) looking along +x (OpenCV z = world x): after the move it is at (1, 2, 0) and
    # looks along +y; the camera axes stay orthonormal (no scale in the rotation).
    c2w = torch.eye(4, dtype=torch.float64)
    # Columns (camera axes in the world): x = -y_w, y = -z_w, z = +x_w.
    c2w[:3, :3] = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=torch.float64)
    c2w[:3, 3] = torch.tensor([1.0, 0, 0])
    out = tf.c2w_to_training(c2w)
    torch.testing.assert_close(out[:3, 3], torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(
        out[:3, 2], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-15, rtol=0
    )
    torch.testing.assert_close(out[:3, :3].T @ out[:3, :3], torch.eye(3, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trips(dtype):
    g = torch.Generator().manual_seed(0)
    c2w = se3.se3_exp(torch.randn(8, 6, generator=g, dtype=torch.float64)).to(dtype)
    tf = SceneTransform(0.37, _rot("x", 33), (0.5, -2.0, 3.0))
    atol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(tf.c2w_to_original(tf.c2w_to_training(c2w)), c2w, atol=atol, rtol=0)
    torch.testing.assert_close(tf.c2w_to_training(tf.c2w_to_original(c2w)), c2w, atol=atol, rtol=0)
    pts = torch.randn(5, 3, generator=g, dtype=torch.float64).to(dtype)
    torch.testing.assert_close(tf.points_to_original(tf.points_to_training(pts)), pts, atol=atol, rtol=0)
    # Mapping a c2w moves its centre like a point.
    torch.testing.assert_close(tf.c2w_to_training(c2w)[:, :3, 3], tf.points_to_training(c2w[:, :3, 3]))
    # Composition: (tf then inverse) is the identity; then() multiplies matrices.
    assert tf.then(tf.inverse()).is_identity(atol=1e-12)
    other = SceneTransform(3.0, _rot("z", -20), (1.0, 1.0, 1.0))
    torch.testing.assert_close(tf.then(other).matrix(), other.matrix() @ tf.matrix())


def test_serialisation_and_validation():
    tf = SceneTransform(0.5, _rot("z", 10), (1.0, 2.0, 3.0), original="COLMAP world")
    assert SceneTransform.from_dict(tf.to_dict()) == tf
    back = SceneTransform.from_matrix(tf.matrix(), "COLMAP world")
    assert back.scale == pytest.approx(0.5) and back.translation == pytest.approx((1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="proper rotation"):
        SceneTransform(1.0, ((1, 0, 0), (0, 1, 0), (0, 0, -1)))  # a mirror has no rigid camera poses
    with pytest.raises(ValueError, match="positive"):
        SceneTransform(0.0)
    with pytest.raises(ValueError, match="positive determinant"):
        SceneTransform.from_matrix(torch.diag(torch.tensor([1.0, 1.0, -1.0, 1.0])))


def test_viewset_maps_back_and_forth():
    c2w = se3.se3_exp(torch.randn(3, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    tf = SceneTransform(2.0, _rot("x", 90), (0.0, 0.0, 1.0))
    cams = Cameras(c2w=tf.c2w_to_training(c2w).float(), fx=1.0, fy=1.0, cx=1.0, cy=1.0, height=2, width=2)
    views = ViewSet(
        torch.zeros(3, 2, 2, 3), None, cams, 0.1, 1.0, (1.0, 1.0, 1.0), ["a", "b", "c"], transform=tf
    )
    torch.testing.assert_close(views.c2w_to_original(views.cameras.c2w.double()), c2w, atol=1e-6, rtol=0)
    torch.testing.assert_close(views.c2w_to_training(c2w).float(), views.cameras.c2w)
    # Existing loaders' default: identity.
    assert ViewSet(
        torch.zeros(3, 2, 2, 3), None, cams, 0.1, 1.0, (1, 1, 1), ["a"] * 3
    ).transform.is_identity()
