"""The score network's configuration: one frozen, validated dataclass and its presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from fdbench.errors import ConfigError
from fdbench.spectral import n_bins

LAYOUTS = ("time", "chart", "bins")
PARAMETRISATIONS = ("score", "noise", "preconditioned")

# d_ff / d_model is ~28 in the paper model, which makes the FFN ~86 % of a layer's FLOPs;
# presets keep that regime so that caching results transfer (issue 2, item 5).
PRESETS: dict[str, dict[str, Any]] = {
    # Crabbé et al. 2024, App. C: TransformerEncoderLayer defaults with d_model 72.
    "paper": {"d_model": 72, "n_layers": 10, "n_heads": 12, "d_ff": 2048},
    # CPU demo: d_ff / d_model = 32, FFN ~87 % of a layer's FLOPs at 94 bins tokens.
    "small": {"d_model": 32, "n_layers": 4, "n_heads": 4, "d_ff": 1024},
    # The shipped models (issue 12): a wider residual stream (64) and a 4x FFN learned
    # fastest per CPU-second among the sizes tried; the FFN is ~54 % of a layer's FLOPs at
    # 94 bins tokens, still the largest part, but caching gains are smaller than in "paper".
    "compact": {"d_model": 64, "n_layers": 4, "n_heads": 4, "d_ff": 256},
    # Unit tests only: fast, but the FFN no longer dominates.
    "tiny": {"d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 64},
}


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a ``ScoreTransformer``.

    ``layout`` decides what a token is: ``time`` — one time step (N tokens of M reals, the
    time-domain model); ``chart`` — one chart position (N tokens of M reals, weight-
    compatible with FourierDiffusion checkpoints); ``bins`` — one complex frequency bin
    (N//2+1 tokens of 2M reals, E²-CRF's spectral tokens)."""

    n_steps: int                 # N, length of a series
    n_channels: int              # M, channels per time step
    layout: str = "bins"
    d_model: int = 72
    n_layers: int = 10
    n_heads: int = 12
    d_ff: int = 2048             # PyTorch's TransformerEncoderLayer default, kept by the paper
    dropout: float = 0.1
    time_scale: float = 30.0     # std of the Gaussian Fourier features of t
    layer_norm_eps: float = 1e-5
    # What the head predicts (fdbench.pipeline.output_to_score): "score" (the paper's
    # network), "noise" (z of x_t = m x_0 + s Lambda z) or "preconditioned" (EDM-style
    # skip + scaled correction). Post-norm outputs are bounded and shrink under MSE, which
    # made small score/noise models diverge at high t (docs/DESIGN.md, "parametrisation").
    parametrisation: str = "score"

    def __post_init__(self) -> None:
        for field in ("n_steps", "n_channels", "d_model", "n_layers", "n_heads", "d_ff"):
            if isinstance(getattr(self, field), bool) or not isinstance(getattr(self, field), int):
                raise ConfigError(f"ModelConfig.{field} must be an int, got "
                                  f"{getattr(self, field)!r}")
        checks = [
            ("n_steps", self.n_steps >= 2, ">= 2"),
            ("n_channels", self.n_channels >= 1, ">= 1"),
            ("layout", self.layout in LAYOUTS, f"one of {LAYOUTS}"),
            ("d_model", self.d_model >= 1, ">= 1"),
            ("n_layers", self.n_layers >= 1, ">= 1"),
            ("n_heads", self.n_heads >= 1 and self.d_model % max(self.n_heads, 1) == 0,
             "a divisor of d_model"),
            ("d_ff", self.d_ff >= 1, ">= 1"),
            ("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)"),
            ("time_scale", self.time_scale > 0, "> 0"),
            ("layer_norm_eps", self.layer_norm_eps > 0, "> 0"),
            ("parametrisation", self.parametrisation in PARAMETRISATIONS,
             f"one of {PARAMETRISATIONS}"),
        ]
        for field, ok, allowed in checks:
            if not ok:
                raise ConfigError(
                    f"ModelConfig.{field} must be {allowed}, got {getattr(self, field)!r}"
                )

    @classmethod
    def from_preset(cls, preset: str, n_steps: int, n_channels: int, *,
                    layout: str = "bins", **overrides: Any) -> ModelConfig:
        """A preset's sizes for series of shape (N, M); ``overrides`` replace fields."""
        if preset not in PRESETS:
            raise ConfigError(f"unknown model preset {preset!r}; known: {sorted(PRESETS)}")
        return cls(n_steps=n_steps, n_channels=n_channels, layout=layout,
                   **{**PRESETS[preset], **overrides})

    @property
    def frequency_domain(self) -> bool:
        """True when the model's input is chart coordinates (mirrored noise, Lambda != I)."""
        return self.layout != "time"

    @property
    def n_tokens(self) -> int:
        return n_bins(self.n_steps) if self.layout == "bins" else self.n_steps

    @property
    def token_dim(self) -> int:
        return 2 * self.n_channels if self.layout == "bins" else self.n_channels

    def replace(self, **changes: Any) -> ModelConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> ModelConfig:
        try:
            return cls(**fields)
        except TypeError as err:
            raise ConfigError(f"bad ModelConfig fields {sorted(fields)}: {err}") from None
