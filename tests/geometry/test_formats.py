"""Pose formats: hand-computed values, write/read round trips, and the formats' own readers (pycolmap for
COLMAP, evo for TUM/KITTI) reading what we write."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from inerf.errors import InerfError
from inerf.geometry import se3
from inerf.geometry.conventions import opencv_to_opengl_c2w
from inerf.geometry.formats import (
    POSE_FORMATS,
    PinholeIntrinsics,
    colmap_image_line,
    kitti_line,
    matrix_to_quaternion,
    parse_colmap_image_line,
    parse_kitti_line,
    parse_tum_line,
    pose_json_entry,
    quaternion_to_matrix,
    read_nerfstudio_camera_path,
    read_poses,
    tum_line,
    write_nerfstudio_camera_path,
    write_poses,
)


def random_c2w(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xi = torch.randn(n, 6, generator=g, dtype=torch.float64) * torch.tensor([2.0, 2, 2, 1, 1, 1])
    return se3.se3_exp(xi)


# A camera at (1, 2, 3) turned 90 degrees about world z (its x axis points along world +y).
C2W_HAND = torch.tensor(
    [[0.0, -1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 0.0, 1.0]],
    dtype=torch.float64,
)


def test_quaternion_hand_values_and_round_trip():
    # 90 degrees about z: q = (cos 45, 0, 0, sin 45).
    q = matrix_to_quaternion(C2W_HAND[:3, :3].numpy())
    np.testing.assert_allclose(q, [math.sqrt(0.5), 0, 0, math.sqrt(0.5)], atol=1e-15)
    # 180 degrees about x (w = 0: Shepperd's x pivot) and the identity.
    np.testing.assert_allclose(matrix_to_quaternion(np.diag([1.0, -1.0, -1.0])), [0, 1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(matrix_to_quaternion(np.eye(3)), [1, 0, 0, 0])
    R = random_c2w(200)[:, :3, :3].numpy()
    q = matrix_to_quaternion(R)
    assert (q[:, 0] >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-14)
    np.testing.assert_allclose(quaternion_to_matrix(q), R, atol=1e-14)
    # -q is the same rotation.
    np.testing.assert_allclose(quaternion_to_matrix(-q), R, atol=1e-14)


def test_quaternion_matches_pycolmap():
    pycolmap = pytest.importorskip("pycolmap", reason="pycolmap not installed (pip install 'inerf[capture]')")
    R = random_c2w(20, seed=1)[:, :3, :3].numpy()
    for r, q in zip(R, matrix_to_quaternion(R), strict=True):
        xyzw = pycolmap.Rotation3d(r).quat  # pycolmap stores (x, y, z, w)
        ours = np.array([q[1], q[2], q[3], q[0]])
        assert min(np.abs(ours - xyzw).max(), np.abs(ours + xyzw).max()) < 1e-12


def test_line_formats_hand_values():
    # COLMAP stores w2c: R^T (a -90 degree turn about z) and t = -R^T c.
    line = colmap_image_line(C2W_HAND, 7, 3, "a.png")
    parts = line.split()
    assert parts[0] == "7" and parts[8:] == ["3", "a.png"]
    np.testing.assert_allclose(
        [float(v) for v in parts[1:5]], [math.sqrt(0.5), 0, 0, -math.sqrt(0.5)], atol=1e-15
    )
    np.testing.assert_allclose([float(v) for v in parts[5:8]], [-2.0, 1.0, -3.0], atol=1e-15)
    # TUM: position then (qx, qy, qz, qw) of the c2w rotation.
    v = [float(x) for x in tum_line(C2W_HAND, 1.5).split()]
    np.testing.assert_allclose(v, [1.5, 1, 2, 3, 0, 0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-15)
    # KITTI: the 3x4 c2w row-major.
    assert [float(x) for x in kitti_line(C2W_HAND).split()] == C2W_HAND[:3].reshape(-1).tolist()


@pytest.mark.parametrize("kind", ["colmap", "tum", "kitti"])
def test_line_round_trips(kind):
    for c2w in random_c2w(10, seed=2):
        if kind == "colmap":
            _, back, _, _ = parse_colmap_image_line(colmap_image_line(c2w, 1, 1, "x.png"))
        elif kind == "tum":
            _, back = parse_tum_line(tum_line(c2w, 0.0))
        else:
            back = parse_kitti_line(kitti_line(c2w))
        np.testing.assert_allclose(back, c2w.numpy(), atol=1e-12)


@pytest.mark.parametrize("fmt", POSE_FORMATS)
def test_file_round_trip(tmp_path, fmt):
    c2w = random_c2w(5, seed=3)
    names = [f"img_{i}.png" for i in range(5)]
    k = PinholeIntrinsics(100.0, 101.0, 32.0, 24.5, 64, 48)
    path = tmp_path / ("images.txt" if fmt == "colmap" else f"poses.{fmt}")
    write_poses(path, c2w, fmt, names=names, timestamps=np.arange(5) * 0.1, intrinsics=k, frame="test frame")
    back = read_poses(path, fmt)
    torch.testing.assert_close(back.c2w, c2w, atol=1e-12, rtol=0)
    if fmt in ("opencv", "opengl", "nerfstudio", "colmap"):
        assert back.names == names
    if fmt in ("nerfstudio", "colmap"):
        assert back.intrinsics == [k] * 5
    if fmt == "tum":
        torch.testing.assert_close(back.timestamps, torch.arange(5, dtype=torch.float64) * 0.1)


def test_opengl_and_nerfstudio_files_hold_opengl_axes(tmp_path):
    c2w = random_c2w(2, seed=4)
    write_poses(tmp_path / "gl.json", c2w, "opengl")
    write_poses(tmp_path / "ns.json", c2w, "nerfstudio")
    gl = opencv_to_opengl_c2w(c2w)
    doc = json.loads((tmp_path / "gl.json").read_text())
    assert doc["convention"] == "opengl_c2w"
    np.testing.assert_array_equal(np.array([p["c2w"] for p in doc["poses"]]), gl.numpy())
    ns = json.loads((tmp_path / "ns.json").read_text())
    np.testing.assert_array_equal(np.array([f["transform_matrix"] for f in ns["frames"]]), gl.numpy())


def test_colmap_model_read_by_pycolmap(tmp_path):
    """What we write is a COLMAP text model: pycolmap opens it and finds our poses and intrinsics."""
    pycolmap = pytest.importorskip("pycolmap", reason="pycolmap not installed (pip install 'inerf[capture]')")
    c2w = random_c2w(4, seed=5)
    k0 = PinholeIntrinsics(100.0, 101.0, 32.0, 24.5, 64, 48)
    k1 = PinholeIntrinsics(90.0, 90.0, 32.0, 24.0, 64, 48)
    names = ["a.png", "b.png", "c.png", "d.png"]
    write_poses(tmp_path / "images.txt", c2w, "colmap", names=names, intrinsics=[k0, k0, k1, k1])
    rec = pycolmap.Reconstruction(str(tmp_path))
    assert rec.num_reg_images() == 4 and rec.num_cameras() == 2
    for i, name in enumerate(names):
        im = rec.find_image_with_name(name)
        w2c = np.eye(4)
        w2c[:3] = im.cam_from_world().matrix()
        np.testing.assert_allclose(np.linalg.inv(w2c), c2w[i].numpy(), atol=1e-12)
        cam = rec.cameras[im.camera_id]
        k = (k0, k0, k1, k1)[i]
        assert cam.model.name == "PINHOLE" and (cam.width, cam.height) == (64, 48)
        np.testing.assert_allclose(cam.params, [k.fx, k.fy, k.cx, k.cy])


@pytest.mark.parametrize("fmt", ["tum", "kitti"])
def test_evo_reads_tum_and_kitti(tmp_path, fmt):
    file_interface = pytest.importorskip(
        "evo.tools.file_interface", reason="evo not installed (pip install evo; it is in the test extra)"
    )
    c2w = random_c2w(6, seed=6)
    path = tmp_path / f"traj.{fmt}"
    write_poses(path, c2w, fmt, timestamps=np.linspace(10.0, 10.5, 6))
    if fmt == "tum":
        traj = file_interface.read_tum_trajectory_file(str(path))
        np.testing.assert_allclose(traj.timestamps, np.linspace(10.0, 10.5, 6))
    else:
        traj = file_interface.read_kitti_poses_file(str(path))
    np.testing.assert_allclose(np.stack(traj.poses_se3), c2w.numpy(), atol=1e-12)


def test_nerfstudio_camera_path(tmp_path):
    c2w = random_c2w(3, seed=7)
    k = PinholeIntrinsics(120.0, 120.0, 40.0, 30.0, 80, 60)
    path = write_nerfstudio_camera_path(tmp_path / "path.json", c2w, k, fps=10)
    doc = json.loads(path.read_text())
    assert doc["render_width"] == 80 and doc["render_height"] == 60 and doc["seconds"] == 0.3
    entry = doc["camera_path"][0]
    # Vertical field of view in degrees: 2 atan(30 / 120).
    assert entry["fov"] == pytest.approx(math.degrees(2 * math.atan(30 / 120)))
    np.testing.assert_array_equal(
        np.array(entry["camera_to_world"]).reshape(4, 4), opencv_to_opengl_c2w(c2w[0])
    )
    back = read_nerfstudio_camera_path(path)
    torch.testing.assert_close(back.c2w, c2w, atol=1e-12, rtol=0)
    assert back.intrinsics[0].fy == pytest.approx(120.0)


def test_pose_json_entry_states_both_conventions():
    e = pose_json_entry(C2W_HAND, frame="original (COLMAP world)")
    assert e["convention"] == "opencv_c2w" and e["frame"] == "original (COLMAP world)"
    assert e["c2w"] == C2W_HAND.tolist()
    assert e["c2w_opengl"] == opencv_to_opengl_c2w(C2W_HAND).tolist()


def test_bad_files(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1 2 3\n")
    with pytest.raises(InerfError, match=r"bad.txt, line 1: expected 8 numbers"):
        read_poses(bad, "tum")
    with pytest.raises(InerfError, match=r"bad.txt, line 1: expected 12 numbers"):
        read_poses(bad, "kitti")
    bad.write_text("1 1 0 0 0 0 0 0 1\n")  # 9 fields: no name
    with pytest.raises(InerfError, match=r"bad.txt, line 1: expected 'IMAGE_ID"):
        read_poses(bad, "colmap")
    bad.write_text("# nothing\n")
    with pytest.raises(InerfError, match="no poses"):
        read_poses(bad, "kitti")
    not_rigid = "2 0 0 0 0 1 0 0 0 0 1 0"  # a scaled rotation
    bad.write_text(not_rigid + "\n")
    with pytest.raises(InerfError, match="not a rigid transform"):
        read_poses(bad, "kitti")
    with pytest.raises(InerfError, match="unknown pose format 'euler'"):
        write_poses(tmp_path / "x", random_c2w(1), "euler")
    with pytest.raises(InerfError, match="file not found"):
        read_poses(tmp_path / "missing.txt", "tum")
