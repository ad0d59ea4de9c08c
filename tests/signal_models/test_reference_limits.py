"""Bundled published limit curves: every file loads and is sane; unknown names and bad files are clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signal_models import reference_limits
from signal_models.alp import COUPLING_MODELS


def test_every_bundled_curve_loads_and_is_sane() -> None:
    names = reference_limits.available()
    assert {"belle2_2020", "lep_z3gamma_hypercharge", "lep_3gamma_photon", "beam_dumps_photon"} <= set(names)
    for name in names:
        ref = reference_limits.load(name)
        assert ref.name == name
        assert ref.label and ref.citation and ref.production and ref.obtained
        assert ref.coupling in COUPLING_MODELS
        assert ref.cl == 0.95
        assert np.all(np.isfinite(ref.masses)) and np.all(np.isfinite(ref.couplings))
        assert np.all(ref.masses > 0) and np.all(ref.couplings > 0)
        assert ref.shape in ("curve", "region")
        if ref.shape == "curve":
            assert np.all(np.diff(ref.masses) >= 0)
        assert len(ref.masses) == len(ref.couplings) >= 2
        with pytest.raises(ValueError):
            ref.masses[0] = 1.0  # read-only


def test_belle2_2020_is_the_listed_points_only() -> None:
    ref = reference_limits.load("belle2_2020")
    assert ref.coupling == "photon"
    assert "161806" in ref.citation and "2007.13071" in ref.citation
    assert "approximate" in ref.obtained and "third parties" in ref.obtained
    np.testing.assert_array_equal(ref.masses, [0.2, 0.3, 1.0, 2.0, 5.0, 9.0])
    np.testing.assert_array_equal(ref.couplings, [1.05e-3, 7.0e-4, 1.2e-3, 1.8e-3, 3.0e-3, 1.4e-2])


def test_lep_hypercharge_curve_is_flat_at_the_quoted_value() -> None:
    ref = reference_limits.load("lep_z3gamma_hypercharge")
    assert ref.coupling == "hypercharge" and "2.2e-6" in ref.citation
    np.testing.assert_allclose(ref.couplings, 10**-4.5, rtol=1e-4)
    assert ref.masses[0] == 10.0 and ref.masses[-1] < 91.1876


def test_belle2_2020_curve_agrees_with_the_read_off_points() -> None:
    curve, points = reference_limits.load("belle2_2020_curve"), reference_limits.load("belle2_2020")
    assert curve.coupling == "photon" and curve.shape == "curve" and "2007.13071" in curve.citation
    assert curve.masses[0] == pytest.approx(0.196, abs=1e-3) and curve.masses[-1] == pytest.approx(9.617, abs=1e-3)
    for m, g in zip(points.masses, points.couplings):
        near = curve.couplings[np.abs(curve.masses - m) < 0.03 * m]
        near = near[near < 1.0]  # not the vertical closing edge
        assert near.min() * 0.9 <= g <= near.max() * 1.1, (m, g, near.min(), near.max())


def test_lep_and_beam_dump_photon_limits() -> None:
    lep = reference_limits.load("lep_3gamma_photon")
    assert lep.coupling == "photon" and lep.shape == "curve" and "1509.00476" in lep.citation
    # MeV to ~100 GeV; excluded above ~5e-3 GeV^-1 below 8 GeV and ~1e-3 GeV^-1 at 10-90 GeV (the paper's figure)
    assert lep.masses[0] < 2e-3 and lep.masses[-1] > 100
    inside = (lep.masses > 0.05) & (lep.masses < 7.0)
    assert np.all((lep.couplings[inside] > 4e-3) & (lep.couplings[inside] < 8e-3))
    assert np.all(np.diff(lep.masses)[:-1] > 0) and lep.masses[-1] == lep.masses[-2]  # a vertical closing edge
    dump = reference_limits.load("beam_dumps_photon")
    assert dump.coupling == "photon" and dump.shape == "region" and "1512.03069" in dump.citation
    # a band: at 0.3 GeV the region spans couplings from ~1e-7 to ~1e-6 GeV^-1; nothing above ~0.5 GeV
    assert dump.masses.max() < 0.6
    from matplotlib.path import Path as Polygon

    poly = Polygon(np.column_stack([np.log10(dump.masses), np.log10(dump.couplings)]))
    assert poly.contains_point((np.log10(0.3), np.log10(3e-7)))
    assert not poly.contains_point((np.log10(0.3), np.log10(1e-4)))  # above the band: decays inside the shield
    assert not poly.contains_point((np.log10(0.3), np.log10(1e-8)))  # below: too few ALPs


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown reference limit 'belle2_2019'; available: beam_dumps_photon, belle2_2020, "):
        reference_limits.load("belle2_2019")
    with pytest.raises(reference_limits.ReferenceLimitError):
        reference_limits.load("belle2_2019")


_HEADER = "# label: x\n# citation: y\n# coupling: photon\n# production: p\n# obtained: o\n"


@pytest.mark.parametrize("text, match", [
    ("# label: x\n# coupling: photon\n# production: p\n# obtained: o\nmass_gev,g_gev\n1,1e-3\n", "# citation:"),
    (_HEADER.replace("photon", "gluon") + "mass_gev,g_gev\n1,1e-3\n", "unknown coupling model 'gluon'"),
    (_HEADER + "mass,g\n1,1e-3\n", "mass_gev,g_gev"),
    (_HEADER + "mass_gev,g_gev\n2,1e-3\n1,1e-3\n", "must not decrease"),
    (_HEADER + "# shape: blob\nmass_gev,g_gev\n1,1e-3\n", "shape"),
    (_HEADER + "# shape: region\nmass_gev,g_gev\n1,1e-3\n2,1e-3\n", "at least 3 vertices"),
    (_HEADER + "mass_gev,g_gev\n1,1e-3\n2,0\n", "> 0"),
    (_HEADER + "mass_gev,g_gev\n1,abc\n", "unreadable"),
])
def test_bad_files_are_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "curve.csv"
    path.write_text(text)
    with pytest.raises(reference_limits.ReferenceLimitError, match=match):
        reference_limits.load_file(path)


def test_load_file_reads_a_user_curve(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(_HEADER + "# cl: 0.9\nmass_gev,g_gev\n0.5,2e-3\n1.5,3e-3\n")
    ref = reference_limits.load_file(path)
    assert ref.name == "mine" and ref.cl == 0.9
    np.testing.assert_array_equal(ref.couplings, [2e-3, 3e-3])
