"""The ``fdbench tune --all`` table (Markdown), its figure (PNG) and JSON record.

One row per method: tuned spec | FLOP speedup | wall speedup (IQR) | quality on fresh
seeds +- SE | target met. "met" means the validation value meets the target and so does
the upper end of its 95 % bootstrap interval; "borderline" the value does, the interval's
upper end does not; "missed" the value on fresh seeds does not; "unmet" no searched
setting met it on the calibration draws (never relaxed). A pick with no FLOP gain (e.g.
an interval of 1) is marked: the target is met only by not caching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fdbench.io import atomic_write_json, atomic_write_text

VERDICTS = {"met": "yes", "borderline": "yes (interval crosses)",
            "missed": "no (fresh seeds)", "unmet": "unmet", "skipped": "n/a"}


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _quality(row: dict[str, Any]) -> str:
    v = row.get("validation")
    if not v:
        return "-"
    se = "" if v.get("se") is None else f" +- {v['se']:.2g}"
    interval = v.get("interval")
    ci = "" if not interval else f" [{interval[0]:.3g}, {interval[1]:.3g}]"
    return f"{v['value']:.4g}{se}{ci}"


def _wall(row: dict[str, Any]) -> str:
    wall = row.get("wall")
    if not wall:
        return "-"
    low, high = wall["iqr"]
    return f"{wall['speedup']:.2f}x ({low:.2f}-{high:.2f})"


def solver_speedups(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Sampler label -> FLOP speedup of its "fewer steps" row (what a cache on that solver
    must beat to add anything)."""
    return {row["label"].split(" @ ")[-1]: row["flop_speedup"] for row in rows
            if row["method"].startswith("fewer_steps:") and row.get("label")
            and row.get("flop_speedup")}


def row_cells(row: dict[str, Any], solvers: dict[str, float] | None = None) -> list[str]:
    """The table's cells; ``solvers`` (:func:`solver_speedups`) lets a cache on a solver be
    marked when it is no faster than that solver alone."""
    spec = row.get("cli") or "-"
    name = row["method"] + (f" @ {row['on']}" if row.get("on") else "")
    note = " (non-monotone)" if row.get("non_monotone") else ""
    met = VERDICTS.get(row["status"], row["status"])
    floor, alone = 1.0, "uncached"
    if row.get("on") and (solvers or {}).get(row["on"]):
        floor, alone = solvers[row["on"]], f"{row['on']} alone"
    if row["status"] in ("met", "borderline") and (row.get("flop_speedup") or 0) <= floor \
            * (1 + 1e-9):
        met += f", but only at a setting no faster than {alone}"
    if row["status"] in ("unmet", "skipped") and row.get("reason"):
        met = f"{met}: {row['reason']}"
    return [name + note, f"`{spec}`" if spec != "-" else spec, _x(row.get("flop_speedup")),
            _wall(row), _quality(row), met]


def format_table(result: dict[str, Any]) -> str:
    """Markdown: the target and settings, then one row per method."""
    header = ["method", "tuned spec", "FLOP speedup", "wall speedup (IQR)",
              f"{result['metric']} on fresh seeds +- SE [95 % CI]", "target met"]
    lines = [f"Target `{result['target']}` against `{result['baseline']}` (uncached); "
             f"search on {result['settings']['search_samples']} calibration samples, "
             f"confirmation on {result['settings']['num_samples']}, validation on "
             f"{result['settings']['num_samples']} fresh ones; batch "
             f"{result['settings']['batch_size']}, {result['settings']['threads']} thread(s).",
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    solvers = solver_speedups(result["rows"])
    lines += ["| " + " | ".join(row_cells(r, solvers)) + " |" for r in result["rows"]]
    if result.get("best_solver"):
        lines += ["", f"Best solver at this target (fewest FLOPs, met on fresh seeds): "
                      f"`{result['best_solver']}`."]
    if result["metric"] == "paired_error":
        lines += ["", "Paired references: a cache against the uncached run of its own "
                      "sampler; fewer solver steps against DPM-Solver++(2M) with the "
                      "baseline's T (the same probability-flow ODE)."]
    return "\n".join(lines) + "\n"


def plot_rows(result: dict[str, Any], path: str | Path) -> Path:
    """Horizontal bars: FLOP speedup per method (grey when the target is not met), the
    wall speedup as a dot with its IQR; log x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r.get("flop_speedup")]
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * max(3, len(rows)) + 1.2))
    for i, row in enumerate(rows):
        ok = row["status"] in ("met", "borderline")
        ax.barh(i, row["flop_speedup"], color="tab:blue" if ok else "0.75",
                hatch="" if row["status"] == "met" else "//", edgecolor="white")
        if row.get("wall"):
            low, high = row["wall"]["iqr"]
            s = row["wall"]["speedup"]
            ax.errorbar(s, i, xerr=[[s - low], [high - s]], fmt="o", color="black", ms=4)
    ax.set_yticks(range(len(rows)),
                  [r["method"] + (f" @ {r['on']}" if r.get("on") else "") for r in rows],
                  fontsize=7)
    ax.set_xscale("log")
    ax.axvline(1.0, color="0.4", lw=0.8)
    ax.set_xlabel("speedup over the uncached baseline (bar: FLOPs, dot: wall, IQR)")
    ax.set_title(f"fdbench tune: {result['target']} (grey: not met, hatched: borderline)",
                 fontsize=9)
    ax.invert_yaxis()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from fdbench.io import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=130, format="png"))
    plt.close(fig)
    return path


def write_outputs(result: dict[str, Any], out_dir: str | Path, stem: str) -> list[Path]:
    """``stem``.json, .md and .png in ``out_dir``."""
    out_dir = Path(out_dir)
    paths = [atomic_write_json(out_dir / f"{stem}.json", result),
             atomic_write_text(out_dir / f"{stem}.md", format_table(result))]
    if any(r.get("flop_speedup") for r in result["rows"]):
        paths.append(plot_rows(result, out_dir / f"{stem}.png"))
    return paths
