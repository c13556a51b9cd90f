"""The model-error term (:mod:`inerf.pose.calibration`): a field with a known systematic error (the
analytic ball, shifted and enlarged against the scene the targets were rendered from) makes the robust
covariance overconfident; the term measured on calibration views with known poses brings the coverage of
other views back into the 85-99% band."""

from __future__ import annotations

import json
import math

import pytest
import torch
from pose_scene import make_views, orbit_poses

from inerf.errors import InerfError
from inerf.geometry import se3
from inerf.pose.calibration import (
    CALIBRATION_FILE,
    CalibrationConfig,
    ModelError,
    adjoint,
    calibrate,
    fit_model_error,
    load_calibration,
    save_calibration,
)
from inerf.pose.config import PoseConfig, SamplingConfig
from inerf.pose.perturb import Perturbation
from inerf.pose.protocol import ProtocolConfig, run_pose_benchmark
from inerf.pose.uncertainty import UncertaintyConfig
from inerf.render.model import Model


class DistortedBall(torch.nn.Module):
    """The ball seen through a wrong model: ``field((xyz - shift) / scale)``, i.e. its geometry and texture
    moved by ``shift`` and enlarged by ``scale`` (what a trained field's error looks like to the pose
    solver: coherent over the whole image)."""

    def __init__(self, field, shift=(0.015, -0.01, 0.008), scale=1.004):
        super().__init__()
        self.field, self.scale = field, scale
        self.register_buffer("shift", torch.tensor(shift))

    def forward(self, xyz, viewdirs=None):
        return self.field((xyz - self.shift) / self.scale, viewdirs)


SOLVER = PoseConfig(optimizer="lm", steps=8, n_rays=256, sampling=SamplingConfig("random"))
UNCERTAINTY = UncertaintyConfig(rays=512, tiles=4)


def test_adjoint_moves_a_right_twist_to_a_left_one():
    T = se3.se3_exp(torch.tensor([0.3, -0.2, 1.5, 0.4, -0.7, 0.2], dtype=torch.float64))
    xi = torch.tensor([0.01, 0.02, -0.03, 0.02, -0.01, 0.015], dtype=torch.float64)
    left = se3.se3_exp(adjoint(T) @ xi) @ T
    assert torch.allclose(T @ se3.se3_exp(xi), left, atol=1e-12)


def test_fit_recovers_a_known_diagonal_and_ignores_explained_error():
    gen = torch.Generator().manual_seed(0)
    n = 400
    d_true = torch.tensor([1e-4, 4e-4, 9e-4, 1e-6, 4e-6, 0.0], dtype=torch.float64)
    # Per-solve residual covariances of varying size, plus the model error.
    C = torch.diag_embed(torch.rand(n, 6, generator=gen, dtype=torch.float64) * 2e-6 + 1e-7)
    e = torch.randn(n, 6, generator=gen, dtype=torch.float64) * (C.diagonal(dim1=1, dim2=2) + d_true).sqrt()
    D = fit_model_error(e, C)
    assert torch.allclose(D.diagonal()[:3], d_true[:3], rtol=0.2)
    assert torch.allclose(D.diagonal()[3:5], d_true[3:5], rtol=0.3)
    # The last axis is explained by C alone: its term is (near) zero against C's ~1e-6.
    assert float(D[5, 5]) < 3e-7
    assert torch.equal(D, torch.diag(D.diagonal()))


@pytest.fixture(scope="module")
def distorted(field, render_config):
    """``(model with the wrong geometry, calibration views, check views)``: views are exact renders of the
    true ball; the calibration and check views are different cameras of the same orbit."""
    model = Model(DistortedBall(field), None, render_config)
    cal_views = make_views(field, render_config, orbit_poses(6, elevation_deg=20.0, phase=0.0))
    check_views = make_views(field, render_config, orbit_poses(10, elevation_deg=30.0, phase=0.5))
    return model, cal_views, check_views


def test_model_error_term_brings_coverage_into_the_band(distorted, tmp_path):
    model, cal_views, check_views = distorted
    cal = calibrate(
        model,
        cal_views,
        SOLVER,
        CalibrationConfig(views=6, trials=3, rot_deg=5.0, trans=0.05),
        UNCERTAINTY,
        log=lambda *a: None,
    )
    print(cal.summary())
    assert cal.solves >= 15
    # The wrong geometry moves every solution coherently: the residuals alone are overconfident.
    assert cal.inside_before < 0.6
    assert 0.85 <= cal.inside_after <= 1.0
    me = cal.model_error
    assert me.rotation_sigma_deg < 1.0 and 0.005 < me.translation_sigma < 0.1
    path = save_calibration(cal, tmp_path)
    assert path.name == CALIBRATION_FILE
    with pytest.raises(InerfError, match="--overwrite"):
        save_calibration(cal, tmp_path)
    loaded = load_calibration(tmp_path)
    assert torch.allclose(loaded.covariance, me.covariance)

    # Held-out views (other cameras, other starts): coverage without and with the term.
    protocol = ProtocolConfig(
        images=10,
        trials=2,
        perturbation=Perturbation(10.0, 0.05, sampling="uniform", pivot="origin"),
        checkpoints=(SOLVER.steps,),
    )
    result = run_pose_benchmark(
        model,
        check_views,
        [SOLVER.sampling],
        SOLVER,
        protocol,
        progress=False,
        log=lambda *a: None,
        uncertainty=UNCERTAINTY,
        model_error=loaded,
    )
    n = SOLVER.steps
    rows = [
        t
        for t in result.trials
        if "inside_ellipsoid" in t and t[f"rot_err@{n}"] < 5 and t[f"trans_err@{n}"] < 0.05
    ]
    assert len(rows) >= 16
    before = sum(t["inside_ellipsoid_residual"] for t in rows) / len(rows)
    after = sum(t["inside_ellipsoid"] for t in rows) / len(rows)
    print(f"held-out coverage: {100 * before:.0f}% -> {100 * after:.0f}% of {len(rows)}")
    assert before < 0.6
    assert 0.85 <= after <= 1.0
    assert all(t["model_error_applied"] for t in rows)


