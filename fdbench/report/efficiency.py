"""Cached-step efficiency (``scripts/efficiency.py`` JSON, issue 17) in the report: per
model and batch, E²-CRF's wall speedup against uncached (interleaved rounds, median and
IQR), its FLOP speedup planned and paid, wall / FLOP efficiency and the planned/paid
ratio; then the per-call stage profile (decision, embed, gather, layers, scatter, head,
feedback, record; ``fdbench.cache.step_profile``) of uncached and each profiled policy."""

from __future__ import annotations

from typing import Any

from fdbench.cache.step_profile import STAGES
from fdbench.report.tables import Table, fmt


def _line(result: dict[str, Any], what: str) -> str:
    s = result.get("settings") or {}
    return (f"{what}: threads {result.get('threads', 'n/a')}, torch "
            f"{result.get('torch', 'n/a')}, ragged {s.get('ragged', 'n/a')}, compile "
            f"{s.get('compile', 'n/a')}, device {s.get('device', 'n/a')}; T and rounds per "
            "row (scripts/efficiency.py).")


def _speedup(value: Any, iqr: Any) -> str:
    low, high = (iqr or [None, None])[:2]
    return f"{fmt(value, '.2f')}x ({fmt(low, '.2f')}-{fmt(high, '.2f')})"


def efficiency_tables(results: list[dict[str, Any]]) -> list[Table]:
    """One timing table and one stage-profile table per result file."""
    tables = []
    for result in results:
        rows = []
        records_of = (result.get("timing") or {}).items()
        compiled = any("wall_speedup_vs_compiled" in r for _, records in records_of
                       for r in records)
        for model, records in records_of:
            for r in records:
                low, high = (r.get("wall_speedup_iqr") or [None, None])[:2]
                # --compile: the compiled caches against the compiled uncached sampler
                versus = [] if not compiled else [_speedup(
                    r.get("wall_speedup_vs_compiled"), r.get("wall_speedup_vs_compiled_iqr")),
                    fmt(r.get("efficiency_vs_compiled"), ".2f")]
                rows.append([model, str(r.get("policy")), fmt(r.get("batch"), ".0f"),
                             fmt(r.get("steps"), ".0f"), fmt(r.get("repeats"), ".0f"),
                             f"{fmt(r.get('wall_speedup'), '.2f')}x ({fmt(low, '.2f')}-"
                             f"{fmt(high, '.2f')})",
                             fmt(r.get("flop_speedup_planned"), ".2f", "x"),
                             fmt(r.get("flop_speedup_paid"), ".2f", "x"),
                             fmt(r.get("efficiency"), ".2f"),
                             fmt(r.get("padded_planned_ratio"), ".3f"),
                             fmt(100 * r["decision_share"], ".1f", " %")
                             if r.get("decision_share") is not None else "n/a", *versus])
        if rows:
            extra = ["vs compiled uncached (IQR)", "wall/FLOP vs compiled"] if compiled else []
            tables.append(Table(["model", "policy", "batch", "T", "rounds",
                                 "wall speedup (IQR)", "FLOP planned", "FLOP paid",
                                 "wall/FLOP (paid)", "planned/paid FLOPs",
                                 "decision share", *extra], rows, _line(result, "Timing")))
        profile_rows = []
        for model, profiles in (result.get("profile") or {}).items():
            for p in profiles:
                per_call = p.get("per_call_ms") or {}
                profile_rows.append([model, str(p.get("policy")), fmt(p.get("batch"), ".0f"),
                                     fmt(p.get("n_steps"), ".0f"),
                                     *[fmt(per_call.get(s), ".3f") for s in STAGES],
                                     fmt(p.get("total_ms_per_call"), ".3f")])
        if profile_rows:
            tables.append(Table(["model", "policy", "batch", "T", *STAGES, "total ms"],
                                profile_rows, _line(result, "Stage profile, ms per model "
                                                    "call")))
    return tables
