"""DSCB tail starts smooth in mass: the curves, and the calibration that fixes the tails to them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("zfit")

from signal_models import build_signal_model  # noqa: E402
from signal_models.calibration import CalibrationFitter  # noqa: E402
from signal_models.mass_fit import MassFit  # noqa: E402
from signal_models.smooth_tails import fit_tail_curves  # noqa: E402
from signal_models.synthetic import TruthCurves, generate_candidates  # noqa: E402

TRUTH = TruthCurves()


def _fit(mass: float, alpha_l: float, err: float, *, status: str = "ok") -> MassFit:
    return MassFit(mass=mass, n_generated=1000, status=status, params={"alpha_l": alpha_l}, errors={"alpha_l": err})


def test_tail_curves_follow_the_measured_points_not_a_stuck_one() -> None:
    masses = np.linspace(1.0, 9.0, 9)
    true = 1.1 + 0.05 * masses
    fits = [_fit(m, a, 0.02) for m, a in zip(masses, true)]
    fits[4] = _fit(masses[4], 6.0, 5.0)  # a tail stuck far out: huge error
    fits.append(_fit(9.5, 1.0, 0.01, status="failed"))  # failed fits are not used
    curves = fit_tail_curves(fits, ("alpha_l",))
    assert curves is not None and curves.names == ("alpha_l",)
    got = np.array([curves.values(m)["alpha_l"] for m in masses])
    # the stuck point moves the curve by far less than its distance from the others
    assert np.max(np.abs(got - true)) < 0.05
    # constant beyond the first and last fitted mass; the band is positive and smaller than one point's error
    assert curves.values(0.2)["alpha_l"] == pytest.approx(curves.values(1.0)["alpha_l"])
    assert curves.values(12.0)["alpha_l"] == pytest.approx(curves.values(9.0)["alpha_l"])
    assert 0 < curves.errors(5.0)["alpha_l"] < 0.02
    rec = curves.record()["alpha_l"]
    assert rec["masses"] == masses.tolist() and rec["method"] == "smoothing" and rec["transform"] == "log"
    # hold-out masses are kept out; too few masses: no curves
    assert fit_tail_curves(fits, ("alpha_l",), exclude=masses[:5]) is None


@pytest.fixture(scope="module")
def low_statistics() -> tuple:
    """16 masses with 1500 generated events each: tails weakly populated, so that free tails scatter."""
    masses = np.round(np.linspace(0.5, 9.5, 16), 6)
    return generate_candidates(masses, n_generated=1500, truth=TRUTH, seed=5)


def test_smooth_tails_make_the_core_width_follow_the_truth_more_closely(low_statistics: tuple) -> None:
    x, tm, ma, ngen = low_statistics
    fitter = CalibrationFitter()
    common = {"n_generated": ngen, "selection": {"working_point": "none"}, "fixed_values": {"n_l": TRUTH.n_l, "n_r": TRUTH.n_r}, "fitter": fitter}
    free = build_signal_model(x, tm, ma, smooth_tails=(), **common)
    smooth = build_signal_model(x, tm, ma, **common)
    assert free.settings["smooth_tails"] is None
    record = smooth.settings["smooth_tails"]
    assert set(record) == {"alpha_l", "alpha_r"}

    def deviations(model):
        assert all(f.ok for f in model.fits)
        rel = np.array([f.params["sigma"] / TRUTH.shape(f.mass).sigma - 1 for f in model.fits])
        pull = np.array([(f.params["sigma"] - TRUTH.shape(f.mass).sigma) / f.errors["sigma"] for f in model.fits])
        return np.sqrt(np.mean(rel**2)), pull

    rms_free, pull_free = deviations(free)
    rms_smooth, pull_smooth = deviations(smooth)
    assert rms_smooth < 0.9 * rms_free, (rms_smooth, rms_free)
    # the errors carry the tails' uncertainty: pulls no wider than unit Gaussian ones (rms of 16 within ~+-0.35)
    assert np.sqrt(np.mean(pull_smooth**2)) < 1.35 and np.max(np.abs(pull_smooth)) < 3.5
    # the tail starts of the second pass are the curves' values, with the curves' bands as errors
    for f in smooth.fits:
        for k in ("alpha_l", "alpha_r"):
            assert k in f.fixed
            first = np.array(record[k]["first_pass"])
            assert first.min() * 0.5 < f.params[k] < first.max() * 1.5
            assert 0 < f.errors[k] < np.max(record[k]["first_pass_errors"])
    # neighbouring masses share nearly the same tail starts (smooth), unlike the free fits
    jumps_smooth = np.abs(np.diff([f.params["alpha_l"] for f in smooth.fits]))
    jumps_free = np.abs(np.diff([f.params["alpha_l"] for f in free.fits]))
    assert jumps_smooth.max() < jumps_free.max()
