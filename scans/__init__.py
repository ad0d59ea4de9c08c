"""Mass scans for bumphunt: grid, vetoes, scan driver, look-elsewhere effect, results and plots.

Main entry points:

- ``scans.scan(mgg, signal_model, config=...)``: run a scan, return (and
  optionally write) the scan result;
- ``scans.run_config(path)``: the same from a YAML configuration file;
- ``scans.load_scan_config``: read and validate a configuration;
- ``scans.testing.analytic_signal_model``: a smooth analytic signal model;
- ``scans.plots``: Brazil bands, coupling exclusion, local p0.

Modules, in the order a scan uses them:

- ``config``: the configuration schema, loading, hash (``config_datasets``: the
  datasets, nuisances, background-model and trigger sections; ``blinding``);
  ``errors``: exceptions; ``inputs``: candidate and signal-model files;
- ``grid``: mass grid, fit windows, vetoes; ``limits``: N_sig -> cross-section -> g_agg;
- ``plan``: ``ScanPlan``, everything decided before the first fit (checks included);
- ``jobs``: the job payloads and results that cross process boundaries;
- ``worker``: what a worker does with a job (fits with ``fits.evaluate_hypotheses``);
- ``execution``: running jobs in process, on a process pool or on Dask;
- ``checkpoint``: atomic files, hashes, the checkpoint store;
- ``pipeline``: jobs -> run -> checkpoint -> results, for the points and the toys alike;
- ``lee``: toy spectra, up-crossings, global significance;
- ``result``: point records, the result document, its JSON and CSV files;
- ``driver``: the public ``scan()``; ``run``: scans from configuration files;
- several datasets in one likelihood: ``datasets``, ``trigger``,
  ``combined_plan``, ``combined_jobs``, ``combined_worker``,
  ``combined_result``, ``combined_driver`` (``scan_datasets``);
- ``blinding``: which points may show observed numbers; ``injection``: injection
  and recovery studies on the scan's model;
- ``projection`` (``projection_inputs``): expected limits without data, and the
  counting reach; ``recast``: limits in another coupling model or at another sqrt(s);
- ``plots``: figures of a result; ``export_hepdata``: the HEPData submission;
  ``report`` (with ``report_fit``, ``report_html``, ``report_records``): the
  self-contained HTML scan report.

The fit engines are ``fits.evaluate_hypotheses`` (one dataset) and
``fits.combined_table`` (several datasets, nuisances, blind points);
``scans`` never imports ``bumphunt``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .config import DEFAULT_CONFIG_PATH, SCAN_SCHEMA, load_scan_config
from .errors import CheckpointError, ScanConfigError, ScanError, ScanInputError

__all__ = [
    "scan",
    "run_config",
    "read_candidates",
    "load_result",
    "load_scan_config",
    "SCAN_SCHEMA",
    "DEFAULT_CONFIG_PATH",
    "ScanError",
    "ScanConfigError",
    "ScanInputError",
    "CheckpointError",
    "testing",
    "plots",
    "lee",
    "limits",
    "grid",
]

_LAZY = {
    "scan": ("scans.driver", "scan"),
    "run_config": ("scans.run", "run_config"),
    "read_candidates": ("scans.run", "read_candidates"),
    "load_result": ("scans.run", "load_result"),
}
_SUBMODULES = {"testing", "plots", "lee", "limits", "grid", "driver", "run", "checkpoint", "execution", "config",
               "plan", "jobs", "worker", "pipeline", "result", "errors", "injection", "projection", "recast", "export_hepdata",
               "report", "blinding", "datasets", "combined_driver"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(import_module(mod), attr)
    if name in _SUBMODULES:
        return import_module(f"scans.{name}")
    raise AttributeError(f"module 'scans' has no attribute {name!r}")
