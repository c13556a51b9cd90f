"""A self-contained one-page HTML report: headings, figures, tables and notes in a single file.

Design note. The page embeds every image as a ``data:`` URI (base64), so ``report.html`` can be opened,
attached or archived on its own, with no folder of images beside it; the images written next to it by
other code stay the originals. Like the rest of :mod:`inerf.viz` it knows nothing about fields or solvers:
callers describe the page with :class:`Figure`, :class:`Table` and :class:`Section` and this module only
lays it out. All text is HTML-escaped, so file names and labels cannot break the page.

Example::

    page = Section("Target 0", figures=[Figure("out/target.png", "target")],
                   tables=[Table(["quantity", "value"], [["rotation error", "0.21 deg"]])])
    write_html_report("out/report.html", "iNeRF demo", [page], intro=["One paragraph."])
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Figure", "Section", "Table", "data_uri", "render_html_report", "write_html_report"]

_MIME = {
    ".png": "image/png",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}


@dataclass
class Figure:
    """One image of the page.

    Attributes:
        image: a file (PNG, GIF, JPEG, SVG, WebP; animated GIFs stay animated) or an image array
            (uint8 ``[H, W, 3]`` or float in [0, 1], encoded as PNG).
        caption: text shown under the image.
        width: display width in CSS pixels (None: the image's own width, at most the column's).
    """

    image: str | Path | np.ndarray
    caption: str = ""
    width: int | None = None


@dataclass
class Table:
    """A table of strings: ``header`` (one entry per column) and ``rows`` (lists of the same length).

    Cells are text, not HTML; numbers should be formatted by the caller (units are theirs to choose).
    ``highlight`` gives per-row CSS classes (``"ok"`` or ``"bad"``), e.g. to mark failed targets.
    """

    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    highlight: list[str | None] | None = None

    def __post_init__(self) -> None:
        for r in self.rows:
            if len(r) != len(self.header):
                raise ValueError(f"table row {r!r} has {len(r)} cells, the header has {len(self.header)}")
        if self.highlight is not None and len(self.highlight) != len(self.rows):
            raise ValueError("highlight needs one entry per row")


@dataclass
class Section:
    """A heading followed by paragraphs (``notes``), a row of figures and tables, in that order."""

    heading: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def data_uri(image: str | Path | np.ndarray) -> str:
    """``data:<mime>;base64,...`` of an image file (bytes as they are) or an image array (as PNG)."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        mime = _MIME.get(path.suffix.lower())
        if mime is None:
            raise ValueError(f"{path}: not an image type a browser shows inline ({', '.join(_MIME)})")
        payload = path.read_bytes()
    else:
        from PIL import Image

        from inerf.viz.overlay import to_uint8

        buf = io.BytesIO()
        Image.fromarray(to_uint8(image)).save(buf, format="PNG")
        mime, payload = "image/png", buf.getvalue()
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
.figures { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; margin: 0.8em 0; }
figure { margin: 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; image-rendering: pixelated; border: 1px solid #ccc; }
figcaption { font-size: 0.85em; color: #555; max-width: 420px; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
th, td { border: 1px solid #ccc; padding: 3px 9px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td { font-variant-numeric: tabular-nums; }
tr.ok td { background: #eef8ee; }
tr.bad td { background: #fbecec; }
.footer { margin-top: 2.5em; font-size: 0.8em; color: #666; }
"""


def _figure_html(fig: Figure) -> str:
    width = f' width="{int(fig.width)}"' if fig.width else ""
    alt = html.escape(fig.caption or "figure", quote=True)
    cap = f"<figcaption>{html.escape(fig.caption)}</figcaption>" if fig.caption else ""
    return f'<figure><img src="{data_uri(fig.image)}" alt="{alt}"{width}>{cap}</figure>'


def _table_html(table: Table) -> str:
    parts = ["<table>"]
    if table.caption:
        parts.append(f"<caption>{html.escape(table.caption)}</caption>")
    parts.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in table.header) + "</tr>")
    for i, row in enumerate(table.rows):
        cls = table.highlight[i] if table.highlight else None
        attr = f' class="{html.escape(cls, quote=True)}"' if cls else ""
        parts.append(f"<tr{attr}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    parts.append("</table>")
    return "\n".join(parts)


def render_html_report(
    title: str, sections: list[Section], *, intro: list[str] | None = None, footer: list[str] | None = None
) -> str:
    """The page as a string: ``title``, ``intro`` paragraphs, the sections, ``footer`` lines (small print,
    e.g. credits). Every string is plain text (escaped here)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    out += [f"<p>{html.escape(p)}</p>" for p in intro or []]
    for sec in sections:
        out.append(f"<h2>{html.escape(sec.heading)}</h2>")
        out += [f"<p>{html.escape(p)}</p>" for p in sec.notes]
        if sec.figures:
            out.append('<div class="figures">' + "".join(_figure_html(f) for f in sec.figures) + "</div>")
        out += [_table_html(t) for t in sec.tables]
    if footer:
        out.append('<div class="footer">' + "<br>".join(html.escape(line) for line in footer) + "</div>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def write_html_report(
    path: str | Path,
    title: str,
    sections: list[Section],
    *,
    intro: list[str] | None = None,
    footer: list[str] | None = None,
) -> Path:
    """Write :func:`render_html_report` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(render_html_report(title, sections, intro=intro, footer=footer), encoding="utf-8")
    return path
