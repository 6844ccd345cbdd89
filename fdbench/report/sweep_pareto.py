"""The speed/quality figures of the sweep (sweep_pareto.png, sweep_realism.png,
sweep_fidelity.png and the sweep's own sweep.png): wall-clock speedup against a quality
axis, uncached solvers and caches in two panels so neither legend grows past ~12 entries
and every colour is named (issue 15: "23 legend entries with repeated colours")."""

from __future__ import annotations

from collections.abc import Collection

import matplotlib.pyplot as plt

from fdbench.plots import FAMILY_MARKERS, QUALITY_AXES, distinct_colours, log_ticks, quality_of
from fdbench.sweep_points import ABLATION_FIGURE, CACHE_POINTS

# E²-CRF's ablations and fdbench 0.1's reading share one legend entry in the speed/quality
# figures (each has its own curve in sweep_ablation.png): 13 methods would not fit a legend
GROUPED = tuple(m for m in ABLATION_FIGURE if m != "e2crf")
GROUP_LABEL = "E²-CRF ablations, 0.1 reading (sweep_ablation.png)"


def method_of(record: dict) -> str:
    """The cache method of a sweep (or bench) record."""
    return str(record.get("method") or str(record.get("cache") or record.get("policy", "?"))
               .partition(":")[0])


def legend_key(record: dict) -> str:
    """Legend entry (and colour) of a sweep point: the solver for uncached points, the
    cache method otherwise (the same on every solver), E²-CRF's ablations as one group."""
    if record["family"] in ("baseline", "solver"):
        return f"{record['solver']} ({record['grid']})"
    method = method_of(record)
    return GROUP_LABEL if method in GROUPED else method


def method_colours(keys: Collection[str]) -> dict[str, tuple[float, ...]]:
    """A fixed colour per cache method (``CACHE_POINTS`` order, so a method keeps its
    colour in every figure), then the ablation group, then unknown keys."""
    known = [m for m in CACHE_POINTS if m not in GROUPED] + [GROUP_LABEL]
    order = known + sorted(k for k in keys if k not in known)
    return dict(zip(order, distinct_colours(len(order)), strict=True))


