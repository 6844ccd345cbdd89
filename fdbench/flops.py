"""FLOP accounting: an analytic count of one score-network forward under a cache plan,
per component, and the executed-op counter it is checked against.

Convention (as ``torch.utils.flop_counter``): a matmul of (m x k) by (k x n) costs
2 m k n; biases, softmax, ReLU and gathers are not matmul FLOPs. LayerNorms and residual
adds are counted separately as ``norms`` (8 flops per element per LayerNorm + add, an
estimate) so the matmul total stays comparable with FlopCounterMode."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from fdbench.errors import ConfigError
from fdbench.model import ModelConfig

COMPONENTS = ("embed", "qkv", "attention", "out_proj", "ffn", "head", "norms")
MATMUL_COMPONENTS = ("embed", "qkv", "attention", "out_proj", "ffn", "head")


def layer_flops(d_model: int, d_ff: int, n_tokens: int, *, rows: int, kv: int,
                ffn: int) -> dict[str, float]:
    """One post-norm encoder layer in which ``rows`` tokens get queries, attention rows
    (over all ``n_tokens`` keys), out-projection and norms, ``kv`` tokens get fresh K/V
    and ``ffn`` tokens go through the feed-forward block (Vaswani et al. 2017; the
    standard 2-flops-per-MAC count, e.g. nanoGPT's estimate_mfu)."""
    return {
        "qkv": 2.0 * d_model * d_model * (rows + 2 * kv),
        "attention": 4.0 * rows * n_tokens * d_model,   # q k^T and (weights) v
        "out_proj": 2.0 * rows * d_model * d_model,
        "ffn": 4.0 * ffn * d_model * d_ff,
        "norms": 2 * 8.0 * rows * d_model,
    }


def forward_flops(config: ModelConfig, batch: int, *, mode: str = "subset",
                  computed: int | None = None) -> dict[str, float]:
    """FLOPs of one forward of ``batch`` samples when ``computed`` tokens per sample are
    recomputed under reuse ``mode`` (None: the uncached forward). Per component."""
    n = config.n_tokens
    m = n if computed is None else computed
    if not 0 <= m <= n:
        raise ConfigError(f"computed tokens must be in [0, {n}], got {m}")
    shares = {"subset": (m, m, m), "literal": (n, m, m), "kv_only": (n, m, n),
              "literal_kv": (n, n, m)}
    if mode not in shares:
        raise ConfigError(f"mode must be one of {sorted(shares)}, got {mode!r}")
    rows, kv, ffn = shares[mode]
    if mode == "subset" and m == 0:
        rows = kv = ffn = 0  # every layer skipped: the head reads the cached stream
    per_layer = layer_flops(config.d_model, config.d_ff, n, rows=rows, kv=kv, ffn=ffn)
    d, width = config.d_model, config.token_dim
    totals = {name: batch * config.n_layers * value for name, value in per_layer.items()}
    totals["embed"] = batch * (2.0 * n * width * d + 2.0 * d * d)  # tokens + time dense
    totals["head"] = batch * 2.0 * n * d * width
    return {name: totals[name] for name in COMPONENTS}


def ragged_forward_flops(config: ModelConfig, batch: int, *, tokens: int,
                         attention_rows: int) -> dict[str, float]:
    """FLOPs of one ``subset``-mode forward in the ragged layout
    (``fdbench.cache.execute.ragged_layer``): ``tokens`` computed tokens over the whole
    batch get Q/K/V, out-projection, norms and FFN, and ``attention_rows`` query rows
    (the padded layout, >= tokens) attend over all ``n_tokens`` keys of their sample.
    With ``attention_rows == tokens == batch * m`` it equals :func:`forward_flops`."""
    n = config.n_tokens
    if not 0 <= tokens <= attention_rows <= batch * n:
        raise ConfigError(f"need 0 <= tokens <= attention_rows <= {batch * n}, got "
                          f"{tokens}, {attention_rows}")
    per_layer = layer_flops(config.d_model, config.d_ff, n, rows=tokens, kv=tokens,
                            ffn=tokens)
    per_layer["attention"] = 4.0 * attention_rows * n * config.d_model
    totals = {name: config.n_layers * value for name, value in per_layer.items()}
    d, width = config.d_model, config.token_dim
    totals["embed"] = batch * (2.0 * n * width * d + 2.0 * d * d)
    totals["head"] = batch * 2.0 * n * d * width
    return {name: totals[name] for name in COMPONENTS}


def module_forward_flops(config: ModelConfig, batch: int,
                         layers: Sequence[tuple[int, int, int, int]]) -> dict[str, float]:
    """FLOPs of one forward under a module-reuse plan (FORA, ToCa, TeaCache, ...): per
    layer ``(attention, ffn, norm, score)`` token counts summed over the batch —
    ``attention`` tokens get Q/K/V, attention rows over all keys of their sample and the
    out-projection, ``ffn`` tokens the feed-forward block, ``norm`` tokens the two
    add+LayerNorms (run even where A_l and F_l are reused), ``score`` tokens an explicit
    q k^T row for an attention map (ToCa's score). A layer that is not run at all is
    (0, 0, 0, 0); layers beyond ``len(layers)`` are not run. Embedding and head always run
    on the whole batch. Same per-layer formulas as :func:`layer_flops`, so the all-tokens
    plan equals :func:`forward_flops` of the uncached forward."""
    if len(layers) > config.n_layers:
        raise ConfigError(f"a plan has {len(layers)} layers, the model {config.n_layers}")
    n, d, width = config.n_tokens, config.d_model, config.token_dim
    totals = dict.fromkeys(COMPONENTS, 0.0)
    for attention, ffn, norm, score in layers:
        part = layer_flops(d, config.d_ff, n, rows=attention, kv=attention, ffn=ffn)
        part["norms"] = 2 * 8.0 * norm * d
        part["attention"] += 2.0 * score * n * d     # q k^T only: the map, not its use
        for name, value in part.items():
            totals[name] += value
    totals["embed"] = batch * (2.0 * n * width * d + 2.0 * d * d)
    totals["head"] = batch * 2.0 * n * d * width
    return totals


def layer_matmul_total(flops: dict[str, float]) -> float:
    """Matmul FLOPs of the encoder layers only (what caching can save): the weight of the
    'layer-token units actually computed' in ``executed_fraction``."""
    return sum(flops[name] for name in ("qkv", "attention", "out_proj", "ffn"))


def matmul_total(flops: dict[str, float]) -> float:
    return sum(flops[name] for name in MATMUL_COMPONENTS)


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def count_executed_flops(run: Callable[[], object]) -> int:
    """Matmul FLOPs of the ops ``run`` executes, by ``FlopCounterMode``, with the CPU
    flash-attention kernel (uncounted in torch 2.13) given the SDPA formula."""
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
               _cpu_flash_attention_flops}
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused path counts 0
    try:
        with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
            run()
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)
    return counter.get_total_flops()
