"""The command line, the Python API and the demo give the same signal model from the same files (issue 18, acceptance 1).

The files are the small demo's own: its selected signal grid (pre-selected
toy-MC files at six masses) and its trained selector with its working point;
the reference is the model the demo wrote (``bumphunt.demo.analysis.build_model``,
which calls ``bumphunt.chain.signal_model_from_files`` as the command line does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bumphunt.cli import cli

pytest.importorskip("zfit")
pytest.importorskip("bumphunt.toymc")


def assert_same_model(a, b, *, what: str) -> None:
    """Per-mass efficiencies and shape parameters identical, and so the interpolated model (bit for bit)."""
    assert [f.mass for f in a.fits] == [f.mass for f in b.fits], what
    for fa, fb in zip(a.fits, b.fits):
        assert fa.status == fb.status, (what, fa.mass)
        assert (fa.eff_tm, fa.eff_tm_err, fa.eff_total, fa.eff_total_err) == (fb.eff_tm, fb.eff_tm_err, fb.eff_total, fb.eff_total_err), (what, fa.mass)
        assert fa.params == fb.params and fa.errors == fb.errors and fa.window == fb.window, (what, fa.mass)
    assert a.settings["fixed_values"] == b.settings["fixed_values"], what
    m = np.linspace(*a.mass_range, 97)
    pa, pb = a.shape_params(m), b.shape_params(m)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=f"{what}: {k}")
    np.testing.assert_array_equal(a.efficiency(m), b.efficiency(m), err_msg=what)
    np.testing.assert_array_equal(a.efficiency_total(m), b.efficiency_total(m), err_msg=what)


@pytest.fixture(scope="module")
def demo_inputs(small_demo) -> dict:
    """The demo's recorded signal model and what it was built from (files, selector, working point)."""
    from signal_models import SignalModel

    assert small_demo.exit_code == 0, small_demo.output
    model = SignalModel.load(small_demo.out / "signal_model" / "signal_model.json")
    sel = model.selection
    assert len(sel["inputs"]) == 6 and sel["selector"] and sel["working_point"] is not None
    return {"model": model, "files": [Path(p) for p in sel["inputs"]], "selector": Path(sel["selector"]), "working_point": sel["working_point"]}


def test_api_rebuilds_the_demo_model(demo_inputs) -> None:
    from bumphunt.chain import signal_model_from_files

    d = demo_inputs
    # the demo's small-size options (bumphunt.demo.analysis.build_model): at least 50 truth-matched candidates, 3 pre-pass masses
    api = signal_model_from_files(d["files"], selector=d["selector"], working_point=d["working_point"], min_events=50, n_prepass=3)
    assert_same_model(d["model"], api, what="demo vs API")


def test_cli_rebuilds_the_demo_model(demo_inputs, tmp_path) -> None:
    from signal_models import SignalModel

    d = demo_inputs
    # the command line has no option for the number of pre-pass masses: it is given the tail exponents the
    # demo's pre-pass fixed (recorded in the model) and runs the same per-mass fits
    fixed = d["model"].settings["fixed_values"]
    out = tmp_path / "cli.json"
    args = ["signal-model", "build", "--selection", str(d["selector"]), "--working-point", repr(d["working_point"]), "--min-events", "50",
            "--n-l", repr(fixed["n_l"]), "--n-r", repr(fixed["n_r"]), "--out", str(out)]
    for f in d["files"]:
        args += ["--signal", str(f)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    from_cli = SignalModel.load(out)
    assert_same_model(d["model"], from_cli, what="demo vs CLI")
    assert from_cli.selection["inputs"] == d["model"].selection["inputs"]
    assert from_cli.selection["working_point"] == d["model"].selection["working_point"]
