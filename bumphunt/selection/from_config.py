"""Training the selector from a YAML configuration: inputs or the synthetic toy, training, working point, plots, model.

``train_from_config`` is what ``bumphunt selector train`` runs (and what the
demo can call with its own events): it reads the signal and background files
of ``inputs`` (or generates the synthetic three-photon toy of
``bumphunt.toymc.three_photon`` when there are none), prepares the training
data, trains the Punzi net, writes ``OUT/model`` (``model.keras`` +
``metadata.json``), ``OUT/summary.json`` and ``OUT/plots``, and compares
(pseudo-)data with the weighted MC when ``data`` files are given. Every key
of ``CONFIG_SCHEMA`` has a default, so the configuration may be empty.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from signal_models._common.config import load_config, validate_config

from ..errors import ConfigError
from ..events.candidates import diphoton_candidates
from ..kinematics import Beam
from .features import compute_features
from .masses import mass_grid
from .plots import plot_all, plot_data_mc
from .samples import load_samples
from .selector import TrainConfig
from .training import TrainingResult, train_selector
from .training_data import PunziData, prepare_training_data

logger = logging.getLogger(__name__)

__all__ = ["CONFIG_SCHEMA", "QUICK_SETTINGS", "TrainFromConfigResult", "train_from_config"]

_NUM = {"type": "number"}

#: Schema (with defaults) of the ``selector train`` YAML configuration.
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "output": {"type": "string", "default": "selector", "description": "output folder (model, plots, summary.json)"},
        "inputs": {"type": "array", "items": {"type": "string"}, "default": [],
                   "description": "signal and background files (three-photon files or raw ntuples, globs allowed); empty: synthetic toy"},
        "data": {"type": "array", "items": {"type": "string"}, "default": [],
                 "description": "(pseudo-)data files for the data/MC comparison plots of every feature and the output; "
                                "the MC is normalised to lumi_fb, which must then be the data luminosity"},
        "n_generated": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}, "default": {},
                        "description": "events generated per signal mass {mass_GeV: N}; overrides the file metadata"},
        "synthetic": {
            "type": "object", "additionalProperties": False, "default": {},
            "properties": {
                "mass_lo": {"type": "number", "exclusiveMinimum": 0, "default": 0.175},
                "mass_hi": {"type": "number", "exclusiveMinimum": 0, "default": 10.375},
                "mass_step": {"type": "number", "exclusiveMinimum": 0, "default": 0.05},
                "n_masses": {"type": ["integer", "null"], "minimum": 1, "default": None},
                "n_per_mass": {"type": "integer", "minimum": 1, "default": 1000},
                "n_background": {"type": "integer", "minimum": 1, "default": 300000},
                "seed": {"type": "integer", "default": 1},
            },
        },
        "heldout": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "array", "items": _NUM}], "default": 22,
                    "description": "number of held-out masses, or the masses (GeV)"},
        "n_sigma": {"type": "number", "exclusiveMinimum": 0, "default": 10.0},
        "resolution": {"anyOf": [{"type": "null"}, {"type": "number", "exclusiveMinimum": 0}, {"type": "array", "items": _NUM}],
                       "default": None, "description": "sigma(m) in GeV: one number, one per mass, or null (detector default)"},
        "lumi_fb": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None},
        "weight_lumi_fb": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None},
        "validation_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.25},
        "seed": {"type": "integer", "default": 1},
        "features": {"type": ["array", "null"], "items": {"type": "string"}, "default": None},
        "network": {
            "type": "object", "additionalProperties": False, "default": {},
            "properties": {
                "hidden_layers": {"type": "integer", "minimum": 1, "default": 3},
                "units": {"type": "integer", "minimum": 1, "default": 32},
                "activation": {"type": "string", "default": "leaky_relu"},
                "leaky_slope": {"type": "number", "minimum": 0, "default": 0.1},
            },
        },
        "training": {
            "type": "object", "additionalProperties": False, "default": {},
            "properties": {
                "pretrain_epochs": {"type": "integer", "minimum": 0, "default": 20},
                "pretrain_batch_size": {"type": "integer", "minimum": 1, "default": 8192},
                "pretrain_learning_rate": {"type": "number", "exclusiveMinimum": 0, "default": 2e-3},
                "pretrain_patience": {"type": "integer", "minimum": 1, "default": 5},
                "punzi_epochs": {"type": "integer", "minimum": 0, "default": 500},
                "punzi_learning_rate": {"type": "number", "exclusiveMinimum": 0, "default": 3e-3},
                "lr_decay_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.5},
                "lr_decay_epochs": {"type": "integer", "minimum": 1, "default": 200},
                "patience": {"type": "integer", "minimum": 1, "default": 60},
                "punzi_batches": {"type": "integer", "minimum": 1, "default": 1},
                "max_nan_events": {"type": "integer", "minimum": 1, "default": 10},
                "threads": {"type": "integer", "minimum": 1, "default": 2},
            },
        },
        "loss": {
            "type": "object", "additionalProperties": False, "default": {},
            "properties": {
                "type": {"enum": ["punzi", "asimov"], "default": "punzi"},
                "a": {"type": "number", "exclusiveMinimum": 0, "default": 5.0},
                "b": {"type": "number", "minimum": 0, "default": 1.28},
                "formula": {"enum": ["basic", "extended"], "default": "basic"},
                "asimov_xsec_pb": {"type": "number", "exclusiveMinimum": 0, "default": 1.0},
                "b_floor": {"type": "number", "exclusiveMinimum": 0, "default": 1e-6},
            },
        },
        "plots": {"type": "boolean", "default": True},
    },
}

#: Overrides of ``quick=True`` (``bumphunt selector train --quick``): a small synthetic sample and few epochs.
QUICK_SETTINGS: dict[str, dict[str, int]] = {
    "synthetic": {"n_masses": 21, "n_per_mass": 500, "n_background": 40000},
    "training": {"pretrain_epochs": 5, "punzi_epochs": 60},
}
#: Held-out masses with ``quick=True`` when the configuration gives a number of them.
QUICK_HELDOUT = 4


@dataclass(frozen=True)
class TrainFromConfigResult:
    """What ``train_from_config`` produced.

    Attributes
    ----------
    config : dict
        The configuration used (defaults filled, overrides applied); also
        stored in the selector's metadata under ``config``.
    data : PunziData
        The training data.
    training : TrainingResult
        The trained selector, histories, working points and comparisons.
    out_dir, model_dir, summary_file : Path
        Output folder, the selector directory (``out_dir / "model"``) and
        ``out_dir / "summary.json"``.
    summary : dict
        The content of ``summary.json``: ``TrainingResult.summary()`` plus
        ``plots`` (when drawn), ``data_mc_chi2`` (when ``data`` files are
        given) and ``model``.
    """

    config: dict[str, Any]
    data: PunziData
    training: TrainingResult
    out_dir: Path
    model_dir: Path
    summary_file: Path
    summary: dict[str, Any]

    @property
    def mean_sigma_min_pb(self) -> dict[str, float]:
        """Mean sigma_min (pb) over trained masses of the Punzi net, the BCE-only net and the cut-based selection."""
        return dict(self.summary["mean_sigma_min_pb"])

    @property
    def plots(self) -> dict[str, str]:
        """Plot name -> path of the training plots (empty when ``plots`` is off)."""
        return dict(self.summary.get("plots", {}))

    @property
    def data_mc_chi2(self) -> dict[str, dict[str, float]] | None:
        """Variable -> ``{"chi2", "ndf"}`` of the data/MC comparison, None without ``data`` files."""
        return self.summary.get("data_mc_chi2")


def resolve_config(config: str | Path | Mapping[str, Any] | None, *, out_dir: str | Path | None = None,
                   quick: bool = False) -> dict[str, Any]:
    """Read and validate a selector configuration (YAML path, mapping or None) and apply the overrides.

    Parameters
    ----------
    config : path, mapping or None
        ``CONFIG_SCHEMA`` configuration; None: every default.
    out_dir : path, optional
        Output folder, replacing the configuration's ``output``.
    quick : bool
        ``QUICK_SETTINGS`` (a small synthetic sample and few epochs; 4
        held-out masses when ``heldout`` is a number).

    Raises
    ------
    ConfigError
        Unreadable file, unknown key or invalid value (the message names the key).
    """
    cfg = load_config(config, CONFIG_SCHEMA)
    if out_dir:
        cfg["output"] = str(out_dir)
    if quick:
        for section, values in QUICK_SETTINGS.items():
            cfg[section].update(values)
        cfg["heldout"] = QUICK_HELDOUT if isinstance(cfg["heldout"], int) else cfg["heldout"]
    validate_config(cfg, CONFIG_SCHEMA, source="selector configuration")
    return cfg


def train_from_config(
    config: str | Path | Mapping[str, Any] | None = None,
    *,
    out_dir: str | Path | None = None,
    quick: bool = False,
    events: Mapping[str, Any] | None = None,
    n_generated: Mapping[float, int] | None = None,
    beam: Beam | None = None,
) -> TrainFromConfigResult:
    """Train the selector as ``bumphunt selector train`` does and write model, summary and plots.

    Parameters
    ----------
    config : path, mapping or None
        ``CONFIG_SCHEMA`` configuration (YAML file, mapping, or None for every default).
    out_dir : path, optional
        Output folder (overrides the configuration's ``output``).
    quick : bool
        Smoke-run settings (``QUICK_SETTINGS``).
    events : mapping, optional
        Three-photon events (signal and weighted background) to train on
        instead of ``inputs`` or the synthetic toy; then ``inputs`` must be
        empty and ``n_generated`` gives N_gen per signal mass (else the
        configuration's ``n_generated``).
    n_generated : mapping, optional
        Events generated per signal mass ``{m_a (GeV): N}``; updates what
        the inputs' metadata or the synthetic toy give.
    beam : Beam, optional
        Beams (default ``Beam.belle2()``).

    Returns
    -------
    TrainFromConfigResult

    Raises
    ------
    ConfigError
        Invalid configuration; ``events`` given together with ``inputs`` or
        without ``n_generated``.
    InputError
        Unreadable inputs or unusable training data.
    """
    cfg = resolve_config(config, out_dir=out_dir, quick=quick)
    beam = beam or Beam.belle2()
    events_given = events is not None
    if events_given:
        if cfg["inputs"]:
            raise ConfigError("selector configuration: 'inputs' must be empty when events are passed in")
        n_gen: dict[float, int] = {}
        lumi_w: float | None = None
    elif cfg["inputs"]:
        events, n_gen, lumi_w = load_samples(cfg["inputs"], beam=beam)
    else:
        from ..toymc.three_photon import synthetic_sample

        sy = cfg["synthetic"]
        masses = mass_grid(sy["mass_lo"], sy["mass_hi"], sy["mass_step"], n=sy["n_masses"])
        events, n_gen = synthetic_sample(masses=masses, n_per_mass=sy["n_per_mass"], n_background=sy["n_background"], seed=sy["seed"],
                                         beam=beam)
        lumi_w = 1.0
    for extra in (cfg["n_generated"], n_generated or {}):
        n_gen.update({round(float(k), 6): int(v) for k, v in extra.items()})
    if events_given and not n_gen:
        raise ConfigError("selector configuration: events passed in need n_generated (argument or config key), the efficiency denominator")
    weight_lumi = cfg["weight_lumi_fb"] or lumi_w or 1.0
    res = cfg["resolution"]
    data = prepare_training_data(
        events, n_generated=n_gen, beam=beam, feature_names=cfg["features"], heldout=cfg["heldout"],
        sigma=np.asarray(res, dtype=float) if isinstance(res, list) else res, n_sigma=cfg["n_sigma"],
        lumi_fb=cfg["lumi_fb"] or weight_lumi, weight_lumi_fb=weight_lumi, validation_fraction=cfg["validation_fraction"],
        seed=cfg["seed"],
    )
    loss = cfg["loss"]
    tc = TrainConfig(**cfg["network"], **cfg["training"], loss=loss["type"], a=loss["a"], b=loss["b"], formula=loss["formula"],
                     asimov_xsec_pb=loss["asimov_xsec_pb"], b_floor=loss["b_floor"], seed=cfg["seed"])
    result = train_selector(data, tc, beam=beam, metadata={"config": cfg})
    out = Path(cfg["output"])
    out.mkdir(parents=True, exist_ok=True)
    model_dir = result.selector.save(out / "model")
    summary = result.summary()
    if cfg["plots"]:
        summary["plots"] = plot_all(result, data, out / "plots")
    if cfg["data"]:
        summary["data_mc_chi2"] = data_mc_comparison(cfg["data"], result, data, beam=beam, plot_dir=out / "plots" if cfg["plots"] else None)
    summary["model"] = str(model_dir)
    summary_file = out / "summary.json"
    summary_file.write_text(json.dumps(summary, indent=1))
    logger.info("selector: model %s, summary %s", model_dir, summary_file)
    return TrainFromConfigResult(config=cfg, data=data, training=result, out_dir=out, model_dir=model_dir, summary_file=summary_file,
                                 summary=summary)


def data_mc_comparison(paths: Sequence[str], result: TrainingResult, data: PunziData, *, beam: Beam,
                       plot_dir: Path | None = None) -> dict[str, dict[str, float]]:
    """Features and output of (pseudo-)data vs the weighted background MC; chi2 per variable.

    Parameters
    ----------
    paths : list of str
        (Pseudo-)data files (three-photon files or raw ntuples, globs allowed).
    result, data : TrainingResult, PunziData
        The training (its selector and background outputs) and its data (the
        background rows are the MC, weighted to ``data.lumi_fb``, which must
        be the data luminosity).
    beam : Beam
    plot_dir : Path, optional
        Folder for ``datamc_<variable>.png`` (no plots when None).

    Returns
    -------
    dict
        Variable -> ``{"chi2": ..., "ndf": ...}``.
    """
    import matplotlib.pyplot as plt

    events, _, _ = load_samples(list(paths), beam=beam, include_data=True, require_n_generated=False)
    feats = compute_features(events, diphoton_candidates(events, beam=beam), beam=beam, names=data.names)
    feats["punzi_net"] = result.selector.predict(feats)
    bkg = data.label == 0
    mc = {n: data.X[bkg, k].astype(float) for k, n in enumerate(data.names)}
    mc["punzi_net"] = result.outputs[bkg]
    res = plot_data_mc(mc, data.weight[bkg], data.process[bkg], feats, list(data.names) + ["punzi_net"],
                       out_dir=plot_dir, lumi_fb=data.lumi_fb)
    for r in res.values():
        plt.close(r["figure"])
    return {k: {"chi2": v["chi2"], "ndf": v["ndf"]} for k, v in res.items()}
