"""Loaders of pixelNeRF's datasets (SRN, NMR/DVR, DTU rs_dtu_4) on tiny generated copies of each layout.

Each test writes real PNGs and a real ``cameras.npz`` / pose text files, then checks the conversion to
inerf's convention (OpenCV c2w, pixel centres at +0.5) against the transforms the published loaders apply
(converted back with the named converters).
"""

from __future__ import annotations

import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from inerf.data.dvr import DVRDataset, decompose_projection, dtu_dataset, nmr_dataset
from inerf.data.srn import SRNDataset
from inerf.errors import InerfError
from inerf.geometry.conventions import opencv_to_opengl_c2w

FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


def rotation(axis: str, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def random_c2w(rng: np.random.Generator) -> np.ndarray:
    c2w = np.eye(4)
    c2w[:3, :3] = (
        rotation("z", rng.uniform(0, 6)) @ rotation("x", rng.uniform(0, 3)) @ rotation("y", rng.uniform(0, 6))
    )
    c2w[:3, 3] = rng.normal(size=3)
    return c2w


def object_image(rng, H, W, box) -> np.ndarray:
    """White image with a coloured block covering rows box[1]..box[3], columns box[0]..box[2] (inclusive)."""
    img = np.full((H, W, 3), 255, np.uint8)
    cmin, rmin, cmax, rmax = box
    img[rmin : rmax + 1, cmin : cmax + 1] = rng.integers(0, 250, size=(rmax - rmin + 1, cmax - cmin + 1, 3))
    return img


# ----------------------------------------------------------------------------------------------------------
# SRN
# ----------------------------------------------------------------------------------------------------------
def write_srn(root: Path, split: str, objects: dict[str, int], H=16, W=16, f=20.0, cx=8.0, cy=8.0, seed=0):
    rng = np.random.default_rng(seed)
    truth = {}
    for name, n in objects.items():
        obj = root / split / name
        (obj / "rgb").mkdir(parents=True)
        (obj / "pose").mkdir()
        (obj / "intrinsics.txt").write_text(f"{f} {cx} {cy} 0.\n0. 0. 0.\n1.\n{H} {W}\n")
        views = []
        for k in range(n):
            box = (1 + k, 2, 9 + k, 11)
            img = np.dstack([object_image(rng, H, W, box), np.full((H, W), 255, np.uint8)])  # RGBA on disk
            iio.imwrite(obj / "rgb" / f"{k:06d}.png", img)
            c2w = random_c2w(rng)
            (obj / "pose" / f"{k:06d}.txt").write_text(" ".join(f"{v:.10f}" for v in c2w.flatten()))
            views.append((img[..., :3], c2w, box))
        truth[name] = views
    return truth


def test_srn_layout(tmp_path):
    truth = write_srn(tmp_path, "cars_train", {"b_obj": 3, "a_obj": 2}, H=16, W=20, cx=10.0, cy=8.0)
    ds = SRNDataset(tmp_path / "cars", "train")
    assert len(ds) == 2 and ds.names == ["a_obj", "b_obj"]  # sorted
    assert (ds.z_near, ds.z_far) == (0.8, 1.8)
    obj = ds[1]
    assert obj.name == "b_obj" and len(obj) == 3 and obj.white_background
    assert obj.images.shape == (3, 16, 20, 3) and obj.images.dtype == torch.float32
    for k, (img, c2w, box) in enumerate(truth["b_obj"]):
        assert torch.allclose(obj.images[k], torch.from_numpy(img).float() / 255)
        # SRN poses are already OpenCV c2w: unchanged.
        assert torch.allclose(obj.cameras.c2w[k], torch.from_numpy(c2w).float(), atol=1e-6)
        # pixelNeRF reads them as pose @ diag(1, -1, -1, 1) (OpenGL): the model adapter's conversion.
        assert torch.allclose(
            opencv_to_opengl_c2w(obj.cameras.c2w[k]), torch.from_numpy(c2w @ FLIP_YZ).float(), atol=1e-6
        )
        assert obj.bbox[k].tolist() == list(box)
    # Integer-centred file intrinsics -> +0.5.
    assert torch.allclose(obj.cameras.fx, torch.full((3,), 20.0)) and torch.allclose(
        obj.cameras.fy, obj.cameras.fx
    )
    assert torch.allclose(obj.cameras.cx, torch.full((3,), 10.5)) and torch.allclose(
        obj.cameras.cy, torch.full((3,), 8.5)
    )
    assert (obj.cameras.height, obj.cameras.width) == (16, 20)
    assert obj.view_names == ["000000", "000001", "000002"]


def test_srn_resize_and_chairs(tmp_path):
    write_srn(
        tmp_path / "data", "chairs_train/chairs_2.0_train", {"c": 2}, H=16, W=16, f=20.0, cx=8.0, cy=8.0
    )
    ds = SRNDataset(tmp_path / "data" / "chairs", "train", image_size=(8, 8))
    assert (ds.z_near, ds.z_far) == (1.25, 2.75)  # chairs: camera radius ~2
    obj = ds[0]
    assert obj.images.shape == (2, 8, 8, 3)
    # Area downsampling by 2 maps continuous coordinates x -> x / 2 (pixel centres at +0.5 stay consistent).
    assert torch.allclose(obj.cameras.fx, torch.full((2,), 10.0)) and torch.allclose(
        obj.cameras.cx, torch.full((2,), 4.25)
    )


def test_srn_errors(tmp_path):
    write_srn(tmp_path, "cars_train", {"a": 1})
    (tmp_path / "cars_val").mkdir()
    with pytest.raises(InerfError, match="empty"):
        SRNDataset(tmp_path / "cars", "val")
    with pytest.raises(InerfError, match="not found"):
        SRNDataset(tmp_path / "cars", "test")
    with pytest.raises(InerfError, match="out of range"):
        SRNDataset(tmp_path / "cars", "train")[1]
    (tmp_path / "cars_train" / "a" / "pose" / "000000.txt").unlink()
    with pytest.raises(InerfError, match="poses"):
        SRNDataset(tmp_path / "cars", "train")[0]


# ----------------------------------------------------------------------------------------------------------
# NMR (DVR layout)
# ----------------------------------------------------------------------------------------------------------
def write_nmr(root: Path, H=12, W=12, n_views=3, seed=1):
    """Two categories with softras lists, one with only an unseen-split list; returns the true cameras."""
    rng = np.random.default_rng(seed)
    truth = {}
    for cat, objs in {"02958343": ["car1", "car2"], "03001627": ["chair1"]}.items():
        (root / cat).mkdir(parents=True)
        (root / cat / "softras_train.lst").write_text("\n".join(objs) + "\n")
        (root / cat / "softras_test.lst").write_text(objs[0] + "\n")
        for name in objs:
            obj = root / cat / name
            (obj / "image").mkdir(parents=True)
            (obj / "mask").mkdir()
            cams, views = {}, []
            for k in range(n_views):
                box = (2, 1 + k, 7, 9)
                img = object_image(rng, H, W, box)
                mask = np.zeros((H, W), np.uint8)
                mask[box[1] : box[3] + 1, box[0] : box[2] + 1] = 255
                iio.imwrite(obj / "image" / f"{k:04d}.png", img)
                iio.imwrite(obj / "mask" / f"{k:04d}.png", mask)
                c2w_dvr = random_c2w(rng)  # OpenCV camera axes, DVR y-up world
                cams[f"world_mat_{k}"] = np.linalg.inv(c2w_dvr)
                cams[f"camera_mat_{k}"] = np.diag([3.7320508, 3.7320508, 1.0, 1.0])  # NDC: 1 / tan(15 deg)
                views.append((img, c2w_dvr, box))
            np.savez(obj / "cameras.npz", **cams)
            truth[(cat, name)] = views
    (root / "04256520").mkdir()  # a category without this split's list: skipped
    (root / "04256520" / "gen_test.lst").write_text("car1\n")  # points nowhere useful; for dvr_gen only
    (root / "metadata.yaml").write_text("{}")
    return truth


def test_nmr_layout(tmp_path):
    truth = write_nmr(tmp_path)
    ds = nmr_dataset(tmp_path, "train")
    assert len(ds) == 3 and ds.names == ["car1", "car2", "chair1"]
    assert (ds.z_near, ds.z_far, ds.white_background) == (1.2, 4.0, True)
    obj = ds[1]
    assert (obj.category, obj.name) == ("02958343", "car2")
    assert obj.images.shape == (3, 12, 12, 3) and obj.masks.shape == (3, 12, 12)
    W_t = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1.0]])
    for k, (img, c2w_dvr, box) in enumerate(truth[("02958343", "car2")]):
        assert torch.allclose(obj.images[k], torch.from_numpy(img).float() / 255)
        # Published: pose = W_t @ inv(world_mat) @ diag(1, -1, -1) (z-up world, OpenGL camera).
        published = W_t @ c2w_dvr @ FLIP_YZ
        assert torch.allclose(
            opencv_to_opengl_c2w(obj.cameras.c2w[k]), torch.from_numpy(published).float(), atol=1e-5
        )
        assert obj.bbox[k].tolist() == list(box)
    # NDC focal x W / 2; pixelNeRF's default centre (W / 2) is integer-centred -> +0.5.
    assert torch.allclose(obj.cameras.fx, torch.full((3,), 3.7320508 * 6)) and torch.allclose(
        obj.cameras.fy, obj.cameras.fx
    )
    assert torch.allclose(obj.cameras.cx, torch.full((3,), 6.5)) and torch.allclose(
        obj.cameras.cy, torch.full((3,), 6.5)
    )
    assert len(nmr_dataset(tmp_path, "test")) == 2
    with pytest.raises(InerfError, match="empty"):
        nmr_dataset(tmp_path, "val")


