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
    from fdbench.tune.table import row_cells

    tables = []
    for result in results:
        header = ["method", "tuned spec", "FLOP speedup", "wall speedup (IQR)",
                  f"{result.get('metric')} on fresh seeds +- SE [95 % CI]", "target met"]
        tables.append(Table(header, [row_cells(r) for r in result.get("rows") or []],
                            _settings_line(result)))
    return tables
