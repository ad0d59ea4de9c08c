"""The public entry points of the kinematic fit: ``fit``, ``fit_events``, ``apply_to_events``.

``fit`` checks the inputs, chooses the engine (``resolve_engine``: the
compiled one when numba can be imported, else numpy), runs it and records
the settings in the result. ``fit_events`` / ``apply_to_events`` do the same
for a three-photon dict and add the fitted photons to it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError
from ..kinematics import Beam
from .engine_numpy import CHUNK_SIZE, fit_numpy
from .inputs import BeamCovSpec, beam_covariance, check_arrays, resolve_beam, resolve_beam_cov
from .options import FitOptions
from .photon_covariance import PhotonCovarianceModel
from .result import KinFitResult

logger = logging.getLogger(__name__)

__all__ = ["fit", "fit_events", "apply_to_events", "resolve_engine", "beam_covariance", "ENGINES"]

#: Values of ``fit(..., engine=)``.
ENGINES = ("auto", "numba", "numpy")


def resolve_engine(engine: str) -> str:
    """The engine that runs for the requested one: ``"numba"`` or ``"numpy"``.

    ``"auto"`` gives ``"numba"`` when numba can be imported, else
    ``"numpy"``. numba is imported here, on the first fit, never by
    ``import bumphunt``; its settings for the compiled engine (a fork-safe
    threading layer) are applied here too, before the kernel first runs.

    Raises
    ------
    InputError
        Unknown engine, or ``"numba"`` without an importable numba.
    """
    if engine not in ENGINES:
        raise InputError(f"kinfit: engine must be one of {ENGINES}, got {engine!r}")
    if engine == "numpy":
        return "numpy"
    try:
        from . import _engine_numba
    except ImportError as exc:
        if engine == "numba":
            raise InputError(f"kinfit: engine='numba' needs the numba package, which cannot be imported ({exc})") from exc
        logger.info("kinfit: numba not importable (%s); using the numpy engine", exc)
        return "numpy"
    _engine_numba.configure_numba()
    return "numba"


def fit(
    E: ArrayLike,
    theta: ArrayLike,
    phi: ArrayLike,
    cov: ArrayLike,
    beam: Beam | None = None,
    *,
    max_iter: int = FitOptions.max_iter,
    max_halvings: int = FitOptions.max_halvings,
    tol_chi2: float = FitOptions.tol_chi2,
    tol_constraint: float = FitOptions.tol_constraint,
    beam_cov: BeamCovSpec = None,
    full_cov: bool = False,
    chunk_size: int = CHUNK_SIZE,
    engine: str = "auto",
) -> KinFitResult:
    """4C kinematic fit of three photons per event to the beam four-momentum.

    Parameters
    ----------
    E, theta, phi : array_like, shape (n, 3)
        Measured photon energies (GeV), polar angles and azimuths (rad).
    cov : array_like, shape (n, 3, 3, 3)
        Each photon's 3x3 covariance of (E, theta, phi) in GeV^2, GeV rad,
        rad^2; correlations allowed.
    beam : Beam, optional
        Beams; ``Beam.belle2()`` by default. The constraint is
        ``sum_i p_i = beam.p4`` in the lab.
    max_iter : int
        Maximum number of linearisations per event.
    max_halvings : int
        Maximum number of step halvings per iteration.
    tol_chi2 : float
        Convergence tolerance on the change of chi2 between iterations.
    tol_constraint : float
        Convergence tolerance (GeV) on every component of the
        four-momentum balance at the last linearisation point.
    beam_cov : None, "spread" or array (4, 4)
        None (default): the beam four-momentum is exact (hard constraint).
        "spread": soft beam constraint from ``beam.e_spread_her/ler``
        (see ``beam_covariance``); an array: that covariance of the beam
        four-momentum (GeV^2). ndf stays 4; chi2 includes the beam term.
    full_cov : bool
        Also return the full (n, 9, 9) covariance of the fitted parameters.
    chunk_size : int
        Events processed together (cache-sized blocks; numpy engine only).
    engine : {"auto", "numba", "numpy"}
        ``"numba"``: the compiled kernel, threaded over events
        (``bumphunt.kinfit._engine_numba``; the first call in a fresh
        installation compiles it, later processes load it from numba's
        cache). ``"numpy"``: the vectorised numpy engine. Both give the same
        results to rounding (~1e-12). ``"auto"`` (default): numba when it
        can be imported, else numpy.

    Returns
    -------
    KinFitResult
        ``options`` records the settings, ``beam_cov``, the beam and the
        engine that ran.

    Raises
    ------
    InputError
        Wrong shapes or non-numeric input, invalid settings. Invalid values
        in single events (NaN/inf, E <= 0, theta outside (0, pi), covariance
        not positive definite) do not raise: those events are returned with
        ``converged=False`` and a ``reason``.

    Examples
    --------
    Exact toy events of a 3 GeV ALP (photons 0 and 1 from its decay), smeared
    with the toy calorimeter's resolution, then fitted to the beam:

    >>> import numpy as np
    >>> from bumphunt.kinematics import Beam, invariant_mass, p4_from_spherical
    >>> from bumphunt.kinfit import fit
    >>> from bumphunt.toymc.exact import three_photon_sample
    >>> beam = Beam.belle2()
    >>> ev = three_photon_sample(2000, beam=beam, rng=np.random.default_rng(1), m_a=3.0, sort=False)
    >>> res = fit(ev["E"], ev["theta"], ev["phi"], ev["cov"], beam)
    >>> bool(res.converged.all()), round(float(res.pvalue.mean()), 1)  # p-values flat: mean 0.5
    (True, 0.5)
    >>> def mgg(E, theta, phi):
    ...     p4 = p4_from_spherical(E[:, :2], theta[:, :2], phi[:, :2])
    ...     return invariant_mass(p4[:, 0], p4[:, 1])
    >>> raw, fitted = mgg(ev["E"], ev["theta"], ev["phi"]), mgg(res.E, res.theta, res.phi)
    >>> bool(fitted.std() < 0.5 * raw.std())  # the fit more than halves the M_gg resolution
    True
    """
    beam = resolve_beam(beam)
    options = FitOptions.checked(max_iter=max_iter, max_halvings=max_halvings, tol_chi2=tol_chi2,
                         tol_constraint=tol_constraint, full_cov=full_cov)
    E, theta, phi, cov = check_arrays(E, theta, phi, cov)
    Vb = resolve_beam_cov(beam, beam_cov)
    P0 = np.asarray(beam.p4, dtype=np.float64)
    ran = resolve_engine(engine)
    if ran == "numba":
        from ._engine_numba import fit_numba

        res = fit_numba(E, theta, phi, cov, P0, Vb, options)
    else:
        res = fit_numpy(E, theta, phi, cov, P0, Vb, options, chunk_size=chunk_size)
    n_bad = res.n_events - int(np.count_nonzero(res.converged))
    if n_bad:
        logger.info("kinfit: %d of %d events did not converge", n_bad, res.n_events)
    recorded = {**options.to_dict(), "beam_cov": None if Vb is None else Vb.tolist(), "beam": beam.to_dict(), "engine": ran}
    return dataclasses.replace(res, options=recorded)


def apply_to_events(
    events: dict[str, NDArray],
    *,
    beam: Beam | None = None,
    covariance_model: PhotonCovarianceModel | None = None,
    **fit_options: Any,
) -> dict[str, NDArray]:
    """Run the kinematic fit on a three-photon dict and add the fitted photons.

    Parameters
    ----------
    events : dict
        Three-photon events (``E``, ``theta``, ``phi`` (n, 3); ``cov``
        (n, 3, 3, 3) and/or ``region`` (n, 3)), see the data contract.
    beam : Beam, optional
        Default ``Beam.belle2()``.
    covariance_model : PhotonCovarianceModel, optional
        When given, the photon covariances come from this model (e.g. a
        calibration loaded with ``PhotonCovarianceModel.load``); otherwise the
        ``cov`` of the events is used, or the default model when there is none.
    **fit_options
        Passed to ``fit`` (tolerances, ``beam_cov``, ``engine``, ...).

    Returns
    -------
    dict
        A new dict with the input arrays plus ``fit_E``, ``fit_theta``,
        ``fit_phi`` (n, 3; the measured values for events that did not
        converge), ``kinfit_chi2`` (+inf if not converged),
        ``kinfit_pvalue``, ``kinfit_converged``, ``kinfit_status`` (0 when
        converged, see ``STATUS_REASONS``) and ``kinfit_n_iter``.
    """
    return fit_events(events, beam=beam, covariance_model=covariance_model, **fit_options)[0]


def fit_events(
    events: dict[str, NDArray],
    *,
    beam: Beam | None = None,
    covariance_model: PhotonCovarianceModel | None = None,
    **fit_options: Any,
) -> tuple[dict[str, NDArray], KinFitResult]:
    """As ``apply_to_events``, also returning the full ``KinFitResult`` (pulls, covariances)."""
    for key in ("E", "theta", "phi"):
        if key not in events:
            raise InputError(f"kinfit: three-photon events lack the field {key!r}")
    if covariance_model is not None:
        cov = covariance_model.event_covariance(events)
    elif "cov" in events:
        cov = events["cov"]
    else:
        cov = PhotonCovarianceModel().event_covariance(events)
    res = fit(events["E"], events["theta"], events["phi"], cov, beam, **fit_options)
    out = dict(events)
    out["fit_E"] = res.E
    out["fit_theta"] = res.theta
    out["fit_phi"] = res.phi
    out["kinfit_chi2"] = res.chi2
    out["kinfit_pvalue"] = res.pvalue
    out["kinfit_converged"] = res.converged
    out["kinfit_status"] = res.status
    out["kinfit_n_iter"] = res.n_iter
    return out, res
