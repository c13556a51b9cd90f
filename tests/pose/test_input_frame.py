"""Pose files given in the user's original frame (``--input-frame original``) and ``inerf track`` through a
lens (``--intrinsics`` with distortion keys), on the analytic field of the fake run.

The fake run's data is given a recorded move of the kind the COLMAP and nerfstudio loaders make (the
capture's world centred, turned and scaled by 0.27 into the training frame): a ground truth or start given in
that original frame must give exactly the estimate and the errors of the same pose given in the training
frame, for one image, a batch (a COLMAP ``images.txt`` as ``--gt-poses``) and a tracked sequence.
"""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from pose_scene import FOCAL, H, W, orbit_poses, perturb

from inerf.cli.main import main
from inerf.data.views import SceneTransform
from inerf.geometry import se3
from inerf.geometry.formats import PinholeIntrinsics, write_poses
from inerf.pose.io import pose_to_json
from inerf.viz.overlay import to_uint8

# Original -> training: turned 40 degrees about an oblique axis, scaled by 0.27, shifted (a COLMAP world
# in its own units, centred and scaled by the loader).
_AXIS = torch.tensor([0.2, -0.6, 0.77], dtype=torch.float64)
MOVE = SceneTransform(
    0.27,
    tuple(
        map(tuple, se3.axis_angle_to_matrix(_AXIS / _AXIS.norm(), torch.tensor(math.radians(40.0))).tolist())
    ),
    (0.4, -0.25, 0.1),
    original="COLMAP world of a capture",
)
FLAGS = ["--steps", "6", "--rays", "64", "--frames", "0", "--no-uncertainty", "--quiet"]
TRACK_FLAGS = ["--steps", "4", "--rays", "128", "--recover-steps", "8", "--no-video", "--quiet"]


@pytest.fixture()
def moved_run(fake_run):
    """The fake run, its data recorded as moved by :data:`MOVE` (what ``run_scene_transform`` returns)."""
    fake_run.dataset.views.transform = MOVE
    return fake_run


def _k(path, **lens):
    path.write_text(
        json.dumps({"fl_x": FOCAL, "fl_y": FOCAL, "cx": W / 2, "cy": H / 2, "w": W, "h": H, **lens})
    )
    return path


def _pose_file(path, c2w):
    path.write_text(json.dumps({"c2w": pose_to_json(c2w)}))
    return str(path)


def _one_image(tmp_path, views, i: int) -> list[str]:
    """``inerf estimate`` of view ``i`` of the fake run saved as a PNG, with its intrinsics file."""
    Image.fromarray(to_uint8(views.images[i])).save(tmp_path / "t.png")
    return [
        "estimate",
        "--run",
        "RUN",
        "--image",
        str(tmp_path / "t.png"),
        "--intrinsics",
        str(_k(tmp_path / "k.json")),
    ]


def test_estimate_with_poses_in_the_original_frame(tmp_path, moved_run):
    views = moved_run.dataset.views
    gt = views.cameras.c2w[1].double()
    init = perturb(gt, 8.0, 0.04)
    base = _one_image(tmp_path, views, 1)
    poses = {}
    for frame, to_file in (("training", lambda c: c), ("original", MOVE.c2w_to_original)):
        files = ["--gt", _pose_file(tmp_path / f"gt_{frame}.json", to_file(gt))]
        files += ["--init", _pose_file(tmp_path / f"init_{frame}.json", to_file(init))]
        out = tmp_path / frame
        assert main(base + files + ["--input-frame", frame, *FLAGS, "--out", str(out)]) == 0
        poses[frame] = json.loads((out / "pose.json").read_text())
    # The original-frame files differ from the training-frame ones by metres, yet the solve is the same.
    assert float(se3.translation_error(MOVE.c2w_to_original(gt), gt)) > 1.0
    t, o = poses["training"], poses["original"]
    # The same solve: the start differs in the 7th digit (the solver works in float32 after the move).
    torch.testing.assert_close(torch.tensor(o["c2w"]), torch.tensor(t["c2w"]), atol=1e-5, rtol=0)
    for key in (
        "rotation_error_deg",
        "translation_error",
        "init_rotation_error_deg",
        "init_translation_error",
    ):
        assert o[key] == pytest.approx(t[key], rel=1e-4, abs=1e-5), key
    assert t["init_rotation_error_deg"] == pytest.approx(8.0, abs=1e-6)
    assert o["input_frame"] == "original: COLMAP world of a capture" and "input_frame" not in t
    # The estimate also comes back in the original frame, next to the ground truth given there.
    back = torch.tensor(o["original"]["c2w"], dtype=torch.float64)
    assert float(se3.rotation_error_deg(back, MOVE.c2w_to_original(gt))) == pytest.approx(
        o["rotation_error_deg"], rel=1e-4, abs=1e-5
    )


