"""Running encoder layers on token subsets against per-layer caches.

A layer's cache holds, per sample, the K and V of every token from the last time that
token was computed (projected from the layer's *input* then, as attention defines them)
and, in ``literal`` mode, each token's last feed-forward output. Token subsets are index
tensors ``(B, m)``, one row per sample; every step reads ``gather -> layer -> scatter``.
A :class:`RaggedPlan` lays the same tokens out flat, ``(T, d)`` with T the sum of the
samples' own counts, so the per-token work pays no padding (:func:`ragged_layer`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
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


@dataclass
class RaggedPlan:
    """The computed tokens of a batch as one flat list of T entries: sample ``rows``,
    token ``tokens``, slot ``slots`` in the padded (B, ``width``) layout that attention
    rows keep, ``positions`` = rows * n + tokens in a flattened (B * n, d) stream, and
    ``kv_rows`` (T * heads,): the rows of a (B * heads * n, hd) view of the K/V caches
    that the T tokens' heads occupy (a contiguous index_copy_; advanced-index writes into
    a transposed view cost ~10x more)."""

    rows: Tensor
    tokens: Tensor
    slots: Tensor
    positions: Tensor
    kv_rows: Tensor
    batch: int
    width: int


def ragged_plan(idx: Tensor, counts: Tensor, n_tokens: int, n_heads: int) -> RaggedPlan:
    """The flat plan of padded indices (B, m) whose first ``counts[b]`` slots of row b
    are sample b's own tokens (``engine.mask_to_indices``); padding slots are dropped."""
    batch, width = idx.shape
    valid = torch.arange(width, device=idx.device)[None, :] < counts[:, None]
    slots = valid.flatten().nonzero().flatten()                       # (T,)
    rows = torch.div(slots, width, rounding_mode="floor")
    tokens = idx.flatten().index_select(0, slots)
    heads = torch.arange(n_heads, device=idx.device)
    kv_rows = ((rows[:, None] * n_heads + heads[None, :]) * n_tokens + tokens[:, None])
    return RaggedPlan(rows, tokens, slots, rows * n_tokens + tokens, kv_rows.flatten(),
                      batch, width)


def ragged_layer(layer: EncoderLayer, h: Tensor, plan: RaggedPlan, cache: LayerCache) -> Tensor:
    """:func:`subset_layer` on the flat list (T, d): Q/K/V projections, out-projection,
    norms and FFN run on exactly the T computed tokens; the attention rows are laid out
    padded (B, heads, width, hd), since each sample's queries attend over its own keys
    (fresh K/V for its computed tokens, cached for the rest). Same arithmetic per token
    as the padded path; only the matmul shapes differ (float tolerance, not bits)."""
    attention = layer.self_attn
    total, width = h.shape
    heads = attention.n_heads
    qkv = F.linear(h, attention.in_proj_weight, attention.in_proj_bias)
    head_dim = width // heads
    q, k, v = qkv.view(total, 3, heads, head_dim).unbind(1)          # (T, heads, hd)
    cache.k.view(-1, head_dim).index_copy_(0, plan.kv_rows, k.reshape(-1, head_dim))
    cache.v.view(-1, head_dim).index_copy_(0, plan.kv_rows, v.reshape(-1, head_dim))
    padded = q.new_zeros(plan.batch * plan.width, heads, head_dim)
    padded.index_copy_(0, plan.slots, q)
    padded = padded.view(plan.batch, plan.width, heads, -1).transpose(1, 2)
    rows = F.scaled_dot_product_attention(padded, cache.k, cache.v)   # (B, heads, w, hd)
    rows = rows.transpose(1, 2).reshape(plan.batch * plan.width, width)
    a = F.linear(rows.index_select(0, plan.slots), attention.out_proj.weight,
                 attention.out_proj.bias)
    h1 = layer.add_norm1(h, a)
    return layer.add_norm2(h1, layer.feed_forward(h1))
