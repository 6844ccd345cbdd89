"""The asv benchmarks import and run (setup + one method each) in a quick form, so CI
catches a benchmark broken by a code change; asv itself runs them in `asv run --quick`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from asv_bench import bench_cache, common

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "N_STEPS", 14)
    monkeypatch.setattr(common, "NUM_SAMPLES", 4)
    monkeypatch.setattr(common, "N_DIRECTIONS", 20)
    monkeypatch.setattr(common, "ROUNDS", 1)
    monkeypatch.setattr(common, "POLICIES", ["fixed"])


def test_tracked_ratios(quick: None) -> None:
    bench = bench_cache.CachedVsUncached()
    results = bench.setup_cache()
    bench.setup(results, "fixed")
    assert 0 < bench.track_flop_fraction(results, "fixed") < 1  # fixed reuses most steps
    assert bench.track_wall_fraction(results, "fixed") > 0
    assert bench.track_sw_ratio(results, "fixed") > 0
    assert bench.track_paired_error(results, "fixed") > 0
    with pytest.raises(NotImplementedError):
        bench.setup({"fixed": None}, "fixed")


@pytest.mark.parametrize("policy", ["uncached", "fixed"])
def test_sampling_step_and_peakmem(quick: None, policy: str) -> None:
    step = bench_cache.SamplingStep()
    step.setup(policy, 2)
    step.time_sampling_step(policy, 2)
    memory = bench_cache.PeakMemory()
    memory.setup(policy)
    memory.peakmem_sampling(policy)


def test_missing_policy_skips() -> None:
    model = common.load_model()
    with pytest.raises(NotImplementedError, match="not in POLICY_PRESETS"):
        common.make_engine(model, "no_such_policy")


def test_every_benchmark_declares_units_and_params() -> None:
    for cls in (bench_cache.CachedVsUncached, bench_cache.SamplingStep, bench_cache.PeakMemory):
        assert len(cls.params) == len(cls.param_names)
        for name in dir(cls):
            if name.startswith("track_"):
                assert getattr(cls, name).unit, name


def test_asv_config_points_at_the_benchmarks() -> None:
    text = (ROOT / "asv.conf.json").read_text()
    config = json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.M))  # asv allows // comments
    assert config["benchmark_dir"] == "asv_bench"
    assert config["matrix"]["req"]["torch"] == "2.13.0"
