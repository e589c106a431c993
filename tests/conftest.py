"""Shared fixtures: a small simulated bundle and a quickly trained surrogate (built once per session)."""

from __future__ import annotations

import os

import pytest
import torch

from grids_core import bundle as bundle_io

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SMALL = {"n_cells": 800, "n_peaks": 4000, "seed": 0}


@pytest.fixture()
def one_thread():
    """Tiny models: one torch thread is faster and immune to OpenMP oversubscription on shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def small_sim():
    """(bundle, generative model) of a small simulated bundle, in memory."""
    from grids_core.simulate import simulate

    return simulate(**SMALL)


@pytest.fixture(scope="session")
def small_bundle_dir(tmp_path_factory, small_sim):
    """The small bundle saved on disk, with a briefly trained default model."""
    from grids_core.train import TrainConfig, default_model_path, save_model, train

    out = tmp_path_factory.mktemp("bundle") / "small"
    b, _ = small_sim
    bundle_io.save(b, out)
    b = bundle_io.load(out)
    tm = train(b, TrainConfig(steps_atac=60, steps_rna=60, steps_maps=60, steps_paired=300, seed=0))
    save_model(tm, default_model_path(out))
    return out


@pytest.fixture(scope="session")
def small_bundle(small_bundle_dir):
    return bundle_io.load(small_bundle_dir)


@pytest.fixture(scope="session")
def small_model(small_bundle_dir, small_bundle):
    from grids_core.train import default_model_path, load_model

    return load_model(default_model_path(small_bundle_dir), small_bundle)
