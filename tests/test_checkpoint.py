"""Checkpoints: the weights' sha256 recorded at save and checked at load, every tensor
checked finite, corrupt or replaced weights refused with one ``fdbench: error:`` line
(exit 2), and the shipped models named by short names everywhere a --checkpoint is taken."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from fdbench.argtypes import SHIPPED_CHECKPOINTS, SHIPPED_DIR, resolve_checkpoint
from fdbench.checkpoint import (
    CONFIG_FILE,
    HASH_KEY,
    WEIGHTS_FILE,
    load_checkpoint,
    save_checkpoint,
    weights_sha256,
)
from fdbench.cli import main
from fdbench.errors import CheckpointError
from tests.conftest import make_score_model


@pytest.fixture()
def saved(tiny_split, tmp_path):
    return save_checkpoint(tmp_path / "ckpt", make_score_model(tiny_split).to("cpu"))


def _config(directory) -> dict:
    return json.loads((directory / CONFIG_FILE).read_text())


def _drop_hash(directory) -> None:
    config = _config(directory)
    del config[HASH_KEY]
    (directory / CONFIG_FILE).write_text(json.dumps(config))


def _replace_a_weight(directory, value: float) -> None:
    """A valid safetensors file with one weight changed: what a swapped file looks like."""
    tensors = load_file(directory / WEIGHTS_FILE)
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1
                and not k.startswith("standardiser."))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = value
    save_file(tensors, directory / WEIGHTS_FILE)


def test_save_records_the_sha256_of_the_weights(saved) -> None:
    assert _config(saved)[HASH_KEY] == weights_sha256(saved / WEIGHTS_FILE)
    assert len(_config(saved)[HASH_KEY]) == 64
    load_checkpoint(saved)   # the recorded hash matches: loads


def test_replaced_weights_are_refused_by_their_hash(saved) -> None:
    _replace_a_weight(saved, 0.123)          # finite, parseable: only the hash can tell
    with pytest.raises(CheckpointError, match="sha256 .* differs from the .* recorded"):
        load_checkpoint(saved)


def test_a_checkpoint_without_a_hash_is_accepted(saved) -> None:
    before = load_checkpoint(saved).network.state_dict()
    _drop_hash(saved)
    after = load_checkpoint(saved).network.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_without_a_hash_too(saved, value) -> None:
    _drop_hash(saved)
    _replace_a_weight(saved, value)
    with pytest.raises(CheckpointError, match="non-finite values in 1 tensor"):
        load_checkpoint(saved)


@pytest.mark.parametrize("dirname", sorted(SHIPPED_CHECKPOINTS.values()))
def test_shipped_checkpoints_record_a_matching_hash(dirname) -> None:
    directory = SHIPPED_DIR / dirname
    assert _config(directory)[HASH_KEY] == weights_sha256(directory / WEIGHTS_FILE)


def test_short_names_resolve_to_the_shipped_checkpoints(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for short, dirname in SHIPPED_CHECKPOINTS.items():
        assert resolve_checkpoint(short) == SHIPPED_DIR / dirname
        assert resolve_checkpoint(dirname) == SHIPPED_DIR / dirname
    assert resolve_checkpoint("elsewhere/ckpt") == Path("elsewhere/ckpt")
    (tmp_path / "ecg").mkdir()              # an existing directory of that name wins
    assert resolve_checkpoint("ecg").resolve() == (tmp_path / "ecg").resolve()


def _corrupt_copy(tmp_path, *, keep_hash: bool):
    """The shipped ECG model with 40 KB of its weights overwritten by 0xFF (NaN floats),
    the issue's case; without the hash only the finite check can catch it."""
    copy = tmp_path / "corrupt"
    shutil.copytree(SHIPPED_DIR / SHIPPED_CHECKPOINTS["ecg"], copy)
    raw = bytearray((copy / WEIGHTS_FILE).read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 40_000] = b"\xff" * 40_000
    (copy / WEIGHTS_FILE).write_bytes(bytes(raw))
    if not keep_hash:
        _drop_hash(copy)
    return copy


@pytest.mark.parametrize(("keep_hash", "message"), [(True, "sha256"), (False, "non-finite")])
@pytest.mark.parametrize("command", ["sample", "bench", "calibrate"])
def test_corrupt_weights_exit_2_with_one_line(tmp_path, capsys, keep_hash, message,
                                              command) -> None:
    corrupt = _corrupt_copy(tmp_path, keep_hash=keep_hash)
    out = tmp_path / "out"
    argv = {"sample": ["sample", "--checkpoint", corrupt, "--num-samples", "2", "--steps",
                       "3", "--out", out / "s.npy"],
            "bench": ["bench", "--checkpoint", corrupt, "--steps", "3", "--num-samples", "4",
                      "--judge-repeats", "0", "--policies", "fixed", "--out", out],
            "calibrate": ["calibrate", "teacache", "--checkpoint", corrupt, "--steps", "3",
                          "--out", out / "c.json"]}[command]
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fdbench: error: corrupt checkpoint"), err
    assert message in err[0]
    assert not out.exists() or not any(out.rglob("*.npy"))


def test_sample_takes_a_short_name(tmp_path, capsys) -> None:
    out = tmp_path / "s.npy"
    assert main(["sample", "--checkpoint", "ecg", "--num-samples", "1", "--steps", "2",
                 "--out", str(out)]) == 0
    assert np.load(out).shape == (1, 187, 1)


@pytest.mark.parametrize("command", [["sample"], ["run"], ["bench"], ["check"],
                                     ["calibrate", "teacache"]])
def test_help_names_the_short_names(capsys, command) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = "".join(capsys.readouterr().out.split())   # argparse wraps at hyphens too
    assert "ecg(=ecg-bins-compact)" in text and "sines(=sines-bins-compact)" in text
