"""The shipped subject models: they load, they sample with their EMA weights, and their
network matters (the discriminative score separates them from ``network_off``)."""

from __future__ import annotations

import json

import pytest

from fdbench.bench import NetworkOff
from fdbench.checkpoint import CONFIG_FILE, load_checkpoint
from fdbench.data import fresh_samples
from fdbench.generate import generate
from fdbench.judges import discriminative_score
from fdbench.model import build_model
from fdbench.run import shipped_checkpoint

SHIPPED = {"ecg-bins-compact": ("ecg", (187, 1)), "sines-bins-compact": ("sines-large", (100, 1))}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_checkpoint_holds_ema_weights_of_its_recipe(name: str) -> None:
    directory = shipped_checkpoint(name)
    model = load_checkpoint(directory)
    data, shape = SHIPPED[name]
    assert model.meta["data"] == data and (model.n_steps, model.n_channels) == shape
    assert model.meta["weights"] == "ema" and model.meta["train"]["ema_decay"] > 0
    assert model.network.config.parametrisation == "preconditioned"
    # the recorded command is the one that made it (same steps, preset and output size)
    config = json.loads((directory / CONFIG_FILE).read_text())
    command = config["meta"]["command"]
    assert f"--steps {config['meta']['train']['steps']}" in command
    assert "--preset compact" in command and f"--data {data}" in command


def test_sines_network_matters_against_fresh_true_samples() -> None:
    """128 samples of the shipped sines model (100-step EM) are much closer to the true
    family than the network-off sampler's; the same network with untrained weights (a
    planted fault: training did nothing) is not."""
    model = load_checkpoint(shipped_checkpoint("sines-bins-compact"))
    real = fresh_samples("sines-large", 128, seed=11)

    def score(engine=None) -> float:
        samples = generate(model, 128, n_steps=100, seed=5, batch_size=64, progress=False,
                           engine=engine)
        return discriminative_score(real, samples, repeats=3, seed=0).value

    trained, off = score(), score(NetworkOff())
    assert off - trained > 0.15, (trained, off)
    model.network.load_state_dict(build_model(model.network.config, seed=1).state_dict())
    assert score() - trained > 0.15
