"""The report's figures. Each function draws one PNG from :class:`ReportInputs` or raises
:class:`Skip` naming the inputs it lacks; PNGs carry no metadata, so identical inputs
give identical bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from fdbench.report.claim_figures import claims_bounds, claims_series, paired_error
from fdbench.report.figure_style import Skip, save, style
from fdbench.report.inputs import ReportInputs
from fdbench.report.tables import number, paired_mean, sw_ratio_of
from fdbench.sweep import pareto_front


def localisation(inputs: ReportInputs, path: Path) -> str:
    """delta(K) of the report's data sets (computed from the data at report time)."""
    from fdbench.data import DATASETS, load_dataset
    from fdbench.spectral import localisation_curve

    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    drawn, missing = [], []
    names = sorted(DATASETS) if "all" in inputs.datasets else inputs.datasets
    for name in names:
        try:
            series = load_dataset(name).train
        except Exception:  # noqa: BLE001 - an unavailable data set is named in the caption
            missing.append(name)
            continue
        curve = localisation_curve(series).numpy()
        k = np.arange(len(curve))
        ax.semilogy(k / (len(curve) - 1), np.maximum(curve, 1e-12),
                    label=f"{name} (N={series.shape[1]}, K max={len(curve) - 1})")
        drawn.append(name)
    if not drawn:
        plt.close(fig)
        raise Skip(f"none of the data sets {names} could be loaded")
    ax.set_xlabel("low band K / (N//2)  (fraction of frequency bins kept)")
    ax.set_ylabel("delta(K): energy fraction above K (log)")
    ax.set_title("Spectral localisation delta(K) per dataset")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    save(fig, path)
    unloaded = f" Not loadable here: {', '.join(missing)}." if missing else ""
    return ("Fraction of signal energy above the low band K (Lemma A.1's delta(K)), "
            f"training split of: {', '.join(drawn)}.{unloaded}")


