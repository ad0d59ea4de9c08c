"""Pseudo-experiments: sampling the hypothesis model, toy fits, toy-based CLs.

Toys are drawn from the extended model (Poisson numbers of signal and
background events) and fitted as one batch with the vectorised engine (every
toy is a row of the padded event array). Sampling uses inverse CDFs: the
signal CDF is analytic (``SignalShape.integral``), the background CDF is
tabulated on a fine grid of the Chebyshev density (clipped at zero where a
fitted polynomial dips below it). Every function takes a seed.

Toy fits are one ``fits.vectorised.Batch`` per set of toys. The toy CLs
limit of one hypothesis, ``toy_upper_limit``, runs on the batched toy engine
(``fits.toy_limits``: the same random numbers across the POI grid, all toys
fitted as one batch, adaptive toy counts, crossings by interpolation with a
Monte Carlo error). ``toy_upper_limit_grid`` is the former implementation
(independent toys at each value of a fixed POI grid, extended until CLs
crosses), kept as a reference and for a fixed background (``bkg_fixed``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from signal_models._common.defaults import DEFAULT_BKG_ORDER, DEFAULT_CL
from signal_models.shapes import SignalShape

from .asymptotic import N_SIGMA, q_tilde
from .densities import ShapeArrays, chebyshev_basis
from .design import Design, moments_at, window_integrals
from .inputs import HypothesisInput
from .results import LimitResult
from .single import upper_limit_asymptotic
from .toy_limits import toy_cls_limits
from .toy_sampling import inverse_cdf_sampler, signal_cdf_table
from .vectorised import Batch

logger = logging.getLogger(__name__)

__all__ = [
    "sample_background",
    "sample_signal",
    "generate_toys",
    "generate_background_toys",
    "fit_toys",
    "ToyFits",
    "toy_upper_limit",
    "toy_upper_limit_grid",
    "toy_limits",
]

_GRID = 4097


def _inverse_cdf_sampler(x: NDArray, cdf: NDArray) -> Callable[[NDArray], NDArray]:
    return inverse_cdf_sampler(x, cdf)


def _background_sampler(window: tuple[float, float], beta: NDArray) -> Callable[[NDArray], NDArray]:
    lo, hi = window
    xp = np.linspace(-1.0, 1.0, _GRID)
    dens = np.maximum(np.tensordot(np.asarray(beta, float), chebyshev_basis(xp, len(beta) - 1), axes=1), 0.0)
    if not np.any(dens > 0):
        dens = np.ones_like(dens)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(xp))])
    cdf_scale = float(cdf[-1])
    cdf = cdf / cdf_scale
    # within a grid cell the density is linear: invert the quadratic CDF exactly

    def sample(u: NDArray) -> NDArray:
        i = np.clip(np.searchsorted(cdf, u, side="right") - 1, 0, len(cdf) - 2)
        d0, d1 = dens[i], dens[i + 1]
        h = xp[i + 1] - xp[i]
        target = (u - cdf[i]) * cdf_scale  # area to cover inside the cell
        slope = (d1 - d0) / h
        with np.errstate(divide="ignore", invalid="ignore"):
            disc = np.sqrt(np.maximum(d0 * d0 + 2.0 * slope * target, 0.0))
            t = np.where(np.abs(slope) > 1e-12 * np.maximum(d0, 1e-300), (disc - d0) / slope, target / np.maximum(d0, 1e-300))
        t = np.clip(np.nan_to_num(t), 0.0, h)
        return lo + (hi - lo) * 0.5 * (xp[i] + t + 1.0)

    return sample


def sample_background(rng: np.random.Generator, window: tuple[float, float], beta: ArrayLike, n: int) -> NDArray:
    """``n`` events (GeV) from the Chebyshev density ``sum beta_k T_k(x')`` on the window."""
    return _background_sampler(window, np.asarray(beta, float))(rng.random(n))


def _signal_sampler(shape: SignalShape, window: tuple[float, float]) -> Callable[[NDArray], NDArray]:
    """Inverse of the signal CDF on the window (GeV), tabulated on a grid and interpolated linearly.

    Not ``SignalShape.sample``, which gives other numbers for the same generator
    state: it draws two uniforms per event (first the component, truth-matched
    or combinatorial, then the quantile within it) and inverts each component's
    CDF exactly, while the toys draw one uniform per event and invert the
    mixture CDF tabulated by ``fits.toy_sampling.signal_cdf_table``. One sampler
    serves all the events of all the toys of a call; the seeded toys (and the
    limits from them) keep their numbers.
    """
    g, cdf = signal_cdf_table(shape, window)
    return _inverse_cdf_sampler(g, cdf)


def sample_signal(rng: np.random.Generator, shape: SignalShape, window: tuple[float, float], n: int) -> NDArray:
    """``n`` signal events (GeV) from the shape normalised on the window (GeV).

    One uniform per event through the tabulated CDF (see ``_signal_sampler``
    for why this is not ``SignalShape.sample``).
    """
    return _signal_sampler(shape, window)(rng.random(n))


def generate_toys(
    shape: SignalShape,
    window: tuple[float, float],
    *,
    nsig: float,
    beta: ArrayLike,
    n_toys: int,
    seed: int | np.random.SeedSequence | None = 0,
) -> list[NDArray]:
    """Pseudo-data sets of the extended model ``nsig * s(x) + sum beta_k T_k(x')``.

    Numbers of events are Poisson(``max(nsig, 0)``) and Poisson(``N_bkg``)
    (background integral of the clipped density). Returns a list of sorted
    arrays (GeV).
    """
    rng = np.random.default_rng(seed)
    lo, hi = window
    beta = np.asarray(beta, float)
    bs = _background_sampler(window, beta)
    xp = np.linspace(-1.0, 1.0, _GRID)
    dens = np.maximum(np.tensordot(beta, chebyshev_basis(xp, len(beta) - 1), axes=1), 0.0)
    nb_exp = float(np.sum(0.5 * (dens[1:] + dens[:-1]) * np.diff(xp))) * 0.5 * (hi - lo)
    ss = _signal_sampler(shape, window) if nsig > 0 else None
    n_b = rng.poisson(nb_exp, n_toys)
    n_s = rng.poisson(max(nsig, 0.0), n_toys) if nsig > 0 else np.zeros(n_toys, int)
    u_b = rng.random(int(n_b.sum()))
    u_s = rng.random(int(n_s.sum()))
    xb = np.split(bs(u_b), np.cumsum(n_b)[:-1])
    xs = np.split(ss(u_s), np.cumsum(n_s)[:-1]) if ss is not None else [np.zeros(0)] * n_toys
    return [np.sort(np.concatenate([b, s])) for b, s in zip(xb, xs)]


def generate_background_toys(
    density: Callable[[NDArray], NDArray],
    x_range: tuple[float, float],
    n_expected: float,
    *,
    n_toys: int = 1,
    seed: int | np.random.SeedSequence | None = 0,
    grid: int = 20001,
) -> list[NDArray]:
    """Background-only pseudo-spectra from any non-negative density on ``x_range`` (GeV).

    ``density`` is a vectorised callable (any normalisation); each toy has
    Poisson(``n_expected``) events. For look-elsewhere studies: pass a smooth
    fit of the signal-free spectrum.
    """
    rng = np.random.default_rng(seed)
    lo, hi = x_range
    g = np.linspace(lo, hi, grid)
    d = np.maximum(np.asarray(density(g), float), 0.0)
    if not np.all(np.isfinite(d)) or not np.any(d > 0):
        raise ValueError("density: must be finite and positive somewhere on the range")
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (d[1:] + d[:-1]) * np.diff(g))])
    sampler = _inverse_cdf_sampler(g, cdf)
    n = rng.poisson(n_expected, n_toys)
    return [np.sort(sampler(rng.random(int(m)))) for m in n]


