"""The report's figures of the appendix claims (paired error and its bound, measured vs
bound per claim, each claim's measured curves); drawn like :mod:`fdbench.report.figures`,
sharing :mod:`fdbench.report.figure_style`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from fdbench.report.figure_style import VERDICT_COLOURS, Skip, save, style
from fdbench.report.inputs import ReportInputs
from fdbench.report.tables import number


def _claim_series_with(inputs: ReportInputs, word: str) -> list[dict[str, Any]]:
    return [c for c in inputs.claims
            if any(word in name for name in (c.get("series") or {}))]


def paired_error(inputs: ReportInputs, path: Path) -> str:
    """Paired error against steps since the last refresh with the claim's bound (from a
    proofs_check claim whose series has a ``*since_refresh*`` axis), else the bench's
    paired error along the reverse process."""
    with_axis = _claim_series_with(inputs, "since_refresh")
    fig, ax = plt.subplots(figsize=(9.5, 4.5), layout="constrained")
    if with_axis:
        for claim in with_axis:
            series = claim["series"]
            x_name = next(n for n in sorted(series) if "since_refresh" in n)
            for name in sorted(series):
                if name == x_name or len(series[name]) != len(series[x_name]):
                    continue
                line = "--" if "bound" in name else "-"
                ax.plot(series[x_name], series[name], line, marker=".",
                        label=f"{claim.get('claim_id', '?')}: {name}")
        ax.set_xlabel("steps since refresh")
        ax.set_title("Paired error vs steps since refresh, bound dashed")
        caption = "From proofs_check series; dashed lines are the claimed bounds."
    else:
        drawn = 0
        for r in inputs.bench:
            traj = (r.get("quality") or {}).get("trajectory_paired") if r.get(
                "kind") == "quality" else None
            if traj and traj.get("step") and traj.get("relative_error"):
                colour, marker = style(drawn)
                ax.plot(traj["step"], traj["relative_error"], marker=marker, markersize=3,
                        linewidth=1, color=colour, label=str(r.get("policy")))
                drawn += 1
        if not drawn:
            plt.close(fig)
            raise Skip("no paired-error series (proofs_check *since_refresh* series or bench "
                       "trajectory_paired)")
        ax.set_xlabel("solver step (reverse process)")
        ax.set_title("Paired error to uncached along the reverse process")
        caption = ("Bench trajectory error (same noise as uncached). No proofs_check series "
                   "with a steps-since-refresh axis in the inputs, so no bound is overlaid.")
    ax.set_yscale("log")
    ax.set_ylabel("paired relative error (log)")
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(fontsize=8, loc="outside right center")
    save(fig, path)
    return caption


def claims_bounds(inputs: ReportInputs, path: Path) -> str:
    """Measured quantity and bound per appendix claim (log scale), verdict coloured."""
    rows = [c for c in inputs.claims
            if number(c.get("measured")) is not None and number(c.get("bound")) is not None]
    if not rows:
        raise Skip("no proofs_check claims with a numeric measured value and bound")
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(rows)), constrained_layout=True)
    y = np.arange(len(rows))[::-1]
    positive = [abs(number(c[k])) for c in rows for k in ("measured", "bound")
                if abs(number(c[k])) > 0]
    log = bool(positive) and max(positive) / min(positive) > 20
    floor = min(positive) / 10 if log else 0.0   # where an exact zero is drawn on a log axis
    for yi, claim in zip(y, rows, strict=True):
        colour = VERDICT_COLOURS.get(claim.get("verdict"), "k")
        measured, bound = abs(number(claim["measured"])), abs(number(claim["bound"]))
        shown = max(measured, floor)
        ax.plot([shown, bound], [yi, yi], color="0.7", linewidth=1, zorder=1)
        ax.scatter([shown], [yi], color=colour, s=40, zorder=3,
                   marker="<" if measured < shown else "o")
        ax.scatter([bound], [yi], marker="|", color="k", s=200, zorder=2)
    ax.set_yticks(y, [f"{c.get('claim_id', '?')} ({c.get('verdict', '?')})" for c in rows])
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("value in the claim's own units (dot: measured, bar: bound)")
    ax.set_title("Appendix claims: measured quantity vs bound (dot colour = verdict)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    save(fig, path)
    return ("Green: holds, red: violated, grey: vacuous; a left-pointing triangle is a "
            "measured value of exactly 0 drawn at the axis floor.")


def claims_series(inputs: ReportInputs, path: Path) -> str:
    """One panel per claim with curves (``series``), bounds dashed."""
    claims = [c for c in inputs.claims if c.get("series")]
    if not claims:
        raise Skip("no proofs_check claims with series")
    cols = min(3, len(claims))
    rows = math.ceil(len(claims) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.3 * rows), squeeze=False,
                             constrained_layout=True)
    for ax, claim in zip(axes.flat, claims, strict=False):
        series = {name: np.asarray([number(v) if number(v) is not None else np.nan
                                    for v in values], dtype=float)
                  for name, values in sorted(claim["series"].items())}
        x_name = _x_axis(series)
        curves = {n: v for n, v in series.items() if n != x_name}
        total = len(curves)
        if total > MAX_LEGEND:  # keep E²-CRF's curves (the method judged), else the first
            chosen = [n for n in curves if n.startswith("e2crf_")][:MAX_LEGEND]
            chosen = chosen or list(curves)[:MAX_LEGEND]
            curves = {n: curves[n] for n in chosen}
        for name, values in curves.items():
            x = series[x_name] if x_name and len(series[x_name]) == len(values) else None
            ax.plot(*((x, values) if x is not None else (values,)),
                    "--" if "bound" in name else "-", linewidth=1, label=name,
                    marker="." if len(values) <= 12 else None)
        finite = np.concatenate([v[np.isfinite(v)] for v in curves.values()] or [np.zeros(0)])
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
            ax.set_yscale("log")
        if x_name and series[x_name].min() > 0 and series[x_name].max() / series[
                x_name].min() > 100:
            ax.set_xscale("log")
        shown = f" ({len(curves)} of {total} curves; all in the JSON)" if total > len(curves) \
            else ""
        ax.set_title(f"{claim.get('claim_id', '?')}: {claim.get('verdict', '?')}{shown}",
                     fontsize=9)
        ax.set_xlabel(x_name or "index along the claim's sweep")
        ax.set_ylabel("value (claim units)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(claims):]:
        ax.set_visible(False)
    fig.suptitle("Appendix claims: measured curves (bounds dashed)")
    save(fig, path)
    return "Curves each claim check recorded; x is the check's own sweep index."


MAX_LEGEND = 8
X_NAMES = ("N", "L", "K", "n", "step", "steps", "t", "float_N")


def _x_axis(series: dict[str, np.ndarray]) -> str | None:
    """The series that is the sweep's x axis: one with a conventional name (``X_NAMES``)
    that increases strictly; None (x = index) when there is none. No guessing from the
    values: a strictly increasing measured curve (bytes vs N) is not an axis."""
    for name, values in series.items():
        if name in X_NAMES and values.size > 1 and bool(np.all(np.diff(values) > 0)):
            return name
    return None
