"""COLMAP loader on tiny sparse models written here in COLMAP's text layout (and converted to .bin by
pycolmap), with poses, intrinsics, normalisation and ray bounds checked against values computed by hand."""

from __future__ import annotations

import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from distortion_helpers import checker_error, distorted_checker

from inerf.data import detect_format, load_colmap, load_dataset
from inerf.data.undistort import camera_from_params
from inerf.errors import InerfError

pycolmap = pytest.importorskip("pycolmap", reason="pycolmap not installed (pip install 'inerf[capture]')")

H, W = 12, 16
S = math.sqrt(0.5)
# World-to-camera (qw qx qy qz, t) of the images, and the camera centres they put where (by hand):
#   a.png: identity rotation, t = (0, 0, 4)      -> centre (0, 0, -4), looks along world +z;
#   b.png: 90 degrees about y, t = (0, 0, 4)    -> R = [[0,0,1],[0,1,0],[-1,0,0]], centre -R^T t = (4, 0, 0),
#                                                  looks along world -x (at the origin);
#   c.png: identity rotation, t = (0, 0, 5)      -> centre (0, 0, -5).
POSES = {
    "a.png": ((1, 0, 0, 0), (0, 0, 4)),
    "b.png": ((S, 0, S, 0), (0, 0, 4)),
    "c.png": ((1, 0, 0, 0), (0, 0, 5)),
}
CENTRES = {"a.png": (0, 0, -4), "b.png": (4, 0, 0), "c.png": (0, 0, -5)}
# 27 points on the grid {-1, 0, 1}^3, seen by every image.
POINTS = np.array([[x, y, z] for x in (-1, 0, 1) for y in (-1, 0, 1) for z in (-1, 0, 1)], dtype=np.float64)


def _w2c(q, t) -> np.ndarray:
    w, x, y, z = q
    R = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = R, t
    return m


def write_model(root, cameras: str = "1 PINHOLE 16 12 20 21 8 6\n", camera_of=None, names=None, images=True):
    """A COLMAP text model in ``root/sparse/0`` and its images in ``root/images``."""
    names = names if names is not None else list(POSES)
    camera_of = camera_of or {}
    model = root / "sparse" / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text("# Camera list\n" + cameras)
    lines = ["# Image list"]
    for k, name in enumerate(names, start=1):
        q, t = POSES[name]
        w2c = _w2c(q, t)
        cam = (w2c[:3, :3] @ POINTS.T).T + w2c[:3, 3]
        uv = 20 * cam[:, :2] / cam[:, 2:] + 8  # rough projections: the loader only uses the point ids
        obs = " ".join(f"{u:.3f} {v:.3f} {pid}" for pid, (u, v) in enumerate(uv, start=1))
        lines += [f"{k} {' '.join(map(str, q))} {' '.join(map(str, t))} {camera_of.get(name, 1)} {name}", obs]
    (model / "images.txt").write_text("\n".join(lines) + "\n")
    pts = []
    for pid, p in enumerate(POINTS, start=1):
        track = " ".join(f"{k} {pid - 1}" for k in range(1, len(names) + 1))
        pts.append(f"{pid} {p[0]} {p[1]} {p[2]} 128 128 128 0.5 {track}")
    (model / "points3D.txt").write_text("# 3D point list\n" + "\n".join(pts) + "\n")
    if images:
        (root / "images").mkdir()
        for k, name in enumerate(names):
            iio.imwrite(root / "images" / name, np.full((H, W, 3), 50 + 60 * k, np.uint8))
    return root


