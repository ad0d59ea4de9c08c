"""Beam-background photons of the toy MC change the selection, and the cluster-time cuts remove most of their effect."""

from __future__ import annotations

import numpy as np

from bumphunt.events import diphoton_candidates, preselect
from bumphunt.kinematics import Beam
from bumphunt.kinfit import apply_to_events
from bumphunt.toymc.detector_sim import DetectorSettings
from bumphunt.toymc.processes import simulate_signal

N = 12000
NO_TIME_CUTS = {"photon_time_max": 1e9, "time_spread_max": 1e9}


def _selected(rate: float, cuts: dict | None = None) -> tuple[int, int]:
    """(events selected, events whose selected candidate pairs include the truth-matched ALP pair) of a 1 GeV ALP."""
    beam = Beam.belle2()
    events = simulate_signal(1.0, N, rng=np.random.default_rng(1), detector=DetectorSettings(beam_bkg_rate=rate))
    sel, _ = preselect(events, beam=beam, cuts=cuts)
    cands = diphoton_candidates(apply_to_events(sel, beam=beam), beam=beam)
    return len(sel["E"]), int(np.sum(cands["truth_match"]))


def test_beam_background_photons_change_the_selection_and_the_time_cuts_contain_them() -> None:
    clean, clean_tm = _selected(0.0)
    assert clean_tm == clean  # without beam background every selected event has its ALP pair
    nominal, nominal_tm = _selected(DetectorSettings().beam_bkg_rate)
    untimed, untimed_tm = _selected(DetectorSettings().beam_bkg_rate, NO_TIME_CUTS)
    # binomial error of an efficiency of ~0.75 on N events: ~0.004
    err = np.sqrt(0.75 * 0.25 / N) * N
    # the nominal rate loses signal events (an out-of-time or extra photon) by many standard errors
    assert clean - nominal > 5 * err
    # without the cluster-time cuts the loss is several times larger and wrong photons enter the candidates
    assert clean - untimed > 3 * (clean - nominal)
    assert (untimed - untimed_tm) > 10 * max(nominal - nominal_tm, 1)
    assert nominal_tm / nominal > 0.99
