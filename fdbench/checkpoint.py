"""Checkpoints in open formats: ``model.safetensors`` (network weights and the data
standardisation, tensors only) beside ``config.json`` (model, SDE and training configs,
data provenance, best validation loss, and the sha256 of the weights file). Nothing is
unpickled on load; a weights file whose hash differs from the recorded one, or holding a
non-finite value, is refused (``CheckpointError``: one ``fdbench: error:`` line)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file

from fdbench import __version__
from fdbench.argtypes import SHIPPED_CHECKPOINTS
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
HASH_KEY = "weights_sha256"   # config.json: sha256 (hex) of WEIGHTS_FILE; absent before 0.2
_STANDARDISER_PREFIX = "standardiser."


def weights_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (the content hash recorded under ``HASH_KEY``)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_checkpoint(directory: str | os.PathLike, model: ScoreModel) -> Path:
    """Write ``model`` to ``directory`` (weights first, then the config that names them
    and records their sha256; each file atomically, so a reader never sees a half-written
    checkpoint)."""
    directory = Path(directory)
    tensors = {name: value.detach().cpu().contiguous()
               for name, value in model.network.state_dict().items()}
    tensors.update({_STANDARDISER_PREFIX + name: value
                    for name, value in model.standardiser.state_dict().items()})
    weights = atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fdbench_version": __version__,
        HASH_KEY: weights_sha256(weights),
        "model": model.network.config.to_dict(),
        "sde": model.sde.to_dict(),
        "meta": model.meta,
    }
    atomic_write_json(directory / CONFIG_FILE, config)
    return directory


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint, checked for format and version (cheap:
    commands call it to validate their inputs before loading any weights)."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        shipped = ", ".join(SHIPPED_CHECKPOINTS)
        what = (f"checkpoint {directory} is a file, not a checkpoint directory"
                if Path(directory).exists() else f"checkpoint directory not found: {directory}")
        raise CheckpointError(f"{what} (give a checkpoint directory, or a shipped model: "
                              f"{shipped})")
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
    model = config.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("n_steps"), int):
        raise CheckpointError(f"invalid checkpoint {directory}: config.json has no "
                              "model.n_steps")
    return config


def _non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    return [name for name, value in tensors.items()
            if value.is_floating_point() and not bool(torch.isfinite(value).all())]


def _read_weights(weights_path: Path, recorded: Any) -> dict[str, torch.Tensor]:
    """The tensors of the weights file, after its sha256 matched ``recorded`` (None: a
    checkpoint saved before hashes were recorded, accepted)."""
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint has no {WEIGHTS_FILE}: {weights_path}")
    data = weights_path.read_bytes()
    if recorded is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != recorded:
            raise CheckpointError(
                f"corrupt checkpoint weights {weights_path}: sha256 {actual[:16]}... "
                f"differs from the {str(recorded)[:16]}... recorded in {CONFIG_FILE} "
                "(the file was damaged or replaced)")
    try:
        tensors = load_bytes(data)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"corrupt checkpoint weights {weights_path}: {err}") from None
    broken = sorted(_non_finite(tensors))    # sorted: the message names the same tensor
    if broken:  # e.g. bytes overwritten with 0xFF read back as NaN: corrupt, not a model
        raise CheckpointError(f"corrupt checkpoint weights {weights_path}: non-finite "
                              f"values in {len(broken)} tensor(s), first {broken[0]!r}")
    return tensors


def load_checkpoint(directory: str | os.PathLike, *,
                    device: torch.device | str = "cpu") -> ScoreModel:
    """Load a checkpoint written by :func:`save_checkpoint`, in eval mode on ``device``:
    the weights' sha256 checked against config.json (when recorded), and every tensor of
    the file and of the built network checked finite."""
    config = read_config(directory)
    weights_path = Path(directory) / WEIGHTS_FILE
    tensors = _read_weights(weights_path, config.get(HASH_KEY))
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
    broken = _non_finite(network.state_dict())   # buffers the file does not hold too
    if broken:
        raise CheckpointError(f"checkpoint {directory} builds a network with non-finite "
                              f"values in {broken[0]!r}")
    expected = (model_config.n_steps, model_config.n_channels)
    if tuple(standardiser.mean.shape) != expected:
        raise CheckpointError(f"checkpoint standardiser has shape "
                              f"{tuple(standardiser.mean.shape)}, model expects {expected}")
    network.eval()
    return ScoreModel(network, sde, standardiser, config.get("meta", {})).to(device)
