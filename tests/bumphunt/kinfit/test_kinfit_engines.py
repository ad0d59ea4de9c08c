"""The compiled (numba) engine of the kinematic fit against the numpy engine and the per-event reference."""

from __future__ import annotations

import numpy as np
import pytest

from bumphunt import kinfit
from bumphunt.errors import InputError
from bumphunt.kinematics import Beam
from bumphunt.kinfit.result import BAD_COV, BAD_ENERGY, BAD_FINITE, BAD_THETA
from bumphunt.toymc.exact import three_photon_sample

numba = pytest.importorskip("numba", reason="the compiled engine needs numba")

BEAM = Beam.belle2()


def _fit(ev: dict, **kw) -> kinfit.KinFitResult:
    return kinfit.fit(ev["E"], ev["theta"], ev["phi"], ev["cov"], BEAM, **kw)


def _engines_agree(a: kinfit.KinFitResult, b: kinfit.KinFitResult) -> None:
    """The numba and numpy engines give the same fit: same decisions, numbers equal to rounding."""
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.converged, b.converged)
    np.testing.assert_array_equal(a.n_iter, b.n_iter)
    for name in ("E", "theta", "phi", "cov", "pulls", "cov_full", "beam_p4"):
        x, y = getattr(a, name), getattr(b, name)
        if y is None:
            assert x is None
            continue
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
        # pulls divide a small difference of fitted and measured values by a small width: rounding
        # at 1e-16 of the parameters shows up at ~1e-11 in a pull
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-10 if name == "pulls" else 1e-14, equal_nan=True)
    np.testing.assert_allclose(a.chi2, b.chi2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.pvalue, b.pvalue, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("beam_cov", [None, "spread"])
def test_numba_engine_equals_numpy_engine(beam_cov: str | None) -> None:
    ev = three_photon_sample(3000, beam=BEAM, rng=np.random.default_rng(70), m_a=6.0, corr_e_theta=0.5)
    ev["E"][:100] *= np.random.default_rng(71).uniform(0.75, 1.1, (100, 3))  # step control active
    ev["E"][100, 0] = np.nan
    ev["E"][101, 2] = -1.0
    ev["theta"][102, 1] = 4.0
    ev["cov"][103, 0, 1, 1] = -1e-6
    kw = dict(beam_cov=beam_cov, full_cov=True)
    a = _fit(ev, engine="numba", **kw)
    b = _fit(ev, engine="numpy", **kw)
    assert a.options["engine"] == "numba" and b.options["engine"] == "numpy"
    assert (a.status[100:104] == [BAD_FINITE, BAD_ENERGY, BAD_THETA, BAD_COV]).all()
    assert (a.n_iter[:100] > 3).any()
    _engines_agree(a, b)
    # the compiled engine also agrees with the per-event reference
    r = kinfit.fit_reference(ev["E"][:300], ev["theta"][:300], ev["phi"][:300], ev["cov"][:300], BEAM, beam_cov=beam_cov)
    np.testing.assert_array_equal(a.n_iter[:300], r.n_iter)
    np.testing.assert_array_equal(a.status[:300], r.status)
    np.testing.assert_allclose(a.E[:300], r.E, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.chi2[:300], r.chi2, rtol=1e-9, atol=1e-12)


def test_numba_engine_step_halving_and_max_iter() -> None:
    rng = np.random.default_rng(72)
    n = 400
    ev = three_photon_sample(n, beam=BEAM, rng=rng)
    cov = np.zeros((n, 3, 3, 3))
    cov[..., 0, 0] = (0.01 * ev["E"]) ** 2
    cov[..., 1, 1] = 0.1**2
    cov[..., 2, 2] = 0.2**2
    th = np.clip(ev["theta"] + rng.normal(0, 0.1, (n, 3)), 0.1, 3.0)
    ph = ev["phi"] + rng.normal(0, 0.2, (n, 3))
    E = ev["E"] * rng.uniform(0.7, 1.2, (n, 3))
    for max_iter in (1, 4, 40):
        a = kinfit.fit(E, th, ph, cov, BEAM, max_iter=max_iter, engine="numba")
        b = kinfit.fit(E, th, ph, cov, BEAM, max_iter=max_iter, engine="numpy")
        _engines_agree(a, b)
    assert (a.n_iter > 6).sum() > 10 and a.converged.mean() > 0.8


def test_engine_option() -> None:
    ev = three_photon_sample(50, beam=BEAM, rng=np.random.default_rng(73))
    assert _fit(ev).options["engine"] == "numba"  # auto picks numba when it is installed
    with pytest.raises(InputError, match="engine must be one of"):
        _fit(ev, engine="cuda")
    empty = kinfit.fit(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3, 3, 3)), BEAM, engine="numba")
    assert empty.n_events == 0 and empty.chi2.shape == (0,)



