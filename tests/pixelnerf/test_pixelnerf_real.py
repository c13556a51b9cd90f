"""Real photographs (``inerf pixelnerf real`` and raw photos in ``inerf pixelnerf pose``).

The photo is scikit-image's ``coffee`` (a real 600 x 400 photograph: a cup with saucer and spoon on a wooden
table). ``fixtures/coffee_mask.png`` is its object mask drawn once by hand (a polygon, see the fixtures'
README); GrabCut must agree with it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from inerf.cli.main import main
from inerf.errors import InerfError
from inerf.pixelnerf.real import (
    GRABCUT_MARGIN,
    CropBox,
    Ellipse,
    border_sides,
    crop_box,
    crop_square,
    fit_ellipse,
    foreground_mask,
    grabcut_mask,
    normalize_photo,
    read_mask,
    read_photo,
    refine_mask,
)

FIXTURES = Path(__file__).parent / "fixtures"

# A ResnetFC of one 16-wide block, a ResNet-18 encoder stopped after layer1, 8 + 4 samples per ray: the
# published file layout and code paths at a size whose video frames render in milliseconds.
TINY_CONF = """
model {
    encoder { backbone = resnet18, num_layers = 2 }
    code { num_freqs = 2, freq_factor = 1.5, include_input = true }
    mlp_coarse { type = resnet, n_blocks = 1, d_hidden = 16, combine_layer = 3, combine_type = average }
    mlp_fine { type = resnet, n_blocks = 1, d_hidden = 16, combine_layer = 3, combine_type = average }
}
renderer { n_coarse = 8, n_fine = 4, n_fine_depth = 2, white_bkgd = true }
"""


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    """``[400, 600, 3]`` uint8, scikit-image's photograph."""
    data = pytest.importorskip("skimage.data", reason="scikit-image ships the coffee photograph")
    return data.coffee()


@pytest.fixture(scope="module")
def hand_mask() -> np.ndarray:
    return iio.imread(FIXTURES / "coffee_mask.png") > 0


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> tuple[Path, Path]:
    """``(checkpoint, conf)`` of a tiny pixelNeRF with seeded random weights, saved as a bare state_dict."""
    from inerf.pixelnerf.config import load_config
    from inerf.pixelnerf.model import PixelNeRF

    root = tmp_path_factory.mktemp("tiny_pixelnerf")
    conf = root / "tiny.conf"
    conf.write_text(TINY_CONF)
    torch.manual_seed(0)
    model = PixelNeRF(load_config(conf))
    with torch.no_grad():  # ResnetFC starts as the identity (zero fc_1): give it colours and density
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    torch.save(model.state_dict(), root / "pixel_nerf_latest")
    return root / "pixel_nerf_latest", conf


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# ----------------------------------------------------------------------------------------------------------
# Normalisation: the published formula
# ----------------------------------------------------------------------------------------------------------
def test_crop_box_hand_computed():
    # max(4.37 * 60, 0.8 * 200) = 262.2 -> side 2 * ceil(131.1) = 264, from the rounded centre (300, 251).
    assert crop_box(Ellipse(300.4, 250.6, 200.0, 60.0, 0.0)) == CropBox(300 - 132, 251 - 132, 264)
    # An elongated object: max(4.37 * 40, 0.8 * 400) = 320 -> side 320 (the major axis rules).
    assert crop_box(Ellipse(50.0, 40.0, 400.0, 40.0, 0.0)) == CropBox(50 - 160, 40 - 160, 320)
    assert crop_box(Ellipse(0.0, 0.0, 10.0, 10.0, 0.0), scale_minor=1.0, scale_major=1.0).side == 10


def test_crop_square_pads_outside():
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    out = crop_square(a, CropBox(-1, 2, 3), fill=-1.0)
    assert out.tolist() == [[-1, 8, 9], [-1, 12, 13], [-1, -1, -1]]
    rgb = np.zeros((2, 2, 3), np.float32)
    assert (crop_square(rgb, CropBox(5, 5, 2), fill=1.0) == 1.0).all()  # all outside


