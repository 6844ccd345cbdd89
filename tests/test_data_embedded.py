"""Embedded real datasets (the [data] extra): offline loading, shapes, chronological split."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from fdbench.data import DATASET_INFO, DATASETS, load_dataset
from fdbench.data.embedded_real import FINANCE_PURGE, finance_windows, load_climate
from fdbench.errors import InputError


@pytest.fixture(scope="module")
def nasdaq() -> torch.Tensor:
    pytest.importorskip("arch")
    return DATASETS["nasdaq"]()


def test_finance_windows_shape_and_first_close(nasdaq: torch.Tensor) -> None:
    assert nasdaq.shape == (621, 64, 4) and nasdaq.dtype == torch.float32
    assert torch.all(nasdaq[:, 0, 3] == 0)  # log(Close_0 / Close_0)
    assert torch.all(nasdaq[..., 1] >= nasdaq[..., 2])  # High >= Low
    assert bool(torch.isfinite(nasdaq).all())


def test_finance_split_is_chronological_and_purged(nasdaq: torch.Tensor) -> None:
    a, b = load_dataset("nasdaq", seed=0), load_dataset("nasdaq", seed=7)
    assert torch.equal(a.test, b.test) and torch.equal(a.train, b.train)  # seed unused
    n_test = round(621 * 0.2)
    assert torch.equal(a.test, nasdaq[-n_test:])
    assert torch.equal(a.train, nasdaq[:621 - n_test - FINANCE_PURGE])
    # the last train window ends before the first test window starts: stride 8, length 64
    last_train_start = (a.train.shape[0] - 1) * 8
    assert last_train_start + 64 <= (621 - n_test) * 8


def test_finance_windows_maths() -> None:
    prices = np.exp(np.arange(40, dtype=np.float64))[:, None] * np.array([1.0, 2.0, 0.5, 1.0])
    w = finance_windows(prices, window=10, stride=5)
    assert w.shape == (7, 10, 4)
    assert np.allclose(w[1, :, 3], np.arange(10))  # log(e^(5+t) / e^5)
    with pytest.raises(InputError, match="longer than the series"):
        finance_windows(prices, window=41)


def test_sp500_loads() -> None:
    pytest.importorskip("arch")
    x = DATASETS["sp500"]()
    assert x.shape == (621, 64, 4) and DATASET_INFO["sp500"].split == "chronological"


def test_climate_shape_and_physics() -> None:
    pytest.importorskip("pvlib")
    x = load_climate()
    assert x.shape == (730, 24, 7)
    assert bool((x[..., :3] >= 0).all())  # irradiances
    assert bool(((x[..., 5] >= 0) & (x[..., 5] <= 100)).all())  # relative humidity
    assert float(x[:, 0, 0].max()) == 0.0  # no sun at 01:00 at either station
    split = load_dataset("climate", seed=0)
    assert split.train.shape == (584, 24, 7) and split.test.shape == (146, 24, 7)


@pytest.mark.parametrize("name,module", [("sp500", "arch.data.sp500"),
                                         ("climate", "pvlib")])
def test_missing_extra_names_it(monkeypatch, name: str, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # None in sys.modules: ImportError
    with pytest.raises(InputError, match=r"fdbench\[data\]"):
        load_dataset(name)
