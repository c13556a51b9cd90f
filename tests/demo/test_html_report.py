"""The one-page HTML report (inerf.viz.report)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from PIL import Image

from inerf.viz.report import Figure, Section, Table, data_uri, render_html_report, write_html_report


def test_data_uri_of_files_and_arrays(tmp_path):
    png = tmp_path / "a.png"
    Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(png)
    uri = data_uri(png)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == png.read_bytes()  # the file's bytes, untouched
    assert data_uri(np.ones((2, 2, 3), np.float32)).startswith("data:image/png;base64,")
    with pytest.raises(ValueError, match="not an image"):
        data_uri(tmp_path / "a.txt")


def test_page_escapes_text_and_embeds_images(tmp_path):
    img = np.full((4, 4, 3), 200, np.uint8)
    sec = Section(
        "Target <0>",
        figures=[Figure(img, 'caption "quoted" & <b>')],
        tables=[Table(["a", "b"], [["<x>", "1"], ["y", "2"]], caption="T", highlight=["ok", "bad"])],
        notes=["note & more"],
    )
    page = render_html_report("Title <script>", [sec], intro=["intro <i>"], footer=["credit & licence"])
    assert "<script>" not in page and "<i>" not in page and "<b>" not in page
    assert "Title &lt;script&gt;" in page and "Target &lt;0&gt;" in page and "&lt;x&gt;" in page
    assert 'class="ok"' in page and 'class="bad"' in page
    assert page.count("data:image/png;base64,") == 1
    assert "credit &amp; licence" in page
    path = write_html_report(tmp_path / "r.html", "t", [sec])
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_table_rows_must_match_the_header():
    with pytest.raises(ValueError, match="cells"):
        Table(["a", "b"], [["only one"]])
    with pytest.raises(ValueError, match="highlight"):
        Table(["a"], [["x"]], highlight=[])
