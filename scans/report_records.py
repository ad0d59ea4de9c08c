"""The parts of the scan report that show what a result records: configuration, inputs, datasets, cut flow, provenance.

Each function takes the (blind-safe) scan result and returns an HTML
fragment (``scans.report_html``); ``scans.report`` puts them on the page.
The inputs and signal-model files are checked against the sha256 the result
records.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .report_html import Markup, details, esc, number, paragraph, table

logger = logging.getLogger(__name__)

__all__ = ["configuration_html", "inputs_html", "datasets_html", "cut_flow_html", "file_status"]

#: the event chain's counts (``provenance.event_chain``) in the order of the chain, with what they count
_CHAIN_STEPS = (("n_events", "events read"), ("n_preselected", "pre-selected (three photons)"),
                ("n_candidates", "diphoton candidates (three per pre-selected event)"), ("n_selected", "selected (selector working point)"))


def configuration_html(result: Mapping[str, Any]) -> str:
    """The completed scan configuration as collapsible YAML."""
    import yaml

    cfg = result.get("config")
    if not isinstance(cfg, Mapping):
        return paragraph("The result records no configuration.", cls="warn")
    text = yaml.safe_dump(json.loads(json.dumps(cfg)), sort_keys=False, default_flow_style=None, width=110)
    return details("Scan configuration (YAML, completed with the defaults)", f"<pre id=\"config-yaml\">{esc(text)}</pre>")


def file_status(path: str, sha256: str | None) -> str:
    """Whether the file at ``path`` is still the one the scan read: ``not found``, ``present, sha256 matches``, ``CHANGED ...``."""
    from .checkpoint import sha256_file

    p = Path(path)
    if not p.is_file():
        return "not found"
    if not sha256:
        return "present (no sha256 recorded)"
    return "present, sha256 matches" if sha256_file(p) == sha256 else "CHANGED since the scan (sha256 differs)"


def _model_row(label: str, src: Any) -> tuple[Any, ...]:
    if not isinstance(src, Mapping):
        return (label, "not recorded", "", "")
    if src.get("analytic") is not None:
        return (label, "analytic model", Markup(f"<code>{esc(json.dumps(src['analytic']))}</code>"), "")
    if src.get("path"):
        return (label, Markup(f"<code>{esc(src['path'])}</code>"), Markup(f"<code>{esc(src.get('sha256', ''))}</code>"),
                file_status(src["path"], src.get("sha256")))
    return (label, f"object in memory ({src.get('object', 'unknown')})", "", "not recorded")


def inputs_html(result: Mapping[str, Any]) -> str:
    """The candidate files and the signal model(s) with their sha256 and whether the files still match."""
    rows = [(Markup(f"<code>{esc(d.get('path'))}</code>"), Markup(f"<code>{esc(d.get('sha256', ''))}</code>"),
             file_status(str(d.get("path")), d.get("sha256"))) for d in result.get("inputs") or () if isinstance(d, Mapping)]
    out = "<h3>Candidate files</h3>" + (table(("file", "sha256", "status"), rows, table_id="inputs-table") if rows else
                                          paragraph("No input file recorded: the candidates were handed to the scan in memory.", cls="note"))
    if result.get("datasets"):
        models = [_model_row(str(d.get("name")), d.get("signal_model")) for d in result["datasets"] if isinstance(d, Mapping)]
    else:
        models = [_model_row("(one dataset)", result.get("signal_model"))]
    out += "<h3>Signal model</h3>" + table(("dataset", "source", "sha256", "status"), models, table_id="signal-model-table")
    return out


def _trigger_text(trig: Any) -> str:
    if not isinstance(trig, Mapping):
        return "-"
    if "table" in trig:
        rows = trig["table"]
        return f"table of {len(rows)} rows, {rows[0][0]:g}-{rows[-1][0]:g} GeV" if rows else "empty table"
    return f"{trig.get('value', 1.0):g} (rel. unc. {trig.get('rel_unc', 0.0):g})"


def datasets_html(result: Mapping[str, Any]) -> str:
    """The datasets of a combined result (luminosity fb^-1, trigger efficiency, background order, ...), its nuisances and background model."""
    ds = [d for d in result.get("datasets") or () if isinstance(d, Mapping)]
    if not ds:
        return paragraph(f"One dataset: {result['luminosity_fb']:.6g} fb^-1, {result.get('n_candidates', '-')} candidates.")
    rows = [(d.get("name"), number(d.get("luminosity_fb"), ".6g"), number(d.get("luminosity_rel_unc"), ".3g"),
             _trigger_text(d.get("trigger_efficiency")), d.get("bkg_order", "-"), d.get("n_candidates", "-"), len(d.get("inputs") or ()))
            for d in ds]
    out = table(("dataset", "luminosity [fb^-1]", "lumi. rel. unc.", "trigger efficiency", "bkg. order", "candidates", "input files"),
                rows, numeric=(1, 2, 4, 5, 6), table_id="datasets-table")
    nuis = result.get("nuisances") or []
    out += paragraph(f"Nuisances of the combined likelihood: {', '.join(map(str, nuis)) or 'none'}; background model: "
                     f"{result.get('background_model', 'fixed')}; total luminosity {result['luminosity_fb']:.6g} fb^-1.")
    return out


def _chain_table(chain: Mapping[str, Any], ident: str) -> str:
    rows, prev = [], None
    for key, what in _CHAIN_STEPS:
        n = chain.get(key)
        if not isinstance(n, int):
            continue
        rows.append((what, n, f"{100 * n / prev:.1f}%" if prev else "-"))
        prev = n
    if isinstance(chain.get("n_kinfit_failed"), int):
        rows.append(("of which: kinematic fit not converged (measured photons used)", chain["n_kinfit_failed"], "-"))
    return table(("step", "count", "relative to the previous step"), rows, numeric=(1, 2), table_id=ident)


def cut_flow_html(result: Mapping[str, Any]) -> str:
    """The event chain's counts (``provenance.event_chain``, per dataset for combined results) and the other provenance records."""
    prov = result.get("provenance") or {}
    chains = [("", prov["event_chain"])] if isinstance(prov.get("event_chain"), Mapping) else []
    for name, sub in (prov.get("datasets") or {}).items() if isinstance(prov.get("datasets"), Mapping) else ():
        if isinstance(sub, Mapping) and isinstance(sub.get("event_chain"), Mapping):
            chains.append((str(name), sub["event_chain"]))
    out = "".join((f"<h3>Dataset {esc(n)}</h3>" if n else "") + _chain_table(c, f"cutflow-{n or 'data'}") for n, c in chains)
    if not chains:
        out = paragraph("Not recorded: the scan read candidate files; the event chain's counts are recorded when bumphunt scan runs it on "
                        "raw events (inputs.kind: events).", cls="note")
    out += paragraph(f"Candidates scanned: {result.get('n_candidates', '-')}.")
    other = {k: v for k, v in prov.items() if k not in ("event_chain", "datasets")}
    if other:
        out += "<h3>Provenance</h3>" + table(("key", "value"), [(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in other.items()],
                                             table_id="provenance-table")
    return out
