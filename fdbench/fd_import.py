"""Import of FourierDiffusion (Crabbé et al. 2024) PyTorch Lightning checkpoints into a
``chart``-layout (frequency model) or ``time``-layout ``ScoreTransformer``.

Layout: docs/FD_CHECKPOINT.md. The ``.ckpt`` holds a pickled
``fdiff.schedulers.sde.VPScheduler``/``VEScheduler`` in ``hyper_parameters``, so reading it
runs pickle: :class:`RestrictedUnpickler` resolves only the globals a Lightning
checkpoint of that code needs (torch's tensor rebuilders, dtypes, OrderedDict) and maps
the two ``fdiff`` scheduler classes to plain stand-ins; any other global is refused with a
:class:`CheckpointError` naming it, before any of its code could run."""

from __future__ import annotations

import collections
import math
import os
import pickle
import types
from pathlib import Path
from typing import Any

import torch

from fdbench.errors import CheckpointError, FdbenchError
from fdbench.model import ModelConfig, ScoreTransformer
from fdbench.sde import SDE, VESDE, VPSDE
from fdbench.spectral import chart_lambda


class FdVPScheduler:
    """Stand-in for ``fdiff.schedulers.sde.VPScheduler``: attributes only, no code."""


class FdVEScheduler:
    """Stand-in for ``fdiff.schedulers.sde.VEScheduler``: attributes only, no code."""


class FdAttributeDict(dict):
    """Stand-in for Lightning's ``AttributeDict`` (a dict) in ``hyper_parameters``."""


_STAND_INS: dict[tuple[str, str], type] = {
    ("fdiff.schedulers.sde", "VPScheduler"): FdVPScheduler,
    ("fdiff.schedulers.sde", "VEScheduler"): FdVEScheduler,
    ("pytorch_lightning.utilities.parsing", "AttributeDict"): FdAttributeDict,
    ("lightning_fabric.utilities.data", "AttributeDict"): FdAttributeDict,
    ("lightning.fabric.utilities.data", "AttributeDict"): FdAttributeDict,
}
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol <= 2 pickles name builtins the Python 2 way
            module = "builtins"
        if (module, name) in _STAND_INS:
            return _STAND_INS[(module, name)]
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise CheckpointError(
            f"FourierDiffusion checkpoint refers to {module}.{name}, which the importer "
            "does not allow (only fdiff VP/VE schedulers, tensors and plain containers); "
            "not loading it")


# torch.load(pickle_module=...) needs a module-like object with Unpickler and load
_PICKLE_MODULE = types.SimpleNamespace(
    Unpickler=RestrictedUnpickler, load=lambda f, **kw: RestrictedUnpickler(f, **kw).load(),
    __name__="fdbench_restricted_pickle")


def load_fd_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a FourierDiffusion ``.ckpt`` with the restricted unpickler; checks the keys
    the import needs."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"FourierDiffusion checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False,
                          pickle_module=_PICKLE_MODULE)
    except CheckpointError:
        raise
    except Exception as err:  # corrupt zip / truncated pickle: many exception types
        raise CheckpointError(f"cannot read FourierDiffusion checkpoint {path}: "
                              f"{type(err).__name__}: {err}") from None
    if not isinstance(ckpt, dict) or not {"state_dict", "hyper_parameters"} <= set(ckpt):
        raise CheckpointError(f"{path} is not a FourierDiffusion Lightning checkpoint "
                              "(needs 'state_dict' and 'hyper_parameters')")
    hparams = ckpt["hyper_parameters"]
    missing = [k for k in ("n_channels", "max_len", "noise_scheduler", "d_model",
                           "num_layers", "n_head", "fourier_noise_scaling") if k not in hparams]
    if missing:
        raise CheckpointError(f"{path}: hyper_parameters lacks {missing}")
    return ckpt


def sde_from_scheduler(scheduler: Any) -> SDE:
    """The fdbench SDE with the stored scheduler's schedule (VP: beta_0, beta_1; VE:
    sigma_min, sigma_max; both: eps)."""
    try:
        if isinstance(scheduler, FdVPScheduler):
            return VPSDE(beta_min=float(scheduler.beta_0), beta_max=float(scheduler.beta_1),
                         eps=float(scheduler.eps))
        if isinstance(scheduler, FdVEScheduler):
            return VESDE(sigma_min=float(scheduler.sigma_min),
                         sigma_max=float(scheduler.sigma_max), eps=float(scheduler.eps))
    except AttributeError as err:
        raise CheckpointError(f"noise_scheduler lacks an attribute: {err}") from None
    except FdbenchError as err:
        raise CheckpointError(f"noise_scheduler has invalid values: {err}") from None
    raise CheckpointError(f"noise_scheduler is a {type(scheduler).__name__}, expected an "
                          "fdiff VPScheduler or VEScheduler")


