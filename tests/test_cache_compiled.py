"""Issue 17, item 3: the static-shape compiled step path (``fdbench.cache.compiled``)
computes what the eager engine computes, per sample, at batch 1 and > 1, pays (and
counts) its padding, and a planted padding bug is caught. One engine per batch size is
reused across runs, so each graph compiles once (about a minute for the file on a CPU)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from fdbench.cache import CacheEngine, E2CRFConfig, make_policy
from fdbench.cache.base import CachePolicy
from fdbench.cache.compiled import BUCKET, CompiledStacks, bucket_width, pad_slots
from fdbench.cache.execute import LayerCache
from fdbench.model import ModelConfig, build_model

N, M, STEPS = 30, 2, 8        # 16 bin tokens: buckets of 8 and 16


def network():
    config = ModelConfig.from_preset("tiny", N, M, layout="bins", dropout=0.0)
    return build_model(config, seed=3).eval()


def inputs(batch: int) -> tuple[list[Tensor], list[Tensor]]:
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(batch, N, M, generator=g) for _ in "ab")
    xs = [a + (b - a) * i / STEPS for i in range(STEPS)]
    ts = [torch.full((batch,), 0.7 - 0.05 * i) for i in range(STEPS)]
    return xs, ts


def policy() -> CachePolicy:
    # recompute sets of 8 to 13 of the 16 tokens: both buckets, padding in most steps
    return make_policy(E2CRFConfig(K=1, tau_0=1.0, R=100, random_probe_ratio=0.2))


def run(engine: CacheEngine, batch: int) -> list[Tensor]:
    xs, ts = inputs(batch)
    engine.start_batch(STEPS, torch.arange(batch))
    return [engine(x, t, i) for i, (x, t) in enumerate(zip(xs, ts, strict=True))]


@pytest.fixture(scope="module")
def engines() -> dict[tuple[str, int], CacheEngine]:
    net = network()
    return {(kind, batch): CacheEngine(net, policy(), ragged="never",
                                       compile_layers=kind == "compiled")
            for kind in ("eager", "compiled") for batch in (1, 3)}


def test_bucket_width_and_padding() -> None:
    assert [bucket_width(m, 94) for m in (1, 8, 9, 16, 89, 94)] == [8, 8, 16, 16, 94, 94]
    assert bucket_width(5, 6) == 6 and BUCKET == 8
    idx = torch.tensor([[2, 5, 7], [1, 4, 4]])
    assert pad_slots(idx, 5).tolist() == [[2, 5, 7, 2, 2], [1, 4, 4, 1, 1]]
    assert pad_slots(idx, 3) is idx


@pytest.mark.parametrize("batch", [1, 3])
def test_compiled_engine_matches_eager_and_counts_its_padding(engines, batch) -> None:
    eager, fast = engines[("eager", batch)], engines[("compiled", batch)]
    expected, got = run(eager, batch), run(fast, batch)
    cached = [i for i, step in enumerate(fast.stats.records()) if not step.full]
    assert cached, "every step was a full step: nothing compiled was tested"
    for i, (a, b) in enumerate(zip(expected, got, strict=True)):
        gap = float((a - b).abs().max())
        assert gap <= 1e-4, f"step {i}: compiled differs from eager by {gap:.3g}"
    assert len(fast.compiled.graphs) >= 2                     # a full and a subset graph
    for plain, padded in zip(eager.stats.records(), fast.stats.records(), strict=True):
        width = round(plain.executed_fraction * 16)
        assert padded.executed_fraction * 16 == pytest.approx(bucket_width(width, 16))
        assert padded.flops >= plain.flops
        assert padded.planned_fraction == pytest.approx(plain.planned_fraction)


def test_planted_padding_bug_is_caught(engines, monkeypatch) -> None:
    """Padding slots that carry another token recompute a token nobody asked for (its
    cached K/V and stream row are refreshed): the outputs leave the eager ones."""
    eager, fast = engines[("eager", 1)], engines[("compiled", 1)]
    expected = run(eager, 1)

    def pad_with_the_next_token(idx: Tensor, width: int) -> Tensor:
        extra = width - idx.shape[1]
        return torch.cat([idx, ((idx[:, -1:] + 1) % 16).expand(-1, extra)], dim=1)

    monkeypatch.setattr("fdbench.cache.engine.pad_slots", pad_with_the_next_token)
    got = run(fast, 1)
    gaps = [float((a - b).abs().max()) for a, b in zip(expected, got, strict=True)]
    assert max(gaps) > 1e-3


def test_compiled_stack_refuses_non_contiguous_caches() -> None:
    net = network()
    config = net.config
    heads, head_dim = config.n_heads, config.d_model // config.n_heads
    k = torch.zeros(1, 16, heads, head_dim).transpose(1, 2)   # (1, heads, n, hd), strided
    caches = [LayerCache(k, k) for _ in net.backbone.layers]
    stream = torch.zeros(1, 16, config.d_model)
    with pytest.raises(RuntimeError, match="contiguous"):
        CompiledStacks(net.backbone.layers).subset(
            stream, torch.zeros(1, 8, dtype=torch.long), caches, stream.clone())
