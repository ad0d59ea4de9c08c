"""Sphinx directive ``public-api``: the reference of a package's public names, from its ``__all__``.

Usage (inside an ``{eval-rst}`` block of a MyST page, or in an RST page)::

    .. public-api:: fits
       :own-pages: events kinfit

emits the package docstring (``automodule``), an ``autosummary`` table of
every name in ``__all__`` and one autodoc entry per name: ``autoclass`` (with
members), ``autofunction``, ``autodata`` (the value only for short
constants), and for a submodule in ``__all__`` its docstring and its own
public names in the same way. Submodules named in ``:own-pages:`` have a page
of their own and are only linked. An object exported under several public
names is documented once, at its first public name in the order
``PACKAGES`` (each package's own names before its submodules'), and listed
as an alias elsewhere. The list comes from ``__all__`` at build time, so the
reference cannot drift from the code; names that are not in ``__all__`` are
not documented.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

#: The import packages of the distribution, bottom layer first.
PACKAGES = ("signal_models", "fits", "scans", "bumphunt")
#: Longest repr of a constant shown with its value.
MAX_VALUE_REPR = 80

_HOMES: dict[int, str] | None = None


def public_names(module: Any) -> list[str]:
    """The module's ``__all__`` (its public names)."""
    return list(getattr(module, "__all__", ()))


def _is_documentable(obj: Any) -> bool:
    return inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.ismodule(obj)


def _submodule(parent: str, obj: Any) -> bool:
    """Whether ``obj`` is a module inside ``parent``'s package tree (so it is documented with it)."""
    return inspect.ismodule(obj) and obj.__name__.split(".")[0] == parent.split(".")[0] and obj.__name__.startswith(parent + ".")


def homes() -> dict[int, str]:
    """id(object) -> the public name under which it is documented (classes, functions, modules only)."""
    global _HOMES
    if _HOMES is not None:
        return _HOMES
    out: dict[int, str] = {}

    def visit(modname: str) -> None:
        module = importlib.import_module(modname)
        subs = []
        for name in public_names(module):
            obj = getattr(module, name)
            if not _is_documentable(obj):
                continue
            out.setdefault(id(obj), f"{modname}.{name}")
            if _submodule(modname, obj):
                subs.append(obj.__name__)
        for sub in subs:
            visit(sub)

    for pkg in PACKAGES:
        visit(pkg)
    _HOMES = out
    return out


def data_doc(modname: str, name: str, _depth: int = 0) -> str:
    """The ``#:`` doc comment of the constant ``name`` exported by ``modname``, from the module that assigns it.

    Looks in ``modname`` itself, then follows ``from .x import name`` of its
    source (re-exports); an empty string if no module documents it.
    """
    import ast

    from sphinx.pycode import ModuleAnalyzer, PycodeError

    try:
        analyzer = ModuleAnalyzer.for_module(modname)
        docs = analyzer.find_attr_docs()
    except PycodeError:
        return ""
    if ("", name) in docs:
        return "\n".join(docs[("", name)]).strip()
    if _depth > 3:
        return ""
    package = modname if importlib.import_module(modname).__spec__.submodule_search_locations else modname.rpartition(".")[0]
    for node in ast.walk(ast.parse(analyzer.code)):
        if isinstance(node, ast.ImportFrom) and any(a.name == name and a.asname in (None, name) for a in node.names):
            base = package
            for _ in range(max(node.level - 1, 0)):
                base = base.rpartition(".")[0]
            source = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            if source and source != modname:
                return data_doc(source, name, _depth + 1)
    return ""


def first_sentence(text: str) -> str:
    """The first sentence (or line) of a description."""
    line = " ".join(text.split())
    end = line.find(". ")
    return line if end < 0 else line[: end + 1]


def entry_lines(modname: str, name: str, obj: Any) -> list[str]:
    """The directive documenting one public name (autodoc for classes and functions, ``py:data`` for constants)."""
    full = f"{modname}.{name}"
    if inspect.isclass(obj):
        lines = [f".. autoclass:: {full}", "   :members:"]
        if issubclass(obj, BaseException):
            lines.append("   :show-inheritance:")
        return lines + [""]
    if callable(obj):
        return [f".. autofunction:: {full}", ""]
    lines = [f".. py:data:: {name}", f"   :module: {modname}", f"   :type: {type(obj).__name__}"]
    value = repr(obj)
    if len(value) <= MAX_VALUE_REPR and "\n" not in value:
        lines.append(f"   :value: {value}")
    doc = data_doc(modname, name)
    lines.append("")
    if doc:
        lines += ["   " + line for line in doc.splitlines()]
    else:
        lines.append("   (no description in the source yet)")
    return lines + [""]


class PublicApi(SphinxDirective):
    """``.. public-api:: package`` (option ``:own-pages: sub1 sub2``: submodules documented on their own pages)."""

    required_arguments = 1
    option_spec = {"own-pages": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        modname = self.arguments[0]
        own_pages = set((self.options.get("own-pages") or "").split())
        lines = self.module_lines(modname, own_pages=own_pages, top=True)
        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(lines, source=f"<public-api {modname}>"), container)
        return container.children

    def module_lines(self, modname: str, *, own_pages: set[str], top: bool) -> list[str]:
        module = importlib.import_module(modname)
        names = public_names(module)
        if not names:
            logger.warning(f"{modname} has no __all__: nothing to document", location=self.get_location())
        home = homes()
        lines = [f".. automodule:: {modname}", "", f".. currentmodule:: {modname}", ""]
        own, constants, aliases, submodules, linked = [], [], [], [], []
        for name in names:
            obj = getattr(module, name)
            full = f"{modname}.{name}"
            if _submodule(modname, obj):
                (linked if name in own_pages else submodules).append((name, obj))
            elif _is_documentable(obj) and home.get(id(obj), full) != full:
                aliases.append((full, home[id(obj)]))
            elif _is_documentable(obj) or callable(obj):
                own.append((name, obj))
            else:
                constants.append((name, obj))
        if own:
            lines += [".. rubric:: Summary" if top else f".. rubric:: Summary of ``{modname}``", "",
                      ".. autosummary::", "   :nosignatures:", ""]
            lines += [f"   {name}" for name, _ in own] + [""]
        if constants:
            lines += [".. rubric:: Constants" if top else f".. rubric:: Constants of ``{modname}``", ""]
            for name, _ in constants:
                summary = first_sentence(data_doc(modname, name))
                lines.append(f"- :py:data:`{name}`" + (f": {summary}" if summary else ""))
            lines.append("")
        if aliases:
            lines += [f"Also exported by ``{modname}``:", ""]
            lines += [f"- ``{full}``: the same object as :py:obj:`{target}`" for full, target in aliases] + [""]
        if linked:
            lines += ["Subpackages documented on their own pages: " + ", ".join(f":py:mod:`{obj.__name__}`" for _, obj in linked) + ".", ""]
        for name, obj in own + constants:
            lines += entry_lines(modname, name, obj)
        for _name, obj in submodules:
            title = f"``{obj.__name__}``"
            lines += [title, "-" * len(title), ""] if top else [f".. rubric:: {title}", ""]
            lines += self.module_lines(obj.__name__, own_pages=set(), top=False)
        return lines


def setup(app: Any) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.autosummary")
    app.add_directive("public-api", PublicApi)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
