"""Area resampling, compositing and path checks shared by the loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inerf.data.image_io import area_weights, composite_straight, inside_root, parse_background, resize_area
from inerf.errors import InerfError


def test_area_weights_by_hand():
    np.testing.assert_allclose(area_weights(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    # 3 -> 2: each output pixel covers 1.5 input pixels.
    np.testing.assert_allclose(area_weights(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    for n_in, n_out in [(7, 3), (5, 9), (400, 133)]:
        np.testing.assert_allclose(area_weights(n_in, n_out).sum(1), 1.0, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "size"), [((12, 16, 4), (3, 4)), ((10, 10, 3), (3, 7)), ((4, 6, 3), (8, 12))]
)
def test_resize_area_matches_opencv(shape, size):
    cv2 = pytest.importorskip("cv2")
    img = np.random.default_rng(0).random(shape, dtype=np.float32)
    ours = resize_area(img, *size)
    ref = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA).reshape(*size, shape[2])
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_composite_then_resize_equals_resize_then_composite():
    rgba = np.random.default_rng(1).random((8, 8, 4), dtype=np.float32)
    rgb_small, a_small = composite_straight(rgba, (1.0, 0.5, 0.0), 4, 4)
    rgb_full, _ = composite_straight(rgba, (1.0, 0.5, 0.0))
    np.testing.assert_allclose(rgb_small, resize_area(rgb_full, 4, 4), atol=1e-6)
    np.testing.assert_allclose(a_small, resize_area(rgba[..., 3:], 4, 4)[..., 0], atol=1e-6)


def test_inside_root_and_backgrounds(tmp_path):
    assert inside_root(tmp_path, "./a/../b.png", Path("t.json")) == tmp_path / "b.png"
    with pytest.raises(InerfError, match="outside the dataset folder"):
        inside_root(tmp_path, "a/../../b.png", Path("t.json"))
    assert parse_background("White") == (1.0, 1.0, 1.0) and parse_background(0.5) == (0.5, 0.5, 0.5)
    assert parse_background("none") is None
    with pytest.raises(InerfError):
        parse_background((2.0, 0.0, 0.0))
