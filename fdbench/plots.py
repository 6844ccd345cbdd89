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
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110,
                                              metadata={"Software": None}))
    plt.close(fig)
    return path


def plot_tradeoff(points: list[dict], path: str | os.PathLike, *,
                  uncached_sw: dict) -> Path:
    """Speed/quality trade-off of a sweep: FLOP speedup (log x) against SW (time domain)
    relative to uncached, and against the paired error; the Pareto front is marked."""
    from fdbench.sweep import pareto_front

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    speed = [p["flop_speedup"] for p in points]
    for ax, key, label in ((axes[0], "sw_ratio", "SW (time) / uncached SW"),
                           (axes[1], "paired_mean", "paired relative error to uncached")):
        values = [p[key] for p in points]
        colours = [p["K"] for p in points]
        scatter = ax.scatter(speed, values, c=colours, cmap="viridis", s=36, zorder=3)
        front = sorted(pareto_front(list(zip(speed, values, strict=True))),
                       key=lambda i: speed[i])
        ax.plot([speed[i] for i in front], [values[i] for i in front], color="C3",
                linewidth=1.5, label="Pareto front", zorder=2)
        ax.set_xscale("log")
        ax.set_xlabel("FLOP speedup vs uncached (log scale)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        fig.colorbar(scatter, ax=ax, label="K (low band)")
    band = 2 * uncached_sw["se"] / uncached_sw["value"] if uncached_sw.get("se") else 0.0
    axes[0].axhspan(1 - band, 1 + band, color="grey", alpha=0.2, label="uncached +- 2 SE")
    axes[0].axhline(1.05, color="C1", linestyle="--", linewidth=1, label="+5 %")
    axes[0].legend(loc="upper left")
    axes[1].legend(loc="upper left")
    fig.suptitle("E²-CRF sweep over (K, tau_0, R): speed vs quality")
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110,
                                              metadata={"Software": None}))
    plt.close(fig)
    return path
