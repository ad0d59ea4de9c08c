"""The Punzi net and the trained selector: network settings, the Keras network, save/load/apply.

``TrainConfig`` holds the settings of the network (layers, units, activation)
and of its training (``bumphunt.selection.training``); ``build_model`` builds
the dense Keras network with a sigmoid output; ``PunziSelector`` is a trained
selector (Keras model + feature standardisation + metadata) that evaluates
candidates, saves itself to a directory (``model.keras`` and
``metadata.json``) and loads back. TensorFlow and Keras are imported only
inside the functions that need them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from signal_models._common.version import __version__

from ..errors import InputError
from ..kinematics import Beam
from .features import Standardizer, compute_features, feature_matrix

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "configure_threads", "build_model", "PunziSelector", "jsonable", "load_selector", "apply"]


def configure_threads(threads: int | None = None) -> None:
    """Limit TensorFlow's thread pools (default ``BUMPHUNT_TF_THREADS`` or 2); no-op once TF runs."""
    import tensorflow as tf

    n = int(threads or os.environ.get("BUMPHUNT_TF_THREADS", 2))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, n)))
    except RuntimeError:  # already initialised
        pass


@dataclass(frozen=True)
class TrainConfig:
    """Network and training settings (all have defaults; see ``bumphunt selector train --help``).

    Network: ``hidden_layers`` x ``units`` dense layers with ``activation``
    (``leaky_relu`` with ``leaky_slope``), sigmoid output. BCE pre-training:
    ``pretrain_epochs``, ``pretrain_batch_size``, ``pretrain_learning_rate``,
    ``pretrain_patience``. Punzi training: ``punzi_epochs`` with learning rate
    ``punzi_learning_rate * lr_decay_rate ** (epoch / lr_decay_epochs)``,
    early stopping after ``patience`` epochs without a better validation
    loss, ``punzi_batches`` event batches per epoch, at most
    ``max_nan_events`` non-finite steps. Loss: ``loss`` ("punzi" or
    "asimov"), ``a``, ``b``, ``formula``, ``asimov_xsec_pb`` (pb),
    ``b_floor`` (events). ``seed`` seeds the weights and the batches;
    ``threads`` limits TensorFlow's thread pools.
    """

    hidden_layers: int = 3
    units: int = 32
    activation: str = "leaky_relu"
    leaky_slope: float = 0.1
    pretrain_epochs: int = 20
    pretrain_batch_size: int = 8192
    pretrain_learning_rate: float = 2e-3
    pretrain_patience: int = 5
    punzi_epochs: int = 500
    punzi_learning_rate: float = 1e-3
    lr_decay_rate: float = 0.5
    lr_decay_epochs: int = 200
    patience: int = 60
    punzi_batches: int = 1
    loss: str = "punzi"
    a: float = 5.0
    b: float = 1.28
    formula: str = "basic"
    asimov_xsec_pb: float = 1.0
    b_floor: float = 1e-6
    max_nan_events: int = 10
    seed: int = 1
    threads: int = 2

    def __post_init__(self) -> None:
        if self.loss not in ("punzi", "asimov"):
            raise InputError(f"loss must be 'punzi' or 'asimov', got {self.loss!r}")
        if self.formula not in ("basic", "extended"):
            raise InputError(f"formula must be 'basic' or 'extended', got {self.formula!r}")
        if self.hidden_layers < 1 or self.units < 1:
            raise InputError("hidden_layers and units must be >= 1")
        if self.punzi_batches < 1:
            raise InputError("punzi_batches must be >= 1")


def build_model(n_features: int, config: TrainConfig) -> Any:
    """Dense Keras network: ``hidden_layers`` x ``units`` with the activation, sigmoid output (seeded by ``config.seed``)."""
    import keras

    keras.utils.set_random_seed(config.seed)
    layers: list[Any] = [keras.Input(shape=(n_features,))]
    for _ in range(config.hidden_layers):
        if config.activation == "leaky_relu":
            layers += [keras.layers.Dense(config.units), keras.layers.LeakyReLU(negative_slope=config.leaky_slope)]
        else:
            layers.append(keras.layers.Dense(config.units, activation=config.activation))
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    return keras.Sequential(layers, name="punzi_net")


