"""``inerf pixelnerf train`` on a tiny generated category: the loss falls, ``--resume`` is exact, ``--freeze_enc``
freezes, the published layout (278 keys for the published srn config), and bad input is one line."""

from __future__ import annotations

import shutil

import torch
from pixelnerf_helpers import train_config

from inerf.cli.main import main
from inerf.pixelnerf import load_config, load_pixelnerf
from inerf.pixelnerf.train import (
    BACKUP_NAME,
    CONF_NAME,
    ITER_NAME,
    LATEST_NAME,
    OPTIM_NAME,
    PixelNeRFTrainer,
    choose_source_views,
    read_iter_state,
    sample_rays,
)


def _losses(history: list[dict]) -> list[float]:
    return [h["loss"] for h in history if "loss" in h]


def test_training_lowers_the_loss(blob_data, tiny_conf, tmp_path):
    run = PixelNeRFTrainer(train_config(blob_data, tiny_conf, tmp_path, max_steps=150, print_every=10)).run()
    losses = _losses(run.history)
    assert run.step == 150 and len(losses) == 15
    # Mean of coarse + fine MSE: about 0.3 for the first 10 steps (untrained), below 0.1 after 150.
    assert sum(losses[-3:]) / 3 < 0.4 * losses[0], losses


def test_resume_continues_exactly(blob_data, tiny_conf, tmp_path):
    """A run stopped at step 7 and resumed to 14 draws the same batches, rays and samples as one run of 14
    steps: the same losses and the same final weights (bit for bit on the CPU)."""
    kw = {
        "val_every": 5,
        "save_every": 3,
        "no_bbox_step": 9,
    }  # validation and saves in between must not matter
    whole = PixelNeRFTrainer(train_config(blob_data, tiny_conf, tmp_path / "a", max_steps=14, **kw)).run()
    first = PixelNeRFTrainer(train_config(blob_data, tiny_conf, tmp_path / "b", max_steps=7, **kw)).run()
    second = PixelNeRFTrainer(
        train_config(blob_data, tiny_conf, tmp_path / "b", max_steps=14, resume=True, **kw)
    ).run()
    assert second.steps_this_run == 7
    a, b = _losses(whole.history), _losses(first.history + second.history)
    assert len(a) == len(b) == 14
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-6
    wa = torch.load(tmp_path / "a/checkpoints/tiny" / LATEST_NAME, weights_only=True)
    wb = torch.load(tmp_path / "b/checkpoints/tiny" / LATEST_NAME, weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_freeze_enc_keeps_weights_and_batchnorm_statistics(blob_data, tiny_conf, tmp_path):
    frozen = PixelNeRFTrainer(train_config(blob_data, tiny_conf, tmp_path / "f", freeze_enc=True))
    enc0 = {k: v.clone() for k, v in frozen.net.encoder.state_dict().items()}
    mlp0 = {k: v.clone() for k, v in frozen.net.mlp_coarse.state_dict().items()}
    assert not any(p.requires_grad for p in frozen.net.encoder.parameters())
    assert not any(
        p is q for p in frozen.optimizer.param_groups[0]["params"] for q in frozen.net.encoder.parameters()
    )
    for _ in range(3):
        frozen.train_step()
    frozen.validate(write_image=False)  # switches modes and back
    assert not frozen.net.encoder.training and frozen.net.mlp_coarse.training
    enc1 = frozen.net.encoder.state_dict()
    assert any("running_mean" in k for k in enc1) and any("num_batches_tracked" in k for k in enc1)
    assert all(torch.equal(enc0[k], enc1[k]) for k in enc0), "encoder weights or BatchNorm statistics moved"
    assert any(not torch.equal(mlp0[k], v) for k, v in frozen.net.mlp_coarse.state_dict().items())

    # Not frozen: the same steps move the BatchNorm statistics (train mode, as published).
    free = PixelNeRFTrainer(train_config(blob_data, tiny_conf, tmp_path / "u"))
    bn0 = free.net.encoder.model.bn1.running_mean.clone()
    free.train_step()
    assert not torch.equal(bn0, free.net.encoder.model.bn1.running_mean)


def test_published_srn_config_writes_the_published_layout(blob_data, tmp_path):
    cfg = train_config(
        blob_data, "srn", tmp_path, batch_size=1, ray_batch_size=2, nviews="1", max_steps=2, save_every=1
    )
    PixelNeRFTrainer(cfg).run()
    folder = tmp_path / "checkpoints" / "tiny"
    state = torch.load(folder / LATEST_NAME, map_location="cpu", weights_only=True)
    assert isinstance(state, dict) and len(state) == 278  # a bare state_dict, as published
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert "encoder.model.layer4.2.bn2.running_var" in state and "mlp_fine.lin_out.bias" in state
    load_pixelnerf(folder / LATEST_NAME, "srn")  # strict: the published key set and shapes
    load_pixelnerf(folder / BACKUP_NAME, "srn")  # the previous save (step 1)
    assert read_iter_state(folder)["iter"] == 2
    optim = torch.load(folder / OPTIM_NAME, weights_only=True)
    assert all(int(s["step"]) == 2 for s in optim["state"].values())
    assert load_config(folder / CONF_NAME).model == load_config("srn").model
    assert not list(folder.glob("*.tmp")) and not (folder / "pixel_nerf_saving").exists()


def test_ray_and_view_sampling(blob_data, tiny_conf, tmp_path):
    trainer = PixelNeRFTrainer(train_config(blob_data, tiny_conf, tmp_path))
    obj = trainer.objects
    assert obj.images.shape == (4, 8, 32, 32, 3) and obj.bbox is not None
    g = torch.Generator().manual_seed(0)
    index = torch.tensor([0, 3])
    rays, rgb = sample_rays(obj, index, 4000, True, g)
    assert rays.origins.shape == (2, 4000, 3) and rgb.shape == (2, 4000, 3)
    assert torch.allclose(rays.viewdirs.norm(dim=-1), torch.ones(2, 4000))
    # Box sampling draws pixels inside the foreground boxes: far fewer of them are pure white background
    # than of pixels drawn anywhere.
    white_box = (rgb == 1).all(-1).float().mean()
    _, rgb_any = sample_rays(obj, index, 4000, False, g)
    white_any = (rgb_any == 1).all(-1).float().mean()
    assert white_box < 0.6 * white_any
    src = choose_source_views(torch.tensor([8, 5, 8]), 4, 8, g)
    assert src.shape == (3, 4) and all(len(set(r.tolist())) == 4 for r in src) and int(src[1].max()) < 5


def _error_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_input_is_one_line(blob_data, tiny_conf, tiny_run, tmp_path, capsys):
    out = ["--checkpoints_path", str(tmp_path / "c"), "--visual_path", str(tmp_path / "v")]
    out += ["--logs_path", str(tmp_path / "l"), "--quiet", "--max-steps", "1", "--val-every", "0"]
    assert "chairs_train" in _error_line(
        capsys, ["pixelnerf", "train", "-D", str(tmp_path / "nowhere" / "chairs"), "-F", "srn", *out]
    )
    assert "unknown pixelNeRF config 'nonesuch'" in _error_line(
        capsys, ["pixelnerf", "train", "-D", str(blob_data), "-c", "nonesuch", *out]
    )
    assert "-V/--nviews" in _error_line(
        capsys, ["pixelnerf", "train", "-D", str(blob_data), "-c", str(tiny_conf), "-V", "9", *out]
    )
    # A run of the tiny config resumed with another config: the checkpoint does not fit.
    shutil.copytree(tiny_run, tmp_path / "c" / "tiny")
    err = _error_line(
        capsys, ["pixelnerf", "train", "-D", str(blob_data), "-n", "tiny", "-c", "small", "-r", *out]
    )
    assert "does not match the model config" in err and "pixel_nerf_latest" in err
    # An existing run is never replaced by accident.
    assert "--resume" in _error_line(capsys, ["pixelnerf", "train", "-D", str(blob_data), "-n", "tiny", *out])
    assert "no checkpoint" in _error_line(
        capsys, ["pixelnerf", "train", "-D", str(blob_data), "-n", "other", "-c", str(tiny_conf), "-r", *out]
    )


def test_cli_time_budget_and_outputs(blob_data, tiny_conf, tmp_path, capsys):
    argv = [
        "pixelnerf",
        "train",
        "-D",
        str(blob_data),
        "-c",
        str(tiny_conf),
        "-n",
        "t",
        "-B",
        "2",
        "-R",
        "16",
    ]
    argv += ["--checkpoints_path", str(tmp_path / "c"), "--visual_path", str(tmp_path / "v")]
    argv += ["--logs_path", str(tmp_path / "l"), "--quiet", "--val-every", "5", "--max-minutes", "0.03"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "steps/s" in text and "validation PSNR" in text
    state = read_iter_state(tmp_path / "c" / "t")
    assert state["iter"] >= 5  # stopped by the 1.8 s budget, not by a step count
    assert (tmp_path / "v" / "t" / "000005_vis.png").is_file()
    assert (tmp_path / "l" / "t" / "train_log.jsonl").is_file()
    assert (tmp_path / "c" / "t" / ITER_NAME).is_file()
