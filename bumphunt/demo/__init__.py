"""The whole chain on toy data (``bumphunt demo``): ``run_demo(out_dir)``.

One module per part of the chain: ``samples`` (toy MC, pre-selection, event
chain, plots), ``selector`` (signal grid, Punzi net), ``analysis`` (signal
model, scan), ``run`` (the list of steps and the report); ``settings`` holds
the typed settings and step outputs.
"""

from __future__ import annotations

from .plots import plot_mgg_per_sample, plot_mgg_stacked
from .run import STEPS, run_demo
from .settings import DEFAULT_LUMI_FB, SMALL_LUMI_FB, DemoSettings, StepOutput, sample_kind

__all__ = ["run_demo", "STEPS", "DemoSettings", "StepOutput", "DEFAULT_LUMI_FB", "SMALL_LUMI_FB", "sample_kind",
           "plot_mgg_per_sample", "plot_mgg_stacked"]
