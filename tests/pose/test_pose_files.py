"""``--pose-format`` / ``--pose-frame`` through the command line: pose.json states its frame and both camera
conventions, and every format file reads back with the format's own reader (pycolmap for COLMAP, evo for TUM
and KITTI) to the pose in the user's original frame."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from pose_scene import FOCAL, H, W

from inerf.cli.main import main
from inerf.data.views import SceneTransform
from inerf.geometry.conventions import opencv_to_opengl_c2w
from inerf.geometry.formats import read_nerfstudio_camera_path, read_poses

# A loader's move of the user's world: scale 0.5, a turn of 90 degrees about z, a shift.
TRANSFORM = SceneTransform(
    0.5,
    ((0.0, -1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    (0.3, -0.2, 1.0),
    original="COLMAP world of test",
)
ALL = "opencv,opengl,nerfstudio,colmap,tum,kitti"


@pytest.fixture()
def moved_run(fake_run):
    """The fake run whose data the loader had moved by :data:`TRANSFORM` (the run records nothing itself: the
    transform comes from its data, as for runs trained before inerf recorded it)."""
    fake_run.dataset.views.transform = TRANSFORM
    return fake_run


def estimate(tmp_path, *flags, name="o"):
    out = tmp_path / name
    argv = ["estimate", "--run", "RUN", "--view", "1", "--init-from-gt", "--perturb-rot", "3"]
    argv += [
        "--steps",
        "4",
        "--rays",
        "64",
        "--frames",
        "0",
        "--no-uncertainty",
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(argv + list(flags)) == 0
    return out, json.loads((out / "pose.json").read_text())


def test_pose_json_states_frame_conventions_and_original_pose(moved_run, tmp_path):
    _, pose = estimate(tmp_path)
    c2w = torch.tensor(pose["c2w"], dtype=torch.float64)
    assert pose["convention"] == "opencv_c2w" and pose["frame"] == "training frame of the run RUN"
    assert "y down" in pose["axes"]["c2w"] and "y up" in pose["axes"]["c2w_opengl"]
    torch.testing.assert_close(
        torch.tensor(pose["c2w_opengl"], dtype=torch.float64), opencv_to_opengl_c2w(c2w)
    )
    orig = pose["original"]
    assert orig["frame"] == "COLMAP world of test" and orig["transform"] == TRANSFORM.to_dict()
    expected = TRANSFORM.c2w_to_original(c2w)
    torch.testing.assert_close(torch.tensor(orig["c2w"], dtype=torch.float64), expected, atol=1e-12, rtol=0)
    # Back by hand: centre_orig = R^T (centre_train - t) / s, R_orig = R^T R_train.
    R = torch.tensor(TRANSFORM.rotation, dtype=torch.float64)
    centre = R.T @ (c2w[:3, 3] - torch.tensor(TRANSFORM.translation, dtype=torch.float64)) / 0.5
    torch.testing.assert_close(expected[:3, 3], centre)
    torch.testing.assert_close(
        torch.tensor(orig["c2w_opengl"], dtype=torch.float64),
        opencv_to_opengl_c2w(expected),
        atol=1e-12,
        rtol=0,
    )


def test_every_format_reads_back_with_its_own_reader(moved_run, tmp_path):
    pycolmap = pytest.importorskip("pycolmap", reason="pycolmap not installed (pip install 'inerf[capture]')")
    evo = pytest.importorskip(
        "evo.tools.file_interface", reason="evo not installed (it is in the test extra)"
    )
    out, pose = estimate(tmp_path, "--pose-format", ALL)
    want = torch.tensor(pose["original"]["c2w"], dtype=torch.float64)
    files = out / "poses"
    assert pose_names(files) == {
        "opencv.json",
        "opengl.json",
        "transforms.json",
        "camera_path.json",
        "colmap/images.txt",
        "colmap/cameras.txt",
        "colmap/points3D.txt",
        "tum.txt",
        "kitti.txt",
    }
    # COLMAP: pycolmap opens the folder as a text model; world-to-camera inverted back, intrinsics as solved.
    # The solve's pose is rigid to float32 precision; a quaternion re-orthonormalises it (COLMAP, TUM): 1e-6.
    rec = pycolmap.Reconstruction(str(files / "colmap"))
    (image,) = rec.images.values()
    w2c = np.eye(4)
    w2c[:3] = image.cam_from_world().matrix()
    np.testing.assert_allclose(np.linalg.inv(w2c), want.numpy(), atol=1e-6)
    cam = rec.cameras[image.camera_id]
    assert cam.model.name == "PINHOLE" and (cam.width, cam.height) == (W, H)
    np.testing.assert_allclose(cam.params, [FOCAL, FOCAL, W / 2, H / 2])
    assert image.name == "test/r_1.png"  # the dataset's name of view 1
    # TUM and KITTI through evo's readers.
    tum = evo.read_tum_trajectory_file(str(files / "tum.txt"))
    np.testing.assert_allclose(tum.poses_se3[0], want.numpy(), atol=1e-6)
    kitti = evo.read_kitti_poses_file(str(files / "kitti.txt"))
    np.testing.assert_allclose(kitti.poses_se3[0], want.numpy(), atol=1e-9)
    # The JSON formats and nerfstudio's two files through inerf's readers (nerfstudio has no package here).
    for fmt, name in (
        ("opencv", "opencv.json"),
        ("opengl", "opengl.json"),
        ("nerfstudio", "transforms.json"),
    ):
        torch.testing.assert_close(read_poses(files / name, fmt).c2w[0], want, atol=1e-12, rtol=0)
    gl = json.loads((files / "opengl.json").read_text())
    assert gl["convention"] == "opengl_c2w" and gl["frame"] == "original frame: COLMAP world of test"
    path = read_nerfstudio_camera_path(files / "camera_path.json")
    torch.testing.assert_close(path.c2w[0], want, atol=1e-12, rtol=0)
    fov = json.loads((files / "camera_path.json").read_text())["camera_path"][0]["fov"]
    assert fov == pytest.approx(math.degrees(2 * math.atan(H / 2 / FOCAL)))


def pose_names(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_training_frame_on_request_and_when_nothing_is_recorded(moved_run, tmp_path):
    out, pose = estimate(tmp_path, "--pose-format", "kitti", "--pose-frame", "training")
    np.testing.assert_allclose(
        read_poses(out / "poses" / "kitti.txt", "kitti").c2w[0], pose["c2w"], atol=1e-12
    )
    # A run whose data cannot be read and that recorded nothing: the training frame, and pose.json says so.
    moved_run.dataset.load = lambda *a, **k: (_ for _ in ()).throw(OSError("gone"))
    argv = ["estimate", "--run", "RUN", "--image", str(tmp_path / "t.png"), "--fx", str(FOCAL), "--init"]
    from PIL import Image

    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "t.png")
    (tmp_path / "init.json").write_text(json.dumps({"c2w": pose["c2w"]}))
    out = tmp_path / "none"
    flags = ["--steps", "2", "--rays", "16", "--frames", "0", "--no-uncertainty", "--quiet"]
    assert main([*argv, str(tmp_path / "init.json"), *flags, "--pose-format", "tum", "--out", str(out)]) == 0
    pose = json.loads((out / "pose.json").read_text())
    assert pose["original"] is None and "recorded no original frame" in pose["original_note"]
    assert "training frame of the run RUN" in (out / "poses" / "tum.txt").read_text()


def test_bad_pose_format_is_one_line(moved_run, tmp_path, capsys):
    code = main(
        ["estimate", "--run", "RUN", "--view", "1", "--init-from-gt", "--out", str(tmp_path / "x")]
        + ["--pose-format", "colmap,ply"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "--pose-format colmap,ply: unknown pose format ply" in err, err


def test_benchmark_writes_every_trial_pose(moved_run, tmp_path):
    out = tmp_path / "bench"
    argv = ["benchmark", "pose", "--run", "RUN", "--images", "1", "--trials", "2", "--sampling", "random"]
    argv += ["--steps", "4", "--checkpoints", "4", "--rays", "32", "--no-uncertainty", "--quiet"]
    assert main(argv + ["--pose-format", "colmap,tum", "--out", str(out)]) == 0
    trials = json.loads((out / "results.json").read_text())["trials"]
    rec = read_poses(out / "poses" / "colmap" / "images.txt", "colmap")
    assert rec.names == [f"random_r_{t['view']}_trial{t['trial']}.png" for t in trials]
    final = TRANSFORM.c2w_to_original(torch.tensor([t["final_c2w"] for t in trials], dtype=torch.float64))
    torch.testing.assert_close(rec.c2w, final, atol=1e-6, rtol=0)
    assert rec.intrinsics[0].fx == pytest.approx(FOCAL)
