"""``inerf synth scene --path``: a smooth camera path with small noise, rendered as an image sequence with its
ground truth in TUM format."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inerf.cli.main import main
from inerf.geometry import se3
from inerf.geometry.conventions import check_rigid
from inerf.geometry.formats import read_poses
from inerf.synth.trajectories import path_poses


@pytest.mark.parametrize("kind", ["orbit", "handheld"])
def test_path_is_smooth_with_small_noise(kind):
    poses = torch.from_numpy(
        path_poses(kind, 120, 4.0, np.random.default_rng(0), step_deg=1.5, noise_deg=0.2)
    )
    check_rigid(poses)
    step_rot = se3.rotation_error_deg(poses[1:], poses[:-1])
    step_trans = se3.translation_error(poses[1:], poses[:-1])
    # About 1.5 degrees of orbit per frame (0.1 units at radius 4), never a jump.
    assert 1.0 < float(step_rot.mean()) < 2.2 and float(step_rot.max()) < 4.0
    assert 0.06 < float(step_trans.mean()) < 0.14 and float(step_trans.max()) < 0.3
    dist = poses[:, :3, 3].norm(dim=-1)
    assert float(dist.min()) > 3.6 and float(dist.max()) < 4.4
    # Every frame looks at (about) the origin.
    to_origin = -poses[:, :3, 3] / dist[:, None]
    assert float(torch.rad2deg(torch.acos((to_origin * poses[:, :3, 2]).sum(-1).clamp(-1, 1))).max()) < 5.0
    again = path_poses(kind, 120, 4.0, np.random.default_rng(0), step_deg=1.5, noise_deg=0.2)
    assert np.array_equal(again, poses.numpy())  # seeded
    smooth = torch.from_numpy(path_poses(kind, 120, 4.0, np.random.default_rng(0), noise_deg=0.0))
    assert float(se3.rotation_error_deg(smooth, poses).max()) < 1.5  # the noise is small


def test_synth_scene_writes_the_path_sequence(tmp_path, capsys):
    out = tmp_path / "duck"
    code = main(
        ["synth", "scene", "--asset", "duck", "--out", str(out), "--size", "32", "--train", "2", "--val", "0"]
        + ["--test", "0", "--path", "handheld", "--frames", "5", "--fps", "10", "--workers", "1", "--quiet"]
    )
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (out / "path").glob("*.png")) == [f"r_{i}.png" for i in range(5)]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["splits"]["path"]["count"] == 5 and meta["splits"]["path"]["fps"] == 10
    # The ground truth in TUM equals the Blender transforms of the split (OpenGL there, OpenCV here).
    tum = read_poses(out / "path.tum", "tum")
    blender = read_poses(out / "transforms_path.json", "nerfstudio")
    torch.testing.assert_close(tum.c2w, blender.c2w, atol=1e-9, rtol=0)
    torch.testing.assert_close(tum.timestamps, torch.arange(5, dtype=torch.float64) / 10)
    # Adding a path leaves the other splits of the seed unchanged.
    train = json.loads((out / "transforms_train.json").read_text())["frames"]
    code = main(
        [
            "synth",
            "scene",
            "--asset",
            "duck",
            "--out",
            str(tmp_path / "plain"),
            "--size",
            "32",
            "--train",
            "2",
        ]
        + ["--val", "0", "--test", "0", "--workers", "1", "--quiet"]
    )
    assert code == 0
    plain = json.loads((tmp_path / "plain" / "transforms_train.json").read_text())["frames"]
    assert [f["transform_matrix"] for f in train] == [f["transform_matrix"] for f in plain]
    code = main(
        [
            "synth",
            "scene",
            "--asset",
            "duck",
            "--out",
            str(tmp_path / "x"),
            "--path",
            "orbit",
            "--frames",
            "0",
        ]
    )
    assert code == 2 and "--frames must be >= 1" in capsys.readouterr().err
