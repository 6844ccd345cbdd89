"""The settings every report table states: T, solver, grid, sample count, batch, threads
and mode, read per row from the record it was built from (issue 15: a table that does not
say its settings lets results of different settings be read as one).

A value the input does not hold is shown as ``n/a (<file> lacks it)``, naming the file, so
a reader can tell "not recorded" from "not applicable" (``mode`` is quick/full, a setting
of ``proofs_check`` only). Rows that agree on a setting share one line above the table;
settings that differ between rows go into a ``settings`` column."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

KEYS = ("T", "solver", "grid", "samples", "batch", "threads", "mode")
LABELS = {"T": "T", "solver": "solver", "grid": "grid", "samples": "samples",
          "batch": "batch", "threads": "threads", "mode": "mode"}
SOURCE = "_source"   # the file the row's record came from (for "lacks it")
NOT_A_CHECK = "n/a (quick/full is a proofs_check setting)"


def _first(d: Any, *names: str) -> Any:
    if not isinstance(d, Mapping):
        return None
    return next((d[n] for n in names if d.get(n) is not None), None)


def run_settings(run: Mapping[str, Any]) -> dict[str, Any]:
    """Settings of ``fdbench run`` (results.json: ``settings`` and top-level ``threads``)."""
    s = run.get("settings") or {}
    return {"T": _first(s, "n_steps"), "solver": _first(s, "solver", "sampler"),
            "grid": _first(s, "grid"), "samples": _first(s, "n_samples", "num_samples"),
            "batch": _first(s, "batch_size", "sample_batch", "batch"),
            "threads": _first(run, "threads") or _first(s, "threads"), "mode": NOT_A_CHECK,
            SOURCE: "results.json"}


def bench_settings(record: Mapping[str, Any], batch: Any = None) -> dict[str, Any]:
    """Settings of a ``fdbench bench`` record (results.jsonl); ``batch``: the row's own
    batch (a timing row's), else the sampling batch of the settings."""
    s = record.get("settings") or {}
    return {"T": _first(s, "n_steps"), "solver": _first(s, "solver"), "grid": _first(s, "grid"),
            "samples": _first(s, "num_samples", "n_samples"),
            "batch": batch if batch is not None else _first(s, "sample_batch", "batch_size"),
            "threads": _first(s, "threads"), "mode": NOT_A_CHECK, SOURCE: "results.jsonl"}


def sweep_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """Settings of a ``fdbench bench --sweep`` record (sweep.jsonl: the point's own solver,
    grid and T; the sweep's ``settings``)."""
    s = record.get("settings") or {}
    return {"T": _first(record, "n_steps"), "solver": _first(record, "solver"),
            "grid": _first(record, "grid"), "samples": _first(s, "num_samples", "n_samples"),
            "batch": _first(s, "sample_batch", "batch_size", "batch"),
            "threads": _first(s, "threads"), "mode": NOT_A_CHECK, SOURCE: "sweep.jsonl"}


def proofs_mode(payload: Mapping[str, Any]) -> str | None:
    """quick / full from a proofs_check payload's ``quick`` flag (None if absent)."""
    quick = payload.get("quick")
    return None if quick is None else ("quick" if quick else "full")


def text(settings: Mapping[str, Any], key: str) -> str:
    value = settings.get(key)
    if value is None:
        return f"n/a ({settings.get(SOURCE, 'the input')} lacks it)"
    return str(value)


def describe(rows: Sequence[Mapping[str, Any]], *, in_row: Collection[str] = (),
             where: str = "") -> tuple[str, list[str] | None]:
    """(line, column): the line states each setting shared by every row; a setting that
    differs between rows is named there and given per row in ``column`` (None when all
    agree). ``in_row``: settings each row already shows (``where`` says in which column)."""
    if not rows:
        return "", None
    shared, differing = [], []
    per_row = [LABELS[k] for k in KEYS if k in in_row]
    if per_row:
        shared.append(f"{', '.join(per_row)}: per row{f' ({where})' if where else ''}")
    for key in KEYS:
        values = [text(r, key) for r in rows]
        if key in in_row:
            continue
        if len(set(values)) == 1:
            shared.append(f"{LABELS[key]} {values[0]}")
        else:
            differing.append(key)
    line = "Settings: " + "; ".join(shared)
    if not differing:
        return line + ".", None
    line += "; " + ", ".join(LABELS[k] for k in differing) + ": differ, see the settings column."
    column = [", ".join(f"{LABELS[k]} {text(r, k)}" for k in differing) for r in rows]
    return line, column
