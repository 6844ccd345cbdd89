"""The long CSV format for user series: one observation per row, with a header.

    series,time,value[,channel]
    a,0,0.12
    a,1,0.40
    ...

Read by :mod:`fdbench.data.csv_text` (UTF-8 with or without BOM; ``,``, ``;`` or tab,
sniffed or given). Column names are matched case-insensitively; ``series`` may also be
``series_id`` or ``id``, ``time`` may be ``t``, ``step`` or ``date``; the
``--label-column`` names a column to ignore. Times are sorted numerically when they all
parse as numbers, else as text (ISO dates sort correctly). Checked on load, each problem
raising one :class:`InputError` naming the file and the problem:

* missing columns or a column not in the list above;
* a row whose value is empty, NaN or +-Inf (a gap): an error naming its line, or with
  ``dropna`` every series that has a gap is dropped (and counted on stderr), so N never
  shrinks silently;
* a (series, time, channel) given twice;
* ragged data: series with different numbers of time steps, or a series missing a
  channel at some time step.

Constant channels are refused for every file format alike (:mod:`fdbench.data.files`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fdbench.data.csv_text import (
    Row,
    delimiter_name,
    has_header,
    parse_value,
    read_rows,
    report_dropped,
)
from fdbench.errors import InputError

ALIASES = {"series": ("series", "series_id", "id"), "time": ("time", "t", "step", "date"),
           "value": ("value",), "channel": ("channel",)}


def looks_like_long_csv(path: Path, delimiter: str | None = None) -> bool:
    """True when the first non-empty line has a field that is not a number (a header)."""
    rows, _ = read_rows(path, delimiter)
    return has_header(rows)


def read_long_csv(path: Path, *, delimiter: str | None = None, dropna: bool = False,
                  label_column: str | None = None) -> np.ndarray:
    """Read a long CSV into a float64 array (B, N, M) (:func:`long_rows_to_array`)."""
    rows, used = read_rows(path, delimiter)
    return long_rows_to_array(path, rows, used, dropna=dropna, label_column=label_column)


def _columns(header: list[str], path: Path, label_column: str | None,
             delimiter: str) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    ignored = label_column.strip().lower() if label_column else None
    for i, name in enumerate(names):
        if name == ignored:
            continue
        role = next((r for r, alias in ALIASES.items() if name in alias), None)
        if role is None:
            raise InputError(f"{path}: unknown column {header[i].strip()!r} (fields "
                             f"separated by {delimiter_name(delimiter)}); a long CSV has "
                             "columns series, time, value and optionally channel "
                             "(--label-column NAME ignores one more)")
        if role in found:
            raise InputError(f"{path}: two columns mean {role!r}: {header[found[role]]!r} "
                             f"and {header[i]!r}")
        found[role] = i
    if ignored is not None and ignored not in names:
        raise InputError(f"{path}: --label-column {label_column!r} is not a column "
                         f"(columns: {', '.join(h.strip() for h in header)})")
    missing = [r for r in ("series", "time", "value") if r not in found]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (fields "
                         f"separated by {delimiter_name(delimiter)}); a long CSV has "
                         "columns series, time, value and optionally channel")
    return found


def _sort_key(values: list[str]) -> list[str]:
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def long_rows_to_array(path: Path, rows: list[Row], used: str, *, dropna: bool = False,
                       label_column: str | None = None) -> np.ndarray:
    """The rows of a long CSV (header first; ``used`` their delimiter) as a float64
    array (B, N, M): series in order of first appearance, time steps sorted, channels
    in order of first appearance."""
    if len(rows) < 2:
        raise InputError(f"{path}: a long CSV needs a header and at least one data row")
    header = rows[0][1]
    cols = _columns(header, path, label_column, used)
    width = len(header)
    cells: dict[tuple[str, str, str], float] = {}
    gaps: dict[str, int] = {}  # series -> line of its first gap
    for line, row in rows[1:]:
        if len(row) != width:
            raise InputError(f"{path}, line {line}: {len(row)} fields separated by "
                             f"{delimiter_name(used)}, the header has {width}")
        key = (row[cols["series"]].strip(), row[cols["time"]].strip(),
               row[cols["channel"]].strip() if "channel" in cols else "")
        value = parse_value(row[cols["value"]], path, line)
        if key in cells:
            raise InputError(f"{path}, line {line}: series {key[0]!r} time {key[1]!r}"
                             f"{' channel ' + repr(key[2]) if key[2] else ''} given twice")
        if not math.isfinite(value):
            if not dropna:
                raise InputError(f"{path}, line {line}: series {key[0]!r} time {key[1]!r}"
                                 f"{' channel ' + repr(key[2]) if key[2] else ''} has a "
                                 f"missing or non-finite value "
                                 f"({row[cols['value']].strip() or 'empty'}); fill the "
                                 "gap, or pass --dropna to drop every series with a gap")
            gaps.setdefault(key[0], line)
        cells[key] = value
    if gaps:
        cells = {k: v for k, v in cells.items() if k[0] not in gaps}
        if not cells:  # the error alone, no note before it
            raise InputError(f"{path}: no series left after --dropna ({len(gaps)} "
                             "dropped, every one had a gap)")
        report_dropped(path, len(gaps), "series", [repr(s) for s in gaps])
    series = list(dict.fromkeys(k[0] for k in cells))
    channels = list(dict.fromkeys(k[2] for k in cells))
    times: dict[str, list[str]] = {}
    for s, t, _ in cells:
        times.setdefault(s, []).append(t)
    times = {s: _sort_key(list(dict.fromkeys(ts))) for s, ts in times.items()}
    lengths = {s: len(ts) for s, ts in times.items()}
    if len(set(lengths.values())) > 1:
        short = min(lengths, key=lengths.__getitem__)
        long = max(lengths, key=lengths.__getitem__)
        raise InputError(f"{path}: ragged series: {short!r} has {lengths[short]} time steps, "
                         f"{long!r} has {lengths[long]}; all series need the same length")
    x = np.empty((len(series), lengths[series[0]], len(channels)))
    for b, s in enumerate(series):
        for n, t in enumerate(times[s]):
            for m, c in enumerate(channels):
                if (s, t, c) not in cells:
                    raise InputError(f"{path}: series {s!r} has no value for channel {c!r} "
                                     f"at time {t!r} (ragged channels)")
                x[b, n, m] = cells[(s, t, c)]
    return x
