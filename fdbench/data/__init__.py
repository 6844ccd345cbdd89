"""Data sets for the benchmark: a registry of named sets, file loading, train/test splits.

Every set is a float32 tensor (B, N, M) checked by :func:`validate_series`. Built in:

* ``"ecg"``: heartbeats cut from the embedded MIT-BIH record 208 excerpt, Kaggle-style
  (N = 187, M = 1; :mod:`fdbench.data.ecg`);
* ``"sines"``: 512 sums of random sinusoids (N = 100, M = 1; :mod:`fdbench.data.synthetic`).

A new set registers itself with :func:`register_dataset`; :func:`load_dataset` takes a
registered name or a path to a .npy / .npz / .csv file (:mod:`fdbench.data.files`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from fdbench.data.ecg import load_ecg_beats
from fdbench.data.files import MissingFileError, load_series_file, validate_series
from fdbench.data.standardise import Standardiser
from fdbench.data.synthetic import sines
from fdbench.errors import ConfigError, InputError

__all__ = [
    "DATASETS", "MissingFileError", "SeriesSplit", "Standardiser", "load_dataset",
    "load_series_file", "register_dataset", "validate_series",
]

SINES_SEED = 20240207  # fixed: "sines" is a data set, the same for every run and seed
SINES_SAMPLES = 512

DATASETS: dict[str, Callable[..., Tensor]] = {}


def register_dataset(name: str) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Decorator: make a zero-argument loader returning (B, N, M) available to
    :func:`load_dataset` as ``name``. Its docstring's first line becomes the split's
    description."""
    if not name or name != name.strip():
        raise ConfigError(f"dataset name must be non-empty without surrounding spaces, "
                          f"got {name!r}")

    def decorate(loader: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if name in DATASETS and DATASETS[name] is not loader:
            raise ConfigError(f"dataset name {name!r} is already registered")
        DATASETS[name] = loader
        return loader
    return decorate


@register_dataset("ecg")
def _ecg_dataset() -> Tensor:
    """MIT-BIH record 208 heartbeats, Kaggle-style (Kachuee et al. 2018): N=187, M=1."""
    return load_ecg_beats()


@register_dataset("sines")
def _sines_dataset() -> Tensor:
    """512 sums of 3 random sinusoids (fixed seed): N=100, M=1."""
    generator = torch.Generator().manual_seed(SINES_SEED)
    return sines(SINES_SAMPLES, 100, 1, generator=generator)


@dataclass(frozen=True, eq=False)
class SeriesSplit:
    """A data set split into disjoint train and test series, both (B, N, M) float32."""

    name: str
    train: Tensor
    test: Tensor
    description: str

    def __post_init__(self) -> None:
        if self.train.shape[1:] != self.test.shape[1:]:
            raise InputError(f"{self.name}: train and test series differ in shape: "
                             f"{tuple(self.train.shape)} vs {tuple(self.test.shape)}")

    @property
    def n_steps(self) -> int:
        """N, time steps per series."""
        return int(self.train.shape[1])

    @property
    def n_channels(self) -> int:
        """M, channels per series."""
        return int(self.train.shape[2])


def _description(loader: Callable[..., Tensor], name: str) -> str:
    doc = (loader.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else name


def load_dataset(name_or_path: str, *, seed: int = 0, test_fraction: float = 0.2) -> SeriesSplit:
    """Load a registered data set or a series file and split it at random.

    ``round(B * test_fraction)`` series, drawn by ``torch.randperm`` from a generator
    seeded with ``seed``, form the test part; the rest (in the same permuted order) the
    train part. The same (data, seed, test_fraction) always gives the same split.

    Raises :class:`ConfigError` for ``test_fraction`` outside (0, 1) or a non-integer
    ``seed``; :class:`InputError` for an unknown name that is not an existing file (the
    message lists the known names), bad data, or a split with an empty part.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if not (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0):
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if name_or_path in DATASETS:
        loader = DATASETS[name_or_path]
        name, description = name_or_path, _description(loader, name_or_path)
        x = validate_series(loader(), what=f"dataset {name!r}")
    elif Path(name_or_path).is_file():
        path = Path(name_or_path)
        name, description = path.stem, f"series from {path}"
        x = load_series_file(path)
    else:
        known = ", ".join(sorted(DATASETS))
        raise InputError(f"unknown dataset {name_or_path!r}: neither a registered name "
                         f"({known}) nor an existing .npy/.npz/.csv file")

    n_series = x.shape[0]
    n_test = int(round(n_series * test_fraction))
    if not 1 <= n_test <= n_series - 1:
        raise InputError(f"{name}: cannot split {n_series} series with test_fraction="
                         f"{test_fraction}: train ({n_series - n_test}) and test ({n_test}) "
                         "must both be non-empty")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n_series, generator=generator)
    test, train = x[order[:n_test]], x[order[n_test:]]  # index copies: contiguous
    return SeriesSplit(name=name, train=train, test=test, description=description)
