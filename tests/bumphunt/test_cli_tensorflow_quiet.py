"""The command line at its default verbosity prints no TensorFlow or CUDA start-up lines (issue: TensorFlow >= 2.19 ignores
TF_CPP_MIN_LOG_LEVEL for them; signal_models._common.tensorflow_import)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_the_command_line_prints_no_tensorflow_lines(tmp_path) -> None:
    """``bumphunt fit --engine zfit`` imports TensorFlow (through zfit): at the default verbosity stderr stays empty."""
    pytest.importorskip("zfit")
    proc = subprocess.run([sys.executable, "-m", "bumphunt", "fit", "--mass", "1.0", "--engine", "zfit", "--no-limit", "--plot", str(tmp_path / "fit.png")],
                          capture_output=True, text=True, timeout=600, env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert proc.returncode == 0, proc.stderr
    assert "engine zfit: N_sig" in proc.stdout
    assert proc.stderr == "", proc.stderr
