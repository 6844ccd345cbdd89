"""Paper loaders against their fixtures (tests/fixtures/paper, written by
make_fixtures.py), their quirks, bad input, and the prepare cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pandas")

from fdbench.cli import main  # noqa: E402
from fdbench.data import load_dataset  # noqa: E402
from fdbench.data.paper import (  # noqa: E402
    load_paper_droughts,
    load_paper_ecg,
    load_paper_nasa,
    load_paper_nasdaq,
)
from fdbench.data.prepare import cache_key, prepare  # noqa: E402
from fdbench.errors import ConfigError, InputError  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "paper"
NASDAQ_WINDOW = {"start": "2019-01-01", "end": "2019-01-10", "n_days": 6}
DROUGHT_WINDOW = {"start": "2011-01-01", "end": "2011-01-11"}


def copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def test_ecg_reads_without_header_and_quirk_drops_first_rows() -> None:
    d = load_paper_ecg(FIXTURES / "ecg")
    assert d["x"].shape == (6, 187, 1) and d["x_test"].shape == (3, 187, 1)
    assert d["x"][0, :2, 0].tolist() == [0.0, 0.001] and d["y"].tolist() == [0, 1, 2, 3, 4, 0]
    quirk = load_paper_ecg(FIXTURES / "ecg", header_quirk=True)
    assert quirk["x"].shape == (5, 187, 1) and quirk["x_test"].shape == (2, 187, 1)
    assert np.array_equal(quirk["x"], d["x"][1:])  # exactly the first beat is lost


def test_nasdaq_filters_tickers_and_orders_features() -> None:
    d = load_paper_nasdaq(FIXTURES / "nasdaq", **NASDAQ_WINDOW)
    # CCC listed late, DDD misses a day, EEE delisted early: only AAA and BBB remain
    assert d["x"].shape == (2, 6, 5) and d["tickers"].tolist() == ["AAA", "BBB"]
    p = d["x"][0, 0, 0]  # Adj Close = p, Close = p+.1, High = p+.3, Low = p+.2, Open = p+.4
    assert np.allclose(d["x"][0, 0] - p, [0.0, 0.1, 0.3, 0.2, 0.4])
    assert np.all(np.diff(d["x"][0, :, 0]) > 0)  # days in order
    with pytest.raises(InputError, match="no ticker"):
        load_paper_nasdaq(FIXTURES / "nasdaq")  # fixture does not cover 2019 -> clear error


def test_nasa_fixture_filters_bins_and_keeps_features() -> None:
    charge = load_paper_nasa(FIXTURES / "nasa", "charge", cutoff_s=100, bin_s=10)
    # 00002 too short, 00003 has a 25 s gap; 11 bins -> every 2nd -> 6 steps, 4 features
    assert charge["x"].shape == (1, 6, 4) and charge["files"].tolist() == ["00001.csv"]
    # feature j = j + t/1000; bin 2 = (10, 20] holds t = 15, 20 -> mean 17.5
    assert np.allclose(charge["x"][0, 1], [0.0175, 1.0175, 3.0175, 4.0175])
    full = load_paper_nasa(FIXTURES / "nasa", "charge", cutoff_s=100, bin_s=10,
                           remove_outlier_feature=False)
    assert full["x"].shape == (1, 11, 5)
    discharge = load_paper_nasa(FIXTURES / "nasa", "discharge", cutoff_s=60, bin_s=15)
    assert discharge["x"].shape == (1, 5, 5)  # bins (-15,0], ..., (45,60]


def write_cycle(folder: Path, kind: str, features: tuple[str, ...], step: float,
                end: float) -> None:
    root = folder / "cleaned_dataset"
    (root / "data").mkdir(parents=True)
    (root / "metadata.csv").write_text(f"type,filename\n{kind},c1.csv\n")
    times = np.arange(0.0, end, step)
    rows = "\n".join(",".join(["1", "2", "3", "4", "5", f"{t}"]) for t in times)
    (root / "data" / "c1.csv").write_text(",".join([*features, "Time"]) + "\n" + rows + "\n")


@pytest.mark.parametrize("subset,step,end,shape", [
    ("charge", 7.0, 5020.0, (1, 251, 4)), ("discharge", 10.0, 2010.0, (1, 134, 5))])
def test_nasa_default_timing_gives_paper_shapes(tmp_path: Path, subset: str, step: float,
                                                end: float, shape: tuple[int, ...]) -> None:
    from fdbench.data.paper import NASA_FEATURES

    write_cycle(tmp_path, subset, NASA_FEATURES[subset], step, end)
    assert load_paper_nasa(tmp_path, subset)["x"].shape == shape


def test_droughts_drops_score_and_the_five_base_features() -> None:
    d = load_paper_droughts(FIXTURES / "droughts", **DROUGHT_WINDOW)
    assert d["x"].shape == (2, 10, 13) and d["fips"].tolist() == [1001, 1003]
    # value = sorted-feature index + day / 100; kept indices skip 4, 5, 6, 7, 9
    kept = [0, 1, 2, 3, 8, 10, 11, 12, 13, 14, 15, 16, 17]
    assert np.allclose(d["x"][0, 0], np.array(kept) + 0.02)  # 2011-01-01 is day 2
    assert np.allclose(d["x"][1, :, 0], 0.02 + np.arange(10) / 100)


def test_droughts_feature_nan_and_missing_day_are_errors(tmp_path: Path) -> None:
    folder = copy("droughts", tmp_path)
    path = folder / "train_timeseries" / "train_timeseries.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[5].split(",")
    row[header.index("PS")] = ""
    path.write_text("\n".join([lines[0], *lines[1:5], ",".join(row), *lines[6:]]) + "\n")
    with pytest.raises(InputError, match=r"\['PS'\]"):
        load_paper_droughts(folder, **DROUGHT_WINDOW)
    path.write_text("\n".join([lines[0], *lines[1:5], *lines[6:]]) + "\n")
    with pytest.raises(InputError, match="fips 1003 has 9 of the 10 days"):
        load_paper_droughts(folder, **DROUGHT_WINDOW)


def test_missing_folder_and_columns_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="mitbih_train.csv: no such file"):
        load_paper_ecg(tmp_path)
    folder = copy("ecg", tmp_path)
    (folder / "mitbih_test.csv").write_text("1,2,3\n")
    with pytest.raises(InputError, match="mitbih_test.csv: expected 188 columns"):
        load_paper_ecg(folder)
    stocks = tmp_path / "n" / "stocks"
    stocks.mkdir(parents=True)
    (stocks / "X.csv").write_text("Date,Open\n2019-01-02,1\n")
    with pytest.raises(InputError, match=r"X.csv: missing column"):
        load_paper_nasdaq(tmp_path / "n")
    with pytest.raises(ConfigError):
        load_paper_nasa(FIXTURES / "nasa", "impedance")


def test_ecg_nan_rows_are_dropped_with_a_count(tmp_path: Path, capsys) -> None:
    folder = copy("ecg", tmp_path)
    path = folder / "mitbih_train.csv"
    lines = path.read_text().splitlines()
    lines[2] = "nan," + lines[2].split(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    assert load_paper_ecg(folder)["x"].shape == (5, 187, 1)
    assert "dropped 1 row(s)" in capsys.readouterr().err


def test_prepare_caches_reuses_and_invalidates(tmp_path: Path) -> None:
    folder, cache = copy("nasdaq", tmp_path), tmp_path / "cache"
    first, reused = prepare("nasdaq", folder, cache_dir=cache, **NASDAQ_WINDOW)
    assert not reused and first.parent == cache
    again, reused = prepare("nasdaq", folder, cache_dir=cache, **NASDAQ_WINDOW)
    assert reused and again == first
    split = load_dataset(str(first), seed=0, test_fraction=0.5)  # the cache is a data file
    assert split.train.shape == (1, 6, 5)
    other, _ = prepare("nasdaq", folder, cache_dir=cache, **{**NASDAQ_WINDOW,
                                                                "end": "2019-01-09",
                                                                "n_days": 5})
    assert other != first  # parameters are part of the key
    stock = folder / "stocks" / "AAA.csv"
    stock.write_text(stock.read_text().replace("1000\n", "1001\n", 1))
    changed, reused = prepare("nasdaq", folder, cache_dir=cache, **NASDAQ_WINDOW)
    assert not reused and changed != first  # a changed source file is a new key


def test_prepare_writes_nothing_on_failure(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(InputError):
        prepare("nasdaq", FIXTURES / "nasdaq", cache_dir=cache)  # default 2019 window
    assert not cache.exists() or not any(cache.iterdir())
    with pytest.raises(InputError, match="no such folder"):
        cache_key("ecg", tmp_path / "absent", {})


def test_cli_prepare(tmp_path: Path, capsys) -> None:
    args = ["data", "prepare", "nasa-charge", "--path", str(FIXTURES / "nasa"),
            "--cache-dir", str(tmp_path), "--option", "cutoff_s=100", "--option", "bin_s=10"]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(args) == 0 and "reused" in capsys.readouterr().out
    assert main(["data", "prepare", "ecg", "--path", str(tmp_path / "none"),
                 "--cache-dir", str(tmp_path)]) == 2
    assert "no such folder" in capsys.readouterr().err
