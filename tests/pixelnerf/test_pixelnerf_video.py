"""``inerf pixelnerf video``: trajectories, and an end-to-end run on a generated checkpoint and SRN layout."""

from __future__ import annotations

import math
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from inerf.cli.main import main
from inerf.pixelnerf.video import orbit_c2w, scene_orbit_c2w, spherical_c2w, video_stem


def assert_looks_at_origin(c2w: torch.Tensor, atol=1e-5):
    """OpenCV c2w: the camera's +z axis points from its centre to the origin; rotations are proper."""
    eye, forward = c2w[..., :3, 3], c2w[..., :3, 2]
    assert torch.allclose(forward, -eye / eye.norm(dim=-1, keepdim=True), atol=atol)
    R = c2w[..., :3, :3]
    assert torch.allclose(R.transpose(-1, -2) @ R, torch.eye(3).expand_as(R), atol=atol)
    assert torch.allclose(torch.linalg.det(R), torch.ones(R.shape[:-2]), atol=atol)


def test_spherical_orbit():
    path = orbit_c2w(8, elevation_deg=-10.0, radius=1.3)
    assert path.shape == (8, 4, 4)
    assert_looks_at_origin(path)
    assert torch.allclose(path[:, :3, 3].norm(dim=-1), torch.full((8,), 1.3), atol=1e-6)
    # z-up world: negative elevation puts the camera above the object, at a constant height.
    assert torch.allclose(path[:, 2, 3], torch.full((8,), 1.3 * math.sin(math.radians(10))), atol=1e-6)
    # Image "down" (OpenCV +y) has a negative world-z component: the horizon stays level and upright.
    assert (path[:, 2, 1] < 0).all() and torch.allclose(path[:, 2, 0], torch.zeros(8), atol=1e-6)
    # theta = -180 (the first frame): NeRF's camera at (0, 0, -r) in its y-up frame, i.e. (0, -r, 0) z-up.
    assert torch.allclose(spherical_c2w(-180.0, 0.0, 2.0)[:3, 3], torch.tensor([0.0, -2.0, 0.0]), atol=1e-6)


def test_scene_orbit_for_dtu():
    cams = torch.stack([spherical_c2w(t, -30.0, 3.0) for t in (-20.0, 0.0, 20.0)])
    path = scene_orbit_c2w(cams, 12, radius=2.0)
    assert path.shape == (12, 4, 4)
    assert_looks_at_origin(path)
    assert torch.allclose(path[:, :3, 3].norm(dim=-1), torch.full((12,), 2.0), atol=1e-5)
    # Stays within the capture: every frame is within the cameras' angular spread of their mean direction.
    mean_dir = torch.nn.functional.normalize(cams[:, :3, 3].mean(0), dim=0)
    cos = torch.nn.functional.normalize(path[:, :3, 3], dim=-1) @ mean_dir
    assert (cos > math.cos(math.radians(25))).all()


def test_video_stem():
    assert video_stem("test", 1, [64, 104]) == "videot0001_v064_104"
    assert video_stem("val", 3, [22, 25, 28]) == "videov0003_v022_025_028"
    assert video_stem("train", 0, [2]) == "video0000_v002"


def write_srn_split(root: Path, split: str, n_objects: int, n_views: int, size: int = 32):
    rng = np.random.default_rng(0)
    for i in range(n_objects):
        obj = root / f"cars_{split}" / f"obj{i}"
        (obj / "rgb").mkdir(parents=True)
        (obj / "pose").mkdir()
        f = 131.25 * size / 128
        (obj / "intrinsics.txt").write_text(f"{f} {size / 2} {size / 2} 0.\n0. 0. 0.\n1.\n{size} {size}\n")
        for k in range(n_views):
            img = np.full((size, size, 3), 255, np.uint8)
            img[8:24, 6:26] = rng.integers(0, 200, size=(16, 20, 3))
            iio.imwrite(obj / "rgb" / f"{k:06d}.png", img)
            c2w = (
                spherical_c2w(360.0 * k / n_views, -20.0, 1.3).double().numpy()
            )  # OpenCV c2w, like SRN files
            (obj / "pose" / f"{k:06d}.txt").write_text(" ".join(f"{v:.8f}" for v in c2w.flatten()))


@pytest.fixture(scope="module")
def video_project(tmp_path_factory, srn_checkpoint):
    root = tmp_path_factory.mktemp("pixelnerf_video")
    write_srn_split(root / "data", "test", n_objects=2, n_views=3)
    (root / "data" / "cars_val").mkdir(parents=True)  # an empty split
    ckpt_dir = root / "checkpoints" / "srn_car"
    ckpt_dir.mkdir(parents=True)
    os.symlink(srn_checkpoint, ckpt_dir / "pixel_nerf_latest")
    return root


