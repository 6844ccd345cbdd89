"""Input encodings of the score network: positions and the diffusion time."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class GaussianFourierTime(nn.Module):
    """Random Fourier features of t, then Linear(d, d) (Tancik et al. 2020; Song et al.
    2021, App. H). ``W`` ~ N(0, scale^2) is fixed; features are
    [sin(2 pi t W), cos(2 pi t W)] truncated to d (FourierDiffusion's TimeEncoding)."""

    def __init__(self, d_model: int, scale: float):
        super().__init__()
        self.d_model = d_model
        self.register_buffer("W", torch.randn(math.ceil(d_model / 2)) * scale)
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, t: Tensor) -> Tensor:
        """(B,) -> (B, d)."""
        angles = 2 * math.pi * t[:, None].to(self.W.dtype) * self.W[None, :]
        features = torch.cat([angles.sin(), angles.cos()], dim=-1)[:, : self.d_model]
        return self.dense(features)


class PositionalEmbedding(nn.Module):
    """A learnable vector per token position (``pos_encoder.embedding`` as in the base
    code; its ``max_norm`` renormalisation is applied once when importing weights)."""

    def __init__(self, n_tokens: int, d_model: int):
        super().__init__()
        self.embedding = nn.Embedding(n_tokens, d_model)

    def forward(self) -> Tensor:
        """-> (n_tokens, d)."""
        return self.embedding.weight
