"""A scan result as one self-contained HTML page (``bumphunt report RESULT --out DIR``).

``write_report(result, out_dir)`` writes ``out_dir/report.html``: every
figure is a PNG embedded as base64, the CSS is inline, nothing is fetched.
The page holds, in order: the bumphunt versions and the creation time, the
blinding state (a banner), a summary, the configuration (collapsible YAML),
the inputs with their sha256 (checked against the files) and the signal
model source, the datasets of a combined result, the cut flow where the
result records one (``provenance.event_chain``), the Brazil bands on N_sig
and on the cross-section, the coupling exclusion (with the Belle II 2020
limit for the photon coupling), p0 and the global significance, the fit of
the most significant window with the pulls and impacts of its nuisances
(``scans.report_fit``), the goodness-of-fit p-values (``gof_pvalue``), the
flagged points and the vetoed ranges.

A blind result (``scans.export_hepdata.blinding_state``) is reduced to its
expected quantities before anything is drawn or written (``expected_only``):
the page carries no observed number of a blind point, and for a fully blind
result no observed significance either. docs/reference/report.md describes the page.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from signal_models._common.version import __version__

from .errors import ScanInputError
from .export_hepdata import BlindingState, blinding_state
from .report_fit import SignificantWindow, significant_window
from .report_html import Markup, banner, esc, figure, key_values, number, page, paragraph, table
from .report_records import configuration_html, cut_flow_html, datasets_html, inputs_html

logger = logging.getLogger(__name__)

__all__ = ["write_report", "expected_only", "OBSERVED_POINT_KEYS", "REPORT_FILE"]

#: file name of the page in the output directory
REPORT_FILE = "report.html"
#: point keys that hold observed numbers (removed from blind points)
OBSERVED_POINT_KEYS = ("nsig", "nsig_err", "z_local", "ul_nsig_obs", "ul_xsec_pb_obs", "ul_g_gev_obs", "xsec_pb", "xsec_pb_err", "nuisances")
#: global keys a fully blind result may show
_BLIND_GLOBAL_KEYS = ("method", "blinded", "n_toys", "seed", "blinded_points_excluded")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check(result: Any) -> None:
    """Refuse what is not a scan result, naming the version that wrote it."""
    if not isinstance(result, Mapping) or not isinstance(result.get("points"), list):
        raise ScanInputError("not a scan result: no list of 'points'")
    v = result.get("bumphunt_version")
    who = f"scan result of bumphunt {v}" if v else "scan result of an unknown bumphunt version (no 'bumphunt_version')"
    for key in ("luminosity_fb", "sqrt_s"):
        if not _finite(result.get(key)):
            raise ScanInputError(f"{who} (this is bumphunt {__version__}): no number {key!r}, which the report needs")
    if not isinstance(result.get("global"), Mapping):
        raise ScanInputError(f"{who} (this is bumphunt {__version__}): no 'global' record, which the report needs")
    for i, p in enumerate(result["points"]):
        if not isinstance(p, Mapping) or not _finite(p.get("mass")) or "vetoed" not in p:
            raise ScanInputError(f"{who}: point {i} has no 'mass' or no 'vetoed'")
        if not p["vetoed"] and "converged" not in p:
            raise ScanInputError(f"{who} (this is bumphunt {__version__}): the point at m_a = {p['mass']:g} GeV has no 'converged'")


def expected_only(result: Mapping[str, Any], state: BlindingState) -> tuple[dict[str, Any], list[bool]]:
    """A copy of ``result`` without the observed numbers of its blind points, and per point whether it is visible.

    A fully blind result also loses its observed significance (``global`` keeps only ``method``, ``n_toys``, ...).
    """
    safe = copy.deepcopy(dict(result))
    visible = []
    for p in safe["points"]:
        hidden = not p.get("vetoed") and state.point_blind(p)
        visible.append(not hidden)
        if hidden:
            for k in OBSERVED_POINT_KEYS:
                p.pop(k, None)
            for ch in (p.get("channels") or {}).values():
                if isinstance(ch, dict):
                    ch.pop("nsig", None)
                    ch.pop("nbkg", None)
    if state.fully_blind:
        safe["global"] = {k: v for k, v in safe["global"].items() if k in _BLIND_GLOBAL_KEYS}
    return safe, visible


def _n_blind(result: Mapping[str, Any], state: BlindingState) -> int:
    """Points that show expected quantities only (not counting failed points of a partly blind scan)."""
    return sum(1 for p in result["points"] if not p["vetoed"] and (state.fully_blind or p.get("blinded") is True))


def _blinding_banner(result: Mapping[str, Any], state: BlindingState) -> str:
    n_blind = _n_blind(result, state)
    if state.fully_blind:
        return banner(f"BLIND RESULT (blinding mode '{state.mode}', not unblinded): this page shows expected quantities only. "
                      "No observed fit number, limit or significance is shown (bumphunt scan CONFIG --unblind to see them).", kind="blind")
    if n_blind:
        ranges = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in state.windows) or "-"
        return banner(f"PARTLY BLIND RESULT (mode '{state.mode}', blinded ranges {ranges} GeV): {n_blind} point(s) show expected "
                      "quantities only; the global significance is computed over the other points.", kind="partial")
    unblinded = " (unblinded with --unblind)" if state.unblinded and state.mode != "none" else ""
    return banner(f"Not blind: blinding mode '{state.mode}'{unblinded}; observed and expected quantities are shown.", kind="open")


def _header(result: Mapping[str, Any], result_path: str | Path | None, created: str) -> str:
    src = f"<br>Result file: <code>{esc(result_path)}</code>" if result_path is not None else ""
    return (f"<header><h1>bumphunt scan report</h1><div class=\"meta\" id=\"meta\">Report made by bumphunt {esc(__version__)} on "
            f"<time id=\"created\">{esc(created)}</time>; the scan was made by bumphunt {esc(result.get('bumphunt_version', 'unknown'))}."
            f"{src}</div></header>")


def _summary(result: Mapping[str, Any], state: BlindingState) -> str:
    pts = result["points"]
    fitted = [p for p in pts if not p["vetoed"]]
    failed = [p for p in fitted if not p.get("converged")]
    cfg = result.get("config") or {}
    limits = cfg.get("limits") if isinstance(cfg.get("limits"), Mapping) else {}
    rows = [
        ("mass hypotheses", f"{len(pts)} from {min(p['mass'] for p in pts):g} to {max(p['mass'] for p in pts):g} GeV" if pts else "none"),
        ("fitted / flagged / vetoed", f"{len(fitted) - len(failed)} / {len(failed)} / {len(pts) - len(fitted)}"),
        ("blind points (expected only)", str(_n_blind(result, state))),
        ("candidates scanned", str(result.get("n_candidates", "-"))),
        ("integrated luminosity", f"{result['luminosity_fb']:.6g} fb^-1"),
        ("sqrt(s)", f"{result['sqrt_s']:.6g} GeV"),
        ("confidence level", f"{100 * float(cfg.get('cl', 0.95)):g}% (CLs, q~_mu)"),
        ("limit method", str((limits or {}).get("method", "asymptotic"))),
        ("background model", str(result.get("background_model") or (cfg.get("background_model") or {}).get("method", "fixed"))),
        ("coupling model", str(result.get("coupling") or cfg.get("coupling") or "photon")),
    ]
    hashes = result.get("hashes") or {}
    rows += [(f"sha256 of the {k}", Markup(f"<code>{esc(v)}</code>")) for k, v in hashes.items()]
    return key_values(rows, table_id="summary-table")


def _plot_reference_z(result: Mapping[str, Any]) -> Any:
    from signal_models._common.plotstyle import new_figure, style

    pts = [p for p in result["points"] if _finite(p.get("z_expected_reference"))]
    ref = ((result.get("config") or {}).get("blinding") or {}).get("reference_xsec_pb")
    with style():
        fig, ax = new_figure(figsize=(9, 5))
        ax.plot([p["mass"] for p in pts], [p["z_expected_reference"] for p in pts], "k.-", lw=1.0)
        ax.set_xlabel(r"$m_a$ [GeV]")
        ax.set_ylabel(f"median expected $Z$ of {ref} pb" if ref else "median expected $Z$")
    return fig


def _limits(result: Mapping[str, Any]) -> str:
    from .plots import plot_brazil

    out = figure(lambda: plot_brazil(result, quantity="nsig"), alt="Brazil band N_sig", fig_id="fig-brazil-nsig",
                 caption="95% CL upper limit on the signal yield with the expected +-1 and +-2 sigma bands; vetoed ranges shaded.")
    out += figure(lambda: plot_brazil(result, quantity="xsec"), alt="Brazil band cross-section", fig_id="fig-brazil-xsec",
                  caption="The same on sigma(e+e- -> gamma a) x B(a -> gamma gamma), pb.")
    if any(_finite(p.get("z_expected_reference")) for p in result["points"]):
        out += figure(lambda: _plot_reference_z(result), alt="Expected significance of the reference signal", fig_id="fig-reference-z",
                      caption="Median expected local significance of the reference cross-section (blinding.reference_xsec_pb).")
    return out


def _coupling(result: Mapping[str, Any], references: Sequence[str]) -> str:
    from .plots import plot_coupling

    shown = ", ".join(references) if references else "none (the bundled references are on the photon coupling)"
    return figure(lambda: plot_coupling(result, references=references), alt="Coupling exclusion", fig_id="fig-coupling",
                  caption=f"Upper limit on the coupling versus m_a with the expected bands; published limits overlaid: {shown}.")


def _significance(result: Mapping[str, Any], state: BlindingState) -> str:
    from .plots import plot_p0

    g = result["global"]
    if "max_z_local" not in g:
        why = "the result is blind" if state.fully_blind else "the result records no observed significance"
        return paragraph(f"No local p0 and no global significance: {why} ({g.get('method', '')}).", cls="note")
    out = figure(lambda: plot_p0(result), alt="Local p0", fig_id="fig-p0", caption="Local p-value of the background-only hypothesis.")
    toys = g.get("toys") if isinstance(g.get("toys"), Mapping) else {}
    rows = [("largest local significance", f"{number(g.get('max_z_local'), '.3f')} at m_a = {number(g.get('mass_at_max'), '.5g')} GeV"),
            ("local p-value", number(g.get("p_local"), ".3g")),
            ("global significance", f"{number(g.get('z_global'), '.3f')} (p = {number(g.get('p_global'), '.3g')} +- "
                                    f"{number(g.get('p_global_err'), '.2g')})"),
            ("method", str(g.get("method", "-"))),
            ("reference level c0, up-crossings", f"{number(g.get('c0'), 'g')}, {number(g.get('n_upcrossings'), '.3g')} +- "
                                                 f"{number(g.get('n_upcrossings_err'), '.2g')}"),
            ("toys, seed", f"{g.get('n_toys', 0)}, {g.get('seed', '-')}")]
    if toys:
        rows.append(("direct toy p-value", f"{toys.get('n_exceeding', '-')} toys above: p = {number(toys.get('p_global'), '.3g')} +- "
                                           f"{number(toys.get('p_global_err'), '.2g')}, Z = {number(toys.get('z_global'), '.3f')}"
                                           + (" (lower bound)" if toys.get("z_global_is_lower_bound") else "")))
    if g.get("blinded_points_excluded"):
        rows.append(("blinded points left out", str(g["blinded_points_excluded"])))
    return out + key_values(rows, table_id="global-table")


def _window_point_table(p: Mapping[str, Any]) -> str:
    rows = [("m_a", f"{p['mass']:.6g} GeV"), ("window", f"[{p['window'][0]:.5g}, {p['window'][1]:.5g}] GeV" if "window" in p else "-"),
            ("candidates in the window", p.get("n_events", "-")), ("N_sig", f"{number(p.get('nsig'))} +- {number(p.get('nsig_err'))}"),
            ("local significance", number(p.get("z_local"), ".3f")), ("background order", p.get("bkg_order", "-")),
            ("UL N_sig observed / expected", f"{number(p.get('ul_nsig_obs'))} / {number((p.get('ul_nsig_exp') or [None] * 5)[2])}")]
    if "xsec_pb" in p:
        rows.append(("cross-section", f"{number(p.get('xsec_pb'))} +- {number(p.get('xsec_pb_err'))} pb"))
    out = key_values(rows, table_id="window-table")
    chans = p.get("channels") or {}
    if chans:
        out += table(("dataset", "window [GeV]", "candidates", "N_sig", "N_bkg", "efficiency", "bkg. order"),
                     [(n, f"[{c['window'][0]:.5g}, {c['window'][1]:.5g}]" if "window" in c else "-", c.get("n_events", "-"),
                       number(c.get("nsig")), number(c.get("nbkg")), number(c.get("efficiency")), c.get("bkg_order", "-"))
                      for n, c in chans.items()], numeric=(2, 3, 4, 5, 6), table_id="window-channels-table")
    return out


def _impacts_html(w: SignificantWindow) -> str:
    if w.impacts is not None:
        from fits.impacts import plot_impacts

        t = w.impacts
        rows = t.to_rows()
        out = "<h3>Pulls and impacts</h3>" + paragraph(
            f"POI {t.poi} (the cross-section in pb for a combined result) = {t.mu_hat:.4g} +- {t.mu_err:.3g}; impacts: the fit repeated with "
            "the nuisance fixed at its post-fit value +- its post-fit error (pre-fit: +- 1).")
        out += figure(lambda: plot_impacts(t), alt="Pulls and impacts", fig_id="fig-impacts", caption="Nuisances ranked by their impact.")
        return out + table(rows[0], rows[1:], numeric=(0, 2, 3, 4, 5, 6, 7), table_id="impacts-table")
    if w.pulls:
        return "<h3>Post-fit nuisances (recorded)</h3>" + table(
            ("nuisance", "pull (theta_hat - 0) / 1", "post-fit error"), [(n, number(v, "+.3f"), number(e, ".3f")) for n, v, e in w.pulls],
            numeric=(1, 2), table_id="pulls-table")
    return ""


def _window(result: Mapping[str, Any], state: BlindingState, visible: Sequence[bool], mgg: Any, signal_model: Any) -> str:
    from .plots import plot_fit

    if state.fully_blind:
        return paragraph("Blind result: the fit of a window shows observed numbers and is not drawn.", cls="note")
    w = significant_window(result, visible, mgg=mgg, signal_model=signal_model)
    if w.point is None:
        return "".join(paragraph(n, cls="note") for n in w.notes)
    m = float(w.point["mass"])
    out = _window_point_table(w.point)
    for panel in w.panels:
        what = f"dataset {panel.label}, fitted alone" if panel.label else "signal + background fit"
        out += figure(lambda p=panel: plot_fit(p.mgg, p.fit, mass=m), alt=f"Fit at {m:.4g} GeV {panel.label}".strip(),
                      fig_id=f"fig-fit-{panel.label or 'data'}", caption=f"Candidates in the window at m_a = {m:.5g} GeV ({what}).")
    out += "".join(paragraph(n, cls="note") for n in w.notes)
    return out + _impacts_html(w)


def _plot_gof(pvalues: Sequence[float]) -> Any:
    import numpy as np

    from signal_models._common.plotstyle import new_figure, style

    with style():
        fig, ax = new_figure(figsize=(9, 5))
        ax.hist(pvalues, bins=20, range=(0.0, 1.0), histtype="stepfilled", color="#85D1FB", edgecolor="k", label="windows")
        ax.axhline(len(pvalues) / 20, color="tab:red", ls="--", lw=1.2, label="uniform (background model adequate)")
        ax.set_xlabel("goodness-of-fit p-value")
        ax.set_ylabel("windows / 0.05")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.4 * max(float(np.max(np.histogram(pvalues, bins=20, range=(0, 1))[0])), len(pvalues) / 20, 1.0))
        ax.legend(fontsize="small", loc="upper right")
    return fig


def _gof(result: Mapping[str, Any]) -> str:
    rec = result.get("gof") if isinstance(result.get("gof"), Mapping) else {}
    pts = [p for p in result["points"] if not p["vetoed"] and _finite(p.get("gof_pvalue"))]
    if not pts:
        why = " (goodness of fit switched off)" if rec.get("method") == "none" else ""
        return paragraph(f"The result records no goodness-of-fit p-values (no point carries gof_pvalue){why}.", cls="note")
    alpha = float(rec["alpha"]) if _finite(rec.get("alpha")) else 0.01
    pv = [float(p["gof_pvalue"]) for p in pts]
    how = f"{rec.get('method', 'method not recorded')} test" + (f", {rec['calibration']} p-values" if rec.get("calibration") else "")
    out = figure(lambda: _plot_gof(pv), alt="Goodness-of-fit p-values", fig_id="fig-gof",
                 caption=f"p-values of the background model's goodness of fit ({how}) in {len(pv)} windows; uniform when the model "
                         "describes the data.")
    low = sorted((p for p in pts if p["gof_pvalue"] < alpha), key=lambda p: p["gof_pvalue"])
    rows = [(f"{p['mass']:.5g}", number(p["gof_pvalue"], ".3g"), p.get("bkg_order", "-")) for p in low]
    out += paragraph(f"{len(low)} of {len(pts)} windows with p < {alpha:g}" + (":" if low else "."))
    return out + (table(("m_a [GeV]", "p-value", "bkg. order"), rows, numeric=(0, 1, 2), table_id="gof-table") if low else "")


def _flagged(result: Mapping[str, Any]) -> str:
    failed = [p for p in result["points"] if not p["vetoed"] and not p.get("converged")]
    noted = [p for p in result["points"] if not p["vetoed"] and p.get("converged") and p.get("note")]
    out = paragraph(f"{len(failed)} point(s) not fitted or not converged" + (":" if failed else "."))
    if failed:
        out += table(("m_a [GeV]", "candidates", "reason"), [(f"{p['mass']:.5g}", p.get("n_events", "-"), p.get("reason", "-"))
                                                              for p in failed], numeric=(0, 1), table_id="flagged-table")
    if noted:
        out += "<h3>Notes</h3>" + table(("m_a [GeV]", "note"), [(f"{p['mass']:.5g}", p["note"]) for p in noted], numeric=(0,),
                                        table_id="notes-table")
    return out


def _vetoes(result: Mapping[str, Any]) -> str:
    from .plots import vetoed_spans

    vetoed = [p for p in result["points"] if p["vetoed"]]
    ranges = [r for r in result.get("vetoed_ranges") or () if isinstance(r, Mapping)]
    if ranges:
        rows = [(number(r.get("lo"), ".5g"), number(r.get("hi"), ".5g"), r.get("reason", "-")) for r in ranges]
    else:
        rows = [(f"{lo:.5g}", f"{hi:.5g}", "vetoed points") for lo, hi in vetoed_spans(result)] if vetoed else []
    masses = ", ".join(f"{p['mass']:g}" for p in vetoed)
    out = paragraph(f"{len(vetoed)} vetoed point(s)" + (f": {masses} GeV." if vetoed else "."))
    return out + (table(("from [GeV]", "to [GeV]", "reason"), rows, numeric=(0, 1), table_id="vetoes-table") if rows else "")


def write_report(
    result: Mapping[str, Any],
    out_dir: str | Path,
    *,
    mgg: Any = None,
    signal_model: Any = None,
    references: Sequence[str] | None = None,
    result_path: str | Path | None = None,
    window_notes: Sequence[str] = (),
) -> Path:
    """Write the scan report ``out_dir/report.html`` (one self-contained page).

    Parameters
    ----------
    result : mapping
        Scan result (``scans.scan``, ``scans.load_result``), one dataset or combined, blind or not.
    out_dir : path
        Directory for ``report.html`` (created; an earlier report there is replaced).
    mgg : array or mapping, optional
        Candidate masses (GeV) for the fit of the most significant window, instead of re-reading
        the recorded inputs (combined: dataset name -> array).
    signal_model : SignalModel-like or mapping, optional
        Signal model instead of the recorded one (combined: dataset name -> model).
    references : sequence of str, optional
        Published limits overlaid on the coupling plot (``signal_models.reference_limits``);
        default ``("belle2_2020_curve",)`` for the photon coupling, none otherwise.
    result_path : path, optional
        Where the result was read from (shown on the page).
    window_notes : sequence of str
        Why the caller could not provide the candidates of the most significant window (shown there).

    Returns
    -------
    Path
        The page.

    Raises
    ------
    ScanInputError
        Not a scan result, or one that lacks a key the report needs (the message names the version that wrote it).
    """
    from .checkpoint import atomic_write_text
    from .plots import result_coupling

    _check(result)
    state = blinding_state(result)
    safe, visible = expected_only(result, state)
    if references is None:
        references = ("belle2_2020_curve",) if result_coupling(safe) == "photon" else ()
    created = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
    sections = [
        ("summary", "Summary", _summary(safe, state)),
        ("configuration", "Configuration", configuration_html(safe)),
        ("inputs", "Inputs", inputs_html(safe)),
        ("datasets", "Datasets", datasets_html(safe)),
        ("cut-flow", "Cut flow", cut_flow_html(safe)),
        ("limits", "Upper limits (Brazil bands)", _limits(safe)),
        ("coupling", "Coupling exclusion", _coupling(safe, references)),
        ("significance", "Local p0 and global significance", _significance(safe, state)),
        ("window", "Most significant window", "".join(paragraph(n, cls="warn") for n in window_notes)
         + _window(safe, state, visible, mgg, signal_model)),
        ("gof", "Goodness of fit", _gof(safe)),
        ("flagged", "Flagged points", _flagged(safe)),
        ("vetoes", "Vetoed ranges", _vetoes(safe)),
    ]
    header = _header(safe, result_path, created) + _blinding_banner(safe, state)
    text = page(title=f"bumphunt scan report ({Path(result_path).name if result_path else 'scan result'})", header_html=header,
                sections=sections, version=__version__)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = atomic_write_text(out / REPORT_FILE, text)
    logger.info("wrote scan report %s", path)
    return Path(path)
