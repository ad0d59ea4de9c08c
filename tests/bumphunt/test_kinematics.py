"""Beam and four-vector physics: invariants, boosts, presets."""

from __future__ import annotations

import numpy as np
import pytest

from bumphunt.kinematics import Beam, boost, cos_angle, invariant_mass, p4_from_spherical, spherical_from_p4


def test_belle2_beam_invariants() -> None:
    beam = Beam.belle2()
    # sqrt(s) from the beam energies and crossing angle: 4 E1 E2 cos^2(alpha/2)
    expected = np.sqrt(4 * 7.0 * 4.0 * np.cos(0.083 / 2) ** 2)
    assert beam.sqrt_s == pytest.approx(expected, rel=1e-12)
    assert beam.sqrt_s == pytest.approx(10.58, abs=0.01)
    assert beam.beta_gamma == pytest.approx(0.28, abs=0.01)
    # the CM four-momentum is at rest
    cm = beam.to_cm(beam.p4)
    np.testing.assert_allclose(cm[:3], 0.0, atol=1e-12)
    assert cm[3] == pytest.approx(beam.sqrt_s, rel=1e-12)


def test_beams_back_to_back_in_cm() -> None:
    beam = Beam.belle2()
    her, ler = beam.to_cm(beam.p4_her), beam.to_cm(beam.p4_ler)
    np.testing.assert_allclose(her[:3], -ler[:3], atol=1e-12)
    assert her[3] == pytest.approx(beam.sqrt_s / 2, rel=1e-12)
    np.testing.assert_allclose(np.linalg.norm(beam.cm_axis()), 1.0)


def test_z_pole_preset() -> None:
    beam = Beam.z_pole()
    assert beam.sqrt_s == pytest.approx(91.19, abs=0.01)
    np.testing.assert_allclose(beam.boost, 0.0, atol=1e-15)


def test_boost_roundtrip_and_mass_invariance(rng: np.random.Generator) -> None:
    n = 1000
    p4 = p4_from_spherical(rng.uniform(0.6, 5, n), rng.uniform(0, np.pi, n), rng.uniform(-np.pi, np.pi, n), mass=0.5)
    beta = rng.uniform(-0.5, 0.5, (n, 3))
    boosted = boost(p4, beta)
    np.testing.assert_allclose(invariant_mass(boosted), 0.5, rtol=1e-9)
    np.testing.assert_allclose(boost(boosted, -beta), p4, atol=1e-12)


def test_particle_at_rest_gets_beta() -> None:
    p4 = np.array([0.0, 0.0, 0.0, 2.0])
    beta = np.array([0.3, -0.2, 0.1])
    out = boost(p4, beta)
    gamma = 1 / np.sqrt(1 - beta @ beta)
    np.testing.assert_allclose(out[:3], 2.0 * gamma * beta, rtol=1e-12)
    assert out[3] == pytest.approx(2.0 * gamma)


def test_spherical_roundtrip_and_pair_mass(rng: np.random.Generator) -> None:
    E = rng.uniform(0.1, 5, 100)
    th = rng.uniform(0.01, np.pi - 0.01, 100)
    ph = rng.uniform(-np.pi, np.pi, 100)
    E2, th2, ph2 = spherical_from_p4(p4_from_spherical(E, th, ph))
    np.testing.assert_allclose(E2, E)
    np.testing.assert_allclose(th2, th, atol=1e-12)
    np.testing.assert_allclose(ph2, ph, atol=1e-12)
    # two photons: m^2 = 2 E1 E2 (1 - cos angle)
    a = p4_from_spherical(E, th, ph)
    b = p4_from_spherical(E[::-1], th[::-1], ph[::-1])
    np.testing.assert_allclose(invariant_mass(a, b) ** 2, 2 * E * E[::-1] * (1 - cos_angle(a, b)), rtol=1e-9, atol=1e-12)


def test_bad_beam() -> None:
    with pytest.raises(ValueError, match="positive"):
        Beam(e_her=-1.0)
    with pytest.raises(ValueError, match="boost"):
        boost(np.array([0, 0, 0, 1.0]), np.array([1.0, 0, 0]))
