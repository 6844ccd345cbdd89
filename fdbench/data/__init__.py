"""Data sets for the benchmark: a registry of named sets, file loading, train/test splits.

Every set is a float32 tensor (B, N, M) checked by :func:`validate_series`. Built in:

* ``"ecg"``: heartbeats cut from the embedded MIT-BIH record 208 excerpt, Kaggle-style
  (N = 187, M = 1; :mod:`fdbench.data.ecg`);
* ``"sines"``: 512 sums of random sinusoids (N = 100, M = 1; :mod:`fdbench.data.synthetic`);
* the synthetic families with known spectra ``"powerlaw"``, ``"ar2"``, ``"bumps"``
  (:mod:`fdbench.data.synthetic`) and the embedded real sets ``"nasdaq"``, ``"sp500"``,
  ``"climate"`` (:mod:`fdbench.data.embedded_real`, need the ``[data]`` extra).

A new set registers itself with :func:`register_dataset`; :func:`load_dataset` takes a
registered name or a path to a .npy / .npz / .csv file (:mod:`fdbench.data.files`).
A set whose series overlap in time (sliding windows) declares ``split="chronological"``
with the number of windows ``purge`` that overlap across the train/test boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fdbench.data.ecg import load_ecg_beats
from fdbench.data.embedded_real import (
    FINANCE_PURGE,
    load_climate,
    load_finance,
)
from fdbench.data.files import MissingFileError, load_series_file, validate_series
from fdbench.data.options import SPLITS, LoadOptions
from fdbench.data.source import (
    DataSourceError,
    checkpoint_meta,
    dataset_for_checkpoint,
    file_record,
)
from fdbench.data.standardise import Standardiser
from fdbench.data.synthetic import AR2, GaussianBumps, PowerLawGaussian, sines
from fdbench.errors import ConfigError, InputError

__all__ = [
    "DATASETS", "DATASET_INFO", "EXACT_SAMPLERS", "DataSourceError", "DatasetInfo",
    "LoadOptions", "MissingFileError", "SeriesSplit", "Standardiser",
    "dataset_for_checkpoint", "fresh_samples", "load_dataset", "load_series_file",
    "register_dataset", "validate_series",
]

SINES_SEED = 20240207  # fixed: "sines" is a data set, the same for every run and seed
SINES_SAMPLES = 512


DATASETS: dict[str, Callable[..., Tensor]] = {}


@dataclass(frozen=True)
class DatasetInfo:
    """What ``fdbench data list`` shows about a registered set, and how it is split.

    ``split="random"``: a seeded random permutation (series are exchangeable).
    ``split="chronological"``: series are windows in time order; the last ones are the
    test part and the ``purge`` windows before them, which share time steps with the first
    test window, are dropped so no observation is in both parts."""

    domain: str = "unspecified"
    source: str = "unspecified"
    licence: str = "unspecified"
    split: str = "random"
    purge: int = 0
    extra: str = field(default="", compare=False)  # pip extra the loader needs, if any

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"DatasetInfo.split must be one of {SPLITS}, got {self.split!r}")
        if isinstance(self.purge, bool) or not isinstance(self.purge, int) or self.purge < 0:
            raise ConfigError(f"DatasetInfo.purge must be an integer >= 0, got {self.purge!r}")


DATASET_INFO: dict[str, DatasetInfo] = {}


def register_dataset(name: str, info: DatasetInfo | None = None,
                     ) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Decorator: make a zero-argument loader returning (B, N, M) available to
    :func:`load_dataset` as ``name``, described by ``info`` (default: random split, no
    metadata). Its docstring's first line becomes the split's description."""
    if not name or name != name.strip():
        raise ConfigError(f"dataset name must be non-empty without surrounding spaces, "
                          f"got {name!r}")

    def decorate(loader: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if name in DATASETS and DATASETS[name] is not loader:
            raise ConfigError(f"dataset name {name!r} is already registered")
        DATASETS[name] = loader
        DATASET_INFO[name] = info if info is not None else DatasetInfo()
        return loader
    return decorate


@register_dataset("ecg", DatasetInfo(
    domain="medicine (ECG)", source="MIT-BIH Arrhythmia Database record 208 (PhysioNet), "
    "scipy's ecg.dat excerpt", licence="ODC-By 1.0 (PhysioNet); see embedded/README.md"))
def _ecg_dataset() -> Tensor:
    """MIT-BIH record 208 heartbeats, Kaggle-style (Kachuee et al. 2018): N=187, M=1."""
    return load_ecg_beats()


@register_dataset("sines", DatasetInfo(domain="synthetic", source="fdbench.data.synthetic",
                                       licence="generated (no licence)"))
def _sines_dataset() -> Tensor:
    """512 sums of 3 random sinusoids (fixed seed): N=100, M=1."""
    generator = torch.Generator().manual_seed(SINES_SEED)
    return sines(SINES_SAMPLES, 100, 1, generator=generator)


_ARCH = ("Kevin Sheppard's `arch` package (arch.data), NCSA open source licence; prices "
         "originally from public market data")


@register_dataset("nasdaq", DatasetInfo(
    domain="finance", source=f"NASDAQ Composite daily OHLC 1999-2018, {_ARCH}",
    licence="NCSA (arch)", split="chronological", purge=FINANCE_PURGE, extra="data"))
def _nasdaq_dataset() -> Tensor:
    """NASDAQ Composite 64-day windows (stride 8), log OHLC / first close: N=64, M=4."""
    return load_finance("nasdaq")


@register_dataset("sp500", DatasetInfo(
    domain="finance", source=f"S&P 500 daily OHLC 1999-2018, {_ARCH}",
    licence="NCSA (arch)", split="chronological", purge=FINANCE_PURGE, extra="data"))
def _sp500_dataset() -> Tensor:
    """S&P 500 64-day windows (stride 8), log OHLC / first close: N=64, M=4."""
    return load_finance("sp500")


@register_dataset("climate", DatasetInfo(
    domain="climate / weather", source="NREL TMY3 files bundled with pvlib (Sand Point AK, "
    "Greensboro NC)", licence="NREL TMY3: public, free use with attribution; pvlib BSD-3",
    extra="data"))
def _climate_dataset() -> Tensor:
    """Daily 24 h windows of 7 TMY3 variables at 2 stations: N=24, M=7."""
    return load_climate()


_SYNTHETIC = DatasetInfo(domain="synthetic", source="fdbench.data.synthetic",
                         licence="generated (no licence)")


@register_dataset("powerlaw", _SYNTHETIC)
def _powerlaw_dataset() -> Tensor:
    """512 Gaussian series with E|c_k|^2 ~ k^-2 (exact score known): N=100, M=1."""
    return PowerLawGaussian(100, 2.0).sample(
        SINES_SAMPLES, generator=torch.Generator().manual_seed(SINES_SEED + 1))


@register_dataset("ar2", _SYNTHETIC)
def _ar2_dataset() -> Tensor:
    """512 stationary AR(2) series, poles 0.9 exp(+-0.2 pi i): N=100, M=1."""
    return AR2(100, 0.9, 0.1).sample(
        SINES_SAMPLES, generator=torch.Generator().manual_seed(SINES_SEED + 2))


@register_dataset("bumps", _SYNTHETIC)
def _bumps_dataset() -> Tensor:
    """512 wrapped Gaussian bumps of width 4 steps at random positions: N=100, M=1."""
    return GaussianBumps(100, 4.0).sample(
        SINES_SAMPLES, generator=torch.Generator().manual_seed(SINES_SEED + 3))


SINES_LARGE_SAMPLES = 4096

#: Synthetic families whose generating process is known exactly: name -> (n, generator) ->
#: fresh series of the family. Judges can score a model against new true samples
#: (``fresh_samples``), not only against a finite held-out split.
EXACT_SAMPLERS: dict[str, Callable[[int, torch.Generator], Tensor]] = {
    "sines": lambda n, g: sines(n, 100, 1, generator=g),
    "sines-large": lambda n, g: sines(n, 100, 1, generator=g),
    "powerlaw": lambda n, g: PowerLawGaussian(100, 2.0).sample(n, generator=g),
    "ar2": lambda n, g: AR2(100, 0.9, 0.1).sample(n, generator=g),
    "bumps": lambda n, g: GaussianBumps(100, 4.0).sample(n, generator=g),
}
# fresh draws use generators far from the fixed seeds above, so they never repeat a stored
# series of the registered set
_FRESH_SEED_OFFSET = 10**9


@register_dataset("sines-large", _SYNTHETIC)
def _sines_large_dataset() -> Tensor:
    """4096 sums of 3 random sinusoids (fixed seed; exact sampler): N=100, M=1."""
    generator = torch.Generator().manual_seed(SINES_SEED + 4)
    return sines(SINES_LARGE_SAMPLES, 100, 1, generator=generator)


def fresh_samples(name: str, n_samples: int, *, seed: int = 0) -> Tensor:
    """``n_samples`` new series of the synthetic family ``name`` from its exact sampler
    (the registered set's generating process with a generator of its own), float32
    (n, N, M). Raises ConfigError for a set without an exact sampler."""
    if name not in EXACT_SAMPLERS:
        raise ConfigError(f"data set {name!r} has no exact sampler; those that have: "
                          f"{sorted(EXACT_SAMPLERS)}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ConfigError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    generator = torch.Generator().manual_seed(_FRESH_SEED_OFFSET + seed)
    return EXACT_SAMPLERS[name](n_samples, generator).to(torch.float32).contiguous()


@dataclass(frozen=True, eq=False)
class SeriesSplit:
    """A data set split into disjoint train and test series, both (B, N, M) float32.
    ``source`` records where it came from and how it was read and split
    (:mod:`fdbench.data.source`; a checkpoint stores it as ``meta["data_source"]``)."""

    name: str
    train: Tensor
    test: Tensor
    description: str
    source: dict[str, Any] = field(default_factory=dict)

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


def load_dataset(name_or_path: str, *, seed: int = 0, test_fraction: float = 0.2,
                 options: LoadOptions | None = None) -> SeriesSplit:
    """Load a registered data set or a series file and split it.

    ``split="random"``: ``round(B * test_fraction)`` series, drawn by ``torch.randperm``
    from a generator seeded with ``seed``, form the test part; the rest (in the same
    permuted order) the train part. The same (data, seed, test_fraction) always gives the
    same split.

    ``split="chronological"`` (declared by a registered set, :class:`DatasetInfo`, or
    ``options.split``): in file order, whatever ``seed``: the last
    ``round(B * test_fraction)`` series are the test part, the ``purge`` series before
    them are dropped (default: the set's declared purge; for a file N - 1, one window
    length), the rest train.

    ``options`` (:class:`LoadOptions`): how a file is read (delimiter, dropna, label
    column) and the split. The result's ``source`` records all of it with the file's
    sha256 (:mod:`fdbench.data.source`).

    Raises :class:`ConfigError` for ``test_fraction`` outside (0, 1), a non-integer
    ``seed`` or file options on a registered set; :class:`InputError` for an unknown
    name that is not an existing file (the message lists the known names), bad data, or
    a split with an empty part.
    """
    options = options or LoadOptions()
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if not (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0):
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    info = DatasetInfo()
    if name_or_path in DATASETS:
        if options.file_only:
            flags = ", ".join("--" + k.replace("_", "-") for k in options.file_only)
            raise ConfigError(f"{flags} apply to data files, not the registered set "
                              f"{name_or_path!r}")
        loader = DATASETS[name_or_path]
        info = DATASET_INFO.get(name_or_path, info)
        name, description = name_or_path, _description(loader, name_or_path)
        x = validate_series(loader(), what=f"dataset {name!r}")
        record: dict[str, Any] = {"kind": "registered", "name": name_or_path}
    elif Path(name_or_path).is_file():
        path = Path(name_or_path)
        name, description = path.stem, f"series from {path}"
        x = load_series_file(path, options)
        record = file_record(path)
        info = DatasetInfo(purge=max(x.shape[1] - 1, 0))  # one window length
    elif (Path(name_or_path) / "config.json").is_file():
        # a checkpoint directory: the data it records, read and split as it was trained
        if options != LoadOptions() or seed != 0 or test_fraction != 0.2:
            raise ConfigError(f"{name_or_path} is a checkpoint: its data is read and split "
                              "as recorded; drop --data-seed and the data-file options")
        return dataset_for_checkpoint(checkpoint_meta(Path(name_or_path)))
    elif Path(name_or_path).is_dir():
        raise InputError(f"{name_or_path} is a directory; --data takes a registered name, "
                         "a .npy/.npz/.csv file or a checkpoint directory")
    else:
        known = ", ".join(sorted(DATASETS))
        raise InputError(f"unknown dataset {name_or_path!r}: neither a registered name "
                         f"({known}) nor an existing .npy/.npz/.csv file")
    split = options.split or info.split
    purge = 0 if split == "random" else (options.purge if options.purge is not None
                                         else info.purge)
    source = {**record, "options": options.to_dict(), "seed": seed,
              "test_fraction": test_fraction, "split": split, "purge": purge}

    n_series = x.shape[0]
    n_test = int(round(n_series * test_fraction))
    if not 1 <= n_test <= n_series - 1 - purge:
        raise InputError(f"{name}: cannot split {n_series} series with test_fraction="
                         f"{test_fraction}: train ({n_series - n_test - purge}, after "
                         f"dropping {purge} overlapping) and test ({n_test}) must both be "
                         "non-empty" + ("; a smaller --purge if the windows' stride is "
                                        "more than 1" if purge else ""))
    if split == "chronological":
        # windows overlap: a random split would put the same time steps in train and test
        test, train = x[n_series - n_test:].clone(), x[:n_series - n_test - purge].clone()
        return SeriesSplit(name=name, train=train, test=test, description=description,
                           source=source)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n_series, generator=generator)
    test, train = x[order[:n_test]], x[order[n_test:]]  # index copies: contiguous
    return SeriesSplit(name=name, train=train, test=test, description=description,
                       source=source)
