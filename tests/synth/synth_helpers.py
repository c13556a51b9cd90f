"""Helpers shared by the synth tests (a module name no other test folder uses, unlike ``conftest``)."""

from __future__ import annotations

import numpy as np
import pytest


def sweethome3d_installed() -> bool:
    from inerf.errors import InerfError
    from inerf.synth.sweethome3d import sweethome3d_dir

    try:
        sweethome3d_dir()
    except InerfError:
        return False
    return True


requires_sweethome3d = pytest.mark.skipif(
    not sweethome3d_installed(),
    reason="Sweet Home 3D models are not installed (apt-get install sweethome3d-furniture; .ci/run does)",
)


def cube(half: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A closed cube centred at the origin: vertices ``[8, 3]`` (corner ``4 x + 2 y + z`` for x, y, z in
    {-half, half}) and 12 outward, counter-clockwise triangles ``[12, 3]`` (0-based), two per face."""
    v = np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)], float)
    f = np.array(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 7, 5],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ]
    )
    return v, f


def synth_scene_argv(out, *flags: str, size: int = 16, views: tuple[int, int, int] = (1, 0, 0)) -> list[str]:
    """``inerf synth scene`` arguments for a tiny jenga dataset at ``out`` (``views`` = train, val, test), one
    worker, no progress bar; ``flags`` are appended."""
    train, val, test = views
    options = {
        "--asset": "jenga",
        "--out": out,
        "--size": size,
        "--train": train,
        "--val": val,
        "--test": test,
    }
    return [
        "synth",
        "scene",
        *(str(x) for pair in options.items() for x in pair),
        "--workers",
        "1",
        "--quiet",
        *flags,
    ]
