"""``bumphunt fit`` and ``bumphunt export-pyhf``: one mass hypothesis, fitted or exported.

Both run without inputs: without ``--data`` they use a built-in toy spectrum
(falling + flat background in [0.1, 10] GeV, seeded), without
``--signal-model`` the analytic default signal model
(``signal_models.synthetic.TruthCurves``). numpy/fits/zfit are imported inside
the commands so ``bumphunt --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

logger = logging.getLogger(__name__)

__all__ = ["fit", "export_pyhf", "toy_spectrum"]


def toy_spectrum(*, n: int = 20000, seed: int = 1, x_range: tuple[float, float] = (0.1, 10.0)) -> Any:
    """Built-in toy M_gg spectrum (GeV): half flat, half exponentially falling (slope 1.5 GeV)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lo, hi = x_range
    flat = rng.uniform(lo, hi, n // 2)
    fall = lo + rng.exponential(1.5, 2 * n)
    fall = fall[fall < hi][: n - n // 2]
    return np.sort(np.concatenate([flat, fall]))


def _load_inputs(mass: float, data: str | None, signal_model: str | None, tree: str, branch: str, seed: int) -> tuple[Any, Any, str]:
    import numpy as np

    if data is None:
        mgg = toy_spectrum(seed=seed)
        src = f"built-in toy spectrum (seed {seed})"
    else:
        from scans.run import read_candidates

        try:
            mgg = read_candidates([data], tree=tree, branch=branch)
        except Exception as exc:  # the reader names file, tree and branch (uproot's part of the message may span lines)
            raise click.ClickException(" ".join(str(exc).split())) from None
        src = data
    if signal_model is None:
        from signal_models.synthetic import TruthCurves

        try:
            shape = TruthCurves().shape(mass)
        except ValueError as exc:  # ShapeError: no valid shape of the default model at that mass
            raise click.ClickException(f"--mass {mass:g}: the default signal model has no valid shape there ({exc})") from None
    else:
        from signal_models import SignalModel

        try:
            model = SignalModel.load(signal_model)
            shape = model.shape(mass)
        except (OSError, ValueError, KeyError) as exc:
            message = str(exc)
            raise click.ClickException(message if message.startswith(str(signal_model)) else f"{signal_model}: {message}") from None
    return np.asarray(mgg, float), shape, src


_common = [
    click.option("--mass", type=float, required=True, help="Mass hypothesis m_a in GeV."),
    click.option("--data", type=click.Path(dir_okay=False), default=None, help="Candidate file (.root/.npy/.npz/.csv, M_gg in GeV) [default: built-in toy spectrum]."),
    click.option("--tree", default="candidates", show_default=True, help="ROOT tree of --data."),
    click.option("--branch", default="mgg", show_default=True, help="Branch/column with M_gg in GeV."),
    click.option("--signal-model", type=click.Path(dir_okay=False), default=None, help="SignalModel JSON [default: analytic default model]."),
    click.option("--window", type=(float, float), default=None, help="Fit window LO HI in GeV [default: mass +- 20 sigma clipped to the data]."),
    click.option("--bkg-order", type=click.IntRange(0, 10), default=3, show_default=True, help="Chebyshev order of the background."),
    click.option("--seed", type=int, default=1, show_default=True, help="Seed of the built-in toy spectrum and of toys."),
]


def _apply(opts: list[Any]) -> Any:
    def deco(f: Any) -> Any:
        for o in reversed(opts):
            f = o(f)
        return f

    return deco


@click.command("fit")
@_apply(_common)
@click.option("--engine", type=click.Choice(["vectorised", "zfit"]), default="vectorised", show_default=True, help="Newton engine or the zfit/Minuit reference.")
@click.option("--limit/--no-limit", default=True, show_default=True, help="Also compute the 95% CL CLs upper limit (asymptotic, q~_mu).")
@click.option("--cl", type=click.FloatRange(0.5, 0.9999), default=0.95, show_default=True, help="Confidence level of the limit.")
@click.option("--toys", "n_toys", type=click.IntRange(min=0), default=0, show_default=True, help="Toy-based CLs with this many toys per POI value (0: asymptotic).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default="fit.png", show_default=True, help="Plot of data, model, components and pulls.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the result as JSON here.")
@click.option("--yield-unc", "yield_unc", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Relative uncertainty of the signal yield (log-normal nuisance 'yield'), e.g. 0.1 for 10%; 0: none.")
@click.option("--resolution-unc", "resolution_unc", type=click.FloatRange(min=0.0, max=0.5, max_open=True), default=0.0, show_default=True,
              help="Relative uncertainty of the signal core width (shape nuisance 'resolution'), e.g. 0.05; 0: none.")
@click.option("--shift-unc", "shift_unc", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Uncertainty of the signal peak position in GeV (shape nuisance 'shift'), e.g. 0.002; 0: none.")
@click.option("--impacts", "do_impacts", is_flag=True, help="Print the post-fit pulls and the impacts of the nuisances on N_sig (needs a nuisance option).")
@click.option("--impacts-plot", "impacts_path", type=click.Path(dir_okay=False), default="impacts.png", show_default=True,
              help="Ranking plot of the pulls and impacts (with --impacts).")
@click.option("--nll-scan", "do_scan", is_flag=True, help="Profile-likelihood scan of N_sig: print the 68%/95% crossings and plot -2 Delta ln L.")
@click.option("--nll-scan-plot", "scan_path", type=click.Path(dir_okay=False), default="nll_scan.png", show_default=True,
              help="Plot of -2 Delta ln L versus N_sig (with --nll-scan).")
def fit(mass: float, data: str | None, tree: str, branch: str, signal_model: str | None, window: tuple[float, float] | None, bkg_order: int, seed: int,
        engine: str, limit: bool, cl: float, n_toys: int, plot_path: str, json_path: str | None, yield_unc: float, resolution_unc: float,
        shift_unc: float, do_impacts: bool, impacts_path: str, do_scan: bool, scan_path: str) -> None:
    """Fit signal + background at one mass and print N_sig, its error, Z and the CLs upper limit.

    Extended unbinned likelihood in the window: N_sig x (signal shape of the
    signal model at MASS, fixed) + Chebyshev background of order --bkg-order
    with floating coefficients. Yields in events, masses in GeV.

    With --yield-unc, --resolution-unc or --shift-unc the fit profiles those
    nuisances (standard-normal constraints); --impacts then ranks them by
    their impact on N_sig (refits with each fixed at its post-fit value +- its
    post-fit error, and +- 1 pre-fit), and --nll-scan profiles N_sig.
    """
    mgg, shape, src = _load_inputs(mass, data, signal_model, tree, branch, seed)
    nuisances = _nuisances(yield_unc, resolution_unc, shift_unc)
    if do_impacts and not any(nuisances.values()):
        raise click.UsageError("--impacts needs at least one nuisance: give --yield-unc, --resolution-unc or --shift-unc")
    with _one_line_errors():
        _fit_and_write(mgg, shape, src, mass=mass, window=window, bkg_order=bkg_order, seed=seed, engine=engine, limit=limit, cl=cl,
                       n_toys=n_toys, plot_path=plot_path, json_path=json_path, nuisances=nuisances, do_impacts=do_impacts,
                       impacts_path=impacts_path, do_scan=do_scan, scan_path=scan_path)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """The package's errors (e.g. a failed zfit fit) and outputs that cannot be written end in one error line."""
    from ..errors import BumphuntError

    try:
        yield
    except BumphuntError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # --json, --plot, --impacts-plot or --nll-scan-plot cannot be written
        raise click.ClickException(f"cannot write an output file: {exc}") from None


def _fit_and_write(mgg: Any, shape: Any, src: str, *, mass: float, window: tuple[float, float] | None, bkg_order: int, seed: int, engine: str,
                   limit: bool, cl: float, n_toys: int, plot_path: str, json_path: str | None, nuisances: dict[str, Any], do_impacts: bool,
                   impacts_path: str, do_scan: bool, scan_path: str) -> None:
    """The fit (with nuisances or without), impacts, likelihood scan and JSON of ``bumphunt fit``."""
    import numpy as np

    if any(nuisances.values()):
        out = _fit_with_nuisances(mgg, shape, src, mass=mass, window=window, bkg_order=bkg_order, engine=engine, limit=limit, cl=cl,
                                  n_toys=n_toys, nuisances=nuisances)
        if plot_path:
            click.echo("plot: the data plot (--plot) is drawn for fits without nuisances only")
    else:
        out = _fit_plain(mgg, shape, src, mass=mass, window=window, bkg_order=bkg_order, engine=engine, limit=limit, cl=cl, n_toys=n_toys,
                         seed=seed, plot_path=plot_path)
    if do_impacts:
        out["impacts"] = _impacts(mgg, shape, window=window, bkg_order=bkg_order, nuisances=nuisances, path=impacts_path)
    if do_scan:
        out["nll_scan"] = _nll_scan(mgg, shape, window=window, bkg_order=bkg_order, nuisances=nuisances, path=scan_path)
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=1, default=lambda o: np.asarray(o).tolist()))
        click.echo(f"result: {json_path}")


def _nuisances(yield_unc: float, resolution_unc: float, shift_unc: float) -> dict[str, Any]:
    """The nuisances of the command-line options, as ``fits.fit`` keywords."""
    import fits

    return {
        "yield_uncertainties": [fits.YieldUncertainty("yield", yield_unc)] if yield_unc > 0 else [],
        "shape_uncertainties": ([fits.ShapeUncertainty("resolution", "resolution", resolution_unc)] if resolution_unc > 0 else [])
        + ([fits.ShapeUncertainty("shift", "shift", shift_unc)] if shift_unc > 0 else []),
    }


def _fit_plain(mgg: Any, shape: Any, src: str, *, mass: float, window: tuple[float, float] | None, bkg_order: int, engine: str, limit: bool,
               cl: float, n_toys: int, seed: int, plot_path: str) -> dict[str, Any]:
    """The fit (and limit) without nuisances: printed, plotted, returned for the JSON."""
    import fits

    try:
        if limit:
            if n_toys > 0:
                lim = fits.upper_limit(mgg, shape, window, bkg_order=bkg_order, cl=cl, method="toys", n_toys=n_toys, seed=seed)
            else:
                lim = fits.upper_limit(mgg, shape, window, bkg_order=bkg_order, cl=cl, engine=engine)
            res = lim.fit
        else:
            lim = None
            res = fits.fit(mgg, shape, window, bkg_order=bkg_order, engine=engine)
    except fits.FitInputError as exc:
        raise click.ClickException(str(exc)) from exc
    lo, hi = res.window
    click.echo(f"data: {src}; {res.n_events} candidates in [{lo:.4f}, {hi:.4f}] GeV")
    click.echo(f"signal shape at m = {mass:g} GeV: mu = {shape.mu:.5f} GeV, sigma = {shape.sigma:.5f} GeV")
    click.echo(f"engine {res.engine}: N_sig = {res.nsig:.2f} +- {res.nsig_err:.2f}, N_bkg = {res.nbkg:.1f}, Z_local = {res.z_local:+.2f}, "
               f"NLL = {res.nll:.4f}, converged = {res.converged}{'' if not res.reason else ' (' + res.reason + ')'}")
    if not res.bkg_nonnegative:
        click.echo("warning: the fitted background polynomial is negative somewhere in the window")
    out: dict[str, Any] = {"mass": mass, "data": src, "fit": res.to_dict()}
    if lim is not None:
        e = lim.expected
        click.echo(f"{100 * cl:g}% CL CLs upper limit on N_sig ({lim.method}): observed {lim.observed:.2f}, "
                   f"expected {e[2]:.2f} [-1s {e[1]:.2f}, +1s {e[3]:.2f}; -2s {e[0]:.2f}, +2s {e[4]:.2f}]")
        out["limit"] = {"observed": lim.observed, "expected": [float(v) for v in e], "cl": cl, "method": lim.method}
    if plot_path:
        from fits.plots import plot_fit

        p = plot_fit(mgg, res, path=plot_path)
        click.echo(f"plot: {p}")
    return out


def _fit_with_nuisances(mgg: Any, shape: Any, src: str, *, mass: float, window: tuple[float, float] | None, bkg_order: int, engine: str,
                        limit: bool, cl: float, n_toys: int, nuisances: dict[str, Any]) -> dict[str, Any]:
    """The fit (and asymptotic limit) with the nuisances profiled: one channel whose mu is N_sig (events)."""
    import dataclasses

    import fits

    if n_toys > 0:
        raise click.UsageError("--toys does not take nuisances; drop --toys or the --*-unc options")
    try:
        channel = fits.Channel(mgg, shape, window, bkg_order=bkg_order, name="data")
        if limit:
            lim = fits.upper_limit([channel], cl=cl, engine=engine, **nuisances)
            res = lim.fit
        else:
            lim = None
            res = fits.fit([channel], engine=engine, **nuisances)
    except fits.FitInputError as exc:
        raise click.ClickException(str(exc)) from exc
    lo, hi = channel.window
    click.echo(f"data: {src}; {channel.n_events} candidates in [{lo:.4f}, {hi:.4f}] GeV")
    click.echo(f"signal shape at m = {mass:g} GeV: mu = {shape.mu:.5f} GeV, sigma = {shape.sigma:.5f} GeV")
    click.echo(f"engine {res.engine}, nuisances profiled: N_sig = {res.nsig:.2f} +- {res.nsig_err:.2f}, N_bkg = {res.nbkg:.1f}, "
               f"Z_local = {res.z_local:+.2f}, NLL = {res.nll:.4f}, converged = {res.converged}{'' if not res.reason else ' (' + res.reason + ')'}")
    for name, (v, e) in res.nuisances.items():
        click.echo(f"  nuisance {name}: {v:+.3f} +- {e:.3f} (pre-fit 0 +- 1)")
    out: dict[str, Any] = {"mass": mass, "data": src, "fit": dataclasses.asdict(res)}
    if lim is not None:
        e = lim.expected
        click.echo(f"{100 * cl:g}% CL CLs upper limit on N_sig ({lim.method}): observed {lim.observed:.2f}, "
                   f"expected {e[2]:.2f} [-1s {e[1]:.2f}, +1s {e[3]:.2f}; -2s {e[0]:.2f}, +2s {e[4]:.2f}]")
        out["limit"] = {"observed": lim.observed, "expected": [float(v) for v in e], "cl": cl, "method": lim.method}
    return out


def _impacts(mgg: Any, shape: Any, *, window: tuple[float, float] | None, bkg_order: int, nuisances: dict[str, Any], path: str) -> dict[str, Any]:
    """Pulls and impacts printed and plotted (vectorised engine)."""
    import fits
    from fits.impacts import format_rows, impacts, plot_impacts

    try:
        table = impacts(mgg, shape, window, bkg_order=bkg_order, **nuisances)
    except fits.FitInputError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"pulls and impacts on N_sig = {table.mu_hat:.2f} +- {table.mu_err:.2f} (post-fit: nuisance fixed at theta_hat +- sigma_hat; "
               "pre-fit: at theta_hat +- 1):")
    click.echo(format_rows(table.to_rows()))
    if not table.fit_converged or not table.converged.all():
        click.echo("warning: some of the impact refits did not converge (column 'ok')")
    if path:
        click.echo(f"impacts plot: {plot_impacts(table, path=path)}")
    return table.to_dict()


def _nll_scan(mgg: Any, shape: Any, *, window: tuple[float, float] | None, bkg_order: int, nuisances: dict[str, Any], path: str) -> dict[str, Any]:
    """The profile-likelihood scan of N_sig: crossings printed, curve plotted."""
    import fits
    from fits.impacts import format_rows
    from fits.likelihood_scan import likelihood_scan, plot_likelihood_scan

    try:
        scan = likelihood_scan(mgg, shape, window, bkg_order=bkg_order, **nuisances)
    except fits.FitInputError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"profile-likelihood scan of N_sig (N_sig_hat = {scan.mu_hat:.2f} +- {scan.mu_err:.2f}; -2 Delta ln L crossings):")
    click.echo(format_rows(scan.to_rows()))
    missing = [f"{100 * iv.cl:.3g}%" for iv in scan.intervals if not (iv.found_lo and iv.found_hi)]
    if missing:
        click.echo(f"warning: a crossing was not found for {', '.join(missing)} (the model's domain ends first)")
    if path:
        click.echo(f"likelihood-scan plot: {plot_likelihood_scan(scan, path=path)}")
    return scan.to_dict()


@click.command("export-pyhf")
@_apply(_common)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default="workspace.json", show_default=True, help="Workspace JSON to write.")
@click.option("--bins", type=click.IntRange(min=1), default=40, show_default=True, help="Equal-width bins in the window.")
@click.option("--background", type=click.Choice(["normfactor", "fixed"]), default="normfactor", show_default=True,
              help="Background template normalisation: free (normfactor) or fixed to the background-only fit.")
