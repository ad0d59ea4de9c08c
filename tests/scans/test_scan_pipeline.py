"""Work units and the checkpointed pipeline of a scan: frozen plan, picklable jobs, exact JSON round trips, resuming."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from scans import CheckpointError, load_scan_config, scan
from scans.checkpoint import CheckpointStore
from scans.execution import Execution
from scans.jobs import BlockResult, FitSettings, ToyResult, block_jobs, toy_jobs
from scans.lee import fit_smooth_background
from scans.pipeline import Stage, run_checkpointed
from scans.plan import plan_scan, sorted_candidates
from scans.testing import analytic_signal_model, toy_spectrum
from scans.worker import evaluate_block, evaluate_toy

CFG = {"mass": {"min": 0.6, "max": 0.9}, "block_size": 3, "lee": {"toys": 0}, "execution": {"workers": 1}}
HASHES = {"config": "a", "inputs": "b", "plan": "c"}


@pytest.fixture(scope="module")
def planned():
    cfg = load_scan_config(CFG)
    mgg = sorted_candidates(toy_spectrum(4000, lo=0.1, hi=2.0, slope=0.5, seed=5))
    return mgg, plan_scan(mgg, analytic_signal_model(), cfg), cfg


def test_plan_is_frozen(planned) -> None:
    _, plan, _ = planned
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.masses = np.zeros(3)
    with pytest.raises(ValueError):
        plan.windows[0, 0] = 0.0
    assert len(plan.blocks) > 1 and all(len(b) <= 3 for b in plan.blocks)


def test_jobs_pickle_and_results_survive_the_json_round_trip(planned) -> None:
    mgg, plan, cfg = planned
    fit = FitSettings.from_config(cfg)
    jobs = block_jobs(plan, mgg, fit=fit)
    assert len(jobs) == len(plan.blocks)
    direct = evaluate_block(jobs[1])
    unpickled = evaluate_block(pickle.loads(pickle.dumps(jobs[1])))
    assert json.dumps(unpickled.to_json()) == json.dumps(direct.to_json())
    data = json.loads(json.dumps(direct.to_json(), allow_nan=False))
    assert json.dumps(BlockResult.from_json(data).to_json()) == json.dumps(direct.to_json())  # NaN-safe equality, bit for bit
    assert direct.has_xsec and len(direct.nsig) == len(plan.blocks[1])

    odd = dataclasses.replace(direct, nsig=(math.nan, *direct.nsig[1:]), ul_nsig_exp=((-math.inf,) * 5, *direct.ul_nsig_exp[1:]))
    back = BlockResult.from_json(json.loads(json.dumps(odd.to_json(), allow_nan=False)))
    assert math.isnan(back.nsig[0]) and back.nsig[1:] == direct.nsig[1:]
    assert back.ul_nsig_exp[0] == (-math.inf,) * 5

    background = fit_smooth_background(mgg, data_range=plan.data_range, order=4, bins=200)
    toy = toy_jobs(plan, background, n_toys=2, seed=3, block_size=cfg["block_size"], fit=fit)[1]
    first = evaluate_toy(pickle.loads(pickle.dumps(toy)))
    assert first == evaluate_toy(toy)  # seeded per toy: the same wherever it runs
    assert len(first.z_local) == len(plan.fit_indices)
    assert ToyResult.from_json(json.loads(json.dumps(first.to_json(), allow_nan=False))) == first


@dataclass(frozen=True)
class Square:
    value: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Square:
        return cls(value=float(data["value"]))

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value}


def test_pipeline_runs_only_missing_jobs_and_keeps_job_order(tmp_path) -> None:
    calls: list[float] = []

    def work(x: float) -> Square:
        calls.append(x)
        return Square(x * x)

    stage = Stage(kind="square", description="squares", work=work, from_json=Square.from_json)
    jobs = [1.0, 2.0, 3.0, 0.1]
    first = run_checkpointed(stage, jobs, store=CheckpointStore(tmp_path, HASHES, resume=False), execution=Execution(workers=1))
    assert [r.value for r in first] == [1.0, 4.0, 9.0, 0.1 * 0.1] and calls == jobs
    assert run_checkpointed(stage, jobs, store=None, execution=Execution()) == first

    (tmp_path / "square_000002.json").unlink()
    calls.clear()
    again = run_checkpointed(stage, jobs, store=CheckpointStore(tmp_path, HASHES, resume=True), execution=Execution(workers=1))
    assert calls == [3.0] and again == first

    (tmp_path / "square_000000.json").write_text('{"other": 1}\n')
    with pytest.raises(CheckpointError, match="square_000000.json"):
        run_checkpointed(stage, jobs, store=CheckpointStore(tmp_path, HASHES, resume=True), execution=Execution(workers=1))


def test_resume_refused_for_another_signal_model(tmp_path) -> None:
    x = toy_spectrum(4000, lo=0.1, hi=2.0, slope=0.5, seed=5)
    scan(x, analytic_signal_model(), config=CFG, out_dir=tmp_path)
    wider = analytic_signal_model(sigma_coeffs=(0.005, 0.009))
    with pytest.raises(CheckpointError, match="scan plan"):
        scan(x, wider, config=CFG, out_dir=tmp_path, resume=True)
