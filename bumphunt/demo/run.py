"""``run_demo``: the whole analysis chain on toy data, one call per step, and the report.

toy MC -> pre-selection -> event chain (4C kinematic fit, diphoton candidates)
-> M_gg plots -> Punzi-net selector (trained on a signal-mass grid and the
weighted backgrounds, applied to the pseudo-data) -> signal model (from the
selected signal grid) -> mass scan with CLs limits and the look-elsewhere
effect -> ``report.md``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ..kinematics import Beam
from .analysis import build_model, run_scan
from .samples import chain_samples, generate_samples, plot_samples, preselect_samples
from .selector import signal_grid, train_and_select
from .settings import DEFAULT_LUMI_FB, SMALL_LUMI_FB, DemoSettings, StepOutput

logger = logging.getLogger(__name__)

__all__ = ["run_demo", "STEPS"]

#: The steps of the demo, in order (reported as "step k/n").
STEPS = ("toy MC", "pre-selection", "event chain", "plots", "selector", "signal model", "scan", "report")


def run_demo(out_dir: str | Path, *, seed: int = 1, lumi_fb: float | None = None, small: bool = False, beam: Beam | None = None,
             on_step: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Run the analysis chain on toy MC and write ``report.md``.

    Parameters
    ----------
    out_dir : path
        Output folder (created).
    seed : int
        Seed for the toy MC and every later random step.
    lumi_fb : float, optional
        Integrated luminosity in fb^-1 (default ``DEFAULT_LUMI_FB``, or ``SMALL_LUMI_FB`` with ``small``).
    small : bool
        Small samples for tests and docs.
    beam : Beam, optional
        Default ``Beam.belle2()``.
    on_step : callable, optional
        Called with a line such as ``"step 3/8: event chain"`` when a step starts.

    Returns
    -------
    dict
        Name -> produced file (toy MC, pre-selected files, cut flows, selector,
        signal model, scan configuration, result and points, plots, ``report``).
    """
    if lumi_fb is None:
        lumi_fb = SMALL_LUMI_FB if small else DEFAULT_LUMI_FB
    if not lumi_fb > 0:
        raise ValueError(f"lumi_fb must be positive, got {lumi_fb}")
    settings = DemoSettings(out_dir=Path(out_dir), seed=int(seed), lumi_fb=float(lumi_fb), small=small, beam=beam or Beam.belle2())
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    steps: list[StepOutput] = []
    clock = [time.perf_counter()]

    def start(k: int) -> None:
        now = time.perf_counter()
        if k:
            timings[STEPS[k - 1]] = now - clock[0]
        clock[0] = now
        line = f"step {k + 1}/{len(STEPS)}: {STEPS[k]}"
        logger.info("demo %s", line)
        if on_step is not None:
            on_step(line)

    start(0)
    samples = generate_samples(settings)
    steps.append(samples.output)
    start(1)
    preselected, cutflow, pre_step = preselect_samples(settings, samples)
    steps.append(pre_step)
    start(2)
    chained, chain_steps = chain_samples(settings, preselected, cutflow)
    steps += chain_steps
    start(3)
    steps.append(plot_samples(settings, chained))
    start(4)
    grid = signal_grid(settings)
    selector = train_and_select(settings, chained, grid)
    steps.append(selector.output)
    start(5)
    model = build_model(settings, grid, selector)
    steps.append(model.output)
    start(6)
    _, scan_step = run_scan(settings, selector, model)
    steps.append(scan_step)
    start(7)
    products: dict[str, Path] = {}
    for s in steps:
        products.update(s.products)
    products["report"] = _write_report(settings, steps, timings)
    return products


def _write_report(settings: DemoSettings, steps: list[StepOutput], timings: dict[str, float]) -> Path:
    head = (f"# bumphunt demo\n\nToy MC at {settings.lumi_fb:g} fb^-1, seed {settings.seed}. Step wall times: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + ".\n")
    summary = "## Summary\n\n" + "\n".join(f"- {s.summary}" for s in steps if s.summary) + "\n"
    path = settings.path("report.md")
    path.write_text("\n".join([head, summary, *(s.section for s in steps if s.section)]))
    return path
