"""HTML pieces of the scan report: escaped text, tables, embedded figures, the page template.

Everything the page shows goes through ``html.escape``; figures are PNG
images embedded as base64 ``data:`` URIs, and the CSS is inline, so the page
needs no other file and no network.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["esc", "number", "table", "key_values", "Markup", "figure", "figure_png", "section", "details", "paragraph", "banner", "page", "FIGURE_ERRORS"]

#: what drawing a figure may raise without stopping the report (the page then says why the figure is missing)
FIGURE_ERRORS = (ValueError, RuntimeError, KeyError, IndexError, TypeError, OverflowError)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 1.5em 3em;
       color: #1d1d1d; line-height: 1.45; }
header { border-bottom: 2px solid #2b3d6b; margin-bottom: 1em; padding: 1em 0 0.5em; }
h1 { margin: 0 0 0.2em; font-size: 1.6em; color: #2b3d6b; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; color: #2b3d6b; }
h3 { margin-bottom: 0.3em; }
.meta { color: #555; font-size: 0.92em; }
nav ul { columns: 3; list-style: none; padding-left: 0; font-size: 0.92em; }
.banner { padding: 0.9em 1.2em; margin: 1em 0; border-radius: 6px; font-weight: 600; }
.banner.blind { background: #fde2e1; border: 3px solid #c0392b; color: #7b1c12; font-size: 1.15em; }
.banner.partial { background: #fff4d6; border: 2px solid #d4a017; color: #6b5200; }
.banner.open { background: #e6f4ea; border: 1px solid #5a9e6f; color: #1e4d2b; font-weight: normal; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #eef1f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.88em; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; border: 1px solid #ddd; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9em; }
.note { color: #555; font-style: italic; }
.warn { color: #8a3b00; }
details summary { cursor: pointer; font-weight: 600; }
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="bumphunt {version}">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
</body>
</html>
"""


def esc(value: Any) -> str:
    """``value`` as escaped HTML text."""
    return html.escape(str(value), quote=True)


def number(value: Any, fmt: str = ".4g") -> str:
    """A number formatted with ``fmt`` (``-`` for a missing or non-finite one), as escaped text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-" if value is None or isinstance(value, (int, float)) else esc(value)
    return esc(format(value, fmt))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric: Sequence[int] = (), table_id: str | None = None) -> str:
    """An HTML table; cells are escaped text unless given as ``Markup`` (pre-built HTML); ``numeric`` columns right-aligned."""
    ident = f' id="{esc(table_id)}"' if table_id else ""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for j, cell in enumerate(row):
            cls = ' class="num"' if j in numeric else ""
            cells.append(f"<td{cls}>{cell.html if isinstance(cell, Markup) else esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def key_values(rows: Sequence[tuple[str, Any]], *, table_id: str | None = None) -> str:
    """A two-column table of labelled values (labels as row headers)."""
    ident = f' id="{esc(table_id)}"' if table_id else ""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v.html if isinstance(v, Markup) else esc(v)}</td></tr>" for k, v in rows)
    return f"<table{ident}><tbody>{body}</tbody></table>"


class Markup:
    """Pre-built HTML for a table cell (not escaped again)."""

    __slots__ = ("html",)

    def __init__(self, text: str) -> None:
        self.html = text


def figure_png(fig: Any, *, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def figure(make: Callable[[], Any], *, alt: str, caption: str = "", fig_id: str | None = None) -> str:
    """A figure drawn by ``make()`` (returns a matplotlib figure) embedded as a base64 PNG.

    When drawing raises one of ``FIGURE_ERRORS`` the page says so in place of
    the figure (and the report goes on).
    """
    try:
        png = figure_png(make())
    except FIGURE_ERRORS as exc:
        logger.warning("report figure %r could not be drawn: %s", alt, exc)
        return f'<p class="warn">Figure "{esc(alt)}" could not be drawn: {esc(exc)}</p>'
    ident = f' id="{esc(fig_id)}"' if fig_id else ""
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure{ident}><img alt="{esc(alt)}" src="data:image/png;base64,{data}">{cap}</figure>'


def paragraph(text: str, *, cls: str | None = None) -> str:
    """An escaped paragraph (with an optional CSS class: ``note``, ``warn``)."""
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<p{attr}>{esc(text)}</p>"


def details(summary: str, content_html: str, *, open_: bool = False) -> str:
    """A collapsible block."""
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>{content_html}</details>"


def banner(text: str, *, kind: str) -> str:
    """A prominent banner: ``kind`` is ``blind``, ``partial`` or ``open``."""
    return f'<div class="banner {esc(kind)}" id="blinding-banner" role="status">{esc(text)}</div>'


def section(ident: str, title: str, content_html: str) -> str:
    """A page section with an anchor."""
    return f'<section id="{esc(ident)}"><h2>{esc(title)}</h2>{content_html}</section>'


def page(*, title: str, header_html: str, sections: Sequence[tuple[str, str, str]], version: str) -> str:
    """The whole page: header, table of contents, the sections ``(id, title, html)``."""
    toc = "<nav><ul>" + "".join(f'<li><a href="#{esc(i)}">{esc(t)}</a></li>' for i, t, _ in sections) + "</ul></nav>"
    body = header_html + toc + "".join(section(i, t, h) for i, t, h in sections)
    return _TEMPLATE.format(version=esc(version), title=esc(title), css=_CSS, body=body)
