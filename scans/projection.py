"""Projections without data: expected 95% CL limits for a luminosity, from the Asimov data set of a background model.

``project(masses, background, ...)`` returns a ``Projection``: per ALP mass the
expected CLs limits (median, +-1 and +-2 sigma) on N_sig, the cross-section
(pb) and the coupling of the chosen model (``"photon"``: g_agg,
``"hypercharge"``: g_aBB), and the reach of the counting criterion of the
Giga-Z study, S > z sqrt(B) (z = 2), for ``plot_projection`` to draw together.

Expected limits. The background is a smooth density b(m) in events/GeV per
fb^-1 (a function, or ``SampledBackground`` from a toy-MC sample). Each mass
gets the scan's fit window (``scans.grid.fit_windows``). The Asimov data set
is unbinned: weighted events at the composite Gauss-Legendre nodes of the
window (``fits.design.build_asimov_design``), weights w_q L b(x). The scans'
engine (``fits.vectorised.Batch``, a block of masses at once) fits them
background-only with the scan's polynomial, and that fit's Asimov set gives
the expected band exactly as in a scan of data with this background. Where the
polynomial cannot follow b(m), the projection inherits the mismatch as a scan
would (no spurious-signal uncertainty in expected limits).

Counting: B = L int b over mu +- ``counting_n_sigma`` sigma (default +-2),
f the fraction of the signal shape inside; the reach is N with f N = z sqrt(B).

Cross-sections sigma = N / (eps L) with the efficiency that normalises N_sig
(``scans.plan.signal_efficiency``); couplings from the Born cross-section of
the model at sqrt(s) (optionally times ``alp.isr_correction_factor``).
``scans`` does not know collider presets: callers pass sqrt(s) and a signal
model, or a resolution function (``PeakSignal``, ``diphoton_mass_resolution``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models import alp
from signal_models._common.defaults import DEFAULT_BKG_ORDER, DEFAULT_CL
from signal_models.shapes import SignalShape

from .grid import fit_windows
from .limits import PB_PER_FB
from .projection_inputs import PeakSignal, ProjectionError, SampledBackground, background_from_sample, diphoton_mass_resolution

logger = logging.getLogger(__name__)

__all__ = ["ProjectionError", "SampledBackground", "background_from_sample", "PeakSignal", "diphoton_mass_resolution",
           "Projection", "project", "plot_projection"]

#: masses fitted together in one batch (memory of the Asimov designs: ~200 nodes x 12 rows per mass, 5 band copies)
_BLOCK = 128


@dataclass(frozen=True, eq=False)
class Projection:
    """Expected limits of a projection (arrays over the k masses; bands at -2, -1, 0, +1, +2 sigma).

    Attributes
    ----------
    masses, sigmas : (k,) GeV
    windows : (k, 2) GeV
        Fit windows.
    efficiency : (k,)
    background_events : (k,)
        Expected background in the fit window (L int b).
    ul_nsig_exp, ul_xsec_pb_exp, ul_g_gev_exp : (k, 5)
        Expected CLs limits on N_sig, the cross-section (pb) and the coupling (GeV^-1); NaN where ``converged`` is False.
    converged : (k,) bool
    reason : tuple of str
    counting_window : (k, 2) GeV
    counting_background : (k,)
        B in the counting window.
    counting_nsig, counting_xsec_pb, counting_g_gev : (k,)
        Reach of S > z sqrt(B).
    settings : dict
        luminosity_fb, sqrt_s, coupling, cl, bkg_order, window_n_sigma, counting_n_sigma, counting_z, isr, isr_factor per mass.
    """

    masses: NDArray
    sigmas: NDArray
    windows: NDArray
    efficiency: NDArray
    background_events: NDArray
    ul_nsig_exp: NDArray
    ul_xsec_pb_exp: NDArray
    ul_g_gev_exp: NDArray
    converged: NDArray
    reason: tuple[str, ...]
    counting_window: NDArray
    counting_background: NDArray
    counting_nsig: NDArray
    counting_xsec_pb: NDArray
    counting_g_gev: NDArray
    settings: dict[str, Any]

    @property
    def coupling(self) -> str:
        """The coupling model of ``ul_g_gev_exp`` and ``counting_g_gev`` (``"photon"`` or ``"hypercharge"``)."""
        return str(self.settings["coupling"])

    def to_result(self) -> dict[str, Any]:
        """A scan-result-like document (expected limits only) for ``scans.plots``, ``scans.recast`` and JSON files.

        Points carry ``ul_*_exp`` and the counting reach (``counting_*``); no
        observed number. Points that did not converge carry a ``reason``.
        """
        points = []
        for i, m in enumerate(self.masses):
            p: dict[str, Any] = {"mass": float(m), "vetoed": False, "window": self.windows[i].tolist(), "converged": bool(self.converged[i]),
                                 "efficiency": float(self.efficiency[i]), "background_events": float(self.background_events[i])}
            for key in ("counting_window", "counting_background", "counting_nsig", "counting_xsec_pb", "counting_g_gev"):
                value = getattr(self, key)[i]
                if np.all(np.isfinite(value)):  # no NaN in a result file
                    p[key] = value.tolist()
            if self.converged[i]:
                p.update({key: getattr(self, key)[i].tolist() for key in ("ul_nsig_exp", "ul_xsec_pb_exp", "ul_g_gev_exp")})
            else:
                p["reason"] = self.reason[i]
            points.append(p)
        from signal_models._common.version import __version__

        settings = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.settings.items()}
        return {"bumphunt_version": __version__, "kind": "projection", "config": {"coupling": self.coupling, "projection": settings},
                "coupling": self.coupling, "luminosity_fb": self.settings["luminosity_fb"], "sqrt_s": self.settings["sqrt_s"],
                "points": points, "global": {"method": "projection (expected limits only)"}, "inputs": []}


def _check(m: NDArray, *, sqrt_s: float, luminosity_fb: float, data_range: tuple[float, float], counting: tuple[float, float]) -> None:
    if m.ndim != 1 or m.size == 0 or not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ProjectionError("project: masses must be a non-empty 1-d array of positive finite values (GeV)")
    if not (sqrt_s > 0 and math.isfinite(sqrt_s)):
        raise ProjectionError(f"project: sqrt_s must be > 0 GeV, got {sqrt_s!r}")
    if np.any(m >= sqrt_s):
        raise ProjectionError(f"project: m_a = {m[m >= sqrt_s][0]:g} GeV is at or above sqrt(s) = {sqrt_s:g} GeV (no e+e- -> gamma a)")
    if not (luminosity_fb > 0 and math.isfinite(luminosity_fb)):
        raise ProjectionError(f"project: luminosity_fb must be > 0, got {luminosity_fb!r}")
    if not (math.isfinite(data_range[0]) and math.isfinite(data_range[1]) and data_range[1] > data_range[0]):
        raise ProjectionError(f"project: data_range must be [lo, hi] GeV with hi > lo, got {data_range!r}")
    if not (counting[0] > 0 and counting[1] > 0):
        raise ProjectionError("project: counting_n_sigma and counting_z must be > 0")


def _integrate(density: Callable[[NDArray], NDArray], a: NDArray, b: NDArray, *, n: int = 48) -> NDArray:
    """int_a^b density (Gauss-Legendre, ``n`` nodes per interval; 0 for empty intervals)."""
    t, wt = np.polynomial.legendre.leggauss(n)
    half, mid = 0.5 * (b - a), 0.5 * (b + a)
    x = mid[:, None] + half[:, None] * t[None, :]
    vals = np.asarray(density(x), dtype=float).reshape(x.shape)
    return np.where(b > a, half * (vals @ wt), 0.0)


def _asimov_block(shapes: Sequence[SignalShape], lo: NDArray, hi: NDArray, density: Callable[[NDArray], NDArray], *, luminosity_fb: float,
                  bkg_order: int, cl: float, scale: NDArray, rel_unc: NDArray | None, syst_kind: str) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Expected limits of one block: N_sig (k, 5), cross-section (k, 5) in pb, background in the window (k,), convergence (k,)."""
    from fits.densities import ShapeArrays
    from fits.design import build_asimov_design
    from fits.nuisances import yield_systematic
    from fits.vectorised import Batch

    sh = ShapeArrays.from_shapes(shapes)
    base, nodes = build_asimov_design(sh, lo, hi, bkg_order)
    weights = base.w * luminosity_fb * np.asarray(density(nodes), dtype=float).reshape(nodes.shape)
    batch = Batch(base.with_weights(weights), sh, bkg_order)
    bf = batch.fit()
    n_exp, ok_n = batch.expected_limits(cl=cl)
    syst = yield_systematic(rel_unc, len(lo), kind=syst_kind) if rel_unc is not None else None
    if syst is None:
        xs_exp, ok_x = n_exp / scale[:, None], ok_n
    else:
        xs_exp, ok_x = batch.expected_limits(cl=cl, scale=scale, syst=syst)
    ok = bf.zero.converged & ok_n & ok_x & np.all(np.isfinite(n_exp), axis=1) & np.all(np.isfinite(xs_exp), axis=1)
    return n_exp, xs_exp, weights.sum(axis=1), ok


