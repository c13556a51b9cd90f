"""Training on an analytic sphere scene: PSNR gain, checkpoints, load_run, resume, budgets, ray bank."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from conftest import TINY_FIELD, tiny_config
from safetensors.torch import load_file, save_file

from inerf.data import load_dataset
from inerf.errors import InerfError
from inerf.rays import rays_for_image
from inerf.train import LoadedRun, Trainer, load_run, train
from inerf.train.trainer import TrainingRays, learning_rate


def test_training_raises_validation_psnr(trained_run):
    r = trained_run
    assert r.step == 200 and [h["step"] for h in r.history] == [0, 100, 200]
    gain = r.val_psnr - r.val_psnr_start
    # Measured: about 10.4 -> 27 dB. The margin leaves room for platform differences in float rounding.
    assert gain > 10.0, f"validation PSNR {r.val_psnr_start:.2f} -> {r.val_psnr:.2f} dB"
    assert r.val_psnr > 22.0


def test_checkpoint_files(trained_run):
    run_dir = trained_run.run_dir
    tensors = load_file(str(run_dir / "model.safetensors"))
    assert {k.split(".")[0] for k in tensors} == {"coarse", "fine"}
    assert tensors["coarse.trunk.0.weight"].shape == (
        TINY_FIELD["width"],
        3 * (1 + 2 * TINY_FIELD["pos_freqs"]),
    )
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["format"] == "inerf.run" and cfg["model"] == "nerf" and cfg["fine_field"] is True
    assert cfg["step"] == 200 and cfg["field"]["width"] == 64 and cfg["convention"] == "opencv_c2w"
    assert cfg["render"]["n_coarse"] == 32 and cfg["render"]["jitter"] is False
    assert cfg["dataset"]["format"] == "blender" and cfg["dataset"]["background"] == "white"
    assert cfg["metrics"]["val_psnr"] == pytest.approx(trained_run.val_psnr)
    state = torch.load(run_dir / "optimizer.pt", weights_only=True)  # plain tensors and numbers only
    assert len(state["param_groups"]) == 2 and state["param_groups"][0]["name"] == "coarse.all"
    assert not list(run_dir.glob("*.tmp"))
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [50, 100, 150, 200]


def test_load_run_round_trip(trained_run):
    run = load_run(trained_run.run_dir, "cpu")
    assert (
        isinstance(run, LoadedRun) and run.kind == "nerf" and run.step == 200 and run.model.fine is not None
    )
    coarse, cfg = run.model.coarse, run.model.config
    assert not any(p.requires_grad for p in coarse.parameters()) and not coarse.training
    assert (cfg.near, cfg.far) == (2.0, 6.0)
    assert cfg.background == (1.0, 1.0, 1.0) and cfg.jitter is False
    assert run.dataset.scale == 1.0 and run.dataset.background == "white"
    # How the loader moved the user's world is recorded (a Blender scene: not at all), so estimates can be
    # written in the user's frame.
    tf = run.dataset.scene_transform()
    assert tf.is_identity() and tf.original == "world frame of the transforms_*.json files"
    # The weights are those saved: rendering the validation view reproduces the PSNR the trainer logged.
    val = run.dataset.load("val", run_dir=run.run_dir, max_views=1)
    cam = val.cameras
    out = run.model.render_image(cam[0])
    psnr = -10 * math.log10(((out.rgb - val.images[0]) ** 2).mean().item())
    assert psnr == pytest.approx(trained_run.val_psnr, abs=1e-3)
    # Gradients still reach a camera pose through the frozen field (what the pose engine needs).
    c2w = cam.c2w[0].clone().requires_grad_(True)
    from inerf.rays import rays_from_pixels

    rays = rays_from_pixels(
        torch.tensor([[16, 16], [10, 20]]), c2w, cam.fx[0], cam.fy[0], cam.cx[0], cam.cy[0]
    )
    run.model.render_rays(rays).rgb.sum().backward()
    assert c2w.grad is not None and c2w.grad.abs().sum() > 0


def test_load_run_finds_moved_dataset(trained_run, tmp_path):
    run_dir = tmp_path / "runs" / "moved"
    shutil.copytree(trained_run.run_dir, run_dir)
    data = tmp_path / "data"
    shutil.copytree(load_run(trained_run.run_dir).dataset.root, data)
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["dataset"]["root"] = "/nonexistent/sphere"
    cfg["dataset"]["root_relative"] = "../../data"
    (run_dir / "config.json").write_text(json.dumps(cfg))
    run = load_run(run_dir)
    assert len(run.dataset.load("test", run_dir=run.run_dir)) == 3


def _copy_run(trained_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, dst)
    return dst


def test_load_run_mismatches(trained_run, tmp_path):
    with pytest.raises(InerfError, match="run directory not found"):
        load_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InerfError, match="no checkpoint here"):
        load_run(tmp_path / "empty")

    run_dir = _copy_run(trained_run, tmp_path)
    cfg_path = run_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "field": {**cfg["field"], "width": 32}}))
    with pytest.raises(
        InerfError,
        match=r"coarse\.trunk\.0\.weight has shape \[64, 27\] but the model in "
        r"config.json expects \[32, 27\]",
    ) as e:
        load_run(run_dir)
    assert "\n" not in str(e.value)

    cfg_path.write_text(json.dumps({**cfg, "fine_field": False}))
    with pytest.raises(InerfError, match=r"unexpected fine\."):
        load_run(run_dir)

    cfg_path.write_text(json.dumps(cfg))
    tensors = load_file(str(run_dir / "model.safetensors"))
    del tensors["fine.rgb_head.bias"]
    tensors["coarse.extra"] = torch.zeros(1)
    save_file(tensors, str(run_dir / "model.safetensors"))
    with pytest.raises(InerfError, match=r"missing fine\.rgb_head\.bias; unexpected coarse\.extra"):
        load_run(run_dir)

    (run_dir / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(InerfError, match="unreadable weights"):
        load_run(run_dir)
    cfg_path.write_text("{broken")
    with pytest.raises(InerfError, match="malformed JSON"):
        load_run(run_dir)


def test_resume_continues_step_count(sphere_scene, tmp_path):
    out = tmp_path / "run"
    first = train(tiny_config(sphere_scene, out, max_steps=4, val_every=0, log_every=2))
    assert first.step == 4
    with pytest.raises(InerfError, match="already holds a checkpoint .step 4.; pass --resume"):
        train(tiny_config(sphere_scene, out, max_steps=6))
    resumed = train(tiny_config(None, out, max_steps=7, val_every=0, log_every=1, resume=True))
    assert resumed.step == 7
    assert json.loads((out / "config.json").read_text())["step"] == 7
    state = torch.load(out / "optimizer.pt", weights_only=True)
    assert int(state["state"][0]["step"]) == 7  # Adam's moments continued rather than restarted
    steps = [
        json.loads(line)["step"]
        for line in (out / "train_log.jsonl").read_text().splitlines()
        if "loss" in line
    ]
    assert steps == [2, 4, 5, 6, 7]
    again = train(tiny_config(sphere_scene, out, max_steps=3, val_every=0, overwrite=True))
    assert again.step == 3


def test_resume_and_overwrite_errors(sphere_scene, tmp_path):
    with pytest.raises(InerfError, match="exclude each other"):
        train(tiny_config(sphere_scene, tmp_path / "r", resume=True, overwrite=True))
    with pytest.raises(InerfError, match="no checkpoint here|run directory not found"):
        train(tiny_config(sphere_scene, tmp_path / "r", resume=True))
    with pytest.raises(InerfError, match="--max-steps"):
        train(tiny_config(sphere_scene, tmp_path / "r", max_steps=0))


def test_time_budget_stops_training(sphere_scene, tmp_path):
    r = train(tiny_config(sphere_scene, tmp_path / "r", max_steps=100_000, max_minutes=0.002, val_every=0))
    assert 1 <= r.step < 100_000 and r.elapsed_s >= 0.12
    assert json.loads((tmp_path / "r" / "config.json").read_text())["step"] == r.step


def test_learning_rate_schedule():
    assert learning_rate(5e-4, 5e-5, 0.0) == pytest.approx(5e-4)
    assert learning_rate(5e-4, 5e-5, 1.0) == pytest.approx(5e-5)
    assert learning_rate(5e-4, 5e-5, 0.5) == pytest.approx(math.sqrt(5e-4 * 5e-5))  # geometric midpoint
    assert learning_rate(5e-4, 5e-5, 3.0) == pytest.approx(5e-5)  # clamped past the budget


def test_training_rays_match_per_image_rays(sphere_scene):
    views = load_dataset(sphere_scene, "train", max_views=3)
    bank = TrainingRays(views, torch.device("cpu"))
    H, W = views.height, views.width
    assert len(bank) == 3 * H * W
    idx = torch.tensor([0, 5, H * W + 7 * W + 3, 2 * H * W + H * W - 1])
    rays, rgb = bank.batch(idx)
    for k, flat in enumerate(idx.tolist()):
        img, pix = divmod(flat, H * W)
        c = views.cameras
        ref = rays_for_image(c, img)
        torch.testing.assert_close(rays.origins[k], ref.origins[pix])
        torch.testing.assert_close(rays.directions[k], ref.directions[pix])
        torch.testing.assert_close(rays.viewdirs[k], ref.viewdirs[pix])
        torch.testing.assert_close(rgb[k], views.images[img].reshape(-1, 3)[pix])
    crop = bank.center_indices(0.5)
    assert len(crop) == 3 * (H // 2) * (W // 2)
    rows, cols = (crop % (H * W)) // W, crop % W
    assert rows.min() == H // 4 and rows.max() == 3 * H // 4 - 1 and cols.min() == W // 4


def test_grid_model_and_bf16_steps(sphere_scene, tmp_path):
    """The grid field's hooks (param groups, regularisation, sample count) and bf16 autocast run."""
    pytest.importorskip("inerf.fields.grid")
    t = Trainer(
        tiny_config(
            sphere_scene,
            tmp_path / "g",
            model="grid",
            field={},
            n_coarse=None,
            n_fine=None,
            lr=None,
            max_steps=2,
        )
    )
    assert t.fine is None and t.eval_render.n_fine == 0
    assert t.eval_render.n_coarse == t.coarse.samples_per_ray(2.0, 6.0)
    assert [g["name"] for g in t.optimizer.param_groups] == ["coarse.grids", "coarse.network"]
    loss, _ = t.train_step()
    assert torch.isfinite(loss)
    t = Trainer(tiny_config(sphere_scene, tmp_path / "b", precision="bf16", max_steps=2))
    loss, _ = t.train_step()
    assert torch.isfinite(loss)


