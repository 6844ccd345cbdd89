"""Figures for run directories: real vs generated series and their spectra (PNG, with
matplotlib metadata stripped so the bytes are reproducible)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from fdbench.io import atomic_write  # noqa: E402
from fdbench.spectral import bin_energy  # noqa: E402


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
    palette = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors
    keys = list(dict.fromkeys(_colour_key(r) for r in records))
    fig, ax = plt.subplots(figsize=(11, 6.5))
    for name in series:
        rows = [r for r in records if _series_of(r) == name]
        for family in dict.fromkeys(r["family"] for r in rows):
            chosen = [r for r in rows if r["family"] == family]
            inside = [r for r in chosen if quality_of(r, quality)[0] <= top]
            colour = ("black" if family == "baseline" else
                      palette[keys.index(_colour_key(chosen[0])) % len(palette)])
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
