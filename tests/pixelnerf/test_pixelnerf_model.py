"""pixelNeRF model: checkpoint compatibility (keys, exact outputs), conventions, and a slow reference."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inerf.errors import InerfError
from inerf.geometry.cameras import Cameras, look_at
from inerf.geometry.conventions import opencv_to_opengl_c2w, opengl_to_opencv_c2w
from inerf.pixelnerf import PixelNeRF, load_config, load_pixelnerf
from inerf.pixelnerf._reference import published_forward
from inerf.pixelnerf.config import CONFIG_DIR, EXPERIMENTS
from inerf.pixelnerf.model import _intrinsics_per_view

FIXTURES = Path(__file__).parent / "fixtures"


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (sigma is mostly 0 after the ReLU: element-wise ratios are meaningless)."""
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def look_at_gl(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """OpenGL c2w at ``eye`` looking at ``target`` (camera -z towards the target)."""
    return opencv_to_opengl_c2w(look_at(eye, target, up)).float()


# ----------------------------------------------------------------------------------------------------------
# Checkpoint layout
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["srn", "sn64", "sn64_unseen", "dtu"])
def test_state_dict_matches_published_layout(name):
    spec = json.loads((FIXTURES / "keys_srn.json").read_text())
    expected = {k: (tuple(shape), dtype) for k, shape, dtype in spec["keys"]}
    sd = PixelNeRF(load_config(name)).state_dict()
    assert len(sd) == len(expected) == 278
    got = {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in sd.items()}
    assert got == expected
    # The positional-encoding buffers hold the published values.
    for key, values in spec["fixed"].items():
        assert torch.allclose(sd[key].flatten(), torch.tensor(values), atol=0, rtol=0)


def test_configs():
    for name in ["default", "default_mv", "srn", "sn64", "sn64_unseen", "dtu", "multi_obj", *EXPERIMENTS]:
        load_config(name)
    srn, sn64, dtu = load_config("srn_car"), load_config("sn64"), load_config("dtu")
    assert srn.model.encoder.use_first_pool and not sn64.model.encoder.use_first_pool
    assert not load_config("sn64_unseen").model.encoder.use_first_pool
    assert srn.renderer.white_bkgd and sn64.renderer.white_bkgd and not dtu.renderer.white_bkgd
    assert (srn.data_format, sn64.data_format, dtu.data_format) == ("srn", "dvr", "dvr_dtu")
    assert load_config("sn64_unseen").data_format == "dvr_gen"
    for cfg in (srn, sn64, dtu):
        r, m = cfg.renderer, cfg.model
        assert (r.n_coarse, r.n_fine, r.n_fine_depth, r.depth_std) == (64, 32, 16, 0.01)
        assert (m.code.num_freqs, m.code.freq_factor, m.code.include_input) == (6, 1.5, True)
        assert (m.mlp_coarse.n_blocks, m.mlp_coarse.d_hidden, m.mlp_coarse.combine_layer) == (5, 512, 3)
        assert m.mlp_fine == m.mlp_coarse and m.normalize_z and m.use_xyz and not m.use_code_viewdirs
    single = load_config("default")  # single-view base: 3 blocks, never combines
    assert single.model.mlp_coarse.n_blocks == 3 and single.model.mlp_coarse.combine_layer == 1000


def test_user_conf_file_with_include(tmp_path):
    (tmp_path / "mine.conf").write_text(
        f'include required("{CONFIG_DIR / "srn.conf"}")\n'
        "model { mlp_fine { type = empty }, encoder { use_first_pool = False } }\n"
        "renderer { white_bkgd = False, n_fine = 8, n_fine_depth = 4 }\n"
    )
    cfg = load_config(tmp_path / "mine.conf")
    assert cfg.model.mlp_fine is None and not cfg.model.encoder.use_first_pool
    assert (cfg.renderer.white_bkgd, cfg.renderer.n_fine, cfg.renderer.n_fine_depth) == (False, 8, 4)
    assert cfg.data_format == "srn"
    (tmp_path / "global.conf").write_text('include required("mine.conf")\nmodel.use_global_encoder = True\n')
    with pytest.raises(InerfError, match="use_global_encoder"):
        load_config(tmp_path / "global.conf")
    with pytest.raises(InerfError, match="unknown pixelNeRF config"):
        load_config("srn_bicycle")
    with pytest.raises(InerfError, match="not found"):
        load_config(tmp_path / "missing.conf")
    (tmp_path / "broken.conf").write_text("model {\n  code { num_freqs = [\n")
    with pytest.raises(InerfError, match="cannot read pixelNeRF config"):
        load_config(tmp_path / "broken.conf")


