"""Import of FourierDiffusion (Crabbé et al. 2024) PyTorch Lightning checkpoints into a
``chart``-layout (frequency model) or ``time``-layout ``ScoreTransformer``.

Layout: docs/FD_CHECKPOINT.md. The ``.ckpt`` holds a pickled
``fdiff.schedulers.sde.VPScheduler``/``VEScheduler`` in ``hyper_parameters``, so reading it
runs pickle: :class:`RestrictedUnpickler` resolves only the globals a Lightning
checkpoint of that code needs (torch's tensor rebuilders, dtypes, OrderedDict, numpy's
scalar and array rebuilders for the plain data callbacks leave) and maps the two
``fdiff`` scheduler classes to plain stand-ins; any other global is refused with a
:class:`CheckpointError` naming it, before any of its code could run. Edge cases (a
directory path, MLP/LSTM score models, models without noise scaling, FD's own
standardisation): docs/FD_CHECKPOINT.md, "Import rules"."""

from __future__ import annotations

import collections
import math
import os
import pickle
import re
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
# Plain data Lightning callbacks leave outside state_dict / hyper_parameters (a numpy
# scalar such as ModelCheckpoint's best score, a small array): numpy's own rebuilders
# make arrays and scalars from bytes and run no code of the file's choosing.
_NUMPY_PLAIN = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
                ("numpy", "dtype"), ("_codecs", "encode")}


def _numpy_plain(module: str, name: str) -> Any:
    """numpy's rebuilder ``module.name`` (or a dtype class), or None if not allowed."""
    import importlib

    if (module, name) not in _NUMPY_PLAIN and not (
            module == "numpy.dtypes" and name.endswith("DType")):
        return None
    if module == "_codecs":
        import codecs

        return codecs.encode
    # numpy 2 renamed numpy.core to numpy._core (the old name warns): either spelling
    # in the file loads on either numpy, the new name tried first
    candidates = [module]
    if module.startswith("numpy.core"):
        candidates.insert(0, "numpy._core" + module[len("numpy.core"):])
    elif module.startswith("numpy._core"):
        candidates.append("numpy.core" + module[len("numpy._core"):])
    for candidate in candidates:
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    return None


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
        plain = _numpy_plain(module, name)
        if plain is not None:
            return plain
        raise CheckpointError(
            f"FourierDiffusion checkpoint refers to {module}.{name}, which the importer "
            "does not allow (only fdiff VP/VE schedulers, tensors, numpy scalars and "
            "plain containers); "
            "not loading it")


# torch.load(pickle_module=...) needs a module-like object with Unpickler and load
_PICKLE_MODULE = types.SimpleNamespace(
    Unpickler=RestrictedUnpickler, load=lambda f, **kw: RestrictedUnpickler(f, **kw).load(),
    __name__="fdbench_restricted_pickle")


CKPT_PATTERN = re.compile(r"epoch=(\d+)-val_loss=(\d+(?:\.\d+)?)")  # FD's file names


def find_ckpt(path: str | os.PathLike) -> Path:
    """``path`` itself, or for a directory the ``*.ckpt`` in it or in its
    ``checkpoints/`` (FD's ``lightning_logs/<run>/checkpoints/``): the only one, else the
    lowest ``val_loss`` in FD's ``epoch=E-val_loss=L.ckpt`` names (what FD's own
    ``get_best_checkpoint`` samples from)."""
    path = Path(path)
    if not path.is_dir():
        if not path.is_file():
            raise CheckpointError(f"FourierDiffusion checkpoint not found: {path}")
        return path
    found = sorted({*path.glob("*.ckpt"), *path.glob("checkpoints/*.ckpt")})
    if not found:
        raise CheckpointError(f"{path} is a directory with no .ckpt file in it or in its "
                              "checkpoints/; name the .ckpt file")
    if len(found) == 1:
        return found[0]
    scored = [(float(m.group(2)), p) for p in found
              if (m := CKPT_PATTERN.search(p.name)) is not None]
    if len(scored) != len(found):
        raise CheckpointError(f"{path} is a directory with {len(found)} .ckpt files "
                              f"({', '.join(p.name for p in found[:5])}); name one")
    return min(scored)[1]


