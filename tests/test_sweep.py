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
            SweepPoint("cache", "em", "uniform", 8, "fixed:R=1"),
            SweepPoint("cache", "em", "uniform", 8, "e2crf")]


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
        # planned FLOPs never exceed the executed (padded) ones; equal without a token
        # cache or where every sample has the same set (fixed: all tokens or none)
        assert record["planned_flop_ratio"] <= record["flop_ratio"] + 1e-12
        if record["method"] != "e2crf":
            assert record["planned_flop_speedup"] == pytest.approx(record["flop_speedup"])
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("sweep_curves.png", "sweep_ablation.png"):   # e2crf is in both
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_sweep_resumes_and_adds_composites(sines_checkpoint, tmp_path, monkeypatch) -> None:
    import fdbench.sweep as sweep

    # an ablation (fixed) is not run on the best solver
    monkeypatch.setattr(sweep, "CACHE_POINTS", {
        "fora": ("fora:cache_interval=1", "fora:cache_interval=2", "fora:cache_interval=3"),
        "fixed": ("fixed:R=1", "fixed:R=2", "fixed:R=3")})
    run_sweep(sines_checkpoint, tmp_path, SMALL, points=_points()[:2], composites=False,
              control=False, progress=False)
    first = (tmp_path / SWEEP_FILE).read_text()
    records = run_sweep(sines_checkpoint, tmp_path, SMALL, points=_points()[:2],
                        composites=True, control=False, progress=False)
    assert (tmp_path / SWEEP_FILE).read_text().startswith(first)   # finished points kept
    composite = [r for r in records if r["family"] == "cache+solver"]
    assert [r["policy"] for r in composite] == ["fora:cache_interval=2 @ dpmpp_2m/log_snr T=4"]
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


# ---- curves: synthetic records, no sampling -------------------------------------------

def _rec(spec: str, paired: float | None, wall: float, flop: float | None = None,
         planned: float | None = None, family: str = "cache", solver: str = "em") -> dict:
    return {"kind": "sweep", "family": family, "policy": f"{spec} @ {solver}/uniform T=1000",
            "cache": spec, "method": spec.partition(":")[0], "solver": solver,
            "grid": "uniform", "n_steps": 1000, "evaluations": 1000, "wall_speedup": wall,
            "flop_speedup": flop if flop is not None else wall,
            "planned_flop_speedup": planned if planned is not None else flop or wall,
            "paired": None if paired is None else {"mean": paired, "se": 0.0}}


def _curve_records() -> list[dict]:
    """Points listed out of setting order; e2crf's paired error and speedups are not
    monotone in tau_0 and naive_kv's grid runs from large K to small, so any sort by
    error, speedup, spec text or numeric value misorders some curve."""
    return [
        _rec("e2crf:tau_0=1", 0.02, 3.0, 3.1, 4.4),
        _rec("e2crf:tau_0=0.05", 0.05, 1.2, 1.3, 1.5),
        _rec("e2crf:tau_0=0.5", 0.01, 2.0, 2.2, 2.9),
        _rec("e2crf:tau_0=0.2", 0.03, 1.1, 1.25, 1.4),   # slower than the milder 0.05
        _rec("fora:cache_interval=6", 0.2, 4.0),
        _rec("fora:cache_interval=10", 0.5, 6.0),     # outside the grid: after it
        _rec("fora:cache_interval=2", 0.004, 1.8),
        _rec("fora:cache_interval=8", 0.3, 5.0),
        _rec("naive_kv:K=0", 0.009, 1.1),
        _rec("naive_kv:K=10", 0.001, 1.01),
        _rec("naive_kv:K=2", 0.006, 1.05),
        _rec("e2crf_no_event:tau_0=0.5", 0.04, 2.1, 2.2, 2.8),
        _rec("e2crf_no_event:tau_0=0.05", 0.06, 1.3, 1.3, 1.6),
        # left out: no paired error, the uncached baseline, a cache on the best solver
        {**_rec("toca:cache_interval=2", None, 2.0), "family": "cache"},
        {**_rec("none", None, 1.0), "family": "baseline", "cache": None, "method": "uncached"},
        {**_rec("dpmpp", None, 50.0), "family": "solver", "cache": None, "method": "uncached"},
        _rec("duca:cache_interval=3", 0.1, 30.0, family="cache+solver", solver="dpmpp_2m"),
        _rec("network_off", 0.9, 80.0, family="control"),
    ]


def test_curve_series_orders_each_method_by_setting() -> None:
    from fdbench.plots import curve_series

    series = curve_series(_curve_records())
    assert list(series) == ["e2crf", "fora", "e2crf_no_event", "naive_kv"]  # CACHE_POINTS order
    specs = {m: [p.spec for p in points] for m, points in series.items()}
    assert specs["e2crf"] == ["e2crf:tau_0=0.05", "e2crf:tau_0=0.2", "e2crf:tau_0=0.5",
                              "e2crf:tau_0=1"]
    assert specs["fora"] == ["fora:cache_interval=2", "fora:cache_interval=6",
                             "fora:cache_interval=8", "fora:cache_interval=10"]
    assert specs["naive_kv"] == ["naive_kv:K=10", "naive_kv:K=2", "naive_kv:K=0"]
    first = series["e2crf"][0]
    assert (first.paired_error, first.wall_speedup, first.flop_speedup,
            first.planned_flop_speedup) == (0.05, 1.2, 1.3, 1.5)


