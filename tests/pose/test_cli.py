"""``inerf estimate`` and ``inerf benchmark pose`` through ``inerf.cli.main.main``."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from pose_scene import FOCAL, H, W, perturb

from inerf.cli.main import main
from inerf.geometry import se3
from inerf.pose.io import pose_to_json
from inerf.viz.overlay import to_uint8


@pytest.fixture()
def inputs(tmp_path, fake_run):
    """Target PNG, intrinsics, initial and ground-truth pose files for view 1 of the fake run."""
    views = fake_run.dataset.views
    gt = views.cameras.c2w[1].double()
    Image.fromarray(to_uint8(views.images[1])).save(
        tmp_path / "target.png"
    )  # 8-bit: close to, not exactly, the render
    (tmp_path / "k.json").write_text(
        json.dumps({"fx": FOCAL, "fy": FOCAL, "cx": W / 2, "cy": H / 2, "width": W, "height": H})
    )
    (tmp_path / "init.json").write_text(json.dumps({"c2w": pose_to_json(perturb(gt, 8.0, 0.04))}))
    (tmp_path / "gt.json").write_text(json.dumps({"c2w": pose_to_json(gt)}))
    return tmp_path


def run_cli(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, match):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inerf estimate: error:"), err
    assert match in lines[0], lines[0]


def files(
    inputs, *, image="target.png", intrinsics="k.json", init="init.json", gt=None, out="o"
) -> list[str]:
    """The file flags of an ``inerf estimate`` call on the files of the ``inputs`` fixture (None leaves one
    out; ``out`` is the output folder's name)."""
    named = {"--image": image, "--intrinsics": intrinsics, "--init": init, "--gt": gt, "--out": out}
    return [arg for flag, name in named.items() if name is not None for arg in (flag, str(inputs / name))]


BASE = ["estimate", "--run", "RUN", "--steps", "3", "--rays", "32", "--frames", "0", "--quiet"]


def test_unreadable_image(inputs, capsys):
    (inputs / "broken.png").write_bytes(b"\x89PNG garbage")
    code, _, err = run_cli(BASE + files(inputs, image="broken.png"), capsys)
    assert_one_line_error(code, err, "unreadable image")


def test_missing_image(inputs, capsys):
    code, _, err = run_cli(BASE + files(inputs, image="nope.png", intrinsics=None) + ["--fx", "50"], capsys)
    assert_one_line_error(code, err, "not found")


def test_image_size_not_matching_intrinsics(inputs, capsys):
    (inputs / "k800.json").write_text(
        json.dumps({"fx": 1111, "cx": 400, "cy": 400, "width": 800, "height": 800})
    )
    code, _, err = run_cli(BASE + files(inputs, intrinsics="k800.json"), capsys)
    assert_one_line_error(code, err, "800x800")
    fx_cx_cy = ["--fx", "1111", "--cx", "400", "--cy", "400"]
    code, _, err = run_cli(BASE + files(inputs, intrinsics=None) + fx_cx_cy, capsys)
    assert_one_line_error(code, err, "principal point")


@pytest.mark.parametrize(
    "matrix, match",
    [
        ([[1, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]], "not a rigid transform"),
        ([[1, 0, 0, float("nan")], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]], "NaN"),
    ],
)
def test_bad_initial_pose(inputs, capsys, matrix, match):
    (inputs / "bad.json").write_text(json.dumps({"c2w": matrix}))  # Python json writes and reads NaN
    code, _, err = run_cli(BASE + files(inputs, init="bad.json"), capsys)
    assert_one_line_error(code, err, match)


def test_run_directory_without_checkpoint(inputs, capsys, monkeypatch):
    import inerf.cli.estimate as estimate_cli

    monkeypatch.undo()  # the real loader, not the fake run
    assert estimate_cli.load_run_checked.__module__ == "inerf.cli.estimate"
    (inputs / "emptyrun").mkdir()
    argv = ["estimate", "--run", str(inputs / "emptyrun"), *files(inputs), "--quiet"]
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, "no checkpoint")
    argv[2] = str(inputs / "missing_run")
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, "not found")