def test_nmr_world_mat_inv_and_unseen_split(tmp_path):
    write_nmr(tmp_path)
    obj = tmp_path / "02958343" / "car1"
    cams = dict(np.load(obj / "cameras.npz"))
    special = random_c2w(np.random.default_rng(5))
    cams["world_mat_inv_0"] = special  # used instead of inverting world_mat_0
    np.savez(obj / "cameras.npz", **cams)
    loaded = nmr_dataset(tmp_path, "train")[0]
    W_t = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])
    assert np.allclose(loaded.cameras.c2w[0, :3].numpy(), W_t @ special[:3], atol=1e-5)
    # Unseen-category split: gen_<split>.lst.
    (tmp_path / "02958343" / "gen_test.lst").write_text("car2\n")
    (tmp_path / "04256520" / "gen_test.lst").unlink()
    unseen = nmr_dataset(tmp_path, "test", unseen=True)
    assert unseen.names == ["car2"] and unseen.format == "dvr_gen"


def test_nmr_errors(tmp_path):
    write_nmr(tmp_path)
    with open(tmp_path / "03001627" / "softras_train.lst", "a") as f:
        f.write("ghost\n")
    ds = nmr_dataset(tmp_path, "train")
    with pytest.raises(InerfError, match="missing"):
        ds[3]
    with pytest.raises(InerfError, match="not found"):
        nmr_dataset(tmp_path / "nope", "train")
    with pytest.raises(InerfError, match="unknown DVR dataset format"):
        DVRDataset(tmp_path, "train", "dvr_xyz")


