"""Blender-layout loader on tiny scenes written here as real PNG + JSON files, checked against hand values."""

from __future__ import annotations

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from inerf.data import detect_format, load_blender, load_dataset
from inerf.errors import InerfError
from inerf.geometry.cameras import project

ANGLE = 0.6911112070083618
H, W = 4, 6

# Camera 0: at (0, 0, 4) looking down at the origin along world -z, image up = world +y (OpenGL c2w = translation).
C2W_GL_0 = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
# Camera 1: at (4, 0, 0) looking along world -x, image up = world +z.
C2W_GL_1 = [[0, 0, 1, 4], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]


def _rgba(value_a: int) -> np.ndarray:
    """A 4x6 RGBA image: pixel (row 0, col 0) is red with alpha ``value_a``; the rest opaque grey 100;
    pixel (row 3, col 5) fully transparent with a stray colour (must not leak into composites)."""
    img = np.full((H, W, 4), 100, np.uint8)
    img[..., 3] = 255
    img[0, 0] = (255, 0, 0, value_a)
    img[3, 5] = (0, 255, 0, 0)
    return img


def write_scene(root, frames=None, meta_extra=None, split="train", images=None, write_images=True):
    root.mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(exist_ok=True)
    if frames is None:
        frames = [
            {"file_path": f"./{split}/r_0", "transform_matrix": C2W_GL_0},
            {"file_path": f"./{split}/r_1", "transform_matrix": C2W_GL_1},
        ]
    if write_images:
        for k in range(len(frames)):
            img = images[k] if images is not None else _rgba(128)
            iio.imwrite(root / split / f"r_{k}.png", img)
    meta = {"camera_angle_x": ANGLE, "frames": frames, **(meta_extra or {})}
    (root / f"transforms_{split}.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def scene(tmp_path):
    return write_scene(tmp_path / "scene")


def test_poses_converted_once_to_opencv(scene):
    views = load_blender(scene, "train")
    c2w = views.cameras.c2w
    assert c2w.shape == (2, 4, 4) and c2w.dtype == torch.float32
    # Right-multiplying by diag(1, -1, -1): camera centre unchanged, y and z axes flipped.
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    for k, gl in enumerate((C2W_GL_0, C2W_GL_1)):
        torch.testing.assert_close(c2w[k], torch.tensor(gl, dtype=torch.float32) @ flip)
    # OpenCV: +z is the viewing direction. Camera 0 looks down world -z, camera 1 along world -x.
    torch.testing.assert_close(c2w[0, :3, 2], torch.tensor([0.0, 0.0, -1.0]))
    torch.testing.assert_close(c2w[1, :3, 2], torch.tensor([-1.0, 0.0, 0.0]))


def test_intrinsics_from_camera_angle(scene):
    cams = load_blender(scene, "train").cameras
    f = 0.5 * W / math.tan(0.5 * ANGLE)
    assert (cams.height, cams.width) == (H, W)
    torch.testing.assert_close(cams.fx, torch.full((2,), f))
    torch.testing.assert_close(cams.fy, torch.full((2,), f))
    torch.testing.assert_close(cams.cx, torch.full((2,), W / 2))
    torch.testing.assert_close(cams.cy, torch.full((2,), H / 2))


def test_projection_matches_blender_image_axes(scene):
    """A world point right of and above the look-at point appears right of and above the image centre."""
    cams = load_blender(scene, "train").cameras
    # Camera 0 looks down -z with image up = +y: world (+x, +y) is image right, image up (smaller row).
    uv, z = project(
        torch.tensor([[0.5, 0.5, 0.0]]), cams.c2w[0], cams.fx[0], cams.fy[0], cams.cx[0], cams.cy[0]
    )
    f = cams.fx[0].item()
    torch.testing.assert_close(z, torch.tensor([4.0]))
    torch.testing.assert_close(uv[0], torch.tensor([W / 2 + f * 0.5 / 4, H / 2 - f * 0.5 / 4]))


def test_image_values_composited_on_white_black_none(scene):
    a = 128 / 255
    grey = 100 / 255
    white = load_blender(scene, "train", background="white")
    torch.testing.assert_close(white.images[0, 0, 0], torch.tensor([1.0, 1 - a, 1 - a]))
    torch.testing.assert_close(white.images[0, 1, 1], torch.full((3,), grey))
    torch.testing.assert_close(white.images[0, 3, 5], torch.ones(3))  # transparent -> background, no green
    torch.testing.assert_close(white.alphas[0, 0, 0], torch.tensor(a))
    assert white.background == (1.0, 1.0, 1.0)
    black = load_blender(scene, "train", background="black")
    torch.testing.assert_close(black.images[0, 0, 0], torch.tensor([a, 0.0, 0.0]))
    torch.testing.assert_close(black.images[0, 3, 5], torch.zeros(3))
    none = load_blender(scene, "train", background="none")
    torch.testing.assert_close(none.images[0, 0, 0], torch.tensor([1.0, 0.0, 0.0]))  # straight colour
    assert none.background is None and none.alphas is not None
    rgb = load_blender(scene, "train", background=(0.0, 0.5, 1.0))
    torch.testing.assert_close(rgb.images[0, 3, 5], torch.tensor([0.0, 0.5, 1.0]))
    assert white.names == ["train/r_0.png", "train/r_1.png"]
    assert white.near == 2.0 and white.far == 6.0 and white.split == "train"


def test_half_scale_area_filter_and_intrinsics(scene):
    full = load_blender(scene, "train")
    half = load_blender(scene, "train", scale=0.5)
    assert half.images.shape == (2, H // 2, W // 2, 3)
    # Area filter = mean of each 2x2 block of the composited image (compositing is linear).
    blocks = full.images.reshape(2, H // 2, 2, W // 2, 2, 3).mean((2, 4))
    torch.testing.assert_close(half.images, blocks, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        half.alphas, full.alphas.reshape(2, H // 2, 2, W // 2, 2).mean((2, 4)), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(half.cameras.fx, full.cameras.fx / 2)
    torch.testing.assert_close(half.cameras.cx, torch.full((2,), W / 4))  # still the image centre
    torch.testing.assert_close(half.cameras.cy, torch.full((2,), H / 4))


def test_none_background_resize_keeps_straight_colour(tmp_path):
    img = np.zeros((2, 2, 4), np.uint8)
    img[0, 0] = (255, 0, 0, 255)  # one opaque red pixel, three transparent black ones
    root = write_scene(
        tmp_path / "s", frames=[{"file_path": "train/r_0.png", "transform_matrix": C2W_GL_0}], images=[img]
    )
    v = load_blender(root, "train", scale=0.5, background="none")
    # Averaging straight colours would give dark red; premultiplied averaging keeps pure red at alpha 1/4.
    torch.testing.assert_close(v.images[0, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(v.alphas[0, 0, 0], torch.tensor(0.25))


def test_file_path_with_extension_and_without_dot(tmp_path):
    frames = [
        {"file_path": "train/r_0.png", "transform_matrix": C2W_GL_0},
        {"file_path": "train/r_1", "transform_matrix": C2W_GL_1},
    ]
    v = load_blender(write_scene(tmp_path / "s", frames=frames), "train")
    assert v.names == ["train/r_0.png", "train/r_1.png"]


def test_ngp_style_intrinsics_rescaled_to_image(tmp_path):
    # Intrinsics written for a 12x8 image; the files on disk are 6x4, so every value halves.
    extra = {"fl_x": 10.0, "fl_y": 12.0, "cx": 5.0, "cy": 3.5, "w": 12, "h": 8}
    root = write_scene(tmp_path / "s", meta_extra=extra)
    meta = json.loads((root / "transforms_train.json").read_text())
    del meta["camera_angle_x"]
    (root / "transforms_train.json").write_text(json.dumps(meta))
    cams = load_blender(root, "train").cameras
    torch.testing.assert_close(cams.fx, torch.full((2,), 5.0))
    torch.testing.assert_close(cams.fy, torch.full((2,), 6.0))
    torch.testing.assert_close(cams.cx, torch.full((2,), 2.5))
    torch.testing.assert_close(cams.cy, torch.full((2,), 1.75))


def test_near_far_from_meta_json_and_overrides(scene):
    (scene / "meta.json").write_text(json.dumps({"near": 1.5, "far": 4.5, "generator": "inerf synth"}))
    v = load_blender(scene, "train")
    assert (v.near, v.far) == (1.5, 4.5)
    v = load_blender(scene, "train", near=0.5, far=9.0)
    assert (v.near, v.far) == (0.5, 9.0)


def test_max_views_and_detection(scene):
    assert detect_format(scene) == "blender"
    assert len(load_dataset(scene, "train", max_views=1)) == 1


def test_real_chair_scene_if_present():
    """The benchmark scene's documented intrinsics and first test camera (README: ring at radius 4.5)."""
    from pathlib import Path

    root = Path("/work/shared/scenes/chair")
    if not root.is_dir():
        pytest.skip("chair scene not available")
    v = load_blender(root, "test", scale=0.5, max_views=1)
    assert v.images.shape == (1, 200, 200, 3)
    torch.testing.assert_close(v.cameras.fx, torch.tensor([555.5555 / 2]), atol=1e-3, rtol=0)
    centre = torch.tensor([4.5 * math.cos(math.radians(30)), 0.0, 4.5 * math.sin(math.radians(30))])
    torch.testing.assert_close(v.cameras.c2w[0, :3, 3], centre, atol=1e-4, rtol=0)
    # Looking at the origin: the principal ray (OpenCV +z) points from the camera to the origin.
    torch.testing.assert_close(v.cameras.c2w[0, :3, 2], -centre / 4.5, atol=1e-4, rtol=0)


# -- bad input: one-line InerfError naming the file ------------------------------------------------------


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_missing_folder(tmp_path):
    with pytest.raises(InerfError) as e:
        load_blender(tmp_path / "nope", "train")
    assert "dataset folder not found" in _one_line(e)
    with pytest.raises(InerfError, match="not a recognised dataset"):
        load_dataset(tmp_path, "train")


def test_missing_split_file(scene):
    with pytest.raises(InerfError) as e:
        load_blender(scene, "val")
    assert "transforms_val.json" in _one_line(e)


def test_malformed_json(scene):
    (scene / "transforms_train.json").write_text('{"camera_angle_x": 0.7, "frames": [')
    with pytest.raises(InerfError) as e:
        load_blender(scene, "train")
    assert "transforms_train.json" in _one_line(e) and "malformed JSON" in str(e.value)


def test_missing_image(scene):
    (scene / "train" / "r_1.png").unlink()
    with pytest.raises(InerfError) as e:
        load_blender(scene, "train")
    assert "r_1" in _one_line(e) and "not found" in str(e.value)


def test_unreadable_image(scene):
    (scene / "train" / "r_0.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(InerfError) as e:
        load_blender(scene, "train")
    assert "r_0.png" in _one_line(e) and "unreadable" in str(e.value)


@pytest.mark.parametrize("path", ["../outside/r_0", "./train/../../r_0", "/etc/passwd"])
def test_path_escaping_dataset(tmp_path, path):
    outside = tmp_path / "outside"
    outside.mkdir()
    iio.imwrite(outside / "r_0.png", _rgba(255))
    frames = [{"file_path": path, "transform_matrix": C2W_GL_0}]
    root = write_scene(tmp_path / "scene", frames=frames, write_images=False)
    with pytest.raises(InerfError) as e:
        load_blender(root, "train")
    msg = _one_line(e)
    assert "transforms_train.json" in msg and ("outside the dataset" in msg or "absolute" in msg)


def test_nan_and_non_rigid_pose(tmp_path):
    bad = [[1, 0, 0, float("nan")], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
    root = write_scene(tmp_path / "a", frames=[{"file_path": "./train/r_0", "transform_matrix": bad}])
    with pytest.raises(InerfError, match="NaN") as e:
        load_blender(root, "train")
    assert "frame 0" in _one_line(e)
    scaled = [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
    root = write_scene(tmp_path / "b", frames=[{"file_path": "./train/r_0", "transform_matrix": scaled}])
    with pytest.raises(InerfError, match="not a rigid transform"):
        load_blender(root, "train")


def test_other_bad_inputs(scene, tmp_path):
    with pytest.raises(InerfError, match="unknown split"):
        load_blender(scene, "dev")
    with pytest.raises(InerfError, match="unknown background"):
        load_blender(scene, "train", background="purple")
    with pytest.raises(InerfError, match="image scale"):
        load_blender(scene, "train", scale=0)
    iio.imwrite(scene / "train" / "r_1.png", np.zeros((3, 3, 4), np.uint8))
    with pytest.raises(InerfError, match="share one size"):
        load_blender(scene, "train")
    root = write_scene(tmp_path / "noint")
    meta = json.loads((root / "transforms_train.json").read_text())
    del meta["camera_angle_x"]
    (root / "transforms_train.json").write_text(json.dumps(meta))
    with pytest.raises(InerfError, match="no intrinsics"):
        load_blender(root, "train")
    (root / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": []}))
    with pytest.raises(InerfError, match="non-empty 'frames'"):
        load_blender(root, "train")


def test_read_image_bit_depths_and_grey(tmp_path):
    import cv2

    from inerf.data.image_io import read_image

    rgba16 = np.array([[[65535, 32768, 0, 65535], [0, 0, 65535, 0]]], np.uint16)  # [1, 2, 4] RGBA
    cv2.imwrite(str(tmp_path / "c16.png"), rgba16[..., [2, 1, 0, 3]])  # OpenCV writes BGRA
    np.testing.assert_allclose(read_image(tmp_path / "c16.png"), rgba16 / 65535.0, atol=1e-7)
    iio.imwrite(tmp_path / "g8.png", np.array([[0, 51]], np.uint8))
    np.testing.assert_allclose(read_image(tmp_path / "g8.png"), [[[0, 0, 0], [0.2, 0.2, 0.2]]], atol=1e-7)
