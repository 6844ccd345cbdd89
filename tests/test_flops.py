"""The analytic FLOP model against torch's FlopCounterMode on the ops actually executed."""

from __future__ import annotations

import pytest
import torch

from fdbench.cache import CacheEngine, FixedConfig
from fdbench.cache.base import CachePolicy, Decision, StepInfo
from fdbench.flops import count_executed_flops, forward_flops, matmul_total
from fdbench.model import ModelConfig, build_model


class MaskPolicy(CachePolicy):
    """Test policy: recompute the tokens of a fixed mask (same for every sample)."""

    config_class = FixedConfig

    def __init__(self, config: FixedConfig, mask: torch.Tensor, mode: str):
        super().__init__(config)
        self.mask, self._mode = mask, mode

    @property
    def mode(self) -> str:
        return self._mode

    def decide(self, step: StepInfo, units_x: torch.Tensor) -> Decision:
        return Decision(self.mask.expand(units_x.shape[0], -1).clone())


def config(layout: str = "bins") -> ModelConfig:
    return ModelConfig.from_preset("small", 30, 2, layout=layout, dropout=0.0)


@pytest.mark.parametrize("layout", ["bins", "chart"])
def test_uncached_forward_matches_the_counter(layout) -> None:
    net = build_model(config(layout)).eval()
    x, t = torch.randn(3, 30, 2), torch.rand(3)
    with torch.no_grad():
        counted = count_executed_flops(lambda: net(x, t))
    expected = matmul_total(forward_flops(net.config, 3))
    assert abs(counted - expected) <= 0.01 * expected


@pytest.mark.parametrize("mode", ["subset", "literal", "kv_only", "literal_kv"])
@pytest.mark.parametrize("computed", [0, 1, 5, 12, 16])
def test_cached_forward_matches_the_counter(mode, computed) -> None:
    """One cached step under a plan of ``computed`` tokens: the analytic matmul FLOPs
    agree with the executed-op count within 1 %."""
    net = build_model(config()).eval()
    n = net.config.n_tokens
    mask = torch.zeros(1, n, dtype=torch.bool)
    mask[0, torch.randperm(n, generator=torch.Generator().manual_seed(computed))[:computed]] = True
    engine = CacheEngine(net, MaskPolicy(FixedConfig(), mask, mode))
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(2, 30, 2, generator=g) for _ in range(3)]
    engine.start_batch(3, torch.arange(2))
    with torch.no_grad():
        engine(xs[0], torch.ones(2), 0)                       # full step fills the caches
        counted = count_executed_flops(lambda: engine(xs[1], torch.full((2,), 0.5), 1))
    expected = matmul_total(forward_flops(net.config, 2, mode=mode, computed=computed))
    assert abs(counted - expected) <= 0.01 * max(expected, 1.0), (counted, expected)
    assert engine.stats.steps[-1].flops == pytest.approx(expected)
    assert engine.stats.steps[-1].executed_fraction == pytest.approx(computed / n)


def test_ffn_dominates_the_paper_and_small_presets() -> None:
    """docs/METHOD.md §1: the 2048-wide FFN is ~86 % of a layer's FLOPs at N = 187
    (paper); the small preset keeps that regime (issue 2)."""
    for preset, layout in (("paper", "chart"), ("small", "bins")):
        flops = forward_flops(ModelConfig.from_preset(preset, 187, 1, layout=layout), 1)
        layer = flops["qkv"] + flops["attention"] + flops["out_proj"] + flops["ffn"]
        assert 0.8 < flops["ffn"] / layer < 0.9, (preset, flops["ffn"] / layer)
