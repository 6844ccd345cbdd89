"""Denoising score matching, training loop, resume and checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from fdbench.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint
from fdbench.errors import CheckpointError, ConfigError
from fdbench.model import ModelConfig, build_model
from fdbench.sde import VPSDE, marginal_std
from fdbench.spectral import chart_lambda
from fdbench.train import TRAIN_STATE_FILE, TrainConfig, dsm_loss, learning_rate_factor, train

TINY = dict(eval_every=10, val_repeats=2, batch_size=16, lr=3e-3)


def tiny_config(split, layout="bins") -> ModelConfig:
    return ModelConfig.from_preset("tiny", split.n_steps, split.n_channels, layout=layout)


def test_dsm_loss_matches_its_definition() -> None:
    """loss = mean_b w_b sum (score + z/(s Lambda))^2, w_b = 1/sum (s Lambda)^-2."""
    config = ModelConfig.from_preset("tiny", 9, 2, layout="chart", dropout=0.0)
    network = build_model(config).double().eval()
    sde, lam = VPSDE(), chart_lambda(9, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 9, 2, generator=g, dtype=torch.float64)
    z = torch.randn(4, 9, 2, generator=g, dtype=torch.float64)
    t = torch.tensor([0.01, 0.2, 0.5, 1.0], dtype=torch.float64)
    std = marginal_std(sde, t, lam).expand_as(x0)
    x_t = sde.mean_coeff(t)[:, None, None] * x0 + std * z
    score = network(x_t, t)
    expected = torch.stack([
        (score[b] + z[b] / std[b]).square().sum() / (1 / std[b] ** 2).sum() for b in range(4)
    ]).mean()
    assert torch.allclose(dsm_loss(network, x0, sde, lam, t, z), expected, rtol=1e-10)


def test_learning_rate_warms_up_then_decays_to_zero() -> None:
    factors = [learning_rate_factor(s, 100, 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))
    assert factors[-1] < 0.01


def test_loss_decreases_on_a_tiny_synthetic_set(tiny_split, tmp_path) -> None:
    history = train(tiny_config(tiny_split), TrainConfig(steps=120, **TINY), tiny_split,
                    tmp_path, sde=VPSDE(), progress=False)
    first, best = history["val_loss"][0], history["best_val_loss"]
    assert best < 0.8 * first, history["val_loss"]
    assert history["best_step"] in history["step"]


def test_checkpoint_round_trips(tiny_split, tmp_path) -> None:
    history = train(tiny_config(tiny_split), TrainConfig(steps=20, **TINY), tiny_split,
                    tmp_path, sde=VPSDE(), progress=False, meta={"command": "test"})
    model = load_checkpoint(tmp_path)
    saved = load_file(tmp_path / WEIGHTS_FILE)
    for name, value in model.network.state_dict().items():
        assert torch.equal(value, saved[name]), name
    assert model.meta["best_step"] == history["best_step"]
    assert model.meta["command"] == "test"
    assert not model.network.training
    x = tiny_split.test[:3]
    assert torch.allclose(model.decode(model.encode(x)), x, atol=1e-5)


def test_resume_continues_bit_identically(tiny_split, tmp_path) -> None:
    """Training 40 steps in one go equals 20 steps, stop, resume for 20 more."""
    config, train_config = tiny_config(tiny_split), TrainConfig(steps=40, **TINY)
    whole = train(config, train_config, tiny_split, tmp_path / "whole", sde=VPSDE(),
                  progress=False)
    train(config, train_config, tiny_split, tmp_path / "split", sde=VPSDE(), progress=False,
          stop_at=20)
    state = torch.load(tmp_path / "split" / TRAIN_STATE_FILE, weights_only=True)
    assert state["step"] == 20
    resumed = train(config, train_config, tiny_split, tmp_path / "split", sde=VPSDE(),
                    progress=False, resume=True)
    assert resumed["val_loss"] == whole["val_loss"]
    final_whole = torch.load(tmp_path / "whole" / TRAIN_STATE_FILE, weights_only=True)
    final_split = torch.load(tmp_path / "split" / TRAIN_STATE_FILE, weights_only=True)
    for name, value in final_whole["network"].items():
        assert torch.equal(value, final_split["network"][name]), name


def test_existing_run_needs_resume_and_matching_config(tiny_split, tmp_path) -> None:
    config = tiny_config(tiny_split)
    train(config, TrainConfig(steps=10, **TINY), tiny_split, tmp_path, sde=VPSDE(),
          progress=False)
    with pytest.raises(ConfigError, match="resume"):
        train(config, TrainConfig(steps=10, **TINY), tiny_split, tmp_path, sde=VPSDE(),
              progress=False)
    with pytest.raises(ConfigError, match="different"):
        train(config, TrainConfig(steps=30, **TINY), tiny_split, tmp_path, sde=VPSDE(),
              progress=False, resume=True)


def test_model_and_data_shapes_must_agree(tiny_split, tmp_path) -> None:
    config = ModelConfig.from_preset("tiny", 17, 2)
    with pytest.raises(ConfigError, match="expects series"):
        train(config, TrainConfig(steps=1), tiny_split, tmp_path, sde=VPSDE(), progress=False)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("field,value", [("steps", 0), ("lr", -1.0), ("batch_size", 0),
                                         ("warmup_fraction", 1.0), ("val_fraction", 0.0),
                                         ("grad_clip", 0.0)])
def test_train_config_validation_names_the_field(field, value) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})


@pytest.fixture()
def saved_checkpoint(tiny_split, tmp_path):
    train(tiny_config(tiny_split), TrainConfig(steps=10, **TINY), tiny_split, tmp_path,
          sde=VPSDE(), progress=False)
    return tmp_path


def test_corrupt_weights_are_reported(saved_checkpoint) -> None:
    (saved_checkpoint / WEIGHTS_FILE).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt checkpoint weights"):
        load_checkpoint(saved_checkpoint)


def test_corrupt_or_foreign_config_is_reported(saved_checkpoint) -> None:
    path = saved_checkpoint / CONFIG_FILE
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt checkpoint config"):
        load_checkpoint(saved_checkpoint)
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not an fdbench checkpoint"):
        load_checkpoint(saved_checkpoint)


def test_weights_not_matching_the_config_are_reported(saved_checkpoint) -> None:
    path = saved_checkpoint / CONFIG_FILE
    config = json.loads(path.read_text())
    config["model"]["d_model"] = 32
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(saved_checkpoint)


def test_missing_checkpoint_is_reported(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(tmp_path)


def test_ema_update_is_a_convex_combination() -> None:
    from fdbench.train import ema_decay_at, update_ema

    config = ModelConfig.from_preset("tiny", 9, 1)
    ema, network = build_model(config, seed=0), build_model(config, seed=1)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    update_ema(ema, network, 0.75)
    for name, value in ema.state_dict().items():
        expected = 0.75 * before[name] + 0.25 * network.state_dict()[name]
        assert torch.allclose(value, expected, atol=1e-7), name
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)   # warm-up: forget the init early
    assert ema_decay_at(10**6, 0.999) == 0.999


def test_checkpoint_holds_the_ema_weights(tiny_split, tmp_path) -> None:
    """The saved (and so sampled) weights are the EMA copy, not the raw network."""
    train(tiny_config(tiny_split), TrainConfig(steps=30, **{**TINY, "eval_every": 30}),
          tiny_split, tmp_path, sde=VPSDE(), progress=False)
    state = torch.load(tmp_path / TRAIN_STATE_FILE, weights_only=True)
    model = load_checkpoint(tmp_path)
    assert model.meta["weights"] == "ema"
    differs = False
    for name, value in model.network.state_dict().items():
        assert torch.equal(value, state["ema"][name]), name
        differs |= not torch.equal(value, state["network"][name])
    assert differs  # the EMA copy is not the raw network


def test_ema_off_saves_the_raw_weights(tiny_split, tmp_path) -> None:
    train(tiny_config(tiny_split), TrainConfig(steps=10, ema_decay=0.0, **TINY), tiny_split,
          tmp_path, sde=VPSDE(), progress=False)
    state = torch.load(tmp_path / TRAIN_STATE_FILE, weights_only=True)
    model = load_checkpoint(tmp_path)
    assert model.meta["weights"] == "raw"
    for name, value in model.network.state_dict().items():
        assert torch.equal(value, state["network"][name]), name
