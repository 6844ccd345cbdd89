"""Bring-your-own files as users save them (issue 15, item 7): BOM, ';' and tab CSVs,
gaps (refused with their line, or --dropna by series), one constant-channel rule for
every format, label columns, the chronological split with its purge, `data show` on a
file with very many channels, and no warning text before an error line."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fdbench.cli import main
from fdbench.data import LoadOptions, load_dataset, load_series_file
from fdbench.errors import ConfigError, InputError

LONG = "series,time,value,channel\n" + "".join(
    f"s{s},{t},{s * 10 + t + 0.5 * c},c{c}\n" for s in range(3) for t in range(4)
    for c in range(2))


def expected_long() -> np.ndarray:
    return np.array([[[s * 10 + t + 0.5 * c for c in range(2)] for t in range(4)]
                     for s in range(3)], dtype=np.float32)


def one_error_line(capsys, argv: list[str]) -> str:
    """Run the CLI; assert exit 2 and exactly one stderr line, the error; return it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert not caught, [str(w.message) for w in caught]  # no warning text before it
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fdbench: error: "), err
    return lines[0]


@pytest.mark.parametrize("dialect", ["bom", "semicolon", "tab", "crlf"])
def test_long_csv_dialects_read_alike(tmp_path: Path, dialect: str) -> None:
    text = {"bom": "\ufeff" + LONG, "semicolon": LONG.replace(",", ";"),
            "tab": LONG.replace(",", "\t"), "crlf": LONG.replace("\n", "\r\n")}[dialect]
    path = tmp_path / "long.csv"
    path.write_bytes(text.encode("utf-8"))
    assert np.array_equal(load_series_file(path).numpy(), expected_long())


def test_wide_csv_dialects_and_explicit_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_bytes("\ufeff1;2;3\n4;5;7\n".encode())
    assert load_series_file(path)[..., 0].tolist() == [[1, 2, 3], [4, 5, 7]]
    path.write_text("1\t2\t3\n4\t5\t7\n")
    assert load_series_file(path, LoadOptions.from_user(delimiter="tab")).shape == (2, 3, 1)
    # a ';' file read with ',' is one column of text: the message says which separator
    path.write_text("1;2;3\n4;5;7\n")
    with pytest.raises(InputError, match=r"unknown column '1;2;3' \(fields separated by "
                                         r"','\)"):
        load_series_file(path, LoadOptions(delimiter=","))
    path.write_text("1,5;2,5\n3,5;4,0\n")  # decimal commas with ';' fields
    with pytest.raises(InputError, match="decimal comma"):
        load_series_file(path)
    with pytest.raises(ConfigError, match="one character"):
        LoadOptions(delimiter=";;")


