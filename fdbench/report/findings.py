"""The report's Findings: the headline statements, each computed from the inputs.

Nothing here is typed in: every sentence is built from run, sweep and proofs_check
records, and a statement whose evidence is missing is left out. The rules:

* **model fit** — does the discriminative score separate the model from ``network_off``
  by more than 2 SE of the gap (``fdbench.judges.separation``)? If not, every other
  finding is flagged as not evidence;
* **sweep fit** — the same test on the sweep's own baseline and ``network_off`` record
  (a sweep of another checkpoint than the run's is judged on its own); without a control
  record, or not separated, the sweep's findings are flagged as not evidence;
* **fast solvers** — the fewest score evaluations whose discriminative score is within
  2 SE of 1000-step EM's and separated from the control (``fdbench.sweep.best_solver``),
  and SW beside it. "Within 2 SE" means only that the judge found no difference;
* **caches** — per method, its fastest sweep point (wall clock) that the judge cannot
  tell from the baseline (and that is separated from the control); E²-CRF's place among
  them; caches on top of the best solver: at the baseline's quality, faster than that
  solver alone?
* **solver study** — the same rules on ``scripts/solver_study.py``'s points (judged at
  fdbench run's size, cost in evaluations and FLOPs: :mod:`fdbench.report.solver_study`);
* **tune** — per target, the methods that met it on fresh seeds, fastest first
  (:mod:`fdbench.report.tune_tables`);
* **claims** — which appendix claims hold, are violated or vacuous.
"""

from __future__ import annotations

from typing import Any

from fdbench.judges import separation
from fdbench.report.inputs import ReportInputs
from fdbench.report.solver_study import solver_study_findings
from fdbench.report.tables import fmt, number
from fdbench.report.tune_tables import tune_findings

JUDGE = "discriminative_score"


def _disc(judges: dict[str, Any] | None) -> str:
    if not judges:
        return "n/a"
    se = judges.get(f"{JUDGE}_se")
    return fmt(judges.get(JUDGE), ".3f") + ("" if se is None else f" +- {fmt(se, '.3f')}")


def _model_fit(inputs: ReportInputs) -> tuple[list[str], bool]:
    lines, fit_all = [], True
    for r in inputs.runs:
        fit = r.get("model_fit")
        if not fit:
            continue
        judges = r.get("judges") or {}
        data = (r.get("checkpoint_meta") or {}).get("data", "?")
        verdict = ("the network matters" if fit.get("separated")
                   else "NOT separated: the findings below are not evidence")
        fit_all &= bool(fit.get("separated"))
        lines.append(
            f"**Model ({data}).** Discriminative score (0 = indistinguishable from held-out "
            f"data, 0.5 = always told apart): model {_disc(judges.get('generated'))}, "
            f"network_off {_disc(judges.get('network_off'))}, real vs real "
            f"{_disc(judges.get('real_vs_real'))}: {verdict}. SW (time) "
            f"{fmt((judges.get('generated') or {}).get('sw_time'), '.4f')} against real vs "
            f"real {fmt((judges.get('real_vs_real') or {}).get('sw_time'), '.4f')} and "
            f"network_off {fmt((judges.get('network_off') or {}).get('sw_time'), '.4f')}; "
            f"memorisation ratio "
            f"{fmt((judges.get('generated') or {}).get('memorisation_ratio'), '.2f')} "
            "(<< 1 would mean copying).")
        c = r.get("cache_comparison") or {}
        if c and judges.get("cached"):
            lines.append(
                f"**E²-CRF in the main job.** {fmt(c.get('wall_speedup'), '.2f')}x wall at "
                f"{fmt(c.get('flop_speedup'), '.2f')}x FLOPs, paired error "
                f"{fmt((c.get('paired_error') or {}).get('mean'), '.4f')}; discriminative "
                f"score {_disc(judges.get('cached'))} against uncached "
                f"{_disc(judges.get('generated'))}.")
    return lines, fit_all


