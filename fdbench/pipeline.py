"""A trained score model with everything needed to go between the time domain and the
model's coordinates: data -> chart (frequency models) -> standardised coordinates, and back.
This is the object checkpoints hold and samplers consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from fdbench.data.standardise import Standardiser
from fdbench.model import ScoreTransformer
from fdbench.sde import SDE, marginal_std
from fdbench.spectral import chart, chart_lambda, inverse_chart


def output_to_score(output: Tensor, x: Tensor, t: Tensor, sde: SDE, lam: Tensor | None,
                    parametrisation: str) -> Tensor:
    """The network's output at input x_t as a score.

    * ``"score"``: the output is the score (Crabbé et al. 2024, the base model).
    * ``"noise"``: it predicts z in x_t = m x_0 + s Lambda z; the score of x_t | x_0 is
      -z / (s Lambda) (Ho et al. 2020; Song et al. 2021, App. C).
    * ``"preconditioned"``: z_hat = s Lambda x_t / v + (m / sqrt(v)) F, v = m^2 + s^2 Lambda^2
      per coordinate: the first term is the exact noise prediction for unit-variance
      Gaussian data (what standardised data is, to second order), the second the network's
      correction scaled by its target's std (Karras et al. 2022, "EDM", c_skip/c_out).
    """
    if parametrisation == "score":
        return output
    std = marginal_std(sde, t, lam)                          # (B, N, 1): s(t) Lambda_j
    if parametrisation == "noise":
        return -output / std
    mean = sde.mean_coeff(t).reshape(-1, 1, 1)
    variance = mean.square() + std.square()
    noise = std * x / variance + (mean / variance.sqrt()) * output
    return -noise / std


def to_domain(x: Tensor, frequency_domain: bool) -> Tensor:
    """Time series (B, N, M) -> the model's unstandardised coordinates."""
    return chart(x) if frequency_domain else x


def from_domain(x: Tensor, frequency_domain: bool) -> Tensor:
    """The model's unstandardised coordinates (B, N, M) -> time series."""
    return inverse_chart(x) if frequency_domain else x


@dataclass
class ScoreModel:
    """A score network, its SDE and the standardisation of its training data."""

    network: ScoreTransformer
    sde: SDE
    standardiser: Standardiser
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def frequency_domain(self) -> bool:
        return self.network.config.frequency_domain

    @property
    def n_steps(self) -> int:
        return self.network.config.n_steps

    @property
    def n_channels(self) -> int:
        return self.network.config.n_channels

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def noise_scale(self) -> Tensor | None:
        """Diagonal of Lambda (N,) for frequency models; None (Lambda = I) in time."""
        if not self.frequency_domain:
            return None
        return chart_lambda(self.n_steps, device=self.device)

    def score(self, output: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """Network output (B, N, M) at input x (B, N, M) and times t (B,) -> score."""
        return output_to_score(output, x, t, self.sde, self.noise_scale(),
                               self.network.config.parametrisation)

    def encode(self, x: Tensor) -> Tensor:
        """Time series -> standardised model coordinates."""
        return self.standardiser.transform(to_domain(x, self.frequency_domain))

    def decode(self, y: Tensor) -> Tensor:
        """Standardised model coordinates -> time series."""
        return from_domain(self.standardiser.inverse(y), self.frequency_domain)

    def to(self, device: torch.device | str) -> ScoreModel:
        """Move the network (the standardiser follows its inputs' device by itself)."""
        self.network.to(device)
        return self