def test_unknown_column_names_the_separator(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text(LONG.replace(",", ";"))
    with pytest.raises(InputError, match=r"unknown column 'series;time;value;channel' "
                                         r"\(fields separated by ','\)"):
        load_series_file(path, LoadOptions(delimiter=","))


def test_gaps_in_wide_csv_and_arrays(tmp_path: Path, capsys) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text("1,2,3\n\n4,,6\n7,8,9\n")
    with pytest.raises(InputError, match=r"wide.csv, line 3: series 1 has a missing or "
                                         r"non-finite value \(empty\) in column 1.*--dropna"):
        load_series_file(wide)
    x = load_series_file(wide, LoadOptions(dropna=True))
    assert x[..., 0].tolist() == [[1, 2, 3], [7, 8, 9]]
    assert "--dropna dropped 1 series with a gap (line 3)" in capsys.readouterr().err
    array = np.arange(24, dtype=np.float64).reshape(4, 3, 2)
    array[2, 1, 0] = np.nan
    np.save(tmp_path / "gap.npy", array)
    with pytest.raises(InputError, match=r"series 2, step 1, channel 0.*--dropna"):
        load_series_file(tmp_path / "gap.npy")
    kept = load_series_file(tmp_path / "gap.npy", LoadOptions(dropna=True))
    assert kept.shape == (3, 3, 2) and kept[:, 0, 0].tolist() == [0.0, 6.0, 18.0]


def test_one_constant_channel_rule_for_every_format(tmp_path: Path) -> None:
    array = np.random.default_rng(0).normal(size=(5, 4, 3))
    array[..., 1] = 2.5
    np.save(tmp_path / "c.npy", array)
    np.savez(tmp_path / "c.npz", x=array)
    rows = [f"s{b},{n},{float(array[b, n, m])!r},m{m}" for b in range(5) for n in range(4)
            for m in range(3)]
    (tmp_path / "c.csv").write_text("series,time,value,channel\n" + "\n".join(rows) + "\n")
    for name in ("c.npy", "c.npz", "c.csv"):
        with pytest.raises(InputError, match=r"channel 1 of 3 is constant \(2.5\)"):
            load_series_file(tmp_path / name)
    # a constant position (the ECG beats' zero tail) is not a constant channel
    array[..., 1] = np.random.default_rng(1).normal(size=(5, 4))
    array[:, -1, :] = 0.0
    np.save(tmp_path / "tail.npy", array)
    assert load_series_file(tmp_path / "tail.npy").shape == (5, 4, 3)


def test_label_column(tmp_path: Path) -> None:
    path = tmp_path / "kaggle.csv"  # the Kaggle ECG layout: values then the class label
    path.write_text("0.1,0.5,0.9,0.0\n0.2,0.4,0.8,1.0\n0.3,0.6,0.7,0.0\n")
    assert load_series_file(path).shape == (3, 4, 1)
    x = load_series_file(path, LoadOptions(label_column="-1"))
    np.testing.assert_allclose(x[..., 0].numpy(), [[0.1, 0.5, 0.9], [0.2, 0.4, 0.8],
                                                  [0.3, 0.6, 0.7]], rtol=1e-6)
    with pytest.raises(InputError, match="outside the 4 columns"):
        load_series_file(path, LoadOptions(label_column="7"))
    long = tmp_path / "long.csv"
    long.write_text(LONG.replace("series,time,value,channel\n",
                                 "series,time,value,channel,label\n").replace(
        "\n", ",x\n").replace("label,x\n", "label\n"))
    with pytest.raises(InputError, match="unknown column 'label'"):
        load_series_file(long)
    assert np.array_equal(load_series_file(long, LoadOptions(label_column="label")).numpy(),
                          expected_long())
    np.save(tmp_path / "a.npy", np.arange(6.0).reshape(2, 3))
    with pytest.raises(InputError, match="apply to .csv files only"):
        load_series_file(tmp_path / "a.npy", LoadOptions(label_column="-1"))


def test_chronological_split_purges_one_window(tmp_path: Path) -> None:
    # 20 stride-1 windows of N = 4 over one series 0..22: window b starts at b
    series = np.arange(23.0)
    windows = np.stack([series[b:b + 4] for b in range(20)])
    np.save(tmp_path / "w.npy", windows)
    split = load_dataset(str(tmp_path / "w.npy"), options=LoadOptions(split="chronological"))
    assert split.test[:, 0, 0].tolist() == [16.0, 17.0, 18.0, 19.0]  # the last 20 %
    assert split.train[:, 0, 0].tolist() == [float(b) for b in range(13)]  # 3 purged
    shared = set(split.train[..., 0].flatten().tolist()) & \
        set(split.test[..., 0].flatten().tolist())
    assert not shared  # no time step in both parts
    random = load_dataset(str(tmp_path / "w.npy"))
    leaked = set(random.train[..., 0].flatten().tolist()) & \
        set(random.test[..., 0].flatten().tolist())
    assert leaked  # what the random split does to overlapping windows
    purged = load_dataset(str(tmp_path / "w.npy"),
                          options=LoadOptions(split="chronological", purge=1))
    assert purged.train.shape[0] == 15 and split.source["purge"] == 3
    with pytest.raises(InputError, match="smaller --purge"):
        load_dataset(str(tmp_path / "w.npy"),
                     options=LoadOptions(split="chronological", purge=16))
    with pytest.raises(ConfigError, match="--purge applies to --split chronological"):
        LoadOptions(split="random", purge=2)
    with pytest.raises(ConfigError, match="apply to data files, not the registered"):
        load_dataset("sines", options=LoadOptions(dropna=True))


def test_data_show_many_channels_draws_a_few_and_says_so(tmp_path: Path, capsys) -> None:
    x = np.random.default_rng(0).normal(size=(3, 8, 50_000)).astype(np.float32)
    np.save(tmp_path / "wide.npy", x)
    png = tmp_path / "wide.png"
    assert main(["data", "show", str(tmp_path / "wide.npy"), "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "shape: (3, 8, 50000)" in out
    assert "the figure draws the first 4 of 50000 channels" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_files_one_error_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "blank.csv").write_text("\n \n")
    (tmp_path / "latin.csv").write_bytes("series,time,value\nä,0,1\n".encode("latin-1"))
    nan = tmp_path / "nan.csv"
    nan.write_text("1,2,3\n4,nan,6\n")
    np.save(tmp_path / "s.npy", np.random.default_rng(0).normal(size=(20, 3, 1)))
    cases = {
        "empty.csv": "holds no data", "blank.csv": "holds no data",
        "latin.csv": "not UTF-8 text",
    }
    for name, words in cases.items():
        for command in (["data", "show"], ["evaluate", str(tmp_path / "s.npy"), "--data"]):
            line = one_error_line(capsys, [*command, str(tmp_path / name)])
            assert words in line and name in line
    line = one_error_line(capsys, ["data", "show", str(nan)])
    assert "line 2" in line and "--dropna" in line
    line = one_error_line(capsys, ["data", "show", str(tmp_path)])
    assert "is a directory" in line
    line = one_error_line(capsys, ["data", "show", "sines", "--delimiter", ";"])
    assert "--delimiter apply to data files, not the registered set 'sines'" in line


def test_dropna_and_split_reach_training_data(tmp_path: Path) -> None:
    """The options travel through load_dataset, and its record keeps them."""
    x = np.random.default_rng(0).normal(size=(30, 6, 2))
    x[3, 2, 1] = np.nan
    np.save(tmp_path / "gap.npy", x)
    options = LoadOptions(dropna=True, split="chronological", purge=2)
    split = load_dataset(str(tmp_path / "gap.npy"), options=options)
    assert split.train.shape[0] + split.test.shape[0] + 2 == 29
    assert split.source["options"] == options.to_dict()
    assert torch.isfinite(split.train).all()