def run_cli(project: Path, *extra: str) -> int:
    return main(
        [
            "pixelnerf",
            "video",
            "-n",
            "srn_car",
            "-D",
            str(project / "data" / "cars"),
            "--checkpoints_path",
            str(project / "checkpoints"),
            "--visual_path",
            str(project / "visuals"),
            "--quiet",
            *extra,
        ]
    )


def test_video_end_to_end(video_project, capsys):
    rc = run_cli(
        video_project,
        "--split",
        "test",
        "-S",
        "1",
        "-P",
        "0 2",
        "--num_views",
        "3",
        "--scale",
        "0.25",
        "--gpu_id",
        "0",
        "-R",
        "5000",
        "--seed",
        "0",
    )
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    video = video_project / "visuals" / "srn_car" / "videot0001_v000_002.mp4"
    assert out[-1] == str(video) and video.is_file()
    frames = _read_frames(video)
    assert len(frames) == 3 and frames[0].shape == (8, 8, 3)
    strip = iio.imread(video.with_name("videot0001_v000_002_view.jpg"))
    assert strip.shape == (32, 64, 3)
    # Frames are written as they are rendered (a stopped run keeps them), and the time is announced first.
    written = sorted((video.parent / "videot0001_v000_002_frames").glob("frame_*.png"))
    assert [p.name for p in written] == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
    assert iio.imread(written[1]).shape == (8, 8, 3)  # lossless; the MP4 holds the same frames encoded
    assert any("s per frame" in line and "min in all" in line for line in out)


def _read_frames(path: Path) -> list[np.ndarray]:
    import imageio.v2 as imageio

    with imageio.get_reader(path) as reader:
        # iter(): the ffmpeg reader reports an infinite length, which list(reader) would try to preallocate.
        return list(iter(reader))


def test_video_gif(video_project, capsys):
    assert (
        run_cli(
            video_project,
            "--split",
            "test",
            "-P",
            "1",
            "--num_views",
            "2",
            "--scale",
            "0.25",
            "--gif",
            "--deterministic",
        )
        == 0
    )
    gif = video_project / "visuals" / "srn_car" / "videot0000_v001.gif"
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(gif)
    assert iio.imread(gif, index=None).shape[0] == 2


@pytest.mark.parametrize(
    "extra,message",
    [
        (("--split", "test", "-S", "2"), "-S 2 is out of range: split 'test' of .* has 2 object"),
        (("--split", "test", "-S", "-1"), "-S -1 is out of range"),
        (
            (
                "--split",
                "val",
            ),
            "split 'val' is empty",
        ),
        (
            (
                "--split",
                "train",
            ),
            "SRN split folder not found",
        ),
        (("--split", "test", "-P", "0 3"), r"-P: view\(s\) \[3\] out of range"),
        (("--split", "test", "-P", "a"), "expected space-separated integers"),
    ],
)
def test_video_bad_input(video_project, capsys, extra, message):
    import re

    assert run_cli(video_project, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err


def test_video_missing_checkpoint(video_project, capsys):
    rc = main(
        [
            "pixelnerf",
            "video",
            "-n",
            "srn_chair",
            "-D",
            str(video_project / "data" / "cars"),
            "--checkpoints_path",
            str(video_project / "checkpoints"),
            "--split",
            "test",
        ]
    )
    assert rc == 2 and "checkpoint not found" in capsys.readouterr().err
    rc = main(["pixelnerf", "video", "-n", "my_experiment", "-D", "x"])
    assert rc == 2 and "pass -c/--conf" in capsys.readouterr().err


def test_video_refuses_to_replace_existing_files(video_project, capsys):
    """An existing video or source-view strip of the same name is the user's: refused before any work."""
    folder = video_project / "visuals" / "srn_car"
    folder.mkdir(parents=True, exist_ok=True)
    args = ("--split", "test", "-S", "1", "-P", "1", "--num_views", "1", "--scale", "0.25", "--gif")
    (folder / "videot0001_v001_frames").mkdir()
    assert run_cli(video_project, *args) == 2
    assert "videot0001_v001_frames: exists" in capsys.readouterr().err
    (folder / "videot0001_v001_frames").rmdir()
    for name in ("videot0001_v001.gif", "videot0001_v001_view.jpg"):
        (folder / name).write_bytes(b"mine")
        assert run_cli(video_project, *args) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"inerf pixelnerf: error: {folder / name}: exists (pass --overwrite to replace it)"
        assert (folder / name).read_bytes() == b"mine"
        (folder / name).unlink()
    (folder / "videot0001_v001_view.jpg").write_bytes(b"mine")
    assert run_cli(video_project, *args, "--overwrite") == 0
    assert iio.imread(folder / "videot0001_v001_view.jpg").shape == (32, 32, 3)
