"""``fdbench tune --all`` results (``tune_all_<target>.json``) in the report: one table per
target, every method at its fastest setting that meets the target, checked on fresh seeds
(docs/TUNE.md), next to the sweep's curves. The rows are ``fdbench.tune.table``'s, so the
report says what ``fdbench tune`` printed."""

from __future__ import annotations

from typing import Any

from fdbench.report.tables import Table


def _settings_line(result: dict[str, Any]) -> str:
    s = result.get("settings") or {}
    return (f"Target `{result.get('target')}` against `{result.get('baseline')}` (uncached); "
            f"search on {s.get('search_samples', 'n/a')} calibration samples, confirmation "
            f"and validation on {s.get('num_samples', 'n/a')} (fresh seeds); batch "
            f"{s.get('batch_size', 'n/a')}, threads {s.get('threads', 'n/a')}; best solver "
            f"at this target: `{result.get('best_solver') or 'none met it'}`.")


def tune_tables(results: list[dict[str, Any]]) -> list[Table]:
    from fdbench.tune.table import row_cells, solver_speedups

    tables = []
    for result in results:
        header = ["method", "tuned spec", "FLOP speedup", "wall speedup (IQR)",
                  f"{result.get('metric')} on fresh seeds +- SE [95 % CI]", "target met"]
        rows = result.get("rows") or []
        solvers = solver_speedups(rows)
        tables.append(Table(header, [row_cells(r, solvers) for r in rows],
                            _settings_line(result)))
    return tables


def tune_findings(results: list[dict[str, Any]]) -> list[str]:
    """Per target: the methods that met it on fresh seeds ranked by FLOP speedup (wall
    beside it), E²-CRF's place among them, those that did not meet it, and the caches on
    the best solver that are faster than it alone at the target."""
    from fdbench.tune.table import solver_speedups  # lazily, as in tune_tables

    lines = []
    for result in results:
        rows = [r for r in result.get("rows") or [] if not r.get("on")]
        met = sorted((r for r in rows if r.get("status") in ("met", "borderline")
                      and (r.get("flop_speedup") or 0) > 1.0),
                     key=lambda r: -r["flop_speedup"])
        if not rows:
            continue
        listed = "; ".join(
            f"{r['method']} {r['flop_speedup']:.2f}x FLOPs"
            + (f" / {r['wall']['speedup']:.2f}x wall" if r.get("wall") else "")
            for r in met)
        missed = [r["method"] for r in rows if r not in met]
        text = (f"**Tuned to {result.get('target')}** (fresh seeds): "
                + (listed if met else "no method met it faster than uncached"))
        names = [r["method"] for r in met]
        if "e2crf" in names:
            text += f". E²-CRF ranks {names.index('e2crf') + 1} of {len(met)} by FLOPs"
        if missed:
            text += f". Not met (or no faster than uncached): {', '.join(missed)}"
        solvers = solver_speedups(result.get("rows") or [])
        on_rows = [r for r in result.get("rows") or [] if r.get("on")]
        if on_rows:
            alone = solvers.get(on_rows[0]["on"])
            adds = sorted((r for r in on_rows if r.get("status") in ("met", "borderline")
                           and alone and (r.get("flop_speedup") or 0) > alone * (1 + 1e-9)),
                          key=lambda r: -r["flop_speedup"])
            text += (f". Caches on {on_rows[0]['on']} (alone "
                     f"{alone:.1f}x FLOPs): " if alone else ". Caches on the best solver: ")
            text += ("; ".join(f"{r['method']} {r['flop_speedup']:.1f}x" for r in adds)
                     + " add speed at the target" if adds else
                     "none adds speed at the target")
        lines.append(text + ".")
    return lines
