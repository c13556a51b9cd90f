"""Helpers of the pixelNeRF training tests (the fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

TINY_CONF = """
# A pixelNeRF small enough to train for a few hundred steps in seconds on one CPU thread.
model {
    encoder { backbone = resnet18, pretrained = false, keep_unused_layers = false, num_layers = 2 }
    code { num_freqs = 4, freq_factor = 1.5 }
    mlp_coarse { type = resnet, n_blocks = 3, d_hidden = 32, combine_layer = 2 }
    mlp_fine { type = empty }
}
renderer { n_coarse = 16, n_fine = 8, n_fine_depth = 4 }
data { format = srn }
"""


def train_config(blob_data: Path, tiny_conf: Path, folder: Path, **changes):
    """A :class:`PixelNeRFTrainConfig` of the tiny model on the blobs, writing under ``folder``."""
    from inerf.pixelnerf.train import PixelNeRFTrainConfig

    base = {
        "datadir": str(blob_data),
        "name": "tiny",
        "conf": str(tiny_conf),
        "batch_size": 2,
        "nviews": "1 2",
        "ray_batch_size": 32,
        "lr": 1e-3,
        "no_bbox_step": 100,
        "checkpoints_path": str(folder / "checkpoints"),
        "visual_path": str(folder / "visuals"),
        "logs_path": str(folder / "logs"),
        "val_every": 0,
        "save_every": 1000,
        "print_every": 1,
        "progress": False,
    }
    base.update(changes)
    return PixelNeRFTrainConfig(**base)


def train_in_child(config_kwargs: dict) -> None:
    """Train until stopped (the target of the SIGKILL test's child processes)."""
    import torch

    torch.set_num_threads(1)
    from inerf.pixelnerf.train import PixelNeRFTrainConfig, PixelNeRFTrainer

    PixelNeRFTrainer(PixelNeRFTrainConfig(**config_kwargs)).run()
