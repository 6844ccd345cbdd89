"""The report's figures of the appendix claims (paired error and its bound, measured vs
bound per claim, each claim's measured curves); drawn like :mod:`fdbench.report.figures`,
sharing :mod:`fdbench.report.figure_style`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from fdbench.report.figure_style import VERDICT_COLOURS, Skip, save, style
from fdbench.report.inputs import ReportInputs
from fdbench.report.tables import fmt, number


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
        caption = ("Where a solid error curve rises above its dashed bound, the bound fails "
                   "at that many steps since the last refresh.")
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
        caption = ("The lower a policy's curve, the closer its trajectory stays to uncached "
                   "under the same noise (no proofs_check bound in the inputs to overlay).")
    ax.set_yscale("log")
    ax.set_ylabel("paired relative error (log)")
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(fontsize=8, loc="outside right center")
    save(fig, path)
    return caption


def _reading_rows(inputs: ReportInputs) -> list[dict[str, Any]]:
    """One row per numeric reading of every claim (old-format claims: the claim's own
    measured value and bound), deciding reading and identities marked."""
    rows = []
    for c in inputs.claims:
        values = c.get("reading_values") or {}
        readings = c.get("readings") or {}
        pairs = [(name, values.get(name), readings.get(name, "?")) for name in readings
                 if name in values] or [(None, (c.get("measured"), c.get("bound")),
                                         c.get("verdict", "?"))]
        for name, pair, verdict in pairs:
            measured, bound = (list(pair or ()) + [None, None])[:2]
            if number(measured) is None or number(bound) is None:
                continue
            rows.append({"claim": str(c.get("claim_id", "?")), "reading": name,
                         "verdict": str(verdict), "measured": number(measured),
                         "bound": number(bound), "decides": name is None
                         or name == c.get("decided_by"),
                         "identity": name in (c.get("identities") or ())})
    return rows


def claims_bounds(inputs: ReportInputs, path: Path) -> str:
    """Measured value and bound of every reading of every appendix claim (log scale),
    coloured by the reading's verdict; the reading that decided its claim in bold,
    identities hollow; the numbers written beside each row."""
    rows = _reading_rows(inputs)
    if not rows:
        raise Skip("no proofs_check claims with a numeric measured value and bound")
    fig, ax = plt.subplots(figsize=(11, 1.4 + 0.3 * len(rows)), layout="constrained")
    y = np.arange(len(rows))[::-1]
    positive = [abs(r[k]) for r in rows for k in ("measured", "bound") if abs(r[k]) > 0]
    log = bool(positive) and max(positive) / min(positive) > 20
    floor = min(positive) / 10 if log else 0.0   # where 0 (or a negative) is drawn on log x
    for yi, r in zip(y, rows, strict=True):
        colour = VERDICT_COLOURS.get(r["verdict"], "k")
        measured, bound = r["measured"], r["bound"]
        shown = measured if measured > floor or not log else floor
        ax.plot([shown, max(bound, floor)], [yi, yi], color="0.75", linewidth=1, zorder=1)
        ax.scatter([shown], [yi], s=42, zorder=3, marker="o" if shown == measured else "<",
                   facecolors="none" if r["identity"] else colour, edgecolors=colour)
        ax.scatter([max(bound, floor)], [yi], marker="|", color="k", s=160, zorder=2)
        ax.annotate(f"{fmt(measured)} vs {fmt(bound)}", (1.0, yi), xycoords=("axes fraction",
                    "data"), xytext=(4, 0), textcoords="offset points", va="center",
                    fontsize=7, color=colour)
    labels = [f"{r['claim']}: {(r['reading'] or 'as recorded')[:60]}"
              + (" [identity]" if r["identity"] else "") for r in rows]
    ax.set_yticks(y, labels, fontsize=7)
    for tick, r in zip(ax.get_yticklabels(), rows, strict=True):
        tick.set_fontweight("bold" if r["decides"] else "normal")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("value in the reading's own units (dot: measured, bar: bound)")
    ax.set_title("Appendix claims: every reading's measured value vs its bound "
                 "(bold = the reading that decided the claim)", fontsize=10)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    save(fig, path)
    return ("Each row is one reading: a dot on the wrong side of its bar (green holds, red "
            "violated, grey vacuous) fails it; bold rows decided their claim, hollow dots "
            "are identities, < marks a measured 0 or negative value at the axis floor.")
