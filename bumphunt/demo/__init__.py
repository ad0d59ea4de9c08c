"""The whole chain on toy data: ``run_demo(out_dir)`` (``bumphunt demo``)."""

from __future__ import annotations

from .stages import DEFAULT_LUMI_FB, SMALL_LUMI_FB, run_demo

__all__ = ["run_demo", "DEFAULT_LUMI_FB", "SMALL_LUMI_FB"]