def test_batch_ground_truth_as_the_colmap_images_txt_of_the_capture(tmp_path, moved_run):
    views = moved_run.dataset.views
    names = [f"img_{i}.png" for i in range(3)]
    (tmp_path / "photos").mkdir()
    for i, name in enumerate(names):
        Image.fromarray(to_uint8(views.images[i])).save(tmp_path / "photos" / name)
    gt = views.cameras.c2w[:3].double()
    write_poses(tmp_path / "gt.tum", gt, "tum")  # training frame, by order
    write_poses(  # the user's own COLMAP model: original frame, by name, in another order
        tmp_path / "images.txt",
        MOVE.c2w_to_original(gt.flip(0)),
        "colmap",
        names=names[::-1],
        intrinsics=PinholeIntrinsics(FOCAL, FOCAL, W / 2, H / 2, W, H),
    )
    base = [
        "estimate",
        "--run",
        "RUN",
        "--images",
        str(tmp_path / "photos"),
        "--intrinsics",
        str(_k(tmp_path / "k.json")),
    ]
    base += ["--init-from-gt", "--perturb-rot", "4", *FLAGS]
    rows = {}
    for frame, gt_file in (("training", "gt.tum"), ("original", "images.txt")):
        out = tmp_path / frame
        argv = base + ["--gt-poses", str(tmp_path / gt_file), "--input-frame", frame, "--out", str(out)]
        assert main(argv) == 0
        rows[frame] = list(csv.DictReader((out / "summary.csv").open()))
    for t, o in zip(rows["training"], rows["original"], strict=True):
        assert o["image"] == t["image"]
        for key in ("rot_err_deg", "trans_err", "init_rot_err_deg", "tx", "qw"):
            assert float(o[key]) == pytest.approx(float(t[key]), rel=1e-4, abs=1e-5), key
        assert float(t["init_rot_err_deg"]) == pytest.approx(4.0, abs=1e-4)


def _distorted_render(field, render_config, c2w, coeffs) -> np.ndarray:
    """What an OpenCV ``radtan`` camera (``k1, k2, p1, p2``; the pinhole part of :func:`_k`) sees of the
    analytic ``field`` from ``c2w``: each pixel's ray is the lens model inverted (OpenCV, to 1e-12)."""
    from inerf.rays.rays import rays_from_pixels
    from inerf.render.renderer import render_rays

    j, i = np.mgrid[0:H, 0:W].astype(np.float64)
    pts = np.stack([(i + 0.5 - W / 2) / FOCAL, (j + 0.5 - H / 2) / FOCAL], -1).reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-12)
    und = cv2.undistortPoints(pts, np.eye(3), np.array(coeffs), criteria=crit).reshape(-1, 2)
    uv = torch.from_numpy(und * FOCAL + np.array([W / 2, H / 2]))  # the ideal pinhole's image coordinates
    rays = rays_from_pixels(uv.float(), c2w.float(), FOCAL, FOCAL, W / 2, H / 2, centered=False)
    with torch.no_grad():
        rgb = render_rays(field, rays, render_config).rgb
    return to_uint8(rgb.reshape(H, W, 3))


