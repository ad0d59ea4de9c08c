"""The Punzi loss: the mean minimum detectable cross-section over mass hypotheses, from soft network outputs (TensorFlow).

Following Abudinen et al., Eur. Phys. J. C 82 (2022) 121 (arXiv:2110.00810),
the hard cut is replaced by the network output ``y_i`` in [0, 1]: for each
trained mass hypothesis m,
``eps_m = sum_{signal generated at m, in window m} y_i / N_gen(m)``,
``B_m = sum_{background in window m} w_i y_i``, and the loss is the mean
over masses of ``sigma_min = S_min(B_m) / (eps_m L)`` (pb,
``bumphunt.selection.figures_of_merit``); or, with ``loss="asimov"``, minus
the mean Asimov significance for a reference cross-section.

Signal sums are segment sums over the signal rows
(``tf.math.unsorted_segment_sum`` by trained-mass index, which XLA compiles);
background window sums are differences of one ``tf.cumsum`` over the
M_gg-sorted background rows gathered at the window edges (O(1) per window,
no dense masses x candidates matrix). Sums run in float64.

Background windows with no background at all would make ``sqrt(B)``'s
gradient infinite; ``B`` is therefore evaluated as ``B + b_floor``
(``b_floor`` events, default 1e-6) in the loss.

``loss_inputs`` arranges the rows of a ``PunziData`` split (numpy),
``to_tensors`` turns them into constants, ``punzi_loss`` evaluates the loss;
TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .features import Standardizer
from .training_data import PunziData

__all__ = ["LossInputs", "loss_inputs", "to_tensors", "punzi_loss"]


@dataclass(frozen=True)
class LossInputs:
    """Tensors-to-be of one (mini-)batch of the Punzi loss.

    ``x`` stacks the ``n_sig`` signal rows (sorted by trained-mass index
    ``seg``) and then the background rows sorted by M_gg; ``start``/``stop``
    index the background cumulative sum at each window's edges. ``w_sig``
    (``1 / N_gen``) and ``w_bkg`` (events) are already divided by the event
    fraction of the batch; ``present`` is 1 for trained masses with signal
    rows in the batch.
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


def loss_inputs(data: PunziData, scaler: Standardizer, *, split: int | None, subset: NDArray[np.bool_] | None = None,
                fraction: float | None = None) -> LossInputs:
    """Build ``LossInputs`` for the trained masses from the rows of a split (or an explicit row subset).

    Parameters
    ----------
    data : PunziData
    scaler : Standardizer
        Feature standardisation of the network.
    split : {0, 1, None}
        Training (0), validation (1) or all rows.
    subset : ndarray of bool, optional
        Explicit row mask instead of ``split`` (mini-batches).
    fraction : float, optional
        Event fraction of ``subset`` (default: that of ``split``); sums are divided by it.
    """
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


def to_tensors(li: LossInputs) -> dict[str, Any]:
    """TensorFlow constants of ``LossInputs`` (the ``t`` argument of ``punzi_loss``)."""
    import tensorflow as tf

    return {"x": tf.constant(li.x), "seg": tf.constant(li.seg), "w_sig": tf.constant(li.w_sig, tf.float64),
            "w_bkg": tf.constant(li.w_bkg, tf.float64), "start": tf.constant(li.start), "stop": tf.constant(li.stop),
            "n_sig": li.n_sig, "n_masses": li.n_masses, "present": tf.constant(li.present, tf.float64)}


def punzi_loss(y: Any, t: Mapping[str, Any], *, lumi_fb: float, a: float, b: float, formula: str = "basic",
               loss: str = "punzi", asimov_xsec_pb: float = 1.0, b_floor: float = 1e-6) -> tuple[Any, Any, Any]:
    """Loss from network outputs ``y`` (n,) aligned with the rows of ``t`` (from ``to_tensors``).

    Parameters
    ----------
    y : tensor or array (n,)
        Network outputs in [0, 1].
    t : mapping
        ``to_tensors(loss_inputs(...))``.
    lumi_fb : float
        Luminosity (fb^-1) of the sensitivity.
    a, b : float
        Punzi significance and power (one-sided Gaussian sigmas).
    formula : {"basic", "extended"}
        Punzi S_min variant (``bumphunt.selection.figures_of_merit``).
    loss : {"punzi", "asimov"}
        Mean sigma_min (pb), or minus the mean Asimov significance at ``asimov_xsec_pb``.
    asimov_xsec_pb : float
        Reference signal cross-section (pb) of the Asimov loss.
    b_floor : float
        Events added to B in the loss (finite gradient in empty windows).

    Returns
    -------
    tuple
        ``(loss, eps, B)`` (tensors; eps, B per trained mass). Masses without
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
