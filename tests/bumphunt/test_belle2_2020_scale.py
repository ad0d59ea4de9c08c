"""Issue 18: the whole chain through the command line at the scale of the Belle II 2020 analysis (slow).

Toy MC at 0.445 fb^-1 (51 signal masses x 4000 events, 150k e+e- -> 3 gamma and
the other backgrounds in the toy's default proportions), pre-selection, 4C
kinematic fit, Punzi-net selector (the package's default training), signal
model, mass scan; the expected median 95% CL limit on g_agg must lie within a
factor 2 of the published 2020 limit (``signal_models.reference_limits``,
``belle2_2020``) at 0.2, 0.3, 1, 2, 5 and 9 GeV, the masses of the bundled
points. 9.5 GeV, the last mass of the issue's table, has no bundled point: it
is reported against the nearest one (9 GeV) and not asserted, since the limits
at 9 and 9.5 GeV differ by the phase space (1 - m^2/s)^3 alone by a factor ~1.7.

Nothing here is tuned to the published limits: the toy MC, the cuts, the
selector and the scan run with the package's defaults except for the sample
sizes, the luminosity, the held-out masses of the selector (5 of 51, about the
published analysis' proportion), the scan's first mass (0.2 GeV, the lowest
generated one) and no look-elsewhere toys (the expected limits do not use
them). ``python -m pytest -m slow -s`` prints the table; the tutorial
``docs/tutorials/12_belle2_2020_on_toys.md`` runs the same commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

LUMI_FB = 0.445
SEED = 1
#: Signal masses (GeV): 51 masses from 0.2 to 9.7 GeV, 0.19 GeV apart.
SIGNAL_MASSES = [round(float(m), 3) for m in np.linspace(0.2, 9.7, 51)]
N_SIGNAL = 4000
#: The toy's default background mix (20000 ggg, ...) scaled to 150k e+e- -> 3 gamma.
BACKGROUNDS = {"ggg": 150_000, "eeg": 37_500, "pi0g": 15_000, "etag": 15_000, "etapg": 15_000,
               "pi0gg": 37_500, "etagg": 37_500, "etapgg": 37_500}
BACKGROUND_SAMPLES = tuple(BACKGROUNDS)
#: Masses (GeV) of the comparison: the bundled points, and 9.5 GeV reported against the nearest one.
CHECK_MASSES = (0.2, 0.3, 1.0, 2.0, 5.0, 9.0)
REPORT_ONLY = {9.5: "no bundled published point at 9.5 GeV; compared with the nearest one (9 GeV) for information only"}


def _bumphunt(args: list[str], cwd: Path) -> str:
    """Run ``bumphunt ARGS`` in ``cwd`` (the interpreter running the tests) and return its standard output."""
    env = dict(os.environ, MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "bumphunt", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"bumphunt {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def _write_yaml(path: Path, content: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def scan_result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The chain through the command line; returns the scan result."""
    import scans

    work = tmp_path_factory.mktemp("belle2_2020_scale")
    _write_yaml(work / "toymc.yaml", {"signal": {"masses": SIGNAL_MASSES, "n_per_mass": N_SIGNAL}, "backgrounds": BACKGROUNDS,
                                      "samples": ["signal", "backgrounds", "data"]})
    _bumphunt(["generate", "--out", "toymc", "--lumi", str(LUMI_FB), "--seed", str(SEED), "--config", "toymc.yaml"], work)
    _bumphunt(["preselect", "toymc/*.root", "--out", "presel"], work)
    _bumphunt(["kinfit", *sorted(str(p.relative_to(work)) for p in (work / "presel").glob("*_3g.root")), "--out", "fitted"], work)
    signal = sorted(str(p.relative_to(work)) for p in (work / "fitted").glob("signal_m*_3g_kinfit.root"))
    assert len(signal) == len(SIGNAL_MASSES)
    _write_yaml(work / "selector.yaml", {
        "inputs": [*signal, *(f"fitted/{b}_3g_kinfit.root" for b in BACKGROUND_SAMPLES)],
        "heldout": 5, "lumi_fb": LUMI_FB, "seed": SEED})
    _bumphunt(["selector", "train", "selector.yaml", "--out", "selector"], work)
    working_point = json.loads((work / "selector" / "model" / "metadata.json").read_text())["working_point"]["threshold"]
    _bumphunt(["selector", "apply", "selector/model", "fitted/data_3g_kinfit.root", "--out", "data_candidates.npz"], work)
    _bumphunt(["signal-model", "build", *(x for s in signal for x in ("--signal", s)), "--selection", "selector/model",
               "--out", "signal_model.json"], work)
    _write_yaml(work / "scan.yaml", {
        "inputs": {"files": ["data_candidates.npz"], "branch": "mgg",
                   "selection": {"branch": "punzi_net", "working_point": float(working_point)}},
        "signal_model": "signal_model.json", "luminosity_fb": LUMI_FB,
        "mass": {"min": 0.2, "max": 9.6, "step": 0.05}, "lee": {"toys": 0}})
    _bumphunt(["scan", "scan.yaml", "--out", "scan", "--no-plots"], work)
    return scans.load_result(work / "scan" / "scan_result.json")


