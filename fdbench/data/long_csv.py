"""The long CSV format for user series: one observation per row, with a header.

    series,time,value[,channel]
    a,0,0.12
    a,1,0.40
    ...

Column names are matched case-insensitively; ``series`` may also be ``series_id`` or
``id``, ``time`` may be ``t``, ``step`` or ``date``. Times are sorted numerically when
they all parse as numbers, else as text (ISO dates sort correctly). Checked on load,
each problem raising one :class:`InputError` naming the file and the problem:

* missing columns or a column not in the list above;
* rows whose value is empty, NaN or +-Inf are dropped, and the number dropped is printed
  to stderr (a documented drop, not an error);
* a (series, time, channel) given twice;
* ragged data: series with different numbers of time steps, or a series missing a
  channel at some time step;
* a constant channel (std 0 over all series and times): nothing to learn, and
  standardising it divides by 0.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np

from fdbench.errors import InputError

ALIASES = {"series": ("series", "series_id", "id"), "time": ("time", "t", "step", "date"),
           "value": ("value",), "channel": ("channel",)}


def looks_like_long_csv(path: Path) -> bool:
    """True when the first non-empty line has a field that is not a number (a header)."""
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if any(cell.strip() for cell in row):
                return any(not _is_number(cell) for cell in row)
    return False


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _columns(header: list[str], path: Path) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for i, name in enumerate(names):
        role = next((r for r, alias in ALIASES.items() if name in alias), None)
        if role is None:
            raise InputError(f"{path}: unknown column {header[i]!r}; a long CSV has columns "
                             "series, time, value and optionally channel")
        if role in found:
            raise InputError(f"{path}: two columns mean {role!r}: {header[found[role]]!r} "
                             f"and {header[i]!r}")
        found[role] = i
    missing = [r for r in ("series", "time", "value") if r not in found]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; a long CSV has "
                         "columns series, time, value and optionally channel")
    return found


def _sort_key(values: list[str]) -> list[object]:
    if all(_is_number(v) for v in values):
        return sorted(values, key=float)
    return sorted(values)


def read_long_csv(path: Path) -> np.ndarray:
    """Read a long CSV into a float64 array (B, N, M): series in order of first
    appearance, time steps sorted, channels in order of first appearance."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise InputError(f"{path}: a long CSV needs a header and at least one data row")
    cols = _columns(rows[0], path)
    width = len(rows[0])
    cells: dict[tuple[str, str, str], float] = {}
    dropped = 0
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise InputError(f"{path}, line {line}: {len(row)} fields, the header has {width}")
        key = (row[cols["series"]].strip(), row[cols["time"]].strip(),
               row[cols["channel"]].strip() if "channel" in cols else "")
        text = row[cols["value"]].strip()
        try:
            value = float(text) if text else math.nan
        except ValueError as error:
            raise InputError(f"{path}, line {line}: value {text!r} is not a number") from error
        if not math.isfinite(value):
            dropped += 1
            continue
        if key in cells:
            raise InputError(f"{path}, line {line}: series {key[0]!r} time {key[1]!r}"
                             f"{' channel ' + repr(key[2]) if key[2] else ''} given twice")
        cells[key] = value
    if dropped:
        print(f"fdbench: {path}: dropped {dropped} row(s) with an empty, NaN or Inf value",
              file=sys.stderr)
    if not cells:
        raise InputError(f"{path}: no finite values left")
    series = list(dict.fromkeys(k[0] for k in cells))
    channels = list(dict.fromkeys(k[2] for k in cells))
    times: dict[str, list[str]] = {}
    for s, t, _ in cells:
        times.setdefault(s, [])
        if not times[s] or times[s][-1] != t:
            times[s].append(t)
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
    std = x.std(axis=(0, 1))
    if np.any(std == 0):
        m = int(np.nonzero(std == 0)[0][0])
        name = f"channel {channels[m]!r}" if channels[m] else "the value column"
        raise InputError(f"{path}: {name} is constant ({x[0, 0, m]}) over all series and "
                         "times: std 0 cannot be standardised")
    return x
