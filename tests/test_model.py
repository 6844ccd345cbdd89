"""Tests for fdbench.model: weight-for-weight equality with torch's TransformerEncoder, the
fused attention against the spelled-out reference, token layouts, batch independence,
seeded construction and config validation (docs/METHOD.md §1 "Score network").
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fdbench.errors import ConfigError
from fdbench.model import LAYOUTS, PRESETS, ModelConfig, ScoreTransformer, build_model
from fdbench.model.layers import SelfAttention, merge_heads, reference_attention, split_heads
from fdbench.spectral import chart, chart_to_bins, inverse_chart

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _torch_encoder(model: ScoreTransformer) -> nn.TransformerEncoder:
    """torch's post-norm encoder with the model's backbone weights (``backbone.layers.*``
    loaded without the ``backbone.`` prefix, strictly: every key must match)."""
    cfg = model.config
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, dropout=0.0,
                                       batch_first=True, layer_norm_eps=cfg.layer_norm_eps)
    encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
    prefix = "backbone."
    weights = {k[len(prefix):]: v for k, v in model.state_dict().items()
               if k.startswith(prefix)}
    encoder.load_state_dict(weights, strict=True)
    return encoder.to(next(model.parameters()).dtype).eval()


# (d_model, n_heads, d_ff, n_layers, n_tokens, batch): tiny, odd head width, the small
# preset at 94 bins tokens, and the paper model at N = 187 (chart layout) on batch 2
ENCODER_CASES = [
    pytest.param(16, 2, 64, 2, 9, 3, id="tiny"),
    pytest.param(24, 3, 40, 3, 5, 1, id="head8-batch1"),
    pytest.param(30, 5, 96, 2, 17, 4, id="head6"),
    pytest.param(32, 4, 1024, 4, 94, 2, id="small-preset"),
    pytest.param(72, 12, 2048, 10, 187, 2, id="paper-preset"),
]


@pytest.mark.parametrize(("d", "heads", "d_ff", "n_layers", "n_tokens", "batch"), ENCODER_CASES)
def test_backbone_equals_torch_transformer_encoder(d, heads, d_ff, n_layers, n_tokens, batch,
                                                   monkeypatch) -> None:
    """With the same weights, the backbone equals nn.TransformerEncoder(post-norm, ReLU,
    batch_first) in eval mode to 1e-5 (float32), both on torch's math path (grad enabled)
    and under ``torch.no_grad()``, where torch takes its fused fast path (checked to be
    taken; torch declines it for an odd head count, which then compares math paths)."""
    config = ModelConfig(n_steps=n_tokens, n_channels=1, layout="chart", d_model=d,
                         n_layers=n_layers, n_heads=heads, d_ff=d_ff)
    model = build_model(config, seed=11).eval()
    encoder = _torch_encoder(model)
    h = torch.randn(batch, n_tokens, d, generator=_gen(12))

    fast_calls = []
    fused = torch._transformer_encoder_layer_fwd

    def counting(*args, **kwargs):
        fast_calls.append(1)
        return fused(*args, **kwargs)

    monkeypatch.setattr(torch, "_transformer_encoder_layer_fwd", counting)

    ours = model.backbone(h)
    reference = encoder(h)
    assert not fast_calls  # grad enabled: torch's layer-by-layer math path
    assert (ours - reference).abs().max() <= 1e-5

    with torch.no_grad():
        ours_ng = model.backbone(h)
        reference_ng = encoder(h)
    # torch's fused encoder-layer kernel ran (torch skips it for an odd head count)
    assert len(fast_calls) == (n_layers if heads % 2 == 0 else 0)
    assert (ours_ng - reference_ng).abs().max() <= 1e-5
    assert torch.equal(ours_ng, ours.detach())


def test_backbone_equals_torch_encoder_float64() -> None:
    """In float64 the agreement with nn.TransformerEncoder is to round-off (1e-12), which
    pins every piece (scale, head split, LayerNorm eps, post-norm order)."""
    config = ModelConfig(n_steps=13, n_channels=2, layout="chart", d_model=24, n_layers=3,
                         n_heads=4, d_ff=80)
    model = build_model(config, seed=3).to(F64).eval()
    encoder = _torch_encoder(model)
    h = torch.randn(3, 13, 24, generator=_gen(4), dtype=F64)
    assert torch.allclose(model.backbone(h), encoder(h), rtol=0, atol=1e-12)
    with torch.no_grad():
        assert torch.allclose(model.backbone(h), encoder(h), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- attention


@pytest.mark.parametrize(("batch", "heads", "n_q", "n_kv", "head_dim"),
                         [(1, 1, 1, 1, 1), (2, 3, 7, 7, 6), (3, 12, 94, 94, 6),
                          (2, 4, 5, 11, 8)])
def test_fused_attention_equals_reference(batch, heads, n_q, n_kv, head_dim) -> None:
    """F.scaled_dot_product_attention = softmax(q k^T / sqrt(head_dim)) v, both against
    reference_attention and against the softmax written out with exp (float64)."""
    g = _gen(batch * 100 + n_q)
    q = torch.randn(batch, heads, n_q, head_dim, generator=g, dtype=F64)
    k = torch.randn(batch, heads, n_kv, head_dim, generator=g, dtype=F64)
    v = torch.randn(batch, heads, n_kv, head_dim, generator=g, dtype=F64)
    logits = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(head_dim)
    weights = (logits - logits.amax(-1, keepdim=True)).exp()
    spelled = torch.einsum("bhqk,bhkd->bhqd", weights / weights.sum(-1, keepdim=True), v)
    assert torch.allclose(reference_attention(q, k, v), spelled, rtol=0, atol=1e-12)
    assert torch.allclose(F.scaled_dot_product_attention(q, k, v), spelled, rtol=0, atol=1e-12)


def test_self_attention_equals_spelled_out_and_multihead_attention() -> None:
    """SelfAttention(h) = out_proj(merge(attn(split(h W_q^T + b_q), split(h W_k^T + b_k),
    split(h W_v^T + b_v)))) and equals nn.MultiheadAttention with the same weights; a
    subset of queries gives the same rows as the full attention (float64, eval)."""
    d, heads, n = 24, 4, 10
    torch.manual_seed(0)
    attention = SelfAttention(d, heads, dropout=0.1).to(F64).eval()
    with torch.no_grad():
        attention.in_proj_bias.normal_(generator=_gen(5))
        attention.out_proj.bias.normal_(generator=_gen(6))
    h = torch.randn(2, n, d, generator=_gen(7), dtype=F64)
    w, b = attention.in_proj_weight, attention.in_proj_bias
    q, k, v = (split_heads(F.linear(h, w[i * d:(i + 1) * d], b[i * d:(i + 1) * d]), heads)
               for i in range(3))  # each (B, heads, n, d / heads)
    rows = merge_heads(reference_attention(q, k, v))  # (B, n, d)
    spelled = rows @ attention.out_proj.weight.T + attention.out_proj.bias
    assert torch.allclose(attention(h), spelled, rtol=0, atol=1e-12)

    mha = nn.MultiheadAttention(d, heads, dropout=0.0, batch_first=True, dtype=F64).eval()
    mha.load_state_dict(attention.state_dict(), strict=True)
    assert torch.allclose(attention(h), mha(h, h, h, need_weights=False)[0], rtol=0, atol=1e-12)

    subset = torch.tensor([0, 3, 9])
    pq, pk, pv = attention.project_qkv(h)
    partial = attention.attend(pq[:, :, subset], pk, pv)  # (B, 3, d)
    assert torch.allclose(partial, attention(h)[:, subset], rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n_steps", [7, 8])
def test_layout_shapes(layout: str, n_steps: int) -> None:
    """time/chart: N tokens of M reals; bins: N//2+1 tokens of 2M reals. The output is a
    series (B, N, M) in the model's domain for every layout."""
    b, m = 2, 3
    config = ModelConfig.from_preset("tiny", n_steps, m, layout=layout)
    expected_tokens = n_steps // 2 + 1 if layout == "bins" else n_steps
    expected_dim = 2 * m if layout == "bins" else m
    assert (config.n_tokens, config.token_dim) == (expected_tokens, expected_dim)
    assert config.frequency_domain == (layout != "time")
    model = build_model(config, seed=0).eval()
    assert model.pos_encoder().shape == (expected_tokens, config.d_model)
    assert model.embedder.in_features == expected_dim
    assert model.unembedder.out_features == expected_dim
    x = torch.randn(b, n_steps, m, generator=_gen(8))
    tokens = model.to_tokens(x)
    assert tokens.shape == (b, expected_tokens, expected_dim)
    if layout == "bins":
        assert torch.equal(tokens, chart_to_bins(x))
    out = model(x, torch.tensor([0.1, 0.7]))
    assert out.shape == (b, n_steps, m) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("n_steps", [7, 8])
