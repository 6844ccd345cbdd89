"""A checkpoint records where its data came from (path, sha256, loader options) and
the commands rebuild exactly that split from the record (issue 15, item 7): a model of
the user's own 225 x 64 x 4 file can be trained, run and evaluated; a moved or changed
file is one clear error naming the path and the hashes."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fdbench.cli import main
from fdbench.data import (
    DataSourceError,
    LoadOptions,
    dataset_for_checkpoint,
    load_dataset,
)
from fdbench.errors import ConfigError


def stock_like(path: Path, n: int = 225, steps: int = 64, channels: int = 4) -> Path:
    """Overlapping windows (stride 2) of a random-walk OHLC-like series, (n, N, M)."""
    walk = np.cumsum(np.random.default_rng(0).normal(size=(2 * n + steps, channels)), 0)
    np.save(path, np.stack([walk[2 * b:2 * b + steps] for b in range(n)]).astype(np.float32))
    return path


def test_split_records_file_hash_and_options(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("".join(";".join(str(v) for v in row) + "\n" for row in
                            np.random.default_rng(1).normal(size=(12, 5)).round(4)))
    options = LoadOptions(delimiter=";", split="chronological", purge=1)
    split = load_dataset(str(path), seed=3, options=options)
    source = split.source
    assert source["kind"] == "file" and source["path"] == str(path.resolve())
    assert source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert source["options"] == options.to_dict() and source["seed"] == 3
    again = dataset_for_checkpoint({"data": "semi", "data_source": source})
    assert torch.equal(again.train, split.train) and torch.equal(again.test, split.test)
    registered = load_dataset("sines", seed=2).source
    assert registered["kind"] == "registered" and registered["name"] == "sines"
    assert torch.equal(dataset_for_checkpoint({"data_source": registered}).test,
                       load_dataset("sines", seed=2).test)


def test_moved_or_changed_file_is_one_clear_error(tmp_path: Path) -> None:
    path = stock_like(tmp_path / "my.npy", n=30, steps=8, channels=2)
    meta = {"data": "my", "data_source": load_dataset(str(path)).source}
    recorded = meta["data_source"]["sha256"]
    changed = np.load(path)
    changed[0, 0, 0] += 1.0
    np.save(path, changed)
    with pytest.raises(DataSourceError, match="changed since training") as info:
        dataset_for_checkpoint(meta)
    now = hashlib.sha256(path.read_bytes()).hexdigest()
    assert str(path.resolve()) in str(info.value)
    assert recorded[:16] in str(info.value) and now[:16] in str(info.value)
    path.rename(tmp_path / "elsewhere.npy")
    with pytest.raises(DataSourceError, match=rf"{path.name} \(sha256 {recorded[:16]}.*"
                                              "missing: it was moved or deleted"):
        dataset_for_checkpoint(meta)


@pytest.mark.parametrize("meta,words", [
    ({"data": "my"}, "records its data as 'my', which is not a registered data set"),
    ({"source": "FourierDiffusion"}, "re-import it: fdbench import-fd CKPT --out DIR --data"),
    ({}, "does not say which data"),
    ({"data_source": {"kind": "url"}}, "unknown kind 'url'"),
])
def test_unresolvable_records_say_what_to_do(meta: dict, words: str) -> None:
    with pytest.raises(DataSourceError, match=words):
        dataset_for_checkpoint(meta)


def train_on(data: Path, ckpt: Path, *extra: str) -> dict:
    assert main(["train", "--data", str(data), *extra, "--out", str(ckpt), "--preset",
                 "tiny", "--steps", "2", "--eval-every", "2", "--batch-size", "8"]) == 0
    return json.loads((ckpt / "config.json").read_text())["meta"]


def test_bench_on_a_checkpoint_trained_on_my_file(tmp_path: Path, capsys) -> None:
    """`bench --checkpoint` on a model trained on my.npy scores its quality against that
    file's held-out windows (the network_off control included); once the file changes,
    bench stops with one error line before any sampling."""
    data = stock_like(tmp_path / "my.npy")
    ckpt = tmp_path / "ckpt"
    train_on(data, ckpt, "--split", "chronological")
    out = tmp_path / "bench"
    args = ["bench", "--checkpoint", str(ckpt), "--out", str(out), "--policies", "fixed",
            "--batch-sizes", "2", "--steps", "3", "--num-samples", "4", "--rounds", "1",
            "--judge-repeats", "0", "--n-boot", "5"]
    assert main(args) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    quality = {r["policy"]: r for r in records if r["kind"] == "quality"}
    assert {"uncached", "fixed", "network_off"} <= set(quality)
    assert quality["fixed"]["quality"]["paired"]["n"] == 4

    np.save(data, np.load(data)[::-1].copy())                 # same shape, other content
    capsys.readouterr()
    with warnings.catch_warnings(record=True):
        assert main([*args[:4], str(tmp_path / "again"), *args[5:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "my.npy" in err[0], err
    assert not (tmp_path / "again" / "results.jsonl").exists()


def test_train_records_the_file_and_data_ckpt_finds_it(tmp_path: Path) -> None:
    """`train --data my.npy --split chronological` records path, hash and split;
    `--data CKPT` (evaluate, train) rebuilds the same split from that record."""
    data = stock_like(tmp_path / "my.npy")
    ckpt = tmp_path / "ckpt"
    meta = train_on(data, ckpt, "--split", "chronological")
    assert meta["data"] == "my" and meta["data_source"]["path"] == str(data.resolve())
    assert meta["data_source"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert meta["data_source"]["split"] == "chronological"
    assert meta["data_source"]["purge"] == 63  # one window length
    split = dataset_for_checkpoint(meta)
    assert (split.train.shape[0], split.test.shape[0]) == (225 - 45 - 63, 45)
    via_dir = load_dataset(str(ckpt))
    assert torch.equal(via_dir.test, split.test) and torch.equal(via_dir.train, split.train)
    with pytest.raises(ConfigError, match="is a checkpoint: its data is read and split as "
                                          "recorded"):
        load_dataset(str(ckpt), options=LoadOptions(dropna=True))


@pytest.mark.slow
def test_own_data_end_to_end_train_run(tmp_path: Path, capsys) -> None:
    """The issue's path: train on my.npy (225 x 64 x 4), then `run --checkpoint` scores
    it against its own held-out windows; after the file moves, `run` stops with one
    error line before any sampling and leaves no directory."""
    data = stock_like(tmp_path / "my.npy")
    ckpt = tmp_path / "ckpt"
    train_on(data, ckpt, "--split", "chronological")
    runs = tmp_path / "runs"
    assert main(["run", "--name", "mine", "--runs-dir", str(runs), "--checkpoint",
                 str(ckpt), "--num-samples", "12", "--steps", "2", "--batch-size", "12",
                 "--judge-repeats", "1"]) == 0
    results = json.loads((runs / "mine" / "results.json").read_text())
    assert results["n_held_out"] == 45 and results["n_train"] == 117
    assert np.load(runs / "mine" / "samples.npy").shape == (12, 64, 4)
    # the report is titled by the checkpoint's own data, not the embedded ECG beats
    title = (runs / "mine" / "report" / "index.md").read_text().splitlines()[0]
    assert "ECG" not in title and "my" in title, title

    shutil.move(data, tmp_path / "moved.npy")
    capsys.readouterr()
    with warnings.catch_warnings(record=True):
        assert main(["run", "--name", "again", "--runs-dir", str(runs), "--checkpoint",
                     str(ckpt), "--num-samples", "12", "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "my.npy" in err[0] and "missing" in err[0], err
    assert not (runs / "again").exists() and not (runs / ".again.partial").exists()
