"""``fits.fit`` and ``fits.upper_limit`` on a list of channels: results in units of the shared parameter of interest."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from signal_models._common.defaults import DEFAULT_CL

from .channels import Channel, CombinedModel, ShapeUncertainty, SpuriousSignal, YieldUncertainty
from .combined import CombinedBatch
from .combined_rows import CombinedRequest
from .errors import FitInputError
from .inputs import check_cl
from .results import CombinedFitResult, LimitResult

logger = logging.getLogger(__name__)

__all__ = ["CombinedFitResult", "fit_channels", "upper_limit_channels", "is_channel_list"]


def is_channel_list(obj: Any) -> bool:
    """Whether ``obj`` is a ``fits.Channel`` or a non-empty sequence of them."""
    if isinstance(obj, Channel):
        return True
    return isinstance(obj, (list, tuple)) and len(obj) > 0 and all(isinstance(c, Channel) for c in obj)


def _model(channels: Any, yield_uncertainties: Sequence[YieldUncertainty], shape_uncertainties: Sequence[ShapeUncertainty],
           spurious_signals: Sequence[SpuriousSignal]) -> CombinedModel:
    chans = [channels] if isinstance(channels, Channel) else list(channels)
    return CombinedModel.build(chans, yields=yield_uncertainties, shapes=shape_uncertainties, spurious=spurious_signals)


def _result(model: CombinedModel, batch: CombinedBatch) -> CombinedFitResult:
    bf = batch.fit_
    assert bf is not None
    empty = [n for n, c in zip(model.names, model.channels) if c.n_events == 0]
    reason = []
    if empty:
        reason.append(f"channel(s) {empty} have no candidates in their window (their expected signal still constrains mu)")
    if not bf.converged[0]:
        reason.append("the combined fit did not converge")
    nuis = {n: (float(bf.nuisance_hat[0, i]), float(bf.nuisance_err[0, i])) for i, n in enumerate(model.nuisance_names)}
    return CombinedFitResult(
        nsig=float(bf.mu_hat[0]), nsig_err=float(bf.mu_err[0]), nbkg=float(bf.channel_background[0].sum()), nll=float(bf.nll_hat[0]),
        converged=bool(bf.converged[0]), reason="; ".join(reason), z_local=float(bf.z_local[0]), channels=model.names,
        channel_nsig={n: float(v) for n, v in zip(model.names, bf.channel_yields[0])},
        channel_nbkg={n: float(v) for n, v in zip(model.names, bf.channel_background[0])},
        nuisances=nuis, nll_bkg_only=float(bf.nll_zero[0]),
    )


def fit_channels(
    channels: Channel | Sequence[Channel],
    *,
    yield_uncertainties: Sequence[YieldUncertainty] = (),
    shape_uncertainties: Sequence[ShapeUncertainty] = (),
    spurious_signals: Sequence[SpuriousSignal] = (),
    engine: str = "vectorised",
) -> CombinedFitResult:
    """Combined extended unbinned fit of channels sharing ``mu`` (see ``fits.fit``)."""
    model = _model(channels, yield_uncertainties, shape_uncertainties, spurious_signals)
    if engine == "zfit":
        from .zfit_combined import fit_channels_zfit  # imports TensorFlow

        return fit_channels_zfit(model)
    if engine != "vectorised":
        raise FitInputError(f"engine: expected 'vectorised' or 'zfit', got {engine!r}")
    batch = CombinedBatch(CombinedRequest.from_model(model))
    batch.fit()
    return _result(model, batch)


def upper_limit_channels(
    channels: Channel | Sequence[Channel],
    *,
    cl: float = DEFAULT_CL,
    yield_uncertainties: Sequence[YieldUncertainty] = (),
    shape_uncertainties: Sequence[ShapeUncertainty] = (),
    spurious_signals: Sequence[SpuriousSignal] = (),
    engine: str = "vectorised",
) -> LimitResult:
    """Asymptotic CLs upper limit on the shared ``mu`` of channels (see ``fits.upper_limit``)."""
    from .combined_limits import expected_limits, observed_limits

    check_cl(cl)
    model = _model(channels, yield_uncertainties, shape_uncertainties, spurious_signals)
    if engine == "zfit":
        from .zfit_combined import upper_limit_channels_hepstats  # imports TensorFlow

        return upper_limit_channels_hepstats(model, cl=cl)
    if engine != "vectorised":
        raise FitInputError(f"engine: expected 'vectorised' or 'zfit', got {engine!r}")
    batch = CombinedBatch(CombinedRequest.from_model(model))
    batch.fit()
    fit = _result(model, batch)
    obs, obs_ok = observed_limits(batch, cl=cl)
    exp, exp_ok = expected_limits(batch, cl=cl)
    ok = bool(obs_ok[0] and exp_ok[0] and fit.converged)
    return LimitResult(observed=float(obs[0]), expected=np.asarray(exp[0]), cl=cl, poi="mu", method="asymptotic (combined channels)",
                       fit=fit, converged=ok, reason=fit.reason or ("" if ok else "limit search did not converge"),
                       details={"channels": model.names, "nuisances": model.nuisance_names})
