"""``inerf pixelnerf pose``: canonical frame, field adapter, end-to-end solve on a generated checkpoint."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from inerf.cli.main import main
from inerf.geometry.conventions import opencv_to_opengl_c2w
from inerf.pixelnerf.pose import canonical_source_c2w, encode_source, to_canonical_frame
from inerf.pixelnerf.video import spherical_c2w


def test_canonical_frame():
    can = canonical_source_c2w(1.3)
    # Identity rotation in OpenGL axes, at (0, 0, r): it looks along -z, at the origin.
    assert torch.allclose(
        opencv_to_opengl_c2w(can),
        torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1.3], [0, 0, 0, 1]], dtype=torch.float64),
    )
    assert torch.allclose(can[:3, 2], torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64))
    src, tgt = spherical_c2w(30.0, -20.0, 2.0).double(), spherical_c2w(75.0, -10.0, 2.0).double()
    assert torch.allclose(to_canonical_frame(src, src, 1.3), can, atol=1e-12)
    # Relative poses are preserved.
    rel = torch.linalg.inv(src) @ tgt
    assert torch.allclose(torch.linalg.inv(can) @ to_canonical_frame(tgt, src, 1.3), rel, atol=1e-12)


def test_field_adapter_matches_model(srn_model):
    image = torch.rand(24, 32, 3)
    cam = encode_source(srn_model, image, focal=30.0, radius=1.3)
    assert torch.allclose(cam.cx, torch.tensor([16.5])) and torch.allclose(cam.cy, torch.tensor([12.5]))
    xyz, dirs = torch.rand(10, 3) - 0.5, torch.nn.functional.normalize(torch.randn(10, 3), dim=-1)
    with torch.no_grad():
        rgb, sigma = srn_model.field(coarse=False)(xyz, dirs)  # one object: the object axis may be left out
        rgb_sb, sigma_sb = srn_model.field(coarse=False)(xyz[None], dirs[None])
        ref = srn_model(xyz[None], coarse=False, viewdirs=dirs[None])[0]
    assert torch.equal(rgb, ref[:, :3]) and torch.equal(sigma, ref[:, 3])
    assert torch.equal(rgb_sb[0], rgb) and torch.equal(sigma_sb[0], sigma)


@pytest.fixture(scope="module")
def pose_inputs(tmp_path_factory, srn_checkpoint):
    root = tmp_path_factory.mktemp("pixelnerf_pose")
    rng = np.random.default_rng(0)
    for name in ("src", "tgt"):
        img = np.full((32, 32, 3), 255, np.uint8)
        img[8:24, 6:26] = rng.integers(0, 200, size=(16, 20, 3))
        iio.imwrite(root / f"{name}.png", img)
    # SRN-style pose files (OpenCV c2w) of the two views, 90 degrees apart around the object.
    for name, theta in (("src", 0.0), ("tgt", 90.0)):
        c2w = spherical_c2w(theta, -20.0, 1.3).double().numpy()
        (root / f"{name}_pose.txt").write_text(" ".join(f"{v:.10f}" for v in c2w.flatten()))
    return root


def test_pose_end_to_end(pose_inputs, srn_checkpoint, capsys, monkeypatch):
    from inerf.pixelnerf import rendering

    built = []  # the settings of the Model the solve renders

    def spy(net, config):
        built.append(config)
        return rendering.Model(net.field(coarse=True), net.field(coarse=False), config)

    monkeypatch.setattr(rendering, "pixelnerf_model", spy)
    root = pose_inputs
    rc = main(
        [
            "pixelnerf",
            "pose",
            "--input",
            str(root / "src.png"),
            "--target",
            str(root / "tgt.png"),
            "--checkpoint",
            str(srn_checkpoint),
            "--no-normalize",  # already SRN-like images (the object centred on white)
            "--focal",
            str(131.25 / 4),
            "--steps",
            "2",
            "--rays",
            "16",
            "--target-pose",
            str(root / "tgt_pose.txt"),
            "--source-pose",
            str(root / "src_pose.txt"),
            "--out",
            str(root / "out"),
            "--quiet",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    (cfg,) = built  # pixelNeRF's published renderer, in its deterministic variant
    assert (cfg.sampler, cfg.distance, cfg.last_interval, cfg.transmittance) == (
        "pixelnerf",
        "metric",
        "far",
        "product",
    )
    assert (cfg.n_coarse, cfg.n_fine, cfg.n_fine_depth, cfg.near, cfg.far) == (64, 32, 16, 0.8, 1.8)
    assert not cfg.jitter and cfg.deterministic_fine
    out = capsys.readouterr().out
    assert "2 steps" in out and "rotation error 90.000 ->" in out
    record = json.loads((root / "out" / "pose.json").read_text())
    c2w = torch.tensor(record["c2w"])
    assert torch.isfinite(c2w).all()
    assert torch.allclose(
        c2w[:3, :3].T @ c2w[:3, :3], torch.eye(3, dtype=c2w.dtype), atol=1e-5
    )  # stays rigid
    # Two small steps from the source camera: still close to it.
    assert (c2w[:3, 3] - canonical_source_c2w(1.3)[:3, 3].float()).norm() < 0.1
    assert record["status"] == "ok" and math.isfinite(record["loss"])
    assert record["init_rotation_error_deg"] == pytest.approx(
        90.0, abs=1e-4
    )  # ground truth mapped to the frame


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--source-pose", "x.txt"], "--source-pose is only used with --target-pose"),
        (["--z-near", "2.0"], "need 0 < --z-near < --z-far"),
        (["--checkpoint", "missing_file"], "checkpoint not found"),
    ],
)
def test_pose_bad_input(pose_inputs, srn_checkpoint, capsys, extra, message):
    args = [
        "pixelnerf",
        "pose",
        "--input",
        str(pose_inputs / "src.png"),
        "--target",
        str(pose_inputs / "tgt.png"),
        "--checkpoint",
        str(srn_checkpoint),
        "--steps",
        "1",
        "--quiet",
        "--no-normalize",
        *extra,
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_pose_step_builds_no_tensor_from_host_data(srn_model, case_srn, host_copy_spy):
    """pixelNeRF's render-and-backward step, as the GPU fast path captures it (bf16 network included), builds
    no tensor from host data (each would be a host-to-device copy that stops CUDA-graph capture)."""
    from inerf.geometry.cameras import Cameras
    from inerf.pixelnerf.config import load_config
    from inerf.pixelnerf.rendering import pixelnerf_model, render_config
    from inerf.pose.config import PoseConfig
    from inerf.pose.problem import PoseTarget, Problem, field_precision, frozen_fields

    source = (case_srn["images"][0].permute(1, 2, 0) * 0.5 + 0.5).clamp(0, 1)[::8, ::8]  # 16 x 16
    encode_source(srn_model, source, 131.25 / 8, 1.3)
    config = render_config(load_config("srn").renderer, 0.8, 1.8, deterministic=True, n_coarse=8, n_fine=4)
    model = pixelnerf_model(srn_model, replace(config, n_fine_depth=2))
    camera = Cameras.from_intrinsics(131.25 / 8, 131.25 / 8, 8.5, 8.5, 16, 16)
    with frozen_fields(*model.fields()), field_precision(torch.bfloat16, *model.fields()):
        problem = Problem(model, PoseTarget(source.contiguous(), camera), PoseConfig(n_rays=8))
        pix = problem.sampler.sample(torch.zeros(1, dtype=torch.int64), 0)
        c2w0 = canonical_source_c2w(1.3).float()[None, None]
        with host_copy_spy:
            _, grad = problem.loss_and_grad(
                torch.zeros(1, 1, 6), c2w0, pix, None, problem.targets(pix, 0.0, 1)
            )
    assert host_copy_spy.calls == [] and torch.isfinite(grad).all()