def project(
    masses: ArrayLike,
    background: Callable[[NDArray], NDArray],
    *,
    luminosity_fb: float,
    sqrt_s: float,
    signal_model: Any,
    coupling: str | alp.CouplingModel = "photon",
    data_range: tuple[float, float] | None = None,
    window_n_sigma: float = 20.0,
    bkg_order: int = DEFAULT_BKG_ORDER,
    cl: float = DEFAULT_CL,
    efficiency_rel_unc: float | None = None,
    syst_kind: str = "lognormal",
    counting_n_sigma: float = 2.0,
    counting_z: float = 2.0,
    isr: bool = False,
    isr_x_max: float | None = None,
) -> Projection:
    """Expected limits for ``luminosity_fb`` from the Asimov data set of ``background`` (module docstring).

    Parameters
    ----------
    masses : (k,) GeV
        ALP masses, below sqrt(s).
    background : callable
        b(m): background density in events/GeV per fb^-1 (vectorised), e.g. a ``SampledBackground``.
    luminosity_fb : float
        Integrated luminosity, fb^-1.
    sqrt_s : float
        CM energy, GeV (from the collider preset).
    signal_model : SignalModel-like
        ``shape(m)`` and ``efficiency(m)`` (or ``efficiency_total``): a ``SignalModel``,
        ``scans.testing.analytic_signal_model()`` or a ``PeakSignal`` (resolution function and efficiency).
    coupling : {"photon", "hypercharge"}
        Coupling model of the coupling limits.
    data_range : (lo, hi) GeV, optional
        Where the background is defined (default: ``background.data_range``).
    window_n_sigma, bkg_order, cl : optional
        The scan's fit window half-width (in sigma), background polynomial order and confidence level.
    efficiency_rel_unc : float, optional
        Relative uncertainty of efficiency x luminosity in the cross-section limits (default: the signal
        model's efficiency uncertainty; 0 for none).
    counting_n_sigma, counting_z : float
        The counting criterion S > z sqrt(B) in mu +- n sigma (default: S > 2 sqrt(B) in +-2 sigma).
    isr, isr_x_max : optional
        Divide the Born cross-section's coupling conversion by ``alp.isr_correction_factor`` (x_max: the
        largest radiated fraction the selection keeps).

    Returns
    -------
    Projection

    Raises
    ------
    ProjectionError
        A mass at or above sqrt(s), no data range, non-positive luminosity or efficiency.
    signal_models.alp.ALPError
        An unknown coupling model (the message lists the known ones).
    """
    from .plan import signal_efficiency

    model = alp.coupling_model(coupling)
    m = np.asarray(masses, dtype=float)
    if data_range is None:
        data_range = getattr(background, "data_range", None)
        if data_range is None:
            raise ProjectionError("project: give data_range=(lo, hi) GeV for a background function")
    data_range = (float(data_range[0]), float(data_range[1]))
    _check(m, sqrt_s=sqrt_s, luminosity_fb=luminosity_fb, data_range=data_range, counting=(counting_n_sigma, counting_z))
    shapes = [signal_model.shape(float(x)) for x in m]
    sig = np.array([s.sigma for s in shapes])
    mus = np.array([s.mu for s in shapes])
    eff, eff_unc = signal_efficiency(signal_model, m)
    bad_eff = ~(np.isfinite(eff) & (eff > 0))
    if bad_eff.any():
        raise ProjectionError(f"project: efficiency at m_a = {m[bad_eff][0]:g} GeV is {eff[bad_eff][0]!r} (must be > 0)")
    rel = np.divide(eff_unc, eff) if efficiency_rel_unc is None else np.full(m.shape, float(efficiency_rel_unc))
    windows = fit_windows(m, sig, n_sigma=window_n_sigma, data_range=data_range, comb_domain=np.array([s.comb_domain for s in shapes]), mus=mus)
    scale = eff * luminosity_fb * PB_PER_FB
    k = m.size
    n_exp, xs_exp = np.full((k, 5), np.nan), np.full((k, 5), np.nan)
    nbkg, ok = np.zeros(k), np.zeros(k, bool)
    reason = [""] * k
    usable = (windows[:, 1] - windows[:, 0] > 2.0 * sig) & (mus > windows[:, 0]) & (mus < windows[:, 1])
    for i in np.flatnonzero(~usable):
        reason[i] = f"the fit window [{windows[i, 0]:.4g}, {windows[i, 1]:.4g}] GeV does not hold the peak (data range {data_range})"
    idx_all = np.flatnonzero(usable)
    for start in range(0, idx_all.size, _BLOCK):
        idx = idx_all[start:start + _BLOCK]
        n_b, x_b, b_b, ok_b = _asimov_block([shapes[i] for i in idx], windows[idx, 0].copy(), windows[idx, 1].copy(), background,
                                            luminosity_fb=luminosity_fb, bkg_order=bkg_order, cl=cl, scale=scale[idx],
                                            rel_unc=rel[idx] if np.any(rel[idx] > 0) else None, syst_kind=syst_kind)
        n_exp[idx], xs_exp[idx], nbkg[idx], ok[idx] = n_b, x_b, b_b, ok_b
        for j, b in zip(idx[~ok_b], b_b[~ok_b]):
            reason[j] = "the expected-limit search did not converge" if b > 0 else "no background in the window"
    n_exp[~ok], xs_exp[~ok] = np.nan, np.nan
    isr_factor = alp.isr_correction_factor(m, sqrt_s, coupling=model, x_max=isr_x_max) if isr else np.ones(k)
    per_g2 = alp.cross_section_pb(m, 1.0, sqrt_s, coupling=model) * isr_factor
    g_exp = np.sqrt(xs_exp / per_g2[:, None])
    # the counting criterion S > z sqrt(B) in mu +- n sigma
    c_lo = np.maximum(mus - counting_n_sigma * sig, windows[:, 0])
    c_hi = np.minimum(mus + counting_n_sigma * sig, windows[:, 1])
    b_count = luminosity_fb * _integrate(background, c_lo, c_hi)
    frac = np.array([shapes[i].integral(c_lo[i], c_hi[i], windows[i, 0], windows[i, 1]) if usable[i] else np.nan for i in range(k)])
    c_nsig = counting_z * np.sqrt(b_count) / frac
    c_xsec = c_nsig / scale
    settings = {"luminosity_fb": float(luminosity_fb), "sqrt_s": float(sqrt_s), "coupling": model.name, "cl": float(cl),
                "bkg_order": int(bkg_order), "window_n_sigma": float(window_n_sigma), "data_range": list(data_range),
                "counting_n_sigma": float(counting_n_sigma), "counting_z": float(counting_z), "isr": bool(isr),
                "isr_x_max": isr_x_max, "isr_factor": isr_factor, "efficiency_rel_unc": rel,
                "asimov": "unbinned: weighted events at Gauss-Legendre nodes of each window, background-only polynomial fit"}
    n_bad = int(np.sum(~ok))
    if n_bad:
        logger.warning("projection: %d of %d masses without expected limits (%s)", n_bad, k, next(r for r in reason if r))
    return Projection(masses=m, sigmas=sig, windows=windows, efficiency=eff, background_events=nbkg, ul_nsig_exp=n_exp,
                      ul_xsec_pb_exp=xs_exp, ul_g_gev_exp=g_exp, converged=ok, reason=tuple(reason), counting_window=np.stack([c_lo, c_hi], 1),
                      counting_background=b_count, counting_nsig=c_nsig, counting_xsec_pb=c_xsec, counting_g_gev=np.sqrt(c_xsec / per_g2),
                      settings=settings)