@dataclass
class PunziSelector:
    """A trained selector: Keras model + standardisation + metadata.

    ``metadata`` holds what ``bumphunt.selection.training.train_selector``
    stored (windows, working point, training config, beam, version).
    """

    model: Any
    scaler: Standardizer
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """Feature names in the order of the network inputs."""
        return list(self.scaler.names)

    @property
    def beam(self) -> Beam:
        """The beams stored with the selector (``Beam.belle2()`` when none is stored)."""
        return Beam(**self.metadata["beam"]) if "beam" in self.metadata else Beam.belle2()

    @property
    def threshold(self) -> float:
        """Cut on the output at the stored working point (0.5 when none is stored)."""
        return float(self.metadata.get("working_point", {}).get("threshold", 0.5))

    def predict_features(self, X: NDArray, *, batch_size: int = 1 << 17) -> NDArray[np.float32]:
        """Network output for a raw feature matrix (n, n_features)."""
        import tensorflow as tf

        Xs = self.scaler.transform(X)
        out = np.empty(Xs.shape[0], dtype=np.float32)
        for s in range(0, Xs.shape[0], batch_size):  # chunks of rows, not single events
            out[s : s + batch_size] = self.model(tf.constant(Xs[s : s + batch_size]), training=False).numpy()[:, 0]
        if not np.all(np.isfinite(out)):
            raise InputError("network output is not finite; check the input features")
        return out

    def predict(self, features: Mapping[str, NDArray]) -> NDArray[np.float32]:
        """Output from a dict of feature columns (must contain every feature of the model)."""
        return self.predict_features(feature_matrix(features, self.feature_names))

    def apply(self, candidates: dict[str, NDArray], events: Mapping[str, Any] | None = None, *, beam: Beam | None = None) -> NDArray[np.float32]:
        """Add ``punzi_net`` (output in [0, 1]) to ``candidates`` and return it.

        Features are taken from ``candidates`` when it has every feature
        column, else computed from ``events`` (the three-photon dict) with
        ``beam`` (default: the beam stored with the selector).
        """
        names = self.feature_names
        if all(n in candidates for n in names):
            feats = {n: candidates[n] for n in names}
        else:
            if events is None:
                missing = [n for n in names if n not in candidates]
                raise InputError(f"candidates lack feature column(s) {missing}; pass the three-photon events to compute them")
            if beam is None:
                beam = self.beam
            feats = compute_features(events, candidates, beam=beam, names=names)
        y = self.predict(feats)
        candidates["punzi_net"] = y
        return y

    def save(self, path: str | Path) -> Path:
        """Write ``model.keras`` and ``metadata.json`` into the directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(path / "model.keras")
        meta = dict(self.metadata)
        meta["scaling"] = self.scaler.to_dict()
        meta["features"] = self.feature_names
        meta.setdefault("bumphunt_version", __version__)
        (path / "metadata.json").write_text(json.dumps(jsonable(meta), indent=1))
        logger.info("saved selector to %s", path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PunziSelector:
        """Read a selector directory written by ``save``."""
        import keras

        path = Path(path)
        mfile, jfile = path / "model.keras", path / "metadata.json"
        for f in (mfile, jfile):
            if not f.is_file():
                raise InputError(f"{path}: not a selector directory ({f.name} missing)")
        meta = json.loads(jfile.read_text())
        for key in ("scaling", "features"):
            if key not in meta:
                raise InputError(f"{jfile}: missing key {key!r}")
        model = keras.models.load_model(mfile)
        return cls(model, Standardizer.from_dict(meta["scaling"]), meta)


def jsonable(obj: Any) -> Any:
    """Copy of ``obj`` that ``json.dumps`` accepts: numpy arrays and scalars as Python ones, non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def load_selector(path: str | Path) -> PunziSelector:
    """Load a trained selector (directory with ``model.keras`` and ``metadata.json``)."""
    return PunziSelector.load(path)


def apply(model: PunziSelector | str | Path, candidates: dict[str, NDArray], events: Mapping[str, Any] | None = None, *, beam: Beam | None = None) -> NDArray[np.float32]:
    """Evaluate the selector on candidates; adds the column ``punzi_net`` to ``candidates``.

    ``model`` is a ``PunziSelector`` or a path. Features are taken from
    ``candidates`` when it has every feature column, else computed from
    ``events`` (the three-photon dict).
    """
    if not hasattr(model, "predict_features"):
        model = load_selector(model)
    return model.apply(candidates, events, beam=beam)
