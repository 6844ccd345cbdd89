"""Checkpoints in open formats: ``model.safetensors`` (network weights and the data
standardisation, tensors only) beside ``config.json`` (model, SDE and training configs,
data provenance, best validation loss). Nothing is unpickled on load."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fdbench import __version__
from fdbench.data.standardise import Standardiser
from fdbench.errors import CheckpointError, FdbenchError
from fdbench.io import atomic_write, atomic_write_json
from fdbench.model import ModelConfig, build_model
from fdbench.pipeline import ScoreModel
from fdbench.sde import sde_from_dict

FORMAT = "fdbench-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_STANDARDISER_PREFIX = "standardiser."


def save_checkpoint(directory: str | os.PathLike, model: ScoreModel) -> Path:
    """Write ``model`` to ``directory`` (weights first, then the config that names them;
    each file atomically, so a reader never sees a half-written checkpoint)."""
    directory = Path(directory)
    tensors = {name: value.detach().cpu().contiguous()
               for name, value in model.network.state_dict().items()}
    tensors.update({_STANDARDISER_PREFIX + name: value
                    for name, value in model.standardiser.state_dict().items()})
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fdbench_version": __version__,
        "model": model.network.config.to_dict(),
        "sde": model.sde.to_dict(),
        "meta": model.meta,
    }
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp))
    atomic_write_json(directory / CONFIG_FILE, config)
    return directory


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint, checked for format and version."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise CheckpointError(f"checkpoint directory not found: {directory}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint has no {CONFIG_FILE}: {path}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"corrupt checkpoint config {path}: {err}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an fdbench checkpoint config")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported format_version "
                              f"{config.get('format_version')!r} (expected {FORMAT_VERSION})")
    return config


def load_checkpoint(directory: str | os.PathLike, *,
                    device: torch.device | str = "cpu") -> ScoreModel:
    """Load a checkpoint written by :func:`save_checkpoint`, in eval mode on ``device``."""
    config = read_config(directory)
    weights_path = Path(directory) / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint has no {WEIGHTS_FILE}: {weights_path}")
    try:
        tensors = load_file(weights_path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"corrupt checkpoint weights {weights_path}: {err}") from None
    broken = [name for name, value in tensors.items()
              if value.is_floating_point() and not torch.isfinite(value).all()]
    if broken:  # e.g. bytes overwritten with 0xFF read back as NaN: corrupt, not a model
        raise CheckpointError(f"corrupt checkpoint weights {weights_path}: non-finite "
                              f"values in {len(broken)} tensor(s), first {broken[0]!r}")
    try:
        model_config = ModelConfig.from_dict(config["model"])
        sde = sde_from_dict(config["sde"])
        standardiser = Standardiser.from_state_dict({
            name[len(_STANDARDISER_PREFIX):]: value for name, value in tensors.items()
            if name.startswith(_STANDARDISER_PREFIX)})
    except (KeyError, FdbenchError) as err:
        raise CheckpointError(f"invalid checkpoint {directory}: {err}") from None
    network = build_model(model_config)  # weights overwritten; build_model spares the RNG
    state = {k: v for k, v in tensors.items() if not k.startswith(_STANDARDISER_PREFIX)}
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(f"checkpoint weights do not match its config "
                              f"({weights_path}): {' '.join(first[:3])}") from None
    expected = (model_config.n_steps, model_config.n_channels)
    if tuple(standardiser.mean.shape) != expected:
        raise CheckpointError(f"checkpoint standardiser has shape "
                              f"{tuple(standardiser.mean.shape)}, model expects {expected}")
    network.eval()
    return ScoreModel(network, sde, standardiser, config.get("meta", {})).to(device)
