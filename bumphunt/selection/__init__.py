"""The Punzi-net selector: one selection network for all ALP masses, its working point and figures of merit.

Modules, in the order of a training:

- ``figures_of_merit``: Punzi S_min and minimum detectable cross-section (pb), Asimov significance
- ``masses``: signal-mass grid, held-out masses, diphoton mass resolution sigma(m)
- ``samples``: reading signal/background files into one three-photon dict
- ``features``: per-candidate features (CM energies, u/t, event shapes, kinematic-fit chi2), standardisation
- ``training_data``: labelled, weighted, split candidates and their mass windows (``PunziData``)
- ``loss``: the Punzi loss (TensorFlow)
- ``selector``: network settings, the Keras network and the trained selector (save, load, apply)
- ``training``: BCE pre-training, Punzi training, working point and comparisons (``train_selector``)
- ``working_point``: efficiency and background per window, global output cut, cut-based reference, held-out check
- ``from_config``: a whole training from a YAML configuration (``bumphunt selector train``)
- ``apply_files``: a trained selector on event files (``bumphunt selector apply``)
- ``plots``: training curves, outputs, sensitivity vs mass, data/MC

Importing the package does not import TensorFlow (only the functions that
train or evaluate the network do).
"""

from __future__ import annotations

from .apply_files import AppliedSelection, apply_to_files
from .features import DEFAULT_FEATURES, Standardizer, compute_features, register_feature
from .figures_of_merit import asimov_significance, punzi_sensitivity, punzi_smin
from .from_config import TrainFromConfigResult, train_from_config
from .loss import LossInputs, loss_inputs, punzi_loss, to_tensors
from .masses import choose_heldout, default_mass_resolution, mass_grid, mass_resolution
from .samples import Samples, load_samples
from .selector import PunziSelector, TrainConfig, apply, build_model, configure_threads, load_selector
from .training import TrainingResult, train_selector
from .training_data import PunziData, prepare_training_data, window_sums
from .working_point import (
    WorkingPoint,
    cut_based_mask,
    efficiency_and_background,
    generalisation_table,
    optimise_cut_based,
    scan_working_point,
    sensitivity_per_mass,
)

__all__ = [
    # figures of merit
    "punzi_smin",
    "punzi_sensitivity",
    "asimov_significance",
    # masses
    "default_mass_resolution",
    "mass_grid",
    "choose_heldout",
    "mass_resolution",
    # samples and features
    "Samples",
    "load_samples",
    "DEFAULT_FEATURES",
    "compute_features",
    "register_feature",
    "Standardizer",
    # training data and loss
    "PunziData",
    "prepare_training_data",
    "window_sums",
    "LossInputs",
    "loss_inputs",
    "to_tensors",
    "punzi_loss",
    # network, training, working point
    "TrainConfig",
    "configure_threads",
    "build_model",
    "PunziSelector",
    "load_selector",
    "apply",
    "TrainingResult",
    "train_selector",
    "efficiency_and_background",
    "sensitivity_per_mass",
    "WorkingPoint",
    "scan_working_point",
    "cut_based_mask",
    "optimise_cut_based",
    "generalisation_table",
    # from a configuration, on files
    "TrainFromConfigResult",
    "train_from_config",
    "AppliedSelection",
    "apply_to_files",
]