# ----------------------------------------------------------------------------------------------------------
# Exactness against the reference implementation
# ----------------------------------------------------------------------------------------------------------
def test_loaded_model_is_eval_and_frozen(srn_model):
    assert not srn_model.training and not srn_model.encoder.model.bn1.training
    assert not any(p.requires_grad for p in srn_model.parameters())


def test_matches_reference_case_srn(srn_model, case_srn):
    """The published-layout checkpoint reproduces the reference outputs (coarse and fine, 2 source views)."""
    c = case_srn
    assert c["c"] is None
    with torch.no_grad():
        srn_model.encode(c["images"], c["c2w"], c["focal"], c["c"])
        coarse = srn_model(c["xyz"], coarse=True, viewdirs=c["viewdirs"])
        fine = srn_model(c["xyz"], coarse=False, viewdirs=c["viewdirs"])
    assert coarse.shape == fine.shape == (1, 512, 4)
    assert max_rel(coarse, c["rgb_sigma_coarse"]) <= 1e-5
    assert max_rel(fine, c["rgb_sigma_fine"]) <= 1e-5
    # Element-wise too, where the reference is not tiny.
    for out, ref in ((coarse, c["rgb_sigma_coarse"]), (fine, c["rgb_sigma_fine"])):
        big = ref.abs() > 1e-2
        assert ((out - ref).abs()[big] / ref.abs()[big]).max() <= 1e-4
    # Same numbers through the 5-D call shape [SB=1, NS=2, ...] and with the default c given explicitly.
    with torch.no_grad():
        srn_model.encode(c["images"][None], c["c2w"][None], torch.tensor([[131.25, 131.25]]), c=(64.0, 64.0))
        again = srn_model(c["xyz"], coarse=True, viewdirs=c["viewdirs"])
    assert torch.equal(again, coarse)


def test_internal_convention_adapter_matches_published_call(srn_model, case_srn):
    """encode_views (OpenCV c2w, [0, 1] HWC images, pixel centres at +0.5) == encode (published call)."""
    c = case_srn
    H, W = c["images"].shape[-2:]
    cams = Cameras(
        opengl_to_opencv_c2w(c["c2w"]),
        fx=131.25,
        fy=131.25,
        cx=W / 2 + 0.5,
        cy=H / 2 + 0.5,
        height=H,
        width=W,
    )
    with torch.no_grad():
        srn_model.encode_views((c["images"].permute(0, 2, 3, 1) + 1) / 2, cams)
        out = srn_model(c["xyz"], coarse=False, viewdirs=c["viewdirs"])
    assert max_rel(out, c["rgb_sigma_fine"]) <= 1e-5


def test_forgetting_eval_mode_changes_outputs(srn_checkpoint, case_srn):
    """The fixture's BatchNorm statistics are non-trivial: train-mode BN must not reproduce the reference."""
    model = PixelNeRF(load_config("srn"))
    model.load_state_dict(torch.load(srn_checkpoint, weights_only=True))
    model.train()
    c = case_srn
    with torch.no_grad():
        model.encode(c["images"], c["c2w"], c["focal"])
        out = model(c["xyz"], coarse=True, viewdirs=c["viewdirs"])
    assert max_rel(out, c["rgb_sigma_coarse"]) > 1e-3


