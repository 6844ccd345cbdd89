"""The results table ``fdbench bench`` prints: one row per (policy, batch size) of the
timing pass beside the policy's quality row, and per cached run the decision-logic share
and planned vs paid FLOPs."""

from __future__ import annotations

from typing import Any

UNCACHED = "uncached"  # the policy name of the plain sampler


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _discriminative(q: dict[str, Any], key: str = "judges") -> str:
    judges = q.get(key)
    if not judges:
        return "n/a"
    se = judges.get("discriminative_score_se")
    return (f"{judges['discriminative_score']:.3f}"
            + ("" if se is None else f" +- {se:.3f}"))


def format_table(records: list[dict[str, Any]]) -> str:
    """One Markdown table: speed (wall, FLOPs, efficiency) per batch, then quality; the
    discriminative score (0 = indistinguishable from held-out data) beside SW, with the
    real-vs-real floor and the network_off control as rows of their own."""
    quality = {r["policy"]: r["quality"] for r in records if r["kind"] == "quality"}
    timed = {r["policy"] for r in records if r["kind"] == "timing"}
    rows = ["| policy | batch | wall speedup (IQR) | FLOP speedup | wall/FLOP | SW time +- SE "
            "| SW freq +- SE | discriminative | paired error | recompute | cache MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in (r for r in records if r["kind"] == "timing"):
        q = quality.get(r["policy"], {})
        ratio = r["time_ratio"]
        paired = q.get("paired", {}).get("mean") if q.get("paired") else None
        sw, swf = q.get("sw_time", {}), q.get("sw_freq", {})
        rows.append(
            f"| {r['policy']} | {r['batch']} | {1 / ratio['median']:.2f}x "
            f"({1 / ratio['q75']:.2f}-{1 / ratio['q25']:.2f}) | {r['flop_speedup']:.2f}x | "
            f"{r['efficiency']:.2f} | {_fmt(sw.get('value'), '.4f')} +- "
            f"{_fmt(sw.get('se'), '.4f')} | {_fmt(swf.get('value'), '.4f')} +- "
            f"{_fmt(swf.get('se'), '.4f')} | {_discriminative(q)} | {_fmt(paired, '.4f')} | "
            f"{r['cache']['recompute_fraction']:.3f} | {r['cache']['cache_bytes'] / 2**20:.2f} |")
    for name in sorted(set(quality) - timed):  # controls scored but not timed
        q = quality[name]
        paired = q["paired"]["mean"] if q.get("paired") else None
        rows.append(f"| {name} (control) | - | - | - | - | {q['sw_time']['value']:.4f} +- "
                    f"{q['sw_time']['se']:.4f} | {q['sw_freq']['value']:.4f} +- "
                    f"{q['sw_freq']['se']:.4f} | {_discriminative(q)} | {_fmt(paired, '.4f')} "
                    "| - | - |")
    base = quality.get(UNCACHED, {})
    if base.get("judges_real_vs_real"):
        rows.append(f"| real vs real (floor) | - | - | - | - | - | - | "
                    f"{_discriminative(base, 'judges_real_vs_real')} | - | - | - |")
    for r in (r for r in records if r["kind"] == "precision"):
        paired = r["paired_vs_fp32"]
        rows.append(f"\n{r['precision']} autocast vs fp32 (uncached, same noise): paired "
                    f"relative error {paired['mean']:.2e} +- {paired['se']:.1e} "
                    f"(max {paired['max']:.2e}, n={paired['n']})")
    cached = [r for r in records if r["kind"] == "timing" and "planned_flop_speedup" in r["cache"]]
    for i, r in enumerate(cached):   # issue 17: decision-logic share, planned vs paid FLOPs
        c, last = r["cache"], r["seconds"][-1]
        rows.append(("\n" if i == 0 else "") + f"{r['policy']} batch {r['batch']}: decision "
                    f"logic {100 * c['decision_seconds'] / last if last else 0:.1f} % of the "
                    f"cached run; FLOP speedup planned {c['planned_flop_speedup']:.2f}x, paid "
                    f"{r['flop_speedup']:.2f}x (planned/paid FLOPs "
                    f"{c.get('padded_planned_ratio', 1.0):.3f})")
    return "\n".join(rows)
