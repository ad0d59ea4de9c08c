"""ALP coupling models: photon-only unchanged, hypercharge with Z exchange against the photon-only and Z-pole limits, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from signal_models import alp

ALPHA0 = 1.0 / 137.035999
SW2 = 0.2312
CW2 = 1.0 - SW2
MZ, GZ, GEE = 91.1876, 2.4952, 0.08391
PB = 0.3894e9  # GeV^-2 -> pb, as in the acceptance criterion


def test_photon_only_unchanged_and_by_hand() -> None:
    # physics notes: g = 1.1e-3 GeV^-1, m_a = 0.2 GeV, sqrt(s) = 10.58 GeV gives about 0.14 pb
    by_hand = ALPHA0 * 1.1e-3**2 / 24.0 * (1.0 - 0.2**2 / 10.58**2) ** 3 * 0.3893793721e9
    xs = alp.cross_section_pb(0.2, 1.1e-3, 10.58)
    assert xs == pytest.approx(by_hand, rel=1e-12) and xs == pytest.approx(0.14, abs=0.01)
    m = np.linspace(0.05, 10.5, 50)
    g = np.logspace(-5, -1, 50)
    assert np.array_equal(alp.cross_section_pb(m, g, 10.58, coupling="photon"), alp.cross_section_pb(m, g, 10.58))
    assert np.array_equal(alp.coupling_from_cross_section(0.3, m, 10.58), alp.coupling_from_cross_section(0.3, m, 10.58, coupling="photon"))


def test_model_couplings_and_widths_by_hand() -> None:
    hyp, pho = alp.coupling_model("hypercharge"), alp.coupling_model("photon")
    g = 2e-4
    assert hyp.g_agg(g) == pytest.approx(CW2 * g, rel=1e-12)
    assert hyp.g_azg(g) == pytest.approx(2.0 * math.sqrt(SW2 * CW2) * g, rel=1e-12)
    assert hyp.g_azz(g) == pytest.approx(SW2 * g, rel=1e-12)
    assert pho.g_agg(g) == g and pho.g_azg(g) == 0.0 and pho.g_azz(g) == 0.0
    # Gamma(a -> gg) = g_agg^2 m^3 / (64 pi): g_aBB = 1e-3, m = 1 GeV -> (0.7688e-3)^2 / 201.06 = 2.9397e-9 GeV
    assert float(hyp.width_to_photons(1.0, 1e-3)) == pytest.approx(2.9397e-9, rel=1e-4)
    # Gamma(Z -> a gamma) = g^2 s_W^2 c_W^2 (m_Z^2 - m^2)^3 / (96 pi m_Z^3); g = 1e-3, m = 0: 1e-6 * 0.17775 * 91.1876^3 / 301.59 = 4.469e-4 GeV
    assert float(hyp.z_to_a_gamma_width(0.0, 1e-3)) == pytest.approx(4.469e-4, rel=1e-3)
    assert float(hyp.z_to_a_gamma_width(40.0, 1e-3)) == pytest.approx(4.469e-4 * (1 - 40.0**2 / MZ**2) ** 3, rel=1e-3)
    assert float(pho.z_to_a_gamma_width(1.0, 1e-3)) == 0.0 and float(hyp.z_to_a_gamma_width(95.0, 1e-3)) == 0.0
    # the lab decay length follows g_agg
    assert hyp.decay_length(0.5, 1e-3, 10.0) == pytest.approx(alp.decay_length(0.5, CW2 * 1e-3, 10.0), rel=1e-12)


@pytest.mark.parametrize("m_a", [0.2, 1.0, 5.0, 9.6])
def test_hypercharge_at_b_factory_is_photon_only_with_cw2(m_a: float) -> None:
    hyp = alp.cross_section_pb(m_a, 1e-3, 10.58, coupling="hypercharge")
    pho = alp.cross_section_pb(m_a, CW2 * 1e-3, 10.58)
    assert abs(hyp / pho - 1.0) < 0.01  # measured +0.07% (Z exchange, interference with g_V)


@pytest.mark.parametrize("m_a", [0.5, 1.0, 10.0, 50.0, 80.0])
def test_hypercharge_at_z_pole_is_photon_part_plus_narrow_width_peak(m_a: float) -> None:
    g = 1e-3
    x3 = (1.0 - m_a**2 / MZ**2) ** 3
    photon_part = ALPHA0 * (CW2 * g) ** 2 / 24.0 * x3 * PB
    width_za = g**2 * SW2 * CW2 * (MZ**2 - m_a**2) ** 3 / (96.0 * math.pi * MZ**3)
    peak = 12.0 * math.pi * GEE * width_za / (MZ**2 * GZ**2) * PB
    total = alp.cross_section_pb(m_a, g, MZ, coupling="hypercharge")
    assert abs(total / (photon_part + peak) - 1.0) < 0.02
    assert photon_part < 0.01 * peak  # the Z dominates on the pole


def test_giga_z_event_count_and_value_by_hand() -> None:
    # m_a = 1 GeV, g_aBB = 1 TeV^-1 at sqrt(s) = m_Z: Gamma(Z -> a gamma) = 4.469e-4 GeV, peak 12 pi * 0.08391 * 4.469e-4 / (8315.2 * 6.226) * 0.3894e9 = 10.6 pb,
    # photon part 0.07 pb: about 1e6 events in 100 fb^-1 (the Giga-Z study's number)
    xs = float(alp.cross_section_pb(1.0, 1e-3, MZ, coupling="hypercharge"))
    assert xs == pytest.approx(10.70, rel=0.01)
    assert 0.8e6 < xs * 1e5 < 1.3e6


def test_interference_sign_electron_couples_by_hypercharge() -> None:
    # far above the Z the photon and Z amplitudes add to B exchange: left- and right-handed electrons in the ratio of their
    # hypercharges (1/2 : 1), so sigma = g^2/24 (1 - m^2/s)^3 * 0.625 alpha with alpha between the photon's and the Z's alpha
    # (with the interference sign reversed the bracket would be 10% above both)
    sqrt_s, m_a, g = 5000.0, 1.0, 1e-3
    bracket = alp.cross_section_pb(m_a, g, sqrt_s, coupling="hypercharge") / (g**2 / 24.0 * (1 - m_a**2 / sqrt_s**2) ** 3 * alp.GEV2_TO_PB)
    assert 0.625 * ALPHA0 < bracket < 0.625 * alp.ALPHA_Z_EFFECTIVE
    assert alp.ALPHA_Z_EFFECTIVE == pytest.approx(1.0 / 128.1, rel=1e-3)


def test_differential_cross_section_integrates_to_total() -> None:
    c = np.linspace(-1.0, 1.0, 20001)
    for coupling, sqrt_s in (("photon", 10.58), ("hypercharge", MZ)):
        d = alp.differential_cross_section_pb(3.0, 1e-3, sqrt_s, c, coupling=coupling)
        assert integrate.trapezoid(d, c) == pytest.approx(float(alp.cross_section_pb(3.0, 1e-3, sqrt_s, coupling=coupling)), rel=1e-6)
        assert d[-1] / d[len(c) // 2] == pytest.approx(2.0)  # 1 + cos^2


@pytest.mark.parametrize("coupling, sqrt_s", [("photon", 10.58), ("hypercharge", 10.58), ("hypercharge", MZ), ("hypercharge", 120.0)])
def test_inverse_recovers_the_coupling(coupling: str, sqrt_s: float) -> None:
    m = np.array([0.3, 2.0, 8.0])
    g = np.array([3e-5, 1e-3, 0.2])
    xs = alp.cross_section_pb(m, g, sqrt_s, coupling=coupling)
    np.testing.assert_allclose(alp.coupling_from_cross_section(xs, m, sqrt_s, coupling=coupling), g, rtol=1e-12)
    model = alp.coupling_model(coupling)
    np.testing.assert_allclose(model.coupling_from_cross_section(model.cross_section_pb(m, g, sqrt_s), m, sqrt_s), g, rtol=1e-12)


def test_isr_factor_is_separate_and_off_by_default() -> None:
    # normalised radiator: a photon-only cross-section hardly depends on s, so the factor is ~1 for a light ALP
    assert float(alp.isr_correction_factor(0.01, 10.58)) == pytest.approx(1.0, abs=1e-3)
    # on the Z pole ISR lowers the peak by 25-30%
    f = alp.isr_correction_factor([1.0, 10.0], MZ, coupling="hypercharge")
    assert f.shape == (2,) and np.all((f > 0.70) & (f < 0.75))
    # a cut on the radiated fraction keeps less; above the pole the radiative return raises the cross-section
    assert float(alp.isr_correction_factor(1.0, 10.58, x_max=0.36)) < float(alp.isr_correction_factor(1.0, 10.58))
    assert float(alp.isr_correction_factor(1.0, 95.0, coupling="hypercharge")) > 1.0


def test_bad_input_names_the_value() -> None:
    with pytest.raises(ValueError, match=r"m_a = 10\.58 GeV is at or above sqrt\(s\) = 10\.58"):
        alp.cross_section_pb(10.58, 1e-3, 10.58)
    with pytest.raises(alp.ALPError, match=r"m_a = 95 GeV"):
        alp.cross_section_pb([1.0, 95.0], 1e-3, MZ, coupling="hypercharge")
    with pytest.raises(ValueError, match=r"unknown coupling model 'gluon'; known: photon, hypercharge"):
        alp.cross_section_pb(1.0, 1e-3, 10.58, coupling="gluon")
    with pytest.raises(ValueError, match="unknown coupling model"):
        alp.coupling_from_cross_section(1.0, 1.0, 10.58, coupling="Hypercharge")
    with pytest.raises(ValueError, match=r"got 11 GeV"):
        alp.coupling_from_cross_section(1.0, 11.0, 10.58, coupling="hypercharge")
    with pytest.raises(ValueError, match=r">= 0 pb, got -1"):
        alp.coupling_from_cross_section(-1.0, 1.0, 10.58)
    with pytest.raises(ValueError, match="x_max"):
        alp.isr_correction_factor(1.0, 10.58, x_max=1.5)
