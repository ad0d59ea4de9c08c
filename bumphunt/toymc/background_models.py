"""Where the toy MC has a background model: the processes it can generate at a given sqrt(s).

The signal (e+e- -> gamma a) is generated at any sqrt(s) above the ALP mass,
but the backgrounds are modelled only where their normalisations hold:

``b_factory`` (10.0 <= sqrt(s) <= 11.2 GeV: Belle II, BaBar)
    every process of ``BACKGROUNDS`` and the mu mu gamma control sample; the
    meson cross-sections (``MESON_XSEC_PB``) and the toy normalisations of
    e+e- -> e+e- gamma and mu mu gamma are values at 10.58 GeV, used around the
    Upsilon resonances.
``z_pole`` (|sqrt(s) - m_Z| <= 3 GeV)
    QED e+e- -> 3 gamma only (``ggg``): the lowest-order matrix element of
    ``bumphunt.toymc.physics`` (exact at LO; the Z does not couple to photons
    at tree level), the background of the Giga-Z study (~4.1 pb at LO for
    photons above 2 GeV; the toy gives 4.3 pb above 2 GeV within 8-172 deg).
    No control sample (mu mu gamma at the Z pole is Z -> mu mu gamma, which the
    toy does not model).

Anywhere else ``background_model`` raises ``ConfigError`` naming sqrt(s).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from signal_models.alp import Z_MASS_GEV

from ..errors import ConfigError
from .processes import BACKGROUNDS

logger = logging.getLogger(__name__)

__all__ = ["BackgroundModel", "BACKGROUND_MODELS", "background_model"]


@dataclass(frozen=True)
class BackgroundModel:
    """The background processes the toy MC models in a range of sqrt(s).

    Attributes
    ----------
    name : str
        ``"b_factory"`` or ``"z_pole"``.
    sqrt_s_range : (float, float)
        CM energies (GeV, inclusive) where the model applies.
    processes : tuple of str
        Background processes (names of ``BACKGROUNDS``, in that order).
    control : bool
        Whether the e+e- -> mu+ mu- gamma control sample is modelled.
    """

    name: str
    sqrt_s_range: tuple[float, float]
    processes: tuple[str, ...]
    control: bool

    def covers(self, sqrt_s: float) -> bool:
        """True if ``sqrt_s`` (GeV) lies in the model's range."""
        lo, hi = self.sqrt_s_range
        return lo <= float(sqrt_s) <= hi


#: The background models, by increasing sqrt(s).
BACKGROUND_MODELS: tuple[BackgroundModel, ...] = (
    BackgroundModel("b_factory", (10.0, 11.2), tuple(BACKGROUNDS), True),
    BackgroundModel("z_pole", (Z_MASS_GEV - 3.0, Z_MASS_GEV + 3.0), ("ggg",), False),
)


def background_model(sqrt_s: float) -> BackgroundModel:
    """The background model at ``sqrt_s`` (GeV).

    Raises
    ------
    ConfigError
        If the toy MC models no background there; the message names sqrt(s)
        and the ranges that are modelled.
    """
    for model in BACKGROUND_MODELS:
        if model.covers(sqrt_s):
            return model
    ranges = "; ".join(f"{m.name}: {m.sqrt_s_range[0]:g}-{m.sqrt_s_range[1]:g} GeV" for m in BACKGROUND_MODELS)
    raise ConfigError(f"the toy MC has no background model at sqrt(s) = {float(sqrt_s):.4f} GeV (modelled: {ranges}); "
                      "generate only signal there (samples: [signal], data disabled)")