@dataclass(frozen=True)
class ToyFits:
    """Fits of a batch of toys of one hypothesis (arrays over toys; yields in events).

    ``converged``: both fits converged and the toy has at least as many events
    as free parameters; ``batch`` holds the fitted batch (conditional fits).
    """

    nsig: NDArray
    nsig_err: NDArray
    z_local: NDArray
    nll_hat: NDArray
    nll_zero: NDArray
    converged: NDArray
    batch: Batch


def _toy_design(toys: Sequence[NDArray], shape: SignalShape, window: tuple[float, float], order: int) -> tuple[Design, ShapeArrays]:
    k = len(toys)
    lo, hi = window
    counts = np.array([len(t) for t in toys])
    n_max = max(int(counts.max(initial=0)), 1)
    x = np.full((k, n_max), 0.5 * (lo + hi))
    w = np.zeros((k, n_max))
    for j, t in enumerate(toys):  # loop over toys (not events): fill padded rows
        x[j, : len(t)] = t
        if len(t):
            x[j, len(t):] = t[0]
        w[j, : len(t)] = 1.0
    sh = ShapeArrays.from_shapes([shape] * k)
    los, his = np.full(k, lo), np.full(k, hi)
    M = moments_at(x, sh, los, his, order)
    return Design(M=M, w=w, integ=window_integrals(los, his, order), lo=los, hi=his, n_events=counts, unit_weights=True), sh


