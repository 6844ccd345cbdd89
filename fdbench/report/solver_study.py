"""The solver study (``scripts/solver_study.py``, ``solver_study.jsonl``) in the report: few-step
solvers and caches on top of the best of them, every point judged at 256 samples with
5 classifier repeats and no wall clock (cost = score evaluations and FLOPs, which are
exact). Its findings follow the sweep's rules (``fdbench.sweep.best_solver`` and
``matches_baseline``: "matches" means the judge found no difference within 2 SE and the
point is separated from ``network_off``)."""

from __future__ import annotations

import math
from typing import Any

from fdbench.report.tables import Table, fmt, number

JUDGE = "discriminative_score"
FILE = "solver_study.jsonl"


def _disc(judges: dict[str, Any] | None) -> str:
    if not judges or judges.get(JUDGE) is None:
        return "n/a"
    return f"{fmt(judges.get(JUDGE), '.3f')} +- {fmt(judges.get(f'{JUDGE}_se'), '.3f')}"


def _as_sweep(record: dict[str, Any]) -> dict[str, Any]:
    """The record in the sweep's shape (``policy``), so the sweep's rules apply."""
    return {**record, "policy": record.get("label")}


def settings_line(records: list[dict[str, Any]]) -> str:
    s = next((r.get("settings") for r in records if r.get("settings")), None) or {}
    return (f"Settings: {s.get('n_samples', 'n/a')} samples, batch {s.get('batch_size', 'n/a')}"
            f", seed {s.get('seed', 'n/a')}, {s.get('judge_repeats', 'n/a')} judge repeats; "
            f"T and solver per row ({FILE}).")


def solver_study_table(records: list[dict[str, Any]]) -> Table:
    header = ["point", "family", "NFE", "FLOP speedup", "discriminative +- SE", "predictive",
              "SW time", "marginal W time", "memorisation", "paired error",
              "separated from network_off"]
    rows = []
    for r in records:
        j = r.get("judges") or {}
        sep = r.get("separation") or {}
        rows.append([
            str(r.get("label")), str(r.get("family")), fmt(r.get("evaluations"), ".0f"),
            fmt(r.get("flop_speedup"), ".2f", "x") if r.get("flop_speedup") is not None
            else "-", _disc(j), fmt(j.get("predictive_score"), ".4f"),
            fmt(j.get("sw_time"), ".4f"), fmt(j.get("marginal_w_time"), ".4f"),
            fmt(j.get("memorisation_ratio"), ".3f"),
            "-" if r.get("paired_error") is None else fmt(r.get("paired_error"), ".4f"),
            "-" if not sep else ("yes" if sep.get("separated") else "no")])
    return Table(header, rows, settings_line(records))


def solver_study_findings(records: list[dict[str, Any]]) -> list[str]:
    """The study's headline statements, computed from its records (none without a judged
    baseline)."""
    from fdbench.sweep import best_solver, matches_baseline  # the sweep's own rules

    points = [_as_sweep(r) for r in records if r.get("family")]
    baseline = next((r for r in points if r["family"] == "baseline"), None)
    if baseline is None or not baseline.get("judges"):
        return []
    control = next((r for r in points if r["family"] == "control"), None)
    n = (baseline.get("settings") or {}).get("n_samples", "?")
    lines = []
    solvers = [r for r in points if r["family"] == "solver" and r.get("judges")]
    best = best_solver(solvers, 0.0, baseline, control) if solvers else None
    if best is not None:
        matching = sorted({r["solver"] for r in solvers
                           if matches_baseline(r, baseline, control)})
        failing = [r for r in solvers if not matches_baseline(r, baseline, control)]
        verdict = "matches" if matches_baseline(best, baseline, control) else \
            "is the best solver point but does not match"
        lines.append(
            f"**Few-step solvers, judged at {n} samples.** {best['label']} "
            f"({best['evaluations']} score evaluations) {verdict} 1000-step EM by the "
            f"discriminative score ({_disc(best['judges'])} vs {_disc(baseline['judges'])}"
            f"; network_off {_disc((control or {}).get('judges'))}). Solvers with a "
            f"matching point: {', '.join(matching) or 'none'}; points that do not match: "
            + (", ".join(f"{r['label']} ({_disc(r['judges'])})" for r in failing)
               or "none") + ".")
    composites = [r for r in points if r["family"] == "cache+solver" and r.get("judges")]
    if best is not None and composites:
        kept = [r for r in composites if matches_baseline(r, baseline, control)]
        paired = [x for x in (number(r.get("paired_error")) for r in composites)
                  if x is not None]
        span = (f"paired error to the uncached {best['label']} samples "
                f"{min(paired):.3f}-{max(paired):.3f}; " if paired else "")
        base_se = baseline["judges"].get(f"{JUDGE}_se") or 0.0
        resolution = sorted(2 * math.hypot(r["judges"].get(f"{JUDGE}_se") or 0.0, base_se)
                            for r in composites)[len(composites) // 2]
        span += f"the judge's resolution (2 SE of a difference) is ~{resolution:.2f}; "
        lines.append(
            f"**Caches on top of {best['label']}** ({len(composites)} points): {span}"
            + (f"{len(kept)} keep the baseline's quality by the judge, the fastest "
               + max(kept, key=lambda r: number(r.get("flop_speedup")) or 0.0)["label"]
               + f" at {fmt(max(number(r.get('flop_speedup')) or 0.0 for r in kept), '.0f')}"
               "x FLOPs against 1000-step EM" if kept else
               "none keeps the baseline's quality by the discriminative score")
            + f" (the solver alone: {fmt(best.get('flop_speedup'), '.0f')}x).")
    return lines
