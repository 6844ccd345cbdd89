"""Input validation shared by every judge: one place decides what a series set is.

A judge compares sets of series (B, N, M). Users hand over numpy arrays from ``np.load``
as often as tensors, and a sampler that diverged hands over NaN; both must end in one
clear :class:`~fdbench.errors.InputError` that names the offending input, before any
classifier is trained on garbage."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from fdbench.errors import InputError

__all__ = ["check_series", "check_series_pair", "check_positive_int"]


def _as_tensor(x: object, name: str) -> Tensor:
    if isinstance(x, Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray):
        if x.dtype.kind not in "iuf":  # bool, complex, object, strings: not series values
            raise InputError(f"{name} must hold real numbers, got numpy dtype {x.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))  # any byte order
    else:
        raise InputError(f"{name} must be a numpy array or torch.Tensor, "
                         f"got {type(x).__name__}")
    if t.is_complex() or t.dtype == torch.bool:
        raise InputError(f"{name} must hold real numbers, got dtype {t.dtype}")
    return t.to(device="cpu", dtype=torch.float64)


def check_series(x: object, name: str, *, min_count: int = 2) -> Tensor:
    """One series set as a float64 CPU tensor (B, N, M); (B, N) gets M = 1.

    Raises :class:`InputError` naming ``name`` for a wrong rank, N < 2 or M < 1, fewer
    than ``min_count`` series, or any NaN/Inf (with the count and the first position,
    so a diverged sampler is easy to locate)."""
    t = _as_tensor(x, name)
    if t.dim() == 2:
        t = t.unsqueeze(-1)
    if t.dim() != 3:
        raise InputError(f"{name} must have shape (B, N, M) or (B, N), got {tuple(t.shape)}")
    b, n, m = t.shape
    if n < 2 or m < 1:
        raise InputError(f"{name} needs N >= 2 time steps and M >= 1 channels, got "
                         f"shape {tuple(t.shape)}")
    if b < min_count:
        raise InputError(f"{name} has {b} series; this judge needs at least {min_count}")
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise InputError(f"{name} contains {int(bad.sum())} NaN/Inf values (first at "
                         f"index {first})")
    return t


def check_series_pair(real: object, generated: object, *, min_count: int = 2,
                      names: Sequence[str] = ("real", "generated")) -> tuple[Tensor, Tensor]:
    """Two series sets that share (N, M), as float64 CPU tensors (B1, N, M), (B2, N, M).

    Each is checked by :func:`check_series` (with ``min_count``), then their per-series
    shapes must agree; the message gives both shapes."""
    if len(names) != 2:
        raise InputError(f"names must hold two labels, got {names!r}")
    r = check_series(real, names[0], min_count=min_count)
    g = check_series(generated, names[1], min_count=min_count)
    if r.shape[1:] != g.shape[1:]:
        raise InputError(f"{names[0]} and {names[1]} must have the same series shape "
                         f"(N, M), got {tuple(r.shape[1:])} and {tuple(g.shape[1:])}")
    return r, g


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (bools refused: ``True`` is not a repeat count)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
