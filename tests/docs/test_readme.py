"""The README's quick start runs as written and gives sensible numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python quick start"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md quick start", "exec"), namespace)
    res, ul = namespace["res"], namespace["ul"]
    assert res.converged
    # background-only pseudo-data: the fitted signal is compatible with zero
    assert abs(res.nsig) < 4 * res.nsig_err
    expected = np.asarray(ul.expected)
    assert np.all(np.diff(expected) > 0) and ul.observed > 0
    assert "no good track" in capsys.readouterr().out


def test_ci_runs_the_readme_test_command() -> None:
    """``.ci/run`` runs every step of the README's test command, in the same order (plus lint and import checks)."""
    commands = [c for c in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S) if "pytest" in c]
    assert len(commands) == 1, "README.md should show exactly one test command"
    steps = [s.strip() for s in commands[0].strip().split("&&")]
    ci = (README.parent / ".ci" / "run").read_text()
    lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    ci_steps = [s.strip() for ln in lines for s in ln.split("&&")]
    positions = [ci_steps.index(s) for s in steps]  # raises ValueError naming a missing step
    assert positions == sorted(positions)
    assert "lint-imports" in ci_steps and "ruff check ." in ci_steps
