"""Sample production: per-sample ROOT files written in chunks, reproducibly from a seed.

Reproducibility
---------------
Events are generated in blocks of ``BLOCK_SIZE`` events, each with its own
``numpy.random.Generator`` seeded by ``SeedSequence(seed, spawn_key=(sample
key, block index))``; the sample key is a CRC32 of the sample name. The
random numbers therefore depend only on the seed, the sample and the event
position, not on ``chunk_size`` (which only sets how many events are held in
memory and written per ``tree.extend``) nor on which other samples are made.

Files written with the same seed and settings have identical content (every
branch, every value, and the metadata) and the same file UUIDs (derived from
the seed and the sample name through uproot's ``uuid_function`` option). Their
bytes still differ in the creation and modification dates that ROOT files
carry: uproot has no option to set them, and bumphunt does not patch uproot,
so reproducibility is checked on the content. Different chunk sizes give
identical content too, with a different basket layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from signal_models._common.version import __version__

from ..events.schema import META_KEY, TREE_NAME
from .processes import concatenate, take

logger = logging.getLogger(__name__)

__all__ = ["BLOCK_SIZE", "block_rng", "write_sample", "EVENT_ORDER"]

#: Events per random-number block (fixed: changing it changes the samples).
BLOCK_SIZE = 10_000
#: Order of the flat event branches in the tree.
EVENT_ORDER = ("event", "process", "weight", "mc_ma", "mc_decay_length", "mc_idx_a1", "mc_idx_a2", "mc_idx_recoil", "mc_process")


def sample_key(name: str) -> int:
    """Stable integer key of a sample name (CRC32)."""
    return zlib.crc32(name.encode())


def block_rng(seed: int, name: str, block: int) -> np.random.Generator:
    """Generator for block ``block`` of sample ``name``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(sample_key(name), int(block))))


def _uuid_function(seed: int, name: str) -> Callable[[], uuid.UUID]:
    counter = iter(range(1 << 30))

    def make() -> uuid.UUID:
        digest = hashlib.sha256(f"bumphunt:{seed}:{name}:{next(counter)}".encode()).digest()
        return uuid.UUID(bytes=digest[:16], version=4)

    return make


def _tree_dict(batch: dict, first_event: int) -> dict:
    n = len(batch["process"])
    out: dict[str, Any] = {"event": np.arange(first_event, first_event + n, dtype=np.int64)}
    for key in EVENT_ORDER[1:]:
        if key in batch:
            out[key] = batch[key]
    out["gamma"] = batch["gamma"]
    out["track"] = batch["track"]
    return out


def write_sample(
    path: Path,
    blocks: Iterator[dict],
    meta: dict[str, Any],
    *,
    chunk_size: int,
    seed: int,
    name: str,
    weight: float | None,
) -> int:
    """Write the event blocks of one sample to ``path`` in chunks; return the number of events.

    ``weight`` (if not None) multiplies the ``weight`` branch of every event
    (the per-event weights of the generator, 1 for unweighted samples). The metadata JSON (``META_KEY``) gets ``n_written`` added.
    """
    import uproot

    from ..events.writer import apply_branch_compression, default_compression

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    written = 0
    with uproot.recreate(
        tmp, compression=default_compression(), uuid_function=_uuid_function(seed, name)
    ) as f:
        buffer: list[dict] = []
        n_buf = 0

        def flush(batch: dict) -> None:
            nonlocal written
            if weight is not None:
                batch["weight"] = batch["weight"] * float(weight)
            tree_data = _tree_dict(batch, written)
            if TREE_NAME not in f:
                types = {k: (v.type.content if k in ("gamma", "track") else v.dtype) for k, v in tree_data.items()}
                f.mktree(TREE_NAME, types, title=f"bumphunt toy MC: {name}")
                apply_branch_compression(f[TREE_NAME])
            f[TREE_NAME].extend(tree_data)
            written += len(batch["process"])

        for block in blocks:
            buffer.append(block)
            n_buf += len(block["process"])
            while n_buf >= chunk_size:
                merged = concatenate(buffer) if len(buffer) > 1 else buffer[0]
                flush(take(merged, slice(0, chunk_size)))
                rest = take(merged, slice(chunk_size, None))
                n_buf -= chunk_size
                buffer = [rest] if n_buf else []
        if buffer:
            flush(concatenate(buffer) if len(buffer) > 1 else buffer[0])
        meta = dict(meta, n_written=written, bumphunt_version=__version__)
        f[META_KEY] = json.dumps(meta, sort_keys=True)
    tmp.replace(path)
    logger.info("wrote %s: %d events", path, written)
    return written

