"""``fdbench data prepare``: run a paper loader once and cache its tensors.

The cache file ``<cache_dir>/<name>-<key>.npz`` holds the loader's arrays (``x`` is the
(B, N, M) float32 series, so :func:`fdbench.data.load_dataset` reads the file directly
and applies the same standardisation and seeded split as to built-in sets). ``key`` is a
hash of every source file's bytes and of the loader's parameters: editing, adding or
removing a source file, or changing a parameter, gives a new key, so a stale cache is
never reused (the base code kept one cache per folder and reused it across seeds and
settings). The split seed is not part of the key: splitting happens after loading. The
file is written atomically and only after the loader succeeded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fdbench.data import paper
from fdbench.data.files import validate_series
from fdbench.errors import ConfigError, InputError
from fdbench.io import atomic_write

CACHE_VERSION = 1  # bump when a loader's output changes for the same files

# name -> (loader, glob patterns of its source files relative to the folder, fixed params)
PAPER_SETS: dict[str, tuple[Callable[..., dict[str, np.ndarray]], tuple[str, ...],
                            dict[str, Any]]] = {
    "ecg": (paper.load_paper_ecg, paper.ECG_FILES, {}),
    "nasdaq": (paper.load_paper_nasdaq, ("stocks/*.csv",), {}),
    "nasa-charge": (paper.load_paper_nasa, ("cleaned_dataset/metadata.csv",
                                            "cleaned_dataset/data/*.csv"),
                    {"subset": "charge"}),
    "nasa-discharge": (paper.load_paper_nasa, ("cleaned_dataset/metadata.csv",
                                               "cleaned_dataset/data/*.csv"),
                       {"subset": "discharge"}),
    "droughts": (paper.load_paper_droughts, ("train_timeseries/train_timeseries.csv",), {}),
}


def default_cache_dir() -> Path:
    """$FDBENCH_CACHE, else $XDG_CACHE_HOME/fdbench, else ~/.cache/fdbench."""
    if os.environ.get("FDBENCH_CACHE"):
        return Path(os.environ["FDBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fdbench"


def source_files(name: str, folder: Path) -> list[Path]:
    """The files whose bytes key the cache of ``name`` (sorted); InputError if none."""
    _, patterns, _ = _entry(name)
    found = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    if not found:
        raise InputError(f"{folder}: none of the {name} source files ({', '.join(patterns)})")
    return found


def cache_key(name: str, folder: Path, params: dict[str, Any]) -> str:
    """sha256 over the set name, parameters, and each source file's relative path and
    bytes; 16 hex digits."""
    digest = hashlib.sha256()
    header = {"name": name, "params": params, "version": CACHE_VERSION}
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for path in source_files(name, folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _entry(name: str) -> tuple[Callable[..., dict[str, np.ndarray]], tuple[str, ...],
                               dict[str, Any]]:
    if name not in PAPER_SETS:
        raise ConfigError(f"unknown paper dataset {name!r}; expected one of "
                          f"{', '.join(PAPER_SETS)}")
    return PAPER_SETS[name]


def prepare(name: str, folder: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
            **params: Any) -> tuple[Path, bool]:
    """Load paper set ``name`` from ``folder`` (``params`` go to its loader) and cache it.
    Returns (cache file, reused) where ``reused`` says the file was already there."""
    loader, _, fixed = _entry(name)
    folder = Path(folder)
    params = {**fixed, **params}
    key = cache_key(name, folder, params)
    target = Path(cache_dir if cache_dir is not None else default_cache_dir()) / \
        f"{name}-{key}.npz"
    if target.is_file():
        return target, True
    arrays = loader(folder, **params)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for k in [k for k in arrays if k.startswith("x")]:
        # the same gate as every data set, float32 as load_dataset hands it out
        arrays[k] = validate_series(torch.from_numpy(np.ascontiguousarray(arrays[k])),
                                    what=f"{name} {k}").numpy()
    arrays["params"] = np.array(json.dumps(params, sort_keys=True, default=str))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    atomic_write(target, write)
    return target, False
