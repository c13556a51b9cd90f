"""``inerf synth category``: SRN layout and file formats, pose exactness, the SRN loader, Sweet Home 3D."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from synth_helpers import requires_sweethome3d

from inerf.errors import InerfError
from inerf.synth.category import (
    CategoryConfig,
    assign_splits,
    category_assets,
    generate_category,
    parse_split,
    split_dirs,
)
from inerf.synth.verify import check_srn_split, read_srn_intrinsics, summarise

SPLITS = ("train", "val", "test")


def test_layout_and_file_formats(blob_category):
    out, metas = blob_category
    dirs = split_dirs(out)
    assert {s: len(m["instances"]) for s, m in metas.items()} == {"train": 2, "val": 1, "test": 1}
    for split in SPLITS:
        names = sorted(p.name for p in dirs[split].iterdir() if p.is_dir())
        assert names == sorted(metas[split]["instances"])
        for name in names:
            inst = dirs[split] / name
            assert sorted(p.name for p in (inst / "rgb").iterdir()) == [f"{i:06d}.png" for i in range(3)]
            assert sorted(p.name for p in (inst / "pose").iterdir()) == [f"{i:06d}.txt" for i in range(3)]
            lines = (inst / "intrinsics.txt").read_text().splitlines()
            assert lines[1:] == ["0. 0. 0.", "1.", "32 32"]
            # SRN's file convention (pixel centres at integers): f scaled from 131.25 at 128, c = W / 2.
            assert read_srn_intrinsics(inst / "intrinsics.txt") == (131.25 / 4, 16.0, 16.0, 32, 32)
            with Image.open(inst / "rgb" / "000000.png") as im:
                assert im.mode == "RGB" and im.size == (32, 32)
                assert np.asarray(im)[0, 0].tolist() == [255, 255, 255]  # white background
            c2w = np.loadtxt(inst / "pose" / "000000.txt")
            assert c2w.shape == (16,)
            c2w = c2w.reshape(4, 4)
            assert np.allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-8)
            assert np.isclose(np.linalg.norm(c2w[:3, 3]), 1.3)
            # OpenCV axes: the camera's +z looks at the origin.
            assert np.allclose(c2w[:3, 2], -c2w[:3, 3] / 1.3, atol=1e-8)
        assert (dirs[split] / "ATTRIBUTION.txt").is_file()
    assert (dirs["train"] / "preview.png").is_file()


def test_meta(blob_category):
    out, metas = blob_category
    for split, meta in metas.items():
        on_disk = json.loads((split_dirs(out)[split] / "meta.json").read_text())
        assert on_disk == json.loads(json.dumps(meta))
        assert meta["format"] == "srn" and (meta["near"], meta["far"]) == (0.8, 1.8)
        for inst in meta["instances"].values():
            assert np.array(inst["object_to_world"]).shape == (4, 4)
            assert meta["near"] <= inst["depth_range"]["z_min"]
            assert inst["depth_range"]["distance_max"] <= meta["far"]
            lo, hi = np.array(inst["object_bounds"])
            assert np.isclose(np.linalg.norm(hi - lo), 1.0)  # ShapeNet-style unit diagonal
            assert inst["asset"]["source"] == "pybullet_data" and inst["asset"]["attribution"]


def test_eval_views_are_shared(blob_category):
    """Val and test instances use one spiral, as SRN's test trajectories; train views differ per instance."""
    out, metas = blob_category
    dirs = split_dirs(out)
    val = [np.loadtxt(dirs["val"] / n / "pose" / "000001.txt") for n in metas["val"]["instances"]]
    test = [np.loadtxt(dirs["test"] / n / "pose" / "000001.txt") for n in metas["test"]["instances"]]
    assert np.array_equal(val[0], test[0])
    train = [np.loadtxt(dirs["train"] / n / "pose" / "000000.txt") for n in metas["train"]["instances"]]
    assert not np.array_equal(train[0], train[1])


