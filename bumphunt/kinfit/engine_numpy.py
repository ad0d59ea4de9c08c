"""The numpy engine of the kinematic fit: every event of a chunk iterated together as arrays.

``fit_numpy`` runs the algorithm described in ``bumphunt.kinfit`` on
cache-sized chunks of events. Each chunk is transposed to component-first
arrays (photon, event), validated (``inputs.event_status``) and iterated
with the closed-form algebra of ``algebra``. Events that have converged
leave the working set, so only active events iterate (when only a small
fraction finished in a pass they are masked out instead, which is cheaper
than copying all the others). Typical events need three linearisations.

This is the engine used without numba (``engine="numpy"``); the compiled
engine (``_engine_numba``) performs the same operations in the same order,
so both take the same decisions for every event and agree to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .algebra import apply_d, apply_gt, bwd4, fwd4, linearise, trig_update, vb_mul
from .inputs import event_status
from .options import MAX_PHYSICAL_HALVINGS, POLE_MARGIN, VARIANCE_FLOOR, FitOptions
from .result import BAD_ITER, BAD_S, MAX_ITER, OK, KinFitResult, pvalue_ndf4

__all__ = ["fit_numpy", "CHUNK_SIZE"]

#: Events per chunk (the default of ``fit(..., chunk_size=)``): the working set stays in cache.
CHUNK_SIZE = 8192
#: Finished events are removed from the working set once they are this fraction of it.
_COMPACT_FRACTION = 0.25
#: The six elements (a, b) of a symmetric 3x3 photon covariance, in the order (EE, Et, Ep, tt, tp, pp).
_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def fit_numpy(
    E: NDArray[np.float64],
    theta: NDArray[np.float64],
    phi: NDArray[np.float64],
    cov: NDArray[np.float64],
    P0: NDArray[np.float64],
    Vb: NDArray[np.float64] | None,
    options: FitOptions,
    *,
    chunk_size: int = CHUNK_SIZE,
) -> KinFitResult:
    """Fit every event with the numpy engine.

    Parameters
    ----------
    E, theta, phi : ndarray, shape (n, 3)
        Measured photons (GeV, rad), float64 (as from ``inputs.check_arrays``).
    cov : ndarray, shape (n, 3, 3, 3)
        Photon covariances of (E, theta, phi).
    P0 : ndarray, shape (4,)
        Lab beam four-momentum (px, py, pz, E) in GeV.
    Vb : ndarray, shape (4, 4), or None
        Covariance of the beam four-momentum (GeV^2) for a soft beam
        constraint; None for a hard one.
    options : FitOptions
    chunk_size : int
        Events processed together.

    Returns
    -------
    KinFitResult
        Without ``options`` (the caller records them).
    """
    full_cov = options.full_cov
    n = E.shape[0]
    # outputs (n-major); events that do not converge keep the measured values
    res_E = E.copy()
    res_t = theta.copy()
    res_p = phi.copy()
    res_cov = cov.copy()
    chi2 = np.full(n, np.inf)
    pulls = np.full((n, 3, 3), np.nan)
    n_iter = np.zeros(n, dtype=np.int16)
    status = np.zeros(n, dtype=np.int8)
    cov_full = None
    if full_cov:
        cov_full = np.zeros((n, 9, 9))
        for i in range(3):
            cov_full[:, 3 * i:3 * i + 3, 3 * i:3 * i + 3] = cov[:, i]
    beam_out = np.tile(P0, (n, 1)) if Vb is not None else None

    # cache-sized chunks: transpose to component-first (3, m) arrays, validate, fit, write back
    chunk = max(int(chunk_size), 1)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        Ec = np.ascontiguousarray(E[sl].T)
        tc = np.ascontiguousarray(theta[sl].T)
        pc = np.ascontiguousarray(phi[sl].T)
        cc = np.ascontiguousarray(np.transpose(cov[sl], (2, 3, 1, 0)))  # (a, b, photon, event)
        st_c = event_status(Ec, tc, pc, cc)
        m = st_c.size
        valid = st_c == OK
        st_c[valid] = MAX_ITER
        out: dict[str, Any] = {
            "E": Ec.copy(), "theta": tc.copy(), "phi": pc.copy(),
            "V": [cc[a, b].copy() for a, b in _PAIRS],
            "pulls": np.full((3, 3, m), np.nan), "chi2": np.full(m, np.inf),
            "n_iter": np.zeros(m, dtype=np.int16), "status": st_c,
        }
        if full_cov:
            out["cov_full"] = np.zeros((3, 3, 3, 3, m))
        if Vb is not None:
            out["beam"] = np.repeat(P0[:, None], m, axis=1)
        V = [cc[a, b] if a == b else 0.5 * (cc[a, b] + cc[b, a]) for a, b in _PAIRS]
        if valid.all():
            _fit_chunk(Ec, tc, pc, tuple(V), P0, Vb, out, slice(0, m), options)
        elif valid.any():
            vi = np.nonzero(valid)[0]
            _fit_chunk(Ec[:, vi], tc[:, vi], pc[:, vi], tuple(v[:, vi] for v in V), P0, Vb, out, vi, options)
        status[sl] = st_c
        n_iter[sl] = out["n_iter"]
        conv = st_c == OK
        if conv.all():
            res_E[sl] = out["E"].T
            res_t[sl] = out["theta"].T
            res_p[sl] = out["phi"].T
            chi2[sl] = out["chi2"]
            pulls[sl] = np.transpose(out["pulls"], (2, 1, 0))
            blk = res_cov[sl]
            for q, (a, b) in enumerate(_PAIRS):
                blk[:, :, a, b] = out["V"][q].T
                if a != b:
                    blk[:, :, b, a] = out["V"][q].T
            if full_cov:
                cov_full[sl] = np.transpose(out["cov_full"], (4, 0, 1, 2, 3)).reshape(m, 9, 9)
            if Vb is not None:
                beam_out[sl] = out["beam"].T
        elif conv.any():
            ci = np.nonzero(conv)[0]
            gi = ci + sl.start
            res_E[gi] = out["E"][:, ci].T
            res_t[gi] = out["theta"][:, ci].T
            res_p[gi] = out["phi"][:, ci].T
            chi2[gi] = out["chi2"][ci]
            pulls[gi] = np.transpose(out["pulls"][:, :, ci], (2, 1, 0))
            for q, (a, b) in enumerate(_PAIRS):
                res_cov[gi, :, a, b] = out["V"][q][:, ci].T
                if a != b:
                    res_cov[gi, :, b, a] = out["V"][q][:, ci].T
            if full_cov:
                cov_full[gi] = np.transpose(out["cov_full"][..., ci], (4, 0, 1, 2, 3)).reshape(-1, 9, 9)
            if Vb is not None:
                beam_out[gi] = out["beam"][:, ci].T

    converged = status == OK
    if converged.all():
        np.subtract(np.mod(res_p + np.pi, 2 * np.pi), np.pi, out=res_p)
    else:
        res_p[converged] = np.mod(res_p[converged] + np.pi, 2 * np.pi) - np.pi
    pvalue = np.where(converged, pvalue_ndf4(np.where(converged, chi2, 0.0)), 0.0)
    return KinFitResult(
        E=res_E, theta=res_t, phi=res_p, cov=res_cov, chi2=chi2, pvalue=pvalue, converged=converged,
        n_iter=n_iter, pulls=pulls, status=status, cov_full=cov_full, beam_p4=beam_out,
    )


def _sub(x: Any, s: Any) -> Any:
    """Select events ``s`` (last axis) in arrays or nested tuples/lists of arrays."""
    if x is None:
        return None
    if isinstance(x, (tuple, list)):
        return type(x)(_sub(v, s) for v in x)
    return x[..., s]


def _fit_chunk(
    E0: NDArray,
    th0: NDArray,
    ph0: NDArray,
    V: tuple[NDArray, ...],
    P0: NDArray,
    Vb: NDArray | None,
    out: dict[str, Any],
    oidx: NDArray | slice,
    options: FitOptions,
) -> None:
    """Fit m valid events given component-first arrays (3, m); write into ``out`` at ``oidx``.

    ``out`` holds component-first output arrays (last axis = event) that are
    already filled with the measured values; only converged events are
    overwritten. ``status`` and ``n_iter`` are set for all m events.
    """
    max_iter, max_halvings = options.max_iter, options.max_halvings
    tol_chi2, tol_constraint, full_cov = options.tol_chi2, options.tol_constraint, options.full_cov
    m = E0.shape[1]
    diag = not (np.any(V[1]) or np.any(V[2]) or np.any(V[4]))
    gidx = np.arange(m) if isinstance(oidx, slice) else np.asarray(oidx)
    if isinstance(oidx, slice):
        gidx = gidx + oidx.start
    idx = gidx
    E, th, ph = E0, th0, ph0
    ct = np.cos(th)
    if th.size and th.min() > POLE_MARGIN and th.max() < np.pi - POLE_MARGIN:
        # sin(theta) >= 0 on (0, pi); away from the poles sqrt(1 - cos^2) is exact to ~1e-15
        st = ct * ct
        np.subtract(1.0, st, out=st)
        np.sqrt(st, out=st)
    else:
        st = np.sin(th)
    sp, cp = np.sin(ph), np.cos(ph)
    lamb = tuple(np.zeros(m) for _ in range(4)) if Vb is not None else None
    prev = None  # (E, th, ph, lamb) of the last accepted point
    step_to = None  # full step target from prev
    tstep = np.ones(m)
    n_halv = np.zeros(m, dtype=np.int16)
    h_prev = np.full(m, np.inf)
    chi2_prev = np.full(m, np.inf)
    status_out, niter_out = out["status"], out["n_iter"]
    niter = 0
    alive: NDArray | None = None  # None: every event in the working set is still iterating
    total_passes = max_iter * (max_halvings + 1)

    for it in range(total_passes):
        if idx.size == 0:
            break
        niter += 1
        H, D, G, L, ok = linearise(E, st, ct, sp, cp, V, diag, P0, Vb)
        if Vb is not None:
            vbl = vb_mul(Vb, lamb)
            Hc = tuple(H[k] - vbl[k] for k in range(4))  # constraint residual incl. the beam shift
        else:
            Hc = H
        yH = fwd4(L, *Hc)  # h = H^T S^-1 H = |L^-1 H|^2
        h = yH[0] * yH[0] + yH[1] * yH[1] + yH[2] * yH[2] + yH[3] * yH[3]
        bad = ~ok
        any_bad = bool(bad.any())
        # --- step control: reject points whose constraint violation grew --------
        reject = None
        if it > 0:
            rej = (h > h_prev) & (h > tol_chi2) & (n_halv < max_halvings)
            if any_bad:
                rej &= ok
            if rej.any():
                reject = rej
        # --- linearised solution -------------------------------------------------
        if it == 0:  # linearised at the measurement: r = H
            r = H
        else:
            r = apply_d(D, E0 - E, th0 - th, ph0 - ph)
            r = tuple(r[k] + H[k] for k in range(4))
        yr = fwd4(L, *r)
        lam = bwd4(L, *yr)
        chi2_new = yr[0] * yr[0] + yr[1] * yr[1] + yr[2] * yr[2] + yr[3] * yr[3]  # = r^T S^-1 r
        sE, sT, sP = apply_gt(G, lam)
        nE = E0 - sE
        nT = th0 - sT
        nP = ph0 - sP
        hmax = np.maximum(np.maximum(np.abs(Hc[0]), np.abs(Hc[1])), np.maximum(np.abs(Hc[2]), np.abs(Hc[3])))
        conv = (np.abs(chi2_new - chi2_prev) < tol_chi2) & (hmax < tol_constraint)
        finite = np.isfinite(chi2_new)
        conv &= finite
        accept = ok if reject is None else (ok & ~reject)
        if any_bad or reject is not None:
            conv &= accept
        failed = bad | (accept & ~finite)
        if alive is not None:  # frozen events (finished earlier) are ignored
            conv &= alive
            failed &= alive
        any_failed = bool(failed.any())
        last = niter >= max_iter
        done = conv | failed if not last else (np.ones(idx.size, dtype=bool) if alive is None else alive.copy())

        if conv.any():
            c = np.nonzero(conv)[0] if not conv.all() else slice(None)
            g = idx[c]
            fitted = (nE[:, c], nT[:, c], nP[:, c])
            out["E"][:, g], out["theta"][:, g], out["phi"][:, g] = fitted
            out["chi2"][g] = chi2_new[c]
            status_out[g] = OK
            Lc = [x[c] for x in L]
            Gc = [[None if G[k][b] is None else G[k][b][:, c] for b in range(3)] for k in range(4)]
            K = []
            for b in range(3):
                cols = [Gc[k][b] if Gc[k][b] is not None else np.zeros_like(fitted[0]) for k in range(4)]
                K.append(fwd4(Lc, *cols))  # K[b][k], each (3, mc)
            Vc = [v[:, c] for v in V]
            for q, (a, b) in enumerate(_PAIRS):
                red = K[a][0] * K[b][0] + K[a][1] * K[b][1] + K[a][2] * K[b][2] + K[a][3] * K[b][3]
                out["V"][q][:, g] = Vc[q] - red
                if a == b:
                    meas = (E0, th0, ph0)[a][:, c]
                    out["pulls"][a][:, g] = (meas - fitted[a]) / np.sqrt(np.maximum(red, VARIANCE_FLOOR))
            if full_cov:
                blk = np.zeros((3, 3, 3, 3, fitted[0].shape[1]))
                for a in range(3):
                    for b in range(3):
                        kk = K[a][0][:, None] * K[b][0][None] + K[a][1][:, None] * K[b][1][None]
                        kk += K[a][2][:, None] * K[b][2][None] + K[a][3][:, None] * K[b][3][None]
                        blk[:, a, :, b] = -kk
                for i in range(3):
                    for q, (a, b) in enumerate(_PAIRS):
                        blk[i, a, i, b] = out["V"][q][i, g]
                        blk[i, b, i, a] = out["V"][q][i, g]
                out["cov_full"][..., g] = blk
            if Vb is not None:
                lc = [x[c] for x in lam]
                for k in range(4):
                    out["beam"][k, g] = P0[k] + Vb[k, 0] * lc[0] + Vb[k, 1] * lc[1] + Vb[k, 2] * lc[2] + Vb[k, 3] * lc[3]
        if any_failed:
            f = np.nonzero(failed)[0]
            status_out[idx[f]] = np.where(bad[f], BAD_S, BAD_ITER)
        if last:
            niter_out[idx[done]] = niter
            break
        if done.any():
            niter_out[idx[done]] = niter
        # finished events leave the working set; when only a few finished, they
        # are frozen instead (copying the many remaining events would cost more
        # than carrying the few finished ones through another pass)
        gone = done if alive is None else (done | ~alive)
        n_gone = int(np.count_nonzero(gone))
        compact = n_gone >= _COMPACT_FRACTION * idx.size
        if not compact and n_gone:
            alive = ~gone

        # --- advance the events that continue ------------------------------------
        # accepted events move to the new linearised solution; rejected ones
        # move half-way back towards their previous point.
        if reject is None and not any_bad:
            new_prev = (E, th, ph, lamb)
            nst, nct = trig_update(th, nT, st, ct)
            nsp, ncp = trig_update(ph, nP, sp, cp)
            E, th, ph = nE, nT, nP
            st, ct, sp, cp = nst, nct, nsp, ncp
            lamb = lam if Vb is not None else None
            prev, step_to = new_prev, (E, th, ph, lamb)
            tstep[:] = 1.0
            n_halv[:] = 0
            h_prev = h
            chi2_prev = chi2_new
        else:
            acc = accept
            a_i = np.nonzero(acc)[0]
            if prev is None:
                prev = (E.copy(), th.copy(), ph.copy(), tuple(x.copy() for x in lamb) if lamb is not None else None)
                step_to = (nE.copy(), nT.copy(), nP.copy(), tuple(x.copy() for x in lam) if lam is not None else None)
            else:
                prev = (prev[0].copy(), prev[1].copy(), prev[2].copy(), tuple(x.copy() for x in prev[3]) if prev[3] is not None else None)
                step_to = (step_to[0].copy(), step_to[1].copy(), step_to[2].copy(), tuple(x.copy() for x in step_to[3]) if step_to[3] is not None else None)
            E, th, ph = E.copy(), th.copy(), ph.copy()
            st, ct, sp, cp = st.copy(), ct.copy(), sp.copy(), cp.copy()
            if lamb is not None:
                lamb = tuple(x.copy() for x in lamb)
            # accepted: previous := current, target := new solution
            for k, (cur, new) in enumerate(((E, nE), (th, nT), (ph, nP))):
                prev[k][:, a_i] = cur[:, a_i]
                step_to[k][:, a_i] = new[:, a_i]
                cur[:, a_i] = new[:, a_i]
            if lamb is not None:
                for cc in range(4):
                    prev[3][cc][a_i] = lamb[cc][a_i]
                    step_to[3][cc][a_i] = lam[cc][a_i]
                    lamb[cc][a_i] = lam[cc][a_i]
            tstep[a_i] = 1.0
            n_halv[a_i] = 0
            h_prev = np.where(acc, h, h_prev)
            chi2_prev = np.where(acc, chi2_new, chi2_prev)
            if reject is not None:
                r_i = np.nonzero(reject)[0]
                tstep[r_i] *= 0.5
                n_halv[r_i] += 1
                t = tstep[r_i]
                for k, cur in enumerate((E, th, ph)):
                    p_ = prev[k][:, r_i]
                    cur[:, r_i] = p_ + t * (step_to[k][:, r_i] - p_)
                if lamb is not None:
                    for cc in range(4):
                        p_ = prev[3][cc][r_i]
                        lamb[cc][r_i] = p_ + t * (step_to[3][cc][r_i] - p_)
            st, ct, sp, cp = np.sin(th), np.cos(th), np.sin(ph), np.cos(ph)
        # keep iterates physical (E > 0, 0 < theta < pi): halve towards the previous point
        for _h in range(MAX_PHYSICAL_HALVINGS):
            unphys = ((E <= 0) | (th <= 0) | (th >= np.pi)).any(0)
            if not unphys.any():
                break
            u = np.nonzero(unphys)[0]
            if _h == 0:
                E, th, ph = E.copy(), th.copy(), ph.copy()
                st, ct, sp, cp = st.copy(), ct.copy(), sp.copy(), cp.copy()
                if lamb is not None:
                    lamb = tuple(x.copy() for x in lamb)
            tstep[u] *= 0.5
            t = tstep[u]
            for k, cur in enumerate((E, th, ph)):
                p_ = prev[k][:, u]
                cur[:, u] = p_ + t * (step_to[k][:, u] - p_)
            if lamb is not None:
                for cc in range(4):
                    p_ = prev[3][cc][u]
                    lamb[cc][u] = p_ + t * (step_to[3][cc][u] - p_)
            st[:, u], ct[:, u] = np.sin(th[:, u]), np.cos(th[:, u])
            sp[:, u], cp[:, u] = np.sin(ph[:, u]), np.cos(ph[:, u])
        # --- drop finished events from the working set ----------------------------
        if compact:
            alive = None
            s = np.nonzero(~gone)[0]
            idx = idx[s]
            E, th, ph, st, ct, sp, cp = (x[:, s] for x in (E, th, ph, st, ct, sp, cp))
            E0, th0, ph0 = E0[:, s], th0[:, s], ph0[:, s]
            V = tuple(v[:, s] for v in V)
            lamb = _sub(lamb, s)
            prev = _sub(prev, s)
            step_to = _sub(step_to, s)
            tstep, n_halv, h_prev, chi2_prev = tstep[s], n_halv[s], h_prev[s], chi2_prev[s]
