"""Helpers shared by the synth tests (a module name no other test folder uses, unlike ``conftest``)."""

from __future__ import annotations

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
