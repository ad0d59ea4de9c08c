"""Hypothesis fits and limits for bumphunt: extended unbinned likelihood fits,
profile-likelihood test statistics, asymptotic and toy CLs upper limits.

Two engines give the same answer: the vectorised Newton engine (numpy, many
hypotheses at once; the default) and the zfit + Minuit reference engine
(``engine="zfit"``, with hepstats for limits). Importing this package does
not import TensorFlow; zfit, hepstats and pyhf are imported only by the
functions that need them.

Where things are (each module's docstring says more):

- ``api``: ``fit``, ``upper_limit``, ``limit_curve`` (one hypothesis; engine and method choice);
- ``hypotheses``: ``evaluate_hypotheses`` (many hypotheses, the scans' entry point),
  ``chunks`` (one batch of them: request, evaluation, result), ``single`` (one
  hypothesis on the Newton engine);
- ``inputs`` (argument checks), ``results`` (result dataclasses), ``errors``;
- several datasets in one fit: ``channels`` (``Channel`` and the nuisances),
  ``combined_rows`` (morphed templates), ``combined`` (the Newton engine with
  a Schur complement over the channels), ``combined_limits``,
  ``combined_table`` (many combined hypotheses as arrays: the scans' entry
  point, and the expected-only path of blind analyses),
  ``combined_api`` (``fit`` / ``upper_limit`` on a list of channels),
  ``limit_search`` (root finding shared by both engines), ``zfit_combined``
  (the zfit + hepstats reference of the combined model);
- the background model: ``background_choice`` (F-test order choice),
  ``envelope`` (discrete profiling), ``spurious_template`` (spurious signal on
  a background density), ``spurious`` (on a background sample);
- review tools: ``impacts`` (pulls and ranked impacts), ``likelihood_scan``
  (-2 Delta ln L versus the POI);
- the vectorised engine: ``densities`` and ``design`` (the model; ``model``
  re-exports both), ``newton`` (batched Newton minimiser), ``_kernels``
  (its compiled data-fit kernels), ``vectorised`` (``Batch``: fits, Asimov
  sets, limits), ``asymptotic`` (test-statistic formulae);
- nuisances: ``nuisances`` (yield uncertainty), ``systematics`` (resolution);
- toy CLs limits at scale: ``toy_limits`` (``toy_cls_limits``), ``limit_methods``
  (``evaluate_hypotheses(limit_method="asymptotic" | "toys" | "auto")``), and their
  pieces ``toy_sampling``, ``toy_sets``, ``toy_statistic``, ``toy_cls``,
  ``toy_stage``, ``toy_runner``, ``toy_batch``, ``toy_problem``, ``_toy_kernels``;
- goodness of fit: ``goodness_of_fit`` (``gof_cdf``);
- ``toys``, ``sideband``, ``spurious``, ``extra_templates``, ``pyhf_export``,
  ``plots``, and the zfit reference engine ``zfit_engine``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from signal_models._common.defaults import DEFAULT_BKG_ORDER

from .api import fit, limit_curve, upper_limit
from .channels import Channel, ShapeUncertainty, SpuriousSignal, YieldUncertainty
from .combined_api import CombinedFitResult
from .densities import default_window
from .errors import FitFailure, FitInputError
from .hypotheses import evaluate_hypotheses
from .inputs import check_masses
from .nuisances import combine_rel_unc
from .results import FitResult, HypothesisTable, LimitResult

__all__ = [
    "fit",
    "upper_limit",
    "Channel",
    "YieldUncertainty",
    "ShapeUncertainty",
    "SpuriousSignal",
    "CombinedFitResult",
    "evaluate_hypotheses",
    "limit_curve",
    "combine_rel_unc",
    "default_window",
    "check_masses",
    "FitResult",
    "LimitResult",
    "HypothesisTable",
    "FitInputError",
    "FitFailure",
    "DEFAULT_BKG_ORDER",
    "generate_toys",
    "generate_background_toys",
    "spurious_signal",
    "choose_bkg_order",
    "export_pyhf",
    "sideband_background",
    "impacts",
    "likelihood_scan",
]

_LAZY = {
    "generate_toys": ("fits.toys", "generate_toys"),
    "generate_background_toys": ("fits.toys", "generate_background_toys"),
    "spurious_signal": ("fits.spurious", "spurious_signal"),
    "choose_bkg_order": ("fits.spurious", "choose_bkg_order"),
    "export_pyhf": ("fits.pyhf_export", "export_pyhf"),
    "impacts": ("fits.impacts", "impacts"),
    "likelihood_scan": ("fits.likelihood_scan", "likelihood_scan"),
    "sideband_background": ("fits.sideband", "sideband_background"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(import_module(mod), attr)
    raise AttributeError(f"module 'fits' has no attribute {name!r}")