# ----------------------------------------------------------------------------------------------------------
# Conventions on other configurations (non-square, per-object fx, fy, cx, cy, 1-3 views, no first pool)
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config,num_views", [("dtu", 3), ("sn64", 1), ("srn", 2)])
def test_forward_matches_slow_reference(srn_model, config, num_views):
    """Non-square images, per-object (fx, fy) and (cx, cy), 1-3 views, with and without the first pool."""
    torch.manual_seed(0)
    model = PixelNeRF(load_config(config))
    model.load_state_dict(srn_model.state_dict())
    model.eval()
    SB, NS, H, W, B = 2, num_views, 30, 44, 64
    images = torch.rand(SB, NS, 3, H, W) * 2 - 1
    c2w = torch.stack(
        [
            torch.stack(
                [
                    look_at_gl((2.0 * math.cos(a), 2.0 * math.sin(a), 0.6 + 0.2 * s))
                    for a in torch.linspace(0.3, 1.5, NS).tolist()
                ]
            )
            for s in range(SB)
        ]
    )
    focal = torch.tensor([[40.0, 47.0], [52.0, 36.0]])  # [SB, 2] per object, fx != fy
    c = torch.tensor([[21.0, 16.5], [23.5, 13.0]])
    xyz = torch.rand(SB, B, 3) - 0.5
    dirs = F.normalize(torch.randn(SB, B, 3), dim=-1)
    with torch.no_grad():
        model.encode(images, c2w, focal, c)
        for coarse in (True, False):
            out = model(xyz, coarse=coarse, viewdirs=dirs)
            ref = published_forward(
                model,
                images,
                c2w,
                focal[:, None].expand(SB, NS, 2),
                c[:, None].expand(SB, NS, 2),
                xyz,
                dirs,
                coarse,
            )
            assert out.shape == (SB, B, 4)
            assert max_rel(out, ref) < 1e-4
        # Objects are independent: object 1 alone gives the same numbers.
        model.encode(images[1:], c2w[1:], focal[1:], c[1:])
        alone = model(xyz[1:], coarse=True, viewdirs=dirs[1:])
        model.encode(images, c2w, focal, c)
        assert torch.allclose(model(xyz, coarse=True, viewdirs=dirs)[1:], alone, atol=1e-5)


def test_point_projecting_to_a_pixel_gets_that_feature(srn_model):
    """A point in front of a camera with fx != fy and an off-centre principal point lands on the hand-computed
    pixel, and picks up exactly the feature stored there (latent pixel = image pixel * W_l / W)."""
    H, W = 40, 56
    fx, fy, cx, cy = 50.0, 70.0, 30.3, 17.6
    c2w = look_at_gl((1.0, -2.0, 0.7), target=(0.1, 0.0, 0.2))
    image = torch.rand(1, 3, H, W) * 2 - 1
    srn_model.encode(image, c2w[None], torch.tensor([fx, fy]), c=torch.tensor([cx, cy]))
    latent = srn_model.latent
    assert latent.shape == (1, 512, H // 2, W // 2)
    col, row, depth = torch.tensor([5, 11, 0]), torch.tensor([7, 2, 19]), torch.tensor([2.0, 0.5, 3.0])
    u, v = 2.0 * col, 2.0 * row  # image pixels whose latent coordinates are the integers (col, row)
    # Hand back-projection in OpenGL camera axes: x right, y up, looking along -z.
    p_cam = torch.stack([(u - cx) / fx * depth, -(v - cy) / fy * depth, -depth, torch.ones(3)], -1)
    xyz = (p_cam @ c2w.T)[:, :3][None]
    uv = srn_model.source_pixels(xyz)[0, 0]
    assert torch.allclose(uv, torch.stack([u, v], -1), atol=1e-4)
    feats = srn_model.encoder.index(latent, uv[None], (W, H))[0]
    assert torch.allclose(feats, latent[0][:, row, col].T, atol=1e-4, rtol=1e-4)


def test_first_pool_switch(srn_model):
    """sn64 skips the max-pool: layer1 then runs at conv1's resolution and needs no resampling."""
    no_pool = PixelNeRF(load_config("sn64")).encoder
    no_pool.load_state_dict(srn_model.encoder.state_dict())
    no_pool.eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    m = no_pool.model
    with torch.no_grad():
        f0 = m.relu(m.bn1(m.conv1(x)))
        lat = no_pool(x)
        assert lat.shape == (1, 512, 32, 32)
        assert torch.allclose(lat[:, :64], f0) and torch.allclose(lat[:, 64:128], m.layer1(f0), atol=1e-6)
        pooled = srn_model.encoder(x)
        up = F.interpolate(m.layer1(m.maxpool(f0)), size=(32, 32), mode="bilinear", align_corners=True)
        assert torch.allclose(pooled[:, 64:128], up, atol=1e-5)


def test_intrinsics_shapes():
    kw = {
        "num_objects": 2,
        "num_views": 3,
        "default": (5.0, 6.0),
        "name": "focal",
        "device": "cpu",
        "dtype": torch.float32,
    }
    assert torch.equal(_intrinsics_per_view(None, **kw), torch.tensor([[5.0, 6.0]] * 6))
    assert torch.equal(_intrinsics_per_view(7.0, **kw), torch.full((6, 2), 7.0))
    per_obj = _intrinsics_per_view(torch.tensor([1.0, 2.0]), **kw)  # [SB]: published per-object focal
    assert torch.equal(per_obj[:, 0], torch.tensor([1.0, 1, 1, 2, 2, 2])) and torch.equal(
        per_obj[:, 0], per_obj[:, 1]
    )
    xy = _intrinsics_per_view(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), **kw)  # [SB, 2]
    assert torch.equal(xy[2], torch.tensor([1.0, 2.0])) and torch.equal(xy[3], torch.tensor([3.0, 4.0]))
    assert torch.equal(_intrinsics_per_view(torch.arange(6.0), **kw)[:, 1], torch.arange(6.0))  # per view
    kw1 = {**kw, "num_objects": 1, "num_views": 1}
    assert torch.equal(_intrinsics_per_view(torch.tensor([3.0, 4.0]), **kw1), torch.tensor([[3.0, 4.0]]))
    with pytest.raises(InerfError, match="focal"):
        _intrinsics_per_view(torch.ones(4), **kw)


