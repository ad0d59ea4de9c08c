"""TensorFlow's import-time log lines, silenced when the user asked for silence.

TensorFlow >= 2.19 prints C++ log lines while it is imported (``All log messages
before absl::InitializeLog() ...``, the oneDNN notice, ``Could not find cuda
drivers on your machine`` on CPU-only machines) even with
``TF_CPP_MIN_LOG_LEVEL=3`` (tensorflow/tensorflow#100442). They are written by
C++ code straight to file descriptor 2, so no Python logging setting reaches
them. ``quiet_tensorflow_import()`` arranges that the first ``import
tensorflow`` of the process (direct, or through zfit or Keras) runs with file
descriptor 2 pointed at ``/dev/null`` — only while TensorFlow's own module
executes, and only when ``TF_CPP_MIN_LOG_LEVEL`` is ``3`` (what the command
line sets at its default verbosity; ``-v`` keeps them).

Written by hand: no library offers this, and TensorFlow's own switches do not
cover these lines. It changes nothing inside TensorFlow: the module is found and
executed by its own loader.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

__all__ = ["quiet_tensorflow_import", "c_stderr_discarded"]


@contextlib.contextmanager
def c_stderr_discarded() -> Iterator[None]:
    """File descriptor 2 points at ``/dev/null`` inside the block (C and C++ writes to stderr are dropped)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to redirect
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """Delegates to TensorFlow's own loader; executes the module with stderr discarded."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with c_stderr_discarded():
            self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # resource readers, is_package, ... of the real loader
        return getattr(self._loader, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once (through the normal finders) and wraps its loader."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)  # one import only
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3":
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_import() -> None:
    """Make the process's first ``import tensorflow`` silent on stderr when ``TF_CPP_MIN_LOG_LEVEL`` is ``3``.

    Does nothing when TensorFlow is already imported or the hook is already in
    place. Python exceptions raised by the import are not affected (they reach
    the caller after stderr is restored).
    """
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
