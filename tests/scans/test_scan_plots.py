"""Scan plots: legends clear of the curves, every label inside the figure, bands and veto ranges drawn as recorded."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import scans  # noqa: E402
from scans import plots  # noqa: E402
from scans.testing import analytic_signal_model, toy_spectrum  # noqa: E402
from signal_models._common.plotstyle import legend_overlaps, texts_inside_figure  # noqa: E402


@pytest.fixture(scope="module")
def result():
    mgg = toy_spectrum(40_000, lo=0.1, hi=4.0, slope=0.5, seed=11)
    cfg = {"mass": {"min": 0.3, "max": 3.0, "step": 0.05}, "lee": {"toys": 0}, "luminosity_fb": 0.445, "beam": {"sqrt_s": 10.58}}
    return scans.scan(mgg, analytic_signal_model(), config=cfg, workers=1)


def _line_data(ax):
    """The data curves of an axes (lines in data coordinates; reference lines such as axhline are not data)."""
    return [(np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)) for line in ax.get_lines()
            if line.get_transform() == ax.transData]


@pytest.mark.parametrize("make", [
    lambda r: plots.plot_brazil(r, quantity="nsig"),
    lambda r: plots.plot_brazil(r, quantity="xsec"),
    lambda r: plots.plot_coupling(r),
    lambda r: plots.plot_p0(r),
], ids=["brazil_nsig", "brazil_xsec", "coupling", "p0"])
def test_legend_clear_of_curves_and_labels_inside(result, make) -> None:
    fig = make(result)
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None
    assert not legend_overlaps(ax, legend, _line_data(ax))
    assert texts_inside_figure(fig)
    plt.close(fig)


def test_coupling_plot_has_bands_named_overlays_and_a_tight_range(result, tmp_path) -> None:
    ext = tmp_path / "published.csv"
    ext.write_text("# label: Belle II 2020 (PRL 125, 161806)\nmass,g\n0.2,1.05e-3\n1.0,1.2e-3\n3.0,2.5e-3\n")
    curve = plots.read_external_limits(ext)
    fig = plots.plot_coupling(result, external={plots.external_label(ext): curve})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Belle II 2020 (PRL 125, 161806)" in labels and not any(".csv" in s or s == "published" for s in labels)
    assert any("2\\sigma" in s for s in labels) and any("1\\sigma" in s for s in labels)
    a = plots.limit_arrays(result, "g")
    lo, hi = ax.get_ylim()
    # the y range follows the curves inside the scanned masses: a factor 3 below the lowest of them
    shown = curve[1][(curve[0] >= a["mass"].min()) & (curve[0] <= a["mass"].max())]
    assert lo == pytest.approx(np.nanmin(np.r_[a["obs"], a["exp"][:, 0], shown]) / 3.0)
    assert hi / lo < 1e3
    plt.close(fig)


def test_vetoed_ranges_are_shaded_as_recorded(result) -> None:
    vetoed = [p["mass"] for p in result["points"] if p["vetoed"]]
    rec = result["vetoed_ranges"]
    assert [r["reason"] for r in rec] == ["eta", "eta'(958)"]  # 0.548 and 0.958 GeV lie in the scan
    assert all(any(r["lo"] <= m <= r["hi"] for r in rec) for m in vetoed)
    # every fitted point lies outside the recorded ranges
    assert not any(r["lo"] <= p["mass"] <= r["hi"] for r in rec for p in result["points"] if not p["vetoed"])
    lo, hi = rec[0]["lo"], rec[0]["hi"]
    fig = plots.plot_brazil(result)
    spans = sorted((p.get_x(), p.get_x() + p.get_width()) for p in fig.axes[0].patches if p.get_facecolor()[:3] == (0.85, 0.85, 0.85))
    assert spans[0] == pytest.approx((lo, hi))
    plt.close(fig)
    # results written before the ranges were recorded: the gaps between the fitted neighbours
    old = {k: v for k, v in result.items() if k != "vetoed_ranges"}
    spans = plots.vetoed_spans(old)
    assert len(spans) == 2 and all(any(a < m < b for a, b in spans) for m in vetoed)
