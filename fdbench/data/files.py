"""Checking user series and reading them from .npy / .npz / .csv files.

Every data set enters the package as a float32 tensor (B, N, M): B series, N time steps,
M channels (the layout of :mod:`fdbench.spectral`). :func:`validate_series` is the one
gate; it lives here beside the file reader that needs it, and
:mod:`fdbench.data` re-exports it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fdbench.data.options import LoadOptions
from fdbench.errors import InputError

SUFFIXES = (".npy", ".npz", ".csv")


class MissingFileError(InputError, FileNotFoundError):
    """A data file that does not exist: an :class:`InputError` (so the CLI reports it in
    one line) that ``except FileNotFoundError`` also catches."""


def validate_series(x: Tensor, what: str = "data") -> Tensor:
    """Check that ``x`` is a usable batch of series (B, N, M); return it as contiguous
    float32. Raises :class:`InputError` naming the first problem found: not a tensor,
    complex, rank != 3, B == 0, N < 2 (no spectrum to speak of), M == 0, NaN or Inf
    (with their counts and the (b, n, m) index of the first)."""
    if not isinstance(x, Tensor):
        raise InputError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise InputError(f"{what} must be real, got dtype {x.dtype}")
    if x.dim() != 3:
        raise InputError(f"{what} must have shape (B, N, M) = (series, time steps, "
                         f"channels), got rank {x.dim()} shape {tuple(x.shape)}")
    n_series, n_steps, n_channels = x.shape
    if n_series == 0:
        raise InputError(f"{what} holds no series (B = 0), shape {tuple(x.shape)}")
    if n_steps < 2:
        raise InputError(f"{what} needs N >= 2 time steps, got N = {n_steps}")
    if n_channels == 0:
        raise InputError(f"{what} has no channels (M = 0), shape {tuple(x.shape)}")
    x = x.to(torch.float32)  # after the checks: float64 overflow to Inf is caught below
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        b, n, m = (int(i) for i in torch.nonzero(~finite)[0])
        raise InputError(f"{what} contains {n_nan} NaN and {n_inf} Inf values; the first "
                         f"is {float(x[b, n, m])} at series {b}, step {n}, channel {m}")
    return x.contiguous()


def _as_series(array: np.ndarray, path: Path) -> Tensor:
    """A numeric array of rank 2 (B, N) -> (B, N, 1), or rank 3 (B, N, M), as float32."""
    if array.dtype.kind not in "biuf":
        raise InputError(f"{path}: expected a real numeric array, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]  # (B, N) -> (B, N, 1): one channel
    elif array.ndim != 3:
        raise InputError(f"{path}: expected an array of shape (B, N) or (B, N, M), got "
                         f"shape {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _read_npz(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        if not archive.files:
            raise InputError(f"{path}: the .npz archive holds no arrays")
        # "x" by convention; otherwise the first array as stored
        return archive["x" if "x" in archive.files else archive.files[0]]


def _read_csv(path: Path, options: LoadOptions) -> np.ndarray:
    from fdbench.data.csv_text import has_header, read_rows, wide_rows_to_array
    from fdbench.data.long_csv import long_rows_to_array

    rows, delimiter = read_rows(path, options.delimiter)
    if not rows:
        raise InputError(f"{path}: the file holds no data (no non-blank line)")
    # a header row: the long (series, time, value) format
    to_array = long_rows_to_array if has_header(rows) else wide_rows_to_array
    return to_array(path, rows, delimiter, dropna=options.dropna,
                    label_column=options.label_column)


def _drop_nonfinite(x: Tensor, path: Path) -> Tensor:
    """``--dropna`` on an array: drop every series holding a NaN or Inf (the CSV rule)."""
    from fdbench.data.csv_text import report_dropped

    bad = ~torch.isfinite(x).flatten(1).all(dim=1)
    if not bool(bad.any()):
        return x
    index = torch.nonzero(bad).flatten().tolist()
    if len(index) == x.shape[0]:
        raise InputError(f"{path}: no series left after --dropna (all {len(index)} have a "
                         "NaN or Inf)")
    report_dropped(path, len(index), "series", index)
    return x[~bad]


def check_no_constant_channel(x: Tensor, what: str) -> None:
    """The one rule for constant channels, every file format alike: refused. A channel
    with one value over all series and time steps carries nothing to learn; the
    standardiser would hold it by its floor and the judges' per-channel statistics
    (skewness, kurtosis, histogram bins) degenerate on it. (A constant *position*, such
    as the ECG beats' zero-padded tail, is fine: only whole channels are refused.)"""
    flat = x.flatten(0, 1)  # (B * N, M)
    constant = (flat == flat[:1]).all(dim=0)
    if bool(constant.any()):
        m = int(torch.nonzero(constant)[0])
        raise InputError(f"{what}: channel {m} of {x.shape[2]} is constant "
                         f"({float(flat[0, m])!r}) over all series and time steps: it "
                         "carries nothing to learn; drop it from the file")


_READERS = {".npy": lambda p, _: np.load(p, allow_pickle=False),
            ".npz": lambda p, _: _read_npz(p), ".csv": _read_csv}


def load_series_file(path: str | os.PathLike, options: LoadOptions | None = None) -> Tensor:
    """Read series from a file into a float32 tensor (B, N, M), checked by
    :func:`validate_series` and :func:`check_no_constant_channel`.

    * ``.npy``: one array (B, N) (read as M = 1) or (B, N, M);
    * ``.npz``: the array named ``x``, else the first array, same shapes as .npy;
    * ``.csv``: one series per row, no header (M = 1); or, with a header row, the long
      format ``series,time,value[,channel]`` (:mod:`fdbench.data.long_csv`); UTF-8 with
      or without BOM, ``,``/``;``/tab sniffed or ``options.delimiter``.

    ``options`` (:class:`fdbench.data.options.LoadOptions`): ``dropna`` drops series with
    a gap, ``label_column`` skips a CSV column. Pickled objects are never loaded
    (``allow_pickle=False``): a data file must not be able to run code. Raises
    :class:`InputError` for a missing file, an unknown suffix or an unreadable or
    ill-shaped content.
    """
    options = options or LoadOptions()
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise InputError(f"{path}: unknown file type {suffix or '(none)'!r}; expected one "
                         f"of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    if suffix != ".csv" and (options.delimiter or options.label_column):
        raise InputError(f"{path}: --delimiter and --label-column apply to .csv files only")
    try:
        array = _READERS[suffix](path, options)
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: cannot read as {suffix}: {error}") from error
    x = _as_series(np.asarray(array), path)
    if options.dropna and x.dim() == 3:
        x = _drop_nonfinite(x, path)
    try:
        x = validate_series(x, what=str(path))
    except InputError as err:
        if x.dim() == 3 and x.numel() and not bool(torch.isfinite(x).all()):
            raise InputError(f"{err}; fill the gaps, or pass --dropna to drop every "
                             "series with a NaN or Inf") from None
        raise
    check_no_constant_channel(x, str(path))
    return x
