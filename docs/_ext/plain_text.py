"""Docstrings and CLI help in the project's plain-text notation, made safe for reStructuredText.

The packages write formulas in plain text: absolute values as ``|x|``,
``|cos theta*|``, ``|V|^2``. In reST a word between bars is a substitution
reference, which fails the build. This extension escapes a bar that touches
a non-blank character on its inside (``|x``, ``x|``) in every docstring
(``autodoc-process-docstring``) and in the click help texts rendered by
sphinx-click. A line block (a bar followed by a blank at the start of a
line) and bars inside ``literals`` are left alone.
"""

from __future__ import annotations

import re
from typing import Any

_LITERAL = re.compile(r"(``.+?``)")
_BAR = re.compile(r"(?<=[^\s\\])\||(?<!\\)\|(?=\S)")


def escape_bars(line: str) -> str:
    """``line`` with the absolute-value bars escaped (outside ``literals`` and line-block markers)."""
    if line.lstrip().startswith("| ") or line.lstrip() == "|":
        head, rest = line.split("|", 1)
        return head + "|" + escape_bars(rest)
    parts = _LITERAL.split(line)
    return "".join(p if i % 2 else _BAR.sub(r"\\|", p) for i, p in enumerate(parts))


def escape_lines(lines: list[str]) -> None:
    """Escape the bars of every line, in place (directive lines ``.. x::`` are kept as they are)."""
    for i, line in enumerate(lines):
        if "|" in line and not line.lstrip().startswith(".. "):
            lines[i] = escape_bars(line)


def _docstring(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    escape_lines(lines)


def _click(app: Any, ctx: Any, lines: list[str]) -> None:
    escape_lines(lines)


def setup(app: Any) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx_click")
    app.connect("autodoc-process-docstring", _docstring)
    for part in ("description", "options", "arguments", "epilog"):
        app.connect(f"sphinx-click-process-{part}", _click)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
