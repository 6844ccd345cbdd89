"""fdbench bench and the sweep on a tiny checkpoint: records, controls, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fdbench.bench import RESULTS_FILE, BenchConfig, run_bench
from fdbench.bench_table import format_table
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
    assert len({json.dumps(r["settings"]) for r in records}) == 1
    settings = json.loads((tmp_path / "results.settings.json").read_text())
    assert settings["n_steps"] == 6 and settings["policies"] == ["e2crf", "fixed"]


def test_other_settings_into_the_same_directory_are_refused(sines_checkpoint,
                                                           tmp_path) -> None:
    """Issue 15: a rerun with other settings would overwrite samples/*.npy and mix two
    experiments in one table: refused, naming each differing setting; nothing changes."""
    run_bench(sines_checkpoint, tmp_path, BenchConfig(**SMALL), progress=False)
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=r"other settings \(n_steps: 6 there, 5 now; "
                                          r"num_samples: 4 there, 12 now\)"):
        run_bench(sines_checkpoint, tmp_path,
                  BenchConfig(**{**SMALL, "n_steps": 5, "num_samples": 12}), progress=False)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files


def test_resume_says_what_it_skipped(sines_checkpoint, tmp_path, capsys) -> None:
    config = BenchConfig(**{**SMALL, "batch_sizes": (2,)})
    run_bench(sines_checkpoint, tmp_path, config, progress=False)
    capsys.readouterr()
    run_bench(sines_checkpoint, tmp_path, config, progress=True)
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("resuming"))
    for phrase in ("samples: uncached, e2crf, fixed, network_off",
                   "quality: e2crf, fixed, network_off, uncached",
                   "timing: uncached@2, e2crf@2, fixed@2"):
        assert phrase in line, line
    assert "quality pass: scored" not in out   # nothing was recomputed


def test_non_finite_samples_leave_no_partial_files(sines_checkpoint, tmp_path,
                                                  monkeypatch) -> None:
    import torch

    import fdbench.bench
    from fdbench.errors import FdbenchError

    real = fdbench.bench.generate

    def nan_for_fixed(model, n, **kwargs):
        samples = real(model, n, **kwargs)
        return samples * torch.nan if kwargs.get("desc", "").endswith("fixed") else samples

    monkeypatch.setattr(fdbench.bench, "generate", nan_for_fixed)
    with pytest.raises(FdbenchError, match="sampling with 'fixed' gave non-finite values in 4 "
                                           "of 4 samples; nothing written"):
        run_bench(sines_checkpoint, tmp_path, BenchConfig(**SMALL), progress=False)
    written = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert "fixed.npy" not in written and "fixed_trajectory.npy" not in written
    assert "e2crf.npy" in written                # finished policies are kept
    for path in (tmp_path / "samples").iterdir():
        assert np.isfinite(np.load(path)).all(), path


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
