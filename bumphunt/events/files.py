"""Finding and opening ROOT files, with clear errors; the sample metadata.

Every failure to open or read a file ends as an ``InputError`` naming the
file; a file that is cut short or damaged says "file X is truncated or
corrupt" (``corrupt_file_error``), never uproot's "expected Chunk of length
...". A truncated file is recognised as soon as it is opened: its header
records where the file ends (``fEND``), and a shorter file is cut.
"""

from __future__ import annotations

import glob
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import InputError
from .schema import META_KEY

logger = logging.getLogger(__name__)

__all__ = ["expand_paths", "open_root_file", "read_meta", "meta_from_file", "corrupt_file_error"]


def expand_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand one path, a glob pattern or a list of them into a list of files.

    Parameters
    ----------
    paths : path, glob pattern or iterable of them

    Returns
    -------
    list of Path
        The files, patterns expanded in sorted order.

    Raises
    ------
    InputError
        A pattern matches nothing, a plain path does not exist or is a
        directory, or nothing was given.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        s = str(p)
        if any(ch in s for ch in "*?["):
            matches = sorted(glob.glob(s))
            if not matches:
                raise InputError(f"{s}: no file matches this pattern")
            out.extend(Path(m) for m in matches)
        else:
            path = Path(s)
            if not path.exists():
                raise InputError(f"{path}: file not found")
            if path.is_dir():
                raise InputError(f"{path}: is a directory, expected a ROOT file (or a glob such as {path}/*.root)")
            out.append(path)
    if not out:
        raise InputError("no input files given")
    return out


def _detail(exc: BaseException) -> str:
    """One-line ``Type: message`` of an exception (uproot's messages span several lines)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def corrupt_file_error(path: str | Path, what: str, exc: BaseException | None = None) -> InputError:
    """The error for a file that cannot be read because it is damaged.

    Parameters
    ----------
    path : path
        The file.
    what : str
        What could not be done, e.g. ``"cannot read branch 'gamma_E' entries [0, 100)"``.
    exc : exception, optional
        The underlying error (its type and message are appended).

    Returns
    -------
    InputError
        With the message ``"<path>: <what>: file <path> is truncated or corrupt (<exc>)"``.
    """
    detail = f" ({_detail(exc)})" if exc is not None else ""
    return InputError(f"{path}: {what}: file {path} is truncated or corrupt{detail}")


def open_root_file(path: str | Path) -> Any:
    """Open a ROOT file for reading, memory-mapped (an uproot ``ReadOnlyDirectory``; close it, or use ``with``).

    Memory-mapping lets baskets stored uncompressed be read without an
    intermediate copy.

    Raises
    ------
    InputError
        The file does not exist, is not a ROOT file, or is truncated (shorter
        than its header says) or corrupt.
    """
    import uproot

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        f = uproot.open(path, handler=uproot.MemmapSource)
    except Exception as exc:  # uproot raises many kinds for non-ROOT or damaged files
        raise InputError(f"{path}: not a readable ROOT file: file {path} is truncated or corrupt, "
                         f"or in another format ({_detail(exc)})") from None
    try:
        end = int(f.file.fEND)  # the header's end-of-file position
    except Exception as exc:
        f.close()
        raise corrupt_file_error(path, "cannot read the file header", exc) from None
    size = path.stat().st_size
    if size < end:
        f.close()
        raise InputError(f"{path}: file {path} is truncated or corrupt: it has {size} bytes, its header says {end}")
    return f


def read_meta(path: str | Path) -> dict[str, Any]:
    """Sample metadata stored as a JSON string under ``bumphunt_meta``.

    Returns
    -------
    dict
        The metadata (process, xsec_pb, n_generated, lumi_fb, seed, beam,
        ...); empty (and logged) when the file has none, as for ntuples not
        written by bumphunt.
    """
    path = Path(path)
    with open_root_file(path) as f:
        return meta_from_file(f, path)


def meta_from_file(f: Any, path: Path) -> dict[str, Any]:
    """The ``bumphunt_meta`` metadata of an open file (``open_root_file``); see ``read_meta``."""
    try:
        if META_KEY not in f:
            logger.info("%s: no %s metadata", path, META_KEY)
            return {}
        text = str(f[META_KEY])
    except Exception as exc:
        raise corrupt_file_error(path, f"cannot read the metadata key {META_KEY!r}", exc) from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: metadata {META_KEY!r} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: metadata {META_KEY!r} must be a JSON object, got {type(meta).__name__}")
    return meta