def fit_toys(toys: Sequence[NDArray], shape: SignalShape, window: tuple[float, float], *, bkg_order: int = DEFAULT_BKG_ORDER, bkg_fixed: ArrayLike | None = None) -> ToyFits:
    """Unconditional and background-only fits of every toy (one batch)."""
    d, sh = _toy_design(toys, shape, window, bkg_order)
    bf = None if bkg_fixed is None else np.tile(np.asarray(bkg_fixed, float), (len(toys), 1))
    b = Batch(d, sh, bkg_order, bkg_fixed=bf)
    f = b.fit()
    ok = f.converged & (d.n_events >= bkg_order + 2)
    return ToyFits(f.mu_hat, f.mu_err, f.z_local, f.nll_hat, f.nll_zero, ok, b)


def _q_toys(toys: Sequence[NDArray], shape: SignalShape, window: tuple[float, float], mu: float, order: int, bkg_fixed: ArrayLike | None) -> tuple[NDArray, NDArray]:
    tf = fit_toys(toys, shape, window, bkg_order=order, bkg_fixed=bkg_fixed)
    c = tf.batch.conditional(np.full(len(toys), mu))
    q = q_tilde(c.nll, tf.nll_hat, tf.nll_zero, mu, tf.nsig)
    return q, tf.converged & c.converged


