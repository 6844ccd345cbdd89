"""The report's figures read as their captions say (issue 15, "Figures"; issue 14 item 6):
no grey unlabelled points, no colliding tick labels, no legend entry for a line not drawn,
legends of at most ~12 distinct entries, each claim reading's bound drawn where it is in
the curve's units, and delta(K)'s 1e-12 floor not drawn as a drop."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex, to_rgb  # noqa: E402

from fdbench.report import claim_series, figures  # noqa: E402
from fdbench.report.inputs import ReportInputs, load_inputs  # noqa: E402
from fdbench.report.sweep_pareto import pareto_figure  # noqa: E402
from fdbench.sweep_points import CACHE_POINTS  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "report"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch):
    """The figures the report's drawing functions would save, kept open to inspect."""
    kept: list = []
    for module in (figures, claim_series):
        monkeypatch.setattr(module, "save", lambda fig, path: kept.append(fig))
    yield kept
    for fig in kept:
        plt.close(fig)


def _overlapping_ticks(fig) -> list[str]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    bad = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels(which="both") if t.get_visible()
                      and t.get_text()]
            boxes = [t.get_window_extent(renderer) for t in labels]
            bad += [labels[i].get_text() for i, a in enumerate(boxes)
                    for b in boxes[i + 1:] if a.overlaps(b)]
    return bad


def _is_grey(colour) -> bool:
    r, g, b = to_rgb(colour)
    return abs(r - g) < 0.02 and abs(g - b) < 0.02 and 0.2 < r < 0.9


def test_pareto_has_named_colours_readable_ticks_and_only_drawn_lines(captured) -> None:
    inputs = load_inputs([FIXTURES / "bench", FIXTURES / "sweep"])
    figures.pareto(inputs, Path("unused.png"))
    (fig,) = captured
    assert not _overlapping_ticks(fig)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) <= 12 and len(set(labels)) == len(labels)
    points = [p for p in figures._points(inputs)]
    assert {p["key"] for p in points} <= set(labels)   # every colour is named
    for ax in fig.axes:
        for collection in ax.collections:
            assert not any(_is_grey(c) for c in collection.get_facecolors())
    fronts = [line for ax in fig.axes for line in ax.get_lines() if line.get_color() == "black"
              and line.get_linestyle() == "-"]
    assert ("Pareto front (not dominated)" in labels) == bool(fronts)


def _solver(solver: str, grid: str, steps: int, wall: float, sw: float) -> dict:
    return {"kind": "sweep", "family": "solver" if steps < 1000 else "baseline",
            "policy": f"{solver}/{grid} T={steps}", "solver": solver, "grid": grid,
            "n_steps": steps, "wall_speedup": wall, "sw_time": {"value": sw, "se": 0.001}}


def _cache(spec: str, family: str, wall: float, sw: float) -> dict:
    solver = "em" if family == "cache" else "dpmpp_2m"
    return {"kind": "sweep", "family": family, "policy": f"{spec} @ {solver}", "cache": spec,
            "method": spec.partition(":")[0], "solver": solver, "grid": "uniform",
            "n_steps": 1000 if family == "cache" else 10, "wall_speedup": wall,
            "sw_time": {"value": sw, "se": 0.001}, "paired": {"mean": sw / 10, "se": 0.0001}}


def _full_sweep() -> list[dict]:
    """Every solver at 4 T, every method at its points and on the best solver."""
    records = [_solver("em", "uniform", 1000, 1.0, 0.030)]
    for i, (solver, grid) in enumerate((("em", "uniform"), ("ode_euler", "edm"),
                                        ("ode_heun", "edm"), ("ddim", "log_snr"),
                                        ("dpmpp_2m", "log_snr"))):
        records += [_solver(solver, grid, t, 1000 / t, 0.030 + 0.001 * i + 0.1 / t)
                    for t in (10, 20, 50, 100)]
    for j, specs in enumerate(CACHE_POINTS.values()):
        records += [_cache(spec, "cache", 1.5 + k + 0.1 * j, 0.0305 + 0.0001 * j)
                    for k, spec in enumerate(specs)]
        records.append(_cache(specs[0], "cache+solver", 60 + j, 0.033))
    return records


