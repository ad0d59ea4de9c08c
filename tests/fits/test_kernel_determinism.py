"""Bit-identical compiled kernels: fresh compilation, numba's cache and any thread count give the same bytes.

The data-fit kernels (``fits._kernels``) sum over events in a fixed number of lanes added in a fixed order
and use no fast-math flags, and the toy kernels (``fits._toy_kernels``) run every row on its own in event
order; so neither the compiler's choices nor the cache nor the threads change a result. Checked here by
running the toy CLs engine end to end (event values, Newton fits through the row map, the envelope, the
thinning and the likelihood ratios, the bootstrap crossings) in subprocesses: compiled into an empty cache
directory with one thread, then from that cache with two threads and with one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_SCRIPT = r"""
import hashlib
import numpy as np
from fits import _kernels, _toy_kernels
from fits.toy_limits import toy_cls_limits
from fits.toys import generate_toys
from fits.newton import minimise
from fits.design import build_design
from fits.densities import ShapeArrays
from signal_models import SignalShape

h = hashlib.sha256()
shape = SignalShape(mu=3.0, sigma=0.03, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=5.0, comb_fraction=0.15, comb_slope=-0.2)
w = shape.window()
beta = np.array([1500.0, -220.0, 30.0, 0.0]) / (w[1] - w[0])
# a sparse window at 5 GeV reached by the wrong-pair edge
edge = SignalShape(mu=5.0, sigma=0.05, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=5.0, comb_fraction=0.2, comb_slope=0.1, comb_edge=5.6, comb_edge_width=0.03)
x = np.concatenate(generate_toys(shape, w, nsig=20.0, beta=beta, n_toys=1, seed=3) + generate_toys(edge, (4.3, 5.7), nsig=0.0, beta=[30.0, -5.0], n_toys=1, seed=4))
shapes = [shape, edge]
windows = np.array([w, (4.3, 5.7)])
t = toy_cls_limits(x, shapes, windows, n_toys=60, seed=2)
for a in (t.observed, t.observed_err, t.expected, t.expected_err, t.n_toys, t.n_fits):
    h.update(np.ascontiguousarray(a, dtype=float).tobytes())
for d in t.details:
    for a in (d.poi, d.cls, d.cls_err):
        h.update(np.ascontiguousarray(a, dtype=float).tobytes())
# the Newton kernel through a row map: rows repeated and out of order
xs = np.sort(x[(x >= w[0]) & (x <= w[1])])
sh = ShapeArrays.from_shapes([shape])
des = build_design(xs, sh, np.array([w[0]]), np.array([w[1]]), 3)
th = np.zeros((4, 5))
th[:, 1] = 1500.0 / (w[1] - w[0])
th[:, 0] = [0.0, 10.0, 20.0, 40.0]
r = minimise(des, th, mode="fixed", rows=np.array([0, 0, 0, 0]))
for a in (r.theta, r.nll, r.hess_lin):
    h.update(np.ascontiguousarray(a).tobytes())
print(h.hexdigest())
"""


def _run(cache_dir: Path, threads: int) -> str:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), NUMBA_NUM_THREADS=str(threads))
    root = Path(__file__).resolve().parents[2]  # the repository (tests/fits/../..)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=root, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_toy_engine_bits_fresh_cached_and_any_threads(tmp_path: Path) -> None:
    """The toy engine's numbers are the same bytes compiled from scratch, loaded from the cache, with 1 or 2 threads."""
    cache = tmp_path / "numba_cache"
    cache.mkdir()
    fresh = _run(cache, 1)
    index = [p.name for p in cache.rglob("*.nbi")]
    assert any("_toy_kernels" in n for n in index) and any("_kernels" in n and "_toy" not in n for n in index), index
    assert _run(cache, 2) == fresh
    assert _run(cache, 1) == fresh
