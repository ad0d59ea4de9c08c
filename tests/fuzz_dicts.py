"""Hypothesis strategies shared by the fuzz tests: nested dictionaries (configurations, files) damaged at random keys."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st


def key_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and list indices) to a value inside a nested dict/list."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += key_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += key_paths(v, prefix + (i,))
    return out


@st.composite
def damaged(draw: st.DrawFn, base: dict[str, Any], values: st.SearchStrategy[Any]) -> dict[str, Any]:
    """``base`` with one to three keys replaced by a drawn value or a number (NaN, inf included), removed, or added."""
    d = copy.deepcopy(base)
    paths = key_paths(d)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        parent: Any = d
        try:
            for k in path[:-1]:
                parent = parent[k]
            op = draw(st.sampled_from(["replace", "number", "remove", "add"]))
            if op == "remove" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif op == "add" and isinstance(parent, dict):
                parent[draw(st.text(max_size=5))] = draw(values)
            elif op == "number":
                parent[path[-1]] = draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3)))
            else:
                parent[path[-1]] = draw(values)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change removed the path
    return d
