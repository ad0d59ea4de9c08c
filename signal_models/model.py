"""``SignalModel``: signal shape and efficiency interpolated in the ALP mass, and its JSON file.

A model holds the per-mass calibration fits (``signal_models.calibration``)
and one ``ParameterCurve`` per quantity:

===================  ============================================  ===========
quantity             meaning                                       transform
===================  ============================================  ===========
``mu_shift``         DSCB peak minus generated mass (GeV)          identity
``sigma``            DSCB core width (GeV)                         log
``alpha_l/r``        tail starts (units of sigma)                  log
``n_l/r``            tail exponents (constant when fixed)          log
``comb_edge_q``      ``comb_edge^2 + mu^2`` (GeV^2; ~ s)           identity
``comb_edge_width``  width of the wrong-pair edge (GeV)            log
``comb_slope``       combinatorial Chebyshev slope                 identity
``comb_level``       wrong pairs per truth-matched pair in the     identity
                     window before the edge cuts them, relative
                     to phase space (see below)
``eff_tm``           truth-matched candidates / generated          identity
===================  ============================================  ===========

The wrong-pair fraction in the window changes abruptly where the kinematic
edge of the wrong-pair spectrum (``signal_models.edges``) crosses the window,
so it is not interpolated itself. Instead the smooth ingredients are: the
edge through ``q = comb_edge^2 + mu^2`` (nearly constant, since the edge sits
at ``sqrt(s - m_a^2)``), its width, and the level of the edge-free line
relative to phase space: a wrong pair's m_12^2 is uniform on
[0, s - m_a^2] (isotropic decay), so two wrong pairs per event put
``g = 8 D sigma mu / comb_edge^2`` wrong pairs per truth-matched pair into
the window ``mu +- D sigma``; ``comb_level`` is the measured ratio over
``g`` (an acceptance ratio near 1 that varies slowly, where the raw ratio
more than doubles between 6 and 7.5 GeV). At any mass the edge is
``sqrt(q - mu^2)``, the fraction ``kappa`` of the line that survives the edge
in the window follows analytically, and::

    r             = kappa * comb_level * g
    comb_fraction = r / (1 + r)
    eff_total     = eff_tm / (1 - comb_fraction)

Without any measured edge (no edge near any window) ``g = 1`` and
``comb_level`` is the plain ratio.

``comb_slope`` and ``comb_level`` use only masses with wrong pairs in the
window, the edge curves only masses where the edge was measured; outside the
masses a curve is built from it is held constant.

The file format (``signal_models.model_file``) is documented in
``docs/reference/signal_model_format.md``; ``signal_models.build_model``
builds a model from signal MC.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common.defaults import DEFAULT_HALF_WIDTH
from ._common.version import __version__
from .combinatorial import EDGE_FLAT_Z, comb_integral
from .errors import ShapeError, SignalModelFormatError
from .interpolation import ParameterCurve, fit_curve
from .mass_fit import MassFit, same_mass
from .model_file import FORMAT_NAME, SCHEMA_VERSION, fit_dict_from_json, json_safe, validate_model_dict
from .model_quantities import CURVES, DERIVED, PARTIAL_CURVES, curve_data
from .shapes import SignalShape

logger = logging.getLogger(__name__)

__all__ = ["SignalModel", "SignalModelFormatError", "FORMAT_NAME", "SCHEMA_VERSION", "CURVES", "DERIVED", "PARTIAL_CURVES"]


class SignalModel:
    """Signal shape and efficiency as smooth functions of the ALP mass.

    Build with ``signal_models.build_signal_model`` (or ``SignalModel.load``).

    Parameters
    ----------
    fits : sequence of MassFit
        Per-mass calibration results, any status; only ``ok`` masses not in
        ``holdout`` enter the interpolation.
    holdout : sequence of float
        Generated masses fitted but kept out of the interpolation (closure checks).
    interpolation : mapping, optional
        Per quantity ``{"method": ..., "lam": ...}``; ``"auto"`` (default)
        chooses by cross-validation.
    selection : mapping, optional
        Free-form description of the selection / working point the model belongs to.
    settings : mapping, optional
        Calibration settings recorded in the file (fixed parameters, fit range...).
    comb_domain : float
        Chebyshev domain half-width in sigma (the calibration fit range).

    Examples
    --------
    >>> from signal_models.analytic import analytic_signal_model
    >>> model = analytic_signal_model()          # a smooth stand-in with the SignalModel interface
    >>> round(model.shape(2.0).sigma, 4)         # GeV
    0.022
    >>> round(float(model.efficiency(2.0)), 3)
    0.276
    """

    def __init__(
        self,
        fits: Sequence[MassFit],
        *,
        holdout: Sequence[float] = (),
        interpolation: Mapping[str, Mapping[str, Any]] | None = None,
        selection: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        comb_domain: float = DEFAULT_HALF_WIDTH,
        version: str | None = None,
        created: str | None = None,
    ) -> None:
        self.fits = sorted(fits, key=lambda f: f.mass)
        masses_all = np.array([f.mass for f in self.fits])
        if np.any(np.diff(masses_all) <= 0):
            raise ShapeError(f"SignalModel: generated masses must be distinct, got {masses_all.tolist()}")
        self.holdout = sorted(float(h) for h in holdout)
        self.selection = dict(selection or {})
        self.settings = dict(settings or {})
        self.comb_domain = float(comb_domain)
        self.version = version or __version__
        self.created = created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.used = [f for f in self.fits if f.ok and not any(same_mass(f.mass, h) for h in self.holdout)]
        if len(self.used) < 2:
            raise ShapeError(
                f"SignalModel needs at least two successfully fitted masses outside the hold-out set, got {len(self.used)} "
                f"(statuses: {[(f.mass, f.status) for f in self.fits]})"
            )
        interpolation = dict(interpolation or {})
        self.curves: dict[str, ParameterCurve] = {}
        for name, (transform, clip) in CURVES.items():
            spec = dict(interpolation.get(name) or {})
            m, v, e = self.curve_points(name, self.used)
            if m.size == 0:
                if name in PARTIAL_CURVES:
                    continue  # no wrong pairs / no edge near the window at any mass
                raise ShapeError(f"SignalModel: no fitted mass measures {name!r}")
            self.curves[name] = fit_curve(name, m, v, e, method=spec.get("method", "auto"), transform=transform, clip=clip, lam=spec.get("lam"))
        self._range = (float(self.used[0].mass), float(self.used[-1].mass))

    # -- evaluation -------------------------------------------------------------
    @property
    def mass_range(self) -> tuple[float, float]:
        """(lowest, highest) generated mass used in the interpolation, GeV."""
        return self._range

    @property
    def masses(self) -> NDArray:
        """Generated masses entering the interpolation (GeV)."""
        return np.array([f.mass for f in self.used])

    def _check(self, m: ArrayLike) -> NDArray:
        m = np.asarray(m, dtype=float)
        lo, hi = self._range
        tol = 1e-9 * max(1.0, abs(hi))
        bad = ~np.isfinite(m) | (m < lo - tol) | (m > hi + tol)
        if np.any(bad):
            first = np.ravel(m)[np.ravel(bad)][0]
            raise ValueError(
                f"mass {first!r} GeV is outside the signal model's generated mass range [{lo:.6g}, {hi:.6g}] GeV; "
                "the model does not extrapolate"
            )
        return np.clip(m, lo, hi)

    def shape_params(self, masses: ArrayLike) -> dict[str, NDArray]:
        """Shape parameters at many masses at once (vectorised).

        Returns a dict with arrays of the ``SignalShape`` fields ``mu``,
        ``sigma``, ``alpha_l``, ``n_l``, ``alpha_r``, ``n_r``,
        ``comb_fraction``, ``comb_slope``, ``comb_domain``, ``comb_edge`` and
        ``comb_edge_width`` (GeV / units of sigma). ``comb_edge`` is ``inf``
        (width 0) wherever the edge does not shape the combinatorics on the
        domain ``mu +- comb_domain * sigma``: those shapes are the plain
        DSCB + line.
        """
        m = self._check(masses)
        c = self.curves
        out = {
            "mu": m + c["mu_shift"](m),
            "sigma": c["sigma"](m),
            "alpha_l": c["alpha_l"](m),
            "n_l": c["n_l"](m),
            "alpha_r": c["alpha_r"](m),
            "n_r": c["n_r"](m),
        }
        comb = self._comb(m, out["mu"], out["sigma"])
        out["comb_fraction"] = comb["comb_fraction"]
        out["comb_slope"] = comb["comb_slope"]
        out["comb_domain"] = np.full(m.shape, self.comb_domain)
        out["comb_edge"] = comb["comb_edge"]
        out["comb_edge_width"] = comb["comb_edge_width"]
        return out

    def curve_points(self, name: str, fits: Sequence[MassFit] | None = None) -> tuple[NDArray, NDArray, NDArray]:
        """Per-mass (mass, value, error) of curve quantity ``name`` from ``fits`` (default: the used ones)."""
        return curve_data(self.used if fits is None else fits, name, phase_space=self._phase_space if "comb_edge_q" in self.curves else None)

    def _phase_space(self, m: NDArray, mu: NDArray, sigma: NDArray) -> NDArray:
        """Wrong pairs per truth-matched pair in the window ``mu +- D sigma`` from phase space alone.

        A wrong pair has m_12^2 uniform on [0, s - m_a^2] (isotropic ALP decay),
        i.e. density 2 m_12 / edge^2 per wrong pair, two wrong pairs per event:
        ``8 D sigma mu / edge^2`` with ``edge^2 = q - mu^2`` from the edge curve.
        """
        e2 = np.maximum(self._partial("comb_edge_q", m) - mu * mu, 1e-12)
        return 8.0 * self.comb_domain * sigma * mu / e2

    def _partial(self, name: str, m: NDArray, *, default: float = 0.0, band: bool = False) -> NDArray:
        """A partial curve at ``m``, held constant beyond the masses it was built from."""
        curve = self.curves.get(name)
        if curve is None:
            return np.full(np.shape(m), 0.0 if band else default)
        mc = np.clip(m, curve.masses[0], curve.masses[-1])
        return curve.uncertainty(mc) if band else curve(mc)

    def _comb(self, m: NDArray, mu: NDArray, sigma: NDArray) -> dict[str, NDArray]:
        """Combinatorial parameters at masses ``m`` (see the module docstring), with uncertainties."""
        slope = self._partial("comb_slope", m)
        level = self._partial("comb_level", m)
        level_err = self._partial("comb_level", m, band=True)
        half = self.comb_domain * sigma
        if "comb_edge_q" in self.curves:
            q = self._partial("comb_edge_q", m)
            q_err = self._partial("comb_edge_q", m, band=True)
            width = self._partial("comb_edge_width", m, default=1.0)
            edge = np.sqrt(np.maximum(q - mu * mu, 0.0))
            edge_err = q_err / (2.0 * np.maximum(edge, 1e-12))
            kept = comb_integral(-1.0, 1.0, slope, (edge - mu) / half, width / half) / comb_integral(-1.0, 1.0, slope)
        else:
            edge, edge_err, width = np.full(m.shape, np.inf), np.zeros(m.shape), np.zeros(m.shape)
            kept = np.ones(m.shape)
        if "comb_edge_q" in self.curves:
            g = self._phase_space(m, mu, sigma)
            level, level_err = level * g, level_err * g
        r = kept * level
        r = np.where(r > 1e-12, r, 0.0)
        frac = r / (1.0 + r)
        frac_err = kept * level_err / (1.0 + r) ** 2
        # the edge only where it shapes the combinatorics on the domain (else exactly the plain line)
        far = (edge - (mu + half) >= EDGE_FLAT_Z * width) | (frac == 0.0)
        return {
            "comb_fraction": frac,
            "comb_fraction_err": frac_err,
            "comb_slope": slope,
            "comb_edge": np.where(far, np.inf, edge),
            "comb_edge_width": np.where(far, 0.0, width),
            "comb_edge_raw": edge,
            "comb_edge_err": edge_err,
        }

    def shape(self, mass: float) -> SignalShape:
        """The interpolated ``SignalShape`` at ``mass`` (GeV); ValueError outside ``mass_range``."""
        p = self.shape_params(np.asarray([mass], dtype=float))
        return SignalShape(**{k: float(v[0]) for k, v in p.items()})

    def shapes(self, masses: ArrayLike) -> list[SignalShape]:
        """``SignalShape`` objects at many masses."""
        p = self.shape_params(np.asarray(masses, dtype=float).ravel())
        n = len(p["mu"])
        return [SignalShape(**{k: float(v[i]) for k, v in p.items()}) for i in range(n)]

    def efficiency(self, mass: ArrayLike) -> Any:
        """Truth-matched signal efficiency (TM candidates in the window / generated events)."""
        return _scalar(self.curves["eff_tm"](self._check(mass)))

    def efficiency_uncertainty(self, mass: ArrayLike) -> Any:
        """1-sigma uncertainty of ``efficiency`` from the per-mass statistical errors."""
        return _scalar(self.curves["eff_tm"].uncertainty(self._check(mass)))

    def efficiency_total(self, mass: ArrayLike) -> Any:
        """All signal candidates (TM + combinatorial) in the nominal window per generated event.

        This is the normalisation of the full signal shape: the expected
        number of signal candidates described by ``shape(m)`` is
        ``sigma x L x efficiency_total(m)`` (= ``efficiency(m) / (1 - comb_fraction)``).

        It is not smooth where the wrong-pair edge sqrt(s - m_a^2) crosses the
        window (m_a near sqrt(s / 2), 7.2-7.7 GeV at Belle II): the wrong pairs
        pile up towards their edge (m_12^2 is uniform), so their number in the
        window rises with m_a up to ~1/3 of the truth-matched pairs and drops to
        none once the edge has left the window. That is kinematics (the wrong
        pairs per event follow their phase space in the window times a smooth
        acceptance), not a counting artefact; ``efficiency`` is smooth.
        """
        return _scalar(self.parameter("eff_total", mass))

    def efficiency_total_uncertainty(self, mass: ArrayLike) -> Any:
        """1-sigma uncertainty of ``efficiency_total`` (truth-matched efficiency and combinatorial fraction)."""
        return _scalar(self.parameter_uncertainty("eff_total", mass))

    def _derived(self, name: str, m: NDArray) -> tuple[NDArray, NDArray]:
        mu = m + self.curves["mu_shift"](m)
        comb = self._comb(m, mu, self.curves["sigma"](m))
        f, f_err = comb["comb_fraction"], comb["comb_fraction_err"]
        if name == "comb_fraction":
            return f, f_err
        if name == "comb_edge":
            return comb["comb_edge_raw"], comb["comb_edge_err"]
        eff, eff_err = self.curves["eff_tm"](m), self.curves["eff_tm"].uncertainty(m)
        total = eff / (1.0 - f)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.hypot(np.where(eff > 0, eff_err / eff, 0.0), f_err / (1.0 - f))
        return total, total * rel

    def parameter(self, name: str, mass: ArrayLike) -> NDArray:
        """Quantity ``name`` (a key of ``CURVES`` or ``DERIVED``) at ``mass``."""
        m = self._check(mass)
        if name in DERIVED:
            return self._derived(name, np.asarray(m, dtype=float))[0]
        if name in PARTIAL_CURVES:
            self._curve(name)
            return self._partial(name, m)
        return self._curve(name)(m)

    def parameter_uncertainty(self, name: str, mass: ArrayLike) -> NDArray:
        """Uncertainty band half-width of quantity ``name`` at ``mass``."""
        m = self._check(mass)
        if name in DERIVED:
            return self._derived(name, np.asarray(m, dtype=float))[1]
        if name in PARTIAL_CURVES:
            self._curve(name)
            return self._partial(name, m, band=True)
        return self._curve(name).uncertainty(m)

    def _curve(self, name: str) -> ParameterCurve:
        if name not in self.curves:
            raise KeyError(f"signal-model quantity {name!r} is not available; expected one of {list(self.curves) + list(DERIVED)}")
        return self.curves[name]

    def fit_at(self, mass: float) -> MassFit:
        """The per-mass calibration fit at a generated mass."""
        for f in self.fits:
            if same_mass(mass, f.mass):
                return f
        raise KeyError(f"no calibration fit at {mass} GeV; generated masses: {[f.mass for f in self.fits]}")

    def __repr__(self) -> str:
        lo, hi = self._range
        return f"SignalModel({len(self.used)} masses in [{lo:.4g}, {hi:.4g}] GeV, holdout={self.holdout}, version={self.version})"

    # -- file format --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The model as the JSON-safe dictionary of the file format (``signal_models.model_file``)."""
        return {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "bumphunt_version": self.version,
            "created": self.created,
            "selection": self.selection,
            "settings": self.settings,
            "comb_domain": self.comb_domain,
            "mass_range": list(self._range),
            "holdout": self.holdout,
            "interpolation": {k: json_safe(c.settings()) for k, c in self.curves.items()},
            "fits": [json_safe(f.to_dict()) for f in self.fits],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as JSON (atomically: a temporary file renamed into place)."""
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        # round trip before writing: never leave a file that does not load
        SignalModel.from_dict(json.loads(text), source=str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        logger.info("signal model written to %s", path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SignalModel:
        """Read and validate a model file; ``SignalModelFormatError`` names the bad key."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise SignalModelFormatError(f"{path}: cannot read signal model file: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise SignalModelFormatError(f"{path}: not a signal model file (not UTF-8 text: {exc})") from exc
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise SignalModelFormatError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> SignalModel:
        """Validate a file-format dictionary and rebuild the model (``source`` names it in error messages)."""
        validate_model_dict(data, source)
        fits = [MassFit.from_dict(fit_dict_from_json(f)) for f in data["fits"]]
        interp = {k: {"method": v["method"], "lam": v.get("lam")} for k, v in data["interpolation"].items() if v is not None}
        try:
            return cls(
                fits,
                holdout=data["holdout"],
                interpolation=interp,
                selection=data["selection"],
                settings=data["settings"],
                comb_domain=data["comb_domain"],
                version=data["bumphunt_version"],
                created=data["created"],
            )
        except (ValueError, KeyError) as exc:
            raise SignalModelFormatError(f"{source}: invalid signal model: {exc}") from exc


def _scalar(a: NDArray) -> Any:
    return float(a) if np.ndim(a) == 0 else a
