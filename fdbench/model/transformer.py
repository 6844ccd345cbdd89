"""ScoreTransformer: the score network of Crabbé et al. 2024 (App. C) with three token
layouts. Input and output are series in the model's domain, shape (B, N, M): chart
coordinates for ``chart``/``bins`` (the bins view is internal), time steps for ``time``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from fdbench.model.config import ModelConfig
from fdbench.model.embeddings import GaussianFourierTime, PositionalEmbedding
from fdbench.model.layers import EncoderLayer
from fdbench.spectral import bins_to_chart, chart_to_bins

if TYPE_CHECKING:
    from fdbench.cache import CacheConfig, CacheEngine, CacheStats


class Encoder(nn.Module):
    """The stack of encoder layers (``backbone.layers.{i}`` as in FourierDiffusion)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(config.d_model, config.n_heads, config.d_ff, config.dropout,
                         config.layer_norm_eps)
            for _ in range(config.n_layers)
        )

    def forward(self, h: Tensor) -> Tensor:
        for layer in self.layers:
            h = layer(h)
        return h


class ScoreTransformer(nn.Module):
    """score(x, t) = head(encoder(embed(tokens(x)) + pos + time(t))), no final norm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedder = nn.Linear(config.token_dim, config.d_model)
        self.pos_encoder = PositionalEmbedding(config.n_tokens, config.d_model)
        self.time_encoder = GaussianFourierTime(config.d_model, config.time_scale)
        self.backbone = Encoder(config)
        self.unembedder = nn.Linear(config.d_model, config.token_dim)
        self._cache_engine: CacheEngine | None = None

    @classmethod
    def from_fourierdiffusion(cls, path: str | os.PathLike) -> ScoreTransformer:
        """The network of a FourierDiffusion Lightning ``.ckpt`` (runs a restricted
        unpickler; see :mod:`fdbench.fd_import`), in eval mode."""
        from fdbench.fd_import import load_fd_checkpoint, network_from_fd

        return network_from_fd(load_fd_checkpoint(path))

    def to_tokens(self, x: Tensor) -> Tensor:
        """(B, N, M) -> (B, n_tokens, token_dim)."""
        return chart_to_bins(x) if self.config.layout == "bins" else x

    def from_tokens(self, tokens: Tensor) -> Tensor:
        """(B, n_tokens, token_dim) -> (B, N, M)."""
        if self.config.layout == "bins":
            return bins_to_chart(tokens, self.config.n_steps)
        return tokens

    def embed(self, x: Tensor, t: Tensor) -> Tensor:
        """u = embedder(tokens) + positions + time encoding, (B, n_tokens, d)."""
        tokens = self.to_tokens(x)
        return self.embedder(tokens) + self.pos_encoder() + self.time_encoder(t)[:, None, :]

    def head(self, h: Tensor) -> Tensor:
        """Final residual stream (B, n_tokens, d) -> score (B, N, M)."""
        return self.from_tokens(self.unembedder(h))

    def forward(self, x: Tensor, t: Tensor, step: int | None = None, stage: int = 0) -> Tensor:
        """x: (B, N, M) in the model's domain; t: (B,) diffusion times -> score (B, N, M).
        With a cache enabled, pass the solver's ``step`` index (and ``stage`` 1 for the
        second evaluation of a two-evaluation step) to use it."""
        if self._cache_engine is not None and step is not None:
            return self._cache_engine(x, t, step, stage)
        return self.head(self.backbone(self.embed(x, t)))

    # diffusers-like cache switches; the engine itself lives in fdbench.cache
    def enable_cache(self, config: CacheConfig) -> CacheEngine:
        """Route ``forward(x, t, step)`` through a cache policy (reset per batch with
        :meth:`cache_context`)."""
        from fdbench.cache import CacheEngine, make_policy

        if self._cache_engine is not None:
            raise RuntimeError("a cache is already enabled; call disable_cache() first")
        self._cache_engine = CacheEngine(self, make_policy(config))
        return self._cache_engine

    def disable_cache(self) -> None:
        self._cache_engine = None

    def cache_stats(self) -> CacheStats | None:
        """Statistics of the last cached batch (None without a cache or a batch)."""
        engine = self._cache_engine
        return engine.stats if engine is not None and engine.history else None

    @contextmanager
    def cache_context(self, n_steps: int, sample_ids: Tensor) -> Iterator[None]:
        """Enter once per sampling batch: resets caches and policy state."""
        if self._cache_engine is None:
            raise RuntimeError("no cache enabled: call enable_cache(config) first")
        self._cache_engine.start_batch(n_steps, sample_ids)
        yield


def build_model(config: ModelConfig, *, seed: int = 0) -> ScoreTransformer:
    """A freshly initialised model whose weights depend only on ``seed`` (the caller's
    global RNG state is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ScoreTransformer(config)
