"""``bumphunt selector train|apply``: the Punzi-net selection (one network for all ALP masses)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

logger = logging.getLogger(__name__)

__all__ = ["selector", "CONFIG_SCHEMA", "train_from_config"]

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


def train_from_config(config: Any) -> dict[str, Any]:
    """Run a full training from a YAML path, mapping or None (defaults); returns the summary dict."""
    import numpy as np

    from signal_models._common.config import load_config
    from ..kinematics import Beam
    from ..selection.network import TrainConfig, train_selector
    from ..selection.core import load_samples, mass_grid, prepare_training_data
    from ..toymc.three_photon import synthetic_sample

    cfg = load_config(config, CONFIG_SCHEMA)
    beam = Beam.belle2()
    if cfg["inputs"]:
        events, n_gen, lumi_w = load_samples(cfg["inputs"], beam=beam)
    else:
        sy = cfg["synthetic"]
        masses = mass_grid(sy["mass_lo"], sy["mass_hi"], sy["mass_step"], n=sy["n_masses"])
        events, n_gen = synthetic_sample(masses=masses, n_per_mass=sy["n_per_mass"], n_background=sy["n_background"], seed=sy["seed"])
        lumi_w = 1.0
    if cfg["n_generated"]:
        n_gen.update({round(float(k), 6): int(v) for k, v in cfg["n_generated"].items()})
    weight_lumi = cfg["weight_lumi_fb"] or lumi_w or 1.0
    heldout = cfg["heldout"]
    res = cfg["resolution"]
    data = prepare_training_data(
        events, n_generated=n_gen, beam=beam, feature_names=cfg["features"], heldout=heldout,
        sigma=np.asarray(res, dtype=float) if isinstance(res, list) else res, n_sigma=cfg["n_sigma"],
        lumi_fb=cfg["lumi_fb"] or weight_lumi, weight_lumi_fb=weight_lumi, validation_fraction=cfg["validation_fraction"],
        seed=cfg["seed"],
    )
    loss = cfg["loss"]
    tc = TrainConfig(**cfg["network"], **cfg["training"], loss=loss["type"], a=loss["a"], b=loss["b"], formula=loss["formula"],
                     asimov_xsec_pb=loss["asimov_xsec_pb"], b_floor=loss["b_floor"], seed=cfg["seed"])
    result = train_selector(data, tc, beam=beam)
    out = Path(cfg["output"])
    out.mkdir(parents=True, exist_ok=True)
    result.selector.metadata["config"] = cfg
    result.selector.save(out / "model")
    summary = result.summary()
    if cfg["plots"]:
        from ..selection.plots import plot_all

        summary["plots"] = plot_all(result, data, out / "plots")
    if cfg["data"]:
        summary["data_mc_chi2"] = _data_mc(cfg["data"], result, data, beam, out / "plots" if cfg["plots"] else None)
    summary["model"] = str(out / "model")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    summary["summary_file"] = str(out / "summary.json")
    return summary


def _data_mc(paths: list[str], result: Any, data: Any, beam: Any, plot_dir: Path | None) -> dict[str, Any]:
    """Features and output of (pseudo-)data vs the weighted background MC; chi2 per variable."""
    from ..selection.features import compute_features
    from ..selection.core import basic_candidates, load_samples
    from ..selection.plots import plot_data_mc

    events, _, _ = load_samples(paths, beam=beam, include_data=True, require_n_generated=False)
    feats = compute_features(events, basic_candidates(events, beam=beam), beam=beam, names=data.names)
    feats["punzi_net"] = result.selector.predict(feats)
    bkg = data.label == 0
    mc = {n: data.X[bkg, k].astype(float) for k, n in enumerate(data.names)}
    mc["punzi_net"] = result.outputs[bkg]
    res = plot_data_mc(mc, data.weight[bkg], data.process[bkg], feats, list(data.names) + ["punzi_net"],
                       out_dir=plot_dir, lumi_fb=data.lumi_fb)
    import matplotlib.pyplot as plt

    for r in res.values():
        plt.close(r["figure"])
    return {k: {"chi2": v["chi2"], "ndf": v["ndf"]} for k, v in res.items()}


@click.group("selector")
def selector() -> None:
    """Punzi-net selector: one network for all ALP masses, trained on the Punzi loss.

    Sensitivities are minimum detectable cross-sections sigma_min = S_min(B) / (eps L) in pb
    (Punzi, a = 5, b = 1.28 by default); masses in GeV, luminosity in fb^-1.
    """


@selector.command("train")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (overrides the config's 'output'; default 'selector').")
@click.option("--quick", is_flag=True, help="Small synthetic sample and few epochs (a smoke run of a minute or two).")
def train(config: str | None, out_dir: str | None, quick: bool) -> None:
    """Train the selector from CONFIG (YAML; every key has a default, so CONFIG may be omitted).

    Without 'inputs' the training runs on the built-in synthetic toy (signal at m_a = 0.175..10.375 GeV
    in 0.05 GeV steps, 22 held-out masses). Writes OUT/model (model.keras + metadata.json with features,
    scaling, windows, working point and training config), OUT/summary.json (mean and per-mass sigma_min
    in pb of the Punzi net, the BCE-only net and the cut-based selection, held-out check) and OUT/plots.
    """
    from signal_models._common.config import load_config
    from ..errors import BumphuntError

    try:
        cfg = load_config(config, CONFIG_SCHEMA)
        if out_dir:
            cfg["output"] = out_dir
        if quick:
            cfg["synthetic"].update(n_masses=21, n_per_mass=500, n_background=40000)
            cfg["heldout"] = 4 if isinstance(cfg["heldout"], int) else cfg["heldout"]
            cfg["training"].update(pretrain_epochs=5, punzi_epochs=60)
        summary = train_from_config(cfg)
    except BumphuntError as exc:
        raise click.ClickException(str(exc)) from None
    m = summary["mean_sigma_min_pb"]
    click.echo(f"mean sigma_min over trained masses: Punzi net {m['punzi']:.4g} pb (cut {summary['working_point']:.2f}), "
               f"BCE only {m['bce']:.4g} pb, cut-based {m['cut_based']:.4g} pb")
    if summary.get("max_heldout_deviation") is not None:
        click.echo(f"held-out masses: largest deviation from the interpolation {100 * summary['max_heldout_deviation']:.1f}%")
    click.echo(f"model: {summary['model']}   summary: {summary['summary_file']}")


def _write_candidates(path: Path, cand: dict[str, Any]) -> Path:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    cols = {k: (np.asarray(v).astype(np.int8) if np.asarray(v).dtype == bool else np.asarray(v)) for k, v in cand.items()
            if np.asarray(v).ndim == 1}
    if path.suffix == ".npz":
        np.savez_compressed(path, **cols)
    else:
        import uproot

        with uproot.recreate(path) as f:
            f["candidates"] = cols
    return path


@selector.command("apply")
@click.argument("model", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False),
              help="Output file: ROOT (tree 'candidates') or .npz, one row per diphoton candidate with 'punzi_net' "
                   "(output in [0, 1]) and 'pass_punzi' (output above the stored working point).")
@click.option("--threshold", type=float, default=None, help="Cut on the output for 'pass_punzi' (default: the model's working point).")
def apply_cmd(model: str, inputs: tuple[str, ...], out: str, threshold: float | None) -> None:
    """Evaluate the selector MODEL on INPUT files (three-photon files or raw ntuples, globs allowed)."""
    import numpy as np

    from ..errors import BumphuntError
    from ..selection.network import PunziSelector
    from ..selection.core import load_samples, make_candidates

    try:
        sel = PunziSelector.load(model)
        events, _, _ = load_samples(list(inputs), include_data=True, require_n_generated=False)
        from ..kinematics import Beam

        beam = Beam(**sel.metadata["beam"]) if "beam" in sel.metadata else Beam.belle2()
        cand = make_candidates(events, beam=beam)
        y = sel.apply(cand, events, beam=beam)
        cut = sel.threshold if threshold is None else threshold
        cand["pass_punzi"] = y > cut
        path = _write_candidates(Path(out), cand)
    except BumphuntError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(y)} candidates, {int(np.sum(y > cut))} pass punzi_net > {cut:.3f} -> {path}")


apply_cmd.name = "apply"
