"""claims_series.png: one panel per appendix claim with the curves its check recorded
(``series``) and, under it, every reading with its measured value, bound and verdict
(``reading_values``, ``readings``, ``decided_by`` of proofs_check.json).

A reading's bound is drawn on a curve only where the curve is provably in the reading's
units: the reading's measured value must equal a summary of that curve (its mean, max,
min, median, first or last value, or the mean of its first / last 10 or 20 %) — so a bound
is never drawn against a curve of another quantity. Readings about an exponent ("power
law", "slope", "exponent") draw their bound as a reference power law through the curve's
first point on log-log axes. mem's overhead curves ``<policy>_overhead_bytes_vs_<D>`` are
drawn against ``sizes_<D>`` relative to the smallest size, for the policy that grows
fastest and for e2crf."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from fdbench.report.figure_style import VERDICT_COLOURS, Skip, save
from fdbench.report.inputs import ReportInputs
from fdbench.report.tables import fmt, number

MAX_CURVES = 8
X_NAMES = ("N", "L", "K", "n", "step", "steps", "t", "float_N", "eps")
POWER = re.compile(r"\b(power law|exponent|slope)\b", re.I)
# series-name suffix -> the words a reading of that setting carries
SUFFIX_WORDS = {"paper": "paper", "op": "operating", "operating": "operating"}
MEM = re.compile(r"^(?P<policy>.+)_overhead_bytes_vs_(?P<dim>\w+)$")


def _array(values: Any) -> np.ndarray:
    return np.asarray([number(v) if number(v) is not None else np.nan for v in values],
                      dtype=float)


def _x_axis(series: dict[str, np.ndarray]) -> str | None:
    """The series that is the sweep's x axis: one with a conventional name (``X_NAMES``)
    that increases strictly; None (x = index) when there is none. No guessing from the
    values: a strictly increasing measured curve (bytes vs N) is not an axis."""
    for name, values in series.items():
        if name in X_NAMES and values.size > 1 and bool(np.all(np.diff(values) > 0)):
            return name
    return None


def _summaries(values: np.ndarray) -> dict[str, float]:
    v = values[np.isfinite(values)]
    if not v.size:
        return {}
    out = {"mean": v.mean(), "max": v.max(), "min": v.min(), "median": float(np.median(v)),
           "first": v[0], "last": v[-1]}
    for share in (10, 20):
        k = max(1, v.size * share // 100)
        out[f"mean of first {share} %"] = v[:k].mean()
        out[f"mean of last {share} %"] = v[-k:].mean()
    return {k: float(x) for k, x in out.items()}


def _linked(reading: str, names: list[str]) -> list[str]:
    """Series a reading is about by name: those whose last word is the reading's setting
    (``hit_rate_paper`` <-> "... paper settings"); every series when none is named so."""
    words = reading.lower()
    named = [n for n in names if SUFFIX_WORDS.get(n.rpartition("_")[2]) is not None]
    if not named:
        return names
    return [n for n in named if SUFFIX_WORDS[n.rpartition("_")[2]] in words]


def _same_units(measured: float, values: np.ndarray) -> str | None:
    """The summary of ``values`` that equals ``measured`` (None: other units)."""
    for name, value in _summaries(values).items():
        if math.isclose(value, measured, rel_tol=1e-4):   # no abs_tol: 1e-15 is not 0
            return name
    return None


def _readings(claim: dict[str, Any]) -> list[tuple[str, str, float | None, float | None]]:
    """(name, verdict, measured, bound) per reading; an old-format claim gives one row."""
    values = claim.get("reading_values") or {}
    rows = [(name, str(verdict), *(list(values.get(name) or (None, None)) + [None])[:2])
            for name, verdict in (claim.get("readings") or {}).items()]
    return rows or [("as recorded", str(claim.get("verdict", "?")), claim.get("measured"),
                     claim.get("bound"))]


def _mem_curves(series: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """mem: (size / smallest size, overhead bytes) for the fastest-growing policy and e2crf."""
    found: dict[str, dict[str, np.ndarray]] = {}
    for name, values in series.items():
        m = MEM.match(name)
        if m and f"sizes_{m['dim']}" in series:
            found.setdefault(m["policy"], {})[m["dim"]] = values

    def growth(policy: str) -> float:
        slopes = []
        for dim, y in found[policy].items():
            x = series[f"sizes_{dim}"]
            if y[0] > 0 and y[-1] > 0 and x[-1] > x[0] > 0:
                slopes.append(math.log(y[-1] / y[0]) / math.log(x[-1] / x[0]))
        return max(slopes, default=-math.inf)

    chosen = sorted(found, key=lambda p: (-growth(p), p))[:1] + (["e2crf"] if "e2crf" in found
                                                                else [])
    return {f"{p} vs {d}": (series[f"sizes_{d}"] / series[f"sizes_{d}"][0], found[p][d])
            for p in dict.fromkeys(chosen) for d in sorted(found[p])}


def _steps_of(claim: dict[str, Any]) -> int | None:
    m = re.search(r"B x T = \d+x(\d+)|\bT = (\d+)", str(claim.get("settings") or ""))
    return int(m[1] or m[2]) if m else None


def _panel(ax: Any, text_ax: Any, claim: dict[str, Any]) -> None:
    series = {n: _array(v) for n, v in sorted((claim.get("series") or {}).items())
              if isinstance(v, list)}
    x_name = _x_axis(series)
    power = [r for r in _readings(claim) if POWER.search(r[0]) and number(r[3]) is not None]
    mem = _mem_curves(series)
    measured_names = [n for n in series if n != x_name and "bound" not in n]
    # an exponent needs the real x: the axis series, mem's sizes, or (one series alone, no
    # bound beside it) the index + 1 that lin's fit uses (k = 1 .. n cached steps); TV.eps
    # fits in eps, which its series do not hold, so no slope is drawn there
    alone = len(measured_names) == 1 and len(series) == 1
    power = power if (mem or x_name or alone) else []
    if mem:
        curves = dict(mem)
        x_label = "size / smallest size of the grid (L, N, B or T)"
    else:
        names = [n for n in series if n != x_name]
        keep = [n for n in names if n.startswith("e2crf_")][:MAX_CURVES] or names[:MAX_CURVES]
        steps = _steps_of(claim)
        curves = {}
        for n in keep:
            y = series[n]
            if x_name and series[x_name].size == y.size:
                curves[n] = (series[x_name], y)
            else:
                curves[n] = (np.arange(1, y.size + 1) if power else np.arange(y.size), y)
        lengths = {y.size for _, y in curves.values()}
        x_label = (x_name or ("solver step of the reverse process" if steps and lengths and all(
            abs(n - steps) <= 2 for n in lengths) else "index along the check's sweep"
            + (" + 1" if power else "")))
    drawn_bounds, finite, lines_drawn = [], [], set()
    for i, (name, (x, y)) in enumerate(curves.items()):
        colour = f"C{i % 10}"
        dashed = "bound" in name
        if y.size > 200:   # a per-step trace: raw line faint, its moving mean bold
            ax.plot(x, y, color=colour, linewidth=0.4, alpha=0.3)
            window = y.size // 50
            ax.plot(x[window - 1:], np.convolve(y, np.ones(window) / window, mode="valid"),
                    color=colour, linewidth=1.5, label=f"{name} (mean of {window})")
        else:
            ax.plot(x, y, "--" if dashed else "-", color=colour, linewidth=1.2, label=name,
                    marker="." if y.size <= 12 else None)
        finite.append(y[np.isfinite(y)])
        for reading, verdict, measured, bound in _readings(claim):
            if (number(measured) is None or number(bound) is None or reading in
                    (claim.get("identities") or ()) or name not in _linked(reading, list(curves))):
                continue
            summary = _same_units(float(measured), y)
            if not summary:
                continue
            if (name, bound) not in lines_drawn:   # two readings, one bound: one line
                ax.axhline(bound, color=colour, linestyle="--", linewidth=1.2,
                           label=f"bound {fmt(bound)} of {summary} ({verdict})")
                lines_drawn.add((name, bound))
            drawn_bounds.append((reading, bound))
            finite.append(np.array([float(bound)]))
    log_x = bool(power) or bool(mem)
    for reading, verdict, measured, bound in power:
        if curves and not any(r == reading for r, _ in drawn_bounds):
            x, y = max((xy for n, xy in curves.items() if "bound" not in n),
                       key=lambda xy: float(np.nanmax(xy[1])), default=(None, None))
            ok = None if y is None else np.isfinite(y) & (y > 0) & (x > 0)
            if ok is not None and ok.any():
                x0, y0 = x[ok][0], y[ok][0]
                ax.plot(x[ok], y0 * (x[ok] / x0) ** float(bound), "k--", linewidth=1.2,
                        label=f"bound: slope {fmt(bound)} ({verdict}, measured {fmt(measured)})")
                drawn_bounds.append((reading, bound))
    values = np.concatenate(finite) if finite else np.zeros(0)
    if log_x or (values.size and values.min() > 0 and values.max() / values.min() > 100):
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis, values)
    xs = np.concatenate([x for x, _ in curves.values()]) if curves else np.zeros(0)
    if log_x or (xs.size and xs.min() > 0 and xs.max() / xs.min() > 100):
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis, xs)
    ax.set_title(f"{claim.get('claim_id', '?')} ({claim.get('verdict', '?')}): "
                 f"{str(claim.get('statement', ''))[:58]}", fontsize=8)
    ax.set_xlabel(x_label, fontsize=8)
    measured = [n for n in curves if "bound" not in n]
    ax.set_ylabel(", ".join(measured) if 0 < len(measured) <= 2 and len(", ".join(measured)) < 45
                  else "measured quantity (see legend)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6)
    _reading_text(text_ax, claim, {r for r, _ in drawn_bounds})


def _reading_text(ax: Any, claim: dict[str, Any], on_plot: set[str]) -> None:
    """Every reading, one line each: verdict, measured vs bound; > = the deciding one,
    [id] = identity (not counted), * = its bound is drawn above."""
    ax.axis("off")
    identities, decided = set(claim.get("identities") or ()), claim.get("decided_by")
    for row, (name, verdict, measured, bound) in enumerate(_readings(claim)[:5]):
        numbers = "" if number(measured) is None else f" {fmt(measured)} vs {fmt(bound)}"
        mark = (">" if name == decided else " ") + ("*" if name in on_plot else " ")
        tag = "[id] " if name in identities else ""
        line = f"{mark}{verdict}{numbers}: {tag}{name}"
        ax.text(0.0, 1.0 - 0.2 * row, line[:78], fontsize=6.5, va="top", family="monospace",
                color=VERDICT_COLOURS.get(verdict, "k"), transform=ax.transAxes)


def claims_series(inputs: ReportInputs, path: Path) -> str:
    """One panel per claim with curves (``series``), each reading's bound where it is in
    the curve's units, and every reading's numbers under the panel."""
    claims = [c for c in inputs.claims if c.get("series")]
    if not claims:
        raise Skip("no proofs_check claims with series")
    cols = min(3, len(claims))
    rows = math.ceil(len(claims) / cols)
    fig = plt.figure(figsize=(5.0 * cols, 4.4 * rows), layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[3.2, 1.0] * rows)
    for i, claim in enumerate(claims):
        r, c = divmod(i, cols)
        _panel(fig.add_subplot(grid[2 * r, c]), fig.add_subplot(grid[2 * r + 1, c]), claim)
    fig.suptitle("Appendix claims: what each check measured, with each reading's bound "
                 "(dashed) where it is in the curve's units")
    save(fig, path)
    return ("A curve above its dashed bound (or, for a lower bound, below it) is where the "
            "claim fails; under each panel every reading's measured vs bound, > = the "
            "reading that decided the verdict, * = bound drawn, [id] = identity (not counted).")


def _plain_log_ticks(axis: Any, values: np.ndarray) -> None:
    """Within two decades: ticks at 1, 2, 5 x 10^k as plain numbers (matplotlib's minor
    '2 x 10^0' labels collide); wider spans keep the decade labels, minor ones hidden."""
    from matplotlib.ticker import NullFormatter

    from fdbench.plots import log_ticks

    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size and positive.max() / positive.min() < 100:
        log_ticks(axis)
    else:
        axis.set_minor_formatter(NullFormatter())
