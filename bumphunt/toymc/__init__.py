"""Belle II-like toy Monte Carlo for e+e- -> gamma a (a -> gamma gamma) and its backgrounds.

The collider presets of ``bumphunt.colliders`` (``collider:`` key or
``generate(..., collider_name=)``) move it to BaBar or to the Z pole
(e+e- -> Z -> a gamma with the hypercharge coupling, QED e+e- -> 3 gamma);
``background_model(sqrt_s)`` says which backgrounds exist at a given sqrt(s).

High level: ``generate(out_dir, ...)`` writes one ROOT file per sample (tree
``events`` in the schema of ``bumphunt.events.schema``, metadata JSON under
``bumphunt_meta``). Low level, without writing: ``simulate_signal``,
``simulate_background``, ``simulate_control`` return columnar arrays (event
branches as numpy arrays, ``gamma`` / ``track`` as jagged awkward records).

Modules: ``physics`` (generator-level kinematics, e+e- -> 3 gamma matrix
element and cross-section), ``background_models`` (which backgrounds at which
sqrt(s)), ``detector_sim`` (ECL clusters, merging,
smearing, timing, beam background, tracks), ``processes`` (the physics
processes and their cross-sections), ``config`` (YAML schema), ``writer``
(chunked, reproducible ROOT output), ``production`` (``generate``). The
model is documented in ``docs/reference/toymc.md`` and the ntuple schema in
``docs/reference/schema.md``.
"""

from __future__ import annotations

from .background_models import BACKGROUND_MODELS, BackgroundModel, background_model
from .config import CONFIG_SCHEMA, load_toymc_config, resolve_toymc_config
from .detector_sim import ORIGIN, DetectorSettings, TruthParticles, detector_response
from .physics import ThreeBodyCuts, ggg_cross_section_pb
from .processes import (
    BACKGROUNDS,
    MESON_XSEC_PB,
    MESONS,
    GeneratorSettings,
    cross_section_pb,
    simulate_background,
    simulate_control,
    simulate_signal,
)
from .production import generate, settings_from_config, signal_sample_name
from .writer import BLOCK_SIZE

__all__ = [
    "generate",
    "simulate_signal",
    "simulate_background",
    "simulate_control",
    "cross_section_pb",
    "ggg_cross_section_pb",
    "CONFIG_SCHEMA",
    "load_toymc_config",
    "resolve_toymc_config",
    "background_model",
    "BackgroundModel",
    "BACKGROUND_MODELS",
    "settings_from_config",
    "signal_sample_name",
    "BACKGROUNDS",
    "MESONS",
    "MESON_XSEC_PB",
    "ORIGIN",
    "BLOCK_SIZE",
    "DetectorSettings",
    "GeneratorSettings",
    "ThreeBodyCuts",
    "TruthParticles",
    "detector_response",
]
