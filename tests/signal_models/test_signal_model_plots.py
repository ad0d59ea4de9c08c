"""Signal-model plots: every label inside the figure and beside its axes, legends clear of the data, weighted MC visible."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("zfit")

from signal_models import build_signal_model  # noqa: E402
from signal_models._common.plotstyle import axis_labels_fit, legend_overlaps, texts_inside_figure  # noqa: E402
from signal_models.plots import plot_all, plot_efficiency, plot_mass_fit, plot_parameters  # noqa: E402
from signal_models.synthetic import TruthCurves, generate_candidates  # noqa: E402

MASSES = np.round(np.linspace(1.0, 9.0, 5), 6)
TRUTH = TruthCurves()


@pytest.fixture(scope="module")
def sample():
    return generate_candidates(MASSES, n_generated=3000, truth=TRUTH, seed=7)


@pytest.fixture(scope="module")
def model(sample):
    x, tm, ma, ngen = sample
    return build_signal_model(x, tm, ma, n_generated=ngen, holdout=(MASSES[2],), fixed_values={"n_l": TRUTH.n_l, "n_r": TRUTH.n_r})


@pytest.fixture(scope="module")
def weighted_model(sample):
    # toy-MC weights sigma x L / N_gen: histogram contents far below one candidate
    x, tm, ma, ngen = sample
    return build_signal_model(x, tm, ma, n_generated=ngen, weights=np.full(x.size, 2.5e-3), fixed_values={"n_l": TRUTH.n_l, "n_r": TRUTH.n_r})


def _data(ax):
    """What an axes draws in data coordinates: lines (curves, markers) and collections (bands, error bars)."""
    out = [(np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)) for line in ax.get_lines()
           if line.get_transform() == ax.transData]
    for coll in ax.collections:
        for path in coll.get_paths():
            if len(path.vertices):
                out.append((path.vertices[:, 0], path.vertices[:, 1]))
    return out


def assert_clean(fig) -> None:
    """Labels inside the figure and no longer than their axes; each legend covers none of its axes' data."""
    assert texts_inside_figure(fig)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert axis_labels_fit(*shown), [(ax.get_xlabel(), ax.get_ylabel()) for ax in shown]
    for ax in shown:
        legend = ax.get_legend()
        if legend is not None:
            assert not legend_overlaps(ax, legend, _data(ax)), ax.get_ylabel()


@pytest.mark.parametrize("make", [
    plot_efficiency,
    plot_parameters,
    lambda m: plot_mass_fit(m, MASSES[1]),
    lambda m: plot_mass_fit(m, MASSES[2], interpolated=True),
], ids=["efficiency", "parameters", "mass_fit", "closure"])
def test_labels_inside_and_legend_clear(model, make) -> None:
    fig = make(model)
    assert_clean(fig)
    plt.close(fig)


def test_efficiency_plot_has_its_mass_label_and_legend(model) -> None:
    fig = plot_efficiency(model)
    ax = fig.axes[0]
    assert ax.get_xlabel() == r"$m_a$ [GeV]" and ax.get_ylabel() == "signal efficiency"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["truth-matched", "total (incl. combinatorics)"]
    plt.close(fig)


def test_mass_fit_of_weighted_mc_shows_the_candidates(weighted_model) -> None:
    fig = plot_mass_fit(weighted_model, MASSES[3])
    ax = fig.axes[0]
    fit = weighted_model.fit_at(MASSES[3])
    counts = np.asarray(fit.histogram["counts"])
    lo, hi = ax.get_ylim()
    # the y range spans the weighted contents (all far below 1)
    assert counts.max() < 1.0 and lo < counts[counts > 0].min() and hi > counts.max()
    assert_clean(fig)
    plt.close(fig)


def test_plot_all_writes_the_files(model, tmp_path) -> None:
    paths = plot_all(model, tmp_path, max_mass_plots=2)
    names = {p.name for p in paths}
    assert {"parameters_vs_mass.png", "efficiency_vs_mass.png"} <= names
    assert all(p.stat().st_size > 1000 for p in paths)
