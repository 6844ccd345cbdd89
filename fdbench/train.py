"""Denoising score matching with mirrored noise (Crabbé et al. 2024, Sec. 3.2 / App. C).

One step: t ~ U(eps, 1), z ~ N(0, I), x_t = m(t) x_0 + s(t) Lambda z; the network's score
is regressed onto -z / (s(t) Lambda), with per-sample weight 1 / sum_j (s(t) Lambda_j)^-2.
AdamW, linear warm-up then cosine decay, gradient clipping, an exponential moving average
of the weights (the copy that is validated, checkpointed and sampled), best-on-validation
checkpoint, and a resumable training state written atomically."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fdbench.checkpoint import save_checkpoint
from fdbench.data import SeriesSplit
from fdbench.data.standardise import Standardiser
from fdbench.errors import CheckpointError, ConfigError
from fdbench.io import atomic_write, atomic_write_json
from fdbench.model import ModelConfig, ScoreTransformer, build_model
from fdbench.pipeline import ScoreModel, output_to_score, to_domain
from fdbench.progress import bar as progress_bar
from fdbench.progress import summary
from fdbench.sde import SDE, marginal_std, perturb
from fdbench.spectral import chart_lambda

TRAIN_STATE_FILE = "train_state.pt"
HISTORY_FILE = "history.json"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the paper's: AdamW lr 1e-3, 10 % warm-up, clip 1.0, batch 64)."""

    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01     # AdamW's default, as the base code leaves it
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    val_fraction: float = 0.1      # of the training split, held out for model selection
    eval_every: int = 100
    val_repeats: int = 8           # passes over the validation set per evaluation
    seed: int = 0
    # EMA of the weights (Song et al. 2021, App. D / Karras et al. 2022: sample with the
    # averaged copy); 0 keeps the raw weights. Warm-up: decay_k = min(ema_decay,
    # (1 + k) / (10 + k)), so early averages do not remember the random initialisation.
    ema_decay: float = 0.999

    def __post_init__(self) -> None:
        checks = [
            ("steps", self.steps >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("warmup_fraction", 0 <= self.warmup_fraction < 1, "in [0, 1)"),
            ("grad_clip", self.grad_clip > 0, "> 0"),
            ("val_fraction", 0 < self.val_fraction < 1, "in (0, 1)"),
            ("eval_every", self.eval_every >= 1, ">= 1"),
            ("val_repeats", self.val_repeats >= 1, ">= 1"),
            ("seed", self.seed >= 0, ">= 0"),
            ("ema_decay", 0 <= self.ema_decay < 1, "in [0, 1)"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"TrainConfig.{name} must be {allowed}, "
                                  f"got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dsm_loss(network: ScoreTransformer, x0: Tensor, sde: SDE, lam: Tensor | None,
             t: Tensor, z: Tensor) -> Tensor:
    """Weighted denoising score-matching loss (Crabbé et al. 2024, eq. 9 with Lambda^2).

    target = -z / (s(t) Lambda); loss_b = w_b sum_{j,m} (score - target)^2 with
    w_b = 1 / sum_{j,m} (s(t) Lambda_j)^-2, averaged over the batch. Computed through the
    residual s Lambda score + z, which stays O(1) where the target is O(1/s)."""
    std = marginal_std(sde, t, lam).expand_as(x0)              # (B, N, M)
    x_t = perturb(sde, x0, t, z, lam)
    score = output_to_score(network(x_t, t), x_t, t, sde, lam, network.config.parametrisation)
    per_coordinate = (std * score + z).square() / std.square()  # (score - target)^2
    weight = 1.0 / std.square().reciprocal().sum(dim=(1, 2))
    return (weight * per_coordinate.sum(dim=(1, 2))).mean()


def _draw_t_and_z(x0: Tensor, sde: SDE, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    t = sde.eps + (1.0 - sde.eps) * torch.rand(x0.shape[0], generator=generator)
    return t, torch.randn(x0.shape, generator=generator)


def learning_rate_factor(step: int, total: int, warmup_fraction: float) -> float:
    """Linear warm-up over the first ``warmup_fraction`` of steps, then cosine to zero."""
    warmup = int(warmup_fraction * total)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def validation_loss(network: ScoreTransformer, x_val: Tensor, sde: SDE, lam: Tensor | None,
                    *, repeats: int, seed: int, batch_size: int) -> float:
    """Mean DSM loss over ``repeats`` passes with noise fixed by ``seed``, so successive
    evaluations compare the network, not the noise."""
    generator = torch.Generator().manual_seed(seed)
    was_training = network.training
    network.eval()
    total, count = 0.0, 0
    for _ in range(repeats):
        for start in range(0, x_val.shape[0], batch_size):
            x0 = x_val[start:start + batch_size]
            t, z = _draw_t_and_z(x0, sde, generator)
            total += float(dsm_loss(network, x0, sde, lam, t, z)) * x0.shape[0]
            count += x0.shape[0]
    network.train(was_training)
    return total / count


def ema_decay_at(step: int, ema_decay: float) -> float:
    """EMA decay after ``step`` optimiser steps, with the warm-up of ``TrainConfig``."""
    return min(ema_decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(ema: ScoreTransformer, network: ScoreTransformer, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * network, parameters and float buffers."""
    for averaged, current in zip(ema.state_dict().values(), network.state_dict().values(),
                                 strict=True):
        if averaged.is_floating_point():
            averaged.lerp_(current, 1.0 - decay)
        else:
            averaged.copy_(current)


def _split_validation(x: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(fraction * x.shape[0]))
    if n_val >= x.shape[0]:
        raise ConfigError(f"val_fraction={fraction} leaves no training series out of "
                          f"{x.shape[0]}")
    return x[order[n_val:]], x[order[:n_val]]


def _save_train_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_train_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(f"corrupt training state {path}: {err}") from None


def train(model_config: ModelConfig, train_config: TrainConfig, data: SeriesSplit,
          out_dir: str | os.PathLike, *, sde: SDE, resume: bool = False,
          progress: bool = True, meta: dict[str, Any] | None = None,
          stop_at: int | None = None) -> dict[str, Any]:
    """Train a score model on ``data.train`` and keep the best-on-validation checkpoint in
    ``out_dir`` (see ``checkpoint``). The training state is saved at every evaluation and
    at the end; with ``resume`` a run continues from it, bit-identically to an
    uninterrupted run. ``stop_at`` ends this call after that many total steps (to train in
    chunks). Returns the history."""
    out_dir = Path(out_dir)
    if (data.n_steps, data.n_channels) != (model_config.n_steps, model_config.n_channels):
        raise ConfigError(f"model expects series (N, M) = ({model_config.n_steps}, "
                          f"{model_config.n_channels}), data {data.name!r} has "
                          f"({data.n_steps}, {data.n_channels})")
    state_path = out_dir / TRAIN_STATE_FILE
    if state_path.exists() and not resume:
        raise ConfigError(f"{out_dir} already holds a training run; pass resume=True "
                          "(--resume) to continue it or choose another directory")
    x_train, x_val = _split_validation(to_domain(data.train, model_config.frequency_domain),
                                       train_config.val_fraction, train_config.seed)
    standardiser = Standardiser.fit(x_train)
    x_train, x_val = standardiser.transform(x_train), standardiser.transform(x_val)
    lam = chart_lambda(model_config.n_steps) if model_config.frequency_domain else None

    network = build_model(model_config, seed=train_config.seed)
    ema = build_model(model_config, seed=train_config.seed)  # same init as ``network``
    ema.load_state_dict(network.state_dict())
    ema.eval()
    selected = ema if train_config.ema_decay > 0 else network
    optimizer = torch.optim.AdamW(network.parameters(), lr=train_config.lr,
                                  weight_decay=train_config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: learning_rate_factor(
        s, train_config.steps, train_config.warmup_fraction))
    generator = torch.Generator().manual_seed(train_config.seed)
    history: dict[str, Any] = {"step": [], "train_loss": [], "val_loss": [],
                               "best_step": None, "best_val_loss": math.inf}
    start = 0
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global RNG
        torch.manual_seed(train_config.seed)
        if resume and state_path.exists():
            saved = _load_train_state(state_path)
            if saved.get("config") != {**train_config.to_dict(), **model_config.to_dict()}:
                raise ConfigError(f"cannot resume {out_dir}: it was started with a "
                                  "different model or training configuration")
            network.load_state_dict(saved["network"])
            ema.load_state_dict(saved["ema"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            generator.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])
            history, start = saved["history"], int(saved["step"])
        network.train()
        end = train_config.steps if stop_at is None else min(stop_at, train_config.steps)
        bar = progress_bar(range(start, end), desc="training", enabled=progress,
                           initial=start, total=train_config.steps)
        running = []
        for step in bar:
            batch = torch.randint(0, x_train.shape[0], (train_config.batch_size,),
                                  generator=generator)
            x0 = x_train[batch]
            t, z = _draw_t_and_z(x0, sde, generator)
            loss = dsm_loss(network, x0, sde, lam, t, z)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), train_config.grad_clip)
            optimizer.step()
            scheduler.step()
            if train_config.ema_decay > 0:
                update_ema(ema, network, ema_decay_at(step, train_config.ema_decay))
            running.append(float(loss.detach()))
            done = step + 1
            if done % train_config.eval_every == 0 or done in (train_config.steps, end):
                val = validation_loss(selected, x_val, sde, lam, repeats=train_config.val_repeats,
                                      seed=train_config.seed + 1,
                                      batch_size=train_config.batch_size)
                history["step"].append(done)
                history["train_loss"].append(sum(running) / len(running))
                history["val_loss"].append(val)
                running = []
                bar.set_postfix(train=f"{history['train_loss'][-1]:.4g}", val=f"{val:.4g}")
                summary(f"training step {done}/{train_config.steps}: train loss "
                        f"{history['train_loss'][-1]:.4g}, validation loss {val:.4g}"
                        + (" (best so far: saved)" if val < history["best_val_loss"] else ""),
                        enabled=progress)
                if val < history["best_val_loss"]:
                    history["best_step"], history["best_val_loss"] = done, val
                    selected.eval()
                    save_checkpoint(out_dir, ScoreModel(selected, sde, standardiser, {
                        **(meta or {}), "data": data.name, "data_source": data.source,
                        "train": train_config.to_dict(),
                        "weights": "ema" if selected is ema else "raw",
                        "best_step": done, "best_val_loss": val,
                        "n_train": int(x_train.shape[0]), "n_val": int(x_val.shape[0])}))
                    network.train()
                _save_train_state(state_path, {
                    "config": {**train_config.to_dict(), **model_config.to_dict()},
                    "network": network.state_dict(), "ema": ema.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                    "history": history, "step": done})
                atomic_write_json(out_dir / HISTORY_FILE, history)
    return history
