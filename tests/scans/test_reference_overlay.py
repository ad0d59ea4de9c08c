"""Published reference limits on the coupling plot: by name, labelled, only on the result's coupling model; CLI --reference."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from bumphunt.cli import cli  # noqa: E402
from scans import plots  # noqa: E402
from signal_models import reference_limits  # noqa: E402


def _result(coupling: str | None = None) -> dict:
    """A small synthetic scan result (limits in g rising with mass)."""
    masses = np.round(np.arange(0.2, 9.61, 0.2), 3)
    points = []
    for m in masses:
        g = 1e-3 * (1.0 + m / 3.0)
        points.append({"mass": float(m), "vetoed": False, "converged": True, "z_local": 0.1,
                       "ul_nsig_obs": 20.0, "ul_nsig_exp": [10.0, 14.0, 20.0, 28.0, 38.0],
                       "ul_xsec_pb_obs": 0.1, "ul_xsec_pb_exp": [0.05, 0.07, 0.1, 0.14, 0.19],
                       "ul_g_gev_obs": g, "ul_g_gev_exp": [g * f for f in (0.5, 0.7, 1.0, 1.4, 2.0)]})
    result = {"points": points, "global": {}, "luminosity_fb": 0.445, "sqrt_s": 10.58, "config": {}}
    if coupling is not None:
        result["coupling"] = coupling
    return result


def _labelled_lines(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


def test_overlay_draws_a_labelled_line_with_the_bundled_points() -> None:
    ref = reference_limits.load("belle2_2020")
    fig = plots.plot_coupling(_result(), references=("belle2_2020",))
    ax = fig.axes[0]
    line = _labelled_lines(ax)[ref.label]
    np.testing.assert_array_equal(line.get_xdata(), ref.masses)
    np.testing.assert_array_equal(line.get_ydata(), ref.couplings)
    assert ref.label in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_ylabel() == r"$g_{a\gamma\gamma}$ [GeV$^{-1}$]"
    plt.close(fig)


def test_a_region_is_drawn_closed_and_filled_without_stretching_the_axis() -> None:
    dump = reference_limits.load("beam_dumps_photon")
    plain = plots.plot_coupling(_result())
    fig = plots.plot_coupling(_result(), references=("beam_dumps_photon", "lep_3gamma_photon"))
    ax = fig.axes[0]
    line = _labelled_lines(ax)[dump.label]
    assert line.get_xdata()[0] == line.get_xdata()[-1] and line.get_ydata()[0] == line.get_ydata()[-1]  # closed
    assert len(line.get_xdata()) == len(dump.masses) + 1
    assert len(ax.patches) >= 1  # the filled polygon
    # the region's couplings (down to ~1e-7) do not stretch the y axis; the LEP curve (~5e-3) is inside the range
    assert ax.get_ylim()[0] == pytest.approx(plain.axes[0].get_ylim()[0])
    assert {dump.label, reference_limits.load("lep_3gamma_photon").label} <= {t.get_text() for t in ax.get_legend().get_texts()}
    plt.close(fig)
    plt.close(plain)


def test_only_curves_of_the_results_coupling_model_are_drawn() -> None:
    lep = reference_limits.load("lep_z3gamma_hypercharge")
    belle = reference_limits.load("belle2_2020")
    fig = plots.plot_coupling(_result(), references=("belle2_2020", "lep_z3gamma_hypercharge"))
    labels = _labelled_lines(fig.axes[0])
    assert belle.label in labels and lep.label not in labels
    plt.close(fig)
    fig = plots.plot_coupling(_result("hypercharge"), references=("belle2_2020", "lep_z3gamma_hypercharge"))
    labels = _labelled_lines(fig.axes[0])
    assert lep.label in labels and belle.label not in labels
    assert fig.axes[0].get_ylabel() == r"$g_{aBB}$ [GeV$^{-1}$]"
    plt.close(fig)


def test_unknown_reference_in_the_plot_function() -> None:
    with pytest.raises(ValueError, match="unknown reference limit 'nope'; available: beam_dumps_photon, belle2_2020"):
        plots.plot_coupling(_result(), references=("nope",))


def test_plot_all_and_cli_overlay_by_name(tmp_path) -> None:
    paths = plots.plot_all(_result(), tmp_path / "api", references=("belle2_2020",))
    assert (tmp_path / "api" / "coupling_exclusion.png") in paths
    result_path = tmp_path / "scan_result.json"
    result_path.write_text(json.dumps(_result()))
    res = CliRunner().invoke(cli, ["plot", str(result_path), "--out", str(tmp_path / "cli"), "--reference", "belle2_2020"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "coupling_exclusion.png").is_file()


def test_cli_reference_list_and_unknown_name(tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["plot", "--reference", "list"])
    assert res.exit_code == 0, res.output
    for name in reference_limits.available():
        assert name in res.output
    result_path = tmp_path / "scan_result.json"
    result_path.write_text(json.dumps(_result()))
    res = runner.invoke(cli, ["plot", str(result_path), "--out", str(tmp_path / "out"), "--reference", "belle2_2020", "--reference", "nope"])
    assert res.exit_code != 0
    lines = [s for s in res.output.splitlines() if s.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "'nope'" in lines[0] and "belle2_2020" in lines[0]
    assert "Traceback" not in res.output and not isinstance(res.exception, (ValueError, KeyError))
    assert not (tmp_path / "out").exists()
