"""Fixtures shared by the training tests here: one small SynthCRAG world per test module (`world`) and the
environment a CPU training run needs (`train_env`: DeepSpeed on its CPU accelerator, one torch thread, no leftover
torch.distributed variables before or after)."""

from __future__ import annotations

import pytest
import torch

from tests._train_fixtures import clear_dist_env, write_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_world(str(tmp_path_factory.mktemp("world")))


@pytest.fixture
def train_env(monkeypatch):
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    torch.set_num_threads(1)
    clear_dist_env()
    yield
    clear_dist_env()
