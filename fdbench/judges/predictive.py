"""Predictive score: train on synthetic, test on real (TSTR) one-step-ahead prediction.

TimeGAN (Yoon, Jarrett & van der Schaar, NeurIPS 2019, Sec. 5 "Predictive score"), as used
by Diffusion-TS (Yuan & Qiao, ICLR 2024, Sec. 5.1) and TSGBench (Ang et al., VLDB 2024,
Sec. 4.3 "PS"): a small GRU is trained on the *generated* series to predict x_{t+1} from
x_{<=t}, and its mean absolute error is measured on the *real* series. A generator that
reproduces the real dynamics gives the error of a model trained on real data; noise or
wrong dynamics give a larger one. Lower is better; the number only means something next
to the same judge's real-vs-real reference (train on real, test on other real series).

Choices, and why:

* all M channels are predicted from all M channels (TimeGAN predicts the last feature
  from the others, which is undefined for M = 1);
* both sets are standardised per channel with the **real** set's mean and std, so the MAE
  is in units of the real data's std and comparable across generators (statistics of the
  generated set would rescale the yardstick with every model);
* training uses random windows of ``window`` steps (truncated back-propagation through
  time) so that one step costs the same whatever N; evaluation runs the GRU over the
  full real series, which it sees from the first step;
* ``repeats`` independent trainings (init and minibatches); mean and standard error.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fdbench.judges.result import JudgeResult, summarise_repeats
from fdbench.judges.validate import check_positive_int, check_series_pair

__all__ = ["predictive_score"]


class _Predictor(nn.Module):
    """GRU(M -> hidden) -> Linear(hidden -> M): x_{<=t} -> x_{t+1}, every t at once."""

    def __init__(self, n_channels: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(n_channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_channels)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, M) -> (B, T, M)
        return self.head(self.gru(x)[0])


def _windows(x: Tensor, idx: Tensor, window: int, gen: torch.Generator) -> Tensor:
    """Series ``idx`` of x, each cut to ``window + 1`` steps at a random start."""
    n_steps = x.shape[1]
    if window + 1 >= n_steps:
        return x[idx]
    starts = torch.randint(n_steps - window, (len(idx),), generator=gen)
    offsets = starts[:, None] + torch.arange(window + 1)[None, :]  # (b, window + 1)
    return x[idx[:, None], offsets]


def _fit_predictor(train: Tensor, *, steps: int, batch_size: int, lr: float, hidden: int,
                   window: int, gen: torch.Generator) -> nn.Module:
    """Adam on the L1 one-step loss (TimeGAN's) over random windows of ``train``."""
    init_seed = int(torch.randint(2**62, (1,), generator=gen))
    with torch.random.fork_rng(devices=[]):  # nn init draws from the global RNG
        torch.manual_seed(init_seed)
        model = _Predictor(train.shape[2], hidden)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    # decaying to 0 ends every repeat at a settled model, not at a random point of the
    # noisy last steps: the repeat-to-repeat spread is then the judge's, not Adam's
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    for _ in range(steps):
        idx = torch.randint(len(train), (min(batch_size, len(train)),), generator=gen)
        w = _windows(train, idx, window, gen)
        optimiser.zero_grad(set_to_none=True)
        (model(w[:, :-1]) - w[:, 1:]).abs().mean().backward()
        optimiser.step()
        schedule.step()
    return model.eval()


def _test_mae(model: nn.Module, real: Tensor) -> float:
    with torch.no_grad():
        return (model(real[:, :-1]) - real[:, 1:]).abs().mean().item()


def predictive_score(real: object, generated: object, *, repeats: int = 5, seed: int = 0,
                     steps: int = 300, batch_size: int = 64, lr: float = 2e-2,
                     hidden: int = 32, window: int = 32) -> JudgeResult:
    """TimeGAN's predictive score (TSTR): one-step-ahead MAE on ``real`` of a GRU trained on
    ``generated``, in units of the real set's per-channel std; mean and standard error
    over ``repeats`` trainings (see the module docstring).

    ``real``, ``generated``: (B, N, M) or (B, N) with the same (N, M), >= 2 series each.
    Each repeat trains ``_Predictor`` (GRU of ``hidden`` units) for ``steps`` Adam steps
    (learning rate ``lr`` decayed to 0 on a cosine) on ``batch_size`` random windows of
    ``window`` + 1 steps of the generated series, then scores every step t = 1..N-1 of
    every real series. Lower is better;
    compare with the real-vs-real value. Seeded by ``seed`` through one CPU generator.
    """
    r, g = check_series_pair(real, generated, min_count=2)
    repeats = check_positive_int(repeats, "repeats")
    fit = dict(steps=check_positive_int(steps, "steps"),
               batch_size=check_positive_int(batch_size, "batch_size"), lr=float(lr),
               hidden=check_positive_int(hidden, "hidden"),
               window=check_positive_int(window, "window"))
    mean = r.mean(dim=(0, 1))
    std = r.std(dim=(0, 1))
    std = torch.where(std > 0, std, torch.ones_like(std))
    r32 = ((r - mean) / std).to(torch.float32)
    g32 = ((g - mean) / std).to(torch.float32)
    gen = torch.Generator().manual_seed(int(seed))
    values = [_test_mae(_fit_predictor(g32, gen=gen, **fit), r32) for _ in range(repeats)]
    return summarise_repeats("predictive_score", values, seed=int(seed), units="real std",
                             steps=fit["steps"], window=fit["window"])
