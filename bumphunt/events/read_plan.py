"""What to read from one tree: schema names mapped to branch names, checked before anything is read.

A ``ReadPlan`` is made once per file (``reader.open_tree``). It resolves every
schema name through the alias map, checks that required branches exist, and
that each branch has the right kind (one number per event, or a
variable-length array of numbers per event for ``gamma_*`` / ``track_*``) and
a compatible dtype, so that a bad input stops with a ``SchemaError`` naming the
file and the branch before any data is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SchemaError
from .schema import COLLECTIONS, EVENT_BRANCHES, Branch

__all__ = ["ReadPlan"]


class ReadPlan:
    """Branches to read from one tree, validated.

    Parameters
    ----------
    path : Path
        The file (for messages).
    tree : uproot TTree
        The open tree.
    cfg : mapping
        Validated alias map (``aliases.load_aliases``), or ``{}``.
    fields : set of str, optional
        Schema names to read; optional branches not listed are skipped.
        Default: everything present.

    Attributes
    ----------
    event : dict of str to str
        Event-level schema name -> branch name.
    jagged : dict of str to dict of str to str
        Per collection (``gamma``, ``track``): field -> branch name.
    constants : dict of str to float
        Event-level values the alias map sets for branches the file lacks.
    basket_cache : dict
        Last basket of each branch when a chunk ended inside it (``baskets.read_flat``).
    """

    def __init__(self, path: Path, tree: Any, cfg: Mapping[str, Any], fields: set[str] | None) -> None:
        self.path = path
        self.tree = tree
        self.basket_cache: dict[str, Any] = {}
        alias = dict(cfg.get("branches", {}))
        self.constants: dict[str, float] = dict(cfg.get("constants", {}))
        keys = set(tree.keys())
        self.event: dict[str, str] = {}
        self.jagged: dict[str, dict[str, str]] = {c: {} for c in COLLECTIONS}

        def want(name: str) -> bool:
            return fields is None or name in fields

        def describe(name: str) -> str:
            return f"branch {alias[name]!r} (schema {name!r}, via the alias map)" if name in alias else f"branch {name!r}"

        for b in EVENT_BRANCHES:
            if not want(b.name):
                continue
            src = alias.get(b.name, b.name)
            if src in keys:
                self._check_dtype(src, b, jagged=False, what=describe(b.name))
                self.event[b.name] = src
            elif b.name in self.constants:
                continue
            elif b.required:
                raise SchemaError(f"{path}: missing required {describe(b.name)} ({b.doc})")
        for coll, (_, fields_) in COLLECTIONS.items():
            for b in fields_:
                name = f"{coll}_{b.name}"
                if not want(name):
                    continue
                src = alias.get(name, name)
                if src in keys:
                    self._check_dtype(src, b, jagged=True, what=describe(name), per="cluster" if coll == "gamma" else "track")
                    self.jagged[coll][b.name] = src
                elif b.required:
                    raise SchemaError(f"{path}: missing required {describe(name)} ({b.doc}; {b.unit or 'no unit'})")

    @property
    def branches(self) -> list[str]:
        """Every branch to read, once each, event branches first."""
        return list(dict.fromkeys([*self.event.values(), *(s for m in self.jagged.values() for s in m.values())]))

    def _check_dtype(self, src: str, b: Branch, *, jagged: bool, what: str, per: str = "event") -> None:
        import uproot

        try:
            interp = self.tree[src].interpretation
        except Exception as exc:
            raise SchemaError(f"{self.path}: {what} cannot be interpreted: {exc}") from None
        if jagged:
            if not isinstance(interp, uproot.AsJagged) or not isinstance(interp.content, uproot.AsDtype):
                raise SchemaError(f"{self.path}: {what} should be a variable-length array of {b.dtype} "
                                  f"(one entry per {per}), got {interp}")
            dtype = interp.content.to_dtype
        else:
            if not isinstance(interp, uproot.AsDtype) or interp.to_dtype.shape != ():
                raise SchemaError(f"{self.path}: {what} should be one {b.dtype} per event, got {interp}")
            dtype = interp.to_dtype
        expected = np.dtype(b.dtype)
        ok = dtype.kind in "iu" if expected.kind in "iu" else dtype.kind in "fiu"
        if not ok:
            raise SchemaError(f"{self.path}: {what} has dtype {dtype}, expected {expected} ({b.doc})")