def test_missing_initial_pose_and_nonempty_out(inputs, capsys):
    code, _, err = run_cli(BASE + files(inputs, init=None), capsys)
    assert_one_line_error(code, err, "--init")
    (inputs / "full").mkdir()
    (inputs / "full" / "x").write_text("x")
    code, _, err = run_cli(BASE + ["--view", "1", "--init-from-gt", "--out", str(inputs / "full")], capsys)
    assert_one_line_error(code, err, "--overwrite")


def test_estimate_from_image_files(inputs, capsys):
    out = inputs / "est"
    argv = ["estimate", "--run", "RUN", *files(inputs, gt="gt.json", out="est")]
    code, stdout, _ = run_cli(argv + ["--steps", "150", "--rays", "256", "--frames", "4", "--quiet"], capsys)
    assert code == 0, stdout
    pose = json.loads((out / "pose.json").read_text())
    assert pose["convention"] == "opencv_c2w" and pose["steps"] == 150 and pose["status"] == "ok"
    assert pose["init_rotation_error_deg"] == pytest.approx(8.0, abs=1e-3)
    assert pose["rotation_error_deg"] < 1.0 and pose["translation_error"] < 0.01
    for name in ("trajectory.csv", "convergence.png", "convergence.gif", "target.png", "sampling.png"):
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "frames").glob("*.png"))) == 4
    header = (out / "trajectory.csv").read_text().splitlines()
    assert header[0].startswith("step,lr,loss,rot_err_deg,trans_err") and len(header) == 152
    assert "rotation error 8.000 ->" in stdout


