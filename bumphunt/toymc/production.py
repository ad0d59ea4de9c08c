"""``generate``: produce the toy-MC samples of a configuration as ROOT files (one per sample).

Samples and names
-----------------
- ``signal_m<mass>`` (e.g. ``signal_m1.000``): e+e- -> gamma a at each mass,
  weighted to sigma(m_a, g) x L for the coupling model ``signal.coupling``
  (g = ``g_agg`` for photon, ``g_abb`` for hypercharge, whose cross-section
  adds Z exchange: at the Z pole e+e- -> Z -> a gamma);
- one sample per background process (``ggg``, ``eeg``, ``pi0g``, ``etag``,
  ``etapg``, ``pi0gg``, ``etagg``, ``etapgg``) that the toy MC models at the
  beams' sqrt(s) (``background_models``: all at B factories, ``ggg`` at the
  Z pole), weighted to sigma x L;
- ``mumug``: the e+e- -> mu+ mu- gamma control sample, weighted to sigma x L;
- ``data``: pseudo-data, every background process drawn as a Poisson number
  sigma x L of unweighted events (weight 1, process code ``data``, true process
  in ``mc_process``), optionally with injected signal (a Poisson number of
  events with mean ``n_events``, or sigma x L for ``xsec_pb``), shuffled.

Weights are ``xsec_pb * lumi_fb * 1000 / n_generated`` (1 pb^-1 = 1e-3 fb^-1).

The collider preset (``collider`` key or argument, ``bumphunt.colliders``)
sets the beams, the calorimeter and photon resolution, the detector settings
and the default masses and coupling; it is written to the metadata
(``collider``), where ``bumphunt preselect`` and ``kinfit`` find it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from signal_models._common.config import validate_config
from signal_models._common.progress import progress

from ..colliders import DEFAULT_COLLIDER, collider
from ..errors import ConfigError
from ..events.detector import Resolution
from ..events.schema import PROCESS_CODES
from ..kinematics import Beam
from .background_models import background_model
from .config import CONFIG_SCHEMA, resolve_toymc_config
from .detector_sim import DetectorSettings
from .processes import BACKGROUNDS, GeneratorSettings, concatenate, cross_section_pb, simulate_background, simulate_control, simulate_signal, take
from .writer import BLOCK_SIZE, block_rng, write_sample

logger = logging.getLogger(__name__)

__all__ = ["generate", "signal_sample_name", "Settings", "settings_from_config"]


def signal_sample_name(mass: float) -> str:
    """Sample (and file stem) name of the signal at ``mass`` GeV, e.g. ``signal_m1.000``."""
    return f"signal_m{float(mass):.3f}"


class Settings:
    """Resolved objects of a validated configuration (collider, beam, detector, resolution, generator, signal coupling)."""

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = cfg
        self.collider = collider(cfg.get("collider", DEFAULT_COLLIDER))
        self.beam = Beam(**cfg["beam"])
        det = {f.name: cfg["detector"][f.name] for f in fields(DetectorSettings) if f.name in cfg["detector"]}
        self.detector = DetectorSettings(**det)
        self.calorimeter = None if self.collider.name == DEFAULT_COLLIDER else self.collider.calorimeter
        if self.calorimeter is None:
            self.resolution: Any = Resolution(
                endcap_energy_factor=cfg["detector"]["endcap_energy_factor"],
                endcap_angle_factor=cfg["detector"]["endcap_angle_factor"],
            )
        else:
            self.resolution = self.collider.resolution
        self.generator = GeneratorSettings(**cfg["generator"])
        self.xsec_overrides = dict(cfg.get("xsec_pb") or {})
        sig = cfg["signal"]
        self.coupling = str(sig.get("coupling", "photon"))
        #: the coupling of the signal's model (GeV^-1): g_agg (photon) or g_aBB (hypercharge)
        self.g = float(sig["g_agg"] if self.coupling == "photon" else sig["g_abb"])

    @property
    def g_agg(self) -> float:
        """The photon coupling g_agg (GeV^-1) the signal model implies (sets the ALP lifetime)."""
        from signal_models.alp import coupling_model

        return self.g if self.coupling == "photon" else float(coupling_model(self.coupling).g_agg(self.g))

    def xsec(self, process: str, **kw: Any) -> float:
        return cross_section_pb(process, beam=self.beam, generator=self.generator, detector=self.detector, overrides=self.xsec_overrides, **kw)

    def signal_xsec(self, mass: float) -> float:
        """sigma(e+e- -> gamma a) in pb at ``mass`` GeV for the configured coupling model and value."""
        return self.xsec("signal", m_a=mass, g_agg=self.g, coupling=self.coupling)

    def sim_kwargs(self) -> dict[str, Any]:
        out = {"beam": self.beam, "resolution": self.resolution, "detector": self.detector}
        if self.calorimeter is not None:
            out["calorimeter"] = self.calorimeter
        return out


def settings_from_config(config: Any = None) -> Settings:
    """``Settings`` of a YAML path, mapping or None (defaults)."""
    return Settings(resolve_toymc_config(config))


def _blocks(n: int, name: str, seed: int, make: Any) -> Iterator[dict]:
    n_blocks = math.ceil(n / BLOCK_SIZE)
    for b in progress(range(n_blocks), total=n_blocks, description=name):
        nb = min(BLOCK_SIZE, n - b * BLOCK_SIZE)
        yield make(nb, block_rng(seed, name, b))


def _data_blocks(counts: dict[str, int], seed: int, st: Settings, inject_mass: float | None) -> Iterator[dict]:
    total = sum(counts.values())
    n_blocks = max(math.ceil(total / BLOCK_SIZE), 1)
    g_agg = st.g_agg if st.cfg["signal"]["lifetime"] else None
    for b in progress(range(n_blocks), total=n_blocks, description="data"):
        rng = block_rng(seed, "data", b)
        parts = []
        for proc, n_p in counts.items():
            nb = n_p * (b + 1) // n_blocks - n_p * b // n_blocks
            if nb == 0:
                continue
            if proc == "signal":
                batch = simulate_signal(inject_mass, nb, rng=rng, g_agg=g_agg, generator=st.generator, **st.sim_kwargs())
            else:
                batch = simulate_background(proc, nb, rng=rng, generator=st.generator, unweighted=True, **st.sim_kwargs())
            batch["mc_process"] = batch["process"].copy()
            parts.append(batch)
        if not parts:
            continue
        block = concatenate(parts)
        block = take(block, rng.permutation(len(block["process"])))
        block["process"] = np.full(len(block["process"]), PROCESS_CODES["data"], dtype=np.int32)
        block["weight"] = np.ones(len(block["process"]))
        yield block


def generate(
    out_dir: str | Path,
    *,
    lumi_fb: float | None = None,
    seed: int | None = None,
    beam: Beam | Mapping[str, float] | None = None,
    signal_masses: Sequence[float] | None = None,
    n_signal_per_mass: int | None = None,
    samples: Sequence[str] | None = None,
    config: str | Path | Mapping[str, Any] | None = None,
    data: bool | None = None,
    inject: Mapping[str, float] | None = None,
    chunk_size: int | None = None,
    collider_name: str | None = None,
) -> dict[str, Path]:
    """Generate toy-MC samples and write one ROOT file per sample into ``out_dir``.

    Keyword arguments override the corresponding configuration keys (``None``
    keeps the configuration value, whose defaults make a small Belle II-like
    set: signal at 0.5, 1, 2, 4, 7 GeV, ~70k background MC events, 0.1 fb^-1
    of pseudo-data).

    Parameters
    ----------
    out_dir : path
        Output directory (created); files are ``<sample>.root``.
    lumi_fb : float, optional
        Integrated luminosity in fb^-1 (weights, pseudo-data size). Default 0.1.
    seed : int, optional
        Master seed (default 0); same seed and settings -> files with identical content.
    beam : Beam or mapping, optional
        Beam energies (GeV) and crossing angle (rad). Default Belle II.
    signal_masses : sequence of float, optional
        ALP masses in GeV.
    n_signal_per_mass : int, optional
        Signal events per mass.
    samples : sequence of str, optional
        Which samples to write: sample names, ``signal`` for all signal
        masses, ``backgrounds`` for all background MC; default all.
    config : path, mapping or None
        Toy-MC configuration (``bumphunt.toymc.CONFIG_SCHEMA``).
    data : bool, optional
        Write the pseudo-data sample (default True).
    inject : mapping, optional
        Signal injected into the pseudo-data: ``{"mass": GeV, "n_events": mean}``
        or ``{"mass": GeV, "xsec_pb": pb}``.
    chunk_size : int, optional
        Events per ``tree.extend`` (memory bound). Default 100000.
    collider_name : str, optional
        Collider preset (``bumphunt.colliders``: belle2, babar, zpole); replaces
        the configuration's ``collider`` (default belle2). ``beam`` still
        replaces the preset's beams.

    Returns
    -------
    dict
        Sample name -> written file path.

    Raises
    ------
    ConfigError
        Invalid configuration or arguments (the message names the key), an
        unknown collider, a mass at or above sqrt(s), or background samples
        at a sqrt(s) where the toy MC has no background model (naming it).
    """
    cfg = resolve_toymc_config(config, collider_name=collider_name, beam=beam)
    overrides = {"lumi_fb": lumi_fb, "seed": seed, "chunk_size": chunk_size}
    for key, val in overrides.items():
        if val is not None:
            cfg[key] = val
    if samples is not None:
        cfg["samples"] = [samples] if isinstance(samples, str) else list(samples)
    if signal_masses is not None:
        cfg["signal"]["masses"] = [float(m) for m in np.atleast_1d(signal_masses)]
    if n_signal_per_mass is not None:
        cfg["signal"]["n_per_mass"] = n_signal_per_mass
    if data is not None:
        cfg["data"]["enabled"] = bool(data)
    if inject is not None:
        cfg["data"]["inject"] = dict(inject)
    validate_config(cfg, CONFIG_SCHEMA, source="generate() arguments")
    st = Settings(cfg)
    sqrt_s = st.beam.sqrt_s
    for i, m in enumerate(cfg["signal"]["masses"]):
        if m >= sqrt_s:
            raise ConfigError(f"signal.masses[{i}]: {m} GeV is not below sqrt(s) = {sqrt_s:.4f} GeV")
    inj = cfg["data"]["inject"]
    if inj is not None:
        if inj["mass"] >= sqrt_s:
            raise ConfigError(f"data.inject.mass: {inj['mass']} GeV is not below sqrt(s) = {sqrt_s:.4f} GeV")
        if ("n_events" in inj) == ("xsec_pb" in inj):
            raise ConfigError("data.inject: give exactly one of n_events or xsec_pb")

    seed_ = int(cfg["seed"])
    lumi = float(cfg["lumi_fb"])
    g_agg = st.g_agg  # the photon coupling (c_W^2 g_aBB for the hypercharge model)
    lifetime = bool(cfg["signal"]["lifetime"])
    no_model: ConfigError | None = None
    try:
        bkg_model = background_model(sqrt_s)
        modelled = bkg_model.processes
    except ConfigError as exc:
        bkg_model, modelled, no_model = None, (), exc
    out = Path(out_dir)

    plan: list[tuple[str, str, Any]] = []
    for m in cfg["signal"]["masses"]:
        plan.append((signal_sample_name(m), "signal", float(m)))
    for p in BACKGROUNDS:
        if cfg["backgrounds"][p] > 0:
            plan.append((p, "background", cfg["backgrounds"][p]))  # unmodelled ones are 0 (resolve_toymc_config)
    if cfg["control"]["n"] > 0:
        plan.append(("mumug", "control", cfg["control"]["n"]))
    if cfg["data"]["enabled"]:
        plan.append(("data", "data", None))
    if cfg["samples"] is not None:
        names = {name for name, _, _ in plan}
        wanted = set()
        for s in cfg["samples"]:
            if s == "signal":
                wanted |= {name for name, kind, _ in plan if kind == "signal"}
            elif s == "backgrounds":
                wanted |= {name for name, kind, _ in plan if kind == "background"}
            elif s in names:
                wanted.add(s)
            else:
                raise ConfigError(f"samples: unknown sample {s!r}; available: signal, backgrounds, {', '.join(sorted(names))}")
        plan = [p for p in plan if p[0] in wanted]
    unmodelled = [name for name, kind, _ in plan if kind != "signal"]
    if no_model is not None and unmodelled:
        raise ConfigError(f"samples {', '.join(unmodelled)}: {no_model}")

    base_meta = {
        "lumi_fb": lumi,
        "seed": seed_,
        "beam": st.beam.to_dict(),
        "sqrt_s": sqrt_s,
        "collider": st.collider.name,
        "background_model": bkg_model.name if bkg_model is not None else None,
        "coupling": st.coupling,
        "g": st.g,
        "g_agg": g_agg,
        "lifetime": lifetime,
        "generator": {k: cfg[k] for k in ("signal", "backgrounds", "control", "xsec_pb", "data", "detector", "generator")},
        "block_size": BLOCK_SIZE,
        "generator_name": "bumphunt.toymc",
    }
    written: dict[str, Path] = {}
    for name, kind, arg in plan:
        t0 = time.perf_counter()
        path = out / f"{name}.root"
        meta = dict(base_meta, sample=name)
        weight: float | None
        if kind == "signal":
            n = int(cfg["signal"]["n_per_mass"])
            xsec = st.signal_xsec(arg)
            ga = st.g_agg if lifetime else None
            blocks = _blocks(n, name, seed_, lambda k, rng, m=arg, ga=ga: simulate_signal(m, k, rng=rng, g_agg=ga, generator=st.generator, **st.sim_kwargs()))
            meta.update(process="signal", masses=[arg], mass=arg)
        elif kind == "background":
            n = int(arg)
            xsec = st.xsec(name)
            blocks = _blocks(n, name, seed_, lambda k, rng, p=name: simulate_background(p, k, rng=rng, generator=st.generator, **st.sim_kwargs()))
            meta.update(process=name, masses=[])
        elif kind == "control":
            n = int(arg)
            xsec = st.xsec("mumug")
            blocks = _blocks(n, name, seed_, lambda k, rng: simulate_control(k, rng=rng, generator=st.generator, **st.sim_kwargs()))
            meta.update(process="mumug", masses=[])
        else:
            rng = block_rng(seed_, "data:counts", 0)
            composition = {}
            counts: dict[str, int] = {}
            for p in (p for p in BACKGROUNDS if p in modelled):
                x = st.xsec(p)
                counts[p] = int(rng.poisson(x * lumi * 1000.0))
                composition[p] = {"xsec_pb": x, "n": counts[p]}
            inject_mass = None
            if inj is not None:
                inject_mass = float(inj["mass"])
                mean = float(inj["n_events"]) if "n_events" in inj else float(inj["xsec_pb"]) * lumi * 1000.0
                counts["signal"] = int(rng.poisson(mean))
                composition["signal"] = {"mass": inject_mass, "mean": mean, "n": counts["signal"]}
            n = sum(counts.values())
            xsec = sum(c["xsec_pb"] for p, c in composition.items() if p != "signal")
            blocks = _data_blocks(counts, seed_, st, inject_mass)
            meta.update(process="data", composition=composition, inject=inj, masses=[inject_mass] if inject_mass else [])
        if n == 0:
            logger.warning("sample %s has no events; not written", name)
            continue
        weight = 1.0 if kind == "data" else xsec * lumi * 1000.0 / n
        meta.update(xsec_pb=xsec, n_generated=n, weight=weight)
        write_sample(path, blocks, meta, chunk_size=int(cfg["chunk_size"]), seed=seed_, name=name, weight=weight)
        dt = time.perf_counter() - t0
        logger.info("%s: %d events in %.2f s (%.0f events/s)", name, n, dt, n / dt if dt > 0 else float("inf"))
        written[name] = path
    return written