# ----------------------------------------------------------------------------------------------------------
# DTU (rs_dtu_4)
# ----------------------------------------------------------------------------------------------------------
def test_decompose_projection_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(20):
        K = np.array(
            [
                [rng.uniform(200, 400), rng.uniform(-1, 1), rng.uniform(150, 250)],
                [0, rng.uniform(200, 400), rng.uniform(100, 200)],
                [0, 0, 1],
            ]
        )
        R = random_c2w(rng)[:3, :3]
        C = rng.normal(size=3) * 100
        P = K @ np.hstack([R, -R @ C[:, None]]) * rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 10)
        K2, R2, C2 = decompose_projection(P)
        assert (
            np.allclose(K2, K, atol=1e-6) and np.allclose(R2, R, atol=1e-9) and np.allclose(C2, C, atol=1e-6)
        )
        assert np.isclose(np.linalg.det(R2), 1.0)


def write_dtu(root: Path, H=15, W=20, n_views=3, seed=2):
    rng = np.random.default_rng(seed)
    dtu = root / "DTU"
    dtu.mkdir(parents=True)
    (dtu / "new_train.lst").write_text("scan1\nscan4\n")
    (dtu / "new_val.lst").write_text("scan8\n")
    truth = {}
    for scan in ["scan1", "scan4", "scan8"]:
        obj = dtu / scan
        (obj / "image").mkdir(parents=True)
        cams, views = {}, []
        scale, centre = 300.0, np.array([10.0, -20.0, 600.0])
        for k in range(n_views):
            img = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
            iio.imwrite(obj / "image" / f"{k:06d}.png", img)
            K = np.array([[25.0 + k, 0.0, 9.7 + 0.1 * k], [0.0, 26.0 - k, 7.2], [0.0, 0.0, 1.0]])
            R_w2c = random_c2w(rng)[:3, :3]
            C = centre + rng.normal(size=3) * 500  # camera centre in the scanner frame
            world_mat = np.eye(4)
            world_mat[:3] = K @ np.hstack([R_w2c, -R_w2c @ C[:, None]])
            cams[f"world_mat_{k}"] = world_mat
            S = np.eye(4)
            S[:3, :3] *= scale
            S[:3, 3] = centre
            cams[f"scale_mat_{k}"] = S
            views.append((img, K, R_w2c, C, S))
        np.savez(obj / "cameras.npz", **cams)
        truth[scan] = views
    return truth