def test_normalize_synthetic_ellipse():
    """An ellipse of axes 200 x 60 px: fitted back, cropped to ~264 px, its minor axis 128 / 4.37 px after."""
    import cv2

    H, W = 480, 640
    mask = np.zeros((H, W), np.uint8)
    cv2.ellipse(mask, (320, 240), (100, 30), 20.0, 0, 360, 1, -1)
    e = fit_ellipse(mask)
    assert (e.cx, e.cy) == pytest.approx((320.0, 240.0), abs=0.5)
    assert (e.major, e.minor) == pytest.approx((200.0, 60.0), abs=2.0)
    assert e.angle_deg == pytest.approx(20.0, abs=1.0)
    image = np.zeros((H, W, 3), np.float32)
    image[..., 0] = 0.8  # a red object on a black background
    out = normalize_photo(image, mask.astype(np.float32))
    assert out.ellipse == e and out.box == crop_box(e)
    assert abs(out.box.side - 264) <= 2 and out.box.x0 == 320 - out.box.side // 2
    assert out.image.shape == (128, 128, 3) and out.mask.shape == (128, 128)
    assert out.warnings == ()
    # Background white, object kept, centred, minor axis ~ 128 / 4.37 = 29.3 px.
    assert np.allclose(out.image[0, 0], 1.0) and np.allclose(out.image[64, 64], [0.8, 0.0, 0.0], atol=1e-6)
    small = fit_ellipse(out.mask)
    assert small.minor == pytest.approx(128 / 4.37, abs=1.0)
    assert (small.cx, small.cy) == pytest.approx((63.5, 63.5), abs=0.75)


def test_empty_mask_and_tiny_object():
    with pytest.raises(InerfError, match="no object found: the mask is empty"):
        normalize_photo(np.ones((20, 20, 3), np.float32), np.zeros((20, 20), np.float32))
    m = np.zeros((20, 20), np.float32)
    m[5, 5] = 1
    with pytest.raises(InerfError, match="too small to fit an ellipse"):
        fit_ellipse(m)
    m[4:16, 6:14] = 1  # 8 x 12 px: a crop of ~35 px, upsampled to 128
    out = normalize_photo(np.ones((20, 20, 3), np.float32), m)
    assert any("upsampled to 128" in w for w in out.warnings)


def test_refine_mask():
    m = np.zeros((40, 40), bool)
    m[10:30, 10:30] = True
    m[18:22, 18:22] = False  # a hole: filled
    m[2, 2] = m[35:37, 35:37] = True  # specks: dropped by the opening, and not the largest component
    out = refine_mask(m, 1)
    expected = np.zeros((40, 40), bool)
    expected[10:30, 10:30] = True
    # The 3 x 3 "ellipse" is a cross: the opening also rounds off the square's 4 corner pixels.
    assert out[18:22, 18:22].all() and not out[:5, :5].any() and not out[32:, 32:].any()
    assert (out ^ expected).sum() == 4 and not out[10, 10]
    assert not refine_mask(np.zeros((5, 5), bool), 1).any()


# ----------------------------------------------------------------------------------------------------------
# Masks on the real photograph
# ----------------------------------------------------------------------------------------------------------
def test_grabcut_matches_hand_drawn_mask(coffee, hand_mask):
    auto = grabcut_mask(coffee.astype(np.float32) / 255)
    assert auto.shape == hand_mask.shape and auto.dtype == bool
    iou = _iou(auto, hand_mask)
    assert iou >= 0.8, iou  # measured 0.968 (scikit-image 0.26, OpenCV 5.0)
    # Repeatable: OpenCV's random generator is seeded.
    assert np.array_equal(auto, grabcut_mask(coffee.astype(np.float32) / 255))
    # The full-resolution cut agrees with the default one run at <= 400 px.
    assert _iou(grabcut_mask(coffee.astype(np.float32) / 255, max_side=600), auto) > 0.95


def test_mask_sources_in_order(coffee, hand_mask):
    image = coffee.astype(np.float32) / 255
    alpha = hand_mask.astype(np.float32)
    m, source = foreground_mask(image, alpha, mask=np.zeros_like(alpha))
    assert source == "alpha" and np.array_equal(m, alpha)
    # An opaque alpha says nothing: the given mask is next.
    m, source = foreground_mask(image, np.ones_like(alpha), mask=alpha)
    assert source == "mask" and np.array_equal(m, alpha)
    with pytest.raises(InerfError, match="the mask is 2x2 pixels, the photo 600x400"):
        foreground_mask(image, None, np.zeros((2, 2), np.float32))
    # A uniform photo: GrabCut finds nothing (no traceback from OpenCV).
    assert not grabcut_mask(np.full((40, 60, 3), 0.5, np.float32)).any()