def test_numba_engine_flags_bad_events_like_numpy() -> None:
    """Random damage of every kind: the compiled engine's per-event validation gives the numpy engine's status."""
    rng = np.random.default_rng(74)
    n = 2000
    ev = three_photon_sample(n, beam=BEAM, rng=rng, corr_e_theta=0.3)
    E, th, ph, cov = ev["E"].copy(), ev["theta"].copy(), ev["phi"].copy(), ev["cov"].copy()
    kind = rng.integers(0, 9, n)
    k = rng.integers(0, 3, n)
    a, b = rng.integers(0, 3, n), rng.integers(0, 3, n)
    rows = np.arange(n)
    for i in rows[kind == 1]:
        cov[i, k[i], a[i], b[i]] = [np.nan, np.inf, -np.inf][i % 3]
    E[rows[kind == 2], k[kind == 2]] = np.nan
    E[rows[kind == 3], k[kind == 3]] *= -1
    th[rows[kind == 4], k[kind == 4]] = np.where(rows[kind == 4] % 2, -0.01, np.pi)
    cov[rows[kind == 5], k[kind == 5], 0, 1] *= 1 + rng.choice([1e-12, 1e-6], (kind == 5).sum())  # tiny / real asymmetry
    cov[rows[kind == 6], k[kind == 6], 1, 1] *= -1
    big = np.sqrt(cov[rows[kind == 7], k[kind == 7], 0, 0] * cov[rows[kind == 7], k[kind == 7], 1, 1])
    cov[rows[kind == 7], k[kind == 7], 0, 1] = cov[rows[kind == 7], k[kind == 7], 1, 0] = 1.5 * big  # |corr| > 1
    ph[rows[kind == 8], k[kind == 8]] = np.inf
    a_ = kinfit.fit(E, th, ph, cov, BEAM, engine="numba")
    b_ = kinfit.fit(E, th, ph, cov, BEAM, engine="numpy")
    assert len(set(a_.status.tolist())) >= 5
    _engines_agree(a_, b_)


