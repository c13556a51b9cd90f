"""Overlays, GIF/MP4 writers and plots."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from inerf.viz.overlay import annotate, blend, enlarge, hstack, mark_pixels, overlay_frame, to_uint8
from inerf.viz.plots import plot_convergence, plot_success_curves
from inerf.viz.video import pad_even, write_gif, write_mp4


def test_to_uint8_rounds_and_clips():
    x = torch.tensor([[[-0.1, 0.5, 1.2]]])
    assert to_uint8(x).tolist() == [[[0, 128, 255]]]
    u = np.zeros((2, 2, 3), np.uint8)
    assert to_uint8(u) is u


def test_blend_is_the_average():
    a = np.zeros((2, 3, 3), np.float32)
    b = np.ones((2, 3, 3), np.float32)
    assert (blend(a, b) == 128).all()
    assert (blend(a, b, weight=1.0) == 0).all()
    with pytest.raises(ValueError):
        blend(a, np.ones((3, 3, 3)))


def test_annotate_writes_text_on_wide_frames_only():
    wide = np.full((120, 200, 3), 128, np.uint8)
    assert not np.array_equal(annotate(wide, ["step 3"]), wide)
    narrow = np.full((48, 48, 3), 128, np.uint8)
    assert np.array_equal(annotate(narrow, "step 3"), narrow)


def test_enlarge_hstack_mark():
    f = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    big = enlarge(f, 5)
    assert big.shape == (6, 9, 3) and np.array_equal(big[::3, ::3], f)
    assert hstack(f, f, gap=1).shape == (2, 7, 3)
    m = np.zeros((2, 3), bool)
    m[0, 0] = True
    out = mark_pixels(np.zeros((2, 3, 3), np.uint8), m, color=(255, 0, 0), opacity=1.0)
    assert out[0, 0].tolist() == [255, 0, 0] and out[1, 1].tolist() == [0, 0, 0]
    assert overlay_frame(np.zeros((4, 4, 3)), np.ones((4, 4, 3)), min_side=8).shape == (8, 8, 3)


def frames(n=4, h=33, w=47):
    return [np.full((h, w, 3), 40 * i, np.uint8) for i in range(n)]


def test_gif_round_trip(tmp_path):
    path = write_gif(tmp_path / "a.gif", frames(), fps=10)
    back = iio.imread(path, index=None)
    assert back.shape[0] == 4 and back.shape[1:3] == (33, 47)
    assert abs(int(back[2, 0, 0, 0]) - 80) <= 2


def test_mp4_is_written_with_even_size(tmp_path):
    assert pad_even(frames(1)[0]).shape == (34, 48, 3)
    path = write_mp4(tmp_path / "a.mp4", frames(), fps=5, hold_last=0.0)
    if path is None:
        pytest.skip("no ffmpeg available")
    assert path.stat().st_size > 0
    import imageio.v2 as imageio

    with imageio.get_reader(str(path)) as r:
        first = r.get_data(0)
        n = r.count_frames()
    assert first.shape == (34, 48, 3) and n == 4


def test_plots_write_pngs(tmp_path):
    loss = np.exp(-np.linspace(0, 5, 51))[:, None] * np.array([1.0, 2.0, 3.0])
    loss[30:, 2] = np.nan  # a pruned hypothesis
    p = plot_convergence(
        tmp_path / "c.png", loss, loss * 10, loss / 10, selected=1, rot_thresh=5, trans_thresh=0.05
    )
    assert Image.open(p).size[0] > 100
    p = plot_convergence(tmp_path / "c1.png", loss[:, 0])
    assert Image.open(p).size[0] > 100
    p = plot_success_curves(
        tmp_path / "s.png",
        {"random": np.linspace(0, 0.6, 51), "interest_region": np.linspace(0, 0.9, 51)},
        checkpoints=[10, 50],
    )
    assert Image.open(p).size[0] > 100


def test_plotting_does_not_change_the_global_backend(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    plot_convergence(tmp_path / "c.png", np.ones(5))
    assert matplotlib.get_backend() == before


def test_labels_use_a_truetype_font_at_the_frame_scale():
    """Overlay text is drawn with a real font sized to the frame (not smeared Hershey strokes)."""
    from PIL import ImageFont

    from inerf.viz.overlay import _font, annotate

    assert isinstance(_font(12), ImageFont.FreeTypeFont)
    small, large = (annotate(np.zeros((s, s, 3), np.uint8), ["rot 0.42 deg"]) for s in (128, 512))
    rows = [np.flatnonzero(im.max(axis=(1, 2)) > 128) for im in (small, large)]
    assert rows[0].size and rows[1].size
    assert (
        3 < (rows[1].max() - rows[0].max()) and rows[1].max() > 3 * rows[0].max() / 2
    )  # text grows with the frame
