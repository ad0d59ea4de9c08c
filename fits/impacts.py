"""Post-fit pulls and impacts of the nuisances on the parameter of interest, for one combined hypothesis.

For a hypothesis given as channels (``fits.Channel`` with yield, shape and
spurious-signal nuisances, as ``fits.fit`` takes them; one dataset is wrapped
as one channel with ``signal_scale`` 1, so that ``mu`` is its signal yield in
events) the unconditional fit gives ``mu_hat`` and the nuisances
``theta_hat`` (in units of their standard-normal constraints). Reported per
nuisance:

- the pull ``(theta_hat - theta_0) / sigma_0`` with ``theta_0`` the global
  observable (0 on data) and ``sigma_0 = 1``, and the post-fit error
  ``sigma_hat`` (inverse Hessian, the other parameters profiled);
- the impact on ``mu``: the fit repeated with the nuisance fixed at
  ``theta_hat + sigma_hat`` and at ``theta_hat - sigma_hat`` (post-fit) and at
  ``theta_hat +- 1`` (pre-fit), every other parameter profiled, giving
  ``Delta mu = mu_fixed - mu_hat`` up and down;
- the ranking by the largest post-fit ``|Delta mu|``.

All refits of all nuisances (and of all hypotheses of a request) are rows of
one batch of ``fits.combined.CombinedBatch`` (``minimise`` with
``fixed_shared``). ``impacts_of_request`` does the same for every hypothesis
of a ``CombinedRequest`` with the constraints centred at given global
observables (toy studies); ``normalised_pulls`` gives
``(theta_hat - theta_0) / sqrt(1 - sigma_hat^2)``, which is standard normal
over toys with randomised global observables whenever the data constrain the
nuisance.

``plot_impacts`` draws the usual ranking plot (pulls on the lower axis,
impacts as bars on the upper axis, the largest impact on top).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.defaults import DEFAULT_BKG_ORDER
from signal_models.shapes import SignalShape

from .channels import Channel, CombinedModel, ShapeUncertainty, SpuriousSignal, YieldUncertainty
from .combined import CombinedBatch, CombinedState
from .combined_api import is_channel_list
from .combined_rows import CombinedRequest
from .errors import FitInputError

logger = logging.getLogger(__name__)

__all__ = ["ImpactTable", "CentredFit", "hypothesis_model", "centred_fit", "impacts", "impacts_of_request", "normalised_pulls",
           "plot_impacts", "format_rows"]

#: the refits of one nuisance, in the order of the batch copies
VARIANTS = ("postfit_up", "postfit_down", "prefit_up", "prefit_down")


@dataclass(frozen=True, eq=False)
class ImpactTable:
    """Pulls and impacts of the nuisances of one hypothesis (arrays over nuisances, model order).

    Attributes
    ----------
    names : tuple of str
        Nuisance names (yields, spurious signals, shapes; ``CombinedModel.nuisance_names``).
    values : ndarray (n,)
        Post-fit ``theta_hat`` in standard deviations of the constraint.
    global_observables : ndarray (n,)
        ``theta_0``: the constraint centres (0 on data).
    pulls : ndarray (n,)
        ``(theta_hat - theta_0) / sigma_0`` with ``sigma_0 = 1``.
    errors : ndarray (n,)
        Post-fit errors ``sigma_hat`` (inverse Hessian, units of ``sigma_0``).
    impact_up, impact_down : ndarray (n,)
        ``Delta mu`` with the nuisance fixed at ``theta_hat + sigma_hat`` and ``theta_hat - sigma_hat``.
    prefit_up, prefit_down : ndarray (n,)
        ``Delta mu`` with the nuisance fixed at ``theta_hat + 1`` and ``theta_hat - 1`` (NaN if not computed).
    mu_hat, mu_err : float
        The unconditional fit of the parameter of interest and its error.
    ranking : ndarray (n,) int
        Nuisance indices by decreasing ``max(|impact_up|, |impact_down|)`` (non-finite last).
    converged : ndarray (n, 4) bool
        The refits in the order ``VARIANTS``.
    fit_converged : bool
        The unconditional fit.
    poi : str
        Name of the parameter of interest (``"N_sig"`` for one dataset, else ``"mu"``).
    """

    names: tuple[str, ...]
    values: NDArray
    global_observables: NDArray
    pulls: NDArray
    errors: NDArray
    impact_up: NDArray
    impact_down: NDArray
    prefit_up: NDArray
    prefit_down: NDArray
    mu_hat: float
    mu_err: float
    ranking: NDArray
    converged: NDArray
    fit_converged: bool
    poi: str = "mu"

    def __len__(self) -> int:
        return len(self.names)

    @property
    def impact(self) -> NDArray:
        """``max(|impact_up|, |impact_down|)`` per nuisance (post-fit)."""
        return np.fmax(np.abs(self.impact_up), np.abs(self.impact_down))

    @property
    def normalised_pulls(self) -> NDArray:
        """``(theta_hat - theta_0) / sqrt(1 - sigma_hat^2)`` (NaN where the data do not constrain the nuisance)."""
        return normalised_pulls(self.values, self.errors, self.global_observables)

    def to_rows(self) -> list[tuple[str, ...]]:
        """A header and one row of text per nuisance, in ranking order (for printing, see ``format_rows``)."""
        head = ("rank", "nuisance", "pull", "post-fit err", f"d{self.poi} +1s post", f"d{self.poi} -1s post", f"d{self.poi} +1 pre",
                f"d{self.poi} -1 pre", "ok")
        rows = [head]
        for r, i in enumerate(self.ranking):
            rows.append((str(r + 1), self.names[i], f"{self.pulls[i]:+.3f}", f"{self.errors[i]:.3f}", f"{self.impact_up[i]:+.4g}",
                         f"{self.impact_down[i]:+.4g}", f"{self.prefit_up[i]:+.4g}", f"{self.prefit_down[i]:+.4g}",
                         "yes" if self.converged[i].all() else "no"))
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (lists in ranking order)."""
        order = self.ranking
        pick = lambda a: [float(a[i]) for i in order]  # noqa: E731
        return {"poi": self.poi, "mu_hat": self.mu_hat, "mu_err": self.mu_err, "names": [self.names[i] for i in order],
                "values": pick(self.values), "pulls": pick(self.pulls), "errors": pick(self.errors), "impact_up": pick(self.impact_up),
                "impact_down": pick(self.impact_down), "prefit_up": pick(self.prefit_up), "prefit_down": pick(self.prefit_down),
                "converged": [bool(self.converged[i].all()) for i in order], "fit_converged": self.fit_converged}


