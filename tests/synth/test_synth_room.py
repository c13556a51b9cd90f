"""``inerf synth scene --environment room``: a textured room around the object, opaque images, ray bounds
that enclose everything seen, poses as exact as without the room."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from synth_helpers import synth_scene_argv

from inerf.cli.main import main
from inerf.errors import InerfError
from inerf.synth.environment import RoomConfig, room_bounds_near_far, room_parts, terrazzo
from inerf.synth.scene import SceneConfig, generate_scene


@pytest.fixture(scope="module")
def room_scene(tmp_path_factory):
    """The duck in the room at 32 px, 3 + 2 views, with depth (about 3 s on one core)."""
    out = tmp_path_factory.mktemp("room") / "duck"
    config = SceneConfig(size=32, n_train=3, n_val=0, n_test=2, depth=True, workers=1, environment="room")
    return out, generate_scene("duck", out, config, progress=False)


def test_room_is_recorded_and_fills_every_view(room_scene):
    out, meta = room_scene
    env = meta["environment"]
    assert env["kind"] == "room" and env["half_width"] == pytest.approx(1.5 * meta["camera"]["radius"])
    assert meta["camera"]["radius"] == 6.0  # the room's default camera distance
    # The floor is just under the object's base.
    assert env["floor_z"] == pytest.approx(meta["object_bounds"][0][2] - 1e-3)
    assert meta["views_touching_border"] is None
    assert json.loads((out / "meta.json").read_text())["environment"] == env
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            rgba = np.asarray(Image.open(out / split / f"r_{i}.png"))
            assert (rgba[..., 3] == 255).all()  # floor and walls everywhere: no background left
            depth = np.load(out / split / f"r_{i}_depth.npy")
            assert (depth > 0).all()
            # near/far enclose everything seen, as z-depth.
            assert meta["near"] <= depth.min() and depth.max() <= meta["far"]


def test_room_scene_poses_are_still_exact(room_scene):
    """Depth rendered in the room unprojects onto the room's planes where no object is in the way."""
    out, meta = room_scene
    env = meta["environment"]
    tf = json.loads((out / "transforms_train.json").read_text())
    f = meta["camera"]["fx"]
    for i, frame in enumerate(tf["frames"]):
        c2w_gl = np.array(frame["transform_matrix"])
        depth = np.load(out / "train" / f"r_{i}_depth.npy")
        j, k = np.mgrid[0:32, 0:32]
        # OpenGL camera: x right, y up, looks along -z; pixel centres at +0.5, principal point 16.
        x = (k + 0.5 - 16) / f * depth
        y = -(j + 0.5 - 16) / f * depth
        p = np.stack([x, y, -depth], -1) @ c2w_gl[:3, :3].T + c2w_gl[:3, 3]
        on_floor = np.abs(p[..., 2] - env["floor_z"]) < 1e-3
        on_wall = np.abs(np.abs(p[..., :2]).max(-1) - env["half_width"]) < 1e-3
        assert (on_floor | on_wall).mean() > 0.4  # the rest is the duck


def test_terrazzo_is_seeded_and_detailed():
    a = np.asarray(terrazzo(128, np.random.default_rng(1), (0.5, 0.5, 0.5)), dtype=np.float64)
    b = np.asarray(terrazzo(128, np.random.default_rng(1), (0.5, 0.5, 0.5)), dtype=np.float64)
    c = np.asarray(terrazzo(128, np.random.default_rng(2), (0.5, 0.5, 0.5)), dtype=np.float64)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # Texture at small scales: neighbouring pixels differ often (SIFT needs it); mean colour near the base.
    assert (np.abs(np.diff(a, axis=1)).max(-1) > 8).mean() > 0.1
    assert abs(a.mean() / 255 - 0.5) < 0.1


def test_room_geometry_faces_inwards():
    room = RoomConfig(half_width=3.0, floor_z=-1.0, wall_top=5.0, texture_size=16)
    parts = room_parts(room)
    assert [p.name for p in parts] == ["floor", "wall0", "wall1", "wall2", "wall3"]
    for p in parts:
        tri = p.vertices[p.faces]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        centre = tri.mean(1)
        # Each face's front (counter-clockwise side) looks towards the room's centre line.
        to_inside = np.array([0.0, 0.0, 2.0]) - centre
        if p.name != "floor":
            to_inside[:, 2] = 0
        assert ((n * to_inside).sum(-1) > 0).all(), p.name
        assert p.textured and p.uv.min() == 0 and p.uv.max() == 1
    c2w = np.eye(4)[None].copy()
    c2w[0, :3, 3] = (1.0, 0.0, 0.0)
    near, far = room_bounds_near_far(room, c2w, half_diag_fov=0.0)
    assert near == pytest.approx(1.0) and far == pytest.approx(np.linalg.norm([4.0, 3.0, 5.0]))
    c2w[0, :3, 3] = (4.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="outside the room"):
        room_bounds_near_far(room, c2w, 0.0)


def test_cli_flag_and_bad_value(tmp_path, capsys):
    out = tmp_path / "s"
    rc = main(synth_scene_argv(out, "--environment", "room"))
    assert rc == 0 and "note:" not in capsys.readouterr().out  # no "touches the border" note in a room
    assert json.loads((out / "meta.json").read_text())["environment"]["kind"] == "room"
    with pytest.raises(InerfError, match="--environment must be one of none, room"):
        SceneConfig(environment="garden").validate()