def _score_model_kind(hparams: dict[str, Any], state: dict[str, Any]) -> str:
    """'transformer', 'LSTM' or 'MLP' (FD's three score models), from the weights."""
    keys = list(state)
    if "backbone.layers.0.self_attn.in_proj_weight" in state:
        return "transformer"
    if any("weight_ih_l" in k for k in keys if k.startswith("backbone.")):
        return "LSTM"
    if "d_mlp" in hparams or any(re.match(r"backbone\.\d+\.", k) for k in keys):
        return "MLP"
    return "unknown"


def load_fd_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a FourierDiffusion ``.ckpt`` (a file, or a directory: :func:`find_ckpt`)
    with the restricted unpickler; checks it is the transformer score model and has the
    keys the import needs. The path read is ``ckpt["_path"]``."""
    path = find_ckpt(path)
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
    if not isinstance(hparams, dict) or not isinstance(ckpt["state_dict"], dict):
        raise CheckpointError(f"{path}: hyper_parameters and state_dict must be mappings")
    kind = _score_model_kind(hparams, ckpt["state_dict"])
    if kind in ("LSTM", "MLP"):
        raise CheckpointError(f"{path}: unsupported score model ({kind}): fdbench imports "
                              "FourierDiffusion's transformer score model only")
    missing = [k for k in ("n_channels", "max_len", "noise_scheduler", "d_model",
                           "num_layers", "n_head", "fourier_noise_scaling") if k not in hparams]
    if missing:
        raise CheckpointError(f"{path}: hyper_parameters lacks {missing}")
    ckpt["_path"] = path
    return ckpt


def train_config_domain(ckpt_path: Path) -> tuple[str, Path] | None:
    """('frequency' | 'time', file) from FD's ``train_config.yaml`` (saved in
    ``lightning_logs/<run>/``, beside ``checkpoints/``) or None when there is none. Reads
    the top-level ``fourier_transform:`` line (the datamodule's copy interpolates it)."""
    for folder in (ckpt_path.parent, ckpt_path.parent.parent):
        config = folder / "train_config.yaml"
        if config.is_file():
            text = config.read_text(encoding="utf-8", errors="replace")
            match = re.search(r"^fourier_transform:\s*(\w+)\s*$", text, re.MULTILINE) or \
                re.search(r"^\s+fourier_transform:\s*(true|false|True|False)\s*$", text,
                          re.MULTILINE)
            if match is None or match.group(1).lower() not in ("true", "false"):
                raise CheckpointError(f"{config}: no fourier_transform: true|false line; "
                                      "state the domain with --domain time|frequency")
            return ("frequency" if match.group(1).lower() == "true" else "time"), config
    return None


def model_domain(ckpt: dict[str, Any], domain: str | None = None) -> str:
    """'frequency' or 'time': the domain the model was trained in.

    ``fourier_noise_scaling=True`` needs the DFT (FD's train script refuses it without),
    so it is a frequency model. ``False`` is allowed in either domain, and the checkpoint
    does not record which: ``train_config.yaml`` beside it says, else ``domain`` (the
    user's ``--domain``) must. A frequency model without noise scaling is refused:
    fdbench's frequency layouts sample with the chart's Lambda noise."""
    if domain not in (None, "time", "frequency"):
        raise CheckpointError(f"--domain must be time or frequency, got {domain!r}")
    path = Path(ckpt.get("_path", "checkpoint"))
    scaled = bool(ckpt["hyper_parameters"]["fourier_noise_scaling"])
    if scaled:
        if domain == "time":
            raise CheckpointError(f"{path}: --domain time contradicts the checkpoint "
                                  "(fourier_noise_scaling=True is a frequency model)")
        return "frequency"
    found = train_config_domain(path)
    if found is not None and domain is not None and found[0] != domain:
        raise CheckpointError(f"--domain {domain} contradicts {found[1]} (fourier_transform "
                              f"says {found[0]})")
    resolved = domain or (found[0] if found is not None else None)
    if resolved is None:
        raise CheckpointError(f"{path}: fourier_noise_scaling=False, and no "
                              "train_config.yaml beside it says whether the model was "
                              "trained on the DFT; state it with --domain time|frequency")
    if resolved == "frequency":
        raise CheckpointError(f"{path}: a frequency-domain model trained without noise "
                              "scaling (fourier_noise_scaling=False) is not supported: "
                              "fdbench's frequency layouts sample with the chart's Lambda "
                              "noise, this model expects white noise")
    return resolved


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


def network_from_fd(ckpt: dict[str, Any], domain: str | None = None) -> ScoreTransformer:
    """A ``ScoreTransformer`` with the checkpoint's weights (eval mode): the frequency
    model in the ``chart`` layout, the time model in ``time`` (:func:`model_domain`,
    ``domain`` the user's ``--domain``). Weight names are the same in both codes; the
    positional table gets its ``max_norm`` renormalisation once here, since fdbench
    reads it without ``nn.Embedding`` lookup."""
    hp, state = ckpt["hyper_parameters"], dict(ckpt["state_dict"])
    layout = "chart" if model_domain(ckpt, domain) == "frequency" else "time"
    try:
        d_ff = int(state["backbone.layers.0.linear1.weight"].shape[0])
        config = ModelConfig(
            n_steps=int(hp["max_len"]), n_channels=int(hp["n_channels"]),
            layout=layout,
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


STANDARDISE = ("fdbench", "fd")


def fit_standardiser(split: Any, frequency: bool, how: str) -> tuple[Any, str]:
    """The standardiser of the imported model and words for it. ``fdbench``: mean and
    population std of the training split with fdbench's std floor
    (:meth:`Standardiser.fit`). ``fd``: FourierDiffusion's own (``DiffusionDataset``:
    ``X.mean(0)``, ``X.std(0)``, unbiased, over every series it trained on, here the
    whole ``--data`` set), floored only where the std is 0 (FD would divide by 0)."""
    from fdbench.data.standardise import MIN_STD, Standardiser
    from fdbench.pipeline import to_domain

    if how == "fdbench":
        return (Standardiser.fit(to_domain(split.train, frequency)),
                "fitted on the training split (population std, floored)")
    x = to_domain(torch.cat([split.train, split.test]), frequency).to(torch.float64)
    std = x.std(dim=0, correction=1) if x.shape[0] > 1 else torch.zeros_like(x[0])
    return (Standardiser(x.mean(dim=0).float(), std.clamp_min(MIN_STD).float()),
            "FourierDiffusion's: every series, unbiased std")


def import_fourierdiffusion(path: str | os.PathLike, *, data: str | None = None,
                            data_seed: int = 0, options: Any = None,
                            domain: str | None = None,
                            standardise: str = "fdbench") -> Any:
    """A :class:`fdbench.pipeline.ScoreModel` from a FourierDiffusion ``.ckpt`` (or a
    directory holding one): the network, the SDE rebuilt from the stored scheduler, and
    a standardiser fitted on ``data`` (a registered name or a file, read with
    ``options``, :class:`fdbench.data.LoadOptions`) in the model's domain
    (:func:`fit_standardiser`), or the identity when ``data`` is None (the checkpoint
    itself does not store its data's statistics). ``domain`` is the user's statement
    for a model without noise scaling (:func:`model_domain`)."""
    from fdbench.data.standardise import Standardiser
    from fdbench.pipeline import ScoreModel

    if standardise not in STANDARDISE:
        raise CheckpointError(f"--standardise must be one of {STANDARDISE}, got "
                              f"{standardise!r}")
    ckpt = load_fd_checkpoint(path)
    network = network_from_fd(ckpt, domain)
    sde = sde_from_scheduler(ckpt["hyper_parameters"]["noise_scheduler"])
    config = network.config
    meta: dict[str, Any] = {"imported_from": str(Path(ckpt["_path"]).resolve()),
                            "source": "FourierDiffusion",
                            "epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step")}
    if data is None:
        shape = (config.n_steps, config.n_channels)
        standardiser = Standardiser(torch.zeros(shape), torch.ones(shape))
        meta["standardiser"] = "identity (no --data given)"
    else:
        from fdbench.data import load_dataset

        split = load_dataset(data, seed=data_seed, options=options)
        if (split.n_steps, split.n_channels) != (config.n_steps, config.n_channels):
            hint = (" (a label column? --label-column -1 drops the last)"
                    if split.n_steps == config.n_steps + 1 else "")
            raise CheckpointError(f"data {data!r} has series of shape ({split.n_steps}, "
                                  f"{split.n_channels}); the checkpoint expects "
                                  f"({config.n_steps}, {config.n_channels}){hint}")
        standardiser, words = fit_standardiser(split, config.frequency_domain, standardise)
        meta.update(data=split.name, data_seed=data_seed, data_source=split.source,
                    standardiser=words)
    return ScoreModel(network, sde, standardiser, meta)
