"""TinyRenderer as an exact pinhole camera: the half-pixel correction, supersampling, depth, back faces."""

from __future__ import annotations

import numpy as np
import pytest
from synth_helpers import cube

from inerf.synth.meshes import MeshPart, write_part_obj
from inerf.synth.render import (
    RenderSettings,
    TinyRenderer,
    linear_to_srgb,
    projection_matrix,
    srgb_to_linear,
    view_matrix,
)
from inerf.synth.trajectories import look_at


def _gl(c2w_cv: np.ndarray) -> np.ndarray:
    out = c2w_cv.copy()
    out[:3, 1:3] *= -1  # OpenCV -> OpenGL camera axes (test-local; the package uses conventions.py)
    return out


def _octahedron(centre, r):
    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float) * r + centre
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return v, f


def _project(p, c2w_cv, fx, fy, cx, cy):
    q = np.linalg.inv(c2w_cv) @ np.r_[p, 1.0]
    return np.array([fx * q[0] / q[2] + cx, fy * q[1] / q[2] + cy]), q[2]


def test_projection_matrix_samples_pixel_centres():
    """Column i of TinyRenderer's image is sampled at x_ndc = 2i/W - 1, row j at y_ndc = 1 - 2(j+1)/H
    (measured); with our matrix those NDC values hold the points at u = i + 0.5, v = j + 0.5."""
    W, H, fx, fy, cx, cy = 40, 30, 50.0, 55.0, 21.0, 14.0
    P = projection_matrix(fx, fy, cx, cy, W, H, 1.0, 10.0)
    for i, j in [(0, 0), (7, 11), (39, 29)]:
        z = 3.0  # a point at depth 3 in front of an OpenGL camera (camera z = -3)
        x_cv, y_cv = (i + 0.5 - cx) / fx * z, (j + 0.5 - cy) / fy * z
        clip = P @ np.array([x_cv, -y_cv, -z, 1.0])  # OpenCV -> OpenGL camera axes: y and z flip
        ndc = clip[:3] / clip[3]
        assert ndc[0] == pytest.approx(2 * i / W - 1, abs=1e-12)
        assert ndc[1] == pytest.approx(1 - 2 * (j + 1) / H, abs=1e-12)


def test_projection_matrix_centred_camera_has_only_the_half_pixel_shift():
    P = projection_matrix(100.0, 100.0, 32.0, 24.0, 64, 48, 0.5, 5.0)
    assert P[0, 2] == pytest.approx(1 / 64) and P[1, 2] == pytest.approx(1 / 48)
    # Depth row: z = -near -> ndc -1, z = -far -> ndc +1 (standard OpenGL).
    for z, expected in [(0.5, -1.0), (5.0, 1.0)]:
        clip = P @ np.array([0, 0, -z, 1.0])
        assert clip[2] / clip[3] == pytest.approx(expected)


def test_view_matrix_inverts_c2w():
    c2w = _gl(look_at([1.0, -2.0, 1.5]))
    assert np.allclose(view_matrix(c2w) @ c2w, np.eye(4), atol=1e-12)


def test_srgb_round_trip():
    x = np.linspace(0, 1, 101, dtype=np.float32)
    assert np.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    codes = np.arange(256, dtype=np.uint8)
    assert np.allclose(srgb_to_linear(codes), srgb_to_linear(codes.astype(np.float32) / 255), atol=1e-6)


def test_supersample_must_be_odd():
    with pytest.raises(ValueError):
        RenderSettings(supersample=2)


@pytest.fixture(scope="module")
def renderer():
    with TinyRenderer(RenderSettings(supersample=9)) as r:
        yield r


def test_markers_land_where_projected(renderer, tmp_path):
    """Small octahedra at known points: the alpha-weighted centre of each blob sits within 0.1 px of the
    point's projection, on a non-square image with an off-centre principal point."""
    W, H, fx, fy, cx, cy = 48, 40, 60.0, 58.0, 25.0, 18.5
    c2w = look_at([0.6, -2.4, 1.1])
    for k, point in enumerate([[0.3, 0.2, 0.1], [-0.4, 0.3, -0.2], [0.1, -0.5, 0.35]]):
        v, f = _octahedron(np.array(point), 0.03)
        obj = write_part_obj(MeshPart("m", v, f, (1.0, 0.0, 0.0)), tmp_path / f"m{k}")
        renderer.load([(obj, (1.0, 0.0, 0.0))])
        res = renderer.render(_gl(c2w), fx, fy, cx, cy, W, H, 0.5, 5.0)
        a = res.alpha
        jj, ii = np.mgrid[0:H, 0:W]
        centroid = np.array([((ii + 0.5) * a).sum(), ((jj + 0.5) * a).sum()]) / a.sum()
        uv, _ = _project(np.array(point), c2w, fx, fy, cx, cy)
        assert np.abs(centroid - uv).max() < 0.1, (point, centroid, uv)


