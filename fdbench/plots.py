"""Figures for run and sweep directories: real vs generated series and their spectra, the
sweep's speed/quality front and its per-method curves (PNG, with matplotlib metadata
stripped so the bytes are reproducible)."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
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


def log_ticks(axis: Any) -> None:
    """Log-axis ticks at 1, 2, 5 x 10^k written as plain numbers, no minor labels (the
    default '2 x 10^0' minor labels collide)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_pareto(records: list[dict], path: str | os.PathLike, *,
                sw_tolerance: float = 0.05, clip_factor: float = 1.5,
                quality: str = "sw_time") -> Path:
    """Write :func:`fdbench.report.sweep_pareto.pareto_figure` (same options) as a PNG:
    wall-clock speedup against a quality axis, solvers and caches side by side."""
    from fdbench.report.sweep_pareto import pareto_figure

    return _save(pareto_figure(records, sw_tolerance=sw_tolerance, clip_factor=clip_factor,
                               quality=quality), path)


def distinct_colours(n: int) -> list[tuple[float, ...]]:
    """``n`` pairwise different colours: tab10 without its grey (grey reads as "not
    labelled"), then the dark shades of tab20b, else ``n`` hues evenly spaced, so no two
    methods ever share one."""
    curated = [*(c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7),
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
    return (f"{what[0].upper()}{what[1:]}: the higher a method's curve at a given paired "
            "error (left: wall clock, right: FLOPs, dashed = planned FLOPs where padding "
            "differs), the better it trades fidelity for speed; each curve runs from its "
            "mildest setting (ringed) to its most aggressive, dash-dotted is network_off's "
            "error.")


def plot_sweep_curves(records: list[dict], out_dir: str | os.PathLike) -> list[Path]:
    """Write ``CURVE_FILES`` into ``out_dir``: every method but E²-CRF's ablations, and
    E²-CRF with its ablations; a figure without a curve (a sweep of solvers only) is not
    written."""
    written = []
    for file, options in CURVE_FILES.items():
        if curve_series(records, options.get("methods"), options.get("exclude", ())):
            written.append(plot_curves(records, Path(out_dir) / file, **options))
    return written
