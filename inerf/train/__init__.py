"""Training radiance fields on posed images, and the run directories that hold the results.

``train(TrainConfig(...))`` fits a field (``inerf train``); ``load_run(run_dir, device)`` gives back the
trained fields and the settings to render them with (what ``inerf render`` and the pose engine use).
"""

from inerf.train.checkpoint import DatasetInfo, LoadedRun, load_run, save_checkpoint
from inerf.train.trainer import MODEL_PRESETS, TrainConfig, Trainer, TrainResult, train

__all__ = [
    "MODEL_PRESETS",
    "DatasetInfo",
    "LoadedRun",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "load_run",
    "save_checkpoint",
    "train",
]
