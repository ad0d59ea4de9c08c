"""A small stand-in for ``fits.evaluate_hypotheses`` used only by the scan tests
of plumbing (checkpointing, parallel execution): a deterministic counting
estimate (core +-2 sigma against the sidebands of the window). It has the
contract's signature and returns the contract's fields.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class Table:
    n_events: np.ndarray
    nsig: np.ndarray
    nsig_err: np.ndarray
    nbkg: np.ndarray
    nll: np.ndarray
    z_local: np.ndarray
    converged: np.ndarray
    reason: list
    ul_nsig_obs: np.ndarray
    ul_nsig_exp: np.ndarray
    ul_xsec_obs: np.ndarray | None = None
    ul_xsec_exp: np.ndarray | None = None


def evaluate_hypotheses(mgg, shapes, windows, *, bkg_order=3, cl=0.95, limits=True, expected=True,
                        signal_scale=None, signal_scale_rel_unc=None, engine="vectorised"):
    delay = float(os.environ.get("SCAN_STANDIN_DELAY", "0"))
    if delay:
        time.sleep(delay)
    x = np.sort(np.asarray(mgg, dtype=float))
    windows = np.asarray(windows, dtype=float)
    k = len(shapes)
    out = {n: np.zeros(k) for n in ("nsig", "nsig_err", "nbkg", "nll", "z_local", "ul_nsig_obs")}
    n_ev = np.zeros(k, dtype=int)
    conv = np.ones(k, dtype=bool)
    reason = [""] * k
    exp = np.zeros((k, 5))
    for j, (sh, (lo, hi)) in enumerate(zip(shapes, windows)):
        c_lo, c_hi = max(sh.mu - 2 * sh.sigma, lo), min(sh.mu + 2 * sh.sigma, hi)
        n_win = np.searchsorted(x, hi, "right") - np.searchsorted(x, lo, "left")
        n_core = np.searchsorted(x, c_hi, "right") - np.searchsorted(x, c_lo, "left")
        n_ev[j] = n_win
        side_w = (hi - lo) - (c_hi - c_lo)
        if n_win == 0 or side_w <= 0:
            conv[j] = False
            reason[j] = "no events"
            continue
        b = (n_win - n_core) * (c_hi - c_lo) / side_w
        f = sh.integral(c_lo, c_hi, lo, hi)
        sb = np.sqrt(max(b, 1.0))
        out["nsig"][j] = (n_core - b) / f
        out["nsig_err"][j] = sb / f
        out["nbkg"][j] = n_win - out["nsig"][j]
        out["z_local"][j] = (n_core - b) / sb
        z = stats.norm.isf(1 - cl)
        out["ul_nsig_obs"][j] = (max(n_core - b, 0.0) + z * sb) / f
        exp[j] = (z + np.array([-2, -1, 0, 1, 2]) * 0.5) * sb / f
    table = Table(n_events=n_ev, converged=conv, reason=reason, ul_nsig_exp=exp, **out)
    if signal_scale is not None:
        r = 1.0 + (0.0 if signal_scale_rel_unc is None else np.asarray(signal_scale_rel_unc))
        table.ul_xsec_obs = table.ul_nsig_obs / np.asarray(signal_scale) * r
        table.ul_xsec_exp = table.ul_nsig_exp / np.asarray(signal_scale)[:, None] * np.atleast_1d(r)[:, None] if np.ndim(r) else table.ul_nsig_exp / np.asarray(signal_scale)[:, None] * r
    return table
