"""The Punzi net: one selection network for all ALP masses (TensorFlow/Keras).

Training follows Abudinen et al., Eur. Phys. J. C 82 (2022) 121
(arXiv:2110.00810):

1. pre-training with a weighted binary cross-entropy (truth-matched signal of
   every trained mass, each mass with the same total weight, against the
   luminosity-weighted background; both classes with equal total weight);
2. training on the Punzi loss with full (or large) batches: for each trained
   mass hypothesis m,
   ``eps_m = sum_{signal generated at m, in window m} y_i / N_gen(m)``,
   ``B_m = sum_{background in window m} w_i y_i``, and the loss is the mean
   over masses of ``sigma_min = S_min(B_m) / (eps_m L)`` (pb); or, with
   ``loss="asimov"``, minus the mean Asimov significance for a reference
   cross-section. Signal sums are segment sums over the signal rows
   (``tf.math.unsorted_segment_sum`` by trained-mass index, which XLA compiles); background window sums are differences of one
   ``tf.cumsum`` over the M_gg-sorted background rows gathered at the window
   edges (O(1) per window, no dense masses x candidates matrix). Sums run in
   float64.

The custom loop (``tf.GradientTape`` in a ``tf.function``) has an exponential
learning-rate schedule, early stopping on the validation split (best weights
restored) and a NaN guard: a step with a non-finite loss or gradient is not
applied; the best weights are restored, the learning rate halved and the
event logged; after ``max_nan_events`` such events training stops.

Background windows with no background at all would make ``sqrt(B)``'s
gradient infinite; ``B`` is therefore evaluated as ``B + b_floor``
(``b_floor`` events, default 1e-6) in the loss.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from signal_models._common.version import __version__
from ..errors import InputError
from .features import Standardizer, compute_features, feature_matrix
from ..kinematics import Beam
from .core import (
    PunziData,
    WorkingPoint,
    generalisation_table,
    optimise_cut_based,
    scan_working_point,
)

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "PunziSelector", "TrainingResult", "configure_threads", "build_model", "LossInputs",
           "loss_inputs", "punzi_loss", "train_selector"]


def configure_threads(threads: int | None = None) -> None:
    """Limit TensorFlow's thread pools (default ``BUMPHUNT_TF_THREADS`` or 2); no-op once TF runs."""
    import tensorflow as tf

    n = int(threads or os.environ.get("BUMPHUNT_TF_THREADS", 2))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, n)))
    except RuntimeError:  # already initialised
        pass


@dataclass
class TrainConfig:
    """Network and training settings (all have defaults; see ``bumphunt selector train --help``)."""

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
    """Dense network: ``hidden_layers`` x ``units`` with the activation, sigmoid output."""
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


# ---------------------------------------------------------------------------
# loss


@dataclass
class LossInputs:
    """Tensors-to-be of one (mini-)batch of the Punzi loss.

    ``x`` stacks the ``n_sig`` signal rows (sorted by trained-mass index
    ``seg``) and then the background rows sorted by M_gg; ``start``/``stop``
    index the background cumulative sum at each window's edges.
    """

    x: NDArray[np.float32]
    n_sig: int
    seg: NDArray[np.int32]
    w_sig: NDArray[np.float64]
    w_bkg: NDArray[np.float64]
    start: NDArray[np.int32]
    stop: NDArray[np.int32]
    n_masses: int
    present: NDArray[np.float64]


