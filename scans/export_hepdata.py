"""A HEPData submission of a scan result, written with ``hepdata_lib`` and checked with ``hepdata-validator``.

``export_hepdata(result, out_dir)`` writes ``submission.yaml`` and one data
file per table, all versus the ALP mass m_a (GeV): upper limits (observed;
expected median with +-1 and +-2 s.d. bands) on N_sig, on sigma(e+e- -> gamma a)
x B(a -> gamma gamma) (pb) and on g_agg (GeV^-1); the signal efficiency; the
local significance and p0; the expected significance of a blind scan's
reference signal; the mass resolution of the recorded signal model (left out,
with the reason in the comment, when it cannot be loaded). Vetoed and failed
points are left out and named in each description. A blind result gives
expected quantities only (every description says so); in ``windows`` mode the
blinded points' observed values are ``-``. docs/reference/hepdata.md lists the tables.
"""

from __future__ import annotations

import logging
import math
import tarfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signal_models._common.defaults import DEFAULT_CL
from signal_models._common.version import __version__

from .errors import ScanError, ScanInputError

logger = logging.getLogger(__name__)

__all__ = ["export_hepdata", "validate_submission", "blinding_state", "BlindingState", "HEPDataValidationError",
           "REACTIONS", "SIGNIFICANT_DIGITS"]

#: HEPData reactions of the search
REACTIONS = ("E+ E- --> GAMMA A", "A --> GAMMA GAMMA")
_PHRASES = ("Axion-like particle", "ALP", "Diphoton resonance", "Bump hunt", "Electron-positron collisions")
#: significant digits of the exported numbers (masses get one more)
SIGNIFICANT_DIGITS = 5
_EXP_KEYS = ("ul_nsig_exp", "ul_xsec_pb_exp", "ul_g_gev_exp")
_OBS_KEYS = ("ul_nsig_obs", "ul_xsec_pb_obs", "ul_g_gev_obs", "z_local")
#: what a table shows where a point has no (or no visible) value
_MISSING = "-"
#: (table name, result key stem, symbol, units, observables, phrases, what the limit is on)
_LIMITS = (
    ("Upper limits on N_sig", "ul_nsig", "$N_{\\mathrm{sig}}$", "events", ("UL", "N"), ("Upper limit", "Signal yield"),
     "the number of signal events N_sig (all datasets together for a combined scan)"),
    ("Upper limits on the cross-section", "ul_xsec_pb", "$\\sigma(e^+e^- \\to \\gamma a) \\times B(a \\to \\gamma\\gamma)$", "pb",
     ("SIG", "UL"), ("Upper limit", "Cross Section"),
     "sigma(e+e- -> gamma a) x B(a -> gamma gamma): the signal yield per efficiency x luminosity, whose uncertainty the limit includes"),
    ("Upper limits on g_agg", "ul_g_gev", "$g_{a\\gamma\\gamma}$", "GeV$^{-1}$", ("UL", "COUPLING"), ("Upper limit", "Coupling"),
     "the ALP-photon coupling g_agg, from the cross-section limit with the Born cross-section alpha g^2/24 (1 - m_a^2/s)^3 "
     "and B(a -> gamma gamma) = 1"),
)


class HEPDataValidationError(ScanError, RuntimeError):
    """The written submission does not pass ``hepdata-validator`` (the messages name the files)."""


@contextmanager
def _validator_warnings_ignored() -> Iterator[None]:
    """Ignore the deprecations hepdata-validator triggers in jsonschema (its ``RefResolver`` use) and its unclosed files."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"jsonschema\.", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=ResourceWarning, module=r"hepdata_validator")
        yield


@dataclass(frozen=True)
class BlindingState:
    """What a scan result says about blinding: ``mode`` (none, blind, windows), ``unblinded`` (``--unblind``), ``windows`` (GeV)."""

    mode: str
    unblinded: bool
    windows: tuple[tuple[float, float], ...] = ()

    @property
    def fully_blind(self) -> bool:
        """No observed number may be shown."""
        return self.mode == "blind" and not self.unblinded

    def point_blind(self, point: Mapping[str, Any]) -> bool:
        """Whether the observed numbers of ``point`` may not be shown."""
        if self.fully_blind or point.get("blinded") is True:
            return True
        if self.mode != "windows" or self.unblinded:
            return False
        m = float(point["mass"])
        return "ul_nsig_obs" not in point or any(lo <= m <= hi for lo, hi in self.windows)


def blinding_state(result: Mapping[str, Any]) -> BlindingState:
    """The blinding state of a scan result: its ``blinding`` record, else the configuration's section (then blind unless mode none)."""
    rec = result.get("blinding")
    if not isinstance(rec, Mapping):
        section = (result.get("config") or {}).get("blinding")
        rec = {"mode": section.get("mode", "none"), "unblinded": False} if isinstance(section, Mapping) else {"mode": "none"}
    mode = str(rec.get("mode", "none"))
    windows = tuple((float(lo), float(hi)) for lo, hi in (rec.get("windows") or ()))
    return BlindingState(mode=mode, unblinded=bool(rec.get("unblinded", mode == "none")), windows=windows)


