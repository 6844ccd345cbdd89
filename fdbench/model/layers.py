"""A post-norm transformer encoder layer written out explicitly.

Parameter names and semantics follow ``torch.nn.TransformerEncoderLayer`` (ReLU,
``norm_first=False``, ``batch_first=True``), so its weights load as they are. The pieces
(``project_qkv``, ``attend``, ``feed_forward``) are separate so that a cache can run them
on a token subset (gather -> piece -> scatter)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """(B, n, d) -> (B, heads, n, d / heads)."""
    batch, n_tokens, width = x.shape
    return x.view(batch, n_tokens, n_heads, width // n_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, heads, n, head_dim) -> (B, n, heads * head_dim)."""
    batch, n_heads, n_tokens, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, n_tokens, n_heads * head_dim)


def reference_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(head_dim)) v, spelled out (Vaswani et al. 2017, eq. 1); the
    tests compare the fused kernel against it."""
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter layout:
    ``in_proj_weight`` stacks [W_q; W_k; W_v] as (3d, d)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)  # as nn.MultiheadAttention
        nn.init.zeros_(self.out_proj.bias)

    def project_qkv(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, n, d) -> q, k, v, each (B, heads, n, head_dim)."""
        batch, n_tokens, width = h.shape
        qkv = F.linear(h, self.in_proj_weight, self.in_proj_bias)
        # (B, n, 3, heads, hd) -> (3, B, heads, n, hd): one permute instead of three
        qkv = qkv.view(batch, n_tokens, 3, self.n_heads, width // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def project_q(self, h: Tensor) -> Tensor:
        """Queries only: (B, n, d) -> (B, heads, n, head_dim) (rows 0..d of in_proj)."""
        width = h.shape[-1]
        q = F.linear(h, self.in_proj_weight[:width], self.in_proj_bias[:width])
        return split_heads(q, self.n_heads)

    def project_kv(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values only: (B, n, d) -> k, v, each (B, heads, n, head_dim)."""
        batch, n_tokens, width = h.shape
        kv = F.linear(h, self.in_proj_weight[width:], self.in_proj_bias[width:])
        kv = kv.view(batch, n_tokens, 2, self.n_heads, width // self.n_heads)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        return k, v

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attention rows of the queries q over keys/values k, v, then the out-projection:
        (B, heads, n_q, hd) x (B, heads, n_kv, hd) -> (B, n_q, d)."""
        dropout = self.dropout if self.training else 0.0
        rows = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        return F.linear(merge_heads(rows), self.out_proj.weight, self.out_proj.bias)

    def forward(self, h: Tensor) -> Tensor:
        return self.attend(*self.project_qkv(h))


class EncoderLayer(nn.Module):
    """h' = LN1(h + A(h)); out = LN2(h' + F(h')), F = linear2(relu(linear1(.)))
    (Vaswani et al. 2017, post-norm; PyTorch ``TransformerEncoderLayer``)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float,
                 layer_norm_eps: float):
        super().__init__()
        self.self_attn = SelfAttention(d_model, n_heads, dropout)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def feed_forward(self, h: Tensor) -> Tensor:
        # in-place ReLU: the (n, d_ff) activation is the layer's largest tensor, and a
        # second allocation of it costs more than the ReLU itself on CPU
        hidden = F.relu(F.linear(h, self.linear1.weight, self.linear1.bias), inplace=True)
        if self.training:
            hidden = self.dropout(hidden)
        return F.linear(hidden, self.linear2.weight, self.linear2.bias)

    def add_norm1(self, h: Tensor, attention: Tensor) -> Tensor:
        """h' = LN1(h + A(h))."""
        if self.training:
            attention = self.dropout1(attention)
        return self.norm1(h + attention)

    def add_norm2(self, h: Tensor, feed_forward: Tensor) -> Tensor:
        """out = LN2(h' + F(h'))."""
        if self.training:
            feed_forward = self.dropout2(feed_forward)
        return self.norm2(h + feed_forward)

    def forward(self, h: Tensor) -> Tensor:
        # dropout modules are skipped in eval: their call overhead is ~5 % of a layer at
        # batch 1 on CPU
        h = self.add_norm1(h, self.self_attn(h))
        return self.add_norm2(h, self.feed_forward(h))