@click.option("--limit/--no-limit", default=True, show_default=True, help="Run pyhf's CLs upper limit on the workspace and compare with the unbinned one.")
def export_pyhf(mass: float, data: str | None, tree: str, branch: str, signal_model: str | None, window: tuple[float, float] | None, bkg_order: int, seed: int,
                out_path: str, bins: int, background: str, limit: bool) -> None:
    """Export the hypothesis at MASS as a binned HistFactory workspace (pyhf JSON).

    Signal template: bin integrals of the signal shape (POI mu = N_sig);
    background: bin integrals of the background-only fit of the unbinned
    model. With --limit, pyhf's asymptotic CLs (q~_mu) limit is printed next
    to the unbinned one as a binned cross-check.
    """
    import fits
    from fits.pyhf_export import export_pyhf as _export
    from fits.pyhf_export import pyhf_upper_limit

    mgg, shape, src = _load_inputs(mass, data, signal_model, tree, branch, seed)
    try:
        path = _export(mgg, shape, out_path, window, bkg_order=bkg_order, bins=bins, background=background)
    except (fits.FitInputError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{out_path}: cannot write the workspace: {exc}") from None
    click.echo(f"workspace: {path} ({bins} bins, data: {src})")
    if limit:
        spec = json.loads(Path(path).read_text())
        r = pyhf_upper_limit(spec)
        u = fits.upper_limit(mgg, shape, window, bkg_order=bkg_order)
        click.echo(f"pyhf (binned) 95% CL limit on N_sig: observed {r['observed']:.2f}, expected {r['expected'][2]:.2f}")
        click.echo(f"unbinned (fits)  95% CL limit on N_sig: observed {u.observed:.2f}, expected {u.expected[2]:.2f}")