@dataclass(frozen=True, eq=False)
class CentredFit:
    """Unconditional fits of the k hypotheses of a batch with the constraints centred at ``centre``.

    Attributes
    ----------
    batch : CombinedBatch
    centre : ndarray (k, S - 1) or None
        Global observables (None: all 0).
    hat : CombinedState
        The minimum (mu free).
    nll_hat : ndarray (k,)
    mu_hat, mu_err : ndarray (k,)
    nuisance_hat, nuisance_err : ndarray (k, S - 1)
    cov : ndarray (k, S, S)
        Covariance of the shared parameters (inverse Hessian, backgrounds profiled).
    converged : ndarray (k,) bool
    """

    batch: CombinedBatch
    centre: NDArray | None
    hat: CombinedState
    nll_hat: NDArray
    mu_hat: NDArray
    mu_err: NDArray
    nuisance_hat: NDArray
    nuisance_err: NDArray
    cov: NDArray
    converged: NDArray


def hypothesis_model(
    mgg: ArrayLike | Channel | Sequence[Channel],
    shape: SignalShape | None = None,
    window: Sequence[float] | None = None,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    yield_uncertainties: Sequence[YieldUncertainty] = (),
    shape_uncertainties: Sequence[ShapeUncertainty] = (),
    spurious_signals: Sequence[SpuriousSignal] = (),
) -> tuple[CombinedModel, str]:
    """The checked combined model of one hypothesis and the name of its parameter of interest.

    ``mgg`` is a ``fits.Channel`` or a list of them (``shape`` and ``window`` not given; POI ``"mu"``),
    or candidate masses in GeV with the signal ``shape`` and ``window``: one channel with
    ``signal_scale`` 1 and ``bkg_order`` (POI ``"N_sig"``, signal events).
    """
    if is_channel_list(mgg):
        if shape is not None or window is not None:
            raise FitInputError("with channels, the shape and window belong to each fits.Channel")
        channels = [mgg] if isinstance(mgg, Channel) else list(mgg)  # type: ignore[arg-type]
        poi = "mu"
    else:
        if shape is None:
            raise FitInputError("give the signal shape (or a list of fits.Channel as the first argument)")
        channels = [Channel(mgg, shape, window, bkg_order=bkg_order, name="data")]  # type: ignore[arg-type]
        poi = "N_sig"
    model = CombinedModel.build(channels, yields=yield_uncertainties, shapes=shape_uncertainties, spurious=spurious_signals)
    return model, poi