def test_track_reads_the_original_frame_and_undistorts_every_frame(tmp_path, moved_run, field, render_config):
    """Five frames 3 degrees apart through a barrel lens (k1 = -0.25: 3 pixels at the corners of the 48-pixel
    frame). With the lens in --intrinsics every frame is undistorted as ``inerf estimate`` undistorts one
    image (each becomes the pinhole render of the undistorted camera), and tracked; --gt in the original
    frame gives the errors of --gt in the training frame."""
    from inerf.cli.pose_options import camera_source
    from inerf.geometry.cameras import Cameras
    from inerf.pose.track_io import iter_frames
    from inerf.render.renderer import render_image

    coeffs = {"k1": -0.25, "k2": 0.05, "p1": 0.001, "p2": -0.001}
    poses = orbit_poses(120, elevation_deg=20.0)[:5]
    (tmp_path / "seq").mkdir()
    for k, c2w in enumerate(poses):
        frame = _distorted_render(field, render_config, c2w, list(coeffs.values()))
        Image.fromarray(frame).save(tmp_path / "seq" / f"f_{k}.png")
    lens = _k(tmp_path / "lens.json", camera_model="OPENCV", **coeffs)

    # What the tracker is fed: every frame resampled into the pinhole camera of the undistortion.
    flags = type("Args", (), {"intrinsics": str(lens), "fx": None, "fy": None, "cx": None, "cy": None})
    frames = list(iter_frames(tmp_path / "seq", camera_source(flags), render_config.background, "cpu"))
    camera = frames[0].target.camera
    assert camera.intrinsics(0)[0] != pytest.approx(FOCAL, rel=1e-3)  # the pinhole of the undistortion
    raw_k = Cameras.from_intrinsics(FOCAL, FOCAL, W / 2, H / 2, H, W)
    for f, c2w in zip(frames, poses, strict=True):
        ideal = render_image(field, camera.with_c2w(c2w.float()), render_config).rgb
        as_pinhole = render_image(field, raw_k.with_c2w(c2w.float()), render_config).rgb
        seen = torch.from_numpy(np.asarray(Image.open(tmp_path / "seq" / f.name), np.float32) / 255)
        # Interior pixels (the border of the alpha = 0 undistortion is replicated): the undistorted frame is
        # the ideal render up to 8-bit and resampling error; the raw frame is 2.5x as far from the render of
        # its pinhole part (most pixels are the white background, alike in both).
        inner = (slice(4, -4), slice(4, -4))
        fed, raw = (
            float((f.target.image - ideal).abs()[inner].mean()),
            float((seen - as_pinhole).abs()[inner].mean()),
        )
        assert fed < 0.006 and raw > 2 * fed, (f.name, fed, raw)  # measured 0.0044-0.0046 and 0.011

    write_poses(tmp_path / "gt.tum", poses, "tum")
    write_poses(tmp_path / "gt_orig.tum", MOVE.c2w_to_original(poses), "tum")
    base = ["track", "--run", "RUN", "--images", str(tmp_path / "seq"), "--intrinsics", str(lens)]
    base += ["--init-from-gt", *TRACK_FLAGS]
    docs = {}
    for frame, gt in (("training", "gt.tum"), ("original", "gt_orig.tum")):
        argv = base + ["--gt", str(tmp_path / gt), "--input-frame", frame, "--out", str(tmp_path / frame)]
        assert main(argv) == 0
        docs[frame] = json.loads((tmp_path / frame / "trajectory.json").read_text())
    assert docs["training"]["undistorted"]["kind"] == "radtan"
    err = {n: [f["rotation_error_deg"] for f in d["frames"]] for n, d in docs.items()}
    trans = {n: [f["translation_error"] for f in d["frames"]] for n, d in docs.items()}
    print(f"\nrotation error per frame: {err}\ntranslation: {trans}")
    assert max(err["training"]) < 1.0 and max(trans["training"]) < 0.05, (err, trans)
    np.testing.assert_allclose(err["original"], err["training"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(trans["original"], trans["training"], rtol=1e-4, atol=1e-5)
    assert docs["original"]["input_frame"] == "original"


def test_original_input_frame_without_a_recorded_frame_is_one_line(tmp_path, fake_run, monkeypatch, capsys):
    import inerf.cli.estimate as estimate_cli

    monkeypatch.setattr(estimate_cli, "run_scene_transform", lambda *a, **k: None)
    views = fake_run.dataset.views
    argv = _one_image(tmp_path, views, 0)
    argv += [
        "--init",
        _pose_file(tmp_path / "i.json", views.cameras.c2w[0].double()),
        "--input-frame",
        "original",
    ]
    assert main(argv + [*FLAGS, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--input-frame original: the run RUN recorded no original frame" in err[0], err
    assert not (tmp_path / "o").exists()