def _needs(result: Mapping[str, Any], what: str) -> ScanInputError:
    v = result.get("bumphunt_version")
    who = f"a scan result of bumphunt {v}" if v else "a scan result of an unknown bumphunt version (no 'bumphunt_version')"
    return ScanInputError(f"{who} (this is bumphunt {__version__}): {what}, which the HEPData export needs; re-run the scan with this version")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class _Selection:
    """The exported points (and which are blind), the vetoed masses and the failed ones with their reasons (GeV)."""

    points: tuple[Mapping[str, Any], ...]
    blind: tuple[bool, ...]
    vetoed: tuple[float, ...]
    failed: tuple[tuple[float, str], ...]

    @property
    def all_blind(self) -> bool:
        return all(self.blind)


def _select(result: Mapping[str, Any], state: BlindingState) -> _Selection:
    """Check the result and pick the converged, non-vetoed points (the errors name the version and the missing key)."""
    if not isinstance(result, Mapping) or not isinstance(result.get("points"), list):
        raise ScanInputError("not a scan result: no list of 'points'")
    for key in ("luminosity_fb", "sqrt_s"):
        if not _finite(result.get(key)):
            raise _needs(result, f"no number {key!r}")
    points, blind, vetoed, failed = [], [], [], []
    for i, p in enumerate(result["points"]):
        if not isinstance(p, Mapping) or not _finite(p.get("mass")):
            raise ScanInputError(f"not a scan result: point {i} has no 'mass'")
        m = float(p["mass"])
        if p.get("vetoed", False):
            vetoed.append(m)
            continue
        if "converged" not in p:
            raise _needs(result, f"the point at m_a = {m:g} GeV has no 'converged'")
        if not p["converged"]:
            failed.append((m, str(p.get("reason", "fit did not converge"))))
            continue
        hidden = state.point_blind(p)
        needed = ("efficiency", *_EXP_KEYS) + (() if hidden else _OBS_KEYS)
        missing = [k for k in needed if k not in p]
        if missing:
            raise _needs(result, f"the point at m_a = {m:g} GeV has no {', '.join(repr(k) for k in missing)}")
        for k in needed:
            band = k in _EXP_KEYS
            if not (isinstance(p[k], list) and len(p[k]) == 5 and all(map(_finite, p[k])) if band else _finite(p[k])):
                what = "5 finite numbers (-2, -1, median, +1, +2 s.d.)" if band else "a finite number"
                raise ScanInputError(f"point at m_a = {m:g} GeV: {k!r} is {p[k]!r}, expected {what}")
        points.append(p)
        blind.append(hidden)
    if not points:
        raise ScanInputError("the scan result has no converged, non-vetoed point to export")
    return _Selection(tuple(points), tuple(blind), tuple(vetoed), tuple(failed))


