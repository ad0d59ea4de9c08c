"""``bumphunt project CONFIG --out DIR``: expected limits for a luminosity without data (``scans.projection``).

The configuration (``PROJECT_SCHEMA``, validated with errors naming the bad
key) gives the collider preset (``bumphunt.colliders``: sqrt(s), nominal
luminosity, coupling model and photon resolution, each of which the
configuration may override), the mass grid, the signal (a signal-model file,
or a resolution function and an efficiency) and the background model (a
toy-MC sample of candidate masses with its luminosity, an exponential, or a
table of the density). ``scans`` takes sqrt(s) and the resolution function
from here (it cannot import the presets). ``scans`` and matplotlib are
imported inside the command.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..errors import BumphuntError, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["project", "PROJECT_SCHEMA", "load_project_config"]


def _num(description: str, default: Any = None, **kw: Any) -> dict[str, Any]:
    return {"type": ["number", "null"] if default is None else "number", "default": default, "description": description, **kw}


_TABLE = {"type": ["array", "null"], "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}, "default": None}

#: JSON schema of a projection configuration (units: GeV, fb^-1, pb)
PROJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["background"],
    "properties": {
        "collider": {"type": "string", "default": "belle2",
                     "description": "Collider preset (bumphunt.colliders: belle2, babar, zpole): sqrt(s), and the defaults of "
                                    "luminosity_fb, coupling and the collider resolution."},
        "sqrt_s": _num("CM energy in GeV; null: the preset's.", exclusiveMinimum=0),
        "luminosity_fb": _num("Integrated luminosity of the projection, fb^-1; null: the preset's nominal luminosity.", exclusiveMinimum=0),
        "coupling": {"enum": ["photon", "hypercharge", None], "default": None,
                     "description": "Coupling model of the coupling limits: photon (g_agg) or hypercharge (g_aBB); null: the preset's."},
        "cl": _num("Confidence level of the CLs limits.", 0.95, exclusiveMinimum=0, exclusiveMaximum=1),
        "isr": {"type": "boolean", "default": False,
                "description": "Convert cross-sections to couplings with the initial-state-radiation factor (signal_models.alp.isr_correction_factor)."},
        "isr_x_max": _num("Largest radiated energy fraction the selection keeps (ISR factor); null: the kinematic limit.",
                          exclusiveMinimum=0, maximum=1),
        "mass": {
            "type": "object", "additionalProperties": False, "default": {}, "description": "The ALP masses, GeV.",
            "properties": {
                "min": _num("First mass, GeV.", 0.2, exclusiveMinimum=0),
                "max": _num("Last mass, GeV (below sqrt(s)).", 9.6, exclusiveMinimum=0),
                "spacing": {"enum": ["linear", "log"], "default": "linear", "description": "linear: fixed step; log: log-spaced points."},
                "step": _num("Step of linear spacing, GeV.", 0.05, exclusiveMinimum=0),
                "points": {"type": "integer", "minimum": 2, "default": 50, "description": "Number of masses of log spacing."},
            },
        },
        "signal": {
            "type": "object", "additionalProperties": False, "default": {}, "description": "The signal peak and its efficiency.",
            "properties": {
                "model": {"type": ["string", "null"], "default": None,
                          "description": "SignalModel JSON file (relative to the configuration); replaces resolution and efficiency."},
                "resolution": {
                    "type": "object", "additionalProperties": False, "default": {},
                    "description": "sigma(m) of the diphoton peak when no model file is given.",
                    "properties": {
                        "kind": {"enum": ["collider", "polynomial", "table"], "default": "collider",
                                 "description": "collider: from the preset's photon resolution at the symmetric decay, no kinematic fit "
                                                "(scans.projection.diphoton_mass_resolution); polynomial: sum c_i m^i; table: linear "
                                                "interpolation of [m, sigma] rows (e.g. measured on signal MC after the kinematic fit)."},
                        "coeffs": {"type": "array", "items": {"type": "number"}, "minItems": 1, "default": [0.004, 0.009],
                                   "description": "polynomial: coefficients in GeV (constant first)."},
                        "table": {**_TABLE, "description": "table: rows [m GeV, sigma GeV]."},
                    },
                },
                "efficiency": _num("Signal efficiency (constant) when no table is given.", 0.3, exclusiveMinimum=0, maximum=1),
                "efficiency_table": {**_TABLE, "description": "Rows [m GeV, efficiency], linear interpolation (no extrapolation)."},
                "efficiency_rel_unc": _num("Relative uncertainty of efficiency x luminosity in the cross-section limits.", 0.0, minimum=0),
            },
        },
        "background": {
            "type": "object", "additionalProperties": False,
            "description": "The background density in M_gg (events/GeV per fb^-1).",
            "properties": {
                "kind": {"enum": ["sample", "exponential", "table"], "default": "sample",
                         "description": "sample: a toy-MC sample of candidate masses; exponential: norm exp(-slope m); table: [m, density] rows "
                                        "(log-linear interpolation)."},
                "files": {"type": "array", "items": {"type": "string"}, "default": [],
                          "description": "sample: candidate files (.npy, .npz, .csv, .root; relative to the configuration)."},
                "branch": {"type": "string", "default": "mgg", "description": "sample: M_gg column/branch, GeV."},
                "tree": {"type": "string", "default": "candidates", "description": "sample: ROOT tree name."},
                "luminosity_fb": _num("sample: luminosity the sample corresponds to, fb^-1.", exclusiveMinimum=0),
                "events_per_knot": {"type": "integer", "minimum": 10, "default": 400,
                                    "description": "sample: events between knots of the smoothed cumulative distribution."},
                "norm": _num("exponential: density at m = 0, events/GeV per fb^-1.", exclusiveMinimum=0),
                "slope": _num("exponential: slope, GeV^-1.", 0.0),
                "table": {**_TABLE, "description": "table: rows [m GeV, density events/GeV per fb^-1]."},
            },
        },
        "data_range": {"type": ["array", "null"], "items": {"type": "number"}, "minItems": 2, "maxItems": 2, "default": None,
                       "description": "[lo, hi] GeV where the background is defined (default: the sample's or the table's range)."},
        "window_n_sigma": _num("Fit window m +- n sigma(m), as in a scan.", 20.0, exclusiveMinimum=0),
        "bkg_order": {"type": "integer", "minimum": 0, "maximum": 8, "default": 3, "description": "Background polynomial order of the fit."},
        "counting": {
            "type": "object", "additionalProperties": False, "default": {},
            "description": "The counting criterion S > z sqrt(B) shown beside the CLs limits.",
            "properties": {"n_sigma": _num("Counting window mu +- n sigma.", 2.0, exclusiveMinimum=0),
                           "z": _num("Required S / sqrt(B).", 2.0, exclusiveMinimum=0)},
        },
        "references": {"type": "array", "items": {"type": "string"}, "default": [],
                       "description": "Bundled published limits overlaid on the coupling plot (signal_models.reference_limits)."},
    },
}


def load_project_config(path: str | Path) -> dict[str, Any]:
    """Read, complete and validate a projection configuration (``ConfigError`` naming the file and key)."""
    from signal_models._common.config import load_config

    cfg = load_config(path, PROJECT_SCHEMA)
    src = str(path)
    preset = _collider(cfg, src)
    for key, value in (("sqrt_s", preset.sqrt_s), ("luminosity_fb", preset.luminosity_fb), ("coupling", preset.coupling)):
        if cfg[key] is None:
            cfg[key] = value
    bkg = cfg["background"]
    if bkg["kind"] == "sample" and (not bkg["files"] or bkg["luminosity_fb"] is None):
        raise ConfigError(f"{src}: background: kind sample needs files and luminosity_fb (the sample's luminosity)")
    if bkg["kind"] == "exponential" and (bkg["norm"] is None or cfg["data_range"] is None):
        raise ConfigError(f"{src}: background.norm: kind exponential needs norm (and data_range)")
    tables = {"signal.efficiency_table": cfg["signal"]["efficiency_table"]}
    if bkg["kind"] == "table":
        tables["background.table"] = bkg["table"]
    if cfg["signal"]["resolution"]["kind"] == "table":
        tables["signal.resolution.table"] = cfg["signal"]["resolution"]["table"]
    for where, table in tables.items():
        if table is None and where == "signal.efficiency_table":
            continue
        if table is None or len(table) < 2:
            raise ConfigError(f"{src}: {where}: give at least two rows [m, value]")
        if not (np.all(np.diff([r[0] for r in table]) > 0) and all(r[1] > 0 for r in table)):
            raise ConfigError(f"{src}: {where}: masses must increase and values be > 0")
    m = cfg["mass"]
    if not m["max"] >= m["min"]:
        raise ConfigError(f"{src}: mass.max: {m['max']} is below mass.min = {m['min']}")
    if cfg["data_range"] is not None and not cfg["data_range"][1] > cfg["data_range"][0]:
        raise ConfigError(f"{src}: data_range: expected [lo, hi] with hi > lo, got {cfg['data_range']}")
    if m["max"] >= cfg["sqrt_s"]:
        raise ConfigError(f"{src}: mass.max: m_a = {m['max']:g} GeV is at or above sqrt(s) = {cfg['sqrt_s']:g} GeV")
    return cfg


def _collider(cfg: Mapping[str, Any], src: str) -> Any:
    from ..colliders import collider

    try:
        return collider(cfg["collider"])
    except ConfigError as exc:
        raise ConfigError(f"{src}: collider: {exc}") from None


def _masses(cfg: Mapping[str, Any]) -> np.ndarray:
    m = cfg["mass"]
    if m["spacing"] == "log":
        return np.geomspace(m["min"], m["max"], m["points"])
    n = int(math.floor((m["max"] - m["min"]) / m["step"] + 1e-9)) + 1
    return np.round(m["min"] + m["step"] * np.arange(n), 9)


def _interp(table: list[list[float]], *, log: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    x = np.array([r[0] for r in table], dtype=float)
    y = np.array([r[1] for r in table], dtype=float)

    def f(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=float)
        inside = (m >= x[0]) & (m <= x[-1])
        v = np.exp(np.interp(m, x, np.log(y))) if log else np.interp(m, x, y)
        return np.where(inside, v, 0.0 if log else np.nan)

    return f


def _signal(cfg: Mapping[str, Any], base: Path) -> Any:
    from scans.inputs import load_signal_model, resolve_path
    from scans.projection import PeakSignal, diphoton_mass_resolution

    from ..events.detector import REGION_BARREL

    sig = cfg["signal"]
    if sig["model"] is not None:
        return load_signal_model(resolve_path(sig["model"], base))
    res = sig["resolution"]
    sqrt_s = float(cfg["sqrt_s"])
    if res["kind"] == "polynomial":
        coeffs = tuple(res["coeffs"])

        def resolution(m: np.ndarray) -> np.ndarray:
            return np.polynomial.polynomial.polyval(m, coeffs)
    elif res["kind"] == "collider":
        photon = _collider(cfg, "config").resolution

        def resolution(m: np.ndarray) -> np.ndarray:  # the barrel resolution of the preset's calorimeter
            return diphoton_mass_resolution(m, sqrt_s, lambda e: photon.sigmas(e, np.full(np.shape(e), REGION_BARREL)))
    else:
        resolution = _interp(res["table"])
    eff: float | Callable[[np.ndarray], np.ndarray] = sig["efficiency"] if sig["efficiency_table"] is None else _interp(sig["efficiency_table"])
    return PeakSignal(resolution, eff, efficiency_rel_unc=sig["efficiency_rel_unc"])


def _background(cfg: Mapping[str, Any], base: Path) -> tuple[Callable[[np.ndarray], np.ndarray], tuple[float, float]]:
    from scans.inputs import read_candidates, resolve_path
    from scans.projection import background_from_sample

    bkg = cfg["background"]
    rng = tuple(cfg["data_range"]) if cfg["data_range"] is not None else None
    if bkg["kind"] == "sample":
        mgg = read_candidates([resolve_path(f, base) for f in bkg["files"]], tree=bkg["tree"], branch=bkg["branch"])
        density = background_from_sample(mgg, luminosity_fb=bkg["luminosity_fb"], data_range=rng, events_per_knot=bkg["events_per_knot"])
        return density, density.data_range
    if bkg["kind"] == "exponential":
        norm, slope = float(bkg["norm"]), float(bkg["slope"])
        return (lambda m: norm * np.exp(-slope * np.asarray(m, dtype=float))), rng  # type: ignore[return-value]
    table = bkg["table"]
    return _interp(table, log=True), rng or (float(table[0][0]), float(table[-1][0]))


def _write_csv(path: Path, proj: Any) -> None:
    bands = ("m2", "m1", "med", "p1", "p2")
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["mass", "sigma", "window_lo", "window_hi", "efficiency", "background_events", "converged",
                    *[f"ul_{q}_exp_{b}" for q in ("nsig", "xsec_pb", "g_gev") for b in bands],
                    "counting_background", "counting_nsig", "counting_xsec_pb", "counting_g_gev"])
        for i, m in enumerate(proj.masses):
            w.writerow([f"{m:.9g}", f"{proj.sigmas[i]:.6g}", *(f"{v:.6g}" for v in proj.windows[i]), f"{proj.efficiency[i]:.6g}",
                        f"{proj.background_events[i]:.6g}", int(proj.converged[i]),
                        *(f"{v:.6g}" for arr in (proj.ul_nsig_exp, proj.ul_xsec_pb_exp, proj.ul_g_gev_exp) for v in arr[i]),
                        *(f"{v:.6g}" for v in (proj.counting_background[i], proj.counting_nsig[i], proj.counting_xsec_pb[i],
                                               proj.counting_g_gev[i]))])


@click.command("project")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory for projection.json, projection.csv and the plots.")
def project(config: str, out_dir: str) -> None:
    """Expected 95% CL limits for a luminosity without data, from the Asimov data set of a background model.

    Writes the expected CLs limits on N_sig, the cross-section (pb) and the
    coupling of the configured model, and the reach of the counting criterion
    S > z sqrt(B) (default S > 2 sqrt(B) in +-2 sigma), as projection.json (a
    result that `bumphunt recast` and `bumphunt plot` read), projection.csv and
    plots of the coupling and the cross-section.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import scans
    from scans.checkpoint import atomic_write_json
    from scans.projection import plot_projection
    from scans.projection import project as run_projection
    from signal_models import reference_limits

    try:
        cfg = load_project_config(config)
        unknown = [r for r in cfg["references"] if r not in reference_limits.available()]
        if unknown:
            raise ConfigError(f"{config}: references: unknown reference limit {unknown[0]!r}; available: "
                              f"{', '.join(reference_limits.available())}")
        base = Path(config).resolve().parent
        sqrt_s = float(cfg["sqrt_s"])
        density, data_range = _background(cfg, base)
        proj = run_projection(_masses(cfg), density, luminosity_fb=cfg["luminosity_fb"], sqrt_s=sqrt_s, signal_model=_signal(cfg, base),
                              coupling=cfg["coupling"], data_range=data_range, window_n_sigma=cfg["window_n_sigma"], bkg_order=cfg["bkg_order"],
                              cl=cfg["cl"], counting_n_sigma=cfg["counting"]["n_sigma"], counting_z=cfg["counting"]["z"], isr=cfg["isr"],
                              isr_x_max=cfg["isr_x_max"])
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        doc = proj.to_result()
        doc["config"] = {"coupling": cfg["coupling"], "projection": doc["config"]["projection"], "project_config": cfg}
        atomic_write_json(out / "projection.json", doc, indent=1)
        _write_csv(out / "projection.csv", proj)
        for quantity, name in (("g", "projection_coupling.png"), ("xsec", "projection_xsec.png")):
            fig = plot_projection(proj, quantity=quantity, references=cfg["references"] if quantity == "g" else ())
            fig.savefig(out / name, dpi=110, bbox_inches="tight")
            plt.close(fig)
    except (scans.ScanError, BumphuntError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    ok = proj.converged
    click.echo(f"projection: {int(ok.sum())} of {ok.size} masses, {cfg['luminosity_fb']:g} fb^-1 at sqrt(s) = {sqrt_s:.6g} GeV, "
               f"{cfg['coupling']} coupling")
    if ok.any():
        j = int(np.nanargmin(np.where(ok, proj.ul_g_gev_exp[:, 2], np.nan)))
        click.echo(f"best expected limit: g < {proj.ul_g_gev_exp[j, 2]:.3g} GeV^-1 at m_a = {proj.masses[j]:.4g} GeV "
                   f"(counting S > {cfg['counting']['z']:g} sqrt(B): {proj.counting_g_gev[j]:.3g} GeV^-1)")
    for i in np.flatnonzero(~ok)[:3]:
        click.echo(f"no expected limit at m_a = {proj.masses[i]:.4g} GeV: {proj.reason[i]}")
    click.echo(f"written: {out / 'projection.json'}, projection.csv, projection_coupling.png, projection_xsec.png")
