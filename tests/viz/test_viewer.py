"""``inerf view`` (viser): the scene it builds from a run, an estimate and a track, the page loaded in a real
headless browser (Debian's chromium, ``make chromium``), and the verb serving until Ctrl-C.

The run is real but tiny: a Blender-layout dataset of 6 views written here, a checkpoint of an untrained
NeRF, the folder ``inerf estimate`` (3 hypotheses) writes for it, and a 3-frame track written by ``inerf
track``'s writer.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from inerf.cli.main import main

viser = pytest.importorskip(
    "viser", reason="viser not installed (pip install 'inerf[view]'; it is in the test extra)"
)

SIZE, N_VIEWS, RADIUS = 32, 6, 4.0
CAMERA_ANGLE_X = 0.8


def look_at_gl(eye) -> list[list[float]]:
    """OpenGL c2w (Blender's camera axes) at ``eye`` looking at the origin, z up."""
    eye = np.asarray(eye, float)
    back = eye / np.linalg.norm(eye)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, up, back, eye
    return c2w.tolist()


@pytest.fixture(scope="module")
def viewed(tmp_path_factory):
    """``(run, estimate_out, track_out, base)``: a run with data, an estimate and a track of it."""
    from inerf.fields.factory import build_field, field_config_dict
    from inerf.render.renderer import RenderConfig
    from inerf.train.checkpoint import RUN_FORMAT, RUN_VERSION, save_checkpoint

    base = tmp_path_factory.mktemp("view")
    data = base / "data"
    (data / "train").mkdir(parents=True)
    frames = []
    rng = np.random.default_rng(0)
    for k in range(N_VIEWS):
        az = 2 * math.pi * k / N_VIEWS
        eye = RADIUS * np.array([math.cos(az) * 0.87, math.sin(az) * 0.87, 0.5])
        iio.imwrite(data / "train" / f"r_{k}.png", rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8))
        frames.append({"file_path": f"./train/r_{k}", "transform_matrix": look_at_gl(eye)})
    (data / "transforms_train.json").write_text(
        json.dumps({"camera_angle_x": CAMERA_ANGLE_X, "frames": frames})
    )
    torch.manual_seed(0)
    coarse = build_field("nerf", {"depth": 2, "width": 16, "skip": 0, "pos_freqs": 2, "dir_freqs": 1})
    config = {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "model": "nerf",
        "field": field_config_dict(coarse),
        "fine_field": False,
        "render": RenderConfig(n_coarse=8, n_fine=0, near=2.0, far=6.0).__dict__,
        "step": 0,
        "dataset": {"root": str(data), "format": "blender", "scale": 1.0, "background": "white"}
        | {"near": 2.0, "far": 6.0},
    }
    save_checkpoint(base / "run", config, coarse)
    # An estimate (3 hypotheses: 3 paths in trace.json) and a 3-frame track, written by the verbs themselves.
    gt = torch.tensor(frames[1]["transform_matrix"])
    (base / "gt.json").write_text(json.dumps({"transform_matrix": gt.tolist()}))
    common = [
        "--run",
        str(base / "run"),
        "--intrinsics",
        str(data / "transforms_train.json"),
        "--device",
        "cpu",
    ]
    common += ["--steps", "3", "--rays", "16", "--quiet"]
    est = ["estimate", "--image", str(data / "train" / "r_1.png"), "--gt", str(base / "gt.json")]
    est += ["--init-from-gt", "--perturb-rot", "10", "--hypotheses", "3", "--frames", "0", "--no-uncertainty"]
    assert main(est + common + ["--out", str(base / "est")]) == 0
    write_track(base / "trk", [look_at_gl(RADIUS * np.array([0.87, 0.1 * k, 0.5])) for k in range(3)])
    return base / "run", base / "est", base / "trk", base


