"""Bring-your-own data: the long CSV format and its validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fdbench.data import load_dataset, load_series_file
from fdbench.errors import InputError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "long.csv"
    path.write_text(text)
    return path


def long_text(n_series: int = 4, n_steps: int = 5, channels: tuple[str, ...] = ()) -> str:
    head = "series,time,value" + (",channel" if channels else "")
    rows = []
    for s in range(n_series):
        for t in reversed(range(n_steps)):  # unsorted times on purpose
            for c, ch in enumerate(channels or ("",)):
                tail = f",{ch}" if channels else ""
                rows.append(f"s{s},{t},{100 * s + 10 * c + t}{tail}")
    return "\n".join([head, *rows]) + "\n"


def test_long_csv_layout(tmp_path: Path) -> None:
    x = load_series_file(write(tmp_path, long_text(channels=("a", "b"))))
    assert x.shape == (4, 5, 2)
    assert x[2, :, 1].tolist() == [210.0, 211.0, 212.0, 213.0, 214.0]  # sorted by time
    split = load_dataset(str(tmp_path / "long.csv"), seed=0, test_fraction=0.25)
    assert split.train.shape == (3, 5, 2) and split.test.shape == (1, 5, 2)


def test_wide_csv_still_works(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("1,2,3\n4,5,7\n")
    assert torch.equal(load_series_file(path)[..., 0], torch.tensor([[1., 2, 3], [4, 5, 7]]))


def test_nan_gap_is_refused_with_its_line_or_dropped_by_series(tmp_path: Path,
                                                              capsys) -> None:
    """The issue's case: a NaN at one time step of every series used to shorten N
    silently (16 -> 15). Now: an error naming the line; --dropna drops whole series."""
    from fdbench.data import LoadOptions

    text = long_text(n_series=3, n_steps=16)
    every = text
    for s in range(3):  # time 7 of every series is a gap
        every = every.replace(f"s{s},7,{100 * s + 7}\n", f"s{s},7,nan\n")
    path = write(tmp_path, every)
    line = every.splitlines().index("s0,7,nan") + 1
    with pytest.raises(InputError, match=rf"long.csv, line {line}: series 's0' time '7' "
                                         r"has a missing or non-finite value \(nan\)"):
        load_series_file(path)
    with pytest.raises(InputError, match="no series left after --dropna"):
        load_series_file(path, LoadOptions(dropna=True))
    one = write(tmp_path, text.replace("s1,7,107\n", "s1,7,\n"))
    x = load_series_file(one, LoadOptions(dropna=True))
    assert x.shape == (2, 16, 1)  # s1 dropped whole: N is never shortened
    assert x[:, 0, 0].tolist() == [0.0, 200.0]  # s0 and s2 (values 100 s + t)
    assert "--dropna dropped 1 series with a gap (series 's1')" in capsys.readouterr().err


@pytest.mark.parametrize("text,message", [
    ("series,time\na,1\n", "missing column(s) value"),
    ("series,time,value,colour\na,1,2,red\n", "unknown column 'colour'"),
    ("series,time,value\na,0,1\na,1,2\nb,0,3\n", "ragged series"),
    ("series,time,value\na,0,1\na,0,2\n", "given twice"),
    ("series,time,value\na,0,1\na,1,1\nb,0,1\nb,1,1\n", "channel 0 of 1 is constant"),
    ("series,time,value\na,0,x\n", "'x' is not a number"),
    ("series,time,value,channel\na,0,1,u\na,0,2,v\na,1,3,u\n", "ragged channels"),
])
def test_bad_long_csv_names_file_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as error:
        load_series_file(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_cli_data_show_and_list(tmp_path: Path, capsys, monkeypatch) -> None:
    import numpy as np

    import fdbench.data
    from fdbench.cli import main

    source = tmp_path / "series.npy"
    np.save(source, np.sin(np.arange(40 * 20) / 3.0).reshape(40, 20).astype(np.float32))
    png = tmp_path / "show.png"
    assert main(["data", "show", str(source), "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "shape: (40, 20, 1)" in out and "K = floor(N/10) = 2" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = {k: fdbench.data.DATASETS[k] for k in ("sines", "bumps")}
    monkeypatch.setattr(fdbench.data, "DATASETS", keep)
    assert main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("bumps") and "512 x 100 x 1" in lines[1]
    assert main(["data", "show", "no-such-set"]) == 2
    assert "unknown dataset" in capsys.readouterr().err


@settings(max_examples=15, deadline=None)
@given(shape=st.tuples(st.integers(2, 4), st.integers(2, 6), st.integers(1, 3)),
       seed=st.integers(0, 2 ** 31 - 1))
def test_long_csv_round_trip_any_row_order(tmp_path_factory, shape, seed: int) -> None:
    """Any (B, N, M) array written as shuffled long rows loads back exactly."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    rows = [f"s{b},{n},{float(x[b, n, m])!r},c{m}" for b in range(shape[0])
            for n in range(shape[1]) for m in range(shape[2])]
    order = torch.randperm(len(rows), generator=generator).tolist()
    # series and channels are numbered by first appearance: put one full row of the
    # canonical order first so the expected layout is known
    first = [f"s{b},0,{float(x[b, 0, m])!r},c{m}" for b in range(shape[0])
             for m in range(shape[2])]
    body = first + [rows[i] for i in order if rows[i].split(",")[1] != "0"]
    path = tmp_path_factory.mktemp("rt") / "long.csv"
    path.write_text("series,time,value,channel\n" + "\n".join(body) + "\n")
    assert torch.equal(load_series_file(path), x.to(torch.float32))
