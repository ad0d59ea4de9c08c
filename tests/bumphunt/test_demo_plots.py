"""The demo's diphoton-mass plots: one distinct colour per process, legends clear of the data, every label inside the figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from bumphunt.demo.plots import PROCESS_COLOURS, plot_mgg_per_sample, plot_mgg_stacked  # noqa: E402
from signal_models._common.plotstyle import axis_labels_fit, legend_overlaps, texts_inside_figure  # noqa: E402

#: smallest CIE76 colour difference between two processes (about 2.3 is "just noticeable"; tab20's light
#: and dark shades of neighbouring hues come within 17)
MIN_DELTA_E = 25.0

BACKGROUNDS = ("ggg", "eeg", "pi0g", "pi0gg", "etag", "etagg", "etapg", "etapgg")
SIGNALS = ("signal_m0.500", "signal_m1.000", "signal_m2.000", "signal_m4.000", "signal_m7.000")


def cielab(colour) -> np.ndarray:
    """CIELAB (D65) coordinates of a matplotlib colour."""
    rgb = np.asarray(to_rgb(colour), dtype=float)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def closest_pair(colours: dict[str, object]) -> tuple[float, str, str]:
    names = list(colours)
    lab = {n: cielab(colours[n]) for n in names}
    return min((float(np.linalg.norm(lab[a] - lab[b])), a, b) for i, a in enumerate(names) for b in names[i + 1 :])


@pytest.fixture(scope="module")
def candidates() -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(18)
    out = {}
    for k, name in enumerate(BACKGROUNDS):
        n = 3000 // (k + 1)
        mgg = rng.uniform(0.0, 10.5, n) if k % 2 == 0 else rng.exponential(2.0, n)
        out[name] = {"mgg": mgg, "weight": np.full(n, 0.02 * (k + 1)), "truth_match": np.zeros(n, bool)}
    for name in SIGNALS:
        m = float(name.split("_m")[1])
        mgg = np.r_[rng.normal(m, 0.01 + 0.002 * m, 900), rng.uniform(0.0, 10.5, 1800)]
        out[name] = {"mgg": mgg, "weight": np.full(mgg.size, 1e-4), "truth_match": np.r_[np.ones(900, bool), np.zeros(1800, bool)]}
    mgg = np.r_[rng.exponential(2.5, 4000), rng.uniform(0.0, 10.5, 1000)]
    out["data"] = {"mgg": mgg, "weight": np.ones(mgg.size), "truth_match": np.zeros(mgg.size, bool)}
    return out


def legend_colours(ax) -> dict[str, object]:
    """Legend label -> colour of its handle: a stacked fill (patch), a signal line, the data's error bars."""
    legend = ax.get_legend()
    out = {}
    for handle, text in zip(legend.legend_handles, legend.get_texts()):
        if isinstance(handle, Patch):
            colour = handle.get_facecolor()
        elif isinstance(handle, Line2D):
            colour = handle.get_color()
        else:  # the error bars of the pseudo-data (a line collection)
            colour = handle.get_color()[0]
        out[text.get_text()] = colour
    return out


def test_palette_colours_are_distinct() -> None:
    colours = {f"#{i}": c for i, c in enumerate(PROCESS_COLOURS)} | {"data": "black"}
    d, a, b = closest_pair(colours)
    assert d > MIN_DELTA_E, (a, b, d)


def test_stacked_plot_gives_every_process_its_own_colour(candidates) -> None:
    fig = plot_mgg_stacked(candidates, lumi_fb=0.02, sqrt_s=10.58)
    ax = fig.axes[0]
    colours = legend_colours(ax)
    assert len(colours) == len(BACKGROUNDS) + len(SIGNALS) + 1
    assert set(BACKGROUNDS) <= set(colours) and "pseudo-data" in colours
    d, a, b = closest_pair(colours)
    assert d > MIN_DELTA_E, f"{a} and {b} look alike (Delta E = {d:.1f})"
    plt.close(fig)


def test_closest_pair_catches_a_reused_hue() -> None:
    # the former stacked plot: tab20's dark shades for the backgrounds, its light ones for the signals
    palette = plt.get_cmap("tab20").colors
    old = {f"b{i}": palette[2 * i] for i in range(8)} | {f"s{i}": palette[(2 * (i + 8) + 1) % 20] for i in range(5)}
    assert closest_pair(old)[0] < MIN_DELTA_E


def _curves(ax):
    """The drawn data of an axes: line and step data and the centres of the histogram bars."""
    curves = [(np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)) for line in ax.get_lines()
              if line.get_transform() == ax.transData]
    for coll in ax.collections:
        for path in coll.get_paths():
            v = path.vertices
            if len(v):
                curves.append((v[:, 0], v[:, 1]))
    return curves


@pytest.mark.parametrize("make", [
    lambda c: plot_mgg_stacked(c, lumi_fb=0.02, sqrt_s=10.58),
    lambda c: plot_mgg_per_sample(c, lumi_fb=0.02, sqrt_s=10.58),
], ids=["stacked", "per_sample"])
def test_legend_clear_of_the_data_and_labels_inside(candidates, make) -> None:
    fig = make(candidates)
    assert texts_inside_figure(fig)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert axis_labels_fit(*shown)
    for ax in shown:
        legend = ax.get_legend()
        if legend is not None:
            assert not legend_overlaps(ax, legend, _curves(ax), draw=False), ax.get_title()
    plt.close(fig)


@pytest.mark.parametrize("quantity", ["nsig", "xsec", "g"])
def test_scan_band_plots_of_the_demo_keep_their_labels_beside_the_frame(small_demo, quantity) -> None:
    # the demo's cross-section band plot had a y-label longer than its axes (running past the frame)
    import json

    from scans.plots import plot_brazil

    assert small_demo.exit_code == 0, small_demo.output
    result = json.loads((small_demo.out / "scan" / "scan_result.json").read_text())
    fig = plot_brazil(result, quantity=quantity)
    ax = fig.axes[0]
    assert axis_labels_fit(ax), ax.get_ylabel()
    assert texts_inside_figure(fig)
    assert not legend_overlaps(ax, ax.get_legend(), _curves(ax), draw=False)
    plt.close(fig)
