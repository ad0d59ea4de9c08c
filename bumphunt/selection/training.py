"""Training the Punzi net: BCE pre-training, Punzi-loss training, working point, comparisons, held-out check.

Training follows Abudinen et al., Eur. Phys. J. C 82 (2022) 121
(arXiv:2110.00810):

1. pre-training with a weighted binary cross-entropy (truth-matched signal of
   every trained mass, each mass with the same total weight, against the
   luminosity-weighted background; both classes with equal total weight);
2. training on the Punzi loss (``bumphunt.selection.loss``) with full (or
   large) batches.

The custom loop (``tf.GradientTape`` in a ``tf.function``) has an exponential
learning-rate schedule, early stopping on the validation split (best weights
restored) and a NaN guard: a step with a non-finite loss or gradient is not
applied; the best weights are restored, the learning rate halved and the
event logged; after ``max_nan_events`` such events training stops.

Afterwards ``train_selector`` chooses the working point
(``bumphunt.selection.working_point``) for the Punzi net and for the
BCE-only net, optimises the cut-based reference selection and compares the
held-out masses with the interpolation between their trained neighbours.
TensorFlow and Keras are imported only inside the functions.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from signal_models._common.version import __version__

from ..errors import InputError
from ..kinematics import Beam
from .features import Standardizer
from .loss import loss_inputs, punzi_loss, to_tensors
from .selector import PunziSelector, TrainConfig, build_model, configure_threads, jsonable
from .training_data import PunziData
from .working_point import WorkingPoint, generalisation_table, optimise_cut_based, scan_working_point

logger = logging.getLogger(__name__)

__all__ = ["TrainingResult", "train_selector"]


@dataclass(frozen=True)
class TrainingResult:
    """Everything a training produced: the selector, histories, working points and comparisons.

    Attributes
    ----------
    selector : PunziSelector
        The trained selector (its metadata hold windows, working point, config, beam).
    history, pretrain_history : dict
        Per-epoch losses of the Punzi training (``epoch``, ``loss``,
        ``val_loss`` in pb or -Z, ``learning_rate``) and of the BCE pre-training.
    outputs, bce_outputs : ndarray (n,)
        Network output per row of the training data after the Punzi
        training and after the pre-training only.
    working_point, bce_working_point : WorkingPoint
        Best global cut of the Punzi net and of the BCE-only net.
    cut_based : dict
        ``optimise_cut_based`` (NaN figures when not compared).
    generalisation : list of dict
        ``generalisation_table`` rows of the held-out masses.
    timing : dict
        Seconds spent in ``pretrain``, ``punzi`` and ``evaluation``.
    nan_events : int
        Punzi-training epochs with a non-finite loss or gradient.
    """

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
        return jsonable({
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
    """Weighted binary cross-entropy pre-training (Keras ``fit`` with early stopping); returns the history."""
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
    """The custom Punzi-loss loop (module docstring); returns the history and the number of non-finite steps."""
    import keras
    import tensorflow as tf

    from signal_models._common.progress import progress

    hist: dict[str, list[float]] = {"epoch": [], "loss": [], "val_loss": [], "learning_rate": []}
    if cfg.punzi_epochs <= 0:
        return hist, 0
    # training batches: random partitions of the training events, sums scaled accordingly
    f_train = data.split_fraction(0)
    if cfg.punzi_batches == 1:
        batches = [to_tensors(loss_inputs(data, scaler, split=0))]
    else:
        rng = np.random.default_rng(cfg.seed + 7)
        part = rng.integers(0, cfg.punzi_batches, size=int(data.event_id.max()) + 1)[data.event_id]
        batches = [to_tensors(loss_inputs(data, scaler, split=None, subset=data.rows(0) & (part == q), fraction=f_train / cfg.punzi_batches))
                   for q in range(cfg.punzi_batches)]
    val = to_tensors(loss_inputs(data, scaler, split=1))
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


def _predict_all(model: Any, X: NDArray[np.float32], *, batch_size: int = 1 << 17) -> NDArray[np.float32]:
    """Network output for standardised features, in chunks of rows."""
    import tensorflow as tf

    out = np.empty(X.shape[0], dtype=np.float32)
    for s in range(0, X.shape[0], batch_size):
        out[s : s + batch_size] = model(tf.constant(X[s : s + batch_size]), training=False).numpy()[:, 0]
    return out


def train_selector(data: PunziData, config: TrainConfig | Mapping[str, Any] | None = None, *, beam: Beam | None = None,
                   compare: bool = True, metadata: Mapping[str, Any] | None = None) -> TrainingResult:
    """BCE pre-training, Punzi training, working point, comparisons and held-out check.

    Parameters
    ----------
    data : PunziData
        From ``bumphunt.selection.prepare_training_data``.
    config : TrainConfig or mapping, optional
        Network and training settings (default ``TrainConfig()``).
    beam : Beam, optional
        Stored in the metadata (to recompute features when applying).
    compare : bool
        Also optimise the cut-based reference selection.
    metadata : mapping, optional
        Extra entries for the selector's metadata (e.g. the configuration it
        was trained from), added after the standard ones.
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
    meta.update(metadata or {})
    selector = PunziSelector(model, scaler, meta)
    timing = {"pretrain": t1 - t0, "punzi": t2 - t1, "evaluation": t3 - t2}
    logger.info("mean sigma_min: Punzi %.4g pb (cut %.2f), BCE %.4g pb, cut-based %.4g pb",
                wp.mean_sigma_min_pb, wp.threshold, wp_bce.mean_sigma_min_pb, cut["mean_sigma_min_pb"])
    return TrainingResult(selector, hist, pre, out, bce_out, wp, wp_bce, cut, gen, timing, nan_events)
