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


FAMILY_STYLE = {"baseline": ("black", "*"), "solver": ("tab:blue", "o"),
                "cache": ("tab:orange", "s"), "cache+solver": ("tab:green", "D")}


def plot_pareto(records: list[dict], path: str | os.PathLike, *,
                sw_tolerance: float = 0.05) -> Path:
    """Wall-clock speedup over 1000-step EM (log x) against SW (time domain) +- SE, one
    colour per family (solver alone, cache on EM, cache on the best solver), the
    non-dominated front joined and labelled."""
    from fdbench.sweep import pareto_front

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for family, (colour, marker) in FAMILY_STYLE.items():
        rows = [r for r in records if r["family"] == family]
        if rows:
            ax.errorbar([r["wall_speedup"] for r in rows], [r["sw_time"]["value"] for r in rows],
                        yerr=[r["sw_time"]["se"] or 0.0 for r in rows], fmt=marker,
                        color=colour, label=family, markersize=5, capsize=2, alpha=0.8)
    xy = [(r["wall_speedup"], r["sw_time"]["value"]) for r in records]
    front = sorted(pareto_front(xy), key=lambda i: xy[i][0])
    ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], "-", color="grey",
            lw=1, label="Pareto front", zorder=0)
    for i in front:
        ax.annotate(records[i]["policy"], xy[i], textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    baseline = [r for r in records if r["family"] == "baseline"]
    if baseline:
        sw = baseline[0]["sw_time"]["value"]
        ax.axhline(sw * (1 + sw_tolerance), color="red", ls="--", lw=0.8,
                   label=f"baseline SW + {sw_tolerance:.0%}")
    ax.set_xscale("log")
    ax.set_xlabel("wall-clock speedup over reverse EM, T = 1000 (x, log scale)")
    ax.set_ylabel("sliced Wasserstein to held-out data (time domain)")
    ax.set_title("Speed vs quality: solvers, caches, and caches on the best solver")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)
