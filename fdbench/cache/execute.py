"""Running encoder layers on token subsets against per-layer caches.

A layer's cache holds, per sample, the K and V of every token from the last time that
token was computed (projected from the layer's *input* then, as attention defines them)
and, in ``literal`` mode, each token's last feed-forward output. Token subsets are index
tensors ``(B, m)``, one row per sample; every step reads ``gather -> layer -> scatter``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fdbench.model.layers import EncoderLayer


@dataclass
class LayerCache:
    """Per-sample cached K, V (B, heads, n, head_dim) and FFN output (B, n, d) or None."""

    k: Tensor
    v: Tensor
    ffn: Tensor | None = None

    def nbytes(self) -> int:
        tensors = [self.k, self.v] + ([self.ffn] if self.ffn is not None else [])
        return sum(t.numel() * t.element_size() for t in tensors)


def token_index(idx: Tensor, width: int) -> Tensor:
    """(B, m) token indices -> (B, m, width) for gather/scatter on (B, n, width)."""
    return idx[:, :, None].expand(-1, -1, width)


def head_index(idx: Tensor, n_heads: int, head_dim: int) -> Tensor:
    """(B, m) token indices -> (B, heads, m, head_dim) for the K/V caches."""
    return idx[:, None, :, None].expand(-1, n_heads, -1, head_dim)


def full_layer(layer: EncoderLayer, h: Tensor, keep_ffn: bool) -> tuple[Tensor, LayerCache]:
    """The plain layer on all tokens, returning the cache it leaves behind. Same ops in
    the same order as ``EncoderLayer.forward``, so the output is identical."""
    attention = layer.self_attn
    q, k, v = attention.project_qkv(h)
    h1 = layer.add_norm1(h, attention.attend(q, k, v))
    ffn = layer.feed_forward(h1)
    out = layer.add_norm2(h1, ffn)
    return out, LayerCache(k.contiguous(), v.contiguous(), ffn if keep_ffn else None)


def subset_layer(layer: EncoderLayer, h_subset: Tensor, kv_index: Tensor,
                 cache: LayerCache) -> Tensor:
    """Tokens in the subset (B, m, d) get fresh Q/K/V from their current input, attention
    rows over all keys (fresh K/V for the subset, cached for the rest), out-projection,
    norms and FFN; the other tokens are not touched (E²-CRF Sec. 3.3, "reuse")."""
    attention = layer.self_attn
    q, k, v = attention.project_qkv(h_subset)                 # (B, heads, m, hd)
    cache.k.scatter_(2, kv_index, k)
    cache.v.scatter_(2, kv_index, v)
    h1 = layer.add_norm1(h_subset, attention.attend(q, cache.k, cache.v))
    return layer.add_norm2(h1, layer.feed_forward(h1))


def all_rows_layer(layer: EncoderLayer, h: Tensor, token_idx: Tensor, kv_index: Tensor,
                   cache: LayerCache, ffn_subset: bool, kv_fresh: bool = False) -> Tensor:
    """Every token gets a fresh query and attention row; only the subset gets fresh K/V
    (the others serve cached K/V), or every token with ``kv_fresh``. With ``ffn_subset``
    (the paper text's literal reading) only the subset goes through the FFN and the
    others reuse their cached FFN output; without it (``kv_only``, naive KV caching)
    every token goes through the FFN."""
    attention = layer.self_attn
    if kv_fresh:
        # no token attends to a stale key; the K/V cache is not read, so not updated
        q, k, v = attention.project_qkv(h)                    # (B, heads, n, hd)
    else:
        q = attention.project_q(h)                            # (B, heads, n, hd)
        k, v = attention.project_kv(torch.gather(h, 1, token_idx))  # (B, heads, m, hd)
        cache.k.scatter_(2, kv_index, k)
        cache.v.scatter_(2, kv_index, v)
        k, v = cache.k, cache.v
    h1 = layer.add_norm1(h, attention.attend(q, k, v))
    if not ffn_subset:
        return layer.add_norm2(h1, layer.feed_forward(h1))
    cache.ffn.scatter_(1, token_idx, layer.feed_forward(torch.gather(h1, 1, token_idx)))
    return layer.add_norm2(h1, cache.ffn)