def toy_upper_limit_grid(
    mgg: NDArray,
    shape: SignalShape,
    window: tuple[float, float],
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    cl: float = DEFAULT_CL,
    n_toys: int = 1000,
    seed: int | None = 0,
    signal_scale: float | None = None,
    poi_values: ArrayLike | None = None,
    bkg_fixed: ArrayLike | None = None,
) -> LimitResult:
    """CLs upper limit from independent pseudo-experiments on a fixed POI grid (the former ``toy_upper_limit``).

    For each tested N_sig (``poi_values``; by default 12 points from 0.3 to
    2.2 x the asymptotic observed limit, extended until CLs crosses), toys
    are generated from the model with the background profiled at that N_sig
    (s+b toys) and at N_sig = 0 (b-only toys, shared by all points), each with
    ``n_toys`` pseudo-experiments fitted with the vectorised engine.
    ``CLs = P(q >= q_obs | s+b) / P(q >= q_obs | b)``; the expected band uses
    the b-only quantiles of q in place of q_obs. The crossing with ``1 - cl``
    is interpolated linearly in log CLs. ``mgg`` in GeV, ``window`` (GeV);
    ``signal_scale`` (events per pb) turns the limits into cross-sections (pb).
    """
    alpha = 1.0 - cl
    asym = upper_limit_asymptotic(HypothesisInput.from_args(mgg, shape, window, bkg_order=bkg_order), cl=cl, bkg_fixed=bkg_fixed)
    f = asym.fit
    ss = np.random.SeedSequence(seed)
    streams = iter(ss.spawn(1000))
    # observed fits (one batch of one)
    data_fit = fit_toys([np.sort(np.asarray(mgg)[(mgg >= window[0]) & (mgg <= window[1])])], shape, window, bkg_order=bkg_order, bkg_fixed=bkg_fixed)
    beta0 = data_fit.batch.fit_.zero.theta[0, 1:]
    b_toys = generate_toys(shape, window, nsig=0.0, beta=beta0, n_toys=n_toys, seed=next(streams))
    b_fit = fit_toys(b_toys, shape, window, bkg_order=bkg_order, bkg_fixed=bkg_fixed)
    if poi_values is None:
        poi_values = np.linspace(0.3, 2.2, 12) * max(asym.observed, 1e-3)
    pois = list(np.asarray(poi_values, float))
    rows: dict[float, tuple[float, NDArray, NDArray]] = {}

    def evaluate(mu: float) -> None:
        c = data_fit.batch.conditional(np.array([mu]))
        q_obs = float(q_tilde(c.nll, data_fit.nll_hat, data_fit.nll_zero, mu, data_fit.nsig)[0])
        beta_mu = c.theta[0, 1:]
        sb = generate_toys(shape, window, nsig=mu, beta=beta_mu, n_toys=n_toys, seed=next(streams))
        q_sb, ok_sb = _q_toys(sb, shape, window, mu, bkg_order, bkg_fixed)
        cb = b_fit.batch.conditional(np.full(n_toys, mu))
        q_b = q_tilde(cb.nll, b_fit.nll_hat, b_fit.nll_zero, mu, b_fit.nsig)
        rows[mu] = (q_obs, q_sb[ok_sb], q_b[b_fit.converged & cb.converged])

    for mu in pois:
        evaluate(mu)

    def curves() -> tuple[NDArray, NDArray, NDArray]:
        mus = np.array(sorted(rows))
        obs = np.empty(len(mus))
        exp = np.empty((len(mus), len(N_SIGMA)))
        for i, mu in enumerate(mus):
            q_obs, q_sb, q_b = rows[mu]
            clb = max(np.mean(q_b >= q_obs), 1.0 / len(q_b))
            obs[i] = np.mean(q_sb >= q_obs) / clb
            # expected: q at the b-only quantiles; larger q <-> stronger exclusion, so the
            # +N sigma (weaker) band uses the lower quantile of q
            qn = np.quantile(q_b, ndtr(-N_SIGMA))
            for jn, qq in enumerate(qn):
                cb_ = max(np.mean(q_b >= qq), 1.0 / len(q_b))
                exp[i, jn] = np.mean(q_sb >= qq) / cb_
        return mus, obs, exp

    for _ in range(6):
        mus, obs, exp = curves()
        if np.all(np.vstack([obs, exp.T]).min(axis=1) < alpha):
            break
        evaluate(float(mus[-1] * 1.5))
    mus, obs, exp = curves()

    def crossing(c: NDArray) -> float:
        below = np.flatnonzero(c < alpha)
        if len(below) == 0:
            return float(mus[-1])
        i = below[0]
        if i == 0:
            return float(mus[0])
        y0, y1 = np.log(max(c[i - 1], 1e-12)), np.log(max(c[i], 1e-12))
        return float(mus[i - 1] + (np.log(alpha) - y0) * (mus[i] - mus[i - 1]) / (y1 - y0)) if y1 != y0 else float(mus[i])

    observed = crossing(obs)
    expected = np.array([crossing(exp[:, j]) for j in range(len(N_SIGMA))])
    crossed = bool(np.min(obs) < alpha and np.all(exp.min(axis=0) < alpha) and obs[0] >= alpha)
    scale = 1.0 if signal_scale is None else float(signal_scale)
    return LimitResult(
        observed=observed / scale, expected=expected / scale, cl=cl, poi="nsig" if signal_scale is None else "xsec", method="toys", fit=f,
        converged=crossed, reason="" if crossed else "toy CLs did not bracket 1 - cl on the POI grid",
        details={"poi": mus, "cls": obs, "cls_expected": exp, "n_toys": n_toys, "seed": seed, "asymptotic": asym},
    )


