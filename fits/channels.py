"""Several datasets in one fit: channels sharing one parameter of interest, and the nuisances that act on them.

A ``Channel`` is one dataset's candidates, its signal shape and fit window,
and its ``signal_scale``: the expected signal events per unit of the
parameter of interest ``mu`` (efficiency x luminosity x trigger efficiency,
so that ``mu`` can be a cross-section in pb; 1 makes ``mu`` the signal
events of that channel). In a combined fit the signal yield of channel c is

    N_sig,c = mu * signal_scale_c * prod_k kappa_kc(u_k) + sum_a size_ac theta_a,

each channel has its own background polynomial, and the nuisances are
standard-normal constrained parameters:

``YieldUncertainty``
    a relative uncertainty of the signal scale (luminosity, efficiency,
    trigger): ``kappa = exp(ln(1 + r) u)`` (log-normal) or ``1 + r u``
    (Gaussian). One object is one nuisance ``u``: the channels it names are
    fully correlated (the luminosity of one run); independent uncertainties
    (each channel's efficiency) are separate objects.
``ShapeUncertainty``
    the signal resolution (``sigma -> (1 + width nu) sigma``) or the peak
    position (``mu -> mu + width nu`` in GeV, or ``mu (1 + width nu)`` with
    ``relative=True``) of the channels it names (default all: shared).
    They act on the truth-matched peak (the DSCB part of the shape); the
    wrong-pair combinatorics, a smooth spectrum, is not moved. The peak is
    interpolated between its values at ``nu = -1, 0, +1`` (quadratic vertical
    interpolation of the normalised densities, as HistFactory's shape
    systematics): exact at those three points, smooth between them, and the
    integral of the shape over the window stays 1.
``SpuriousSignal``
    the background-model bias as an extra signal-like yield
    ``size_c theta`` (events) with a standard-normal ``theta``: the
    spurious signal of the chosen background function becomes a systematic.

``CombinedModel`` checks a set of channels and nuisances together (names,
widths, scales) and raises ``fits.FitInputError`` naming the channel, key and
value before any fit runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.defaults import DEFAULT_BKG_ORDER
from signal_models.shapes import SignalShape

from .errors import FitInputError
from .inputs import check_bkg_order, check_masses, resolve_window
from .nuisances import SYST_KINDS

__all__ = ["Channel", "YieldUncertainty", "ShapeUncertainty", "SpuriousSignal", "CombinedModel", "SHAPE_KINDS"]

#: what a shape uncertainty moves
SHAPE_KINDS = ("resolution", "shift")


@dataclass(frozen=True, eq=False)
class Channel:
    """One dataset of a combined fit.

    Parameters
    ----------
    mgg : array (n,)
        Candidate masses of this dataset in GeV (those outside the window are ignored).
    shape : SignalShape
        The signal shape of this dataset at the hypothesis mass.
    window : (lo, hi), optional
        Fit window in GeV; default ``mu +- 20 sigma`` clipped to the data.
    signal_scale : float
        Expected signal events per unit of the parameter of interest (> 0).
    bkg_order : int
        Order of this channel's Chebyshev background (default 3).
    name : str, optional
        Name used by the nuisances and in the results (default ``"channel<i>"``
        by position).

    Examples
    --------
    >>> import numpy as np
    >>> import fits
    >>> from signal_models import SignalShape
    >>> shape = SignalShape(mu=1.0, sigma=0.01, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=6.0)
    >>> rng = np.random.default_rng(1)
    >>> mgg = np.concatenate([rng.uniform(0.8, 1.2, 2000), shape.sample(100, 0.8, 1.2, rng=rng)])
    >>> run = fits.Channel(mgg, shape, (0.8, 1.2), signal_scale=50.0, bkg_order=1, name="run1")  # 50 events per unit of mu
    >>> round(fits.fit([run]).nsig, 2)                             # mu
    1.86
    """

    mgg: NDArray
    shape: SignalShape
    window: tuple[float, float] | None = None
    signal_scale: float = 1.0
    bkg_order: int = DEFAULT_BKG_ORDER
    name: str | None = None

    def __init__(self, mgg: ArrayLike, shape: SignalShape, window: Sequence[float] | None = None, *, signal_scale: float = 1.0,
                 bkg_order: int = DEFAULT_BKG_ORDER, name: str | None = None) -> None:
        label = f"channel {name!r}" if name is not None else "channel"
        try:
            x = check_masses(mgg, name=f"{label}: mgg")
        except FitInputError:
            raise
        if not isinstance(shape, SignalShape):
            raise FitInputError(f"{label}: shape must be a signal_models.SignalShape, got {type(shape).__name__}")
        try:
            w = resolve_window(x, shape, window)
        except FitInputError as exc:
            raise FitInputError(f"{label}: {exc}") from None
        number = isinstance(signal_scale, (int, float, np.integer, np.floating)) and not isinstance(signal_scale, bool)
        if not (number and 0 < signal_scale < float(np.finfo(float).max)):
            raise FitInputError(f"{label}: signal_scale must be finite and > 0 (signal events per unit of mu), got {signal_scale!r:.80}")
        s = float(signal_scale)
        try:
            order = check_bkg_order(bkg_order)
        except FitInputError as exc:
            raise FitInputError(f"{label}: {exc}") from None
        object.__setattr__(self, "mgg", np.sort(x))
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "window", w)
        object.__setattr__(self, "signal_scale", s)
        object.__setattr__(self, "bkg_order", order)
        object.__setattr__(self, "name", name)

    @property
    def n_events(self) -> int:
        """Candidates inside the window."""
        lo, hi = self.window
        return int(np.searchsorted(self.mgg, hi, side="right") - np.searchsorted(self.mgg, lo, side="left"))


@dataclass(frozen=True)
class YieldUncertainty:
    """A relative uncertainty of the signal scale, one constrained nuisance.

    Parameters
    ----------
    name : str
    rel_unc : float or mapping
        Relative size, for every channel (one float) or per channel name
        (channels not named are not affected).
    kind : {"lognormal", "gaussian"}
    """

    name: str
    rel_unc: float | Mapping[str, float]
    kind: str = "lognormal"


@dataclass(frozen=True)
class ShapeUncertainty:
    """An uncertainty of the signal shape, one constrained nuisance ``nu``.

    Parameters
    ----------
    name : str
    kind : {"resolution", "shift"}
        ``resolution``: the core width becomes ``(1 + width nu) sigma``.
        ``shift``: the peak moves by ``width nu`` GeV (``relative=True``: by ``width nu mu``).
    width : float
        One standard deviation of the nuisance (relative for ``resolution``; GeV or relative for ``shift``).
    relative : bool
        ``shift`` only: ``width`` is relative to the peak position.
    channels : tuple of str, optional
        The channels it acts on (default all: one shared nuisance).
    """

    name: str
    kind: str
    width: float
    relative: bool = False
    channels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SpuriousSignal:
    """The background-model bias as a constrained signal-like yield ``size theta`` (events).

    Parameters
    ----------
    name : str
    size : float or mapping
        Spurious-signal size in events, for every channel or per channel name.
    """

    name: str
    size: float | Mapping[str, float]


def _per_channel(value: float | Mapping[str, float], names: Sequence[str], *, what: str) -> NDArray:
    """Values per channel (0 for channels a mapping does not name), checked finite and >= 0."""
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise FitInputError(f"{what}: unknown channel name(s) {unknown}; channels are {list(names)}")
        out = np.array([float(value.get(n, 0.0)) for n in names])
    else:
        out = np.full(len(names), float(value))
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise FitInputError(f"{what}: values must be finite and >= 0, got {out.tolist()}")
    return out


@dataclass(frozen=True, eq=False)
class CombinedModel:
    """Checked channels and nuisances of one combined hypothesis.

    Attributes
    ----------
    channels : tuple of Channel
    names : tuple of str
        Channel names (given or ``channel<i>``).
    yields : tuple of YieldUncertainty
    shapes : tuple of ShapeUncertainty
    spurious : tuple of SpuriousSignal
    yield_coeff : ndarray (K, C)
        ``ln(1 + r)`` (log-normal) or ``r`` (Gaussian) of each yield nuisance per channel.
    yield_lognormal : ndarray (K,) of bool
    shape_widths : ndarray (J, C)
        Width of each shape nuisance per channel (0 where it does not act); GeV for
        absolute shifts, relative otherwise.
    spurious_size : ndarray (A, C)
        Spurious-signal sizes in events.
    """

    channels: tuple[Channel, ...]
    names: tuple[str, ...]
    yields: tuple[YieldUncertainty, ...] = ()
    shapes: tuple[ShapeUncertainty, ...] = ()
    spurious: tuple[SpuriousSignal, ...] = ()
    yield_coeff: NDArray = field(default_factory=lambda: np.zeros((0, 0)))
    yield_lognormal: NDArray = field(default_factory=lambda: np.zeros(0, bool))
    shape_widths: NDArray = field(default_factory=lambda: np.zeros((0, 0)))
    spurious_size: NDArray = field(default_factory=lambda: np.zeros((0, 0)))

    @classmethod
    def build(
        cls,
        channels: Sequence[Channel],
        *,
        yields: Sequence[YieldUncertainty] = (),
        shapes: Sequence[ShapeUncertainty] = (),
        spurious: Sequence[SpuriousSignal] = (),
    ) -> CombinedModel:
        """Check everything before any fit; raises ``FitInputError`` naming the channel, nuisance and value."""
        channels = tuple(channels)
        if not channels:
            raise FitInputError("channels: give at least one fits.Channel")
        for i, c in enumerate(channels):
            if not isinstance(c, Channel):
                raise FitInputError(f"channels[{i}]: expected a fits.Channel, got {type(c).__name__}")
        names = tuple(c.name if c.name is not None else f"channel{i}" for i, c in enumerate(channels))
        if len(set(names)) != len(names):
            raise FitInputError(f"channels: names must be unique, got {list(names)}")
        seen: set[str] = set()
        for n in [y.name for y in yields] + [s.name for s in shapes] + [a.name for a in spurious]:
            if n in seen:
                raise FitInputError(f"nuisances: name {n!r} is used twice")
            seen.add(n)
        C = len(channels)
        coeff = np.zeros((len(yields), C))
        logn = np.zeros(len(yields), bool)
        for k, y in enumerate(yields):
            if y.kind not in SYST_KINDS:
                raise FitInputError(f"nuisance {y.name!r}: kind must be one of {SYST_KINDS}, got {y.kind!r}")
            r = _per_channel(y.rel_unc, names, what=f"nuisance {y.name!r}: rel_unc")
            if y.kind == "gaussian" and np.any(r >= 1):
                raise FitInputError(f"nuisance {y.name!r}: a Gaussian yield uncertainty must be below 1 (100%), got {r.max()}")
            logn[k] = y.kind == "lognormal"
            coeff[k] = np.log1p(r) if logn[k] else r
        widths = np.zeros((len(shapes), C))
        for j, s in enumerate(shapes):
            if s.kind not in SHAPE_KINDS:
                raise FitInputError(f"nuisance {s.name!r}: kind must be one of {SHAPE_KINDS}, got {s.kind!r}")
            if not (np.isfinite(s.width) and s.width > 0):
                raise FitInputError(f"nuisance {s.name!r}: width must be finite and > 0, got {s.width}")
            if s.kind == "resolution" and s.width >= 0.5:
                raise FitInputError(f"nuisance {s.name!r}: a resolution width of {s.width} (relative) leaves no room for sigma - width; use < 0.5")
            acts = names if s.channels is None else tuple(s.channels)
            unknown = [n for n in acts if n not in names]
            if unknown:
                raise FitInputError(f"nuisance {s.name!r}: unknown channel name(s) {unknown}; channels are {list(names)}")
            for c, n in enumerate(names):
                if n in acts:
                    widths[j, c] = s.width
        sizes = np.zeros((len(spurious), C))
        for a, sp in enumerate(spurious):
            sizes[a] = _per_channel(sp.size, names, what=f"nuisance {sp.name!r}: size")
        return cls(channels, names, tuple(yields), tuple(shapes), tuple(spurious), coeff, logn, widths, sizes)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def nuisance_names(self) -> tuple[str, ...]:
        """Names of all nuisances in the order of the parameter vector (yields, spurious signals, shapes)."""
        return tuple(y.name for y in self.yields) + tuple(a.name for a in self.spurious) + tuple(s.name for s in self.shapes)

    def peak_shape(self, c: int, j: int | None = None, sign: float = 0.0) -> SignalShape:
        """Channel ``c``'s truth-matched peak (the shape without wrong pairs), with shape nuisance ``j`` at ``sign`` (+-1) sigma.

        The interpolated shape of channel c is ``s(nu) = s0 + (1 - f) sum_j [nu_j (p_j+ - p_j-) / 2
        + nu_j^2 ((p_j+ + p_j-) / 2 - p0)]`` with ``p`` these peaks' densities and ``f`` the
        wrong-pair fraction.
        """
        import dataclasses

        s = dataclasses.replace(self.channels[c].shape, comb_fraction=0.0)
        if j is None or sign == 0.0 or self.shape_widths[j, c] == 0:
            return s
        w = self.shape_widths[j, c]
        if self.shapes[j].kind == "resolution":
            return dataclasses.replace(s, sigma=s.sigma * (1.0 + sign * w))
        return dataclasses.replace(s, mu=s.mu + sign * w * (s.mu if self.shapes[j].relative else 1.0))

    def interpolated_pdf(self, c: int, x: NDArray, nu: NDArray) -> NDArray:
        """Channel ``c``'s signal density (1/GeV, normalised on its window) at shape nuisances ``nu`` (J,)."""
        lo, hi = self.channels[c].window
        shape = self.channels[c].shape
        out = shape.pdf(x, lo, hi)
        p0 = self.peak_shape(c).pdf(x, lo, hi)
        for j, v in enumerate(np.asarray(nu, float)):
            if self.shape_widths[j, c] == 0 or v == 0:
                continue
            pp, pm = self.peak_shape(c, j, +1.0).pdf(x, lo, hi), self.peak_shape(c, j, -1.0).pdf(x, lo, hi)
            out = out + (1.0 - shape.comb_fraction) * (v * 0.5 * (pp - pm) + v * v * (0.5 * (pp + pm) - p0))
        return out
