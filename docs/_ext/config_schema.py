"""Sphinx directive ``config-schema``: a table of every key of a JSON schema the code validates with.

Usage (MyST)::

    ```{config-schema} scans.SCAN_SCHEMA
    :field-docs: analytic_signal_model=signal_models.AnalyticSignalModel beam=bumphunt.kinematics.Beam
    ```

One row per key, nested keys as dotted paths (``mass.step``; items of an
array of objects as ``datasets[].name``), with the type (allowed values and
range included), the default and the description. The description is the
schema's own ``description``; where the schema has none, the numpy-style
``Parameters`` section of a class named in ``:field-docs:`` (``section=dotted.path``,
an empty section for the top level; a callable returning ``{key: text}`` works
too), and last the notes in ``schema_notes.NOTES``. A key with no description
anywhere, a note for a key the schema does not have, and a note for a key the
schema now describes itself are build warnings (errors with ``-W``), so the
tables cannot drift from the code.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import schema_notes
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


def import_object(path: str) -> Any:
    """The object at a dotted path ``package.module.attr`` (attributes of lazy packages included)."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"cannot import {path!r}")


_PARAM_LINE = re.compile(r"^(\w[\w, ]*?)\s*:\s*.*$")


def parameter_docs(obj: Any) -> dict[str, str]:
    """``{name: first sentence(s)}`` from the ``Parameters``/``Attributes`` sections of a numpy-style docstring.

    ``obj`` may also be a callable returning such a mapping.
    """
    if callable(obj) and not isinstance(obj, type):
        return dict(obj())
    import inspect

    doc = inspect.cleandoc(obj.__doc__ or "")
    out: dict[str, str] = {}
    lines = doc.splitlines()
    in_section = False
    names: list[str] = []
    text: list[str] = []

    def flush() -> None:
        if names and text:
            joined = " ".join(t.strip() for t in text)
            for n in names:
                out[n] = joined
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() in ("Parameters", "Attributes") and set(nxt.strip()) == {"-"}:
            flush()
            names, text, in_section = [], [], True
            continue
        if in_section and line.strip() and set(line.strip()) == {"-"}:
            continue
        if in_section and line and not line.startswith(" "):
            if set(nxt.strip()) == {"-"} and nxt.strip():
                flush()
                names, text, in_section = [], [], False
                continue
            flush()
            m = _PARAM_LINE.match(line) or re.match(r"^(\w[\w, ]*)$", line)
            names = [n.strip() for n in m.group(1).split(",")] if m else []
            text = []
            continue
        if in_section and line.startswith(" "):
            text.append(line)
    flush()
    return out


