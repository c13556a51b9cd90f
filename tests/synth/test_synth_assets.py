"""Finding assets by name, placing them in the world, and the Sweet Home 3D catalogs."""

from __future__ import annotations

import numpy as np
import pytest
from synth_helpers import requires_sweethome3d

from inerf.errors import InerfError
from inerf.synth import sweethome3d
from inerf.synth.assets import (
    PYBULLET_ASSETS,
    load_mesh_vertices,
    normalise_transform,
    prepare_asset,
    resolve_asset,
)


def _world(mesh_path, object_to_world):
    v = load_mesh_vertices(mesh_path)
    M = np.asarray(object_to_world)
    return v @ M[:3, :3].T + M[:3, 3]


@pytest.mark.parametrize("name", list(PYBULLET_ASSETS))
def test_named_pybullet_assets_exist(name):
    info = resolve_asset(name)
    assert info.source == "pybullet_data" and info.path.is_file() and "pybullet" in info.package


def test_random_urdf_names_are_normalised():
    assert resolve_asset("random_urdfs/7").name == "random_urdfs/007"
    with pytest.raises(InerfError, match="random_urdfs/NNN"):
        resolve_asset("random_urdfs/x")


def test_unknown_and_missing_assets_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("INERF_SWEETHOME3D_DIR", str(tmp_path))  # no catalogs: the lookup must still explain
    with pytest.raises(InerfError, match="apt-get install sweethome3d-furniture"):
        resolve_asset("no_such_thing")
    with pytest.raises(InerfError, match="does not exist"):
        resolve_asset(str(tmp_path / "missing.obj"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InerfError, match="unsupported mesh format"):
        resolve_asset(str(tmp_path / "notes.txt"))
    with pytest.raises(InerfError, match="unknown pybullet_data asset"):
        resolve_asset("pybullet:nothing")


def test_unreadable_mesh_is_a_one_line_error(tmp_path):
    bad = tmp_path / "broken.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 9\nend_header\n\x00")
    with pytest.raises(InerfError) as err:
        prepare_asset(resolve_asset(str(bad)), cache=tmp_path / "cache")
    assert "\n" not in str(err.value)


def test_normalise_transform():
    pts = np.array([[1.0, 2.0, 3.0], [3.0, 3.0, 3.5]])
    T = normalise_transform(pts, "max_side", 2.0)
    w = pts @ T[:3, :3].T + T[:3, 3]
    assert np.allclose(w.min(0) + w.max(0), 0) and np.isclose((w.max(0) - w.min(0)).max(), 2.0)
    T = normalise_transform(pts, "diagonal", 1.0)
    w = pts @ T[:3, :3].T + T[:3, 3]
    assert np.isclose(np.linalg.norm(w.max(0) - w.min(0)), 1.0)
    with pytest.raises(InerfError, match="degenerate"):
        normalise_transform(np.zeros((3, 3)))


@pytest.mark.parametrize("name", ["duck", "jenga", "table", "torus"])
def test_object_to_world_maps_the_mesh_file(name, tmp_path):
    """The recorded transform takes the mesh file's vertices (as trimesh loads them) to the rendered ones;
    the object is a cube of side 2 at the origin. The table is the union of its URDF's five visuals."""
    a = prepare_asset(resolve_asset(name), cache=tmp_path)
    assert np.allclose(_world(a.mesh_path, a.object_to_world), a.vertices, atol=1e-9)
    lo, hi = a.bounds
    assert np.allclose(lo + hi, 0, atol=1e-9) and np.isclose((hi - lo).max(), 2.0)
    assert a.meta()["mesh_path"] == str(a.mesh_path)


def test_up_axis():
    """The duck's mesh is Y-up: auto turns it so its height (the smallest extent here) is along z."""
    auto = prepare_asset(resolve_asset("duck"))
    as_is = prepare_asset(resolve_asset("duck", up="z"))
    ext_auto, ext_z = np.ptp(auto.vertices, axis=0), np.ptp(as_is.vertices, axis=0)
    assert np.allclose(ext_auto, ext_z[[0, 2, 1]])


def test_properties_parser():
    text = (
        "# comment\n! also\nname#1=Oak chair\nkey\\:with\\=sep : value \\u00e9\n"
        "long=first \\\n    second\nempty=\n"
    )
    props = sweethome3d.parse_properties(text)
    assert props == {
        "name#1": "Oak chair",
        "key:with=sep": "value \u00e9",
        "long": "first second",
        "empty": "",
    }


def test_missing_catalogs_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("INERF_SWEETHOME3D_DIR", str(tmp_path))
    with pytest.raises(InerfError, match="apt-get install sweethome3d-furniture"):
        resolve_asset("sweethome3d:oakChair")


@requires_sweethome3d
def test_sweethome3d_lookup():
    by_key = sweethome3d.find_model("blendswap-cc-0/oakChair")
    assert sweethome3d.find_model("oakchair") == by_key == sweethome3d.find_model("Oak chair")
    assert by_key.creator and by_key.licence[0] == "CC0 1.0"
    with pytest.raises(InerfError, match="ambiguous"):
        sweethome3d.find_model("Chair")
    with pytest.raises(InerfError, match="did you mean"):
        sweethome3d.find_model("oakchiar")


@requires_sweethome3d
def test_sweethome3d_categories():
    chairs = {m.name for m in sweethome3d.models_in_category("chair")}
    assert {"Chair", "Armchair", "Oak chair"} <= chairs
    tables = {m.name for m in sweethome3d.models_in_category("table")}
    assert "Coffee table" in tables and "Table fan" not in tables
    cars = {m.name for m in sweethome3d.models_in_category("car")}
    assert "Ford Focus" in cars and "Card game" not in cars
    with pytest.raises(InerfError, match="no Sweet Home 3D model"):
        sweethome3d.models_in_category("spaceship")


@requires_sweethome3d
def test_sweethome3d_model_is_upright_and_credited(tmp_path):
    """modelRotation and the Y-up fix put the chair on its legs (tallest along z); CC-BY credit names the
    creator and the licence."""
    info = resolve_asset("scopia/chair")  # has a modelRotation in its catalog
    assert info.model_rotation is not None
    a = prepare_asset(info, cache=tmp_path)
    ext = np.ptp(a.vertices, axis=0)
    assert ext[2] == ext.max()
    assert np.allclose(_world(a.mesh_path, a.object_to_world), a.vertices, atol=1e-9)
    assert "CC BY 3.0" in info.attribution and info.creator in info.attribution
    assert a.mesh_path.is_relative_to(tmp_path)  # extracted into the cache, not next to the archive