def _centre(centre: ArrayLike | None, k: int, n: int) -> NDArray | None:
    if centre is None:
        return None
    c = np.asarray(centre, float)
    if c.ndim == 1 and k == 1:
        c = c[None, :]
    if c.shape != (k, n) or not np.all(np.isfinite(c)):
        raise FitInputError(f"global observables: expected {(k, n)} finite values (standard deviations), got shape {c.shape}")
    return c


def centred_fit(batch: CombinedBatch, *, centre: ArrayLike | None = None) -> CentredFit:
    """Background-only then unconditional fits of every hypothesis of ``batch``, constraints centred at ``centre`` (k, S - 1)."""
    c = _centre(centre, batch.k, batch.S - 1)
    # from mu = 0 the (mu, yield nuisance) block can be indefinite: a trial step may overflow exp(); the line search refuses it
    with np.errstate(over="ignore", invalid="ignore"):
        zero = batch.minimise(batch.data, batch.start(), mu_fixed=True, centre=c)
        hat = batch.minimise(batch.data, zero.state, mu_fixed=False, centre=c)
    diag = np.diagonal(hat.cov_shared, axis1=1, axis2=2)
    err = np.sqrt(np.where(diag > 0, diag, np.nan))
    ok = hat.converged & zero.converged & np.isfinite(err[:, 0])
    return CentredFit(batch, c, hat.state, hat.nll, hat.state.shared[:, 0], err[:, 0], hat.state.shared[:, 1:], err[:, 1:], hat.cov_shared, ok)


def normalised_pulls(values: ArrayLike, errors: ArrayLike, global_observables: ArrayLike = 0.0) -> NDArray:
    """``(theta_hat - theta_0) / sqrt(1 - sigma_hat^2)``: standard normal under the model when the data constrain the nuisance.

    NaN where ``sigma_hat >= 1`` (the data say nothing about the nuisance; then ``theta_hat = theta_0``).
    """
    v, e, g = (np.asarray(a, float) for a in (values, errors, global_observables))
    d = 1.0 - e * e
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 1e-12, (v - g) / np.sqrt(np.where(d > 1e-12, d, 1.0)), np.nan)


def _ranking(impact: NDArray) -> NDArray:
    key = np.where(np.isfinite(impact), impact, -np.inf)
    return np.argsort(-key, kind="stable")


def impacts_of_request(request: CombinedRequest, *, centre: ArrayLike | None = None, prefit: bool = True, poi: str = "mu",
                       max_iter: int = 100) -> tuple[ImpactTable, ...]:
    """Pulls and impacts of every hypothesis of ``request`` (one ``ImpactTable`` each).

    Parameters
    ----------
    request : CombinedRequest
        k hypotheses with n = S - 1 nuisances.
    centre : array (k, n), optional
        Global observables (standard deviations); default 0.
    prefit : bool
        Also the pre-fit impacts (``theta_hat +- 1``); else they are NaN.
    poi : str
        Name of the parameter of interest in the tables.

    All ``k x n x (4 or 2)`` refits are the rows of one ``CombinedBatch.minimise`` call.
    """
    batch = CombinedBatch(request)
    cf = centred_fit(batch, centre=centre)
    k, S = batch.k, batch.S
    n = S - 1
    m = (4 if prefit else 2) * n
    if n == 0:
        empty = np.zeros(0)
        return tuple(ImpactTable((), empty, empty, empty, empty, empty, empty, empty, empty, float(cf.mu_hat[h]), float(cf.mu_err[h]),
                                 np.zeros(0, np.int64), np.zeros((0, 4), bool), bool(cf.converged[h]), poi) for h in range(k))
    # copy q (rows q k .. q k + k - 1) fixes nuisance q mod n at variant q // n
    q = np.arange(m)
    nuis, var = q % n, q // n
    sign = np.where(var % 2 == 0, 1.0, -1.0)
    start = cf.hat.tile(m)
    b = np.arange(m * k)
    qb, hb = b // k, b % k
    width = np.where(var[qb] < 2, cf.nuisance_err[hb, nuis[qb]], 1.0)
    start.shared[b, 1 + nuis[qb]] = cf.nuisance_hat[hb, nuis[qb]] + sign[qb] * width
    pin = np.zeros((m * k, S), bool)
    pin[b, 1 + nuis[qb]] = True
    centre_t = None if cf.centre is None else np.tile(cf.centre, (m, 1))
    ok_width = np.isfinite(start.shared).all(axis=1)
    start.shared[~ok_width] = np.tile(cf.hat.shared, (m, 1))[~ok_width]
    sol = batch.minimise(batch.data.tile(m), start, mu_fixed=False, centre=centre_t, fixed_shared=pin, max_iter=max_iter)
    dmu = (sol.state.shared[:, 0] - np.tile(cf.mu_hat, m)).reshape(m, k)
    dmu = np.where(ok_width.reshape(m, k), dmu, np.nan)
    conv = (sol.converged & ok_width).reshape(m, k)
    logger.debug("impacts: %d hypotheses x %d refits, %d not converged", k, m, int((~conv).sum()))
    g = np.zeros((k, n)) if cf.centre is None else cf.centre
    out = []
    for h in range(k):
        d = dmu[:, h].reshape(-1, n)  # (variants, n)
        c = conv[:, h].reshape(-1, n)
        nan = np.full(n, np.nan)
        pre_up, pre_dn = (d[2], d[3]) if prefit else (nan, nan)
        cv = np.ones((n, 4), bool)
        cv[:, : c.shape[0]] = c.T
        up, dn = d[0], d[1]
        out.append(ImpactTable(
            names=request.nuisance_names, values=cf.nuisance_hat[h].copy(), global_observables=g[h].copy(), pulls=cf.nuisance_hat[h] - g[h],
            errors=cf.nuisance_err[h].copy(), impact_up=up, impact_down=dn, prefit_up=pre_up, prefit_down=pre_dn,
            mu_hat=float(cf.mu_hat[h]), mu_err=float(cf.mu_err[h]), ranking=_ranking(np.fmax(np.abs(up), np.abs(dn))), converged=cv,
            fit_converged=bool(cf.converged[h]), poi=poi))
    return tuple(out)