def recompute_traces(inputs: ReportInputs, path: Path) -> str:
    """Per-step recompute fraction and event intensity over the reverse process."""
    traces = {p: t for p, t in sorted(inputs.traces.items()) if t.get("executed_fraction")}
    if not traces:
        raise Skip("no per-step cache traces (traces.json) in the inputs")
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True, constrained_layout=True)
    for i, (policy, trace) in enumerate(traces.items()):
        colour = f"C{i % 10}"
        steps = np.arange(len(trace["executed_fraction"]))
        axes[0].plot(steps, trace["executed_fraction"], color=colour, linewidth=1,
                     label=policy)
        intensity = np.asarray(trace.get("event_intensity") or [], dtype=float)
        if intensity.size and np.isfinite(intensity).any():
            axes[1].plot(np.arange(intensity.size), intensity, color=colour, linewidth=1,
                         label=policy)
    axes[0].set_ylabel("recompute fraction\n(units computed / uncached)")
    axes[0].set_ylim(-0.02, 1.05)
    axes[0].set_title("Per-step recompute fraction and event intensity (reverse process)")
    axes[0].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    axes[1].set_ylabel("event intensity r_i\n(relative change, log)")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("solver step (0 = noise, last = data)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    if axes[1].lines:
        axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    save(fig, path)
    return "Per step of one sampling batch: share of the network recomputed; event intensity."


def _points(inputs: ReportInputs) -> list[dict[str, Any]]:
    """Speed/quality points: sweep records and bench policies (FLOP speedup, SW ratio,
    paired error)."""
    points = []
    baseline_sw = next((number(r["sw_time"].get("value")) for r in inputs.sweep
                        if r.get("family") == "baseline" and isinstance(r.get("sw_time"), dict)),
                       None)
    for r in inputs.sweep:
        if r.get("kind") != "sweep" or not number(r.get("flop_speedup")):
            continue
        if "family" in r:   # solver x cache sweep: the caches on the baseline sampler, whose
            if r["family"] != "cache":  # FLOPs and pairs refer to it (the rest: sweep_pareto)
                continue
            sw = number((r.get("sw_time") or {}).get("value"))
            points.append({"label": str(r.get("policy", "?")), "group": "sweep",
                           "speed": r["flop_speedup"],
                           "sw": sw / baseline_sw if sw and baseline_sw else None,
                           "paired": number((r.get("paired") or {}).get("mean"))})
        else:               # the older E²-CRF grid sweep records
            points.append({"label": str(r.get("policy", "?")), "group": "sweep",
                           "speed": r["flop_speedup"], "sw": number(r.get("sw_ratio")),
                           "paired": number(r.get("paired_mean"))})
    uncached_sw = sw_ratio_of(inputs.bench)
    for r in inputs.bench:
        if r.get("kind") != "samples" or not number((r.get("cache") or {}).get("flop_speedup")):
            continue
        policy = r.get("policy")
        points.append({"label": str(policy), "group": "bench",
                       "speed": r["cache"]["flop_speedup"], "sw": uncached_sw.get(policy),
                       "paired": paired_mean(inputs.bench, policy)})
    return points


def pareto(inputs: ReportInputs, path: Path) -> str:
    """FLOP speedup against SW ratio and paired error, with the Pareto front marked."""
    points = _points(inputs)
    if not points:
        raise Skip("no sweep or bench records with a FLOP speedup")
    policies = list(dict.fromkeys(p["label"] for p in points if p["group"] == "bench"))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    for ax, key, label in ((axes[0], "sw", "SW (time) / uncached SW"),
                           (axes[1], "paired", "paired relative error to uncached")):
        usable = [p for p in points if p[key] is not None]
        sweep_points = [p for p in usable if p["group"] == "sweep"]
        if sweep_points:
            ax.scatter([p["speed"] for p in sweep_points], [p[key] for p in sweep_points],
                       s=30, color="0.55", zorder=3, label="sweep point")
        # one colour/marker per bench policy and a legend, not text labels: policies
        # often sit on top of each other and labels would overlap
        for i, name in enumerate(policies):
            chosen = [p for p in usable if p["group"] == "bench" and p["label"] == name]
            if chosen:
                colour, marker = style(i)
                ax.scatter([p["speed"] for p in chosen], [p[key] for p in chosen], s=46,
                           marker=marker, color=colour, zorder=4, label=name,
                           edgecolors="k", linewidths=0.4)
        front = sorted(pareto_front([(p["speed"], p[key]) for p in usable]),
                       key=lambda i: usable[i]["speed"])
        if front:
            ax.plot([usable[i]["speed"] for i in front], [usable[i][key] for i in front],
                    color="C3", linewidth=1.5, label="Pareto front", zorder=2)
        ax.set_xscale("log")
        ax.set_xlabel("FLOP speedup vs uncached (x, log scale)")
        ax.set_ylabel(f"{label} (lower is better)")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    axes[0].axhline(1.0, color="grey", linestyle=":", linewidth=1)
    fig.suptitle("Speed vs quality: every cached configuration (front = not dominated)")
    save(fig, path)
    return "FLOP speedup against quality; the red line joins the non-dominated points."


def _sweep_records(inputs: ReportInputs) -> list[dict[str, Any]]:
    records = [r for r in inputs.sweep if r.get("kind") == "sweep" and "family" in r
               and r["family"] != "control" and number(r.get("wall_speedup"))]
    if not records:
        raise Skip("no solver x cache sweep records (fdbench bench --sweep)")
    return records


def sweep_pareto(inputs: ReportInputs, path: Path) -> str:
    """Wall-clock speedup over 1000-step EM against SW for every solver, cache and
    cache-on-solver point of ``fdbench bench --sweep``, the front joined."""
    from fdbench.plots import plot_pareto

    plot_pareto(_sweep_records(inputs), path)
    return ("Wall-clock speedup over reverse EM with T = 1000 (measured against re-timed "
            "baseline runs) against SW to held-out data; error bars are bootstrap SE; the "
            "dashed line is the baseline SW + 5 %.")


def sweep_pareto_realism(inputs: ReportInputs, path: Path) -> str:
    """The sweep's wall-clock speedup against the discriminative score (realism)."""
    from fdbench.plots import plot_pareto

    records = [r for r in _sweep_records(inputs) if r.get("judges")]
    if not records:
        raise Skip("the sweep records carry no judges (run it with --judge-repeats >= 1)")
    plot_pareto(records, path, quality="discriminative")
    return ("Realism: wall-clock speedup over reverse EM with T = 1000 against the "
            "discriminative score to held-out data (0 = indistinguishable), +- SE over "
            "repeats; dashed: the baseline's score + 2 of its SE (a point is counted as "
            "matching the baseline within 2 SE of the difference).")


def sweep_pareto_fidelity(inputs: ReportInputs, path: Path) -> str:
    """The sweep's caches: wall-clock speedup against the paired error (fidelity)."""
    from fdbench.plots import plot_pareto

    records = [r for r in _sweep_records(inputs) if (r.get("paired") or {}).get("mean")
               is not None]
    if not records:
        raise Skip("no sweep record has a paired error (no cache points)")
    plot_pareto(records, path, quality="paired")
    return ("Fidelity: each cache's wall-clock speedup against its paired error to the "
            "same solver uncached under the same noise (caches on EM T = 1000 and on the "
            "best solver).")


def _curves(file: str, what: str) -> Callable[[ReportInputs, Path], str]:
    """The report figure ``file`` of ``fdbench.plots.CURVE_FILES`` (``what`` it shows)."""
    def draw(inputs: ReportInputs, path: Path) -> str:
        from fdbench.plots import CURVE_FILES, curve_caption, curve_series, plot_curves

        options = CURVE_FILES[file]
        records = [r for r in inputs.sweep if r.get("kind") == "sweep" and "family" in r]
        if not curve_series(records, options.get("methods"), options.get("exclude", ())):
            raise Skip(f"no record of {what} on the baseline sampler with a paired error")
        plot_curves(records, path, **options)
        return curve_caption(what)
    return draw


def samples(inputs: ReportInputs, path: Path) -> str:
    """Held-out vs generated (uncached and cached) series and their spectral densities,
    from the first run directory that has samples."""
    import torch

    from fdbench.data import load_dataset
    from fdbench.spectral import bin_energy

    run = next((r for r in inputs.runs if (Path(r["dir"]) / "samples.npy").is_file()), None)
    if run is None:
        raise Skip("no run directory with samples.npy")
    meta = run.get("checkpoint_meta") or {}
    try:
        real = load_dataset(str(meta.get("data", "ecg")),
                            seed=int(meta.get("data_seed", 0))).test
    except Exception as err:  # noqa: BLE001 - the figure is skipped with the reason
        raise Skip(f"held-out data {meta.get('data')!r} unavailable: {err}") from None
    sets = [("held-out (real)", real, "C0")]
    for name, label, colour in (("samples.npy", "generated, uncached", "C1"),
                                ("samples_cached.npy", "generated, cached", "C2")):
        file = Path(run["dir"]) / name
        if file.is_file():
            sets.append((label, torch.from_numpy(np.load(file)), colour))
    low = min(float(s[..., 0].min()) for _, s, _ in sets)
    high = max(float(s[..., 0].max()) for _, s, _ in sets)
    margin = 0.05 * (high - low or 1.0)
    fig, axes = plt.subplots(1, len(sets) + 1, figsize=(4 * (len(sets) + 1), 3.8),
                             constrained_layout=True)
    for ax, (label, series, colour) in zip(axes, sets, strict=False):
        shown = series[:16, :, 0].T.numpy()
        ax.plot(shown, color=colour, alpha=0.4, linewidth=0.8)
        ax.set_title(f"{label}\n{shown.shape[1]} of {series.shape[0]}", fontsize=10)
        ax.set_xlabel("time step")
        ax.set_ylabel("value (channel 0, data units)")
        ax.set_ylim(low - margin, high + margin)
    for label, series, colour in sets:
        energy = bin_energy(series.to(torch.float64)).mean(0).numpy()
        axes[-1].semilogy(energy, color=colour, label=label, linewidth=1)
    axes[-1].set_title("mean energy per frequency bin", fontsize=10)
    axes[-1].set_xlabel("frequency bin k")
    axes[-1].set_ylabel("|c_k|^2 (log scale)")
    axes[-1].legend(fontsize=8)
    fig.suptitle(f"Real vs generated samples ({_label_run(run)})")
    save(fig, path)
    return "First 16 series of each set; right: spectral density (mean |c_k|^2) of each set."


def _label_run(run: dict[str, Any]) -> str:
    settings = run.get("settings") or {}
    return f"{settings.get('n_steps', '?')}-step sampler, seed {settings.get('seed', '?')}"


FIGURES = (
    ("localisation.png", "Spectral localisation", localisation),
    ("recompute.png", "Recompute fraction and event intensity", recompute_traces),
    ("pareto.png", "Speed vs quality", pareto),
    ("sweep_pareto.png", "Solvers and caches vs 1000-step EM (wall clock)", sweep_pareto),
    ("sweep_realism.png", "Solvers and caches: realism (discriminative score)",
     sweep_pareto_realism),
    ("sweep_fidelity.png", "Caches: fidelity (paired error)", sweep_pareto_fidelity),
    ("sweep_curves.png", "Caches as curves: speedup vs paired error",
     _curves("sweep_curves.png", "every cache method but E²-CRF's ablations")),
    ("sweep_ablation.png", "E²-CRF ablations as curves: speedup vs paired error",
     _curves("sweep_ablation.png", "E²-CRF and its ablations (Liu et al. 2026, Table 3)")),
    ("paired_error.png", "Paired error and bound", paired_error),
    ("claims_bounds.png", "Claims: measured vs bound", claims_bounds),
    ("claims_series.png", "Claims: curves", claims_series),
    ("samples.png", "Real vs generated samples", samples),
)