def test_numba_engine_in_forked_processes() -> None:
    """A process pool forked after a fit (as the scan driver does) can run the compiled engine."""
    import subprocess
    import sys

    code = (
        "import multiprocessing as mp, numpy as np\n"
        "from bumphunt import kinfit\n"
        "from bumphunt.kinematics import Beam\n"
        "from bumphunt.toymc.exact import three_photon_sample\n"
        "ev = three_photon_sample(500, beam=Beam.belle2(), rng=np.random.default_rng(1))\n"
        "def work(_):\n"
        "    return float(kinfit.fit(ev['E'], ev['theta'], ev['phi'], ev['cov'], engine='numba').chi2.sum())\n"
        "parent = work(0)\n"
        "with mp.get_context('fork').Pool(2) as pool:\n"
        "    assert pool.map(work, range(2)) == [parent, parent]\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_numba_sincos_within_two_ulp_of_libm() -> None:
    """The kernel's vectorisable sin/cos (Cody-Waite reduction, Taylor polynomials) against libm."""
    import math

    from numba import njit

    from bumphunt.kinfit._engine_numba import SINCOS_MAX, sincos

    @njit
    def sincos_all(x, s, c):  # type: ignore[no-untyped-def]
        for i in range(x.shape[0]):
            s[i], c[i] = sincos(x[i])

    rng = np.random.default_rng(75)
    x = np.concatenate([rng.uniform(-np.pi, np.pi, 40000), rng.uniform(-1e-6, 1e-6, 2000),
                        rng.uniform(-SINCOS_MAX, SINCOS_MAX, 20000),
                        np.arange(-8, 9) * (np.pi / 4), [0.0, 5e-324, np.pi / 2, np.pi, -np.pi]])
    s, c = np.empty_like(x), np.empty_like(x)
    sincos_all(x, s, c)
    s_ref = np.array([math.sin(v) for v in x])
    c_ref = np.array([math.cos(v) for v in x])
    # error in units of the spacing at the exact value (floor at the smallest normal for results near 0)
    scale = np.maximum(np.spacing(np.abs(s_ref)), np.spacing(np.abs(x) * 2.0**-53))
    assert np.max(np.abs(s - s_ref) / scale) <= 2.0
    assert np.max(np.abs(c - c_ref) / np.maximum(np.spacing(np.abs(c_ref)), np.spacing(np.abs(x) * 2.0**-53))) <= 2.0
    np.testing.assert_allclose(s * s + c * c, 1.0, rtol=0, atol=1e-15)


def test_numba_engine_independent_of_position_and_threads() -> None:
    """Bit-identical results wherever an event sits in a block or batch and for any number of threads."""
    import numba

    ev = three_photon_sample(2500, beam=BEAM, rng=np.random.default_rng(76), m_a=4.0, corr_e_theta=0.5)
    ev["E"][:60] *= np.random.default_rng(77).uniform(0.75, 1.1, (60, 3))  # step control active
    ev["phi"][60:70] += 2 * np.pi * 20000  # |phi| > the range of the vectorised sin/cos: libm fallback
    ev["E"][70, 1] = np.nan
    kw = dict(beam_cov="spread", full_cov=True, engine="numba")
    a = _fit(ev, **kw)
    assert (a.n_iter[:60] > 3).any() and a.converged[60:70].all() and a.status[70] == BAD_FINITE
    shift = 7
    shifted = {k: np.concatenate([v[-shift:], v]) for k, v in ev.items() if k in ("E", "theta", "phi", "cov")}
    b = _fit(shifted, **kw)
    n_threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        c = _fit(ev, **kw)
    finally:
        numba.set_num_threads(n_threads)
    for name in ("E", "theta", "phi", "cov", "chi2", "pvalue", "pulls", "status", "n_iter", "cov_full", "beam_p4"):
        x = getattr(a, name)
        np.testing.assert_array_equal(getattr(b, name)[shift:], x, err_msg=name)
        np.testing.assert_array_equal(getattr(c, name), x, err_msg=name)
    _engines_agree(a, _fit(ev, beam_cov="spread", full_cov=True, engine="numpy"))


@pytest.mark.parametrize("layer", [None, "workqueue"])
def test_numba_settings_applied_at_first_use_not_at_import(layer: str | None) -> None:
    """Importing the compiled engine changes no numba setting; choosing it selects a fork-safe threading layer
    unless the user chose one (NUMBA_THREADING_LAYER); applying the settings again changes nothing."""
    import os
    import subprocess
    import sys

    code = (
        "from numba import config\n"
        "import bumphunt.kinfit._engine_numba as engine\n"
        "at_import = config.THREADING_LAYER\n"
        "from bumphunt.kinfit.api import resolve_engine\n"
        "ran = resolve_engine('auto')\n"
        "engine.configure_numba()\n"
        "print(at_import, ran, config.THREADING_LAYER)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    if layer is not None:
        env["NUMBA_THREADING_LAYER"] = layer
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    expect = ["default", "numba", "forksafe"] if layer is None else [layer, "numba", layer]
    assert out.stdout.split() == expect
