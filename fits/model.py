"""The hypothesis model of the vectorised engine, in one place for readers and old imports.

The expected density of one hypothesis on its window ``[lo, hi]`` (GeV) is::

    lambda(x) = mu * s(x) + sum_k beta_k T_k(x'),     x' = 2 (x - lo) / (hi - lo) - 1

linear in ``theta = (mu, beta_0, ..., beta_p)``. Its two halves live in

- ``fits.densities``: shape parameters as arrays, signal densities, the
  Chebyshev basis and its integrals, default windows;
- ``fits.design``: design matrices of data and Asimov sets, quadrature.

This module only re-exports their public names (``fits.model.build_design``
and friends keep working); code in ``fits`` imports from the two modules.
"""

from __future__ import annotations

from .densities import ShapeArrays, chebyshev_basis, chebyshev_integrals, default_window, signal_pdf
from .design import Design, build_asimov_design, build_design, moment_layout, quadrature_nodes

__all__ = [
    "ShapeArrays",
    "Design",
    "default_window",
    "chebyshev_basis",
    "chebyshev_integrals",
    "signal_pdf",
    "build_design",
    "build_asimov_design",
    "quadrature_nodes",
    "moment_layout",
]
