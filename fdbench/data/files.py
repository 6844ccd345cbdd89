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


def _read_csv(path: Path) -> np.ndarray:
    from fdbench.data.long_csv import looks_like_long_csv, read_long_csv

    if looks_like_long_csv(path):  # a header row: the long (series, time, value) format
        return read_long_csv(path)
    # ndmin=2: a one-row file is still (1, N), not (N,)
    return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)


_READERS = {".npy": lambda p: np.load(p, allow_pickle=False), ".npz": _read_npz,
            ".csv": _read_csv}


def load_series_file(path: str | os.PathLike) -> Tensor:
    """Read series from a file into a float32 tensor (B, N, M), checked by
    :func:`validate_series`.

    * ``.npy``: one array (B, N) (read as M = 1) or (B, N, M);
    * ``.npz``: the array named ``x``, else the first array, same shapes as .npy;
    * ``.csv``: one series per row, comma-separated, no header (M = 1); or, with a header
      row, the long format ``series,time,value[,channel]``
      (:mod:`fdbench.data.long_csv`, validated there).

    Pickled objects are never loaded (``allow_pickle=False``): a data file must not be
    able to run code. Raises :class:`InputError` for a missing file, an unknown suffix or
    an unreadable or ill-shaped content.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise InputError(f"{path}: unknown file type {suffix or '(none)'!r}; expected one "
                         f"of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    try:
        array = _READERS[suffix](path)
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: cannot read as {suffix}: {error}") from error
    return validate_series(_as_series(np.asarray(array), path), what=str(path))
