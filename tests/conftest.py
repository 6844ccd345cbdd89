"""Shared fixtures: tiny models and data so the suite stays fast on 2 CPU cores."""

from __future__ import annotations

import os

import pytest
import torch

from fdbench.data import SeriesSplit
from fdbench.data.standardise import Standardiser
from fdbench.data.synthetic import sines
from fdbench.model import ModelConfig, build_model
from fdbench.pipeline import ScoreModel, to_domain
from fdbench.sde import VPSDE

# scripts/gpu_check.sh runs the suite with the conftest models on cuda
TEST_DEVICE = os.environ.get("FDBENCH_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def tiny_split() -> SeriesSplit:
    """96 sines of N=16, M=2 split 80/16."""
    x = sines(96, n_steps=16, n_channels=2, generator=torch.Generator().manual_seed(0))
    return SeriesSplit(name="tiny-sines", train=x[:80], test=x[80:], description="test data")


def make_score_model(split: SeriesSplit, layout: str = "bins", seed: int = 0) -> ScoreModel:
    """An untrained tiny model with the split's standardisation (eval mode)."""
    config = ModelConfig.from_preset("tiny", split.n_steps, split.n_channels, layout=layout)
    network = build_model(config, seed=seed).eval()
    standardiser = Standardiser.fit(to_domain(split.train, config.frequency_domain))
    return ScoreModel(network, VPSDE(), standardiser, {"data": split.name}).to(TEST_DEVICE)


@pytest.fixture()
def tiny_model(tiny_split: SeriesSplit) -> ScoreModel:
    return make_score_model(tiny_split)


@pytest.fixture(scope="session")
def sines_checkpoint(tmp_path_factory):
    """A saved untrained tiny bins-layout model of the ``sines`` data (preconditioned, so
    sampling stays finite): for bench, sweep and sharding tests."""
    from fdbench.checkpoint import save_checkpoint
    from fdbench.data import load_dataset

    data = load_dataset("sines")
    config = ModelConfig.from_preset("tiny", data.n_steps, data.n_channels, layout="bins",
                                     parametrisation="preconditioned")
    model = ScoreModel(build_model(config).eval(), VPSDE(),
                       Standardiser.fit(to_domain(data.train, True)), {"data": "sines"})
    return save_checkpoint(tmp_path_factory.mktemp("ckpt"), model)