def type_text(spec: Mapping[str, Any]) -> str:
    """The JSON type of a schema node in words, with allowed values and range."""
    if "enum" in spec:
        return "one of " + ", ".join(json.dumps(v) for v in spec["enum"])
    if "anyOf" in spec:
        return " or ".join(type_text(s) for s in spec["anyOf"])
    typ = spec.get("type")
    if typ is None:
        return "any"
    types = typ if isinstance(typ, list) else [typ]
    words = []
    for t in types:
        if t == "array":
            items = spec.get("items")
            inner = type_text(items) if isinstance(items, Mapping) else "values"
            count = ""
            if spec.get("minItems") is not None and spec.get("minItems") == spec.get("maxItems"):
                count = f"{spec['minItems']} "
            elif spec.get("minItems"):
                count = f"{spec['minItems']}+ "
            words.append(f"list of {count}({inner})" if " " in inner else f"list of {count}{inner}")
        elif t == "object" and "properties" not in spec and isinstance(spec.get("additionalProperties"), Mapping):
            words.append(f"mapping of name to {type_text(spec['additionalProperties'])}")
        else:
            words.append(t)
    text = " or ".join(words)
    bounds = []
    if "minimum" in spec:
        bounds.append(f">= {spec['minimum']:g}")
    if "exclusiveMinimum" in spec:
        bounds.append(f"> {spec['exclusiveMinimum']:g}")
    if "maximum" in spec:
        bounds.append(f"<= {spec['maximum']:g}")
    if "exclusiveMaximum" in spec:
        bounds.append(f"< {spec['exclusiveMaximum']:g}")
    if "pattern" in spec:
        bounds.append(f"matching {spec['pattern']}")
    if "minLength" in spec:
        bounds.append("not empty")
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _object_of(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The object schema inside ``spec`` (itself, or the object branch of an ``anyOf`` with null)."""
    if "properties" in spec:
        return spec
    for sub in spec.get("anyOf", ()):
        if isinstance(sub, Mapping) and "properties" in sub:
            return sub
    return None


def walk(schema: Mapping[str, Any], prefix: str = "", required: frozenset[str] = frozenset()) -> Iterator[tuple[str, Mapping[str, Any], bool, bool]]:
    """``(key path, spec, required, is_section)`` for every key of an object schema, depth first."""
    for key, spec in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        obj = _object_of(spec)
        items = spec.get("items") if spec.get("type") == "array" else None
        yield path, spec, key in required, obj is not None or (isinstance(items, Mapping) and "properties" in items)
        if obj is not None:
            yield from walk(obj, path + ".", frozenset(obj.get("required", ())))
        elif isinstance(items, Mapping) and "properties" in items:
            yield from walk(items, path + "[].", frozenset(items.get("required", ())))


def default_text(spec: Mapping[str, Any], required: bool) -> str:
    """The default as JSON (sections with nested defaults: blank; required keys: 'required')."""
    if required:
        return "required"
    if "default" not in spec:
        return "(none)"
    value = spec["default"]
    if value == {} and _object_of(spec) is not None:
        return ""
    return json.dumps(value)


def _inline(text: str) -> list[nodes.Node]:
    """Plain text with ``code`` spans (single or double backticks) as literals."""
    out: list[nodes.Node] = []
    for i, part in enumerate(re.split(r"``?([^`]+)``?", text)):
        if not part:
            continue
        out.append(nodes.literal(part, part) if i % 2 else nodes.Text(part))
    return out


class ConfigSchema(SphinxDirective):
    """``.. config-schema:: dotted.path.TO_SCHEMA`` with option ``:field-docs: section=dotted.path ...``."""

    required_arguments = 1
    option_spec = {"field-docs": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        schema = import_object(name)
        fallback: dict[str, str] = {}
        for item in (self.options.get("field-docs") or "").split():
            section, _, target = item.rpartition("=")
            for key, text in parameter_docs(import_object(target)).items():
                fallback[f"{section}.{key}" if section else key] = text
        notes: Mapping[str, str] = schema_notes.NOTES.get(name, {})
        rows = []
        seen = set()
        for path, spec, required, is_section in walk(schema):
            seen.add(path)
            own = spec.get("description")
            note = notes.get(path)
            bare = path.replace("[]", "")
            if own and note:
                logger.warning(f"{name}: {path} now has a description in the schema; drop its note from docs/_ext/schema_notes.py",
                               location=self.get_location())
            text = own or fallback.get(bare) or fallback.get(path) or note
            if not text:
                logger.warning(f"{name}: key {path} has no description (add it to the schema, or a note in docs/_ext/schema_notes.py)",
                               location=self.get_location())
                text = ""
            rows.append((path, "section" if is_section and "type" in spec and spec.get("type") == "object" else type_text(spec),
                         default_text(spec, required), text))
        for path in notes:
            if path not in seen:
                logger.warning(f"{name}: docs/_ext/schema_notes.py has a note for {path}, which the schema does not have",
                               location=self.get_location())
        return [self._table(rows)]

    def _table(self, rows: list[tuple[str, str, str, str]]) -> nodes.table:
        table = nodes.table(classes=["config-schema"])
        group = nodes.tgroup(cols=4)
        table += group
        for width in (22, 18, 14, 46):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        head += self._row(["key", "type", "default", "description"], literal_first=False)
        body = nodes.tbody()
        group += body
        for row in rows:
            body += self._row(list(row), literal_first=True)
        return table

    @staticmethod
    def _row(cells: list[str], *, literal_first: bool) -> nodes.row:
        row = nodes.row()
        for i, cell in enumerate(cells):
            entry = nodes.entry()
            para = nodes.paragraph()
            if i == 0 and literal_first:
                para += nodes.literal(cell, cell)
            elif i == 2 and literal_first and cell not in ("", "required", "(none)"):
                para += nodes.literal(cell, cell)
            else:
                para.extend(_inline(cell))
            entry += para
            row += entry
        return row


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("config-schema", ConfigSchema)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


__all__: list[str] = ["ConfigSchema", "parameter_docs", "type_text", "walk", "import_object", "setup"]
