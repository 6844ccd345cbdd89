"""Forward SDEs with mirrored (Lambda-scaled) noise: VP and VE.

In chart coordinates the forward SDE is dx = f(x, t) dt + g(t) Lambda dw (Crabbé et al.
2024, Prop. 3.1), so the marginal is x_t = m(t) x_0 + s(t) Lambda z, z ~ N(0, I), and the
reverse-time drift carries Lambda^2 in front of the score. The time-domain model is the
special case Lambda = I. ``lam`` below is the diagonal of Lambda with shape (N,), or None
for Lambda = I; it broadcasts over (B, N, M) series.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from fdbench.errors import ConfigError


def _per_sample(t: Tensor) -> Tensor:
    """(B,) times -> (B, 1, 1) so they broadcast over (B, N, M) series."""
    return t.reshape(-1, 1, 1)


def _column(lam: Tensor | None) -> Tensor | float:
    """Lambda diagonal (N,) -> (N, 1) so it broadcasts over (B, N, M); None -> 1."""
    return 1.0 if lam is None else lam[:, None]


@dataclass(frozen=True)
class VPSDE:
    """Variance-preserving SDE, dx = -beta(t)/2 x dt + sqrt(beta(t)) Lambda dw, with the
    linear schedule beta(t) = beta_min + t (beta_max - beta_min) (Song et al. 2021, eq. 11;
    the base model's defaults)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    eps: float = 1e-5  # smallest time of the reverse grid; t = 0 makes s(t) = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.beta_min < self.beta_max:
            raise ConfigError(
                f"VPSDE needs 0 < beta_min < beta_max, got beta_min={self.beta_min}, "
                f"beta_max={self.beta_max}"
            )
        if not 0.0 < self.eps < 1.0:
            raise ConfigError(f"VPSDE.eps must lie in (0, 1), got {self.eps}")

    kind = "vp"

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_mean_coeff(self, t: Tensor) -> Tensor:
        """log m(t) = -t^2 (beta_max - beta_min)/4 - t beta_min/2 (Song et al. 2021, eq. 29)."""
        return -0.25 * t.square() * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def mean_coeff(self, t: Tensor) -> Tensor:
        return self.log_mean_coeff(t).exp()

    def std(self, t: Tensor) -> Tensor:
        """s(t) = sqrt(1 - m(t)^2), via expm1 so small t keeps its precision."""
        return torch.sqrt(-torch.expm1(2.0 * self.log_mean_coeff(t)))

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return -0.5 * _per_sample(self.beta(t)) * x

    def diffusion(self, t: Tensor) -> Tensor:
        return self.beta(t).sqrt()

    def prior_std(self) -> float:
        return 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class VESDE:
    """Variance-exploding SDE, dx = g(t) Lambda dw with sigma(t) = sigma_min
    (sigma_max/sigma_min)^t and g(t) = sigma(t) sqrt(2 log(sigma_max/sigma_min))
    (Song et al. 2021, eq. 9 and 30; marginal std taken as sigma(t), as in their code)."""

    sigma_min: float = 0.01
    sigma_max: float = 2.0
    eps: float = 1e-5

    def __post_init__(self) -> None:
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ConfigError(
                f"VESDE needs 0 < sigma_min < sigma_max, got sigma_min={self.sigma_min}, "
                f"sigma_max={self.sigma_max}"
            )
        if not 0.0 < self.eps < 1.0:
            raise ConfigError(f"VESDE.eps must lie in (0, 1), got {self.eps}")

    kind = "ve"

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def mean_coeff(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def std(self, t: Tensor) -> Tensor:
        return self.sigma(t)

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def diffusion(self, t: Tensor) -> Tensor:
        return self.sigma(t) * math.sqrt(2.0 * math.log(self.sigma_max / self.sigma_min))

    def prior_std(self) -> float:
        return self.sigma_max

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


SDE = VPSDE | VESDE


def sde_from_dict(config: dict[str, Any]) -> SDE:
    """Rebuild an SDE from ``to_dict()`` output (checkpoint configs)."""
    fields = dict(config)
    kind = fields.pop("kind", None)
    classes = {"vp": VPSDE, "ve": VESDE}
    if kind not in classes:
        raise ConfigError(f"sde.kind must be one of {sorted(classes)}, got {kind!r}")
    try:
        return classes[kind](**fields)
    except TypeError as err:
        raise ConfigError(f"bad {kind} SDE fields {sorted(fields)}: {err}") from None


def perturb(sde: SDE, x0: Tensor, t: Tensor, z: Tensor, lam: Tensor | None) -> Tensor:
    """Forward marginal x_t = m(t) x_0 + s(t) Lambda z (Crabbé et al. 2024, Prop. 3.1)."""
    return _per_sample(sde.mean_coeff(t)) * x0 + _per_sample(sde.std(t)) * _column(lam) * z


def marginal_std(sde: SDE, t: Tensor, lam: Tensor | None) -> Tensor:
    """Per-coordinate std s(t) Lambda_j of x_t given x_0, shape (B, N, 1)."""
    return _per_sample(sde.std(t)) * _column(lam)


def prior_sample(sde: SDE, z: Tensor, lam: Tensor | None) -> Tensor:
    """x_T = prior_std Lambda z: the terminal law of the forward SDE (mirrored)."""
    return sde.prior_std() * _column(lam) * z


def reverse_drift(sde: SDE, x: Tensor, t: Tensor, score: Tensor, lam: Tensor | None) -> Tensor:
    """Drift of the reverse-time SDE in forward time, f(x, t) - g(t)^2 Lambda^2 score
    (Anderson 1982; Crabbé et al. 2024, Prop. 3.1: the mirrored noise puts Lambda^2 there)."""
    lam2 = _column(lam) if lam is None else _column(lam).square()
    return sde.drift(x, t) - _per_sample(sde.diffusion(t).square()) * lam2 * score