def test_poses_intrinsics_normalisation_and_bounds(tmp_path):
    root = write_model(tmp_path / "scene")
    assert detect_format(root) == "colmap"
    views = load_colmap(root, "all")
    assert views.names == ["images/a.png", "images/b.png", "images/c.png"] and views.alphas is None
    cams = views.cameras
    assert (cams.height, cams.width) == (H, W)
    for attr, v in (("fx", 20.0), ("fy", 21.0), ("cx", 8.0), ("cy", 6.0)):
        torch.testing.assert_close(getattr(cams, attr), torch.full((3,), v))
    # Scene box: camera centres (0,0,-4), (4,0,0), (0,0,-5) and the points' box [-1, 1]^3 ->
    # x [-1, 4], y [-1, 1], z [-5, 1]; longest side 6 -> scale 2/6; centre (1.5, 0, -2).
    s = 1 / 3
    tf = views.transform
    assert tf.scale == pytest.approx(s)
    np.testing.assert_allclose(tf.translation, [-1.5 * s, 0, 2 * s], atol=1e-12)
    expected = torch.tensor([[(c[0] - 1.5) * s, c[1] * s, (c[2] + 2) * s] for c in CENTRES.values()])
    torch.testing.assert_close(cams.c2w[:, :3, 3], expected)
    # Rotations: the inverse of COLMAP's w2c rotations, OpenCV axes kept (b looks along world -x).
    torch.testing.assert_close(cams.c2w[1, :3, 2], torch.tensor([-1.0, 0.0, 0.0]))
    torch.testing.assert_close(cams.c2w[0, :3, :3], torch.eye(3))
    # Back in COLMAP's world: the inverse of each w2c.
    back = views.c2w_to_original(cams.c2w.double())
    for k, (q, t) in enumerate(POSES.values()):
        torch.testing.assert_close(back[k], torch.from_numpy(np.linalg.inv(_w2c(q, t))), atol=1e-6, rtol=0)
    torch.testing.assert_close(views.bounds, torch.tensor([[-5 / 6, -1 / 3, -1.0], [5 / 6, 1 / 3, 1.0]]))
    # Depths of the points: a sees z + 4 in {3, 4, 5}, b sees 4 - x in {3, 4, 5}, c sees z + 5 in {4, 5, 6}.
    # near = 0.9 x smallest 1st percentile (3), far = 1.1 x largest 99th percentile (6), in training units.
    assert views.near == pytest.approx(0.9 * 3 * s)
    assert views.far == pytest.approx(1.1 * 6 * s)


def test_binary_model_and_splits(tmp_path):
    text_root = write_model(tmp_path / "text")
    rec = pycolmap.Reconstruction(str(text_root / "sparse" / "0"))
    bin_root = tmp_path / "bin"
    (bin_root / "sparse" / "0").mkdir(parents=True)
    rec.write_binary(str(bin_root / "sparse" / "0"))
    (bin_root / "images").symlink_to(text_root / "images")
    assert sorted(p.suffix for p in (bin_root / "sparse" / "0").iterdir()) == [".bin"] * 5
    a, b = load_dataset(text_root, "all"), load_dataset(bin_root, "all")
    torch.testing.assert_close(a.cameras.c2w, b.cameras.c2w)
    assert (a.near, a.far) == (b.near, b.far) and torch.equal(a.transform.matrix(), b.transform.matrix())
    # LLFF's hold-out rule on the sorted names: a is held out.
    assert load_colmap(bin_root, "test").names == ["images/a.png"]
    assert load_colmap(bin_root, "train").names == ["images/b.png", "images/c.png"]
    assert load_colmap(bin_root, "train", normalize=False).transform.is_identity()


def test_camera_models_map_to_opencv():
    K, d = camera_from_params("SIMPLE_RADIAL", [100, 50, 40, -0.1], "x")
    assert (K.fx, K.fy, K.cx, K.cy, d.kind, d.coeffs) == (100, 100, 50, 40, "radtan", (-0.1, 0, 0, 0))
    K, d = camera_from_params("RADIAL", [100, 50, 40, -0.1, 0.02], "x")
    assert d.coeffs == (-0.1, 0.02, 0, 0)
    K, d = camera_from_params("OPENCV", [100, 90, 50, 40, -0.1, 0.02, 0.001, 0.002], "x")
    assert (K.fy, d.coeffs) == (90, (-0.1, 0.02, 0.001, 0.002))
    K, d = camera_from_params("SIMPLE_PINHOLE", [100, 50, 40], "x")
    assert d.is_none and K.fy == 100
    with pytest.raises(InerfError, match="x: unsupported camera model 'FOV'"):
        camera_from_params("FOV", [1, 2, 3, 4, 5], "x")
    with pytest.raises(InerfError, match="needs 4 parameters"):
        camera_from_params("PINHOLE", [1, 2, 3], "x")


