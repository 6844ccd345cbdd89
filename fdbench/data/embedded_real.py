"""Real data sets that install from PyPI and load offline (the ``[data]`` extra).

* finance windows from ``arch.data.nasdaq`` / ``arch.data.sp500`` (daily OHLC of the
  NASDAQ Composite and S&P 500 indices, 1999-01-04 .. 2018-12-31, 5031 trading days);
* daily climate windows from the two TMY3 files bundled with pvlib (Sand Point AK,
  Greensboro NC; 8760 hourly rows each).

Attribution and licences: docs/DATASETS.md.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fdbench.errors import InputError

FINANCE_WINDOW = 64  # trading days (~3 months): 621 windows of 5031 days at stride 8
FINANCE_STRIDE = 8
# windows before the first test window that share days with it (dropped from train)
FINANCE_PURGE = -(-FINANCE_WINDOW // FINANCE_STRIDE) - 1
FINANCE_FEATURES = ("Open", "High", "Low", "Close")
TMY3_FILES = ("703165TY.csv", "723170TYA.CSV")
CLIMATE_FEATURES = ("GHI (W/m^2)", "DNI (W/m^2)", "DHI (W/m^2)", "Dry-bulb (C)",
                    "Dew-point (C)", "RHum (%)", "Wspd (m/s)")
HOURS = 24


def _import_optional(module: str) -> Any:
    """Import ``module`` or raise an InputError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise InputError(f"this dataset needs the optional package {module.split('.')[0]!r}: "
                         "install it with `pip install 'fdbench[data]'`") from error


def finance_windows(ohlc: np.ndarray, window: int = FINANCE_WINDOW,
                    stride: int = FINANCE_STRIDE) -> np.ndarray:
    """Sliding windows of daily (Open, High, Low, Close) prices (T, 4), each as
    log(price / first Close of the window): (n_windows, window, 4) float64, oldest first.

    Relative to the window's first close so that windows from 1999 and 2018 share a scale
    (index levels differ fourfold); the first Close channel value is then exactly 0."""
    ohlc = np.asarray(ohlc, dtype=np.float64)
    if ohlc.ndim != 2 or ohlc.shape[1] != 4:
        raise InputError(f"finance_windows needs (T, 4) OHLC prices, got shape {ohlc.shape}")
    if not np.all(np.isfinite(ohlc)) or np.any(ohlc <= 0):
        raise InputError("finance_windows: prices must be finite and > 0")
    if ohlc.shape[0] < window:
        raise InputError(f"finance_windows: window {window} is longer than the series "
                         f"({ohlc.shape[0]} days)")
    starts = range(0, ohlc.shape[0] - window + 1, stride)
    out = np.stack([np.log(ohlc[s:s + window] / ohlc[s, 3]) for s in starts])
    return out


def load_finance(index: str) -> Tensor:
    """``index`` in {"nasdaq", "sp500"}: float32 (621, 64, 4) windows (see
    :func:`finance_windows`), channels log Open, High, Low, Close over the first close."""
    if index not in ("nasdaq", "sp500"):
        raise InputError(f"unknown finance index {index!r}; expected 'nasdaq' or 'sp500'")
    frame = _import_optional(f"arch.data.{index}").load()
    ohlc = frame.sort_index()[list(FINANCE_FEATURES)].to_numpy()
    return torch.from_numpy(finance_windows(ohlc)).to(torch.float32)


def _tmy3_dir() -> Path:
    pvlib = _import_optional("pvlib")
    return Path(pvlib.__file__).parent / "data"


def load_climate() -> Tensor:
    """Daily windows of the two pvlib TMY3 stations: float32 (730, 24, 7), hours 01..24
    of each day; channels GHI, DNI, DHI (W/m^2), dry-bulb and dew-point temperature (C),
    relative humidity (%), wind speed (m/s). Sand Point's 365 days come first."""
    iotools = _import_optional("pvlib.iotools")
    days = []
    for name in TMY3_FILES:
        path = _tmy3_dir() / name
        if not path.is_file():
            raise InputError(f"{path}: bundled pvlib TMY3 file missing (pvlib too old/new?)")
        frame, _ = iotools.read_tmy3(str(path), map_variables=False)
        values = frame[list(CLIMATE_FEATURES)].to_numpy(dtype=np.float64)
        if values.shape[0] % HOURS:
            raise InputError(f"{path}: {values.shape[0]} hourly rows is not whole days")
        days.append(values.reshape(-1, HOURS, len(CLIMATE_FEATURES)))
    return torch.from_numpy(np.concatenate(days)).to(torch.float32)
