"""Loaders for the base paper's five data sets, from the original Kaggle files.

Crabbé et al. (2024), "Time Series Diffusion in the Frequency Domain", ICML, Sec. 5 and
App. C, evaluate on ECG (MIT-BIH heartbeats, 187 x 1), NASDAQ-2019 (252 x 5), NASA
battery charge (251 x 4) and discharge (134 x 5) and US-Droughts (365 x 13). Each loader
below reads the files as the Kaggle downloads lay them out under a user folder and
reproduces the preprocessing of the authors' code (FourierDiffusion, ``fdiff``), its
quirks included; every departure is listed in the loader's docstring. Loaders return
float64 arrays (B, N, M) in the base code's series and feature order; the split into
train/test is left to :func:`fdbench.data.load_dataset` (the base code's seeded splits
were cached once and reused across seeds: see :mod:`fdbench.data.prepare`).

Needs pandas (the ``[data]`` extra). NaN rows are dropped with a count printed to stderr;
every other problem raises one :class:`InputError` naming the file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from fdbench.data.embedded_real import _import_optional
from fdbench.errors import ConfigError, InputError

ECG_FILES = ("mitbih_train.csv", "mitbih_test.csv")
ECG_LENGTH = 187
NASDAQ_FEATURES = ("Adj Close", "Close", "High", "Low", "Open")  # pivot order, Volume last
NASA_FEATURES = {
    "charge": ("Voltage_measured", "Current_measured", "Temperature_measured",
               "Current_charge", "Voltage_charge"),
    "discharge": ("Voltage_measured", "Current_measured", "Temperature_measured",
                  "Current_load", "Voltage_load"),
}
NASA_TIMING = {"charge": (5000.0, 10.0), "discharge": (2000.0, 15.0)}  # (cutoff s, bin s)
DROUGHT_FEATURES = (  # the Kaggle columns in pandas' sorted (pivot) order
    "PRECTOT", "PS", "QV2M", "T2M", "T2MDEW", "T2MWET", "T2M_MAX", "T2M_MIN", "T2M_RANGE",
    "TS", "WS10M", "WS10M_MAX", "WS10M_MIN", "WS10M_RANGE", "WS50M", "WS50M_MAX",
    "WS50M_MIN", "WS50M_RANGE")
DROUGHT_DROPPED = (4, 5, 6, 7, 9)  # positions the base code removes (T2MDEW .. TS)


def _pandas() -> Any:
    return _import_optional("pandas")


def _need(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    return path


def _read_csv(path: Path, **kwargs: Any) -> Any:
    pd = _pandas()
    try:
        return pd.read_csv(_need(path), **kwargs)
    except (ValueError, OSError) as error:
        raise InputError(f"{path}: cannot read as CSV: {error}") from error


def _require_columns(frame: Any, columns: tuple[str, ...], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")


def _report_drop(count: int, what: str, path: Path) -> None:
    if count:
        print(f"fdbench: {path}: dropped {count} {what}", file=sys.stderr)


def load_paper_ecg(folder: str | Path, *, header_quirk: bool = False,
                   ) -> dict[str, np.ndarray]:
    """MIT-BIH heartbeats (Kaggle "shayanfazeli/heartbeat"): ``mitbih_train.csv`` and
    ``mitbih_test.csv``, no header, 187 signal columns then the class label (0..4).

    Returns {"x": train beats (B, 187, 1), "y": labels, "x_test", "y_test"} (the Kaggle
    files' own split). Quirk: the base code read the files *with* a header row, so the
    first beat of each file became column names and was lost (87,553 instead of 87,554
    training beats); ``header_quirk=True`` reproduces that. Rows with a NaN are dropped
    with a printed count."""
    folder = Path(folder)
    out: dict[str, np.ndarray] = {}
    for name, key in zip(ECG_FILES, ("", "_test"), strict=True):
        path = folder / name
        frame = _read_csv(path, header=0 if header_quirk else None)
        if frame.shape[1] != ECG_LENGTH + 1:
            raise InputError(f"{path}: expected {ECG_LENGTH + 1} columns (187 samples + "
                             f"label), got {frame.shape[1]}")
        values = frame.to_numpy(dtype=np.float64)
        keep = np.isfinite(values).all(axis=1)
        _report_drop(int((~keep).sum()), "row(s) with NaN/Inf", path)
        values = values[keep]
        if values.shape[0] == 0:
            raise InputError(f"{path}: no complete beats")
        labels = values[:, -1]
        if np.any(labels != np.round(labels)) or np.any((labels < 0) | (labels > 4)):
            raise InputError(f"{path}: last column must be a class label in 0..4")
        out[f"x{key}"] = values[:, :ECG_LENGTH, None]
        out[f"y{key}"] = labels.astype(np.int64)
    return out


def load_paper_nasdaq(folder: str | Path, *, start: str = "2019-01-01",
                      end: str = "2020-01-01", n_days: int = 252) -> dict[str, np.ndarray]:
    """NASDAQ-2019 (Kaggle "jacksoncrow/stock-market-dataset"): ``stocks/<TICKER>.csv``
    with columns Date, Open, High, Low, Close, Adj Close, Volume.

    As the base code: keep tickers listed on or before ``start`` and still listed on or
    after ``end``; keep the days in [start, end); keep tickers with exactly ``n_days``
    distinct days (252 trading days in 2019); features in the alphabetical order of its
    pivot table, Adj Close, Close, High, Low, Open, with Volume (last) dropped; tickers in
    sorted order. Returns {"x": (B, n_days, 5), "tickers"}.

    Departures: tickers with a NaN price in the window are dropped with a printed count
    (the base pivot silently averaged them away); days are each ticker's own sorted days
    rather than a pivot over the union of dates (same result when all tickers share the
    calendar, as NASDAQ stocks do); the ticker is the file stem (the base used
    ``stem.strip(".csv")``, which also strips leading/trailing lowercase c, s, v)."""
    pd = _pandas()
    folder = Path(folder)
    paths = sorted(_need(folder / "stocks").glob("*.csv"))
    if not paths:
        raise InputError(f"{folder / 'stocks'}: no .csv files")
    start_t, end_t = pd.Timestamp(start), pd.Timestamp(end)
    series, tickers, n_nan = [], [], 0
    for path in paths:
        frame = _read_csv(path)
        _require_columns(frame, ("Date", *NASDAQ_FEATURES, "Volume"), path)
        try:
            dates = pd.to_datetime(frame["Date"])
        except (ValueError, TypeError) as error:
            raise InputError(f"{path}: unreadable Date column: {error}") from error
        if dates.min() > start_t or dates.max() < end_t:
            continue  # not listed over the whole year
        window = frame.assign(Date=dates)[(dates >= start_t) & (dates < end_t)]
        daily = window.groupby("Date")[list(NASDAQ_FEATURES)].mean().sort_index()
        if len(daily) != n_days:
            continue  # missing (or extra) trading days
        values = daily.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            n_nan += 1
            continue
        series.append(values)
        tickers.append(path.stem)
    _report_drop(n_nan, "ticker(s) with NaN prices", folder / "stocks")
    if not series:
        raise InputError(f"{folder / 'stocks'}: no ticker covers {start} .. {end} with "
                         f"{n_days} trading days")
    return {"x": np.stack(series), "tickers": np.array(tickers)}


def load_paper_nasa(folder: str | Path, subset: str = "charge", *,
                    remove_outlier_feature: bool = True, cutoff_s: float | None = None,
                    bin_s: float | None = None) -> dict[str, np.ndarray]:
    """NASA battery (Kaggle "patrickfleith/nasa-battery-dataset", the cleaned CSV
    release): ``cleaned_dataset/metadata.csv`` (columns ``type``, ``filename``, ...) and
    one CSV per cycle in ``cleaned_dataset/data/`` with a ``Time`` column (s) and the
    measurements. This is the format FourierDiffusion's loader reads (not the original
    per-battery .mat files).

    As the base code, per cycle of ``type == subset``: keep cycles lasting longer than the
    cutoff (5000 s charge, 2000 - 2000 % 15 = 1995 s discharge) whose largest gap between
    samples is at most one bin (10 s charge, 15 s discharge); drop samples at or after the
    cutoff; average in right-closed bins (-bin, 0], (0, bin], ... (cutoff-bin, cutoff]:
    501 steps (charge) or 134 (discharge). Features: Voltage_measured, Current_measured,
    Temperature_measured, Current_charge/load, Voltage_charge/load; cycles sorted by file
    name. Charge with ``remove_outlier_feature`` (the base default) then keeps every 2nd
    step and drops Temperature_measured: 251 x 4. Returns {"x", "files"}.

    Departure: a cycle with an empty bin (NaN in the base code's tensor) is dropped with a
    printed count. ``cutoff_s``/``bin_s`` override the timing (for small test files)."""
    _pandas()  # fail early, naming the extra, if pandas is missing
    if subset not in NASA_FEATURES:
        raise ConfigError(f"subset must be one of {sorted(NASA_FEATURES)}, got {subset!r}")
    default_cutoff, default_bin = NASA_TIMING[subset]
    bin_s = float(default_bin if bin_s is None else bin_s)
    cutoff = float(default_cutoff if cutoff_s is None else cutoff_s)
    if bin_s <= 0 or cutoff < bin_s:
        raise ConfigError(f"need 0 < bin_s <= cutoff_s, got bin_s={bin_s}, cutoff_s={cutoff}")
    cutoff -= cutoff % bin_s  # base: cutoff_time = 2000 - 2000 % 15
    root = Path(folder) / "cleaned_dataset"
    meta_path = root / "metadata.csv"
    metadata = _read_csv(meta_path)
    _require_columns(metadata, ("type", "filename"), meta_path)
    features = NASA_FEATURES[subset]
    edges = np.arange(-bin_s, cutoff + bin_s / 2, bin_s)  # right-closed bins, as pd.cut
    series, files, n_empty = [], [], 0
    for filename in sorted(metadata.loc[metadata["type"] == subset, "filename"]):
        path = root / "data" / str(filename)
        cycle = _read_csv(path)
        _require_columns(cycle, ("Time", *features), path)
        time = cycle["Time"].to_numpy(dtype=np.float64)
        if not time.max() > cutoff or np.nanmax(np.diff(time), initial=0.0) > bin_s:
            continue  # too short, or a gap longer than a bin
        kept = cycle[time < cutoff]
        index = np.searchsorted(edges, kept["Time"].to_numpy(dtype=np.float64),
                                side="left") - 1
        grouped = kept[list(features)].groupby(index).mean()
        binned = grouped.reindex(range(len(edges) - 1)).to_numpy(dtype=np.float64)
        if not np.isfinite(binned).all():
            n_empty += 1
            continue
        series.append(binned)
        files.append(str(filename))
    _report_drop(n_empty, "cycle(s) with an empty time bin", root / "data")
    if not series:
        raise InputError(f"{root}: no {subset} cycle passes the duration/gap filter "
                         f"(cutoff {cutoff} s, bin {bin_s} s)")
    x = np.stack(series)
    if subset == "charge" and remove_outlier_feature:
        x = x[:, ::2][:, :, [0, 1, 3, 4]]
    return {"x": x, "files": np.array(files)}


def load_paper_droughts(folder: str | Path, *, start: str = "2011-01-01",
                        end: str = "2012-01-01") -> dict[str, np.ndarray]:
    """US-Droughts (Kaggle "cdminix/us-drought-meteorological-data"):
    ``train_timeseries/train_timeseries.csv`` with columns fips, date, 18 meteorological
    variables and ``score`` (the drought score, reported weekly: NaN on other days).

    As the base code: keep days in [start, end) (365 in 2011); drop every column with a
    NaN in that window, which removes ``score`` (its NaN non-report days); pivot to
    (fips sorted, day, feature in sorted column order) and remove positions 4, 5, 6, 7, 9
    (T2MDEW, T2MWET, T2M_MAX, T2M_MIN, TS), leaving 13 features. Returns {"x", "fips"}.

    Departure: the base code's positional removal silently picks other features when a
    meteorological column also had a NaN and was dropped; here that is an InputError
    naming the column, as is a county missing a day."""
    pd = _pandas()
    path = Path(folder) / "train_timeseries" / "train_timeseries.csv"
    frame = _read_csv(path)
    _require_columns(frame, ("fips", "date", *DROUGHT_FEATURES), path)
    start_t, end_t = pd.Timestamp(start), pd.Timestamp(end)
    n_days = (end_t - start_t).days
    if n_days < 2:
        raise ConfigError(f"need at least 2 days between start {start} and end {end}")
    frame["date"] = pd.to_datetime(frame["date"])
    frame = frame[(frame["date"] >= start_t) & (frame["date"] < end_t)]
    if frame.empty:
        raise InputError(f"{path}: no rows between {start} and {end}")
    frame = frame.dropna(axis=1)  # the base code's step: drops score (weekly reports)
    lost = [c for c in DROUGHT_FEATURES if c not in frame.columns]
    if lost:
        raise InputError(f"{path}: column(s) {lost} have NaN between {start} and {end}; the "
                         "base code would have dropped them and shifted its feature choice")
    features = sorted(c for c in frame.columns if c not in ("fips", "date"))
    if tuple(features) != DROUGHT_FEATURES:
        raise InputError(f"{path}: unexpected columns {features}; expected {DROUGHT_FEATURES}")
    counts = frame.groupby("fips")["date"].nunique()
    if (counts != n_days).any():
        fips = counts.index[(counts != n_days).to_numpy()][0]
        raise InputError(f"{path}: county fips {fips} has {counts[fips]} of the {n_days} days "
                         f"between {start} and {end}")
    daily = frame.groupby(["fips", "date"])[features].mean().sort_index()
    x = daily.to_numpy(dtype=np.float64).reshape(len(counts), n_days, len(features))
    keep = [i for i in range(len(features)) if i not in DROUGHT_DROPPED]
    return {"x": x[:, :, keep], "fips": counts.index.to_numpy()}
