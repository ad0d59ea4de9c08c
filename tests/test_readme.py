"""The README's quick start runs as written and gives sensible numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


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