def test_dtu_layout(tmp_path):
    truth = write_dtu(tmp_path)
    ds = dtu_dataset(tmp_path, "train")
    assert ds.names == ["scan1", "scan4"] and dtu_dataset(tmp_path, "val").names == ["scan8"]
    assert (ds.z_near, ds.z_far, ds.white_background) == (0.1, 5.0, False)
    obj = ds[1]
    assert obj.images.shape == (3, 15, 20, 3) and obj.category == "DTU" and obj.bbox is None
    flip = np.diag([1.0, -1.0, -1.0, 1.0])
    for k, (img, _K, R_w2c, C, S) in enumerate(truth["scan4"]):
        assert torch.allclose(obj.images[k], torch.from_numpy(img).float() / 255)
        # Published: pose = [R^T | (C - s_t) / s], then flip pose flip (world 180 deg about x, OpenGL cam).
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = R_w2c.T, (C - S[:3, 3]) / np.diag(S[:3, :3])
        published = flip @ pose @ flip
        assert torch.allclose(
            opencv_to_opengl_c2w(obj.cameras.c2w[k]), torch.from_numpy(published).float(), atol=1e-5
        )
    Ks = np.stack([v[1] for v in truth["scan4"]])
    # One camera model per scan: averages; principal point integer-centred -> +0.5.
    assert torch.allclose(obj.cameras.fx, torch.full((3,), Ks[:, 0, 0].mean()).float())
    assert torch.allclose(obj.cameras.fy, torch.full((3,), Ks[:, 1, 1].mean()).float())
    assert torch.allclose(obj.cameras.cx, torch.full((3,), Ks[:, 0, 2].mean() + 0.5).float())
    assert torch.allclose(obj.cameras.cy, torch.full((3,), Ks[:, 1, 2].mean() + 0.5).float())
    # The published loader has no test list for DTU.
    with pytest.raises(InerfError, match=r"new_test\.lst"):
        dtu_dataset(tmp_path, "test")


def test_dtu_missing_camera_key(tmp_path):
    write_dtu(tmp_path)
    obj = tmp_path / "DTU" / "scan1"
    iio.imwrite(obj / "image" / "000003.png", np.zeros((15, 20, 3), np.uint8))
    with pytest.raises(InerfError, match="world_mat_3"):
        dtu_dataset(tmp_path, "train")[0]