def test_depth_is_exact_at_pixel_centres(renderer, tmp_path):
    """A tilted quad: the stored z-depth at every covered pixel centre equals the analytic ray-plane depth."""
    v = np.array([[-1, -1, 0.2], [1, -1, -0.2], [1, 1, -0.2], [-1, 1, 0.2]], float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    obj = write_part_obj(MeshPart("quad", v, f), tmp_path / "quad")
    renderer.load([(obj, (0.5, 0.5, 0.5))])
    W = H = 24
    fx = fy = 30.0
    c2w = look_at([0.3, -0.4, 3.0], up=(0.0, 1.0, 0.0))
    res = renderer.render(_gl(c2w), fx, fy, W / 2, H / 2, W, H, 1.0, 5.0, depth=True)
    n = np.cross(v[1] - v[0], v[2] - v[0])
    hit = res.depth > 0
    assert hit.sum() > 100
    jj, ii = np.nonzero(hit)
    d_cam = np.stack([(ii + 0.5 - W / 2) / fx, (jj + 0.5 - H / 2) / fy, np.ones(len(ii))], axis=1)
    d_world = d_cam @ c2w[:3, :3].T  # ray directions with unit z-depth step
    t = ((v[0] - c2w[:3, 3]) @ n) / (d_world @ n)
    assert np.abs(res.depth[hit] - t).max() < 1e-5


def test_open_surface_is_drawn_from_behind_only_when_double_sided(tmp_path):
    v = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0, 0.5, 0]], float)
    part = MeshPart("tri", v, np.array([[0, 1, 2]]))
    behind = _gl(look_at([0.0, 0.0, -3.0], up=(0.0, 1.0, 0.0)))  # sees the clockwise (back) side
    with TinyRenderer(RenderSettings(supersample=1)) as r:
        for double, expect_visible in [(None, True), (False, False)]:
            obj = write_part_obj(part, tmp_path / f"tri{double}", double_sided=double)
            r.load([(obj, (1.0, 1.0, 1.0))])
            res = r.render(behind, 40.0, 40.0, 16, 16, 32, 32, 1.0, 5.0)
            assert (res.alpha.sum() > 0) == expect_visible


def test_inside_out_closed_mesh_is_turned_outwards(tmp_path):
    """A cube wound inside out is rewound: same silhouette and the same (front) depth as the right one."""
    v, f = cube()
    c2w = _gl(look_at([2.0, -2.5, 1.5]))
    depths = []
    with TinyRenderer(RenderSettings(supersample=1)) as r:
        for name, faces in [("out", f), ("in", f[:, ::-1])]:
            obj = write_part_obj(MeshPart(name, v, faces), tmp_path / name)
            r.load([(obj, (1.0, 1.0, 1.0))])
            depths.append(r.render(c2w, 40.0, 40.0, 16, 16, 32, 32, 1.0, 8.0, depth=True).depth)
    assert np.abs(depths[0] - depths[1]).max() < 1e-6


def test_supersampled_alpha_is_fractional_and_colour_straight(tmp_path):
    """Edges get soft alpha; colour is not darkened by coverage (straight alpha)."""
    v, f = cube(0.4)
    obj = write_part_obj(MeshPart("c", v, f, (1.0, 1.0, 1.0)), tmp_path / "c")
    with TinyRenderer(RenderSettings(supersample=5, ambient=1.0, diffuse=0.0, specular=0.0)) as r:
        r.load([(obj, (1.0, 1.0, 1.0))])
        res = r.render(_gl(look_at([1.5, -2.0, 1.2])), 40.0, 40.0, 16, 16, 32, 32, 1.0, 6.0)
    edge = (res.alpha > 0.05) & (res.alpha < 0.95)
    assert edge.sum() > 10
    assert res.rgb[edge].min() > 0.9  # full ambient on a white cube: white wherever covered
    assert (res.rgb[res.alpha == 0] == 0).all()


def test_point_triangle_distance_reference():
    """The verifier's closest-point routine against brute force over a dense sampling of the triangle."""
    from inerf.synth.verify import closest_points_on_triangles

    rng = np.random.default_rng(0)
    a, b, c = np.array([0.0, 0, 0]), np.array([1.0, 0.2, 0]), np.array([0.3, 1.0, 0.4])
    s, t = np.meshgrid(np.linspace(0, 1, 301), np.linspace(0, 1, 301))
    keep = s + t <= 1
    samples = a + np.outer(s[keep], b - a) + np.outer(t[keep], c - a)
    p = rng.normal(scale=1.0, size=(50, 3)) + 0.4
    q = closest_points_on_triangles(p, *(np.broadcast_to(x, (50, 3)) for x in (a, b, c)))
    exact = np.linalg.norm(q - p, axis=1)
    brute = np.sqrt(((p[:, None, :] - samples[None]) ** 2).sum(-1)).min(axis=1)
    assert np.all(exact <= brute + 1e-12) and np.abs(exact - brute).max() < 5e-3


def test_rendering_only_the_object_box_changes_nothing(tmp_path):
    """``bound_points`` restricts rasterisation to the projected box of the object: same pixels exactly."""
    v, f = cube(0.35)
    v = v @ np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]]) + [0.1, -0.2, 0.05]
    obj = write_part_obj(MeshPart("c", v, f, (0.9, 0.6, 0.2)), tmp_path / "c")
    c2w = _gl(look_at([1.4, -2.1, 1.0]))
    with TinyRenderer(RenderSettings(supersample=3)) as r:
        r.load([(obj, (0.9, 0.6, 0.2))])
        full = r.render(c2w, 45.0, 45.0, 20.0, 17.0, 40, 36, 1.0, 5.0, depth=True)
        boxed = r.render(c2w, 45.0, 45.0, 20.0, 17.0, 40, 36, 1.0, 5.0, depth=True, bound_points=v)
    assert 0.05 < full.alpha.mean() < 0.5  # the box is a real saving here
    assert np.array_equal(full.alpha, boxed.alpha)
    assert np.allclose(full.rgb, boxed.rgb, atol=1e-6)
    assert np.allclose(full.depth, boxed.depth, atol=1e-6)
