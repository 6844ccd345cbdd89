"""Issue 17: the cached step's hot path — the ragged layout pays (almost) only the planned
FLOPs and computes what the padded layout computes; E²-CRF's decision logic and feedback
read nothing on the host; the stage profile times without changing results."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor

from fdbench.cache import CacheEngine, E2CRFConfig, execute, make_policy, parse_policy
from fdbench.cache import engine as engine_module
from fdbench.cache.base import CacheConfig, CachePolicy, Decision, Observation, StepInfo
from fdbench.cache.e2crf import feedback_gain
from fdbench.cache.step_profile import STAGES, profile_steps
from fdbench.flops import count_executed_flops, forward_flops, matmul_total, ragged_forward_flops
from fdbench.model import ModelConfig, build_model

N, M, BATCH, STEPS = 30, 2, 4, 6


@dataclass(frozen=True)
class StairsConfig(CacheConfig):
    """Not registered: built directly, so the registry stays as shipped."""

    policy = "stairs"


class Stairs(CachePolicy):
    """Sample b recomputes 3 + 4 b tokens drawn at random (fixed per sample) on every
    cached step: recompute sets of different sizes, not prefixes."""

    config_class = StairsConfig

    def decide(self, step: StepInfo, units_x: Tensor) -> Decision:
        batch, n = units_x.shape[:2]
        mask = torch.zeros(batch, n, dtype=torch.bool)
        for b in range(batch):
            order = torch.randperm(n, generator=torch.Generator().manual_seed(b))
            mask[b, order[: min(n, 3 + 4 * b)]] = True
        return Decision(mask)


def network(preset: str = "small", dtype: torch.dtype = torch.float64):
    config = ModelConfig.from_preset(preset, N, M, layout="bins", dropout=0.0)
    return build_model(config, seed=3).eval().to(dtype)


def inputs(steps: int = STEPS, batch: int = BATCH, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(batch, N, M, generator=g, dtype=dtype) for _ in "ab")
    xs = [a + (b - a) * i / steps for i in range(steps)]
    ts = [torch.full((batch,), 0.7 - 0.01 * i, dtype=dtype) for i in range(steps)]
    return xs, ts


def run(net, policy: CachePolicy, ragged: str, steps: int = STEPS, ids=None) -> tuple:
    engine = CacheEngine(net, policy, ragged=ragged)
    xs, ts = inputs(steps, dtype=next(net.parameters()).dtype)
    engine.start_batch(steps, torch.arange(BATCH) if ids is None else ids)
    return [engine(x, t, i) for i, (x, t) in enumerate(zip(xs, ts, strict=True))], engine


def assert_ragged_equals_padded(net, make) -> None:
    padded, _ = run(net, make(), "never")
    ragged, engine = run(net, make(), "always")
    assert any(not step.full for step in engine.stats.records())
    for i, (a, b) in enumerate(zip(padded, ragged, strict=True)):
        gap = float((a - b).abs().max())
        assert gap <= 1e-10, f"step {i}: ragged differs from padded by {gap:.3g}"


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_ragged_layout_computes_what_the_padded_one_does(preset) -> None:
    """Per sample, the ragged layout's outputs equal the padded layout's (float64: matmul
    shapes differ, so float tolerance, not bits), for scripted sets and for E²-CRF."""
    net = network(preset)
    assert_ragged_equals_padded(net, lambda: Stairs(StairsConfig()))
    config = E2CRFConfig(K=1, tau_0=0.05, R=100, random_probe_ratio=0.2)
    assert_ragged_equals_padded(net, lambda: make_policy(config))


def test_planted_ragged_kv_bug_is_caught(monkeypatch) -> None:
    """The check above fails when the ragged layer writes its fresh K/V one token off."""
    original, n_tokens = execute.ragged_layer, network().config.n_tokens

    def shifted(layer, h, plan, cache):
        token = plan.kv_rows % n_tokens
        moved = execute.RaggedPlan(plan.rows, plan.tokens, plan.slots, plan.positions,
                                   plan.kv_rows - token + (token + 1) % n_tokens,
                                   plan.batch, plan.width)
        return original(layer, h, moved, cache)

    monkeypatch.setattr(engine_module, "ragged_layer", shifted)
    with pytest.raises(AssertionError, match="ragged differs"):
        assert_ragged_equals_padded(network(), lambda: Stairs(StairsConfig()))


def test_ragged_step_pays_the_planned_flops() -> None:
    """On a batch with recompute sets of 3..15 tokens, the ragged step's executed matmul
    FLOPs (FlopCounterMode) are within 1/0.9 of the planned ones and equal the recorded
    ones; the padded step's are not (the precondition that makes this test able to
    fail)."""
    net = network(dtype=torch.float32)
    counted, recorded = {}, {}
    for ragged in ("never", "always"):
        engine = CacheEngine(net, Stairs(StairsConfig()), ragged=ragged)
        xs, ts = inputs(3, dtype=torch.float32)
        engine.start_batch(3, torch.arange(BATCH))
        with torch.no_grad():
            engine(xs[0], ts[0], 0)
            counted[ragged] = count_executed_flops(
                lambda e=engine, x=xs[1], t=ts[1]: e(x, t, 1))
        step = engine.stats.records()[-1]
        recorded[ragged] = step.flops
        stats = engine.stats
        units = stats.batch * stats.n_tokens
        empty, full = stats.empty_flops_per_step, stats.uncached_flops_per_step
        planned = empty + (full - empty) * round(step.planned_fraction * units) / units
    assert counted["always"] <= planned / 0.9, (counted, planned)
    assert counted["never"] > planned / 0.9, (counted, planned)
    for ragged in counted:
        assert abs(counted[ragged] - recorded[ragged]) <= 0.01 * recorded[ragged]


def test_padded_planned_ratio_in_the_summary() -> None:
    net = network(dtype=torch.float32)
    _, padded = run(net, Stairs(StairsConfig()), "never")
    _, ragged = run(net, Stairs(StairsConfig()), "always")
    low, high = (e.stats.summary()["padded_planned_ratio"] for e in (padded, ragged))
    assert low < 0.9 <= high <= 1.0 + 1e-12
    assert "planned / executed" in ragged.stats.to_markdown()


def test_ragged_flops_reduce_to_the_padded_formula() -> None:
    config = network().config
    n = config.n_tokens
    for m in (1, 5, n):
        assert ragged_forward_flops(config, 3, tokens=3 * m, attention_rows=3 * m) == \
            pytest.approx(forward_flops(config, 3, mode="subset", computed=m))


class NoHostReads:
    """Make every host read of a tensor (item, bool, int, float, tolist) fail."""

    names = ("item", "__bool__", "__int__", "__float__", "tolist")

    def __enter__(self):
        self.saved = {name: getattr(Tensor, name) for name in self.names}

        def refuse(*args, **kwargs):
            raise AssertionError("a host read of a tensor on the step path")

        for name in self.names:
            setattr(Tensor, name, refuse)
        return self

    def __exit__(self, *exc):
        for name, value in self.saved.items():
            setattr(Tensor, name, value)


@pytest.mark.parametrize("spec", ["e2crf", "e2crf_paper", "e2crf_v01", "e2crf_no_feedback",
                                  "e2crf:correction=nearest_probe"])
def test_e2crf_step_reads_nothing_on_the_host(spec) -> None:
    """Decision and feedback of E²-CRF on cached steps (chunk refills included) make no
    host read at batch 1 (where the engine needs none either)."""
    net = network("tiny", torch.float32)
    config = parse_policy(spec, N)
    engine = CacheEngine(net, make_policy(config))
    xs, ts = inputs(80, batch=1, dtype=torch.float32)
    engine.start_batch(80, torch.arange(1))
    engine(xs[0], ts[0], 0)
    engine(xs[1], ts[1], 1)
    with NoHostReads():
        for i in range(2, 79):
            engine(xs[i], ts[i], i)
    assert engine.stats.summary()["recompute_fraction"] < 1.0


def test_test_of_host_reads_can_fail() -> None:
    with NoHostReads(), pytest.raises(AssertionError, match="host read"):
        bool(torch.ones(1) > 0)


@pytest.mark.parametrize("use_probes", [True, False])
def test_band_mean_correction_is_the_dense_formula(use_probes) -> None:
    """The factored correction (weight, value) equals fdbench 0.1's dense
    alpha * [cached high-band token] * mean measured error (float tolerance: the mean is
    now summed over the computed slots). With probes the measured tokens are the
    ``n_probe`` probed bins of each sample (their count is taken from the host); in the
    no_probe ablation any computed tokens may be measured (counted on the device)."""
    g = torch.Generator().manual_seed(1)
    batch, n, d = 3, 9, 4
    config = E2CRFConfig(K=1, random_probe_ratio=0.5, use_probes=use_probes)
    fresh = torch.rand(batch, n, generator=g) < 0.5
    fresh[:, :2] = True
    if use_probes:              # 4 = ceil(0.5 * 7) probed high-band bins per sample
        chosen = torch.rand(batch, n - 2, generator=g).topk(4, dim=1).indices + 2
        measured = torch.zeros(batch, n, dtype=torch.bool).scatter_(1, chosen, True)
        fresh |= measured
    else:
        measured = fresh & (torch.rand(batch, n, generator=g) < 0.6)
    idx, _ = engine_module.mask_to_indices(fresh)
    keep = measured.gather(1, idx) & (torch.arange(idx.shape[1])[None] < fresh.sum(1)[:, None])
    error = torch.randn(batch, idx.shape[1], d, generator=g) * keep[..., None]
    observation = Observation(torch.randn(batch, n, d, generator=g), fresh, measured, error,
                              torch.arange(n), idx)
    policy = make_policy(config)
    policy.reset(engine_module.BatchInfo(batch, n, 10, torch.arange(batch), torch.device("cpu")))
    assert policy.n_probe == (4 if use_probes else 0)
    policy.intensity, policy.due = torch.tensor([0.05, 0.5, 0.0]), True
    correction = policy.observe(StepInfo(3, 10, torch.ones(batch)), observation)
    # the previous implementation, on the dense error
    dense = observation.dense_error()
    count = measured.sum(dim=1).clamp_min(1)
    mean = (dense.sum(dim=1) / count[:, None])[:, None, :]
    target = ~fresh & (torch.arange(n) > 1)
    alpha = feedback_gain(policy.intensity, 0.1)
    expected = alpha[:, None, None] * target[..., None] * mean
    base = torch.randn(batch, n, d, generator=g)
    got = base.clone().addcmul_(correction.weight, correction.value)
    assert torch.allclose(got, base + expected, rtol=0, atol=1e-6)
    assert torch.equal(correction.weight[..., 0] > 0, target)


@pytest.mark.parametrize("spec", [None, "e2crf", "fora"])
def test_stage_profile_times_without_changing_results(tiny_model, spec) -> None:
    profile = profile_steps(tiny_model, spec, batch=2, n_steps=6)
    assert set(profile["per_call_ms"]) == set(STAGES)
    assert profile["calls"] == 6
    assert sum(profile["share"].values()) == pytest.approx(1.0)
    assert profile["per_call_ms"]["layers"] > 0 and profile["per_call_ms"]["head"] > 0
    if spec == "e2crf":
        assert profile["per_call_ms"]["decision"] > 0 and profile["per_call_ms"]["gather"] > 0
    if spec is not None:   # wrappers gone: a profiled engine runs as an unprofiled one
        from fdbench.generate import generate

        engine = CacheEngine(tiny_model.network, make_policy(parse_policy(spec, 16)))
        profile_steps(tiny_model, spec, batch=2, n_steps=6, engine=engine)
        assert engine.profile is None
        if engine.executor is not None:
            assert not {"_layers", "_stack"} & set(vars(engine.executor))
            assert engine.executor.network is tiny_model.network
            assert not {"plan", "store", "after_first_block"} & set(vars(engine.policy))
        again = generate(tiny_model, 2, n_steps=6, seed=0, batch_size=2, engine=engine,
                         progress=False)
        fresh = generate(tiny_model, 2, n_steps=6, seed=0, batch_size=2,
                         engine=CacheEngine(tiny_model.network,
                                            make_policy(parse_policy(spec, 16))),
                         progress=False)
        assert torch.equal(again, fresh)


class NothingComputed(CachePolicy):
    """Cached steps compute no token at all but still ask for a measurement: the engine
    must report an empty (B, 0, d) staleness, not fail to shape it."""

    config_class = StairsConfig

    def decide(self, step: StepInfo, units_x: Tensor) -> Decision:
        if step.index % 3 == 0:
            return Decision(None)
        none = torch.zeros(units_x.shape[:2], dtype=torch.bool)
        return Decision(none, measure=none.clone())

    def observe(self, step: StepInfo, observation: Observation):
        if observation.error is not None:
            assert observation.error.shape[1:] == (0, observation.final.shape[-1])
        return None


@pytest.mark.parametrize("ragged", ["never", "always"])
def test_cached_step_that_computes_nothing_still_measures(ragged) -> None:
    """Regression: a measured cached step with zero computed tokens crashed on an
    ambiguous reshape of the empty staleness; its output is the reused score."""
    net = network("tiny")
    outputs, engine = run(net, NothingComputed(StairsConfig()), ragged)
    assert any(not step.full for step in engine.stats.records())
    assert all(torch.isfinite(out).all() for out in outputs)
    assert torch.equal(outputs[1], outputs[2])   # nothing recomputed: same residual stream


def test_bad_ragged_option_is_refused() -> None:
    from fdbench.errors import ConfigError

    with pytest.raises(ConfigError, match="ragged"):
        CacheEngine(network(), Stairs(StairsConfig()), ragged="sometimes")


def efficiency_script():
    """scripts/efficiency.py as a module (scripts/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "efficiency.py"
    spec = importlib.util.spec_from_file_location("efficiency", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_efficiency_script_smoke(sines_checkpoint, tmp_path) -> None:
    """scripts/efficiency.py end to end on a tiny checkpoint (no timing asserted)."""
    module = efficiency_script()
    out = tmp_path / "eff.json"
    assert module.main(["--models", str(sines_checkpoint), "--steps", "4", "--repeats", "1",
                        "--warmup", "2", "--batch-sizes", "1", "3", "--profile-steps", "3",
                        "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["timing"][str(sines_checkpoint)]
    assert [r["batch"] for r in rows] == [1, 3]
    for r in rows:
        assert r["flop_speedup_planned"] >= r["flop_speedup_paid"] >= 1.0
        assert r["flop_speedup_planned"] > 1.0
        assert 0 < r["padded_planned_ratio"] <= 1.0 and 0 <= r["decision_share"] < 1
    assert {p["policy"] for p in result["profile"][str(sines_checkpoint)]} == {
        "uncached", "e2crf", "fora"}
    assert matmul_total(forward_flops(ModelConfig.from_preset("tiny", 8, 1), 1)) > 0


def test_efficiency_script_compiled_against_the_compiled_baseline(sines_checkpoint,
                                                                  tmp_path) -> None:
    """``--compile``: the compiled caches are timed against the compiled uncached sampler
    too; the FLOP speedup paid (bucket padding included) is at most the planned one; no
    stage profile (it would time compilation). Up to half a minute of compiling on a CPU."""
    module = efficiency_script()
    out = tmp_path / "eff.json"
    assert module.main(["--models", str(sines_checkpoint), "--steps", "5", "--repeats", "2",
                        "--batch-sizes", "1", "--compile", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    (row,) = result["timing"][str(sines_checkpoint)]
    assert len(row["compiled_uncached_seconds"]) == 2 == len(row["uncached_seconds"])
    assert row["wall_speedup_vs_compiled"] > 0 and row["efficiency_vs_compiled"] > 0
    assert row["flop_speedup_planned"] >= row["flop_speedup_paid"] >= 1.0
    assert result["profile"] == {} and result["settings"]["compile"] is True


def test_bench_table_prints_decision_share_and_planned_flops() -> None:
    from fdbench.bench_table import format_table

    cache = {"recompute_fraction": 0.3, "cache_bytes": 0, "decision_seconds": 0.05,
             "flop_speedup": 3.0, "planned_flop_speedup": 3.2, "padded_planned_ratio": 0.9375}
    record = {"kind": "timing", "policy": "e2crf", "batch": 64, "seconds": [2.0, 1.0],
              "time_ratio": {"median": 0.5, "q25": 0.45, "q75": 0.55}, "wall_speedup": 2.0,
              "flop_speedup": 3.0, "efficiency": 0.67, "cache": cache}
    table = format_table([record])
    assert "e2crf batch 64: decision logic 5.0 % of the cached run" in table
    assert "planned 3.20x, paid 3.00x (planned/paid FLOPs 0.938)" in table