def impacts(
    mgg: ArrayLike | Channel | Sequence[Channel],
    shape: SignalShape | None = None,
    window: Sequence[float] | None = None,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    yield_uncertainties: Sequence[YieldUncertainty] = (),
    shape_uncertainties: Sequence[ShapeUncertainty] = (),
    spurious_signals: Sequence[SpuriousSignal] = (),
    global_observables: ArrayLike | None = None,
    prefit: bool = True,
) -> ImpactTable:
    """Pulls and impacts of the nuisances of one hypothesis on its parameter of interest.

    Parameters
    ----------
    mgg, shape, window, bkg_order
        As for ``fits.fit``: a list of ``fits.Channel`` (POI ``mu``), or one dataset's candidate masses
        (GeV), signal shape and window (GeV) wrapped as one channel (POI ``N_sig``, events).
    yield_uncertainties, shape_uncertainties, spurious_signals : sequences
        The nuisances (``fits.YieldUncertainty``, ``fits.ShapeUncertainty``, ``fits.SpuriousSignal``).
    global_observables : array (n,), optional
        Constraint centres in standard deviations, in the model's nuisance order (default 0).
    prefit : bool
        Also the pre-fit impacts (nuisance fixed at ``theta_hat +- 1``).

    Returns
    -------
    ImpactTable
    """
    model, poi = hypothesis_model(mgg, shape, window, bkg_order=bkg_order, yield_uncertainties=yield_uncertainties,
                                  shape_uncertainties=shape_uncertainties, spurious_signals=spurious_signals)
    return impacts_of_request(CombinedRequest.from_model(model), centre=global_observables, prefit=prefit, poi=poi)[0]


