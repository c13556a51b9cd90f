"""Shared pixelNeRF fixtures: the published-layout checkpoint (generated once per session, ~113 MB, in a
temporary folder -- never committed) and the model loaded from it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def _make_checkpoint_module():
    spec = importlib.util.spec_from_file_location(
        "pixelnerf_make_checkpoint", FIXTURES / "make_checkpoint.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def srn_checkpoint(tmp_path_factory) -> Path:
    """``pixel_nerf_latest`` of the ``srn`` config with the fixture's deterministic weights."""
    out = tmp_path_factory.mktemp("pixelnerf_ckpt") / "pixel_nerf_latest"
    _make_checkpoint_module().main(str(FIXTURES / "keys_srn.json"), str(out))
    yield out
    out.unlink(missing_ok=True)  # 113 MB: pytest keeps its last temporary folders around


@pytest.fixture(scope="session")
def srn_model(srn_checkpoint):
    """The ``srn`` model loaded strictly from :func:`srn_checkpoint` (eval mode, frozen). Tests call
    ``encode`` themselves before evaluating points."""
    from inerf.pixelnerf import load_pixelnerf

    return load_pixelnerf(srn_checkpoint, "srn")


@pytest.fixture(scope="session")
def case_srn():
    import torch

    return torch.load(FIXTURES / "case_srn.pt", map_location="cpu", weights_only=True)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run these tests on one intra-op thread. The convolutions here are tiny, so threads only add
    synchronisation; on a loaded 2-core CI runner, 2 spinning OpenMP threads made one ResNet forward
    70x slower (0.9 s instead of 13 ms). Restored afterwards for other packages' tests."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------------------------
# Training fixtures: a tiny generated category and a tiny pixelNeRF config
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def blob_data(tmp_path_factory) -> Path:
    """Six random-URDF blobs at 32 x 32 in the SRN layout (``<root>_train``: 4 objects x 8 views, ``_val``
    and ``_test``: 1 object x 6 views on the shared spiral), made by ``inerf synth category``. Returns the
    root to pass as ``-D``."""
    import os

    pytest.importorskip("pybullet", reason="pybullet (the random-URDF assets) is not installed")
    from inerf.synth.category import CategoryConfig, generate_category

    base = tmp_path_factory.mktemp("blob_category")
    old = os.environ.get("INERF_CACHE_DIR")
    os.environ["INERF_CACHE_DIR"] = str(base / "cache")  # never the user's ~/.cache
    try:
        config = CategoryConfig(
            views=8, eval_views=6, size=32, split=(0.67, 0.17, 0.16), instances=6, workers=1, seed=1
        )
        generate_category("random-urdfs", None, base / "blobs", config, progress=False)
    finally:
        if old is None:
            os.environ.pop("INERF_CACHE_DIR", None)
        else:
            os.environ["INERF_CACHE_DIR"] = old
    return base / "blobs"


@pytest.fixture(scope="session")
def tiny_conf(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pixelnerf_conf") / "tiny.conf"
    from pixelnerf_helpers import TINY_CONF

    path.write_text(TINY_CONF)
    return path


@pytest.fixture(scope="session")
def tiny_run(blob_data, tiny_conf, tmp_path_factory) -> Path:
    """A tiny model trained for 60 steps on the blobs; returns its checkpoint folder."""
    from pixelnerf_helpers import train_config

    from inerf.pixelnerf.train import PixelNeRFTrainer

    folder = tmp_path_factory.mktemp("tiny_run")
    PixelNeRFTrainer(train_config(blob_data, tiny_conf, folder, max_steps=60, print_every=20)).run()
    return folder / "checkpoints" / "tiny"