def test_bins_output_is_a_valid_chart_vector(n_steps: int) -> None:
    """The bins-layout output is a chart vector: re-tokenised it has zero imaginary parts
    at DC and (even N) Nyquist, it is the chart of a real series, and the head's
    structural imaginary outputs are dropped (not folded into other positions)."""
    m = 2
    config = ModelConfig.from_preset("tiny", n_steps, m, layout="bins")
    model = build_model(config, seed=1).to(F64).eval()
    x = torch.randn(3, n_steps, m, generator=_gen(9), dtype=F64)
    t = torch.tensor([0.05, 0.5, 0.95], dtype=F64)
    out = model(x, t)
    tokens = chart_to_bins(out)
    assert torch.all(tokens[:, 0, m:] == 0)
    if n_steps % 2 == 0:
        assert torch.all(tokens[:, -1, m:] == 0)
    series = inverse_chart(out)
    assert not series.is_complex()
    assert torch.allclose(chart(series), out, rtol=0, atol=1e-12)
    # spelled out: Re from every head token, Im from tokens 1..ceil(N/2)-1 only; the head's
    # Im outputs at DC / even-N Nyquist (nonzero in general) are not chart coordinates
    head = model.unembedder(model.backbone(model.embed(x, t)))  # (B, N//2+1, 2M)
    n_im = math.ceil(n_steps / 2) - 1
    assert torch.equal(out, torch.cat([head[..., :m], head[:, 1:1 + n_im, m:]], dim=1))
    assert head[:, 0, m:].abs().min() > 0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_batch_independence(layout: str) -> None:
    """In eval mode, sample i of a batch of 8 gets the same score as when run alone (the
    network has no cross-sample operation), to 1e-5 in float32."""
    config = ModelConfig.from_preset("small", 24, 2, layout=layout)
    model = build_model(config, seed=2).eval()
    x = torch.randn(8, 24, 2, generator=_gen(10))
    t = torch.rand(8, generator=_gen(11)) * 0.99 + 0.01
    with torch.no_grad():
        batched = model(x, t)
        for i in range(8):
            alone = model(x[i:i + 1], t[i:i + 1])
            assert (batched[i:i + 1] - alone).abs().max() <= 1e-5