def write_track(out: Path, c2w_gl: list) -> None:
    """What ``inerf track`` writes for frames at these (OpenGL) poses, through its own writer."""
    from inerf.geometry.conventions import opengl_to_opencv_c2w
    from inerf.pose.config import PoseConfig
    from inerf.pose.track import TrackConfig, TrackFrame, TrackResult
    from inerf.pose.track_io import write_track_outputs

    c2w = opengl_to_opencv_c2w(torch.tensor(c2w_gl, dtype=torch.float64))
    frames = [TrackFrame(k, f"{k}.png", k / 30, c2w[k], c2w[k], 1e-3, 4, 0.1) for k in range(len(c2w))]
    out.mkdir()
    focal = 0.5 * SIZE / math.tan(CAMERA_ANGLE_X / 2)
    meta = {
        "intrinsics": {
            "fx": focal,
            "fy": focal,
            "cx": SIZE / 2,
            "cy": SIZE / 2,
            "width": SIZE,
            "height": SIZE,
        }
    }
    write_track_outputs(out, TrackResult(frames, TrackConfig(), PoseConfig(), PoseConfig()), meta=meta)


def test_scene_holds_cameras_estimate_paths_and_track(viewed):
    from inerf.geometry.formats import matrix_to_quaternion
    from inerf.view import load_scene
    from inerf.viz.viewer import build_scene

    run, est, trk, _ = viewed
    scene = load_scene(run, estimates=[est], track=trk)
    assert not scene.notes and len(scene.training) == N_VIEWS
    assert scene.training.thumbnails[0].shape == (SIZE, SIZE, 3)  # 32 px: below the 96 px thumbnail size
    # The training cameras as the loader gives them: OpenCV c2w, i.e. the file's OpenGL c2w with y, z flipped.
    gl = np.array(
        json.loads((run.parent / "data" / "transforms_train.json").read_text())["frames"][2][
            "transform_matrix"
        ]
    )
    np.testing.assert_allclose(scene.training.c2w[2], gl @ np.diag([1.0, -1.0, -1.0, 1.0]), atol=1e-6)
    (e,) = scene.estimates
    assert len(e.paths) == 3 and e.gt is not None and e.thumbnail.shape == (SIZE, SIZE, 3)
    np.testing.assert_allclose(
        e.paths[e.returned][-1], e.c2w[:3, 3], atol=1e-6
    )  # the path ends at the estimate
    assert scene.track.shape == (3, 4, 4) and scene.track_camera[1:] == (SIZE, SIZE)
    np.testing.assert_allclose(scene.up(), [0, 0, 1], atol=0.05)  # the cameras' up: the scene's z

    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        names = build_scene(server, scene)
        nodes = server.scene._handle_from_node_name  # viser's own record of the scene tree
        # Frustums are placed as the c2w says (viser's camera axes are OpenCV's, inerf's own).
        frustum = nodes["/training/0002"]
        np.testing.assert_allclose(frustum.position, scene.training.c2w[2][:3, 3], atol=1e-6)
        q = matrix_to_quaternion(scene.training.c2w[2][:3, :3])
        assert min(np.abs(frustum.wxyz - q).max(), np.abs(frustum.wxyz + q).max()) < 1e-6
        nodes = set(nodes)
    finally:
        server.stop()
    assert set(names) <= nodes
    assert [n for n in names if n.startswith("/training/")] == [f"/training/{i:04d}" for i in range(N_VIEWS)]
    assert {"/estimates/000/estimate", "/estimates/000/gt", "/estimates/000/start"} <= set(names)
    assert sum(n.startswith("/estimates/000/paths/") for n in names) == 3
    assert "/track/path" in names and sum(n.startswith("/track/frames/") for n in names) == 3


