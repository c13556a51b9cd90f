"""LLFF loader on a tiny scene written here: poses_bounds.npy + real PNGs, checked against hand values."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from inerf.data import detect_format, llff_to_opencv_c2w, load_dataset, load_llff
from inerf.data.llff import llff_split_indices
from inerf.errors import InerfError
from inerf.geometry.se3 import so3_exp

N = 10
FULL_H, FULL_W, FOCAL = 12, 16, 20.0  # hwf of the full-resolution images
BOUNDS = np.stack([np.linspace(2.0, 3.0, N), np.linspace(8.0, 12.0, N)], 1)  # min near 2, max far 12


def opencv_rotations(n: int) -> np.ndarray:
    g = torch.Generator().manual_seed(0)
    return so3_exp(torch.randn(n, 3, generator=g, dtype=torch.float64)).numpy()


def opencv_to_llff_columns(R_cv: np.ndarray) -> np.ndarray:
    """Inverse of the loader's conversion, written out independently: LLFF columns are
    [down, right, backwards] = [cv y, cv x, -cv z]."""
    return np.stack([R_cv[..., :, 1], R_cv[..., :, 0], -R_cv[..., :, 2]], -1)


def write_llff(root, n=N, image_hw=(6, 8), folder="images", extra_folders=()):
    """Poses with random rotations and centres at (i, 0, 0); image k is a constant grey k*20."""
    root.mkdir(parents=True, exist_ok=True)
    R_cv = opencv_rotations(n)
    mats = np.zeros((n, 3, 5))
    mats[:, :, :3] = opencv_to_llff_columns(R_cv)
    mats[:, :, 3] = np.stack([np.arange(n), np.zeros(n), np.zeros(n)], 1)
    mats[:, :, 4] = [FULL_H, FULL_W, FOCAL]
    arr = np.concatenate([mats.reshape(n, 15), BOUNDS[:n]], 1)
    np.save(root / "poses_bounds.npy", arr)
    for name, (h, w), offset in [(folder, image_hw, 0), *extra_folders]:
        (root / name).mkdir(exist_ok=True)
        for k in range(n):
            iio.imwrite(root / name / f"IMG_{k:04d}.png", np.full((h, w, 3), k * 20 + offset, np.uint8))
    return root, R_cv, arr


def test_axis_conversion_by_hand():
    # LLFF identity: down = world x, right = world y, backwards = world z. OpenCV x (right) is then world y,
    # y (down) world x, z (forward) world -z; a proper rotation (det +1).
    out = llff_to_opencv_c2w(torch.eye(4, dtype=torch.float64))
    expected = torch.tensor([[0.0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)
    assert torch.linalg.det(out[:3, :3]).item() == pytest.approx(1.0)


def test_poses_intrinsics_images_bounds(tmp_path):
    root, R_cv, _ = write_llff(tmp_path / "s")
    v = load_llff(root, "all", bd_factor=None)
    assert len(v) == N and v.images.shape == (N, 6, 8, 3) and v.alphas is None
    torch.testing.assert_close(v.cameras.c2w[:, :3, :3], torch.from_numpy(R_cv).float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(v.cameras.c2w[:, 0, 3], torch.arange(N).float())
    # hwf is for 12x16 images; these are 6x8, so the focal length halves; principal point = centre.
    torch.testing.assert_close(v.cameras.fx, torch.full((N,), FOCAL / 2))
    torch.testing.assert_close(v.cameras.fy, torch.full((N,), FOCAL / 2))
    torch.testing.assert_close(v.cameras.cx, torch.full((N,), 4.0))
    torch.testing.assert_close(v.cameras.cy, torch.full((N,), 3.0))
    torch.testing.assert_close(v.images[:, 0, 0, 0], torch.arange(N).float() * 20 / 255)
    # NeRF's non-NDC bounds in COLMAP units: 0.9 * min near, max far.
    assert v.near == pytest.approx(1.8) and v.far == pytest.approx(12.0)
    assert v.names[3] == "images/IMG_0003.png"


def test_bd_factor_rescales_positions_and_bounds(tmp_path):
    root, _, _ = write_llff(tmp_path / "s")
    v = load_llff(root, "all")  # default bd_factor 0.75
    sc = 1.0 / (2.0 * 0.75)
    torch.testing.assert_close(v.cameras.c2w[:, 0, 3], torch.arange(N).float() * sc)
    assert v.near == pytest.approx(0.9 * 2.0 * sc) and v.far == pytest.approx(12.0 * sc)
    # The scale uses every image, so the test split shares the train split's world frame.
    test = load_llff(root, "test")
    torch.testing.assert_close(test.cameras.c2w[1, 0, 3], torch.tensor(8 * sc))
    assert (test.near, test.far) == (v.near, v.far)


def test_llffhold_splits(tmp_path):
    root, _, _ = write_llff(tmp_path / "s")
    assert llff_split_indices(10, "test") == [0, 8]
    assert llff_split_indices(10, "train") == [1, 2, 3, 4, 5, 6, 7, 9]
    assert llff_split_indices(10, "val") == [0, 8]
    assert llff_split_indices(10, "train", llffhold=0) == list(range(10))
    test = load_dataset(root, "test")
    assert test.names == ["images/IMG_0000.png", "images/IMG_0008.png"]
    assert len(load_dataset(root, "train")) == 8
    assert detect_format(root) == "llff"


def test_downsampled_folder_preferred_else_resize(tmp_path):
    # images/ holds 12x16 images; images_2/ holds 6x8 copies with a different grey level to tell them apart.
    root, _, _ = write_llff(tmp_path / "s", image_hw=(12, 16), extra_folders=[("images_2", (6, 8), 5)])
    v = load_llff(root, "all", scale=0.5)
    assert v.images.shape[1:3] == (6, 8) and v.names[0] == "images_2/IMG_0000.png"
    torch.testing.assert_close(v.images[1, 0, 0, 0], torch.tensor(25 / 255))
    torch.testing.assert_close(v.cameras.fx, torch.full((N,), FOCAL / 2))
    # No images_4/: read images/ and resize by 1/4 (area filter).
    v = load_llff(root, "all", scale=0.25)
    assert v.images.shape[1:3] == (3, 4) and v.names[0] == "images/IMG_0000.png"
    torch.testing.assert_close(v.cameras.fx, torch.full((N,), FOCAL / 4))
    torch.testing.assert_close(v.images[1, 0, 0, 0], torch.tensor(20 / 255))


# -- bad input ---------------------------------------------------------------------------------------------


def test_wrong_shape(tmp_path):
    root, _, arr = write_llff(tmp_path / "s")
    np.save(root / "poses_bounds.npy", arr[:, :15])
    with pytest.raises(InerfError) as e:
        load_llff(root)
    assert "poses_bounds.npy" in str(e.value) and "N x 17" in str(e.value) and "\n" not in str(e.value)


def test_nan_pose(tmp_path):
    root, _, arr = write_llff(tmp_path / "s")
    arr[3, 3] = np.nan
    np.save(root / "poses_bounds.npy", arr)
    with pytest.raises(InerfError, match="row 3 contains NaN"):
        load_llff(root)


def test_missing_images_and_count_mismatch(tmp_path):
    root, _, _ = write_llff(tmp_path / "s")
    (root / "images" / "IMG_0004.png").unlink()
    with pytest.raises(InerfError, match="found 9 images but poses_bounds.npy has 10 poses"):
        load_llff(root)
    for f in (root / "images").iterdir():
        f.unlink()
    (root / "images").rmdir()
    with pytest.raises(InerfError, match="no 'images' folder"):
        load_llff(root)


def test_not_an_array_and_missing_file(tmp_path):
    root, _, _ = write_llff(tmp_path / "s")
    (root / "poses_bounds.npy").write_bytes(b"garbage")
    with pytest.raises(InerfError, match="poses_bounds.npy: unreadable"):
        load_llff(root)
    (root / "poses_bounds.npy").unlink()
    with pytest.raises(InerfError, match="poses_bounds.npy"):
        load_llff(root)
    with pytest.raises(InerfError, match="unknown split"):
        write_llff(tmp_path / "t")
        load_llff(tmp_path / "t", "dev")