def test_estimate_dataset_view_with_hypotheses(inputs, capsys):
    out = inputs / "est_k"
    code, _stdout, _ = run_cli(
        [
            "estimate",
            "--run",
            "RUN",
            "--view",
            "2",
            "--init-from-gt",
            "--perturb-rot",
            "10",
            "--perturb-trans",
            "0.1",
            "--hypotheses",
            "4",
            "--spread-rot",
            "20",
            "--prune-steps",
            "40",
            "--steps",
            "100",
            "--rays",
            "128",
            "--sampling",
            "mask",
            "--frames",
            "0",
            "--out",
            str(out),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0
    pose = json.loads((out / "pose.json").read_text())
    assert pose["hypotheses"] == 4 and pose["rotation_error_deg"] < 2.0
    hyps = json.loads((out / "hypotheses.json").read_text())
    # Start errors are those of the returned hypothesis's own start (pose["init_c2w"]); hypothesis 0 is the
    # --init-from-gt start, exactly 10 degrees off (turned about the camera centre).
    gt = torch.tensor(pose["gt_c2w"], dtype=torch.float64)
    own_start = torch.tensor(pose["init_c2w"], dtype=torch.float64)
    assert own_start.tolist() == hyps[pose["hypothesis"]]["init_c2w"]
    assert pose["init_rotation_error_deg"] == pytest.approx(float(se3.rotation_error_deg(own_start, gt)))
    first = torch.tensor(hyps[0]["init_c2w"], dtype=torch.float64)
    assert float(se3.rotation_error_deg(first, gt)) == pytest.approx(10.0, abs=1e-3)
    assert pose["best_init_rotation_error_deg"] <= min(pose["init_rotation_error_deg"], 10.0 + 1e-3)
    assert len(hyps) == 4 and sum(h["last_step"] == 100 for h in hyps) == 2  # half pruned at step 40


def test_estimate_starts_where_benchmark_and_demo_start(inputs, fake_run, capsys):
    """--init-from-gt draws from inerf.pose.perturb exactly as inerf benchmark pose (view 2's first trial) and
    inerf demo (target 2) do for the same seed: the same start, exactly --perturb-rot / --perturb-trans off."""
    from inerf.demo import demo_start_pose
    from inerf.pose.perturb import Perturbation
    from inerf.pose.protocol import ProtocolConfig, initial_poses

    out = inputs / "same"
    flags = ["--view", "2", "--init-from-gt", "--perturb-rot", "12", "--perturb-trans", "0.07", "--seed", "3"]
    code, stdout, err = run_cli(
        BASE[:3] + flags + ["--steps", "1", "--rays", "16", "--frames", "0", "--out", str(out)], capsys
    )
    assert code == 0, err
    pose = json.loads((out / "pose.json").read_text())
    start = torch.tensor(pose["init_c2w"], dtype=torch.float64)
    gt = fake_run.dataset.views.cameras.c2w[2].double()
    p = Perturbation(12.0, 0.07)
    assert torch.equal(start, initial_poses(gt, ProtocolConfig(trials=1, perturbation=p, seed=3), 2)[0, 0])
    assert torch.equal(start, demo_start_pose(gt, seed=3, index=2, perturbation=p))
    assert pose["init_rotation_error_deg"] == pytest.approx(12.0, abs=1e-6)
    assert pose["init_translation_error"] == pytest.approx(0.07, abs=1e-9)
    assert pose["success"]["rotation_deg"] == 5.0 and pose["success"]["translation"] == 0.05
    assert "rotation error 12.000 ->" in stdout and "(< 5 deg and < 0.05)" in stdout
    # The paper's draw, on request, is the benchmark's default start.
    out = inputs / "paper"
    paper = [
        "--perturb-rot",
        "40",
        "--perturb-trans",
        "0.1",
        "--perturb-sampling",
        "uniform",
        "--perturb-pivot",
        "origin",
    ]
    code, _, err = run_cli(
        BASE[:3] + flags[:3] + paper + ["--steps", "1", "--rays", "16", "--frames", "0", "--out", str(out)],
        capsys,
    )
    assert code == 0, err
    start = torch.tensor(json.loads((out / "pose.json").read_text())["init_c2w"], dtype=torch.float64)
    assert torch.equal(start, initial_poses(gt, ProtocolConfig(trials=1), 2)[0, 0])


def test_perturbation_flags_are_checked(inputs, capsys):
    code, _, err = run_cli(BASE + files(inputs) + ["--perturb-rot", "5"], capsys)
    assert_one_line_error(code, err, "--perturb-rot 5: needs --init-from-gt")
    code, _, err = run_cli(
        BASE + ["--view", "1", "--init-from-gt", "--perturb-trans", "-1", "--out", str(inputs / "n")], capsys
    )
    assert_one_line_error(code, err, "--perturb-trans -1")


def test_estimate_with_a_real_checkpoint(inputs, capsys, monkeypatch):
    """A run directory written by the trainer's checkpoint code (tiny untrained NeRF): loads and solves."""
    from inerf.fields.factory import build_field, field_config_dict
    from inerf.render.renderer import RenderConfig
    from inerf.train.checkpoint import RUN_FORMAT, RUN_VERSION, save_checkpoint

    monkeypatch.undo()
    torch.manual_seed(0)
    coarse = build_field("nerf", {"depth": 2, "width": 16, "skip": 0, "pos_freqs": 2, "dir_freqs": 1})
    rc = RenderConfig(n_coarse=8, n_fine=4)
    config = {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "model": "nerf",
        "field": field_config_dict(coarse),
        "fine_field": False,
        "render": rc.__dict__,
        "step": 0,
        "dataset": {
            "root": str(inputs),
            "format": "blender",
            "scale": 1.0,
            "background": "white",
            "near": 2.0,
            "far": 6.0,
        },
    }
    save_checkpoint(inputs / "run", config, coarse)
    out = inputs / "real"
    argv = ["estimate", "--run", str(inputs / "run"), *files(inputs, out="real")]
    flags = ["--steps", "3", "--rays", "16", "--frames", "2", "--no-video", "--device", "cpu", "--quiet"]
    code, _stdout, err = run_cli(argv + flags, capsys)
    assert code == 0, err
    assert json.loads((out / "pose.json").read_text())["steps"] == 3


def test_benchmark_pose(inputs, capsys):
    out = inputs / "bench"
    code, stdout, _ = run_cli(
        [
            "benchmark",
            "pose",
            "--run",
            "RUN",
            "--images",
            "2",
            "--trials",
            "2",
            "--perturb-rot",
            "10",
            "--perturb-trans",
            "0.05",
            "--sampling",
            "random,center",
            "--steps",
            "40",
            "--checkpoints",
            "20,40",
            "--rays",
            "128",
            "--out",
            str(out),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0
    for name in ("results.md", "results.csv", "results.json", "trials.csv", "success_curve.png"):
        assert (out / name).stat().st_size > 0
    assert "| random |" in stdout and "| center |" in stdout
    code, _, err = run_cli(
        [
            "benchmark",
            "pose",
            "--run",
            "RUN",
            "--steps",
            "100",
            "--checkpoints",
            "50,200",
            "--out",
            str(inputs / "b2"),
        ],
        capsys,
    )
    assert code == 2 and "--checkpoints 50,200: goes to step 200" in err


def test_benchmark_without_subcommand_prints_help(capsys):
    code, out, _ = run_cli(["benchmark"], capsys)
    assert code == 1 and "pose" in out


def test_estimate_with_blur_and_levenberg_marquardt(inputs, capsys):
    out = inputs / "robust"
    argv = ["estimate", "--run", "RUN", *files(inputs, gt="gt.json", out="robust")]
    solver = ["--steps", "60", "--optimizer", "adam+lm", "--lm-steps", "15", "--lr", "0.02"]
    solver += ["--blur", "3", "--blur-steps", "30", "--blur-rays", "4"]
    code, stdout, _ = run_cli(argv + solver + ["--rays", "256", "--frames", "0", "--quiet"], capsys)
    assert code == 0, stdout
    pose = json.loads((out / "pose.json").read_text())
    assert pose["steps"] == 60 and pose["rotation_error_deg"] < 0.2 and pose["translation_error"] < 0.005


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--optimizer", "lm", "--loss", "mape"], "mape"),
        (["--optimizer", "adam+lm"], "--optimizer adam+lm: adam+lm needs 0 < --lm-steps"),
        (["--samples", "2"], "--samples 2"),
        (["--blur", "-1"], "--blur -1: --blur-sigma must be"),
        (["--rays", "0"], "--rays 0:"),
    ],
)
def test_bad_solver_flags_are_one_line_errors(inputs, capsys, flags, match):
    code, _, err = run_cli(["estimate", "--run", "RUN", *files(inputs, out="bad"), *flags, "--quiet"], capsys)
    assert_one_line_error(code, err, match)


def test_robust_preset_and_explicit_options():
    import argparse

    from inerf.cli.estimate import add_solver_arguments, pose_config_from_args
    from inerf.pose.config import PAPER, ROBUST

    p = argparse.ArgumentParser()
    add_solver_arguments(p)
    p.add_argument("--sampling", default="random")
    paper = pose_config_from_args(p.parse_args([]), "random")
    assert paper == PAPER
    robust = pose_config_from_args(p.parse_args(["--preset", "robust"]), "random")
    assert robust == ROBUST and robust.optimizer == "adam+lm" and robust.blur.sigma == 8.0
    mixed = pose_config_from_args(
        p.parse_args(["--preset", "robust", "--blur", "4", "--rays", "512"]), "center"
    )
    assert (mixed.blur.sigma, mixed.n_rays, mixed.lm.steps, mixed.sampling.strategy) == (
        4.0,
        512,
        50,
        "center",
    )


def test_estimate_gives_a_convergence_verdict(inputs, fake_run, capsys):
    """pose.json says whether the final photometric error is as low as the field's own validation error."""
    fake_run.config["metrics"] = {"val_psnr": 40.0}
    argv = ["estimate", "--run", "RUN", *files(inputs, gt="gt.json", out="est_v")]
    code, stdout, _ = run_cli(argv + ["--steps", "150", "--rays", "256", "--frames", "0", "--quiet"], capsys)
    assert code == 0, stdout
    verdict = json.loads((inputs / "est_v" / "pose.json").read_text())["convergence"]
    assert verdict["verdict"] == "converged" and verdict["field_mse"] == pytest.approx(1e-4)
    assert "converged: final MSE" in stdout
    fake_run.config["metrics"] = {"val_psnr": 70.0}  # a field far sharper than this 8-bit target can match
    code, stdout, _ = run_cli(
        argv[:-2]
        + ["--out", str(inputs / "est_w"), "--steps", "5", "--rays", "64", "--frames", "0", "--quiet"],
        capsys,
    )
    assert code == 0 and json.loads((inputs / "est_w" / "pose.json").read_text())["convergence"][
        "verdict"
    ] == ("not converged")