def loss_inputs(data: PunziData, scaler: Standardizer, *, split: int | None, subset: NDArray | None = None, fraction: float | None = None) -> LossInputs:
    """Build ``LossInputs`` for the trained masses from the rows of a split (or an explicit row subset)."""
    rows = data.rows(split) if subset is None else subset
    f = data.split_fraction(split) if fraction is None else fraction
    trained_idx = np.flatnonzero(data.trained)
    compact = np.full(data.n_masses, -1, dtype=np.int64)
    compact[trained_idx] = np.arange(trained_idx.size)
    sig = rows & (data.label == 1) & data.in_window
    sig &= data.trained[np.maximum(data.mass_idx, 0)]
    s_rows = np.flatnonzero(sig)
    seg = compact[data.mass_idx[s_rows]]
    order = np.argsort(seg, kind="stable")
    s_rows, seg = s_rows[order], seg[order]
    b_rows = np.flatnonzero(rows & (data.label == 0))
    b_rows = b_rows[np.argsort(data.mgg[b_rows], kind="stable")]
    mg = data.mgg[b_rows]
    lo, hi = data.lo[trained_idx], data.hi[trained_idx]
    x = scaler.transform(data.X[np.concatenate([s_rows, b_rows])])
    return LossInputs(
        x=x, n_sig=int(s_rows.size), seg=seg.astype(np.int32), w_sig=data.weight[s_rows] / f,
        w_bkg=data.weight[b_rows] / f, start=np.searchsorted(mg, lo, side="left").astype(np.int32),
        stop=np.searchsorted(mg, hi, side="right").astype(np.int32), n_masses=int(trained_idx.size),
        present=(np.bincount(seg, minlength=trained_idx.size) > 0).astype(float),
    )


def _to_tensors(li: LossInputs) -> dict[str, Any]:
    import tensorflow as tf

    return {"x": tf.constant(li.x), "seg": tf.constant(li.seg), "w_sig": tf.constant(li.w_sig, tf.float64),
            "w_bkg": tf.constant(li.w_bkg, tf.float64), "start": tf.constant(li.start), "stop": tf.constant(li.stop),
            "n_sig": li.n_sig, "n_masses": li.n_masses, "present": tf.constant(li.present, tf.float64)}


def punzi_loss(y: Any, t: Mapping[str, Any], *, lumi_fb: float, a: float, b: float, formula: str = "basic",
               loss: str = "punzi", asimov_xsec_pb: float = 1.0, b_floor: float = 1e-6) -> tuple[Any, Any, Any]:
    """Loss from network outputs ``y`` (n,) aligned with the rows of ``t`` (from ``_to_tensors``).

    Returns ``(loss, eps, B)`` (tensors; eps, B per trained mass). Masses without
    signal rows in this batch (``t["present"]`` 0) do not enter the mean.
    """
    import tensorflow as tf

    y = tf.cast(tf.reshape(y, [-1]), tf.float64)
    n_sig = t["n_sig"]
    ys, yb = y[:n_sig], y[n_sig:]
    eps = tf.math.unsorted_segment_sum(ys * t["w_sig"], t["seg"], num_segments=t["n_masses"])
    cum = tf.concat([tf.zeros([1], tf.float64), tf.cumsum(yb * t["w_bkg"])], axis=0)
    B = tf.maximum(tf.gather(cum, t["stop"]) - tf.gather(cum, t["start"]), 0.0)
    Bf = B + b_floor
    lumi_pb = lumi_fb * 1000.0
    present = t["present"]
    n_present = tf.maximum(tf.reduce_sum(present), 1.0)
    eps_safe = tf.where(present > 0, eps, tf.ones_like(eps))
    if loss == "punzi":
        sb = tf.sqrt(Bf)
        const = b * b / 2.0 if formula == "basic" else a * a / 8.0 + 9.0 * b * b / 13.0
        smin = const + a * sb + 0.5 * b * tf.sqrt(b * b + 4.0 * a * sb + 4.0 * Bf)
        value = tf.reduce_sum(present * smin / (eps_safe * lumi_pb + 1e-300)) / n_present
    else:
        S = eps * lumi_pb * asimov_xsec_pb
        z = tf.sqrt(tf.maximum(2.0 * ((S + Bf) * tf.math.log1p(S / Bf) - S), 1e-300))
        value = -tf.reduce_sum(present * z) / n_present
    return value, eps, B


# ---------------------------------------------------------------------------
# the selector