def chromium_screenshot(url: str, path: Path, profile: Path) -> None:
    """Load ``url`` in headless Chromium (software WebGL) and write a screenshot of the page to ``path``."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (make chromium; apt-get install chromium)")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader"]
    cmd += ["--enable-unsafe-swiftshader", f"--user-data-dir={profile}", "--window-size=800,600"]
    cmd += ["--virtual-time-budget=3000", f"--screenshot={path}", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0 and path.is_file(), proc.stderr[-2000:]


def hue_pixels(path: Path, rgb, tol_deg: float = 20.0) -> int:
    """Pixels of the screenshot's scene area (below the side panel and the notification, whose buttons are
    blue too; above the axes icon) of the hue of ``rgb`` within ``tol_deg``, saturation above 0.2. Hue, not
    RGB: the page shades and anti-aliases the lines (blue (40, 110, 255) is drawn as about (120, 160, 220))."""
    from matplotlib.colors import rgb_to_hsv

    hsv = rgb_to_hsv(iio.imread(path)[230:540, 70:730, :3] / 255.0)
    want = rgb_to_hsv(np.asarray(rgb, float) / 255.0)[0] * 360
    diff = np.abs((hsv[..., 0] * 360 - want + 180) % 360 - 180)
    return int(((diff < tol_deg) & (hsv[..., 1] > 0.2)).sum())


def test_cli_page_in_a_real_browser_and_ctrl_c(viewed, tmp_path):
    """`inerf view RUN --estimate E --track T --port 0` prints its URL; headless Chromium loads the page and
    shows the training cameras' blue and the estimate's orange; Ctrl-C (SIGINT) stops it cleanly."""
    from inerf.viz.viewer import COLOURS

    run, est, trk, _ = viewed
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "inerf.cli.main",
        "view",
        str(run),
        "--estimate",
        str(est),
        "--track",
        str(trk),
    ]
    proc = subprocess.Popen(
        cmd + ["--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    shot = tmp_path / "page.png"
    try:
        lines, url = [], None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "serving http://" in line:
                url = line.split("serving ", 1)[1].split()[0]
        assert url and url.startswith("http://localhost:"), "".join(lines)
        assert f"{N_VIEWS} training cameras, 1 estimate(s), a 3-frame track" in "".join(lines)
        assert "<html" in urllib.request.urlopen(url, timeout=10).read().decode("utf-8", "replace").lower()
        chromium_screenshot(url, shot, tmp_path / "profile")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + out
    assert "inerf view: stopped" in out and "Traceback" not in out
    # Measured: the scene area of the page without a scene holds none of these hues; this one ~2000 blue and
    # ~800 orange pixels (frustum lines 2 px wide).
    blue, orange = hue_pixels(shot, COLOURS["training"]), hue_pixels(shot, COLOURS["estimate"])
    assert blue > 300 and orange > 30, (blue, orange)
    assert iio.imread(shot)[..., :3].std() > 10  # not a blank page


def test_batch_folders_and_a_run_without_its_data(viewed, tmp_path):
    """A `--images` batch folder gives one estimate per row of summary.csv; a run whose data is gone still
    shows its estimates, with a note saying why the training cameras are missing."""
    from inerf.view import load_estimates, load_scene

    _, est, _, _ = viewed
    batch = tmp_path / "batch"
    for name in ("a", "b"):
        shutil.copytree(est, batch / name)
    (batch / "summary.csv").write_text("image,folder,status\na.png,a,ok\nb.png,b,ok\n")
    assert len(load_estimates(batch)) == 2
    run = tmp_path / "run"
    shutil.copytree(viewed[0], run)
    scene = load_scene(run, estimates=[batch], data=str(tmp_path / "gone"))
    assert scene.training is None and len(scene.estimates) == 2
    assert len(scene.notes) == 1 and "training cameras not shown" in scene.notes[0]


def test_bad_folders_are_one_line(viewed, tmp_path, capsys):
    run, est, _, _ = viewed
    for argv, match in (
        (["view", str(tmp_path)], "no checkpoint here"),
        (
            ["view", str(run), "--estimate", str(tmp_path)],
            f"--estimate {tmp_path}: no pose.json or summary.csv",
        ),
        (["view", str(run), "--track", str(est)], f"--track {est}: no trajectory.json"),
        (["view", str(run), "--port", "70000"], "--port 70000: must be in 0..65535"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("inerf view: error:") and "\n" not in err and match in err, err