def test_normalized_coffee(coffee, hand_mask):
    out = normalize_photo(coffee.astype(np.float32) / 255, hand_mask.astype(np.float32))
    # The saucer is ~400 x 370 px: the crop (4.37 x minor) extends far past the photo, white there.
    assert out.box.side == 2 * math.ceil(0.5 * 4.37 * out.ellipse.minor)
    assert out.box.side > 1500 and out.warnings == ()
    assert np.allclose(out.image[:10, :10], 1.0) and out.mask[64, 64] == 1.0
    assert border_sides(hand_mask) == []
    # Cut off at row 300: the saucer now touches the bottom border -> a warning saying so.
    cut = normalize_photo(coffee[:300].astype(np.float32) / 255, hand_mask[:300].astype(np.float32))
    assert any("touches the photo's bottom border" in w for w in cut.warnings)
    # A GrabCut mask ends at its box (1% in): the full photo's cup and saucer are inside, not cut.
    assert border_sides(grabcut_mask(coffee.astype(np.float32) / 255), margin=GRABCUT_MARGIN) == []


def test_read_photo_grey_16bit_exif(tmp_path, coffee):
    import cv2
    from PIL import Image

    grey = cv2.cvtColor(coffee, cv2.COLOR_RGB2GRAY)
    iio.imwrite(tmp_path / "grey.png", grey)
    rgb, alpha = read_photo(tmp_path / "grey.png")
    assert rgb.shape == (400, 600, 3) and alpha is None and np.array_equal(rgb[..., 0], rgb[..., 2])
    deep = coffee.astype(np.uint16) * 257  # 16 bits per channel, same picture
    cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])
    rgb16, _ = read_photo(tmp_path / "deep.png")
    assert np.allclose(rgb16, coffee / 255.0, atol=1e-6)
    # A camera's EXIF orientation 6 (rotate 90 degrees clockwise to view) is applied.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(coffee).save(tmp_path / "portrait.jpg", exif=exif, quality=95)
    upright, _ = read_photo(tmp_path / "portrait.jpg")
    assert upright.shape == (600, 400, 3)
    assert np.abs(upright - np.rot90(coffee / 255.0, -1)).mean() < 0.02  # JPEG noise only
    mask = read_mask(FIXTURES / "coffee_mask.png", (400, 600))
    assert mask.dtype == np.float32 and set(np.unique(mask)) == {0.0, 1.0}


# ----------------------------------------------------------------------------------------------------------
# The published orbit
# ----------------------------------------------------------------------------------------------------------
def test_real_orbit_starts_at_the_source():
    from inerf.pixelnerf.pose import canonical_source_c2w
    from inerf.pixelnerf.video import real_orbit_c2w

    path = real_orbit_c2w(24, 0.0, 1.3)
    assert path.shape == (24, 4, 4)
    assert torch.allclose(path[0], canonical_source_c2w(1.3).float(), atol=1e-6)
    # Every camera looks at the object (+z of OpenCV axes points to the origin) from distance 1.3.
    centres = path[:, :3, 3]
    assert torch.allclose(centres.norm(dim=-1), torch.full((24,), 1.3), atol=1e-5)
    assert torch.allclose(path[:, :3, 2], -centres / 1.3, atol=1e-5)
    # The orbit circles the world y axis (the photo's up); elevation -30 lifts it to y = 1.3 sin 30.
    assert torch.allclose(centres[:, 1], torch.zeros(24), atol=1e-6)
    above = real_orbit_c2w(4, -30.0, 1.3)[:, :3, 3]
    assert torch.allclose(above[:, 1], torch.full((4,), 0.65), atol=1e-5)


