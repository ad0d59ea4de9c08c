"""The event ntuple schema shared by the toy MC writer, the reader and the stages.

One ROOT file holds one sample in a TTree named ``events`` (``TREE_NAME``) and
a JSON string (``TObjString``) under the key ``bumphunt_meta`` with the sample
metadata (process, cross-section in pb, number generated, luminosity in fb^-1,
seed, beam, generator settings, package version).

Per-event branches are flat scalars; per-cluster and per-track quantities are
variable-length branches with a counter (``ngamma``, ``ntrack``), the layout
uproot writes for an awkward record ``gamma`` / ``track``. In memory the
reader returns a dict of numpy arrays for event branches and awkward arrays for
jagged ones (see ``bumphunt.events.reader``).

Units: GeV, rad, ns, cm for track impact parameters, m for decay lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Branch",
    "EVENT_BRANCHES",
    "GAMMA_FIELDS",
    "TRACK_FIELDS",
    "COLLECTIONS",
    "COV_FIELDS",
    "PROCESS_CODES",
    "PROCESS_NAMES",
    "TREE_NAME",
    "META_KEY",
]

TREE_NAME = "events"
META_KEY = "bumphunt_meta"

#: Integer process codes stored in the ``process`` branch.
PROCESS_CODES: dict[str, int] = {
    "signal": 0,
    "ggg": 1,
    "eeg": 2,
    "pi0g": 3,
    "etag": 4,
    "etapg": 5,
    "pi0gg": 6,
    "etagg": 7,
    "etapgg": 8,
    "mumug": 9,
    "data": 100,
}
PROCESS_NAMES: dict[int, str] = {v: k for k, v in PROCESS_CODES.items()}


@dataclass(frozen=True)
class Branch:
    """One branch of the schema: name, numpy dtype kind, unit and meaning."""

    name: str
    dtype: str
    unit: str
    doc: str
    required: bool = True


EVENT_BRANCHES: tuple[Branch, ...] = (
    Branch("event", "int64", "", "event number within the sample"),
    Branch("process", "int32", "", "process code, see PROCESS_CODES"),
    Branch("weight", "float64", "", "per-event weight normalising the sample to the luminosity in the metadata"),
    Branch("mc_ma", "float64", "GeV", "generated ALP mass (signal), -1 otherwise", required=False),
    Branch("mc_decay_length", "float64", "m", "ALP flight distance in the lab before decaying (signal), 0 otherwise", required=False),
    Branch("mc_idx_a1", "int32", "", "index in the gamma list of the cluster from the first ALP photon, -1 if lost", required=False),
    Branch("mc_idx_a2", "int32", "", "index in the gamma list of the cluster from the second ALP photon, -1 if lost", required=False),
    Branch("mc_idx_recoil", "int32", "", "index in the gamma list of the cluster from the recoil photon, -1 if lost", required=False),
    Branch("mc_process", "int32", "", "pseudo-data only: true process code of the event (process is 'data')", required=False),
)

#: Fields of the per-cluster record ``gamma`` (branches ``gamma_<field>``, counter ``ngamma``).
GAMMA_FIELDS: tuple[Branch, ...] = (
    Branch("E", "float64", "GeV", "cluster energy"),
    Branch("theta", "float64", "rad", "polar angle of the cluster seen from the IP"),
    Branch("phi", "float64", "rad", "azimuth of the cluster seen from the IP"),
    Branch("time", "float64", "ns", "cluster time relative to the collision"),
    Branch("region", "int32", "", "ECL region: 1 forward endcap, 2 barrel, 3 backward endcap"),
    Branch("cov_EE", "float64", "GeV^2", "covariance (E, E)", required=False),
    Branch("cov_Etheta", "float64", "GeV rad", "covariance (E, theta)", required=False),
    Branch("cov_Ephi", "float64", "GeV rad", "covariance (E, phi)", required=False),
    Branch("cov_thetatheta", "float64", "rad^2", "covariance (theta, theta)", required=False),
    Branch("cov_thetaphi", "float64", "rad^2", "covariance (theta, phi)", required=False),
    Branch("cov_phiphi", "float64", "rad^2", "covariance (phi, phi)", required=False),
    Branch("mc_E", "float64", "GeV", "true energy of the photon that made the cluster (-1 for beam background)", required=False),
    Branch("mc_theta", "float64", "rad", "true polar angle of that photon", required=False),
    Branch("mc_phi", "float64", "rad", "true azimuth of that photon", required=False),
    Branch("mc_origin", "int32", "", "0 recoil photon, 1/2 ALP (or P) daughters, 3 other hard photon, 4 electron cluster, 5 beam background, 6 merged", required=False),
)

#: Fields of the per-track record ``track`` (branches ``track_<field>``, counter ``ntrack``).
TRACK_FIELDS: tuple[Branch, ...] = (
    Branch("px", "float64", "GeV", "momentum x"),
    Branch("py", "float64", "GeV", "momentum y"),
    Branch("pz", "float64", "GeV", "momentum z"),
    Branch("charge", "int32", "e", "charge"),
    Branch("dr", "float64", "cm", "transverse distance of closest approach to the IP"),
    Branch("dz", "float64", "cm", "longitudinal distance of closest approach to the IP"),
)

#: Jagged collections: name -> (counter branch, fields); branch ``<name>_<field>`` holds a field.
COLLECTIONS: dict[str, tuple[str, tuple[Branch, ...]]] = {
    "gamma": ("ngamma", GAMMA_FIELDS),
    "track": ("ntrack", TRACK_FIELDS),
}

#: Covariance field names in the order they fill the symmetric (E, theta, phi) matrix.
COV_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("cov_EE", 0, 0),
    ("cov_Etheta", 0, 1),
    ("cov_Ephi", 0, 2),
    ("cov_thetatheta", 1, 1),
    ("cov_thetaphi", 1, 2),
    ("cov_phiphi", 2, 2),
)
