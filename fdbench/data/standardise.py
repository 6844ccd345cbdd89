"""Per-(position, channel) standardisation of a training set, with a std floor.

Diffusion models for time series are trained on standardised data: each time step and
channel is shifted and scaled by its training-set mean and standard deviation
(Crabbé et al. 2024 standardise before the DFT chart). Positions where every training
series has the same value (the zero-padded tail of the ECG heartbeats, see
:func:`fdbench.data.ecg.segment_heartbeats`) have std 0; dividing by it would give
Inf/NaN, so the std is clamped from below.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fdbench.errors import ConfigError, InputError

# Relative floor: a clamped position's std is 1% of the typical (median non-zero) std.
# Relative, so the result does not depend on the data's unit (mV, [0, 1], ADC counts);
# 1%, so unit-variance model noise in a constant position comes back, after `inverse`,
# at 1% of a typical position's spread: negligible next to real variation, yet finite.
MIN_STD_FRACTION = 1e-2
# Absolute floor, for data with no variation at all (every std 0): keeps `transform`
# finite; far below float32 resolution of any real signal's spread.
MIN_STD = 1e-6


# eq=False: element-wise tensor == has no single truth value; identity is what we want.
@dataclass(frozen=True, eq=False)
class Standardiser:
    """z = (x - mean) / std with ``mean`` and ``std`` of shape (N, M); works on any
    (..., N, M) tensor. Build it with :meth:`fit` or :meth:`from_state_dict`."""

    mean: Tensor
    std: Tensor

    def __post_init__(self) -> None:
        if self.mean.dim() != 2 or self.mean.shape != self.std.shape:
            raise InputError("Standardiser mean and std must both have shape (N, M), got "
                             f"{tuple(self.mean.shape)} and {tuple(self.std.shape)}")
        if not bool(torch.isfinite(self.mean).all()):
            raise InputError("Standardiser mean contains NaN or Inf")
        if not bool((torch.isfinite(self.std) & (self.std > 0)).all()):
            raise InputError("Standardiser std must be finite and > 0 everywhere")

    @classmethod
    def fit(cls, x: Tensor, *, min_std_fraction: float = MIN_STD_FRACTION,
            min_std: float = MIN_STD) -> Standardiser:
        """Mean and (population) std over the batch axis of ``x`` (B, N, M), with std
        clamped to at least ``max(min_std_fraction * median(std > 0), min_std)``.

        The median is over the positions with non-zero std only: in the ECG beats about
        half the positions are the all-zero tail, and a median over all positions would
        sit near zero and make the floor useless. The population std (correction 0)
        keeps B = 1 finite (std 0, then clamped)."""
        if x.dim() != 3 or x.shape[0] < 1:
            raise InputError(f"Standardiser.fit needs x of shape (B, N, M) with B >= 1, "
                             f"got {tuple(x.shape)}")
        if not 0.0 <= min_std_fraction < 1.0:
            raise ConfigError(f"min_std_fraction must be in [0, 1), got {min_std_fraction}")
        if not min_std > 0.0:
            raise ConfigError(f"min_std must be > 0, got {min_std}")
        x = x.to(torch.float64)  # fit in double: cancellation in var for large means
        mean = x.mean(dim=0)  # (N, M)
        std = x.std(dim=0, correction=0)  # (N, M)
        positive = std[std > 0]
        floor = min_std
        if positive.numel() > 0:
            floor = max(floor, min_std_fraction * float(positive.median()))
        std = std.clamp_min(floor)
        return cls(mean.to(torch.float32), std.to(torch.float32))

    def _stats_like(self, x: Tensor, what: str) -> tuple[Tensor, Tensor]:
        if x.dim() < 2 or tuple(x.shape[-2:]) != tuple(self.mean.shape):
            raise InputError(f"Standardiser.{what}: expected (..., {self.mean.shape[0]}, "
                             f"{self.mean.shape[1]}), got {tuple(x.shape)}")
        return self.mean.to(x), self.std.to(x)

    def transform(self, x: Tensor) -> Tensor:
        """x (..., N, M) -> (x - mean) / std."""
        mean, std = self._stats_like(x, "transform")
        return (x - mean) / std

    def inverse(self, z: Tensor) -> Tensor:
        """z (..., N, M) -> z * std + mean, the inverse of :meth:`transform`."""
        mean, std = self._stats_like(z, "inverse")
        return z * std + mean

    def state_dict(self) -> dict[str, Tensor]:
        """{"mean", "std"} as CPU float32 tensors, e.g. for a safetensors checkpoint."""
        return {"mean": self.mean.detach().cpu().clone(), "std": self.std.detach().cpu().clone()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> Standardiser:
        """Rebuild from :meth:`state_dict` output (shapes and positivity are checked)."""
        missing = {"mean", "std"} - set(state)
        if missing:
            raise InputError(f"Standardiser state is missing {sorted(missing)}")
        return cls(state["mean"].to(torch.float32), state["std"].to(torch.float32))