def test_poses_are_exact(blob_category):
    """Vertices project onto SRN's foreground (no saturated channel), the boxes agree within a pixel, no
    systematic shift (the silhouette here includes partly covered pixels, so its box is a little wider on
    both sides; the shift compares opposite sides)."""
    out, _ = blob_category
    for split, folder in split_dirs(out).items():
        s = summarise(check_srn_split(folder))
        assert s["near_fraction_min"] >= 0.99, split
        assert s["bbox_error_max"] <= 1.0, split
        assert np.abs(s["bbox_shift"]).max() < 0.25, split


def test_srn_loader_reads_the_same_cameras(blob_category):
    srn = pytest.importorskip("inerf.data.srn", reason="the SRN loader (inerf.data.srn) is not there yet")
    out, metas = blob_category
    for split in SPLITS:
        dataset = srn.SRNDataset(out, split)
        assert dataset.names == sorted(metas[split]["instances"])
        for k, name in enumerate(dataset.names):
            obj = dataset[k]
            folder = split_dirs(out)[split] / name
            files = sorted((folder / "pose").glob("*.txt"))
            poses = torch.tensor(np.stack([np.loadtxt(p).reshape(4, 4) for p in files]))
            assert torch.allclose(obj.cameras.c2w.double(), poses, atol=1e-6)
            cam = metas[split]["camera"]
            # The loader's camera is the one we rendered with (inerf convention: cx = 16 + 0.5).
            assert torch.allclose(obj.cameras.cx, torch.tensor(cam["cx"], dtype=obj.cameras.cx.dtype))
            assert torch.allclose(obj.cameras.fx, torch.tensor(cam["fx"], dtype=obj.cameras.fx.dtype))
            rgb = np.asarray(Image.open(folder / "rgb" / "000000.png"), dtype=np.float32) / 255
            assert np.allclose(obj.images[0].numpy(), rgb, atol=1e-6)
            assert (obj.z_near, obj.z_far) == (0.8, 1.8)


def test_assign_splits():
    rng = np.random.default_rng(0)
    names = [f"n{i}" for i in range(10)]
    s = assign_splits(names, (0.8, 0.1, 0.1), rng)
    assert [len(s[k]) for k in SPLITS] == [8, 1, 1]
    assert sorted(s["train"] + s["val"] + s["test"]) == names
    small = assign_splits(names[:3], (0.8, 0.1, 0.1), rng)
    assert [len(small[k]) for k in SPLITS] == [1, 1, 1]


def test_bad_input(tmp_path):
    with pytest.raises(InerfError, match="0.8/0.1/0.1"):
        parse_split("0.8,0.2")
    with pytest.raises(InerfError, match="adding up to 1"):
        CategoryConfig(split=(0.5, 0.2, 0.2)).validate()
    with pytest.raises(InerfError, match="one category"):
        category_assets("random-urdfs", "chair")
    with pytest.raises(InerfError, match="only 1000 assets"):
        generate_category(
            "random-urdfs", None, tmp_path / "x", CategoryConfig(instances=5000), progress=False
        )


def test_missing_sweethome3d_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("INERF_SWEETHOME3D_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(InerfError, match="apt-get install sweethome3d-furniture"):
        generate_category(
            "sweethome3d", "chair", tmp_path / "chairs", CategoryConfig(views=1), progress=False
        )
    assert not any(tmp_path.iterdir())


@requires_sweethome3d
def test_sweethome3d_chairs(tmp_path):
    out = tmp_path / "chairs"
    config = CategoryConfig(views=2, size=32, instances=3, split=(1.0, 0.0, 0.0), workers=1, seed=1)
    metas = generate_category("sweethome3d", "chair", out, config, progress=False)
    train = metas["train"]
    assert len(train["instances"]) == 3 and len(train["attribution"]) == 3
    assert all(i["asset"]["source"] == "sweethome3d" for i in train["instances"].values())
    assert metas["val"]["instances"] == {} and (split_dirs(out)["val"] / "meta.json").is_file()
    s = summarise(check_srn_split(split_dirs(out)["train"]))
    assert s["near_fraction_min"] >= 0.99 and s["bbox_error_max"] <= 1.0
