"""CSV text as users save it: UTF-8 with or without a BOM (Excel writes one), fields
separated by ``,``, ``;`` (spreadsheets in locales with a decimal comma) or tab, blank
lines skipped; plus the headerless "one series per row" format.

Every problem is one :class:`InputError` naming the file and, where there is one, the
line (1-based, as an editor shows it)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from fdbench.errors import InputError

SNIFFED = ("\t", ";", ",")  # tried in this order: ';' and tab never occur inside numbers
SNIFF_LINES = 20
Row = tuple[int, list[str]]  # (line number, fields)


def read_text(path: Path) -> str:
    """The file's text; a UTF-8 byte-order mark is dropped."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); "
                         "save it as UTF-8 CSV") from None


def sniff_delimiter(text: str) -> str:
    """The first of tab, ``;``, ``,`` that occurs the same non-zero number of times on
    each of the first non-blank lines; ``,`` when none does (a one-column file)."""
    lines = [line for line in text.splitlines() if line.strip()][:SNIFF_LINES]
    for delimiter in SNIFFED:
        counts = {line.count(delimiter) for line in lines}
        if len(counts) == 1 and counts.pop() > 0:
            return delimiter
    return ","


def read_rows(path: Path, delimiter: str | None = None) -> tuple[list[Row], str]:
    """Non-blank rows of ``path`` with their line numbers, and the delimiter used."""
    text = read_text(path)
    delimiter = delimiter or sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except csv.Error as err:
        raise InputError(f"{path}, line {reader.line_num}: not valid CSV: {err}") from None
    return rows, delimiter


def is_number(text: str) -> bool:
    """True when ``text`` parses as a float (``nan`` and ``inf`` included)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def has_header(rows: list[Row]) -> bool:
    """True when the first row has a field that is not a number (a header row). A
    decimal-comma number (``1,5``) counts as a number, so such a file is read as data
    and its first cell's error says why."""
    return bool(rows) and any(not is_number(cell) and not is_number(cell.replace(",", "."))
                              for cell in rows[0][1] if cell.strip())


def delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "','", ";": "';'"}.get(delimiter, repr(delimiter))


def parse_value(text: str, path: Path, line: int) -> float:
    """A cell as a float; empty is NaN (a gap); anything else unparsable is an error."""
    text = text.strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        hint = " (a decimal comma? fdbench reads '.' decimals)" if "," in text else ""
        raise InputError(f"{path}, line {line}: value {text!r} is not a number{hint}") \
            from None


def label_index(label_column: str | None, width: int, path: Path) -> int | None:
    """The position of ``--label-column`` among ``width`` fields, or None."""
    if label_column is None:
        return None
    try:
        index = int(label_column)
    except ValueError:
        raise InputError(f"{path}: --label-column {label_column!r} must be a column index "
                         "(0-based, -1 = last) for a CSV without a header") from None
    if not -width <= index < width:
        raise InputError(f"{path}: --label-column {index} is outside the {width} columns")
    return index % width


def read_wide_csv(path: Path, *, delimiter: str | None = None, dropna: bool = False,
                  label_column: str | None = None) -> np.ndarray:
    """A headerless CSV, one series per row, into a float64 array (B, N)
    (:func:`wide_rows_to_array`)."""
    rows, used = read_rows(path, delimiter)
    return wide_rows_to_array(path, rows, used, dropna=dropna, label_column=label_column)


def wide_rows_to_array(path: Path, rows: list[Row], used: str, *, dropna: bool = False,
                       label_column: str | None = None) -> np.ndarray:
    """The rows of a headerless CSV (``used`` their delimiter), one series per row, as a
    float64 array (B, N). An empty, NaN or Inf cell is a gap: an error naming its line
    and column, or with ``dropna`` the row (series) is dropped and the count printed."""
    if not rows:
        raise InputError(f"{path}: the file holds no data (no non-blank line)")
    width = len(rows[0][1])
    label = label_index(label_column, width, path)
    keep, dropped = [], []
    for line, row in rows:
        if len(row) != width:
            raise InputError(f"{path}, line {line}: {len(row)} fields separated by "
                             f"{delimiter_name(used)}, the first row has {width}")
        values = [parse_value(cell, path, line) for i, cell in enumerate(row) if i != label]
        gap = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
        if gap is not None:
            if not dropna:
                column = gap + (1 if label is not None and gap >= label else 0)
                raise InputError(f"{path}, line {line}: series {len(keep) + len(dropped)} "
                                 f"has a missing or non-finite value "
                                 f"({row[column].strip() or 'empty'!s}) in column {column}; "
                                 "fill the gap, or pass --dropna to drop every series "
                                 "with a gap")
            dropped.append(line)
            continue
        keep.append(values)
    if not keep:  # the error alone, no note before it
        raise InputError(f"{path}: no series left after --dropna ({len(dropped)} dropped, "
                         "every one had a gap)")
    report_dropped(path, len(dropped), "line", dropped)
    return np.asarray(keep, dtype=np.float64)


def report_dropped(path: Path, count: int, what: str, where: list[object]) -> None:
    """One stderr line for the series ``--dropna`` removed (a documented drop)."""
    if count:
        import sys

        shown = ", ".join(str(w) for w in where[:5]) + (", ..." if count > 5 else "")
        print(f"fdbench: {path}: --dropna dropped {count} series with a gap ({what} "
              f"{shown})", file=sys.stderr)
