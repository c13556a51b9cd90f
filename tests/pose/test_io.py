"""Reading targets, poses and intrinsics: formats, conventions, one-line errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from pose_scene import look_at

from inerf.errors import InerfError
from inerf.geometry.conventions import opencv_to_opengl_c2w
from inerf.pose.io import intrinsics_camera, pose_to_json, read_intrinsics, read_pose, read_target_image


@pytest.fixture()
def c2w():
    return look_at((2.0, -3.0, 1.5))


def test_pose_json_round_trip(tmp_path, c2w):
    p = tmp_path / "pose.json"
    p.write_text(json.dumps({"c2w": pose_to_json(c2w), "convention": "opencv_c2w"}))
    assert torch.allclose(read_pose(p), c2w, atol=1e-6)


def test_blender_frame_is_converted_from_opengl(tmp_path, c2w):
    p = tmp_path / "frame.json"
    p.write_text(
        json.dumps({"file_path": "./test/r_0", "transform_matrix": pose_to_json(opencv_to_opengl_c2w(c2w))})
    )
    assert torch.allclose(read_pose(p), c2w, atol=1e-6)


def test_txt_and_npy_with_convention_flag(tmp_path, c2w):
    gl = opencv_to_opengl_c2w(c2w)
    np.savetxt(tmp_path / "p.txt", gl[:3].numpy())  # 3x4 is accepted
    np.save(tmp_path / "p.npy", c2w.numpy())
    assert torch.allclose(read_pose(tmp_path / "p.txt", "opengl"), c2w, atol=1e-6)
    assert torch.allclose(read_pose(tmp_path / "p.npy"), c2w, atol=1e-6)


def test_w2c_is_inverted(tmp_path, c2w):
    p = tmp_path / "w2c.json"
    p.write_text(json.dumps({"w2c": pose_to_json(torch.linalg.inv(c2w))}))
    assert torch.allclose(read_pose(p), c2w, atol=1e-6)


def test_conflicting_conventions_are_an_error(tmp_path, c2w):
    p = tmp_path / "pose.json"
    p.write_text(json.dumps({"c2w": pose_to_json(c2w), "convention": "opengl"}))
    with pytest.raises(InerfError, match="convention"):
        read_pose(p, "opencv")


@pytest.mark.parametrize(
    "content, match",
    [
        ("1 2 3", "12 or 16 numbers"),
        ("not a pose", "12 or 16 numbers"),
        ("{broken json", "malformed JSON"),
        ('{"other": 1}', "no pose found"),
        (" ".join(["nan"] * 16), "NaN"),
        ("1 0 0 0  0 2 0 0  0 0 1 0  0 0 0 1", "rigid"),  # scaled axis
        ("1 0 0 0  0 1 0 0  0 0 -1 0  0 0 0 1", "rigid"),  # reflection, det -1
    ],
)
def test_bad_pose_files(tmp_path, content, match):
    p = tmp_path / ("pose.json" if content.startswith("{") else "pose.txt")
    p.write_text(content)
    with pytest.raises(InerfError, match=match):
        read_pose(p)


def test_missing_pose_file(tmp_path):
    with pytest.raises(InerfError, match="not found"):
        read_pose(tmp_path / "nope.json")


def test_intrinsics_formats(tmp_path):
    p = tmp_path / "k.json"
    p.write_text(json.dumps({"fx": 100, "fy": 110, "cx": 32, "cy": 24, "width": 64, "height": 48}))
    k = read_intrinsics(p, 64, 48)
    assert k.intrinsics() == (100, 110, 32, 24) and (k.width, k.height) == (64, 48)
    p.write_text(json.dumps({"fl_x": 100, "w": 64, "h": 48}))
    assert read_intrinsics(p, 64, 48).intrinsics() == (100, 100, 32, 24)
    p.write_text(json.dumps({"K": [[90, 0, 30], [0, 95, 20], [0, 0, 1]]}))
    assert read_intrinsics(p, 64, 48).intrinsics() == (90, 95, 30, 20)
    p.write_text(json.dumps({"camera_angle_x": 2 * math.atan(0.5), "frames": []}))  # f = W / (2 * 0.5) = W
    fx, _, cx, cy = read_intrinsics(p, 64, 48).intrinsics()
    assert fx == pytest.approx(64) and (cx, cy) == (32, 24)


def test_intrinsics_for_another_image_size_are_rejected(tmp_path):
    p = tmp_path / "k.json"
    p.write_text(json.dumps({"fx": 100, "cx": 400, "cy": 400, "width": 800, "height": 800}))
    with pytest.raises(InerfError, match="64x48"):
        read_intrinsics(p, 64, 48)
    with pytest.raises(InerfError, match="principal point"):
        intrinsics_camera(100, 100, 400, 400, 64, 48)
    with pytest.raises(InerfError, match="positive"):
        intrinsics_camera(-1, 100, 32, 24, 64, 48)


def test_rgba_target_is_composited_on_the_background(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:2, :, 3] = 255  # top half opaque, bottom transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    rgb, alpha = read_target_image(tmp_path / "t.png", (0.0, 0.0, 1.0))
    assert rgb.shape == (4, 5, 3) and alpha.shape == (4, 5)
    assert torch.allclose(rgb[0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(rgb[3, 0], torch.tensor([0.0, 0.0, 1.0]))  # the blue background shows
    Image.fromarray(rgba[..., :3]).save(tmp_path / "t.jpg")
    rgb, alpha = read_target_image(tmp_path / "t.jpg", (1.0, 1.0, 1.0))
    assert alpha is None and rgb.shape == (4, 5, 3)


def test_unreadable_target(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InerfError, match="unreadable"):
        read_target_image(tmp_path / "bad.png", (1.0, 1.0, 1.0))
