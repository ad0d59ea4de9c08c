"""Shared fixtures of the selector tests: a small synthetic sample and its training data (built once per session)."""

from __future__ import annotations

import pytest

from bumphunt.selection.masses import mass_grid
from bumphunt.selection.training_data import PunziData, prepare_training_data
from bumphunt.toymc.three_photon import synthetic_sample


@pytest.fixture(scope="session")
def small_sample() -> tuple[dict, dict]:
    """Ten signal masses (400 events each) and 2x10^4 background events."""
    return synthetic_sample(masses=mass_grid(0.5, 9.5, n=10), n_per_mass=400, n_background=20000, seed=11)


@pytest.fixture(scope="session")
def small_data(small_sample: tuple[dict, dict]) -> PunziData:
    """Training data of ``small_sample``: two held-out masses, sensitivity at 0.5 fb^-1."""
    ev, ng = small_sample
    return prepare_training_data(ev, n_generated=ng, heldout=2, lumi_fb=0.5, weight_lumi_fb=1.0, seed=3)