# ----------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------
def test_truncated_checkpoint(srn_checkpoint, tmp_path):
    bad = tmp_path / "pixel_nerf_latest"
    with open(srn_checkpoint, "rb") as f:
        bad.write_bytes(f.read(1 << 20))
    with pytest.raises(InerfError, match="truncated") as info:
        load_pixelnerf(bad, "srn")
    assert "\n" not in str(info.value)
    (tmp_path / "text").write_text("not a checkpoint")
    with pytest.raises(InerfError, match="cannot read checkpoint"):
        load_pixelnerf(tmp_path / "text", "srn")
    with pytest.raises(InerfError, match="not found"):
        load_pixelnerf(tmp_path / "nope", "srn")


def test_checkpoint_of_another_config(srn_checkpoint, tmp_path):
    # A model without a fine network: the srn file has 30 unexpected mlp_fine keys.
    (tmp_path / "coarse_only.conf").write_text(
        f'include required("{CONFIG_DIR / "srn.conf"}")\nmodel.mlp_fine.type = empty\n'
    )
    with pytest.raises(InerfError, match=r"30 unexpected keys \(mlp_fine\.") as info:
        load_pixelnerf(srn_checkpoint, tmp_path / "coarse_only.conf")
    assert "\n" not in str(info.value) and "coarse_only" in str(info.value)
    # A smaller network's checkpoint loaded as srn: shape mismatches are named.
    (tmp_path / "small.conf").write_text(
        f'include required("{CONFIG_DIR / "srn.conf"}")\n'
        "model.mlp_coarse.d_hidden = 32\nmodel.mlp_fine.d_hidden = 32\nmodel.mlp_coarse.n_blocks = 4\n"
    )
    small = PixelNeRF(load_config(tmp_path / "small.conf"))
    torch.save(small.state_dict(), tmp_path / "small.pt")
    with pytest.raises(InerfError) as info:
        load_pixelnerf(tmp_path / "small.pt", "srn")
    msg = str(info.value)
    assert (
        "missing keys (mlp_coarse.blocks.4" in msg
        and "mlp_coarse.lin_in.weight: file [32, 42] vs model [512, 42]" in msg
    )


def test_bf16_network_stays_within_bf16_tolerance(srn_model, case_srn):
    """The fast path's bf16 ResnetFC (``mlp_dtype``; CUDA in pose solves, exercised here on the CPU) gives the
    reference outputs to bf16 accuracy, and None restores the float32 numbers exactly."""
    c = case_srn
    with torch.no_grad():
        srn_model.encode(c["images"], c["c2w"], c["focal"], c["c"])
        srn_model.mlp_dtype = torch.bfloat16
        try:
            fast = srn_model(c["xyz"], coarse=False, viewdirs=c["viewdirs"])
        finally:
            srn_model.mlp_dtype = None
        exact = srn_model(c["xyz"], coarse=False, viewdirs=c["viewdirs"])
    ref = c["rgb_sigma_fine"]
    assert fast.dtype == torch.float32 and max_rel(exact, ref) <= 1e-5
    rel = max_rel(fast, ref)
    assert 1e-5 < rel <= 3e-2, rel  # bf16 has an 8-bit mantissa: ~0.4% per rounding, over 5 residual blocks