def test_curve_series_leaves_out_points_without_a_curve() -> None:
    from fdbench.plots import curve_series

    series = curve_series(_curve_records())
    assert "toca" not in series and "duca" not in series and "uncached" not in series
    assert "network_off" not in series
    drawn = sum(len(points) for points in series.values())
    assert drawn == 13                       # every cache record with a paired error


def test_curve_series_groups_the_ablations() -> None:
    from fdbench.plots import curve_series
    from fdbench.sweep import ABLATIONS
    from fdbench.sweep_points import ABLATION_FIGURE

    ablation = curve_series(_curve_records(), ABLATION_FIGURE)
    assert list(ablation) == ["e2crf", "e2crf_no_event", "naive_kv"]
    assert [p.spec for p in ablation["e2crf_no_event"]] == ["e2crf_no_event:tau_0=0.05",
                                                            "e2crf_no_event:tau_0=0.5"]
    main = curve_series(_curve_records(), exclude=ABLATIONS)
    assert list(main) == ["e2crf", "fora"]


def _tick_labels_overlap(fig) -> bool:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels(which="both")
                     if t.get_visible() and t.get_text()]
            if any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]):
                return True
    return False


def test_curve_figure_draws_one_line_per_method() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from fdbench.plots import curve_figure, curve_series

    records = _curve_records()
    fig = curve_figure(records)
    try:
        wall, flop = fig.axes[:2]
        series = curve_series(records)
        lines = {line.get_gid(): line for ax in (wall, flop) for line in ax.get_lines()
                 if line.get_gid()}
        for method, points in series.items():
            x, y = lines[f"{method}:wall"].get_data()
            assert list(x) == [p.paired_error for p in points]
            assert list(y) == [p.wall_speedup for p in points]
            assert list(lines[f"{method}:executed"].get_ydata()) == [p.flop_speedup
                                                                    for p in points]
        # the dashed planned line only where planned differs from executed (e2crf*)
        planned = sorted(g.split(":")[0] for g in lines if g.endswith(":planned"))
        assert planned == ["e2crf", "e2crf_no_event"]
        assert lines["e2crf:planned"].get_linestyle() == "--"
        assert list(lines["e2crf:planned"].get_ydata()) == [1.5, 1.4, 2.9, 4.4]
        # one legend entry per method, colours never shared
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert legend == list(series)
        colours = [to_hex(lines[f"{m}:wall"].get_color()) for m in series]
        assert len(set(colours)) == len(colours)
        # references: speedup 1 and the network_off control's paired error
        assert any(list(line.get_ydata()) == [1.0, 1.0] for line in wall.get_lines())
        assert any(list(line.get_xdata()) == [0.9, 0.9] for line in wall.get_lines())
        assert wall.get_xscale() == "log"    # errors from 0.001 to 0.9
        assert not _tick_labels_overlap(fig)
    finally:
        plt.close(fig)


def test_curve_figure_linear_x_when_errors_span_less_than_a_decade() -> None:
    import matplotlib.pyplot as plt

    from fdbench.plots import curve_figure

    fig = curve_figure([_rec("fora:cache_interval=2", 0.1, 1.5),
                        _rec("fora:cache_interval=3", 0.3, 2.0)])
    try:
        assert fig.axes[0].get_xscale() == "linear"
        assert not _tick_labels_overlap(fig)
    finally:
        plt.close(fig)


def test_distinct_colours_for_every_method() -> None:
    from matplotlib.colors import to_hex

    from fdbench.plots import distinct_colours

    for n in (1, 15, 20, 33):
        colours = [to_hex(c) for c in distinct_colours(n)]
        assert len(colours) == n and len(set(colours)) == n


def test_sweep_curve_files_are_written_where_there_is_a_curve(tmp_path) -> None:
    from fdbench.plots import plot_sweep_curves

    written = plot_sweep_curves(_curve_records(), tmp_path)
    assert sorted(p.name for p in written) == ["sweep_ablation.png", "sweep_curves.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    solvers_only = [r for r in _curve_records() if r["family"] in ("baseline", "solver")]
    assert plot_sweep_curves(solvers_only, tmp_path / "none") == []


def test_every_method_has_a_curve_of_valid_points() -> None:
    from fdbench.cache import parse_policy
    from fdbench.sweep import ABLATIONS, CACHE_POINTS

    assert set(ABLATIONS) <= set(CACHE_POINTS)
    for method, specs in CACHE_POINTS.items():
        assert len(specs) >= 4 and len(set(specs)) == len(specs), method
        for spec in specs:
            assert spec.partition(":")[0] == method
            parse_policy(spec, 128)
    e2crf_grid = [s.partition(":")[2] for s in CACHE_POINTS["e2crf"]]
    for name in ABLATIONS[:4]:      # each E²-CRF ablation on the same tau_0 grid
        assert [s.partition(":")[2] for s in CACHE_POINTS[name]] == e2crf_grid