def test_resume_keeps_the_runs_budget_and_schedule(sphere_scene, tmp_path):
    """A bare --resume continues the run's own schedule: a default step budget would re-warm the learning
    rate (progress = step / max_steps) instead of finishing the anneal."""
    from inerf.train import TrainConfig
    from inerf.train.trainer import Trainer

    out = tmp_path / "run"
    train(tiny_config(sphere_scene, out, max_steps=5, lr=4e-3, lr_final=1e-4, val_every=0))
    bare = TrainConfig(out=str(out), resume=True, device="cpu", progress=False)
    trainer = Trainer(bare)
    assert (trainer.cfg.max_steps, trainer.lr0, trainer.lr_final) == (5, 4e-3, 1e-4)
    assert trainer.run().step == 5  # the budget is already spent: nothing more to do
    longer = Trainer(TrainConfig(out=str(out), resume=True, device="cpu", progress=False, max_steps=8))
    assert longer.cfg.max_steps == 8 and longer.lr0 == 4e-3  # an explicit budget wins, the rest is kept
    assert longer.run().step == 8


def test_interrupt_saves_a_checkpoint_to_resume_from(sphere_scene, tmp_path, monkeypatch):
    from inerf.train.trainer import Trainer

    out = tmp_path / "run"
    trainer = Trainer(tiny_config(sphere_scene, out, max_steps=50, val_every=0))
    real_step = trainer.train_step

    def step_then_interrupt():
        if trainer.step == 3:
            raise KeyboardInterrupt
        return real_step()

    monkeypatch.setattr(trainer, "train_step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert json.loads((out / "config.json").read_text())["step"] == 3
    resumed = train(tiny_config(None, out, max_steps=5, val_every=0, resume=True))
    assert resumed.step == 5
