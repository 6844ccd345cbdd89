"""The report's figures. Each function draws one PNG from :class:`ReportInputs` or raises
:class:`Skip` naming the inputs it lacks; PNGs carry no metadata, so identical inputs
give identical bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from fdbench.report.claim_figures import claims_bounds, paired_error
from fdbench.report.claim_series import claims_series
from fdbench.report.figure_style import Skip, save
from fdbench.report.inputs import ReportInputs
from fdbench.report.tables import number, paired_mean, sw_ratio_of
from fdbench.sweep import pareto_front

FLOOR = 1e-12   # delta(K) below this is rounding (delta(N//2) is exactly 0): not drawn


def localisation(inputs: ReportInputs, path: Path) -> str:
    """delta(K) of the report's data sets (computed from the data at report time); values
    below ``FLOOR`` are left out (a log axis would draw them as a drop to the clip value)
    and the first K where a curve falls below it is marked on the floor."""
    from fdbench.data import DATASETS, load_dataset
    from fdbench.plots import distinct_colours
    from fdbench.spectral import localisation_curve

    fig, ax = plt.subplots(figsize=(8.5, 4.6), layout="constrained")
    drawn, missing = [], []
    names = sorted(DATASETS) if "all" in inputs.datasets else inputs.datasets
    colours = distinct_colours(len(names))
    for i, name in enumerate(names):
        try:
            series = load_dataset(name).train
        except Exception:  # noqa: BLE001 - an unavailable data set is named in the caption
            missing.append(name)
            continue
        curve = localisation_curve(series).numpy().astype(float)
        x = np.arange(len(curve)) / (len(curve) - 1)
        below = np.flatnonzero(curve < FLOOR)
        shown = np.where(curve >= FLOOR, curve, np.nan)
        ax.semilogy(x, shown, color=colours[i], linestyle=("-", "--", "-.", ":")[i % 4],
                    linewidth=1.4, label=f"{name} (N={series.shape[1]})")
        if below.size:
            ax.plot(x[below[0]], FLOOR, "v", color=colours[i], markersize=6)
        drawn.append(name)
    if not drawn:
        plt.close(fig)
        raise Skip(f"none of the data sets {names} could be loaded")
    ax.axvline(0.2, color="black", linestyle=":", linewidth=1)
    ax.axhline(0.1, color="black", linestyle=":", linewidth=1)
    ax.annotate("K = N/10, delta = 0.1 (Lemma A.1)", (0.2, 0.1), textcoords="offset points",
                xytext=(4, 4), fontsize=8)
    ax.set_ylim(bottom=FLOOR / 3)
    ax.set_xlabel("low band K / (N//2)  (fraction of frequency bins kept)")
    ax.set_ylabel("delta(K): energy fraction above K (log)")
    ax.set_title("Spectral localisation delta(K) per dataset (v: below 1e-12 from here on)")
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="outside right center", fontsize=8)
    save(fig, path)
    unloaded = f" Not loadable here: {', '.join(missing)}." if missing else ""
    return ("The lower a curve left of K = N/10, the less energy a low-band cache leaves out "
            "(Lemma A.1 asks delta <= 0.1 there); v marks where delta falls below 1e-12 "
            f"(left out). Training splits of {', '.join(drawn)}.{unloaded}")


def recompute_traces(inputs: ReportInputs, path: Path) -> str:
    """Per-step recompute fraction and event intensity over the reverse process."""
    traces = {p: t for p, t in sorted(inputs.traces.items()) if t.get("executed_fraction")}
    if not traces:
        raise Skip("no per-step cache traces (traces.json) in the inputs")
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True, constrained_layout=True)
    for i, (policy, trace) in enumerate(traces.items()):
        colour = f"C{i % 10}"
        executed = np.asarray(trace["executed_fraction"], dtype=float)
        steps = np.arange(executed.size)
        axes[0].plot(steps, executed, color=colour, linewidth=0.5, alpha=0.35)
        # the refresh period makes the raw line a solid band: its moving mean reads
        window = max(1, executed.size // 50)
        mean = np.convolve(executed, np.ones(window) / window, mode="valid")
        axes[0].plot(steps[window - 1:], mean, color=colour, linewidth=1.8,
                     label=f"{policy} (moving mean of {window})")
        intensity = np.asarray(trace.get("event_intensity") or [], dtype=float)
        if intensity.size and np.isfinite(intensity).any():
            axes[1].plot(np.arange(intensity.size), intensity, color=colour, linewidth=0.5,
                         alpha=0.35)
            w = max(1, intensity.size // 50)
            filled = np.where(np.isfinite(intensity), intensity, np.nan)
            axes[1].plot(np.arange(w - 1, intensity.size),
                         np.convolve(filled, np.ones(w) / w, mode="valid"), color=colour,
                         linewidth=1.8, label=f"{policy} (moving mean of {w})")
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
    return ("The lower the recompute line (bold: moving mean), the less of the network a "
            "step runs; spikes to 1 are full refreshes; event intensity (bottom) is what "
            "triggers recomputation.")


def _points(inputs: ReportInputs) -> list[dict[str, Any]]:
    """Speed/quality points: sweep cache records and bench policies (FLOP speedup, SW
    ratio, paired error), each with its legend key (the method)."""
    from fdbench.report.sweep_pareto import GROUP_LABEL, GROUPED, legend_key

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
                           "key": legend_key(r), "speed": r["flop_speedup"],
                           "sw": sw / baseline_sw if sw and baseline_sw else None,
                           "paired": number((r.get("paired") or {}).get("mean"))})
        else:               # the older E²-CRF grid sweep records
            method = str(r.get("method") or str(r.get("policy", "?")).partition(":")[0])
            points.append({"label": str(r.get("policy", "?")), "group": "sweep",
                           "key": GROUP_LABEL if method in GROUPED else method,
                           "speed": r["flop_speedup"], "sw": number(r.get("sw_ratio")),
                           "paired": number(r.get("paired_mean"))})
    uncached_sw = sw_ratio_of(inputs.bench)
    for r in inputs.bench:
        if r.get("kind") != "samples" or not number((r.get("cache") or {}).get("flop_speedup")):
            continue
        policy = str(r.get("policy"))
        points.append({"label": policy, "group": "bench",
                       "key": GROUP_LABEL if policy in GROUPED else policy,
                       "speed": r["cache"]["flop_speedup"], "sw": uncached_sw.get(policy),
                       "paired": paired_mean(inputs.bench, policy)})
    return points


GROUP_MARKERS = {"sweep": ("s", "sweep cache point (bench --sweep)"),
                 "bench": ("o", "bench policy (fdbench bench)")}


def pareto(inputs: ReportInputs, path: Path) -> str:
    """FLOP speedup against SW ratio and paired error, one colour per method, the
    non-dominated front joined (and in the legend only where it is drawn)."""
    from fdbench.plots import log_ticks
    from fdbench.report.sweep_pareto import GROUP_LABEL, method_colours

    points = _points(inputs)
    if not points:
        raise Skip("no sweep or bench records with a FLOP speedup")
    colours = method_colours({p["key"] for p in points})
    keys = [k for k in colours if any(p["key"] == k for p in points)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.0), layout="constrained")
    legend: dict[str, Any] = {}   # method entries first, then the reference marks
    extras: dict[str, Any] = {}
    for ax, key, label in ((axes[0], "sw", "SW (time) / uncached SW"),
                           (axes[1], "paired", "paired relative error to uncached")):
        usable = [p for p in points if p[key] is not None]
        for name in keys:
            for group, (marker, _) in GROUP_MARKERS.items():
                chosen = [p for p in usable if p["key"] == name and p["group"] == group]
                if chosen:
                    hollow = name == GROUP_LABEL   # the ablations: secondary here
                    handle = ax.scatter([p["speed"] for p in chosen], [p[key] for p in chosen],
                                        s=40, marker=marker, zorder=4,
                                        facecolors="none" if hollow else colours[name],
                                        edgecolors=colours[name] if hollow else "k",
                                        linewidths=1.2 if hollow else 0.4)
                    legend.setdefault(name, handle)
        front = sorted(pareto_front([(p["speed"], p[key]) for p in usable]),
                       key=lambda i: usable[i]["speed"])
        if len(front) > 1:
            (line,) = ax.plot([usable[i]["speed"] for i in front],
                              [usable[i][key] for i in front], color="black", linewidth=1.2,
                              zorder=2)
            extras.setdefault("Pareto front (not dominated)", line)
        ax.set_xscale("log")
        log_ticks(ax.xaxis)
        ax.set_xlabel("FLOP speedup vs uncached (x, log scale)")
        ax.set_ylabel(f"{label} (lower is better)")
        ax.grid(True, which="both", alpha=0.3)
    groups = {p["group"] for p in points}
    if len(groups) > 1:   # the marker says where a point comes from
        for group in sorted(groups):
            marker, text = GROUP_MARKERS[group]
            extras[text] = Line2D([], [], marker=marker, color="0.2", linestyle="none")
    if any(p["sw"] is not None for p in points):
        axes[0].axhline(1.0, color="black", linestyle=":", linewidth=1)
        extras["SW ratio 1 (uncached)"] = axes[0].get_lines()[-1]
    legend.update(extras)
    fig.legend(list(legend.values()), list(legend), loc="outside right center", fontsize=8)
    fig.suptitle("Speed vs quality of every cached configuration (FLOP count)")
    save(fig, path)
    return ("Read along x: the further right at the same height, the fewer FLOPs for that "
            "quality; points on the black front are not beaten on both axes by another.")


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
    return ("A point at or below the dashed line (baseline SW + 5 %) is as close to the "
            "held-out data as 1000-step EM by SW, and the further right the faster it is "
            "(left: solvers at fewer steps, right: caches; numbered: the front).")


def sweep_pareto_realism(inputs: ReportInputs, path: Path) -> str:
    """The sweep's wall-clock speedup against the discriminative score (realism)."""
    from fdbench.plots import plot_pareto

    records = [r for r in _sweep_records(inputs) if r.get("judges")]
    if not records:
        raise Skip("the sweep records carry no judges (run it with --judge-repeats >= 1)")
    plot_pareto(_sweep_records(inputs), path, quality="discriminative")
    return ("A point at or below the dashed line (baseline + 2 SE) is one the "
            "discriminative score cannot tell from 1000-step EM; the further right, the "
            "faster (0 = indistinguishable from held-out data).")


def sweep_pareto_fidelity(inputs: ReportInputs, path: Path) -> str:
    """The sweep's caches: wall-clock speedup against the paired error (fidelity)."""
    from fdbench.plots import plot_pareto

    records = [r for r in _sweep_records(inputs) if (r.get("paired") or {}).get("mean")
               is not None]
    if not records:
        raise Skip("no sweep record has a paired error (no cache points)")
    plot_pareto(_sweep_records(inputs), path, quality="paired")   # the baseline names x
    return ("The lower a cache at a given speedup, the closer its samples stay to the same "
            "sampler uncached under the same noise; the numbered front is the best trade.")


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

    from fdbench.data import dataset_for_checkpoint
    from fdbench.spectral import bin_energy

    run = next((r for r in inputs.runs if (Path(r["dir"]) / "samples.npy").is_file()), None)
    if run is None:
        raise Skip("no run directory with samples.npy")
    meta = run.get("checkpoint_meta") or {}
    try:
        real = dataset_for_checkpoint({"data": "ecg", **meta}).test
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
    return ("Generated series (middle) should look like the held-out ones (left) and their "
            "mean spectrum (right) follow the held-out curve; 16 series of each set shown.")


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