# --------------------------------------------------------------------------- construction


def test_build_model_is_seeded_and_leaves_global_rng_alone() -> None:
    """build_model(config, seed) depends only on seed (same seed -> identical weights and
    buffers whatever the global RNG state; different seed -> different weights) and
    leaves torch's global RNG state unchanged."""
    config = ModelConfig.from_preset("tiny", 12, 2, layout="bins")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        before = torch.get_rng_state()
        first = build_model(config, seed=5).state_dict()
        assert torch.equal(torch.get_rng_state(), before)
        torch.manual_seed(999)
        second = build_model(config, seed=5).state_dict()
        other = build_model(config, seed=6).state_dict()
    assert first.keys() == second.keys()
    assert "time_encoder.W" in first  # the random Fourier features are seeded too
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["embedder.weight"], other["embedder.weight"])
    assert not torch.equal(first["time_encoder.W"], other["time_encoder.W"])


def test_paper_preset_parameter_count() -> None:
    """The paper model (N = 187, M = 1, chart layout) has about 3.2 M parameters
    (docs/METHOD.md §1); the count also equals the architecture's formula:
    embed (M+1)d + positions N d + time (d+1)d + L [in_proj 3d(d+1) + out_proj d(d+1) +
    FFN (d+1) d_ff + (d_ff+1) d + 2 LayerNorms 4d] + head (d+1) M."""
    config = ModelConfig.from_preset("paper", 187, 1, layout="chart")
    count = sum(p.numel() for p in build_model(config).parameters())
    d, d_ff, n_layers, n, m = 72, 2048, 10, 187, 1
    layer = 3 * d * (d + 1) + d * (d + 1) + (d + 1) * d_ff + (d_ff + 1) * d + 4 * d
    formula = (m + 1) * d + n * d + (d + 1) * d + n_layers * layer + (d + 1) * m
    assert count == formula == 3_202_377
    assert abs(count / 3.2e6 - 1) < 0.03


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"n_steps": 1}, "n_steps"),
        ({"n_steps": 8.0}, "n_steps"),
        ({"n_channels": 0}, "n_channels"),
        ({"layout": "frequency"}, "layout"),
        ({"d_model": 0}, "d_model"),
        ({"n_layers": 0}, "n_layers"),
        ({"n_layers": True}, "n_layers"),
        ({"n_heads": 5}, "n_heads"),  # 72 % 5 != 0
        ({"n_heads": 0}, "n_heads"),
        ({"d_ff": 0}, "d_ff"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": float("nan")}, "dropout"),
        ({"time_scale": 0.0}, "time_scale"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
    ],
)
def test_bad_model_config_raises_config_error_naming_field(overrides: dict, field: str) -> None:
    """Each out-of-range or mistyped field raises ConfigError whose message names it."""
    fields = {"n_steps": 16, "n_channels": 2, **overrides}
    with pytest.raises(ConfigError, match=rf"ModelConfig\.{field}\b"):
        ModelConfig(**fields)
    with pytest.raises(ConfigError, match=rf"ModelConfig\.{field}\b"):
        ModelConfig.from_dict(fields)


def test_unknown_preset_raises_config_error() -> None:
    """An unknown preset name raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="huge"):
        ModelConfig.from_preset("huge", 16, 2)
    with pytest.raises(ConfigError, match="n_heads"):
        ModelConfig.from_preset("paper", 16, 2, n_heads=5)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_model_config_dict_round_trip(preset: str, layout: str) -> None:
    """ModelConfig.from_dict(to_dict()) == config; unknown or missing fields raise
    ConfigError."""
    config = ModelConfig.from_preset(preset, 31, 3, layout=layout, dropout=0.2)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError):
        ModelConfig.from_dict({**config.to_dict(), "n_experts": 4})
    fields = config.to_dict()
    del fields["n_steps"]
    with pytest.raises(ConfigError):
        ModelConfig.from_dict(fields)
