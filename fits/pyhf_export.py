"""Export of a hypothesis as a binned HistFactory workspace (pyhf) and pyhf's CLs as a cross-check.

The window is cut into equal bins. The signal template holds the bin
integrals of the signal shape (analytic, ``SignalShape.integral``) times a
reference yield ``nsig_ref`` so that pyhf's POI ``mu`` is ``N_sig / nsig_ref``.
The background template holds the bin integrals of the fitted background
polynomial (background-only fit, analytic Chebyshev integrals); its
normalisation is either free (``normfactor`` "bkg_norm", default), or fixed
(``background="fixed"``). The observation is the histogram of the candidates.
pyhf then computes CLs with q~_mu (``pyhf.infer.hypotest``) and upper limits
(``pyhf.infer.intervals.upper_limits.upper_limit``); these are binned
approximations of the unbinned result (shape freedom of the background is
reduced to its normalisation).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from signal_models._common.defaults import DEFAULT_BKG_ORDER, DEFAULT_CL
from signal_models.shapes import SignalShape

from .densities import ShapeArrays
from .design import build_design
from .inputs import HypothesisInput
from .single import fit_vectorised
from .vectorised import Batch

logger = logging.getLogger(__name__)

__all__ = ["workspace_spec", "export_pyhf", "pyhf_upper_limit"]


def _bkg_bin_integrals(beta: NDArray, window: tuple[float, float], edges: NDArray) -> NDArray:
    """Events per bin (bin ``edges`` in GeV) of the background ``sum beta_k T_k(x')`` (events/GeV) on the window."""
    lo, hi = window
    xp = (2.0 * edges - (lo + hi)) / (hi - lo)
    anti = np.polynomial.chebyshev.chebint(np.asarray(beta, float))
    prim = np.polynomial.chebyshev.chebval(xp, anti)
    return np.diff(prim) * 0.5 * (hi - lo)


def workspace_spec(
    mgg: NDArray,
    shape: SignalShape,
    window: tuple[float, float] | None = None,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    bins: int = 40,
    nsig_ref: float = 1.0,
    background: str = "normfactor",
    mass: float | None = None,
) -> dict[str, Any]:
    """HistFactory workspace (JSON-serialisable dict) of one hypothesis.

    Parameters
    ----------
    mgg : array
        Candidate masses in GeV.
    shape, window, bkg_order
        The hypothesis (window default ``mu +- 20 sigma`` clipped to the data).
    bins : int
        Number of equal-width bins in the window.
    nsig_ref : float
        Signal yield (events) of the template; POI ``mu = N_sig / nsig_ref``.
    background : {"normfactor", "fixed"}
        Background normalisation free or fixed to the background-only fit.
    mass : float, optional
        Mass (GeV) in the channel name; default the shape's ``mu``.
    """
    if background not in ("normfactor", "fixed"):
        raise ValueError(f"background: expected 'normfactor' or 'fixed', got {background!r}")
    hyp = HypothesisInput.from_args(mgg, shape, window, bkg_order=bkg_order)
    x = hyp.mgg
    f = fit_vectorised(hyp)
    lo, hi = f.window
    edges = np.linspace(lo, hi, bins + 1)
    obs, _ = np.histogram(x[(x >= lo) & (x <= hi)], bins=edges)
    sig = np.array([shape.integral(a, b, lo, hi) for a, b in zip(edges[:-1], edges[1:])]) * nsig_ref
    # background template from the background-only fit (profiled at N_sig = 0): Newton at
    # mu = 0 is what the Asimov uses (the free fit's background when the fit is flagged)
    beta_hat = np.asarray(f.beta)
    sh = ShapeArrays.from_shapes([shape])
    b = Batch(build_design(np.sort(x), sh, np.array([lo]), np.array([hi]), bkg_order), sh, bkg_order)
    beta0 = b.fit().zero.theta[0, 1:] if f.converged else beta_hat
    bkg = np.maximum(_bkg_bin_integrals(beta0, (lo, hi), edges), 1e-9)
    bkg_mods: list[dict[str, Any]] = []
    if background == "normfactor":
        bkg_mods.append({"name": "bkg_norm", "type": "normfactor", "data": None})
    mu_max = max(10.0, 20.0 * (abs(f.nsig) + 5.0 * f.nsig_err + 1.0) / nsig_ref)
    params = [{"name": "mu", "bounds": [[0.0, mu_max]], "inits": [1.0]}]
    if background == "normfactor":
        params.append({"name": "bkg_norm", "bounds": [[0.0, 10.0]], "inits": [1.0]})
    name = f"m{(shape.mu if mass is None else mass):.4f}".replace(".", "p")
    return {
        "version": "1.0.0",
        "channels": [
            {
                "name": name,
                "samples": [
                    {"name": "signal", "data": sig.tolist(), "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
                    {"name": "background", "data": bkg.tolist(), "modifiers": bkg_mods},
                ],
            }
        ],
        "observations": [{"name": name, "data": obs.astype(float).tolist()}],
        "measurements": [{"name": "bumphunt", "config": {"poi": "mu", "parameters": params}}],
        "metadata": {"window_gev": [lo, hi], "bins": bins, "nsig_ref": nsig_ref, "bkg_order": bkg_order, "shape": shape.to_dict(), "background": background},
    }


def export_pyhf(
    mgg: NDArray,
    shape: SignalShape,
    path: str | Path,
    window: tuple[float, float] | None = None,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    bins: int = 40,
    nsig_ref: float = 1.0,
    background: str = "normfactor",
    mass: float | None = None,
) -> Path:
    """Write the workspace of one hypothesis (``workspace_spec``, same options) to ``path`` (JSON); validated by pyhf."""
    import pyhf

    spec = workspace_spec(mgg, shape, window, bkg_order=bkg_order, bins=bins, nsig_ref=nsig_ref, background=background, mass=mass)
    meta = spec.pop("metadata")
    pyhf.Workspace(spec)  # schema validation
    spec["metadata"] = meta
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=1))
    return path


def pyhf_upper_limit(spec: dict[str, Any], *, cl: float = DEFAULT_CL, scan: NDArray | None = None) -> dict[str, Any]:
    """pyhf's asymptotic CLs (q~_mu) upper limit of a workspace, in signal events.

    Returns ``{"observed", "expected" (5, ordered -2..+2 sigma), "poi_scale"}``.
    """
    import pyhf

    spec = dict(spec)
    meta = spec.pop("metadata", {})
    nsig_ref = float(meta.get("nsig_ref", 1.0))
    ws = pyhf.Workspace(spec)
    model = ws.model()
    data = ws.data(model)
    if scan is None:
        bounds = model.config.suggested_bounds()[model.config.poi_index]
        scan = np.linspace(bounds[0], bounds[1], 400)[1:]
    obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(data, model, scan=scan, level=1.0 - cl, test_stat="qtilde")
    exp = np.asarray(exp, float)
    return {"observed": float(obs) * nsig_ref, "expected": exp * nsig_ref, "poi_scale": nsig_ref}