def format_rows(rows: Sequence[Sequence[str]]) -> str:
    """Rows of text (the first a header) as aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(s.rjust(w) if j != 1 else s.ljust(w) for j, (s, w) in enumerate(zip(r, widths))).rstrip() for r in rows)


def _poi_tex(poi: str) -> str:
    return r"N_{\mathrm{sig}}" if poi == "N_sig" else r"\mu"


def plot_impacts(table: ImpactTable, *, max_nuisances: int = 30, path: str | Path | None = None, text: str | None = None) -> Any:
    """The ranking plot: pulls ``theta_hat +- sigma_hat`` (lower axis) and impacts on the POI as bars (upper axis).

    Nuisances are ranked top to bottom by their largest post-fit impact (at most ``max_nuisances``);
    filled bars are the post-fit impacts (``theta_hat +- sigma_hat``), open bars the pre-fit ones
    (``theta_hat +- 1``). Returns the path if ``path`` is given, else the figure.
    """
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import blended_transform_factory

    from signal_models._common.plotstyle import DEFAULT_LABEL, label, new_figure, place_legend, save, style

    if len(table) == 0:
        raise FitInputError("plot_impacts: the hypothesis has no nuisances")
    idx = table.ranking[:max_nuisances]
    n = len(idx)
    y = np.arange(n)[::-1].astype(float)  # the largest impact on top
    tex = _poi_tex(table.poi)
    with style():
        fig, ax = new_figure(figsize=(9.5, 4.0 + 0.5 * n))
        ax2 = ax.twiny()
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
        h = 0.7
        imp = [table.impact_up[idx], table.impact_down[idx], table.prefit_up[idx], table.prefit_down[idx]]
        ax2.barh(y, np.nan_to_num(imp[2]), height=h, fill=False, edgecolor="tab:red", lw=1.2, label=r"pre-fit $\Delta " + tex + r"$ ($+1$)")
        ax2.barh(y, np.nan_to_num(imp[3]), height=h, fill=False, edgecolor="tab:blue", lw=1.2, label=r"pre-fit $\Delta " + tex + r"$ ($-1$)")
        ax2.barh(y, np.nan_to_num(imp[0]), height=h, color="tab:red", alpha=0.55, label=r"post-fit $\Delta " + tex + r"$ ($+\hat\sigma$)")
        ax2.barh(y, np.nan_to_num(imp[1]), height=h, color="tab:blue", alpha=0.55, label=r"post-fit $\Delta " + tex + r"$ ($-\hat\sigma$)")
        big = np.nanmax(np.abs(np.concatenate(imp))) if np.any(np.isfinite(np.concatenate(imp))) else 1.0
        big = big if big > 0 else 1.0
        ax2.set_xlim(-1.25 * big, 1.25 * big)
        ax2.set_xlabel(r"impact $\Delta " + tex + r"$")
        pulls, errs = table.pulls[idx], table.errors[idx]
        # the +-1 and +-2 bands of the pulls, drawn in the layer of the bars (below them)
        band = blended_transform_factory(ax.transData, ax.transAxes)
        for lvl, col in ((2.0, "#fff3b0"), (1.0, "#c8ecc8")):
            ax2.add_patch(Rectangle((-lvl, 0.0), 2.0 * lvl, 1.0, transform=band, color=col, lw=0, zorder=0))
        ax.axvline(0.0, color="k", lw=0.8)
        ax.errorbar(pulls, y, xerr=errs, fmt="ko", ms=5, capsize=0, label=r"pull $(\hat\theta - \theta_0)/\sigma_0 \pm \hat\sigma$")
        reach = np.nanmax(np.abs(np.r_[pulls + errs, pulls - errs, 2.4]))
        ax.set_xlim(-1.1 * reach, 1.1 * reach)
        ax.set_xlabel(r"$(\hat\theta - \theta_0)/\sigma_0$")
        ax.set_yticks(y)
        ax.set_yticklabels([table.names[i] for i in idx], fontsize="small")
        ax.set_ylim(-0.7, n - 0.3)
        ax.tick_params(axis="y", which="minor", left=False, right=False)
        # room for the names: the axes keep their width, the figure grows with the longest name
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        names_w = max(t.get_window_extent(renderer).width for t in ax.get_yticklabels()) / fig.dpi
        fig.set_size_inches(8.5 + names_w, fig.get_size_inches()[1])
        # the legend where it covers no pull and no bar (bars sampled on their area, in the pulls' coordinates)
        frac = np.linspace(0.0, 1.0, 25)
        bars = [(np.outer(np.nan_to_num(a), frac).ravel(), np.repeat(y, len(frac)) + dy) for a in imp for dy in (-0.5 * h, 0.0, 0.5 * h)]
        curves = [(np.r_[pulls - errs, pulls, pulls + errs], np.r_[y, y, y])]
        for bx, by in bars:
            pts = ax.transData.inverted().transform(ax2.transData.transform(np.column_stack([bx, by])))
            curves.append((pts[:, 0], pts[:, 1]))
        label(ax, text=text or DEFAULT_LABEL)
        ax.set_title(f"${tex}$ = {table.mu_hat:.4g} $\\pm$ {table.mu_err:.3g}", loc="right", fontsize="small")
        fig.tight_layout()  # the final axes size before the legend is placed
        h1, l1 = ax.get_legend_handles_labels()
        h2_, l2 = ax2.get_legend_handles_labels()
        opts = {"handles": h1 + h2_, "labels": l1 + l2, "fontsize": "x-small", "ncol": 2}
        # headroom above the top nuisance for the legend (drawing it is slow: find the room first, then check it)
        fig.canvas.draw()
        leg_h = ax.legend(loc="upper left", **opts).get_window_extent(fig.canvas.get_renderer()).height
        row_h = abs(ax.transData.transform((0.0, 1.0))[1] - ax.transData.transform((0.0, 0.0))[1])
        ax.set_ylim(-0.7, n - 0.3 + 1.3 * leg_h / row_h + 0.2)
        place_legend(ax, curves, **opts)
        fig.tight_layout()
    if path is None:
        return fig
    return save(fig, path)