# ----------------------------------------------------------------------------------------------------------
# inerf pixelnerf real
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photos(tmp_path_factory, coffee) -> Path:
    import cv2

    root = tmp_path_factory.mktemp("photos")
    iio.imwrite(root / "coffee.png", coffee)
    iio.imwrite(root / "coffee.jpg", coffee, quality=95)
    iio.imwrite(root / "grey.png", cv2.cvtColor(coffee, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(root / "deep.png"), (coffee.astype(np.uint16) * 257)[..., ::-1])
    iio.imwrite(root / "cut.png", np.ascontiguousarray(coffee[:, 120:]))  # the saucer's left part cut off
    iio.imwrite(root / "plain.png", np.full((60, 80, 3), 128, np.uint8))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return root


def _real(*args: str) -> int:
    return main(["pixelnerf", "real", "--quiet", "--device", "cpu", *args])


def _frames(path: Path) -> list[np.ndarray]:
    import imageio.v2 as imageio

    with imageio.get_reader(path) as reader:
        return list(iter(reader))  # the ffmpeg reader reports an infinite length


def test_real_end_to_end(photos, tiny_model, tmp_path, capsys, coffee, hand_mask):
    checkpoint, conf = tiny_model
    out = tmp_path / "out"
    args = ("--input", str(photos / "coffee.jpg"), "--out", str(out), "--checkpoint", str(checkpoint))
    rc = _real(*args, "-c", str(conf), "--num-views", "3", "--out-size", "32", "--fps", "5", "-e", "-20")
    assert rc == 0
    captured = capsys.readouterr()
    assert "coffee.jpg: mask from grabcut" in captured.out and captured.err == ""
    normalized = iio.imread(out / "coffee_normalize.png")
    assert normalized.shape == (128, 128, 3) and (normalized[:8, :8] == 255).all()
    # The written mask is the photo's, at its resolution, and matches the hand-drawn one.
    assert _iou(iio.imread(out / "coffee_mask.png") > 127, hand_mask) >= 0.8
    assert iio.imread(out / "coffee_mask_preview.png").shape[2] == 3
    frames = _frames(out / "coffee_vid.mp4")
    assert len(frames) == 3 and frames[0].shape == (32, 32, 3)
    written = sorted((out / "coffee_frames").glob("frame_*.png"))
    assert [p.name for p in written] == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
    pngs = [iio.imread(p) for p in written]
    assert pngs[0].shape == (32, 32, 3) and not np.array_equal(pngs[0], pngs[1])  # the camera moved

    # Never overwrite without --overwrite: refused before any work, the file untouched.
    before = (out / "coffee_normalize.png").read_bytes()
    assert _real(*args, "-c", str(conf), "--num-views", "2", "--out-size", "32") == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"inerf pixelnerf: error: {out / 'coffee_normalize.png'}: exists (pass --overwrite to replace it)"
    )
    assert (out / "coffee_normalize.png").read_bytes() == before
    # With --overwrite and a shorter orbit, no frame of the longer one lingers; GIF as asked.
    rc = _real(
        *args, "-c", str(conf), "--num-views", "2", "--out-size", "16", "--format", "gif", "--overwrite"
    )
    assert rc == 0
    assert len(list((out / "coffee_frames").glob("frame_*.png"))) == 2
    assert iio.imread(out / "coffee_vid.gif", index=None).shape == (2, 16, 16, 3)


def test_real_published_layout_checkpoint(photos, srn_checkpoint, tmp_path, capsys, hand_mask):
    """-n srn_car with a published-layout pixel_nerf_latest (ResNet-34, 5 x 512 ResnetFC, 278 entries)."""
    ckpt = tmp_path / "checkpoints" / "srn_car"
    ckpt.mkdir(parents=True)
    os.symlink(srn_checkpoint, ckpt / "pixel_nerf_latest")
    mask = tmp_path / "hand.png"
    iio.imwrite(mask, (hand_mask * 255).astype(np.uint8))
    rc = _real(
        "--input",
        str(photos / "coffee.png"),
        "--mask",
        str(mask),
        "--out",
        str(tmp_path / "out"),
        "-n",
        "srn_car",
        "--checkpoints_path",
        str(tmp_path / "checkpoints"),
        "--num-views",
        "2",
        "--out-size",
        "8",
        "--format",
        "gif",
    )
    assert rc == 0
    assert "mask from mask" in capsys.readouterr().out
    assert iio.imread(tmp_path / "out" / "coffee_vid.gif", index=None).shape == (2, 8, 8, 3)


def test_real_grey_and_16bit_photos(photos, tmp_path, capsys):
    rc = _real(
        "--input", str(photos / "grey.png"), str(photos / "deep.png"), "--out", str(tmp_path), "--no-video"
    )
    assert rc == 0
    grey, deep = (iio.imread(tmp_path / f"{s}_normalize.png") for s in ("grey", "deep"))
    assert grey.shape == deep.shape == (128, 128, 3)
    assert np.array_equal(grey[..., 0], grey[..., 1])  # grey stays grey
    out = capsys.readouterr().out
    assert "grey.png: mask from grabcut" in out and "deep.png: mask from grabcut" in out


def test_real_border_warning(photos, tmp_path, capsys):
    assert _real("--input", str(photos / "cut.png"), "--out", str(tmp_path), "--no-video") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"inerf pixelnerf real: warning: {photos / 'cut.png'}: ")
    assert "the object touches the photo's left border" in err[0]