def _check_noise_scaling(scheduler: Any, n_steps: int, frequency: bool) -> None:
    """The stored G must be fdbench's Lambda (chart) or I (time): sampling multiplies the
    score by G^2, so another G would be a different model."""
    stored = getattr(scheduler, "G", None)
    if not isinstance(stored, torch.Tensor):
        return  # no per-position scaling stored; fourier_noise_scaling decides
    diagonal = stored.diagonal() if stored.dim() == 2 else stored.reshape(-1)
    expected = chart_lambda(n_steps) if frequency else torch.ones(n_steps)
    if diagonal.shape != expected.shape or not torch.allclose(diagonal.float(), expected,
                                                               atol=1e-5):
        raise CheckpointError("noise_scheduler.G is not the chart's Lambda (or I for a "
                              "time-domain model); fdbench cannot sample this noise scaling")


def network_from_fd(ckpt: dict[str, Any]) -> ScoreTransformer:
    """A ``ScoreTransformer`` with the checkpoint's weights (eval mode): the frequency
    model (``fourier_noise_scaling``) in the ``chart`` layout, else ``time``. Weight
    names are the same in both codes; the positional table gets its ``max_norm``
    renormalisation once here, since fdbench reads it without ``nn.Embedding`` lookup."""
    hp, state = ckpt["hyper_parameters"], dict(ckpt["state_dict"])
    try:
        d_ff = int(state["backbone.layers.0.linear1.weight"].shape[0])
        config = ModelConfig(
            n_steps=int(hp["max_len"]), n_channels=int(hp["n_channels"]),
            layout="chart" if bool(hp["fourier_noise_scaling"]) else "time",
            d_model=int(hp["d_model"]), n_layers=int(hp["num_layers"]),
            n_heads=int(hp["n_head"]), d_ff=d_ff, dropout=0.1, time_scale=30.0,
            parametrisation="score")
    except (KeyError, AttributeError, TypeError, ValueError, FdbenchError) as err:
        raise CheckpointError(f"FourierDiffusion hyper-parameters/state_dict unusable: "
                              f"{type(err).__name__}: {err}") from None
    _check_noise_scaling(hp["noise_scheduler"], config.n_steps, config.frequency_domain)
    network = ScoreTransformer(config)
    expected = set(network.state_dict())
    if set(state) != expected:
        raise CheckpointError(
            f"state_dict keys differ from the FourierDiffusion layout: missing "
            f"{sorted(expected - set(state))[:5]}, unexpected {sorted(set(state) - expected)[:5]}")
    weight = state["pos_encoder.embedding.weight"].detach().clone().float()
    with torch.no_grad():  # nn.Embedding(max_norm=sqrt(d)): same kernel, every row once
        torch.embedding_renorm_(weight, torch.arange(weight.shape[0]),
                                math.sqrt(config.d_model), 2.0)
    state["pos_encoder.embedding.weight"] = weight
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        lines = str(err).strip().splitlines()
        raise CheckpointError(f"FourierDiffusion weights have wrong shapes: "
                              f"{' '.join(lines[:3])}") from None
    return network.eval()


def import_fourierdiffusion(path: str | os.PathLike, *, data: str | None = None,
                            data_seed: int = 0) -> Any:
    """A :class:`fdbench.pipeline.ScoreModel` from a FourierDiffusion ``.ckpt``: the
    network, the SDE rebuilt from the stored scheduler, and a standardiser — fitted on
    the training split of registry dataset ``data`` in the model's domain (as the base
    code standardises), or the identity when ``data`` is None (the checkpoint itself does
    not store its data's statistics)."""
    from fdbench.data.standardise import Standardiser
    from fdbench.pipeline import ScoreModel, to_domain

    ckpt = load_fd_checkpoint(path)
    network = network_from_fd(ckpt)
    sde = sde_from_scheduler(ckpt["hyper_parameters"]["noise_scheduler"])
    config = network.config
    meta: dict[str, Any] = {"imported_from": str(Path(path).resolve()),
                            "source": "FourierDiffusion",
                            "epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step")}
    if data is None:
        shape = (config.n_steps, config.n_channels)
        standardiser = Standardiser(torch.zeros(shape), torch.ones(shape))
        meta["standardiser"] = "identity (no --data given)"
    else:
        from fdbench.data import load_dataset

        split = load_dataset(data, seed=data_seed)
        if (split.n_steps, split.n_channels) != (config.n_steps, config.n_channels):
            raise CheckpointError(f"data {data!r} has series of shape ({split.n_steps}, "
                                  f"{split.n_channels}); the checkpoint expects "
                                  f"({config.n_steps}, {config.n_channels})")
        standardiser = Standardiser.fit(to_domain(split.train, config.frequency_domain))
        meta.update(data=data, data_seed=data_seed)
    return ScoreModel(network, sde, standardiser, meta)