@pytest.mark.parametrize("quality", ["sw_time", "paired"])
def test_sweep_pareto_legends_stay_small_and_distinct(quality: str) -> None:
    fig = pareto_figure(_full_sweep(), quality=quality)
    try:
        assert not _overlapping_ticks(fig)
        panels = [ax.get_legend_handles_labels() for ax in fig.axes]
        assert len(panels) == (2 if quality == "sw_time" else 1)
        for handles, labels in panels:
            assert 0 < len(labels) <= 12 and len(set(labels)) == len(labels)
            # an errorbar is a container whose first artist is its data line
            lines = [h[0] if isinstance(h, tuple) else h for h in handles]
            styles = [(to_hex(line.get_color()), line.get_marker(), line.get_linestyle())
                      for line in lines]
            assert len(set(styles)) == len(styles), labels   # no two entries look alike
    finally:
        plt.close(fig)


def _claim(series: dict, readings: dict, values: dict, decided: str) -> dict:
    return {"claim_id": "X", "statement": "planted", "verdict": readings[decided],
            "series": series, "readings": readings, "reading_values": values,
            "decided_by": decided, "settings": "quick; B x T = 2x300"}


def test_claims_series_draws_each_readings_bound_in_its_curves_units(captured) -> None:
    rng = np.random.default_rng(0)
    paper, op = rng.uniform(0.0, 0.3, 300), rng.uniform(0.5, 0.9, 300)
    readings = {"hit rate, paper settings": "violated", "hit rate, operating point": "holds",
                "other units (an exponent of something)": "holds",
                "hit rate, paper settings, not a summary of the curve": "holds"}
    values = {"hit rate, paper settings": [float(paper.mean()), 0.92],
              "hit rate, operating point": [float(op.mean()), 0.6],
              "other units (an exponent of something)": [0.25, 0.33],
              "hit rate, paper settings, not a summary of the curve": [0.123456, 0.77]}
    k = np.arange(1, 49)
    lin = _claim({"gap": list(0.01 * k ** 1.4)}, {"power law (exponent <= 1)": "violated"},
                 {"power law (exponent <= 1)": [1.4, 1.0]}, "power law (exponent <= 1)")
    claim = _claim({"hit_rate_paper": list(paper), "hit_rate_op": list(op)}, readings, values,
                   "hit rate, paper settings")
    claim_series.claims_series(ReportInputs(claims=[claim, lin]), Path("unused.png"))
    (fig,) = captured
    hit, lin_ax = fig.axes[0], fig.axes[2]
    dashed = {round(float(line.get_ydata()[0]), 6): to_hex(line.get_color())
              for line in hit.get_lines() if line.get_linestyle() == "--"}
    colour = {line.get_label().split(" (")[0]: to_hex(line.get_color())
              for line in hit.get_lines() if not line.get_label().startswith("_")}
    # each bound in the colour of its own reading's curve; 0.33 and 0.77 (their measured
    # values are no summary of a curve: other units) not drawn
    assert dashed == {0.92: colour["hit_rate_paper"], 0.6: colour["hit_rate_op"]}
    assert hit.get_xlabel() == "solver step of the reverse process"
    (slope,) = [line for line in lin_ax.get_lines() if line.get_linestyle() == "--"]
    x, y = np.asarray(slope.get_xdata()), np.asarray(slope.get_ydata())
    assert np.allclose(np.log(y[-1] / y[0]) / np.log(x[-1] / x[0]), 1.0)   # the bound's slope
    assert lin_ax.get_xscale() == lin_ax.get_yscale() == "log"
    text = " ".join(t.get_text() for t in fig.axes[1].texts)
    assert ">*violated" in text and "0.33" in text   # every reading listed, deciding marked


def test_localisation_does_not_draw_the_floor_as_a_drop(captured) -> None:
    figures.localisation(ReportInputs(datasets=["ecg", "bumps"]), Path("unused.png"))
    (fig,) = captured
    (ax,) = fig.axes
    curves = [line for line in ax.get_lines() if line.get_label() and
              not line.get_label().startswith("_")]
    assert len(curves) == 2
    for line in curves:
        y = np.asarray(line.get_ydata(), dtype=float)
        assert np.nanmin(y) >= figures.FLOOR and np.isnan(y).any()   # masked, not clipped
    marks = [line for line in ax.get_lines() if line.get_marker() == "v"]
    assert len(marks) == 2 and all(line.get_ydata()[0] == figures.FLOOR for line in marks)
