"""Where and with what a validation or benchmark ran: machine, load, Python and package versions, git commit.

Used by the validation report and by ``benchmarks/run_all.py``. Nothing
here imports the packages it reports on (versions come from the installed
distributions' metadata).
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["KEY_PACKAGES", "cpu_model", "memory_gib", "load_average", "machine_info", "package_versions", "git_info", "provenance",
           "utc_now"]

#: distributions whose versions are recorded
KEY_PACKAGES = ("bumphunt", "numpy", "scipy", "numba", "zfit", "tensorflow", "hepstats", "pyhf", "iminuit", "uproot", "awkward", "matplotlib")


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def memory_gib() -> float | None:
    """Total physical memory (GiB), or None when it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):
        return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the system has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores (all and usable by this process), memory, operating system, Python."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    mem = memory_gib()
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "cores_usable": usable, "memory_gib": None if mem is None else round(mem, 2),
            "platform": platform.platform(), "hostname": platform.node(), "python": sys.version.split()[0],
            "python_implementation": platform.python_implementation()}


def package_versions(names: Sequence[str] = KEY_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the distributions ``names`` (None when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_info(repo: str | Path | None = None) -> dict[str, Any]:
    """Commit, branch and whether the working tree has changes, of the git repository at ``repo`` (default: this package's)."""
    where = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]

    def run(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None}
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "branch": run("rev-parse", "--abbrev-ref", "HEAD"), "dirty": bool(status) if status is not None else None}


def utc_now() -> str:
    """The current time, ISO 8601 in UTC (seconds)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def provenance(repo: str | Path | None = None) -> dict[str, Any]:
    """Machine, load average, versions and git state, stamped with the time."""
    return {"time_utc": utc_now(), "machine": machine_info(), "load_average": load_average(), "packages": package_versions(),
            "git": git_info(repo)}
