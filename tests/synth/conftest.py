"""Fixtures for the dataset-generator tests: a private cache, and small datasets generated once per session
(at 48-64 px with a few views each, so the whole folder runs in well under a minute on two cores)."""

from __future__ import annotations

import os

import pytest

from inerf.synth.category import CategoryConfig, generate_category
from inerf.synth.scene import SceneConfig, generate_scene


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Extracted and derived meshes go to a fresh folder, not the user's ~/.cache (workers inherit it)."""
    old = os.environ.get("INERF_CACHE_DIR")
    os.environ["INERF_CACHE_DIR"] = str(tmp_path_factory.mktemp("inerf-cache"))
    yield
    if old is None:
        os.environ.pop("INERF_CACHE_DIR", None)
    else:
        os.environ["INERF_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def duck_scene(tmp_path_factory):
    """The duck (textured, closed) at 64 x 64: 5/2/3 views with depth and a preview, rendered by two worker
    processes (this is also the test of the process pool)."""
    out = tmp_path_factory.mktemp("scenes") / "duck"
    config = SceneConfig(size=64, n_train=5, n_val=2, n_test=3, depth=True, preview=True, workers=2, seed=3)
    meta = generate_scene("duck", out, config, progress=False)
    return out, meta


@pytest.fixture(scope="session")
def blob_category(tmp_path_factory):
    """Four random-URDF blobs, 3 views each at 32 x 32, split 2/1/1."""
    out = tmp_path_factory.mktemp("categories") / "blobs"
    config = CategoryConfig(views=3, size=32, split=(0.5, 0.25, 0.25), instances=4, workers=1, preview=True)
    metas = generate_category("random-urdfs", None, out, config, progress=False)
    return out, metas
