"""Shared fixtures of the bumphunt tests: one small demo run per test session."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class DemoRun:
    """The small demo (``bumphunt demo --small --seed 3``) run through the command line.

    Attributes
    ----------
    out : Path
        Its output folder.
    exit_code : int
        The command's exit status.
    output : str
        What the command printed.
    """

    out: Path
    exit_code: int
    output: str


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this session that every pytest-xdist worker sees (the workers' common base folder)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo at its smallest size, run once per session (also across xdist workers: a file lock, the first one runs it)."""
    from click.testing import CliRunner

    from bumphunt.cli import cli

    root = _shared_root(tmp_path_factory)
    out, record = root / "small_demo", root / "small_demo.json"
    with open(root / "small_demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not record.is_file():
                res = CliRunner().invoke(cli, ["demo", "--out", str(out), "--small", "--seed", "3"])
                failure = res.exception if res.exception is not None and not isinstance(res.exception, SystemExit) else None
                text = res.output + (f"\n{failure!r}" if failure is not None else "")
                record.write_text(json.dumps({"exit_code": res.exit_code, "output": text}))
            done = json.loads(record.read_text())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return DemoRun(out, done["exit_code"], done["output"])