def _sweep(inputs: ReportInputs) -> list[str]:
    records = [r for r in inputs.sweep if r.get("kind") == "sweep" and "family" in r]
    baseline = next((r for r in records if r["family"] == "baseline"), None)
    if baseline is None or not baseline.get("judges"):
        return []
    from fdbench.sweep import best_solver, matches_baseline  # the sweep's own rules

    control = next((r for r in records if r["family"] == "control"), None)
    if control is None or not control.get("judges"):
        lines = ["*(The sweep has no network_off record with judges: its findings are not "
                 "evidence.)*"]
    else:
        fit = separation(baseline["judges"], control["judges"])
        lines = [] if fit["separated"] and fit["gap_se"] is not None else [
            f"*(Sweep baseline {_disc(baseline['judges'])} vs its network_off "
            f"{_disc(control['judges'])}: not separated by 2 SE, so its findings are not "
            "evidence.)*"]
    base_sw = number((baseline.get("sw_time") or {}).get("value"))
    best = best_solver(records, base_sw or 0.0, baseline, control)
    if best is not None:
        matches = matches_baseline(best, baseline, control)
        lines.append(
            f"**Fewer solver steps.** {best['policy']} ({best['evaluations']} score "
            f"evaluations, {fmt(best.get('wall_speedup'), '.1f')}x wall) "
            + ("matches" if matches else "is the best solver point but does not match")
            + f" 1000-step EM by the discriminative score ({_disc(best.get('judges'))} vs "
            f"{_disc(baseline.get('judges'))}); SW {fmt(best['sw_time'].get('value'), '.4f')}"
            f" vs {fmt(base_sw, '.4f')}.")
    per_method: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["family"] == "cache" and matches_baseline(r, baseline, control):
            method = str(r.get("method"))
            if number(r.get("wall_speedup")) and (
                    method not in per_method
                    or r["wall_speedup"] > per_method[method]["wall_speedup"]):
                per_method[method] = r
    if per_method:
        ranked = sorted(per_method.values(), key=lambda r: -r["wall_speedup"])
        listed = "; ".join(
            f"{r['method']} {fmt(r['wall_speedup'], '.2f')}x wall / "
            f"{fmt(r.get('flop_speedup'), '.2f')}x FLOPs (paired error "
            f"{fmt((r.get('paired') or {}).get('mean'), '.4f')})" for r in ranked)
        lines.append("**Caches on 1000-step EM**, each at its fastest point the judge cannot "
                     f"tell from uncached: {listed}.")
        if "e2crf" not in per_method:
            lines.append("No E²-CRF point is within the judge's error bars of uncached.")
        else:
            place = [r["method"] for r in ranked].index("e2crf") + 1
            lines.append(f"E²-CRF ranks {place} of {len(ranked)} by wall speedup at that "
                         "quality.")
    composites = [r for r in records if r["family"] == "cache+solver"]
    if best is not None and composites:
        better = [r for r in composites if matches_baseline(r, baseline, control)
                  and number(r.get("wall_speedup")) and r["wall_speedup"] > best["wall_speedup"]]
        lines.append(
            f"**Caches on top of {best['policy']}:** "
            + (", ".join(f"{r['method']} {fmt(r['wall_speedup'], '.1f')}x" for r in better)
               + " add speed at the baseline's quality." if better else
               "none adds speed at the baseline's quality (by the discriminative score)."))
    return lines


def _claims(inputs: ReportInputs) -> list[str]:
    if not inputs.claims:
        return []
    by_verdict: dict[str, list[str]] = {}
    for c in inputs.claims:
        by_verdict.setdefault(str(c.get("verdict", "?")), []).append(str(c.get("claim_id")))
    parts = [f"{verdict}: {', '.join(ids)}" for verdict, ids in sorted(by_verdict.items())]
    return ["**Appendix claims (proofs_check).** " + "; ".join(parts) + "."]


def findings(inputs: ReportInputs) -> list[str]:
    """The Findings paragraphs, in order: model fit, solvers and caches, claims."""
    lines, fit_all = _model_fit(inputs)
    sweep = [*_sweep(inputs), *tune_findings(inputs.tune),
             *solver_study_findings(inputs.solver_study)]
    if sweep and not fit_all:
        sweep = ["*(On a model not separated from network_off: not evidence.)*", *sweep]
    return [*lines, *sweep, *_claims(inputs)]
