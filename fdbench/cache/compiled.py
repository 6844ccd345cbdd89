"""A low-overhead step path: the layer stack of a cached step through ``torch.compile``
with static shapes (issue 17, item 3).

At batch 1 on a small model a cached step costs mostly fixed per-kernel overhead (about
10 us a kernel on the 2-core CI machine, a launch on a GPU), not FLOPs: four eager subset
layers on 8 tokens take half the time of four full layers on 94. Compiling the whole
stack (gather -> L subset layers -> scatter) as one graph fuses its elementwise work and
drops the Python dispatch between kernels. Shapes stay static, because specialised code
is faster (a dynamic-shape graph of the same stack measured ~1.6x slower per call): the
recompute set is padded to a multiple of :data:`BUCKET` tokens by repeating each row's
first token (a token computed twice from the same input writes the same value twice), so
a run compiles at most ceil(n / BUCKET) subset graphs plus one full-step graph per batch
size. The padding slots run, so they are counted in the FLOPs paid (``engine``).

Compiled code matches the eager layers to float tolerance, not bits (fused kernels sum in
another order). On CUDA the graphs could further be captured as CUDA graphs
(``scripts/gpu_check.sh``); on a CPU the default mode is used."""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fdbench.cache.execute import LayerCache, full_layer, head_index, subset_layer, token_index

BUCKET = 8            # recompute sets are padded to a multiple of this many tokens


def bucket_width(computed: int, n_tokens: int, bucket: int = BUCKET) -> int:
    """The padded width of a recompute set of ``computed`` tokens: the next multiple of
    ``bucket``, at most ``n_tokens``."""
    return min(n_tokens, -(-computed // bucket) * bucket)


def pad_slots(idx: Tensor, width: int) -> Tensor:
    """(B, m) token indices -> (B, width): the extra slots repeat each row's first token."""
    extra = width - idx.shape[1]
    if extra <= 0:
        return idx
    return torch.cat([idx, idx[:, :1].expand(-1, extra)], dim=1)


def subset_stack(layers: Sequence[nn.Module], u: Tensor, idx: Tensor,
                 keys: Sequence[Tensor], values: Sequence[Tensor], final: Tensor) -> Tensor:
    """One cached step's layer work: the tokens ``idx`` (B, m) of the embedded input u
    through every layer (``execute.subset_layer``, the K/V caches updated in place) and
    written into the reused final stream, which is returned."""
    n_heads = layers[0].self_attn.n_heads
    width = u.shape[-1]
    kv_index = head_index(idx, n_heads, width // n_heads)
    token_idx = token_index(idx, width)
    h = torch.gather(u, 1, token_idx)
    for layer, k, v in zip(layers, keys, values, strict=True):
        h = subset_layer(layer, h, kv_index, LayerCache(k, v))
    return final.scatter_(1, token_idx, h)


def full_stack(layers: Sequence[nn.Module], u: Tensor
               ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """A full step: every layer on every token (``execute.full_layer``); the final stream
    and each layer's K and V."""
    keys, values, h = [], [], u
    for layer in layers:
        h, cache = full_layer(layer, h, keep_ffn=False)
        keys.append(cache.k)
        values.append(cache.v)
    return h, keys, values


def _own_copy(function: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of ``function`` with its own code object: torch.compile keeps its graphs per
    code object, so each copy holds exactly one graph and never searches a list."""
    return types.FunctionType(function.__code__.replace(), function.__globals__,
                              function.__name__, function.__defaults__,
                              function.__closure__)


class CompiledStacks:
    """:func:`subset_stack` and :func:`full_stack` of one network through
    ``torch.compile(dynamic=False)``, one compiled function per input shape: the first
    call at a shape compiles (seconds on a CPU), later calls reuse the graph.

    Why one function per shape: dynamo evaluates a graph's guards (every parameter and
    input tensor's properties) before each call, ~0.2 ms here, and walks its graphs one
    after the other. The shape is the key of :attr:`graphs`, every input must be
    contiguous (refused otherwise), and dtype, device and grad mode are the engine's
    (its own tensors, under ``no_grad``), so the only guards that could fail are ones
    this dispatch already decided; their evaluation is skipped
    (``skip_guard_eval_unsafe``) on calls after the first."""

    def __init__(self, layers: Sequence[nn.Module]):
        self.layers = tuple(layers)
        self.graphs: dict[tuple, Callable[..., Any]] = {}

    def _run(self, key: tuple, function: Callable[..., Any], *args: Any) -> Any:
        compiled = self.graphs.get(key)
        if compiled is None:          # first call at this shape: compile, guards checked
            compiled = torch.compile(_own_copy(function), dynamic=False)
            result = compiled(self.layers, *args)
            self.graphs[key] = compiled
            return result
        with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
            return compiled(self.layers, *args)

    def subset(self, u: Tensor, idx: Tensor, caches: Sequence[LayerCache],
               final: Tensor) -> Tensor:
        keys, values = [c.k for c in caches], [c.v for c in caches]
        if not all(t.is_contiguous() for t in (u, idx, final, *keys, *values)):
            raise RuntimeError("the compiled stack needs contiguous inputs and caches")
        return self._run(("subset", tuple(u.shape), tuple(idx.shape)), subset_stack,
                         u, idx, keys, values, final)

    def full(self, u: Tensor) -> tuple[Tensor, list[LayerCache]]:
        h, keys, values = self._run(("full", tuple(u.shape)), full_stack, u.contiguous())
        return h, [LayerCache(k.contiguous(), v.contiguous())
                   for k, v in zip(keys, values, strict=True)]
