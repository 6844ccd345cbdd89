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
from fdbench.sde import SDE
from fdbench.spectral import chart, chart_lambda, inverse_chart


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