def toy_upper_limit(
    mgg: NDArray,
    shape: SignalShape,
    window: tuple[float, float],
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    cl: float = DEFAULT_CL,
    n_toys: int = 1000,
    seed: int | None = 0,
    signal_scale: float | None = None,
    poi_values: ArrayLike | None = None,
    bkg_fixed: ArrayLike | None = None,
) -> LimitResult:
    """CLs upper limit from pseudo-experiments (q~_mu), observed and expected band, with Monte Carlo errors.

    One hypothesis of ``fits.toy_limits.toy_cls_limits``: ``n_toys``
    background-only toys and as many signal + background toys at each POI
    value near the crossings (the profile construction: toys from the data's
    conditional fits), the POI grid starting at ``poi_values`` (signal events,
    or pb with ``signal_scale``) or around the asymptotic limits and extended
    until every CLs curve crosses ``1 - cl``. ``mgg`` in GeV, ``window``
    (GeV); ``signal_scale`` (events per pb) turns the limits into
    cross-sections (pb). ``details``: ``poi`` and ``cls`` / ``cls_expected``
    (the CLs curves), ``observed_err`` and ``expected_err`` (Monte Carlo
    errors), ``n_toys``, ``n_fits``, ``seed``, ``asymptotic``. With
    ``bkg_fixed`` (background held fixed) this is ``toy_upper_limit_grid``.
    """
    if bkg_fixed is not None:
        return toy_upper_limit_grid(mgg, shape, window, bkg_order=bkg_order, cl=cl, n_toys=n_toys, seed=seed, signal_scale=signal_scale,
                                    poi_values=poi_values, bkg_fixed=bkg_fixed)
    hyp = HypothesisInput.from_args(mgg, shape, window, bkg_order=bkg_order)
    asym = upper_limit_asymptotic(hyp, cl=cl)
    scale = None if signal_scale is None else [float(signal_scale)]
    grid = None if poi_values is None else [np.asarray(poi_values, float)]
    t = toy_cls_limits(hyp.mgg, [hyp.shape], [list(hyp.window)], bkg_order=hyp.bkg_order, cl=cl, n_toys=n_toys, seed=0 if seed is None else int(seed),
                       signal_scale=scale, poi_values=grid)
    d = t.details[0]
    f = 1.0 if signal_scale is None else 1.0 / float(signal_scale)
    details = {"n_toys": n_toys, "seed": seed, "asymptotic": asym, "observed_err": float(t.observed_err[0]), "expected_err": np.array(t.expected_err[0]),
               "n_fits": int(t.n_fits[0])}
    if d is not None:
        details.update(poi=d.poi * f, cls=d.cls[:, 0], cls_expected=d.cls[:, 1:], n_per_poi=d.n_per_poi)
    return LimitResult(observed=float(t.observed[0]), expected=np.array(t.expected[0]), cl=cl, poi="nsig" if signal_scale is None else "xsec", method="toys",
                       fit=asym.fit, converged=bool(t.converged[0]), reason=t.reason[0], details=details)


def toy_limits(toys: Sequence[NDArray], shape: SignalShape, window: tuple[float, float], *, bkg_order: int = DEFAULT_BKG_ORDER, cl: float = DEFAULT_CL,
               expected: bool = False) -> dict[str, NDArray]:
    """Asymptotic CLs limits of every toy (one batch): ``{"observed", "expected", "converged", "nsig", "nsig_err", "z_local"}``."""
    tf = fit_toys(toys, shape, window, bkg_order=bkg_order)
    obs, ok = tf.batch.observed_limit(cl=cl)
    out = {"observed": obs, "converged": ok & tf.converged, "nsig": tf.nsig, "nsig_err": tf.nsig_err, "z_local": tf.z_local}
    if expected:
        exp, ok_e = tf.batch.expected_limits(cl=cl)
        out["expected"] = exp
        out["converged"] = out["converged"] & ok_e
    return out
