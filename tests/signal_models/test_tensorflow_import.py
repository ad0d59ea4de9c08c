"""TensorFlow's import-time log lines are silenced at TF_CPP_MIN_LOG_LEVEL=3, and nothing else on stderr is lost."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=600)


def test_only_writes_inside_the_block_are_discarded() -> None:
    proc = _run("import os, sys\n"
                "from signal_models._common.tensorflow_import import c_stderr_discarded\n"
                "sys.stderr.write('before\\n')\n"
                "with c_stderr_discarded():\n"
                "    os.write(2, b'hidden C-level line\\n'); sys.stderr.write('hidden Python line\\n')\n"
                "os.write(2, b'after\\n')\n")
    assert proc.returncode == 0
    assert proc.stderr == "before\nafter\n"


def test_first_tensorflow_import_is_silent_at_level_3() -> None:
    pytest.importorskip("tensorflow")
    code = ("import sys\n"
            "from signal_models._common.tensorflow_import import quiet_tensorflow_import\n"
            "quiet_tensorflow_import()\n"
            "import tensorflow as tf\n"
            "print(float(tf.reduce_sum(tf.constant([1.0, 2.0]))))\n"
            "sys.stderr.write('stderr still works\\n')\n")
    proc = _run(code, TF_CPP_MIN_LOG_LEVEL="3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3.0"
    assert proc.stderr == "stderr still works\n", proc.stderr


def test_a_failing_import_is_silent_but_its_exception_reaches_the_caller(tmp_path) -> None:
    """A stand-in ``tensorflow`` package that prints C-level chatter and raises: the chatter is dropped, the error is not."""
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("import os\nos.write(2, b'I0000 chatter of the import\\n')\nraise RuntimeError('broken install')\n")
    code = ("import sys\n"
            f"sys.path.insert(0, {str(tmp_path)!r})\n"
            "from signal_models._common.tensorflow_import import quiet_tensorflow_import\n"
            "quiet_tensorflow_import()\n"
            "try:\n"
            "    import tensorflow\n"
            "except RuntimeError as exc:\n"
            "    sys.stderr.write(f'caught: {exc}\\n')\n")
    proc = _run(code, TF_CPP_MIN_LOG_LEVEL="3")
    assert proc.returncode == 0 and proc.stderr == "caught: broken install\n", proc.stderr
    # without level 3 the import is left alone (its lines are shown)
    shown = _run(code, TF_CPP_MIN_LOG_LEVEL="2")
    assert shown.stderr == "I0000 chatter of the import\ncaught: broken install\n", shown.stderr