@pytest.mark.parametrize(
    "files,extra,message",
    [
        (["plain.png"], [], "plain.png: no object found: the mask is empty (pass --mask"),
        (["broken.jpg"], [], "broken.jpg: unreadable image"),
        (["missing.png"], [], "--input {root}/missing.png: not found"),
        (
            ["coffee.png"],
            ["--mask", "{root}/plain.png"],
            "plain.png: the mask is 80x60 pixels, its photo 600x400",
        ),
        (["coffee.png", "grey.png"], ["--mask", "-"], "--mask: 1 mask(s) for 2 photo(s)"),
        (["coffee.png", "coffee.jpg"], [], "would both write coffee_*"),
        (["coffee.png"], ["--num-views", "0"], "--num-views must be at least 1"),
    ],
)
def test_real_bad_input(photos, tmp_path, capsys, files, extra, message):
    root = str(photos)
    args = ["--input", *(f"{root}/{f}" for f in files), "--out", str(tmp_path / "o"), "--no-video"]
    assert _real(*args, *(e.format(root=root) for e in extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message.format(root=root) in err, err


def test_real_needs_a_checkpoint_for_video(photos, tmp_path, capsys):
    assert (
        _real("--input", str(photos / "coffee.png"), "--out", str(tmp_path), "--checkpoints_path", "nowhere")
        == 2
    )
    err = capsys.readouterr().err
    assert "checkpoint not found: nowhere/srn_car/pixel_nerf_latest" in err
    assert not list(tmp_path.iterdir())  # refused before any file was written


# ----------------------------------------------------------------------------------------------------------
# inerf pixelnerf pose on raw photos
# ----------------------------------------------------------------------------------------------------------
def test_pose_on_raw_photos(photos, tiny_model, tmp_path, capsys, coffee):
    checkpoint, conf = tiny_model
    iio.imwrite(tmp_path / "other.png", np.ascontiguousarray(coffee[:, ::-1]))  # the mirrored photo
    out = tmp_path / "pose"
    common = [
        "pixelnerf",
        "pose",
        "--checkpoint",
        str(checkpoint),
        "-c",
        str(conf),
        "--quiet",
        "--device",
        "cpu",
    ]
    rc = main(
        [
            *common,
            "--input",
            str(photos / "coffee.png"),
            "--target",
            str(tmp_path / "other.png"),
            "--steps",
            "2",
            "--rays",
            "16",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    assert "input_normalize.png" in capsys.readouterr().out
    src, tgt = iio.imread(out / "input_normalize.png"), iio.imread(out / "target_normalize.png")
    assert src.shape == tgt.shape == (128, 128, 3)
    # The mirrored photo normalises to (nearly) the mirrored crop.
    assert np.abs(src[:, ::-1].astype(int) - tgt.astype(int)).mean() < 4.0
    record = json.loads((out / "pose.json").read_text())
    assert record["normalized"] is True and record["status"] == "ok"
    # --no-normalize takes images as they are; masks then make no sense.
    rc = main(
        [
            *common,
            "--input",
            str(out / "input_normalize.png"),
            "--target",
            str(out / "target_normalize.png"),
            "--no-normalize",
            "--target-mask",
            str(photos / "plain.png"),
            "--steps",
            "1",
        ]
    )
    assert rc == 2
    assert "--input-mask and --target-mask are only used without --no-normalize" in capsys.readouterr().err
    # A raw photo that holds no object: one line naming it.
    rc = main([*common, "--input", str(photos / "plain.png"), "--target", str(tmp_path / "other.png")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "plain.png: no object found" in err


def test_figure_script(tiny_model, tmp_path, capsys):
    """benchmarks/real_figure.py: photo -> mask -> crop -> three frames, with the model --checkpoint selects."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "real_figure", Path(__file__).parents[2] / "benchmarks" / "real_figure.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    checkpoint, conf = tiny_model
    out = tmp_path / "real.png"
    argv = ["--out", str(out), "--checkpoint", str(checkpoint), "-c", str(conf), "--label", "tiny"]
    assert (
        mod.main([*argv, "--num-views", "8", "--frames", "1,2,4", "--out-size", "16", "--device", "cpu"]) == 0
    )
    figure = iio.imread(out)
    assert figure.ndim == 3 and figure.shape[1] > 3 * figure.shape[0]  # one row of six panels
    assert "16-px frame" in capsys.readouterr().out
