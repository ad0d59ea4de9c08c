"""Transitional import path: the names of the former ``network`` module, now in their own modules.

Old path ``bumphunt.selection.network.X`` -> new home:

- ``TrainConfig``, ``configure_threads``, ``build_model``, ``PunziSelector`` -> ``bumphunt.selection.selector``
- ``LossInputs``, ``loss_inputs``, ``punzi_loss`` -> ``bumphunt.selection.loss`` (``_to_tensors`` is now ``loss.to_tensors``)
- ``TrainingResult``, ``train_selector`` -> ``bumphunt.selection.training``

Removed once every caller imports the new paths.
"""

from __future__ import annotations

from .loss import LossInputs, loss_inputs, punzi_loss
from .selector import PunziSelector, TrainConfig, build_model, configure_threads
from .training import TrainingResult, train_selector

__all__ = ["TrainConfig", "PunziSelector", "TrainingResult", "configure_threads", "build_model", "LossInputs",
           "loss_inputs", "punzi_loss", "train_selector"]
