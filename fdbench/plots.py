"""Figures for run and sweep directories: real vs generated series and their spectra, the
sweep's speed/quality front and its per-method curves (PNG, with matplotlib metadata
stripped so the bytes are reproducible)."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
from torch import Tensor  # noqa: E402

from fdbench.io import atomic_write  # noqa: E402
from fdbench.spectral import bin_energy  # noqa: E402
from fdbench.sweep_points import (  # noqa: E402
    ABLATION_FIGURE,
    ABLATIONS,
    CACHE_POINTS,
    setting_key,
)


def plot_real_vs_generated(real: Tensor, generated: Tensor, path: str | os.PathLike, *,
                           title: str, n_show: int = 24, channel: int = 0,
                           seed: int = 0) -> Path:
    """Three panels: ``n_show`` held-out series, ``n_show`` generated ones (same axes), and
    the mean per-bin energy of both on a log scale."""
    generator = torch.Generator().manual_seed(seed)
    pick_real = torch.randperm(real.shape[0], generator=generator)[:n_show]
    pick_gen = torch.randperm(generated.shape[0], generator=generator)[:n_show]
    low = float(torch.minimum(real[..., channel].min(), generated[..., channel].min()))
    high = float(torch.maximum(real[..., channel].max(), generated[..., channel].max()))
    margin = 0.05 * (high - low or 1.0)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    for ax, series, label, colour in ((axes[0], real[pick_real], "held-out (real)", "C0"),
                                      (axes[1], generated[pick_gen], "generated", "C1")):
        ax.plot(series[..., channel].T.numpy(), color=colour, alpha=0.35, linewidth=0.8)
        ax.set_title(f"{label}, {len(series)} of {len(real if colour == 'C0' else generated)}")
        ax.set_xlabel("time step")
        ax.set_ylabel(f"value (channel {channel})")
        ax.set_ylim(low - margin, high + margin)
    for series, label, colour in ((real, "held-out (real)", "C0"), (generated, "generated", "C1")):
        energy = bin_energy(series.to(torch.float64)).mean(0)
        axes[2].semilogy(energy.numpy(), color=colour, label=label)
    axes[2].set_title("mean energy per frequency bin")
    axes[2].set_xlabel("frequency bin k")
    axes[2].set_ylabel("|c_k|^2 (log scale)")
    axes[2].legend()
    fig.suptitle(title)
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | os.PathLike) -> Path:
    """Write the figure atomically as PNG without the metadata that changes per run."""
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110,
                                              metadata={"Software": None}))
    plt.close(fig)
    return path


FAMILY_MARKERS = {"baseline": "*", "solver": "o", "cache": "s", "cache+solver": "D"}


def _series_of(record: dict) -> str:
    """Legend entry of a sweep point: the solver for uncached points, the cache method
    (and, on top of a fast solver, that solver) otherwise."""
    if record["family"] in ("baseline", "solver"):
        return f"{record['solver']} ({record['grid']})"
    method = record.get("method") or str(record.get("cache", "?")).partition(":")[0]
    return method if record["family"] == "cache" else f"{method} on {record['solver']}"


def _colour_key(record: dict) -> str:
    if record["family"] in ("baseline", "solver"):
        return record["solver"]
    return record.get("method") or str(record.get("cache", "?")).partition(":")[0]


QUALITY_AXES = {
    "sw_time": "sliced Wasserstein to held-out data (time domain)",
    "discriminative": "discriminative score vs held-out data (0 = indistinguishable)",
    "paired": "paired error to the same solver uncached, same noise (fidelity)",
}


def quality_of(record: dict, quality: str) -> tuple[float, float] | None:
    """(value, SE) of a sweep record on a quality axis, None where the record lacks it."""
    if quality == "sw_time":
        stat = record.get("sw_time") or {}
        value, se = stat.get("value"), stat.get("se")
    elif quality == "discriminative":
        judges = record.get("judges") or {}
        value, se = judges.get("discriminative_score"), judges.get("discriminative_score_se")
    elif quality == "paired":
        stat = record.get("paired") or {}
        value, se = stat.get("mean"), stat.get("se")
    else:
        raise ValueError(f"unknown quality axis {quality!r}; known: {sorted(QUALITY_AXES)}")
    return None if value is None else (float(value), float(se or 0.0))


def plot_pareto(records: list[dict], path: str | os.PathLike, *,
                sw_tolerance: float = 0.05, clip_factor: float = 1.5,
                quality: str = "sw_time") -> Path:
    """Wall-clock speedup over the baseline (log x) against a quality axis +- SE
    (``QUALITY_AXES``: SW, the discriminative score, the paired error); marker = family
    (solver alone, cache on the baseline sampler, cache on the best solver), colour =
    solver or method; the non-dominated front joined and numbered (the numbers are listed
    under the plot). Points above ``clip_factor`` x the baseline's value (SW, judge) are
    drawn on the top edge as triangles (their values are in the sweep table), so they do
    not squash the rest. Records without the axis (no judges; no uncached pair) are left
    out."""
    from fdbench.sweep import pareto_front

    records = [r for r in records if quality_of(r, quality) is not None]
    if not records:
        raise ValueError(f"no sweep record has the quality axis {quality!r}")
    baseline = next((r for r in records if r["family"] == "baseline"), None)
    values = [quality_of(r, quality)[0] for r in records]
    base_value = quality_of(baseline, quality)[0] if baseline else None
    top = base_value * clip_factor if base_value else max(values)
    if baseline and quality == "discriminative":   # keep the baseline's 2 SE line inside
        top = max(top, 1.2 * (base_value + 2 * quality_of(baseline, quality)[1]))
    top = max(top, 1e-12)
    series = list(dict.fromkeys(_series_of(r) for r in records))
    # one colour per solver or cache method: a method keeps its colour on every solver
    keys = list(dict.fromkeys(_colour_key(r) for r in records))
    palette = distinct_colours(len(keys))   # the sweep has ~20 solvers and methods
    fig, ax = plt.subplots(figsize=(11, 6.5))
    for name in series:
        rows = [r for r in records if _series_of(r) == name]
        for family in dict.fromkeys(r["family"] for r in rows):
            chosen = [r for r in rows if r["family"] == family]
            inside = [r for r in chosen if quality_of(r, quality)[0] <= top]
            colour = ("black" if family == "baseline" else
                      palette[keys.index(_colour_key(chosen[0]))])
            if inside:
                ax.errorbar([r["wall_speedup"] for r in inside],
                            [quality_of(r, quality)[0] for r in inside],
                            yerr=[quality_of(r, quality)[1] for r in inside],
                            fmt=FAMILY_MARKERS[family], color=colour, markersize=6,
                            capsize=2, alpha=0.85, label=name if family != "baseline"
                            else f"baseline: {name} T={chosen[0]['n_steps']}")
            for r in chosen:   # values in the sweep table: labels here would overlap
                if quality_of(r, quality)[0] > top:
                    ax.plot(r["wall_speedup"], top, "^", color=colour, markersize=7)
    xy = [(r["wall_speedup"], v) for r, v in zip(records, values, strict=True)]
    front = sorted(pareto_front(xy), key=lambda i: xy[i][0])
    ax.plot([xy[i][0] for i in front], [min(xy[i][1], top) for i in front], "-", color="grey",
            lw=1, label="Pareto front", zorder=0)
    for number, i in enumerate(front, start=1):
        ax.annotate(str(number), (xy[i][0], min(xy[i][1], top)), textcoords="offset points",
                    xytext=(5, 5 if number % 2 else -11), fontsize=8, weight="bold")
    if baseline and quality == "sw_time":
        ax.axhline(base_value * (1 + sw_tolerance), color="red", ls="--",
                   lw=0.8, label=f"baseline SW + {sw_tolerance:.0%}")
    elif baseline and quality == "discriminative":
        se = quality_of(baseline, quality)[1]
        ax.axhline(base_value + 2 * se, color="red", ls="--", lw=0.8,
                   label="baseline + 2 SE(baseline)")
    ax.set_ylim(top=top * 1.02)
    if quality != "sw_time":   # both start at a meaningful 0 (indistinguishable, exact)
        ax.set_ylim(bottom=0.0)
    ax.set_xscale("log")
    ax.set_xlabel(f"wall-clock speedup over {_series_of(baseline) if baseline else 'baseline'}"
                  f" T = {baseline['n_steps'] if baseline else '?'} (x, log scale)")
    ax.set_ylabel(QUALITY_AXES[quality])
    ax.set_title("o solvers, s caches on EM, D caches on the best solver; "
                 f"^ above {clip_factor:g}x the baseline", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    listing = "; ".join(f"{n} = {records[i]['policy']}" for n, i in enumerate(front, start=1))
    fig.text(0.01, 0.01, "front: " + listing, fontsize=7, wrap=True, va="bottom")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(fig, path)


def distinct_colours(n: int) -> list[tuple[float, ...]]:
    """``n`` pairwise different colours: tab10 then the dark shades of tab20b (20), else
    ``n`` hues evenly spaced, so no two methods ever share one."""
    curated = [*plt.get_cmap("tab10").colors,
               *(plt.get_cmap("tab20b").colors[i] for i in range(0, 20, 2))]
    if n <= len(curated):
        return [tuple(c) for c in curated[:n]]
    return [tuple(plt.get_cmap("hsv")(i / n)[:3]) for i in range(n)]


CURVE_MARKERS = "osD^vP*Xh<>p"


class CurvePoint(NamedTuple):
    """One operating point of a cache method on its curve."""

    paired_error: float
    wall_speedup: float
    flop_speedup: float | None           # executed FLOPs (token caches: padded)
    planned_flop_speedup: float | None   # no padding; None in records that predate it
    spec: str


def _spec_of(record: dict) -> str:
    return str(record.get("cache") or str(record.get("policy", "?")).partition(" @ ")[0])


def curve_series(records: list[dict], methods: Collection[str] | None = None,
                 exclude: Collection[str] = ()) -> dict[str, list[CurvePoint]]:
    """Per cache method (``methods``, else every one not in ``exclude``), its operating
    points on the baseline sampler (family ``cache``) in order of setting, mild to
    aggressive (``setting_key``). Records without a paired error (the baseline, solvers at
    other T) or a wall speedup are left out, and so are caches on the best solver (one
    point each, paired with another sampler). Methods in ``CACHE_POINTS`` order first."""
    grouped: dict[str, list[tuple[tuple, CurvePoint]]] = {}
    for r in records:
        paired = (r.get("paired") or {}).get("mean")
        if r.get("family") != "cache" or paired is None or r.get("wall_speedup") is None:
            continue
        spec = _spec_of(r)
        method = r.get("method") or spec.partition(":")[0]
        if (methods is not None and method not in methods) or method in exclude:
            continue
        point = CurvePoint(float(paired), float(r["wall_speedup"]), r.get("flop_speedup"),
                           r.get("planned_flop_speedup"), spec)
        grouped.setdefault(method, []).append((setting_key(spec), point))
    order = [m for m in CACHE_POINTS if m in grouped] + [m for m in grouped
                                                         if m not in CACHE_POINTS]
    return {m: [p for _, p in sorted(grouped[m], key=lambda kp: kp[0])] for m in order}


def _pads(points: list[CurvePoint]) -> bool:
    """Whether planned and executed FLOPs differ anywhere (a token cache padding sets)."""
    return any(p.planned_flop_speedup is not None and p.flop_speedup is not None
               and abs(p.planned_flop_speedup - p.flop_speedup) > 1e-9 * p.flop_speedup
               for p in points)


def curve_figure(records: list[dict], *, methods: Collection[str] | None = None,
                 exclude: Collection[str] = (), title: str = "") -> plt.Figure:
    """Two panels, wall-clock and FLOP speedup against paired error: one line per method
    through its operating points (``curve_series``), in setting order, so a method whose
    error is not monotone in its setting shows as a fold; token caches that pad also a
    dashed line of planned FLOPs. Reference marks: speedup 1 (the uncached baseline, whose
    paired error is 0) and the network_off control's paired error. Log x when the errors
    span more than a decade (an error of 0 is then drawn at the left edge)."""
    series = curve_series(records, methods, exclude)
    if not series:
        raise ValueError("no cache record on the baseline sampler with a paired error")
    control = next(((r.get("paired") or {}).get("mean") for r in records
                    if r.get("family") == "control"
                    and (r.get("paired") or {}).get("mean") is not None), None)
    known = list(dict.fromkeys([*CACHE_POINTS, *series]))   # a method keeps its colour
    colours = distinct_colours(len(known))
    errors = [p.paired_error for line in series.values() for p in line]
    errors += [] if control is None else [control]
    positive = [e for e in errors if e > 0]
    log_x = bool(positive) and max(positive) / min(positive) > 10
    floor = min(positive) / 2 if log_x else 0.0
    fig, (wall, flop) = plt.subplots(1, 2, figsize=(13, 5.2), sharex=True,
                                     layout="constrained")
    for method, points in series.items():
        i = known.index(method)
        style = {"color": colours[i], "marker": CURVE_MARKERS[i % len(CURVE_MARKERS)],
                 "markersize": 5, "linewidth": 1.3}
        x = [max(p.paired_error, floor) for p in points]
        wall.plot(x, [p.wall_speedup for p in points], label=method, gid=f"{method}:wall",
                  **style)
        # a ring on the mildest setting tells which way the curve runs
        mild = {**style, "markersize": 11, "markerfacecolor": "none", "linestyle": "none"}
        wall.plot(x[:1], [points[0].wall_speedup], **mild)
        executed = [(xi, p.flop_speedup) for xi, p in zip(x, points, strict=True)
                    if p.flop_speedup is not None]
        if executed:
            flop.plot(*zip(*executed, strict=True), gid=f"{method}:executed", **style)
            if points[0].flop_speedup is not None:
                flop.plot(x[:1], [points[0].flop_speedup], **mild)
        if _pads(points):
            planned = [(xi, p.planned_flop_speedup) for xi, p in zip(x, points, strict=True)
                       if p.planned_flop_speedup is not None]
            flop.plot(*zip(*planned, strict=True), gid=f"{method}:planned", linestyle="--",
                      **{**style, "markerfacecolor": "none"})
    points = [p for line in series.values() for p in line]
    wall_values = [p.wall_speedup for p in points]
    flop_values = [v for p in points for v in (p.flop_speedup, p.planned_flop_speedup)
                   if v is not None]
    for ax, name, values in ((wall, "wall-clock", wall_values), (flop, "FLOP", flop_values)):
        ax.axhline(1.0, color="black", linestyle=":", linewidth=1,
                   label="uncached baseline (speedup 1, paired error 0)")
        if control is not None:
            ax.axvline(max(control, floor), color="0.4", linestyle="-.", linewidth=1,
                       label="network_off control's paired error")
        if log_x:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())   # minor labels collide
        speeds = [1.0, *values]   # the reference line at 1 is always in view
        if max(speeds) / max(min(speeds), 1e-12) > 10:
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("paired error to the uncached run, same solver and noise"
                      + (" (log)" if log_x else ""))
        ax.set_ylabel(f"{name} speedup over the uncached baseline (x)")
        ax.set_title(f"{name} speedup vs paired error (up and left is better)", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    key = [Line2D([], [], color="black", linestyle="-", label="executed FLOPs (padded)"),
           Line2D([], [], color="black", linestyle="--", label="planned FLOPs (no padding)"),
           Line2D([], [], color="black", marker="o", markersize=9, markerfacecolor="none",
                  linestyle="none", label="mildest setting of a curve"),
           *[line for line in flop.get_lines() if not line.get_label().startswith("_")]]
    fig.legend(handles=[line for line in wall.get_lines() if line.get_gid()],
               loc="outside right center", fontsize=8, title="method")
    fig.legend(handles=key, fontsize=7, loc="outside lower center", ncols=len(key))
    if log_x and any(e == 0 for e in errors):
        fig.text(0.01, 0.01, "paired error 0 drawn at the left edge", fontsize=7)
    fig.suptitle(title or "Speedup against paired error, one curve per method")
    return fig


def plot_curves(records: list[dict], path: str | os.PathLike, **options) -> Path:
    """Write :func:`curve_figure` (same options) as a PNG."""
    return _save(curve_figure(records, **options), path)


CURVE_FILES = {
    "sweep_curves.png": {"exclude": ABLATIONS,
                         "title": "Cache methods: speedup against paired error"},
    "sweep_ablation.png": {"methods": ABLATION_FIGURE,
                           "title": "E²-CRF and its ablations: speedup against paired error"},
}


def curve_caption(what: str) -> str:
    """How to read a curve figure showing ``what`` (the report's caption)."""
    return (f"{what[0].upper()}{what[1:]}: each method's operating points on the baseline "
            "sampler, joined in order of its setting from mild (ringed) to aggressive (a "
            "fold: the error is not monotone in the setting). Left: wall-clock speedup; "
            "right: FLOP speedup, solid = executed FLOPs (a token cache's per-sample "
            "recompute sets padded to the batch's largest), dashed = planned FLOPs (each "
            "sample its own set; drawn where they differ). Against the paired error to the "
            "uncached run with the same noise: up and left is better. Dotted: the uncached "
            "baseline (speedup 1, paired error 0); dash-dotted: the network_off control's "
            "paired error. Left out: points without a paired error (the baseline, solvers "
            "at other T) and caches on the best solver (one point each; in the fidelity "
            "figure).")


def plot_sweep_curves(records: list[dict], out_dir: str | os.PathLike) -> list[Path]:
    """Write ``CURVE_FILES`` into ``out_dir``: every method but E²-CRF's ablations, and
    E²-CRF with its ablations; a figure without a curve (a sweep of solvers only) is not
    written."""
    written = []
    for file, options in CURVE_FILES.items():
        if curve_series(records, options.get("methods"), options.get("exclude", ())):
            written.append(plot_curves(records, Path(out_dir) / file, **options))
    return written