def _expected_at(result: dict, mass: float) -> tuple[float, float, float] | str:
    """Expected median and -1/+1 sigma limits on g_agg (GeV^-1) at ``mass``, log-interpolated between fitted points.

    Returns the reason instead when ``mass`` lies outside the scan or next to a vetoed or failed point.
    """
    points = sorted(result["points"], key=lambda p: p["mass"])
    masses = np.array([p["mass"] for p in points])
    if not masses[0] - 1e-9 <= mass <= masses[-1] + 1e-9:
        return f"outside the scan [{masses[0]:g}, {masses[-1]:g}] GeV"
    k = int(np.searchsorted(masses, mass - 1e-9))
    near = [points[k]] if abs(masses[k] - mass) < 1e-9 else [points[k - 1], points[k]]
    bad = [p for p in near if p["vetoed"] or not p["converged"]]
    if bad:
        return f"point {bad[0]['mass']:g} GeV {'vetoed' if bad[0]['vetoed'] else 'not fitted'}: {bad[0].get('reason')}"
    x = [p["mass"] for p in near]
    band = [float(np.exp(np.interp(mass, x, [np.log(p["ul_g_gev_exp"][i]) for p in near]))) for i in (2, 1, 3)]
    return band[0], band[1], band[2]


def test_expected_limit_within_factor_two_of_belle2_2020(scan_result: dict) -> None:
    from signal_models import reference_limits

    ref = reference_limits.load("belle2_2020")
    rows, failures, skipped = [], [], []
    for mass in (*CHECK_MASSES, *REPORT_ONLY):
        j = int(np.argmin(np.abs(ref.masses - mass)))
        published, at = float(ref.couplings[j]), float(ref.masses[j])
        exp = _expected_at(scan_result, mass)
        if isinstance(exp, str):
            skipped.append(f"{mass:g} GeV: {exp}")
            continue
        ratio = exp[0] / published
        rows.append(f"| {mass:g} | {exp[0]:.3g} | [{exp[1]:.3g}, {exp[2]:.3g}] | {published:.3g} (at {at:g}) | {ratio:.2f} |")
        if mass in CHECK_MASSES and not 0.5 <= ratio <= 2.0:
            failures.append(f"{mass:g} GeV: ratio {ratio:.2f}")
    table = "\n".join(["| m_a [GeV] | expected median g [GeV^-1] | -1/+1 sigma | published 2020 | ratio |",
                       "|---:|---:|---:|---:|---:|", *rows])
    notes = "\n".join([*(f"skipped {s}" for s in skipped), *(f"{m:g} GeV: {why}" for m, why in REPORT_ONLY.items())])
    print(f"\n{table}\n{notes}")
    assert rows, f"no mass of the comparison lies in the scan: {notes}"
    assert not failures, f"expected median g_agg limit not within a factor 2 of the published 2020 limit: {failures}\n{table}"