@dataclass
class PunziSelector:
    """A trained selector: Keras model + standardisation + metadata."""

    model: Any
    scaler: Standardizer
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return list(self.scaler.names)

    @property
    def threshold(self) -> float:
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
        """Add ``punzi_net`` (output in [0, 1]) to ``candidates`` and return it."""
        names = self.feature_names
        if all(n in candidates for n in names):
            feats = {n: candidates[n] for n in names}
        else:
            if events is None:
                missing = [n for n in names if n not in candidates]
                raise InputError(f"candidates lack feature column(s) {missing}; pass the three-photon events to compute them")
            if beam is None:
                beam = Beam(**self.metadata["beam"]) if "beam" in self.metadata else Beam.belle2()
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
        (path / "metadata.json").write_text(json.dumps(_jsonable(meta), indent=1))
        logger.info("saved selector to %s", path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PunziSelector":
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


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# ---------------------------------------------------------------------------
# training


@dataclass
class TrainingResult:
    """Everything a training produced: the selector, histories, working points and comparisons."""

    selector: PunziSelector
    history: dict[str, list[float]]
    pretrain_history: dict[str, list[float]]
    outputs: NDArray[np.float32]
    bce_outputs: NDArray[np.float32]
    working_point: WorkingPoint
    bce_working_point: WorkingPoint
    cut_based: dict[str, Any]
    generalisation: list[dict[str, float]]
    timing: dict[str, float]
    nan_events: int

    def summary(self) -> dict[str, Any]:
        """JSON-friendly figures: mean sigma_min of the three selections, per-mass tables, held-out check."""
        data_masses = self.working_point.per_mass["mass"]
        return _jsonable({
            "mean_sigma_min_pb": {"punzi": self.working_point.mean_sigma_min_pb,
                                  "bce": self.bce_working_point.mean_sigma_min_pb,
                                  "cut_based": self.cut_based["mean_sigma_min_pb"]},
            "working_point": self.working_point.threshold,
            "bce_working_point": self.bce_working_point.threshold,
            "cut_based": {k: self.cut_based[k] for k in ("cos_max", "ratio_min")},
            "per_mass": {"mass": data_masses,
                         "punzi_sigma_min_pb": self.working_point.per_mass["sigma_min_pb"],
                         "bce_sigma_min_pb": self.bce_working_point.per_mass["sigma_min_pb"],
                         "cut_sigma_min_pb": self.cut_based["per_mass"]["sigma_min_pb"],
                         "punzi_efficiency": self.working_point.per_mass["efficiency"],
                         "punzi_background": self.working_point.per_mass["background"]},
            "generalisation": self.generalisation,
            "max_heldout_deviation": max((abs(r["ratio"] - 1.0) for r in self.generalisation), default=None),
            "timing_s": self.timing,
            "nan_events": self.nan_events,
        })


def _bce_weights(data: PunziData, rows: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Equal total weight per trained mass for signal; luminosity weights for background; classes balanced."""
    w = np.zeros(data.label.size)
    sig = rows & (data.label == 1) & data.in_window & data.trained[np.maximum(data.mass_idx, 0)]
    counts = np.bincount(data.mass_idx[sig], minlength=data.n_masses).astype(float)
    w[sig] = 1.0 / counts[data.mass_idx[sig]]
    lo, hi = data.lo[data.trained].min(), data.hi[data.trained].max()
    bkg = rows & (data.label == 0) & (data.mgg >= lo) & (data.mgg <= hi)
    w[bkg] = data.weight[bkg]
    ssum, bsum = w[sig].sum(), w[bkg].sum()
    if ssum <= 0 or bsum <= 0:
        raise InputError("BCE pre-training needs signal and background in the trained windows")
    w[sig] *= 0.5 / ssum
    w[bkg] *= 0.5 / bsum
    n_used = int(sig.sum() + bkg.sum())
    return w * n_used  # mean weight 1 over the used rows


def _pretrain(model: Any, data: PunziData, scaler: Standardizer, cfg: TrainConfig) -> dict[str, list[float]]:
    import keras

    hist: dict[str, list[float]] = {"loss": [], "val_loss": []}
    if cfg.pretrain_epochs <= 0:
        return hist
    tr, va = data.rows(0), data.rows(1)
    wt, wv = _bce_weights(data, tr), _bce_weights(data, va)
    it, iv = np.flatnonzero(wt > 0), np.flatnonzero(wv > 0)
    model.compile(optimizer=keras.optimizers.Adam(cfg.pretrain_learning_rate), loss="binary_crossentropy")
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.pretrain_patience, restore_best_weights=True)
    h = model.fit(
        scaler.transform(data.X[it]), data.label[it].astype(np.float32), sample_weight=wt[it].astype(np.float32),
        validation_data=(scaler.transform(data.X[iv]), data.label[iv].astype(np.float32), wv[iv].astype(np.float32)),
        epochs=cfg.pretrain_epochs, batch_size=cfg.pretrain_batch_size, shuffle=True, verbose=0, callbacks=[stop],
    )
    hist = {k: [float(x) for x in v] for k, v in h.history.items()}
    logger.info("BCE pre-training: %d epochs, final val loss %.4g", len(hist.get("loss", [])), hist["val_loss"][-1] if hist.get("val_loss") else float("nan"))
    return hist


def _punzi_train(model: Any, data: PunziData, scaler: Standardizer, cfg: TrainConfig) -> tuple[dict[str, list[float]], int]:
    import keras
    import tensorflow as tf

    from signal_models._common.progress import progress

    hist: dict[str, list[float]] = {"epoch": [], "loss": [], "val_loss": [], "learning_rate": []}
    if cfg.punzi_epochs <= 0:
        return hist, 0
    # training batches: random partitions of the training events, sums scaled accordingly
    f_train = data.split_fraction(0)
    if cfg.punzi_batches == 1:
        batches = [_to_tensors(loss_inputs(data, scaler, split=0))]
    else:
        rng = np.random.default_rng(cfg.seed + 7)
        part = rng.integers(0, cfg.punzi_batches, size=int(data.event_id.max()) + 1)[data.event_id]
        batches = [_to_tensors(loss_inputs(data, scaler, split=None, subset=data.rows(0) & (part == q), fraction=f_train / cfg.punzi_batches))
                   for q in range(cfg.punzi_batches)]
    val = _to_tensors(loss_inputs(data, scaler, split=1))
    kw = dict(lumi_fb=data.lumi_fb, a=cfg.a, b=cfg.b, formula=cfg.formula, loss=cfg.loss,
              asimov_xsec_pb=cfg.asimov_xsec_pb, b_floor=cfg.b_floor)
    opt = keras.optimizers.Adam(learning_rate=cfg.punzi_learning_rate)
    variables = model.trainable_variables

    def make_grad_step(t: dict[str, Any]) -> Any:
        @tf.function
        def step() -> Any:
            with tf.GradientTape() as tape:
                value, _, _ = punzi_loss(model(t["x"], training=True), t, **kw)
            grads = tape.gradient(value, variables)
            finite = tf.math.is_finite(value)
            for g in grads:
                finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(g)))
            return value, grads, finite

        return step

    def make_eval(t: dict[str, Any]) -> Any:
        @tf.function
        def ev() -> Any:
            value, _, _ = punzi_loss(model(t["x"], training=False), t, **kw)
            return value

        return ev

    steps = [make_grad_step(t) for t in batches]
    val_eval = make_eval(val)

    @tf.function
    def apply_grads(grads: Any) -> None:
        opt.apply_gradients(zip(grads, variables))

    best = float(np.inf)
    best_w = copy.deepcopy(model.get_weights())
    wait = 0
    nan_events = 0
    lr_scale = 1.0
    for epoch in progress(range(cfg.punzi_epochs), total=cfg.punzi_epochs, description="Punzi training"):
        lr = cfg.punzi_learning_rate * lr_scale * cfg.lr_decay_rate ** (epoch / max(cfg.lr_decay_epochs, 1))
        opt.learning_rate.assign(lr)
        losses = []
        bad = False
        for step in steps:
            value, grads, finite = step()
            if not bool(finite):
                bad = True
                break
            apply_grads(grads)
            losses.append(float(value))
        v = float(val_eval()) if not bad else float("nan")
        if bad or not np.isfinite(v):
            nan_events += 1
            lr_scale *= 0.5
            model.set_weights(best_w)
            logger.warning("Punzi training epoch %d: non-finite loss or gradient; step skipped, best weights restored, "
                           "learning rate halved (event %d of at most %d)", epoch, nan_events, cfg.max_nan_events)
            if nan_events >= cfg.max_nan_events:
                logger.warning("too many non-finite steps: stopping Punzi training at epoch %d", epoch)
                break
            continue
        hist["epoch"].append(epoch)
        hist["loss"].append(float(np.mean(losses)))
        hist["val_loss"].append(v)
        hist["learning_rate"].append(lr)
        if v < best:
            best, wait = v, 0
            best_w = copy.deepcopy(model.get_weights())
        else:
            wait += 1
            if wait >= cfg.patience:
                logger.info("early stopping at epoch %d (best validation loss %.5g)", epoch, best)
                break
    model.set_weights(best_w)
    return hist, nan_events


def _predict_all(model: Any, X: NDArray[np.float32], batch_size: int = 1 << 17) -> NDArray[np.float32]:
    import tensorflow as tf

    out = np.empty(X.shape[0], dtype=np.float32)
    for s in range(0, X.shape[0], batch_size):
        out[s : s + batch_size] = model(tf.constant(X[s : s + batch_size]), training=False).numpy()[:, 0]
    return out


def train_selector(data: PunziData, config: TrainConfig | Mapping[str, Any] | None = None, *, beam: Beam | None = None,
                   compare: bool = True) -> TrainingResult:
    """BCE pre-training, Punzi training, working point, comparisons and held-out check.

    Parameters
    ----------
    data : PunziData
        From ``bumphunt.selection.prepare_training_data``.
    config : TrainConfig or mapping, optional
    beam : Beam, optional
        Stored in the metadata (to recompute features when applying).
    compare : bool
        Also optimise the cut-based reference selection.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig(**dict(config or {}))
    configure_threads(cfg.threads)
    beam = beam or Beam.belle2()
    scaler = Standardizer.fit(data.X[data.rows(0)], data.names)
    model = build_model(len(data.names), cfg)
    t0 = time.perf_counter()
    pre = _pretrain(model, data, scaler, cfg)
    t1 = time.perf_counter()
    Xall = scaler.transform(data.X)
    bce_out = _predict_all(model, Xall)
    hist, nan_events = _punzi_train(model, data, scaler, cfg)
    t2 = time.perf_counter()
    out = _predict_all(model, Xall)
    kw = dict(a=cfg.a, b=cfg.b, formula=cfg.formula)
    wp = scan_working_point(data, out, **kw)
    wp_bce = scan_working_point(data, bce_out, **kw)
    cut = optimise_cut_based(data, **kw) if compare else {"mean_sigma_min_pb": float("nan"), "cos_max": None, "ratio_min": None,
                                                           "per_mass": {"sigma_min_pb": np.full(data.n_masses, np.nan)}}
    gen = generalisation_table(data.masses, wp.per_mass["sigma_min_pb"], data.trained, data.heldout,
                               efficiency=wp.per_mass["efficiency"], n_gen=data.n_gen)
    t3 = time.perf_counter()
    meta = {
        "bumphunt_version": __version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "windows": data.windows(),
        "lumi_fb": data.lumi_fb,
        "working_point": {"threshold": wp.threshold, "mean_sigma_min_pb": wp.mean_sigma_min_pb,
                          "per_mass_sigma_min_pb": wp.per_mass["sigma_min_pb"], "per_mass_efficiency": wp.per_mass["efficiency"],
                          "per_mass_background": wp.per_mass["background"]},
        "training_config": asdict(cfg),
        "beam": beam.to_dict(),
        "validation_fraction": data.validation_fraction,
    }
    selector = PunziSelector(model, scaler, meta)
    timing = {"pretrain": t1 - t0, "punzi": t2 - t1, "evaluation": t3 - t2}
    logger.info("mean sigma_min: Punzi %.4g pb (cut %.2f), BCE %.4g pb, cut-based %.4g pb",
                wp.mean_sigma_min_pb, wp.threshold, wp_bce.mean_sigma_min_pb, cut["mean_sigma_min_pb"])
    return TrainingResult(selector, hist, pre, out, bce_out, wp, wp_bce, cut, gen, timing, nan_events)
