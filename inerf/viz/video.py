"""Writing frame sequences as GIF (Pillow) and MP4 (H.264 through imageio-ffmpeg)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from inerf.viz.overlay import to_uint8

__all__ = ["pad_even", "write_gif", "write_mp4"]


def _frames(frames) -> list[np.ndarray]:
    out = [to_uint8(f) for f in frames]
    if not out:
        raise ValueError("no frames to write")
    if any(f.shape != out[0].shape for f in out):
        raise ValueError("all frames must have the same size")
    return out


def write_gif(path: str | Path, frames, fps: float = 5.0, loop: int = 0, hold_last: float = 1.0) -> Path:
    """Write uint8/float ``[H, W, 3]`` frames as an animated GIF that loops ``loop`` times (0 = forever),
    showing the last frame ``hold_last`` seconds longer so the final alignment can be seen."""
    from PIL import Image

    ims = [Image.fromarray(f) for f in _frames(frames)]
    ms = max(20, round(1000.0 / fps))  # GIF delays are stored in centiseconds; browsers clamp below 20 ms
    durations = [ms] * len(ims)
    durations[-1] += round(1000 * hold_last)
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=durations, loop=loop, optimize=False)
    return Path(path)


def pad_even(frame: np.ndarray) -> np.ndarray:
    """Pad with edge pixels to even height and width (H.264 with 4:2:0 chroma needs both even)."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_mp4(path: str | Path, frames, fps: float = 5.0, hold_last: float = 1.0) -> Path | None:
    """Write frames as an H.264 MP4 (yuv420p, plays everywhere). Returns None, with a warning, when no
    ffmpeg is available, so callers can go on without the video."""
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  - the backend imageio needs for MP4
    except ImportError:
        warnings.warn("imageio-ffmpeg is not installed; skipping the MP4", stacklevel=2)
        return None
    fr = [pad_even(f) for f in _frames(frames)]
    fr += [fr[-1]] * round(hold_last * fps)
    try:
        # macro_block_size=2: frames are already even, so imageio must not rescale them to multiples of 16.
        with imageio.get_writer(
            str(path),
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            quality=8,
            macro_block_size=2,
            ffmpeg_log_level="error",
        ) as writer:
            for f in fr:
                writer.append_data(f)
    except (OSError, RuntimeError) as exc:
        warnings.warn(f"could not write {path}: {exc}", stacklevel=2)
        return None
    return Path(path)
