"""fdbench bench and the sweep on a tiny checkpoint: records, controls, resume."""

from __future__ import annotations

import pytest

from fdbench.bench import RESULTS_FILE, BenchConfig, format_table, run_bench
from fdbench.errors import ConfigError

SMALL = dict(policies=("e2crf", "fixed"), batch_sizes=(1, 3), n_steps=6, num_samples=4,
             rounds=2, warmup_steps=2, n_directions=20, n_boot=5, judge_repeats=0)


def test_bench_records_speed_quality_and_controls(sines_checkpoint, tmp_path) -> None:
    records = run_bench(sines_checkpoint, tmp_path, BenchConfig(**SMALL), progress=False)
    kinds = {(r["kind"], r["policy"], r.get("batch")) for r in records}
    for batch in (1, 3):
        for name in ("uncached", "e2crf", "fixed"):
            assert ("timing", name, batch) in kinds
    assert ("quality", "network_off", None) in kinds
    timing = next(r for r in records if r["kind"] == "timing" and r["policy"] == "fixed")
    assert len(timing["seconds"]) == 2 and timing["flop_speedup"] > 1.0
    assert timing["efficiency"] == pytest.approx(timing["wall_speedup"] / timing["flop_speedup"])
    quality = next(r for r in records if r["kind"] == "quality" and r["policy"] == "e2crf")
    assert quality["quality"]["paired"]["n"] == 4
    trajectory = quality["quality"]["trajectory_paired"]
    assert trajectory["step"] == [0, 1, 2, 3, 4, 5] and len(trajectory["relative_error"]) == 6
    assert trajectory["relative_error"][0] == 0.0   # step 0 is always computed in full
    table = format_table(records)
    assert "network_off (control)" in table and "| fixed | 3 |" in table


def test_bench_quality_rows_carry_the_judges(sines_checkpoint, tmp_path) -> None:
    """Every quality record (cached, control, uncached) has the realism judges; uncached
    also real-vs-real and the dummy, the scale every row is read on."""
    from fdbench.judges import JUDGE_KEYS

    config = BenchConfig(**{**SMALL, "policies": ("fixed",), "batch_sizes": (2,),
                            "num_samples": 12, "judge_repeats": 1})
    records = run_bench(sines_checkpoint, tmp_path, config, progress=False)
    quality = {r["policy"]: r["quality"] for r in records if r["kind"] == "quality"}
    assert set(quality) == {"uncached", "fixed", "network_off"}
    for q in quality.values():
        assert set(JUDGE_KEYS) <= set(q["judges"]) and q["judges"]["n_samples"] == 12
    assert quality["uncached"]["judges_dummy"]["discriminative_score"] >= 0.3
    assert "judges_real_vs_real" in quality["uncached"]
    with pytest.raises(ConfigError, match="judges"):
        BenchConfig(num_samples=4)   # too few samples for the classifier's test part


def test_bench_resumes_without_redoing_work(sines_checkpoint, tmp_path) -> None:
    config = BenchConfig(**SMALL)
    run_bench(sines_checkpoint, tmp_path, config, progress=False)
    before = (tmp_path / RESULTS_FILE).read_text()
    records = run_bench(sines_checkpoint, tmp_path, config, progress=False)
    assert (tmp_path / RESULTS_FILE).read_text() == before
    assert len(records) == len(before.splitlines())
    # other settings are a different experiment: its records are not reused
    other = run_bench(sines_checkpoint, tmp_path, BenchConfig(**{**SMALL, "n_steps": 5}),
                      progress=False)
    assert all(r["settings"]["n_steps"] == 5 for r in other)
    kept = (tmp_path / RESULTS_FILE).read_text().splitlines()
    assert len(kept) == len(before.splitlines()) + len(other)  # nothing lost


def test_bad_bench_settings_fail_before_work(sines_checkpoint, tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown cache policy"):
        run_bench(sines_checkpoint, tmp_path, BenchConfig(**{**SMALL, "policies": ("x",)}))
    with pytest.raises(ConfigError, match="rounds"):
        BenchConfig(rounds=0)
    assert not (tmp_path / RESULTS_FILE).exists()


def test_random_checkpoint_is_labelled(tmp_path) -> None:
    from fdbench.bench import random_checkpoint
    from fdbench.checkpoint import load_checkpoint

    model = load_checkpoint(random_checkpoint(tmp_path, preset="tiny", data="sines"))
    assert "random" in model.meta["weights"] and model.network.config.layout == "chart"
