"""Collider presets: ``bumphunt.colliders.collider(name)`` -> ``Collider`` (frozen), names in ``COLLIDER_NAMES``.

A preset bundles what the event-level stages need to know about one e+e-
machine and its detector: the beams (``bumphunt.kinematics.Beam``), the
calorimeter's polar-angle regions and photon resolution
(``bumphunt.events.detector``), the toy-MC detector settings that differ from
Belle II's (cluster merging angle, calorimeter surface, energy-response tail),
the pre-selection cuts, a nominal luminosity and the default coupling model
of the signal. ``Beam.belle2()`` and every default of the package stay the
Belle II ones; a preset is chosen with ``bumphunt generate --collider NAME``
(or ``collider:`` in the toy-MC config), ``bumphunt preselect/kinfit
--collider NAME`` (default: the collider in the ntuple metadata) and
``beam.collider`` in the scan config.

Presets (numbers, and where they come from):

``belle2``
    SuperKEKB 7.0 GeV e- on 4.0 GeV e+, 83 mrad crossing angle
    (sqrt(s) = 10.574 GeV), relative beam-energy spreads 6.4e-4 / 8.0e-4 (the
    values the package always used); Belle II ECL regions and the basf2
    photon resolution (``Resolution``); 0.445 fb^-1, the 2018 data set of the
    first Belle II search (PRL 125 (2020) 161806).
``babar``
    PEP-II 9.0 GeV e- on 3.1 GeV e+, head-on (sqrt(s) = 10.564 GeV, quoted as
    10.58 GeV; beta gamma = 0.56); beam-energy spreads assumed equal to
    SuperKEKB's (a CM spread of about 5 MeV; an assumption). BaBar EMC (BaBar
    detector paper, Nucl. Instrum. Meth. A 479 (2002) 1, hep-ex/0105044):
    CsI(Tl), sigma_E/E = 2.32% / E^(1/4) (+) 1.85%, sigma_theta = sigma_phi =
    3.87 mrad / sqrt(E), forward endcap 15.8-26.8 deg, barrel 26.8-141.8 deg,
    no backward endcap, inner radius 0.92 m; merging angle 0.04 rad (CsI
    Moliere radius ~3.6 cm at 0.92 m). Tracking acceptance as Belle II's CDC
    (an approximation); photon candidates within 17-141.8 deg.
    424 fb^-1, BaBar's Upsilon(4S) data set (NIM A 726 (2013) 203).
``zpole``
    Symmetric head-on beams at sqrt(s) = m_Z = 91.1876 GeV
    (``signal_models.alp.Z_MASS_GEV``), relative beam-energy spread 1e-3 per
    beam (an assumption between FCC-ee's ~0.1% with beamstrahlung and ILC's
    0.1-0.3%; the resulting CM spread, ~65 MeV, is far below Gamma_Z and the
    photon resolution, so it hardly matters). A highly granular (ILD-like)
    calorimeter as in the ILC Giga-Z ALP study (Steinberg and Wells,
    arXiv:2101.00520; ``shared/reference/physics.md``): sigma_E/E = 17% /
    sqrt(E) (+) 1%, angular resolution 1 mrad, two photons resolved above a
    separation of ~3 cm at ~2 m, modelled as a minimum opening angle of
    0.015 rad below which the toy MC merges them; Gaussian energy response.
    Geometry (assumed, ILD-like): barrel 36.3-143.7 deg at 1.8 m, endcaps
    from 8 deg at z = +-2.45 m. Pre-selection: exactly three photons above
    2 GeV within 8-172 deg (the Giga-Z photon threshold). 100 fb^-1 (1e9 Z
    bosons, the Giga-Z run). Signal coupling: hypercharge (g_aBB).

The toy MC has background models at B-factory energies and at the Z pole
only (``bumphunt.toymc.background_model``); a preset does not change that.

``scans`` cannot import this module (the packages are layers), so the scan
configuration carries the presets' beams itself (``scans.config``); a test
checks that the two agree.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from signal_models._common.beams import COLLIDER_BEAMS

from .errors import ConfigError
from .events.cuts import PreselectionCuts
from .events.detector import BELLE2_ECL, Calorimeter, ParametrisedResolution, Resolution
from .kinematics import Beam

logger = logging.getLogger(__name__)

__all__ = ["Collider", "COLLIDERS", "COLLIDER_NAMES", "DEFAULT_COLLIDER", "collider", "collider_from_meta", "collider_of_files",
           "preselection_cuts_for"]

_DEG = math.pi / 180.0


@dataclass(frozen=True)
class Collider:
    """An e+e- collider and its detector, as the toy MC and the event stages see them.

    Attributes
    ----------
    name : str
        Preset name (``collider(name)``).
    description : str
        One line for listings and metadata.
    beam : Beam
        Beam energies (GeV), crossing angle (rad) and relative energy spreads.
    calorimeter : Calorimeter
        Polar-angle regions (rad) of the photon calorimeter.
    resolution : Resolution or ParametrisedResolution
        Photon resolution (sigma_E in GeV, angles in rad) the toy MC smears with
        and writes as the cluster covariance.
    luminosity_fb : float
        Nominal integrated luminosity of the preset's data set in fb^-1 (for
        projections; the toy MC's luminosity is its own ``lumi_fb``).
    coupling : str
        Default coupling model of the ALP signal (``signal_models.alp``).
    signal_masses : tuple of float
        Default toy-MC signal masses in GeV.
    detector : tuple of (str, float)
        Toy-MC ``DetectorSettings`` fields that differ from Belle II's.
    generator : tuple of (str, float)
        Toy-MC ``GeneratorSettings`` fields that differ from the defaults.
    preselection : tuple of (str, Any)
        ``PreselectionCuts`` fields that differ from the Belle II cuts.
    sources : tuple of str
        Where the numbers come from (and which are assumptions).
    """

    name: str
    description: str
    beam: Beam
    calorimeter: Calorimeter
    resolution: Resolution | ParametrisedResolution
    luminosity_fb: float
    coupling: str = "photon"
    signal_masses: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 7.0)
    detector: tuple[tuple[str, float], ...] = ()
    generator: tuple[tuple[str, float], ...] = ()
    preselection: tuple[tuple[str, Any], ...] = ()
    sources: tuple[str, ...] = field(default=(), repr=False)

    @property
    def sqrt_s(self) -> float:
        """Nominal centre-of-mass energy in GeV."""
        return self.beam.sqrt_s

    @property
    def ntuple_energy_unit(self) -> str | None:
        """Energy unit to read this collider's toy ntuples with: ``"GeV"`` where photons exceed 20 GeV.

        The reader takes a median photon energy above 20 GeV for MeV unless
        told the unit; at the Z pole photons have ~30 GeV. None elsewhere
        (the reader's check stays on).
        """
        return "GeV" if self.sqrt_s / 2.0 > 20.0 else None

    def preselection_cuts(self, overrides: Mapping[str, Any] | None = None) -> PreselectionCuts:
        """The pre-selection cuts of this collider, optionally with some fields replaced.

        Parameters
        ----------
        overrides : mapping, optional
            ``PreselectionCuts`` fields (GeV, rad, ns, cm) that replace the preset's.
        """
        return PreselectionCuts.from_config({**dict(self.preselection), **dict(overrides or {})})

    def toymc_defaults(self) -> dict[str, Any]:
        """Toy-MC configuration keys this preset sets (below any key of the user's configuration).

        Empty for ``belle2``, so the Belle II toy MC is unchanged.
        """
        if self.name == DEFAULT_COLLIDER:
            return {}
        out: dict[str, Any] = {"beam": self.beam.to_dict(), "signal": {"masses": list(self.signal_masses), "coupling": self.coupling}}
        if self.detector:
            out["detector"] = dict(self.detector)
        if self.generator:
            out["generator"] = dict(self.generator)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-ready), for metadata and reports."""
        res = self.resolution
        return {
            "name": self.name,
            "description": self.description,
            "sqrt_s": self.sqrt_s,
            "beam": self.beam.to_dict(),
            "calorimeter": self.calorimeter.to_dict(),
            "resolution": res.to_dict() if isinstance(res, ParametrisedResolution) else {"model": "belle2_ecl"},
            "luminosity_fb": self.luminosity_fb,
            "coupling": self.coupling,
        }


#: The preset used when nothing names one (the package's Belle II defaults).
DEFAULT_COLLIDER = "belle2"

_BABAR_EMC = Calorimeter("BaBar EMC", barrel=(26.8 * _DEG, 141.8 * _DEG), forward=(15.8 * _DEG, 26.8 * _DEG))
_ZPOLE_ECAL = Calorimeter("Z-pole granular ECAL (ILD-like)", barrel=(36.3 * _DEG, 143.7 * _DEG),
                          forward=(8.0 * _DEG, 36.3 * _DEG), backward=(143.7 * _DEG, 172.0 * _DEG))

#: The presets by name.
COLLIDERS: dict[str, Collider] = {
    "belle2": Collider(
        name="belle2",
        description="SuperKEKB / Belle II at the Upsilon(4S): 7.0 GeV e- on 4.0 GeV e+, 83 mrad crossing",
        beam=Beam.belle2(),
        calorimeter=BELLE2_ECL,
        resolution=Resolution(),
        luminosity_fb=0.445,
        sources=("beams and ECL: shared/reference/physics.md (Belle II)", "0.445 fb^-1: PRL 125 (2020) 161806"),
    ),
    "babar": Collider(
        name="babar",
        description="PEP-II / BaBar at the Upsilon(4S): 9.0 GeV e- on 3.1 GeV e+, head-on",
        beam=Beam(**COLLIDER_BEAMS["babar"]),
        calorimeter=_BABAR_EMC,
        resolution=ParametrisedResolution(energy_stochastic=0.0232, energy_power=0.25, energy_constant=0.0185,
                                          angle_stochastic=3.87e-3),
        luminosity_fb=424.0,
        detector=(("merge_angle", 0.04), ("ecl_radius", 0.92), ("ecl_z_forward", 1.82), ("ecl_z_backward", -1.17)),
        preselection=(("photon_theta_max", 141.8 * _DEG),),
        sources=("beams: shared/reference/physics.md (Other colliders)",
                 "EMC: NIM A 479 (2002) 1 (hep-ex/0105044)", "424 fb^-1: NIM A 726 (2013) 203",
                 "assumed: beam-energy spreads as SuperKEKB; tracking acceptance as Belle II's CDC"),
    ),
    "zpole": Collider(
        name="zpole",
        description="symmetric e+e- at sqrt(s) = m_Z with a highly granular calorimeter (ILC Giga-Z-like)",
        beam=Beam(**COLLIDER_BEAMS["zpole"], e_spread_her=1.0e-3, e_spread_ler=1.0e-3),
        calorimeter=_ZPOLE_ECAL,
        resolution=ParametrisedResolution(energy_stochastic=0.17, energy_power=0.5, energy_constant=0.01, angle_constant=1.0e-3),
        luminosity_fb=100.0,
        coupling="hypercharge",
        signal_masses=(1.0, 5.0, 10.0, 20.0, 40.0),
        detector=(("merge_angle", 0.015), ("energy_tail", 0.0), ("ecl_radius", 1.8), ("ecl_z_forward", 2.45),
                  ("ecl_z_backward", -2.45), ("cluster_threshold", 0.1)),
        generator=(("e_min_cm", 1.0), ("cos_max_cm", math.cos(6.0 * _DEG))),
        preselection=(("photon_e_min", 2.0), ("photon_theta_min", 8.0 * _DEG), ("photon_theta_max", 172.0 * _DEG),
                      ("track_theta_min", 8.0 * _DEG), ("track_theta_max", 172.0 * _DEG)),
        sources=("m_Z, detector, 100 fb^-1, E > 2 GeV: shared/reference/physics.md (Giga-Z study, arXiv:2101.00520)",
                 "assumed: beam-energy spread 1e-3, calorimeter geometry (ILD-like), 0.015 rad merging angle"),
    ),
}

#: Preset names, in listing order.
COLLIDER_NAMES: tuple[str, ...] = tuple(COLLIDERS)


def collider(name: str | Collider) -> Collider:
    """The preset called ``name`` (a ``Collider`` is returned as it is).

    Raises
    ------
    ConfigError
        For an unknown name; the message names it and lists the presets.
    """
    if isinstance(name, Collider):
        return name
    try:
        return COLLIDERS[str(name).strip().lower()]
    except KeyError:
        raise ConfigError(f"unknown collider {name!r}; known: {', '.join(COLLIDER_NAMES)}") from None


def collider_from_meta(meta: Mapping[str, Any] | None) -> Collider | None:
    """The preset named by a sample's metadata (``collider`` key, a name or a dict with ``name``), or None.

    Ntuples written before the presets existed carry no ``collider``; callers
    then keep their Belle II defaults.
    """
    value = (meta or {}).get("collider")
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = value.get("name")
    return collider(str(value))


def collider_of_files(paths: Any, *, name: str | None = None) -> Collider | None:
    """The preset ``name``, else the one the files' metadata name (None when no file names one).

    Parameters
    ----------
    paths : path, glob pattern or list of them
        ROOT files with (or without) bumphunt metadata.
    name : str, optional
        A preset name given by the user; it wins over the metadata.

    Raises
    ------
    ConfigError
        Unknown name, or files whose metadata name different colliders (naming them).
    """
    if name is not None:
        return collider(name)
    from .events.files import expand_paths, read_meta

    found: dict[str, list[str]] = {}
    for path in expand_paths(paths):
        preset = collider_from_meta(read_meta(path))
        if preset is not None:
            found.setdefault(preset.name, []).append(path.name)
    if len(found) > 1:
        listing = "; ".join(f"{k}: {', '.join(v)}" for k, v in found.items())
        raise ConfigError(f"the inputs come from different colliders ({listing}); process them separately or name one")
    return collider(next(iter(found))) if found else None


def preselection_cuts_for(preset: Collider | None, config: Any = None) -> PreselectionCuts:
    """Pre-selection cuts: the preset's, with the keys of a YAML file or mapping (``config``) on top.

    Without a preset, ``PreselectionCuts.from_config(config)`` (the Belle II defaults under the config).
    """
    if preset is None:
        return PreselectionCuts.from_config(config)
    from signal_models._common.config import read_mapping

    raw, source = read_mapping(config, source=None, default_source="preselection config", mapping_source="preselection config")
    if isinstance(raw.get("preselection"), Mapping):
        raw = dict(raw["preselection"])
    merged = {**dict(preset.preselection), **raw}
    return PreselectionCuts.from_config(merged) if config is None else _cuts_with_source(merged, source)


def _cuts_with_source(merged: Mapping[str, Any], source: str) -> PreselectionCuts:
    try:
        return PreselectionCuts.from_config(merged)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