_QUANTITY = {
    "nsig": ("ul_nsig_exp", "counting_nsig", r"Expected 95% CL limit on $N_\mathrm{sig}$"),
    "xsec": ("ul_xsec_pb_exp", "counting_xsec_pb", r"Expected limit on $\sigma(e^+e^-\to\gamma a)$ [pb]"),
    "g": ("ul_g_gev_exp", "counting_g_gev", None),
}


def plot_projection(projections: Projection | Mapping[str, Projection], *, quantity: str = "g", references: Sequence[str] = (),
                    counting: bool = True, ax: Any = None) -> Any:
    """Expected limits of one or more projections on log axes: median, +-1 sigma band, and the counting reach.

    Parameters
    ----------
    projections : Projection or {label: Projection}
        Several projections are drawn in their own colours (e.g. two colliders in one (m_a, g) plane);
        for ``quantity="g"`` they must share the coupling model.
    quantity : {"g", "xsec", "nsig"}
        Coupling (GeV^-1), cross-section (pb) or signal events.
    references : sequence of str
        Bundled published limits (``signal_models.reference_limits``) to overlay on the coupling plot; curves on
        another coupling model than the projections' are left out (logged).
    counting : bool
        Draw the reach of S > z sqrt(B) (dashed) beside each expected median.

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from signal_models._common.plotstyle import fit_axis_labels, place_legend, style

    from .plots import draw_references

    items = {"Projection": projections} if isinstance(projections, Projection) else dict(projections)
    if quantity not in _QUANTITY or not items:
        raise ProjectionError(f"plot_projection: give projections and a quantity in {', '.join(_QUANTITY)} (got {quantity!r})")
    couplings = {p.coupling for p in items.values()}
    if quantity == "g" and len(couplings) > 1:
        raise ProjectionError(f"plot_projection: the projections are on different coupling models ({', '.join(sorted(couplings))}); "
                              "recast them to one first")
    exp_attr, count_attr, ylabel = _QUANTITY[quantity]
    coupling = couplings.pop()
    if ylabel is None:
        ylabel = f"Expected limit on ${alp.coupling_model(coupling).symbol}$ [GeV$^{{-1}}$]"
    curves: list[tuple[NDArray, NDArray]] = []
    with style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(9, 6), layout="constrained")
        else:
            fig = ax.figure
        for k, (label, p) in enumerate(items.items()):
            colour = f"C{k % 10}"
            e = getattr(p, exp_attr)
            single = len(items) == 1
            if single:
                ax.fill_between(p.masses, e[:, 0], e[:, 4], color="#FFDF7F", lw=0, label=r"Expected $\pm 2\sigma$")
            ax.fill_between(p.masses, e[:, 1], e[:, 3], color="#85D1FB" if single else colour, alpha=1.0 if single else 0.25, lw=0,
                            label=r"Expected $\pm 1\sigma$" if single else None)
            ax.plot(p.masses, e[:, 2], color="k" if single else colour, lw=1.6, label="Expected median (CLs)" if single else f"{label} (CLs)")
            curves += [(p.masses, e[:, 0]), (p.masses, e[:, 4]), (p.masses, e[:, 2])]
            if counting:
                c = getattr(p, count_attr)
                crit = f"S > {p.settings['counting_z']:g}\u221aB, \u00b1{p.settings['counting_n_sigma']:g}\u03c3"  # no mathtext radical
                ax.plot(p.masses, c, color="tab:red" if single else colour, ls="--", lw=1.4, label=crit if single else f"{label} ({crit})")
                curves.append((p.masses, c))
        ax.set_xscale("log")
        all_masses = np.concatenate([p.masses for p in items.values()])
        curves += draw_references(ax, {"coupling": coupling}, references if quantity == "g" else (), first_colour=len(items) + 2, lw=2.0, ls="-.",
                                  mass_range=(float(all_masses.min()) / 1.05, float(all_masses.max()) * 1.05))
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ys = np.concatenate([np.asarray(y, dtype=float).ravel() for _, y in curves])
        ys = ys[np.isfinite(ys) & (ys > 0)]
        if ys.size:
            ax.set_ylim(ys.min() / 2.0, ys.max() * 5.0)
        ax.set_xlabel(r"$m_a$ [GeV]")
        ax.set_ylabel(ylabel, fontsize="small")
        fit_axis_labels(ax)
        ax.set_title(", ".join(f"{p.settings['luminosity_fb']:g} fb$^{{-1}}$ at {p.settings['sqrt_s']:.4g} GeV" for p in items.values()),
                     loc="right", fontsize="small")
        place_legend(ax, curves, fontsize="small", frameon=True, facecolor="white", framealpha=0.9)
    return fig
