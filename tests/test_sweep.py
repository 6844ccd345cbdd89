"""The solver x cache sweep on a tiny checkpoint: records, FLOP ratios, pairing, resume."""

from __future__ import annotations

import json

import pytest

from fdbench.bench import BenchConfig
from fdbench.errors import ConfigError
from fdbench.sweep import SWEEP_FILE, SweepPoint, best_solver, pareto_front, run_sweep

BASE = SweepPoint("baseline", "em", "uniform", 8)
SMALL = BenchConfig(num_samples=3, n_directions=20, n_boot=5, threads=1, judge_repeats=0)


def _points() -> list[SweepPoint]:
    return [BASE,
            SweepPoint("solver", "dpmpp_2m", "log_snr", 4),
            SweepPoint("solver", "ode_heun", "edm", 3),
            SweepPoint("cache", "em", "uniform", 8, "fixed:R=2"),
            SweepPoint("cache", "em", "uniform", 8, "fixed:R=1")]


def test_sweep_records_ratios_and_pairs(sines_checkpoint, tmp_path) -> None:
    records = run_sweep(sines_checkpoint, tmp_path, SMALL, points=_points(), composites=False,
                        control=False, progress=False)
    by_label = {r["policy"]: r for r in records}
    assert set(by_label) == {p.label for p in _points()}
    # FLOPs: uncached solvers cost their score evaluations (Heun: 2 per step, 1 on the last)
    assert by_label["dpmpp_2m/log_snr T=4"]["flop_ratio"] == pytest.approx(4 / 8)
    assert by_label["ode_heun/edm T=3"]["flop_ratio"] == pytest.approx(5 / 8)
    assert by_label["ode_heun/edm T=3"]["evaluations"] == 5
    # recompute-every-step is the uncached sampler: same noise, so zero paired error
    full = by_label["fixed:R=1 @ em/uniform T=8"]
    assert full["paired"]["max"] == pytest.approx(0.0, abs=1e-5)
    assert full["flop_ratio"] == pytest.approx(1.0)
    cached = by_label["fixed:R=2 @ em/uniform T=8"]
    assert cached["flop_ratio"] < 1.0 and cached["paired"]["mean"] > 0
    for record in records:
        assert record["wall_speedup"] > 0 and record["baseline_seconds"] > 0
        assert record["wall_over_flop"] == pytest.approx(
            record["wall_speedup"] / record["flop_speedup"])
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_resumes_and_adds_composites(sines_checkpoint, tmp_path, monkeypatch) -> None:
    import fdbench.sweep as sweep

    monkeypatch.setattr(sweep, "CACHE_POINTS", {"fixed": ("fixed:R=1", "fixed:R=2",
                                                          "fixed:R=3")})
    run_sweep(sines_checkpoint, tmp_path, SMALL, points=_points()[:2], composites=False,
              control=False, progress=False)
    first = (tmp_path / SWEEP_FILE).read_text()
    records = run_sweep(sines_checkpoint, tmp_path, SMALL, points=_points()[:2],
                        composites=True, control=False, progress=False)
    assert (tmp_path / SWEEP_FILE).read_text().startswith(first)   # finished points kept
    composite = [r for r in records if r["family"] == "cache+solver"]
    assert [r["policy"] for r in composite] == ["fixed:R=2 @ dpmpp_2m/log_snr T=4"]
    assert composite[0]["paired"] is not None       # paired with dpmpp_2m T=4 uncached
    lines = [json.loads(line) for line in (tmp_path / SWEEP_FILE).read_text().splitlines()]
    assert len(lines) == 3


def test_sweep_rejects_bad_points_before_work(sines_checkpoint, tmp_path) -> None:
    with pytest.raises(ConfigError):
        run_sweep(sines_checkpoint, tmp_path, SMALL,
                  points=[BASE, SweepPoint("solver", "rk4", "uniform", 4)], progress=False)
    with pytest.raises(ConfigError, match="unknown cache policy"):
        run_sweep(sines_checkpoint, tmp_path, SMALL,
                  points=[BASE, SweepPoint("cache", "em", "uniform", 8, "nope")],
                  progress=False)
    assert not (tmp_path / SWEEP_FILE).exists()


def test_best_solver_prefers_fewest_evaluations_within_tolerance() -> None:
    def rec(n: int, sw: float) -> dict:
        return {"family": "solver", "evaluations": n, "sw_time": {"value": sw}}
    records = [rec(10, 0.5), rec(20, 0.104), rec(50, 0.101), rec(1000, 0.1)]
    assert best_solver(records, 0.1)["evaluations"] == 20
    assert best_solver([rec(10, 0.5), rec(20, 0.3)], 0.1)["evaluations"] == 20


def test_pareto_front() -> None:
    points = [(1.0, 0.5), (2.0, 0.6), (2.0, 0.4), (3.0, 0.9), (0.5, 0.1)]
    assert sorted(pareto_front(points)) == [2, 3, 4]


def test_cli_sweep_methods_match_the_sweep() -> None:
    from fdbench.cli import _SWEEP_METHODS
    from fdbench.sweep import CACHE_POINTS

    assert tuple(CACHE_POINTS) == _SWEEP_METHODS


def test_sweep_carries_the_judges_and_the_network_off_control(sines_checkpoint,
                                                              tmp_path) -> None:
    config = BenchConfig(num_samples=12, n_directions=20, n_boot=5, threads=1,
                         judge_repeats=1)
    records = run_sweep(sines_checkpoint, tmp_path, config, points=_points()[:2],
                        composites=False, progress=False)
    by_family = {r["family"]: r for r in records}
    assert set(by_family) == {"baseline", "solver", "control"}
    control = by_family["control"]
    assert control["policy"] == "network_off @ em/uniform T=8"
    assert control["flop_ratio"] == 0.0 and control["paired"] is not None
    for record in records:
        assert 0 <= record["judges"]["discriminative_score"] <= 0.5
    assert "judges_real_vs_real" in by_family["baseline"]
    from fdbench.sweep import format_sweep_table

    assert "| control |" in format_sweep_table(records)


def test_best_solver_by_the_discriminative_score_when_judged() -> None:
    def rec(n: int, disc: float, se: float = 0.01) -> dict:
        return {"family": "solver", "evaluations": n, "sw_time": {"value": 0.1},
                "judges": {"discriminative_score": disc, "discriminative_score_se": se}}
    baseline = rec(1000, 0.10)
    # SW says every solver matches; the judge keeps only those within 2 SE of the baseline
    records = [rec(3, 0.45), rec(10, 0.20), rec(20, 0.12), rec(50, 0.11)]
    assert best_solver(records, 0.1, baseline)["evaluations"] == 20
    assert best_solver(records[:2], 0.1, baseline)["evaluations"] == 10   # none: the best
    assert best_solver(records, 0.1)["evaluations"] == 3                  # SW rule