def test_load_calibration_absent_and_broken(tmp_path):
    assert load_calibration(tmp_path) is None
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"model_error": {"covariance": [[1.0]]}}))
    with pytest.raises(InerfError, match=CALIBRATION_FILE):
        load_calibration(tmp_path)


def test_uncertainty_json_says_whether_the_term_was_applied(field, render_config, scene):
    from inerf.pose.uncertainty import pose_uncertainty

    target, gt = scene
    model = Model(field, None, render_config)
    plain = pose_uncertainty(model, target, gt, UNCERTAINTY)
    D = torch.diag(torch.tensor([1e-4, 1e-4, 4e-4, 1e-5, 1e-5, 1e-5], dtype=torch.float64))
    with_term = pose_uncertainty(model, target, gt, UNCERTAINTY, model_error=ModelError(D, "cal.json"))
    assert plain.to_json()["model_error_applied"] is False
    record = with_term.to_json()
    assert record["model_error_applied"] is True and record["model_error_source"] == "cal.json"
    assert with_term.rotation_sigma_deg > plain.rotation_sigma_deg
    # The term's rotation part is frame-independent: the rotation covariance grows by exactly R D_rot R^T.
    R = gt[:3, :3].double()
    assert torch.allclose(
        with_term.rotation_covariance() - plain.rotation_covariance(), R @ D[3:, 3:] @ R.T, atol=1e-12
    )
    assert math.isclose(
        float(torch.trace(with_term.with_estimator("residual").covariance)),
        float(torch.trace(plain.covariance)),
    )


def test_calibrate_cli_writes_the_term_and_estimate_applies_it(fake_run, tmp_path, capsys):
    """``inerf calibrate`` on the (exact) analytic run, then ``inerf estimate`` with it: pose.json says the
    term was applied; without one it says not; an existing file is not overwritten."""
    from inerf.cli.main import main

    cal = tmp_path / "cal.json"
    argv = ["calibrate", "--run", "RUN", "--views", "2", "--trials", "1", "--preset", "robust"]
    argv += ["--steps", "6", "--rays", "256", "--uncertainty-rays", "256", "--quiet", "--out", str(cal)]
    assert main(argv) == 0
    record = json.loads(cal.read_text())
    assert record["solves"] == 2 and record["attempted"] == 2
    assert len(record["model_error"]["covariance"]) == 6
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]

    est = ["estimate", "--run", "RUN", "--view", "1", "--split", "test", "--steps", "3", "--rays", "64"]
    est += ["--init-from-gt", "--frames", "0", "--no-video", "--quiet", "--uncertainty-rays", "256"]
    assert main([*est, "--calibration", str(cal), "--out", str(tmp_path / "a")]) == 0
    assert (
        json.loads((tmp_path / "a" / "pose.json").read_text())["uncertainty"]["model_error_applied"] is True
    )
    assert main([*est, "--out", str(tmp_path / "b")]) == 0
    assert (
        json.loads((tmp_path / "b" / "pose.json").read_text())["uncertainty"]["model_error_applied"] is False
    )
    capsys.readouterr()
    assert main([*est, "--calibration", str(tmp_path / "nope.json"), "--out", str(tmp_path / "c")]) == 2
    assert "--calibration" in capsys.readouterr().err


def test_full_fit_finds_a_term_along_a_combination_of_axes():
    """A model error along one oblique direction (a sideways shift that a turn partly undoes): the full
    form puts its variance there; the diagonal one must spread it over the axes."""
    gen = torch.Generator().manual_seed(1)
    n = 300
    u = torch.tensor([1.0, 0.0, 0.0, 0.0, -0.25, 0.0], dtype=torch.float64)
    C = torch.eye(6, dtype=torch.float64).expand(n, 6, 6) * 1e-8
    e = (C.diagonal(dim1=1, dim2=2).sqrt()) * torch.randn(n, 6, generator=gen, dtype=torch.float64)
    e = e + 0.01 * torch.randn(n, 1, generator=gen, dtype=torch.float64) * u
    D = fit_model_error(e, C, form="full")
    lam, V = torch.linalg.eigh(D)
    assert float(lam[-1]) == pytest.approx(1e-4 * float(u @ u), rel=0.25)
    assert abs(float(V[:, -1] @ u)) / float(u.norm()) > 0.99
    assert float(lam[-2]) < 1e-2 * float(lam[-1])
    with pytest.raises(ValueError, match="form"):
        fit_model_error(e, C, form="scalar")