@pytest.mark.parametrize(
    ("model", "params", "coeffs"),
    [
        ("SIMPLE_RADIAL", [100, 81, 59, -0.2], (-0.2, 0, 0, 0)),
        ("RADIAL", [100, 81, 59, -0.2, 0.05], (-0.2, 0.05, 0, 0)),
        ("OPENCV", [100, 104, 81, 59, -0.25, 0.06, 0.002, -0.003], (-0.25, 0.06, 0.002, -0.003)),
    ],
)
def test_distorted_cameras_are_undistorted(tmp_path, model, params, coeffs):
    fx, fy = params[0], params[1] if model == "OPENCV" else params[0]
    cx, cy = (params[2], params[3]) if model == "OPENCV" else (params[1], params[2])
    root = write_model(
        tmp_path / model, cameras=f"1 {model} 160 120 {' '.join(map(str, params))}\n", images=False
    )
    (root / "images").mkdir()
    img = distorted_checker(160, 120, fx, fy, cx, cy, False, coeffs)
    for name in POSES:
        iio.imwrite(root / "images" / name, img)
    views = load_colmap(root, "all")
    c = views.cameras
    err = checker_error(
        views.images[0, ..., 0].numpy(), c.fx[0].item(), c.fy[0].item(), c.cx[0].item(), c.cy[0].item()
    )
    assert err.mean() < 0.005 and np.percentile(err, 99) < 0.02, (err.mean(), np.percentile(err, 99))


def test_images_downscaled_on_disk(tmp_path):
    root = write_model(tmp_path / "scene")
    (root / "images_2").mkdir()
    for name in POSES:
        iio.imwrite(root / "images_2" / name, np.zeros((H // 2, W // 2, 3), np.uint8))
    views = load_colmap(root, "all", scale=0.5)
    assert views.images.shape == (3, H // 2, W // 2, 3)
    torch.testing.assert_close(views.cameras.fx, torch.full((3,), 10.0))
    torch.testing.assert_close(views.cameras.cx, torch.full((3,), 4.0))
    assert views.names[0] == "images_2/a.png"


def test_no_registered_images(tmp_path):
    root = write_model(tmp_path / "scene", names=[])
    with pytest.raises(InerfError, match=r"sparse/0: the COLMAP model has no registered images") as e:
        load_colmap(root)
    assert "\n" not in str(e.value)


def test_bad_models(tmp_path):
    root = write_model(tmp_path / "missing", images=False)
    (root / "images").mkdir()
    with pytest.raises(InerfError, match=r"sparse/0: image 'b.png' of the model not found in .*images"):
        load_colmap(root)
    root = write_model(tmp_path / "fov", cameras="1 FOV 16 12 20 21 8 6 0.1\n")
    with pytest.raises(InerfError, match=r"sparse/0: camera of b.png: unsupported camera model 'FOV'"):
        load_colmap(root)
    root = write_model(tmp_path / "corrupt")
    (root / "sparse" / "0" / "cameras.txt").write_text("1 PINHOLE sixteen 12 20 21 8 6\n")
    with pytest.raises(InerfError, match=r"sparse/0: cannot read the COLMAP model") as e:
        load_colmap(root)
    assert "\n" not in str(e.value)


def test_bad_captures_through_the_cli_are_one_line(tmp_path, capsys):
    """The loaders' errors reach the user as one line naming the file: `inerf train` on a transforms.json with
    no intrinsics, an unknown camera model, missing frame images, and a COLMAP model with nothing registered
    (frame 1: the train split's first, every 8th frame from 0 being held out)."""
    import json

    from inerf.cli.main import main

    def capture(name, meta, with_images=True):
        root = tmp_path / name
        (root / "images").mkdir(parents=True)
        frames = [{"file_path": f"images/{k}.png", "transform_matrix": np.eye(4).tolist()} for k in range(2)]
        for f in frames if with_images else []:
            iio.imwrite(root / f["file_path"], np.zeros((6, 8, 3), np.uint8))
        (root / "transforms.json").write_text(json.dumps({**meta, "frames": frames}))
        return root

    pinhole = {"fl_x": 10.0, "fl_y": 10.0, "w": 8, "h": 6}
    cases = [
        (capture("no_k", {"camera_model": "PINHOLE"}), "transforms.json: frame 1: no intrinsics"),
        (
            capture("model", {**pinhole, "camera_model": "FOV"}),
            "transforms.json: frame 1: unknown camera_model 'FOV'",
        ),
        (capture("noimg", pinhole, with_images=False), "transforms.json: frame 1: image not found"),
        (write_model(tmp_path / "empty", names=[]), "sparse/0: the COLMAP model has no registered images"),
    ]
    for root, match in cases:
        code = main(
            ["train", "--data", str(root), "--out", str(tmp_path / "run"), "--model", "grid", "--quiet"]
        )
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err and err.startswith("inerf train: error:"), err
        assert match in err and str(root) in err, err