def pareto_figure(records: list[dict], *, sw_tolerance: float = 0.05, clip_factor: float = 1.5,
                  quality: str = "sw_time") -> plt.Figure:
    """Wall-clock speedup over the baseline (log x) against a quality axis +- SE
    (``QUALITY_AXES``). Two panels: uncached solvers (one colour and line per solver, T
    falling to the right) and caches (marker s on the baseline sampler, D on the best
    solver; one colour per method, E²-CRF's ablations grouped); the baseline (star) and
    its tolerance line in both. The non-dominated front over every point is numbered in
    the panel of each point and listed under the plot. Points above ``clip_factor`` x the
    baseline's value are drawn on the top edge as triangles (values in the sweep table).
    Records without the axis (no judges; no uncached pair) are left out."""
    from fdbench.sweep import pareto_front

    reference = next((r for r in records if r["family"] == "baseline"), None)   # for labels
    records = [r for r in records if quality_of(r, quality) is not None]
    if not records:
        raise ValueError(f"no sweep record has the quality axis {quality!r}")
    baseline = next((r for r in records if r["family"] == "baseline"), None)
    base = quality_of(baseline, quality) if baseline else None
    values = [quality_of(r, quality)[0] for r in records]
    top = base[0] * clip_factor if base and base[0] else max(values)
    if base and quality == "discriminative":   # keep the baseline's 2 SE line inside
        top = max(top, 1.2 * (base[0] + 2 * base[1]))
    top = max(top, 1e-12)
    panels = [(name, [r for r in records if r["family"] in families]) for name, families in
              (("uncached solvers, fewer steps", ("solver",)),
               ("caches (s: on the baseline sampler, D: on the best solver)",
                ("cache", "cache+solver")))]
    panels = [(name, rows) for name, rows in panels if rows]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(7 * max(1, len(panels)), 6.4),
                             squeeze=False, sharey=True)
    xy = [(r["wall_speedup"], min(v, top)) for r, v in zip(records, values, strict=True)]
    front = sorted(pareto_front([(r["wall_speedup"], v) for r, v in zip(records, values,
                                                                         strict=True)]),
                   key=lambda i: xy[i][0])
    number_of = {i: n for n, i in enumerate(front, start=1)}
    for ax, (name, rows) in zip(axes[0], panels or [("", [])], strict=True):
        solvers = rows and rows[0]["family"] == "solver"
        keys = list(dict.fromkeys(legend_key(r) for r in rows))
        colours = (dict(zip(keys, distinct_colours(len(keys)), strict=True)) if solvers
                   else method_colours(keys))
        for key in keys:
            chosen = sorted((r for r in rows if legend_key(r) == key),
                            key=lambda r: r["wall_speedup"])
            for family in dict.fromkeys(r["family"] for r in chosen):
                part = [r for r in chosen if r["family"] == family]
                inside = [r for r in part if quality_of(r, quality)[0] <= top]
                above = [r for r in part if quality_of(r, quality)[0] > top]
                label = key if family == chosen[0]["family"] else None   # once per key
                if inside:
                    ax.errorbar([r["wall_speedup"] for r in inside],
                                [quality_of(r, quality)[0] for r in inside],
                                yerr=[quality_of(r, quality)[1] for r in inside],
                                fmt=FAMILY_MARKERS[family] + ("-" if solvers else ""),
                                color=colours[key], markersize=6, capsize=2, alpha=0.9,
                                linewidth=0.8, label=label,
                                markerfacecolor="none" if key == GROUP_LABEL else colours[key])
                    label = None
                if above:
                    ax.plot([r["wall_speedup"] for r in above], [top] * len(above), "^",
                            color=colours[key], markersize=7, label=label)
            if solvers:   # a solver's line runs from T = 1000 (left) to its fewest steps
                fastest = chosen[-1]
                ax.annotate(f"T={fastest['n_steps']}", (fastest["wall_speedup"],
                            min(quality_of(fastest, quality)[0], top)),
                            textcoords="offset points", xytext=(4, -10), fontsize=7,
                            color=colours[key])
        if baseline:   # in every panel, named in the first one's legend only
            first = ax is axes[0][0]
            ax.plot([baseline["wall_speedup"]], [min(base[0], top)], "*", color="black",
                    markersize=11, zorder=5, label=f"baseline: {legend_key(baseline)} "
                    f"T={baseline['n_steps']}" if first else None)
            if quality == "sw_time":
                ax.axhline(base[0] * (1 + sw_tolerance), color="red", ls="--", lw=0.8,
                           label=f"baseline SW + {sw_tolerance:.0%}" if first else None)
            elif quality == "discriminative":
                ax.axhline(base[0] + 2 * base[1], color="red", ls="--", lw=0.8,
                           label="baseline + 2 SE(baseline)" if first else None)
        here = {id(r) for r in rows} | {id(baseline)}
        mine = [i for i in front if id(records[i]) in here]
        if mine:
            ax.plot([xy[i][0] for i in mine], [xy[i][1] for i in mine], "-", color="0.3",
                    lw=1, label="Pareto front (numbered)", zorder=0)
            for i in mine:
                ax.annotate(str(number_of[i]), xy[i], textcoords="offset points",
                            xytext=(5, 5 if number_of[i] % 2 else -11), fontsize=8,
                            weight="bold")
        ax.set_xscale("log")
        log_ticks(ax.xaxis)
        ax.set_xlabel(f"wall-clock speedup over {legend_key(reference) if reference else '?'} "
                      f"T = {reference['n_steps'] if reference else '?'} (x, log scale)")
        ax.set_title(name, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2)
    positive = [v for v in values if v > 0]
    if quality == "paired" and positive and max(positive) / min(positive) > 20:
        axes[0][0].set_yscale("log")   # errors span decades: a linear axis hides the small
        log_ticks(axes[0][0].yaxis)
    else:
        axes[0][0].set_ylim(top=top * 1.02)
        if quality != "sw_time":   # both start at a meaningful 0 (indistinguishable, exact)
            axes[0][0].set_ylim(bottom=0.0)
    axes[0][0].set_ylabel(QUALITY_AXES[quality])
    fig.suptitle("Speed against quality" + (f"; ^ = above {clip_factor:g}x the baseline "
                 "(value in the sweep table)" if base else ""), fontsize=11)
    listing = "; ".join(f"{number_of[i]} = {records[i]['policy']}" for i in front)
    fig.text(0.01, 0.01, "front: " + listing, fontsize=7, wrap=True, va="bottom")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