def _datasets(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The datasets of a combined (several-dataset) result; empty for one dataset."""
    datasets = [d for d in result.get("datasets") or () if isinstance(d, Mapping)]
    return datasets if len(datasets) > 1 else []


def _lumi_text(d: Mapping[str, Any]) -> str:
    return f"{d.get('name')}: {float(d.get('luminosity_fb', float('nan'))):.6g} fb^-1"


def _masses_text(masses: Sequence[float]) -> str:
    return ", ".join(f"{m:g}" for m in masses) + " GeV"


def _context(result: Mapping[str, Any], sel: _Selection, state: BlindingState) -> str:
    """The sentences every table description ends with: data set, vetoes, failed fits, blinding."""
    text = f"sqrt(s) = {result['sqrt_s']:.6g} GeV, integrated luminosity {result['luminosity_fb']:.6g} fb^-1"
    if _datasets(result):
        text += " (combined fit of " + ", ".join(_lumi_text(d) for d in _datasets(result)) + ")"
    text += "."
    if sel.vetoed:
        ranges = [r for r in result.get("vetoed_ranges") or () if isinstance(r, Mapping)]
        where = "; ".join(f"{r['reason']}: {r['lo']:.4g}-{r['hi']:.4g} GeV" for r in ranges) or _masses_text(sel.vetoed)
        text += f" Vetoed mass ranges, left out ({len(sel.vetoed)} points): {where}."
    if sel.failed:
        text += f" Points whose fit did not converge, left out: {_masses_text([m for m, _ in sel.failed])}."
    if sel.all_blind:
        text += (f" BLINDED RESULT (blinding mode '{state.mode}', not unblinded): this table holds expected quantities only; "
                 "no observed number is exported.")
    elif any(sel.blind):
        blinded = [float(p["mass"]) for p, b in zip(sel.points, sel.blind) if b]
        ranges = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in state.windows)
        text += (f" Partly blinded result (mode '{state.mode}', blinded ranges {ranges} GeV): observed values are given as '-' "
                 f"at the {len(blinded)} blinded points ({_masses_text(blinded)}).")
    return text


def _number(x: float, digits: int = 6) -> float:
    return float(f"{float(x):.{digits}g}")


class _TableBuilder:
    """Builds ``hepdata_lib`` tables over the exported masses with the common keywords, qualifiers and description."""

    def __init__(self, result: Mapping[str, Any], sel: _Selection, context: str, location: str) -> None:
        import hepdata_lib

        self._lib = hepdata_lib
        self.result, self.sel, self.context, self.location = result, sel, context, location
        self.masses = [float(p["mass"]) for p in sel.points]

    def qualifiers(self, *, cl: float | None = None) -> list[tuple[str, Any, str]]:
        out: list[tuple[str, Any, str]] = [("SQRT(S)", _number(self.result["sqrt_s"]), "GeV"),
                                           ("LUMINOSITY", _number(self.result["luminosity_fb"]), "fb$^{-1}$")]
        return out + ([("CL", f"{100 * cl:g}%", "")] if cl is not None else [])

    def table(self, name: str, description: str, observables: Sequence[str], phrases: Sequence[str]) -> Any:
        t = self._lib.Table(name)
        t.description = f"{description} {self.context}"
        t.location = self.location
        t.keywords["cmenergies"] = [_number(self.result["sqrt_s"])]
        t.keywords["reactions"] = list(REACTIONS)
        t.keywords["observables"] = list(observables)
        t.keywords["phrases"] = [*_PHRASES, *phrases]
        m = self._lib.Variable("$m_{a}$", is_independent=True, is_binned=False, units="GeV", values=self.masses)
        m.digits = SIGNIFICANT_DIGITS + 1
        t.add_variable(m)
        return t

    def column(self, name: str, values: Sequence[Any], *, units: str = "", cl: float | None = None) -> Any:
        v = self._lib.Variable(name, is_independent=False, is_binned=False, units=units, values=list(values),
                               zero_uncertainties_warning=False)
        v.digits = SIGNIFICANT_DIGITS
        for q in self.qualifiers(cl=cl):
            v.add_qualifier(*q)
        return v

    def band(self, name: str, bands: Sequence[Sequence[float]], *, units: str, cl: float) -> Any:
        """Expected median with asymmetric errors '1 s.d.' and '2 s.d.' (band edges minus the median)."""
        v = self.column(name, [b[2] for b in bands], units=units, cl=cl)
        for label, lo, hi in (("1 s.d.", 1, 3), ("2 s.d.", 0, 4)):
            u = self._lib.Uncertainty(label, is_symmetric=False)
            u.values = [(b[lo] - b[2], b[hi] - b[2]) for b in bands]
            v.add_uncertainty(u)
        return v


def _limit_tables(b: _TableBuilder, cl: float, method: str) -> list[Any]:
    tables = []
    sel = b.sel
    shown = "expected median" if sel.all_blind else "observed, and expected median"
    for name, key, symbol, units, observables, phrases, meaning in _LIMITS:
        t = b.table(name, f"{100 * cl:g}% CL upper limits ({method}) on {meaning}, versus the ALP mass: {shown} with its +-1 and "
                    "+-2 s.d. bands.", observables, phrases)
        if not sel.all_blind:
            obs = [_MISSING if hidden else p[f"{key}_obs"] for p, hidden in zip(sel.points, sel.blind)]
            t.add_variable(b.column(f"Observed upper limit on {symbol}", obs, units=units, cl=cl))
        t.add_variable(b.band(f"Expected upper limit on {symbol}", [p[f"{key}_exp"] for p in sel.points], units=units, cl=cl))
        tables.append(t)
    return tables


def _efficiency_table(b: _TableBuilder) -> Any:
    datasets = _datasets(b.result)
    what = ("the luminosity-weighted total over the datasets (signal model x trigger efficiency), and each dataset's "
            "signal-model efficiency" if datasets else "signal candidates described by the signal shape per generated event")
    t = b.table("Signal efficiency", f"Signal efficiency versus the ALP mass: {what}; the efficiency the limits are normalised with.",
                ("EFF",), ("Efficiency",))
    t.add_variable(b.column("Signal efficiency", [p["efficiency"] for p in b.sel.points]))
    for name in [str(d.get("name")) for d in datasets]:
        values = [((p.get("channels") or {}).get(name) or {}).get("efficiency", _MISSING) for p in b.sel.points]
        if any(_finite(v) for v in values):
            t.add_variable(b.column(f"Signal efficiency, dataset {name}", values))
    return t


def _significance_tables(b: _TableBuilder) -> list[Any]:
    tables = []
    sel = b.sel
    if not sel.all_blind:
        t = b.table("Local significance", "Observed local significance Z_local = sqrt(q0), signed (negative for a deficit), and "
                    "the local p-value p0 = 1 - Phi(Z_local) of the background-only hypothesis, versus the ALP mass.",
                    ("SIGNIFICANCE", "P0"), ("Significance",))
        z = [_MISSING if hidden else float(p["z_local"]) for p, hidden in zip(sel.points, sel.blind)]
        t.add_variable(b.column("Local significance $Z_{\\mathrm{local}}$", z))
        t.add_variable(b.column("Local $p_{0}$", [v if v == _MISSING else 0.5 * math.erfc(v / math.sqrt(2.0)) for v in z]))
        tables.append(t)
    ref = ((b.result.get("config") or {}).get("blinding") or {}).get("reference_xsec_pb")
    zref = [p.get("z_expected_reference", _MISSING) for p in sel.points]
    if any(_finite(v) for v in zref):
        t = b.table("Expected significance of the reference signal",
                    f"Median expected local significance of a reference signal of {ref} pb (an expected quantity), at the "
                    "blinded points ('-' elsewhere).", ("SIGNIFICANCE",), ("Significance",))
        v = b.column("Expected $Z_{\\mathrm{local}}$ of the reference signal", zref)
        v.add_qualifier("REFERENCE CROSS SECTION", ref if _finite(ref) else _MISSING, "pb")
        t.add_variable(v)
        tables.append(t)
    return tables


def _recorded_models(result: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Signal models the result records (label -> model; label '' for a one-dataset scan), and why others are missing."""
    from .checkpoint import sha256_file
    from .run import load_signal_model

    source = result.get("signal_model")
    sources = dict(source["datasets"]) if isinstance(source, Mapping) and isinstance(source.get("datasets"), Mapping) else {"": source}
    models: dict[str, Any] = {}
    why: list[str] = []
    for label, src in sources.items():
        who = f"dataset {label}: " if label else ""
        path = Path(src["path"]) if isinstance(src, Mapping) and src.get("path") else None
        if not isinstance(src, Mapping):
            why.append(f"{who}the result records no signal model")
        elif src.get("analytic") is not None:
            models[label] = load_signal_model(None, src["analytic"])
        elif path is None:
            why.append(f"{who}the signal model was handed over in memory ({src.get('object', 'unknown')}) and is not recorded")
        elif not path.is_file():
            why.append(f"{who}the recorded signal model {path} is not found")
        elif src.get("sha256") and sha256_file(path) != src["sha256"]:
            why.append(f"{who}the signal model {path} changed since the scan (sha256 differs)")
        else:
            models[label] = load_signal_model(path)
    return models, why


def _resolution_table(b: _TableBuilder, models: Mapping[str, Any]) -> Any | None:
    n_sigma = (b.result.get("config") or {}).get("window_n_sigma")
    window = f" The fit window at each mass is m_a +- {n_sigma:g} sigma(m_a)." if _finite(n_sigma) else ""
    t = b.table("Mass resolution", "Diphoton mass resolution versus the ALP mass: the core width sigma(m_a) of the double-sided "
                f"Crystal Ball signal shape of the signal model ('-' outside its mass range).{window}", ("RESOLUTION",), ("Resolution",))
    filled = False
    for label, model in models.items():
        values: list[Any] = []
        for m in b.masses:
            try:
                values.append(float(model.shape(m).sigma))
            except ValueError:  # outside the model's mass range
                values.append(_MISSING)
        filled |= any(_finite(v) for v in values)
        t.add_variable(b.column("$\\sigma_{m}$" + (f", dataset {label}" if label else ""), values, units="GeV"))
    return t if filled else None


def _comment(result: Mapping[str, Any], sel: _Selection, state: BlindingState, cl: float, method: str, notes: Sequence[str]) -> str:
    """The analysis description of the submission."""
    masses = [float(p["mass"]) for p in result["points"]]
    text = (f"Search for a narrow resonance a in e+e- -> gamma a, a -> gamma gamma, as a bump in the diphoton mass, at "
            f"sqrt(s) = {result['sqrt_s']:.6g} GeV with an integrated luminosity of {result['luminosity_fb']:.6g} fb^-1. "
            f"{100 * cl:g}% CL upper limits ({method}) on the signal yield, on sigma(e+e- -> gamma a) x B(a -> gamma gamma) (pb) "
            f"and on the coupling g_agg (GeV^-1) versus the ALP mass m_a from {min(masses):g} to {max(masses):g} GeV "
            f"({len(sel.points)} points exported, {len(sel.vetoed)} vetoed, {len(sel.failed)} not converged).")
    if _datasets(result):
        text += " Datasets combined: " + ", ".join(_lumi_text(d) for d in _datasets(result)) + "."
    if sel.failed:
        text += " Fits that did not converge: " + "; ".join(f"m_a = {m:g} GeV ({reason})" for m, reason in sel.failed) + "."
    g = result.get("global") or {}
    if sel.all_blind:
        text += (f" Blinding: mode '{state.mode}', not unblinded; expected quantities only, no observed number is exported; "
                 "no local-significance table.")
    else:
        text += f" Blinding: mode '{state.mode}'" + (", unblinded." if state.unblinded and state.mode != "none" else ".")
        if all(_finite(g.get(k)) for k in ("max_z_local", "mass_at_max", "z_global")):
            text += (f" Largest local excess Z = {g['max_z_local']:.2f} at m_a = {g['mass_at_max']:.4g} GeV, global "
                     f"Z = {g['z_global']:.2f} ({g.get('method', 'method not recorded')}).")
    bm = result.get("background_model") or ((result.get("config") or {}).get("background_model") or {}).get("method")
    if bm:
        text += f" Background model: {bm}."
    hashes = result.get("hashes") or {}
    if hashes:
        text += " Scan hashes (sha256): " + ", ".join(f"{k} {str(v)[:16]}" for k, v in hashes.items()) + "."
    text += f" Scan made with bumphunt {result.get('bumphunt_version', 'of unknown version')}; exported by bumphunt {__version__}."
    return " ".join([text, *notes])


def _prepare(out: Path, archive: Path | None) -> None:
    """Create ``out``, or empty it if it holds a previous export (YAML files only); the archive must lie outside it."""
    if archive is not None and out.resolve() in archive.resolve().parents:
        raise ScanInputError(f"{archive}: the archive must be outside the submission directory {out}")
    if out.exists() and not out.is_dir():
        raise ScanInputError(f"{out}: exists and is not a directory")
    old = list(out.iterdir()) if out.exists() else []
    if old:
        if not (out / "submission.yaml").is_file() or any(not p.is_file() or p.suffix != ".yaml" for p in old):
            raise ScanInputError(f"{out}: not empty and not a previous HEPData export; give a new or empty directory")
        for p in old:
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def export_hepdata(
    result: Mapping[str, Any],
    out_dir: str | Path,
    *,
    signal_model: Any = None,
    location: str = "bumphunt scan result",
    validate: bool = True,
    archive: str | Path | None = None,
) -> Path:
    """Write a HEPData submission of a scan result.

    Parameters
    ----------
    result : mapping
        Scan result (``scans.scan``, ``scans.load_result``), one dataset or combined.
    out_dir : path
        Directory for ``submission.yaml`` and the data files; created, or
        emptied if it holds a previous export (any other content is refused).
    signal_model : SignalModel-like or mapping, optional
        Model(s) for the resolution table (dataset name -> model for a combined
        scan); default: the models the result records.
    location : str
        Where the tables appear in the publication (e.g. "Figure 3").
    validate : bool
        Check the written files with ``hepdata-validator``.
    archive : path, optional
        Also write a ``.tar.gz`` of the submission there (outside ``out_dir``), for upload.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ScanInputError
        Not a scan result, or a result lacking a needed key (the message names
        the key and the version that wrote the result).
    HEPDataValidationError
        The validator rejects the written files.
    """
    state = blinding_state(result) if isinstance(result, Mapping) else BlindingState("none", True)
    sel = _select(result, state)
    out, archive = Path(out_dir), (Path(archive) if archive is not None else None)
    cfg = result.get("config") or {}
    cl = float(cfg.get("cl", DEFAULT_CL))
    recorded_method = (cfg.get("limits") or {}).get("method") if isinstance(cfg.get("limits"), Mapping) else None
    method = "CLs, q~_mu" + (f", {recorded_method}" if recorded_method else "")
    if signal_model is None:
        models, why = _recorded_models(result)
    else:
        models, why = (dict(signal_model) if isinstance(signal_model, Mapping) else {"": signal_model}), []
    with _validator_warnings_ignored():
        import hepdata_lib

        b = _TableBuilder(result, sel, _context(result, sel, state), location)
        tables = [*_limit_tables(b, cl, method), _efficiency_table(b), *_significance_tables(b)]
        resolution = _resolution_table(b, models) if models else None
    notes = [f"Mass resolution: {w}." for w in why]
    if resolution is None:
        notes.append("No mass-resolution table" + ("." if why else ": the signal model covers none of the exported masses."))
        logger.warning("HEPData export without a mass-resolution table: %s", "; ".join(why) or "no mass in the signal model's range")
    else:
        tables.append(resolution)
    import yaml

    submission = hepdata_lib.Submission()
    submission.comment = _comment(result, sel, state, cl, method, notes)
    header = {"comment": submission.comment, "data_license": submission.get_license(),
              "additional_resources": submission.additional_resources}
    _prepare(out, archive)
    # the header is written here, not by Submission.create_files, which also writes an archive into the working directory
    (out / "submission.yaml").write_text(yaml.safe_dump(header, explicit_start=True, default_flow_style=False, sort_keys=False))
    for t in tables:
        t.write_output(str(out))
    if validate:
        errors = validate_submission(out)
        if errors:
            raise HEPDataValidationError(f"{out}: hepdata-validator rejects the submission: {'; '.join(errors)}")
    if archive is not None:
        with tarfile.open(archive, "w:gz") as tar:
            for p in sorted(out.iterdir()):
                tar.add(p, arcname=p.name)
    logger.info("wrote HEPData submission %s (%d tables)", out, len(tables))
    return out


def validate_submission(directory: str | Path) -> list[str]:
    """Check a HEPData submission directory with ``hepdata-validator``.

    Returns
    -------
    list of str
        The validator's messages (``file: message``); empty when the submission is valid.
    """
    with _validator_warnings_ignored():
        from hepdata_validator.full_submission_validator import FullSubmissionValidator

        validator = FullSubmissionValidator()
        valid = validator.validate(directory=str(directory))
        messages = [f"{Path(f).name}: {' '.join(str(m.message).split())}" for f, ms in validator.get_messages().items() for m in ms]
    return [] if valid else (messages or ["invalid, without a message"])
