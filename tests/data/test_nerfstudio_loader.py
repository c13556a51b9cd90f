"""nerfstudio / Instant-NGP loader on tiny captures written here (real PNG + transforms.json), checked
against values computed by hand; distortion removal checked on a distorted checkerboard."""

from __future__ import annotations

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from distortion_helpers import checker_error, distorted_checker

from inerf.data import detect_format, load_dataset, load_nerfstudio
from inerf.errors import InerfError
from inerf.geometry.conventions import opengl_to_opencv_c2w
from inerf.geometry.formats import PinholeIntrinsics, write_poses

H, W = 6, 8
# Camera 0 at (0, 0, 4) looking down world -z; camera 1 at (4, 0, 0) looking along world -x (OpenGL c2w).
C2W_GL = [
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]],
    [[0, 0, 1, 4], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]],
]


def write_capture(root, meta: dict, images: list[np.ndarray] | None = None, names=None):
    """``root/transforms.json`` with ``meta`` and one PNG per frame under ``root/images``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    frames = meta.setdefault("frames", [])
    if not frames:
        for k, m in enumerate(C2W_GL):
            frames.append({"file_path": f"images/frame_{k:05d}.png", "transform_matrix": m})
    for k, frame in enumerate(frames):
        if images is not None and k < len(images) and images[k] is not None:
            iio.imwrite(root / frame["file_path"], images[k])
        elif images is None:
            img = np.full((H, W, 3), 40 + 20 * k, np.uint8)
            iio.imwrite(root / frame["file_path"], img)
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


PINHOLE = {"camera_model": "PINHOLE", "fl_x": 10.0, "fl_y": 11.0, "cx": 4.5, "cy": 3.0, "w": W, "h": H}


def test_pinhole_intrinsics_poses_and_normalisation(tmp_path):
    root = write_capture(tmp_path / "cap", dict(PINHOLE))
    assert detect_format(root) == "nerfstudio"
    views = load_nerfstudio(root, "all")
    cams = views.cameras
    assert (cams.height, cams.width) == (H, W) and len(views) == 2
    torch.testing.assert_close(cams.fx, torch.full((2,), 10.0))
    torch.testing.assert_close(cams.fy, torch.full((2,), 11.0))
    torch.testing.assert_close(cams.cx, torch.full((2,), 4.5))
    torch.testing.assert_close(cams.cy, torch.full((2,), 3.0))
    # Centres (0, 0, 4), (4, 0, 0): mean (2, 0, 2), centred (-2, 0, 2) and (2, 0, -2), largest coordinate 2
    # -> scale 1/2, so the training centres are (-1, 0, 1) and (1, 0, -1).
    torch.testing.assert_close(cams.c2w[:, :3, 3], torch.tensor([[-1.0, 0, 1], [1.0, 0, -1]]))
    tf = views.transform
    assert tf.scale == 0.5 and tf.translation == (-1.0, 0.0, -1.0)
    # Rotations are the file's, flipped once to OpenCV axes (right-multiplied by diag(1, -1, -1)).
    expected_cv = opengl_to_opencv_c2w(torch.tensor(C2W_GL, dtype=torch.float64))
    torch.testing.assert_close(cams.c2w[:, :3, :3].double(), expected_cv[:, :3, :3])
    # Back in the user's frame: exactly the file's poses (in OpenCV axes).
    torch.testing.assert_close(views.c2w_to_original(cams.c2w.double()), expected_cv, atol=1e-6, rtol=0)
    # Bounds: the cameras' cube; near is nerfstudio's 0.05; far reaches the farthest corner.
    torch.testing.assert_close(views.bounds, torch.tensor([[-1.0] * 3, [1.0] * 3]))
    assert views.near == pytest.approx(0.05)
    assert views.far == pytest.approx(math.sqrt(4 + 1 + 4))  # from (-1, 0, 1) to (1, +-1, -1)


def test_per_frame_intrinsics_and_rescaled_image(tmp_path):
    # Intrinsics written for a 16 x 12 image; the files are 8 x 6: everything halves.
    meta = {"fl_x": 20.0, "fl_y": 22.0, "w": 16, "h": 12}
    root = write_capture(tmp_path / "cap", meta)
    meta = json.loads((root / "transforms.json").read_text())
    meta["frames"][1].update({"fl_x": 40.0, "fl_y": 40.0, "cx": 9.0, "cy": 5.0})
    (root / "transforms.json").write_text(json.dumps(meta))
    cams = load_nerfstudio(root, "all").cameras
    torch.testing.assert_close(cams.fx, torch.tensor([10.0, 20.0]))
    torch.testing.assert_close(cams.fy, torch.tensor([11.0, 20.0]))
    torch.testing.assert_close(cams.cx, torch.tensor([4.0, 4.5]))  # default: the centre of the w x h image
    torch.testing.assert_close(cams.cy, torch.tensor([3.0, 2.5]))


def test_instant_ngp_scale_offset_and_aabb(tmp_path):
    root = write_capture(tmp_path / "ngp", {"camera_angle_x": 1.0, "aabb_scale": 4})
    views = load_nerfstudio(root, "all")
    # Defaults 0.33 and 0.5: x_train = 2 (0.33 x + 0.5 - 0.5) = 0.66 x.
    torch.testing.assert_close(views.cameras.c2w[:, :3, 3], torch.tensor([[0, 0, 2.64], [2.64, 0, 0]]))
    f = 0.5 * W / math.tan(0.5)
    torch.testing.assert_close(views.cameras.fx, torch.full((2,), f))
    torch.testing.assert_close(views.bounds, torch.tensor([[-4.0] * 3, [4.0] * 3]))
    root2 = write_capture(tmp_path / "ngp2", {"camera_angle_x": 1.0, "scale": 0.5, "offset": [0.5, 0.5, 1.0]})
    views2 = load_nerfstudio(root2, "all")
    # 2 (0.5 x + (0, 0, 1) - 0.5) = x + (0, 0, 1).
    torch.testing.assert_close(views2.cameras.c2w[:, :3, 3], torch.tensor([[0, 0, 5.0], [4.0, 0, 1]]))
    assert views2.transform.scale == 1.0 and views2.transform.translation == (0.0, 0.0, 1.0)


def test_applied_transform_gives_the_capture_frame(tmp_path):
    # nerfstudio's COLMAP conversion: p_file = A p_colmap with A swapping y and z and flipping one.
    A = [[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0]]
    root = write_capture(tmp_path / "cap", {**PINHOLE, "applied_transform": A})
    views = load_nerfstudio(root, "all", before_applied_transform=True)
    back = views.c2w_to_original(views.cameras.c2w.double())
    A4 = torch.eye(4, dtype=torch.float64)
    A4[:3] = torch.tensor(A, dtype=torch.float64)
    expected = torch.linalg.inv(A4) @ opengl_to_opencv_c2w(torch.tensor(C2W_GL, dtype=torch.float64))
    torch.testing.assert_close(back, expected, atol=1e-6, rtol=0)


def test_splits(tmp_path):
    frames = [
        {"file_path": f"images/f_{k:02d}.png", "transform_matrix": C2W_GL[k % 2]} for k in reversed(range(10))
    ]
    root = write_capture(tmp_path / "cap", {**PINHOLE, "frames": frames})
    # No split lists: sorted by file_path, every 8th held out (f_00, f_08).
    assert load_nerfstudio(root, "test").names == ["images/f_00.png", "images/f_08.png"]
    assert load_nerfstudio(root, "val").names == ["images/f_00.png", "images/f_08.png"]
    assert len(load_nerfstudio(root, "train")) == 8
    meta = json.loads((root / "transforms.json").read_text())
    meta["train_filenames"] = ["images/f_01.png", "./images/f_02.png"]
    meta["test_filenames"] = ["images/f_09.png"]
    (root / "transforms.json").write_text(json.dumps(meta))
    assert sorted(load_nerfstudio(root, "train").names) == ["images/f_01.png", "images/f_02.png"]
    assert load_nerfstudio(root, "val").names == ["images/f_09.png"]  # no val list: the test list


def test_mask_becomes_alpha(tmp_path):
    root = write_capture(tmp_path / "cap", dict(PINHOLE))
    meta = json.loads((root / "transforms.json").read_text())
    (root / "masks").mkdir()
    mask = np.zeros((H, W), np.uint8)
    mask[:, : W // 2] = 255
    iio.imwrite(root / "masks" / "m0.png", mask)
    iio.imwrite(root / "masks" / "m1.png", np.full((H, W), 255, np.uint8))
    meta["frames"][0]["mask_path"] = "masks/m0.png"
    meta["frames"][1]["mask_path"] = "masks/m1.png"
    (root / "transforms.json").write_text(json.dumps(meta))
    views = load_nerfstudio(root, "all", background="white")
    assert views.alphas is not None
    torch.testing.assert_close(views.alphas[0], torch.from_numpy(mask / 255.0).float())
    # Masked-out pixels are composited on white; kept ones keep their grey (40).
    assert torch.allclose(views.images[0, :, W // 2 :], torch.ones(1))
    assert torch.allclose(views.images[0, :, : W // 2], torch.tensor(40 / 255))


def test_round_trip_with_the_pose_writer(tmp_path):
    """Poses written by inerf.geometry.formats in nerfstudio format load back (in the user's frame)."""
    g = torch.Generator().manual_seed(0)
    from inerf.geometry import se3

    c2w = se3.se3_exp(torch.randn(4, 6, generator=g, dtype=torch.float64))
    root = tmp_path / "cap"
    (root / "images").mkdir(parents=True)
    names = [f"images/{k}.png" for k in range(4)]
    for n in names:
        iio.imwrite(root / n, np.zeros((H, W, 3), np.uint8))
    write_poses(
        root / "transforms.json",
        c2w,
        "nerfstudio",
        names=names,
        intrinsics=PinholeIntrinsics(9, 9, 4, 3, W, H),
    )
    views = load_dataset(root, "all")
    torch.testing.assert_close(views.c2w_to_original(views.cameras.c2w.double()), c2w, atol=1e-5, rtol=0)
    assert views.names == names


# ---- distortion ---------------------------------------------------------------------------------------

DW, DH = 160, 120
K_DIST = {"fl_x": 100.0, "fl_y": 104.0, "cx": 81.0, "cy": 59.0, "w": DW, "h": DH}


@pytest.mark.parametrize(
    ("model", "keys", "coeffs"),
    [
        ("OPENCV", {"k1": -0.25, "k2": 0.06, "p1": 0.002, "p2": -0.003}, (-0.25, 0.06, 0.002, -0.003)),
        ("OPENCV_FISHEYE", {"k1": 0.05, "k2": -0.02, "k3": 0.01, "k4": -0.004}, (0.05, -0.02, 0.01, -0.004)),
    ],
)
def test_distortion_removed_at_load(tmp_path, model, keys, coeffs):
    k = K_DIST
    img = distorted_checker(DW, DH, k["fl_x"], k["fl_y"], k["cx"], k["cy"], model == "OPENCV_FISHEYE", coeffs)
    frames = [{"file_path": "images/d.png", "transform_matrix": C2W_GL[0]}]
    root = write_capture(tmp_path / model, {"camera_model": model, **K_DIST, **keys, "frames": frames}, [img])
    cams = (views := load_nerfstudio(root, "all")).cameras
    # The undistorted camera is pinhole, same size; compare with the checkerboard seen by that pinhole.
    err = checker_error(
        views.images[0, ..., 0].numpy(), cams.fx.item(), cams.fy.item(), cams.cx.item(), cams.cy.item()
    )
    # Measured: mean 0.0015, 99th percentile 0.005 (8-bit quantisation and bilinear resampling).
    assert err.mean() < 0.005 and np.percentile(err, 99) < 0.02, (err.mean(), np.percentile(err, 99))
    # The same image taken for a pinhole one is far off (measured 0.14): the test sees the distortion.
    root_pin = write_capture(
        tmp_path / "as_pinhole", {"camera_model": "PINHOLE", **K_DIST, "frames": frames}, [img]
    )
    pin = load_nerfstudio(root_pin, "all").images[0, ..., 0].numpy()
    assert checker_error(pin, k["fl_x"], k["fl_y"], k["cx"], k["cy"]).mean() > 20 * err.mean()


@pytest.mark.parametrize(
    ("model", "keys"),
    [
        ("OPENCV", {"k1": -0.25, "k2": 0.06, "p1": 0.002, "p2": -0.003}),
        ("OPENCV_FISHEYE", {"k1": 0.05, "k2": -0.02, "k3": 0.01, "k4": -0.004}),
    ],
)
def test_estimate_intrinsics_file_undistorts_the_target_as_the_loader(tmp_path, model, keys):
    """``inerf estimate --intrinsics`` with a lens (:func:`inerf.pose.io.read_camera`): the target becomes the
    same pinhole image, with the same intrinsics, as the loader makes of a training image of that camera."""
    from inerf.data.image_io import read_image
    from inerf.pose.io import read_camera

    k = K_DIST
    coeffs = tuple(keys.values())
    img = distorted_checker(DW, DH, k["fl_x"], k["fl_y"], k["cx"], k["cy"], model == "OPENCV_FISHEYE", coeffs)
    frames = [{"file_path": "images/d.png", "transform_matrix": C2W_GL[0]}]
    root = write_capture(tmp_path / "cap", {"camera_model": model, **K_DIST, **keys, "frames": frames}, [img])
    views = load_nerfstudio(root, "all")
    (tmp_path / "lens.json").write_text(json.dumps({"camera_model": model, **K_DIST, **keys}))
    camera, undistorter = read_camera(tmp_path / "lens.json", DW, DH)
    torch.testing.assert_close(torch.tensor(camera.intrinsics(0)), torch.tensor(views.cameras.intrinsics(0)))
    target = undistorter.image(read_image(root / "images" / "d.png"))
    np.testing.assert_allclose(target[..., :3], views.images[0].numpy(), atol=1e-6)
    # Without lens keys the file is pinhole and nothing is resampled.
    (tmp_path / "pin.json").write_text(json.dumps(K_DIST))
    assert read_camera(tmp_path / "pin.json", DW, DH)[1] is None


# ---- bad input ----------------------------------------------------------------------------------------


def test_missing_intrinsics(tmp_path):
    root = write_capture(tmp_path / "cap", {"camera_model": "PINHOLE"})
    with pytest.raises(InerfError, match=r"transforms.json: frame 0: no intrinsics") as e:
        load_nerfstudio(root, "all")
    assert "\n" not in str(e.value)


def test_unknown_camera_model(tmp_path):
    root = write_capture(tmp_path / "cap", {**PINHOLE, "camera_model": "EQUIRECTANGULAR"})
    with pytest.raises(InerfError, match=r"transforms.json: frame 0: unknown camera_model 'EQUIRECTANGULAR'"):
        load_nerfstudio(root, "all")
    # The same in an intrinsics file of `inerf estimate`: one line naming that file.
    from inerf.pose.io import read_camera

    (tmp_path / "k.json").write_text(json.dumps({**PINHOLE, "camera_model": "EQUIRECTANGULAR"}))
    with pytest.raises(
        InerfError, match=r"k.json: unknown camera_model 'EQUIRECTANGULAR' \(supported: SIMPLE_"
    ):
        read_camera(tmp_path / "k.json", W, H)


def test_missing_images(tmp_path):
    root = write_capture(tmp_path / "cap", dict(PINHOLE), images=[np.zeros((H, W, 3), np.uint8)])
    with pytest.raises(InerfError, match=r"transforms.json: frame 1: image not found: .*frame_00001.png"):
        load_nerfstudio(root, "all")


def test_missing_mask_and_bad_json(tmp_path):
    root = write_capture(tmp_path / "cap", dict(PINHOLE))
    meta = json.loads((root / "transforms.json").read_text())
    meta["frames"][0]["mask_path"] = "masks/none.png"
    (root / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(InerfError, match=r"transforms.json: frame 0: mask not found"):
        load_nerfstudio(root, "all")
    (root / "transforms.json").write_text("{ not json")
    with pytest.raises(InerfError, match=r"transforms.json: malformed JSON"):
        load_nerfstudio(root, "all")


def test_scale_uses_downscaled_copies(tmp_path):
    """``images_2/`` (nerfstudio's downscaled copies) serve scale 0.5; without them the images are resized."""
    root = write_capture(tmp_path / "cap", dict(PINHOLE))
    full = load_nerfstudio(root, "all", scale=0.5)
    assert full.images.shape == (2, H // 2, W // 2, 3)
    torch.testing.assert_close(full.cameras.fx, torch.full((2,), 5.0))
    torch.testing.assert_close(full.cameras.cx, torch.full((2,), 2.25))
    (root / "images_2").mkdir()
    for k in range(2):
        iio.imwrite(root / "images_2" / f"frame_{k:05d}.png", np.full((H // 2, W // 2, 3), 200, np.uint8))
    small = load_nerfstudio(root, "all", scale=0.5)
    assert small.images.shape == (2, H // 2, W // 2, 3)
    assert torch.allclose(small.images, torch.tensor(200 / 255))  # read from images_2, both views
    torch.testing.assert_close(small.cameras.fx, full.cameras.fx)
    torch.testing.assert_close(small.cameras.cy, full.cameras.cy)
