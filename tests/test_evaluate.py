"""``fdbench evaluate``: a good samples file gives the table and a JSON with every judge and
both references; each kind of bad input ends with one ``fdbench: error:`` line, exit code
2, no JSON, and no judge run (the checks come before any compute)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fdbench.judges
from fdbench.cli import main
from fdbench.data import load_dataset
from fdbench.judges import JUDGE_KEYS


@pytest.fixture(scope="module")
def ecg_train() -> np.ndarray:
    return load_dataset("ecg").train.numpy()


def test_evaluate_writes_the_table_and_json(tmp_path, ecg_train, capsys):
    rng = np.random.default_rng(0)
    samples = ecg_train[:40, :, 0] + 0.01 * rng.standard_normal((40, 187))  # (B, N) form
    np.save(tmp_path / "samples.npy", samples.astype(np.float32))
    out = tmp_path / "new" / "scores.json"
    assert main(["evaluate", str(tmp_path / "samples.npy"), "--data", "ecg",
                 "--json", str(out), "--repeats", "1", "--seed", "2"]) == 0
    result = json.loads(out.read_text())
    for row in (result, result["reference"], result["dummy"]):
        assert set(JUDGE_KEYS) <= set(row)
        assert all(isinstance(row[k], (int, float)) for k in JUDGE_KEYS if "_se" not in k)
    assert result["n_samples"] == 40 and result["n_held_out"] == 92
    assert result["reference"]["n_samples"] == 40
    assert result["dummy"]["discriminative_score"] >= 0.3
    assert result["settings"]["seed"] == 2 and result["data"] == "ecg"
    printed = capsys.readouterr().out
    assert "real vs real" in printed and "discriminative" in printed and str(out) in printed


def test_evaluate_help_explains_the_judges(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("indistinguishable", "predictive", "memorisation", "copies", "mdd", "dummy"):
        assert word in text


def _bad_inputs(tmp_path, train: np.ndarray) -> dict[str, tuple[list[str], str]]:
    good = tmp_path / "good.npy"
    np.save(good, train[:20])
    nan = train[:20].copy()
    nan[3, 50, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "short.npy", train[:20, :100])
    np.save(tmp_path / "channels.npy", np.repeat(train[:20], 2, axis=2))
    np.save(tmp_path / "few.npy", train[:5])
    (tmp_path / "text.npy").write_text("not an array\n")
    (tmp_path / "a_file").write_text("")
    return {
        "shape": (["short.npy", "--data", "ecg"], r"\(100, 1\); data set 'ecg' has \(187, 1\)"),
        "channels": (["channels.npy", "--data", "ecg"], r"\(187, 2\)"),
        "nan": (["nan.npy", "--data", "ecg"], r"contains 1 NaN/Inf values .*\(3, 50, 0\)"),
        "missing": (["absent.npy", "--data", "ecg"], "does not exist"),
        "unreadable": (["text.npy", "--data", "ecg"], "cannot read samples file"),
        "few": (["few.npy", "--data", "ecg"], "has 5 series"),
        "dataset": (["good.npy", "--data", "no-such-set"], "unknown dataset 'no-such-set'"),
        "json_parent_is_file": (["good.npy", "--data", "ecg", "--json",
                                 str(tmp_path / "a_file" / "out.json")], "not a directory"),
        "json_is_dir": (["good.npy", "--data", "ecg", "--json", str(tmp_path)],
                        "is a directory"),
    }


@pytest.mark.parametrize("case", ["shape", "channels", "nan", "missing", "unreadable", "few",
                                  "dataset", "json_parent_is_file", "json_is_dir"])
def test_evaluate_bad_input_exits_2_with_one_line(tmp_path, ecg_train, capsys, monkeypatch,
                                                  case):
    import re

    def no_compute(*args, **kwargs):
        raise AssertionError("judges ran before the input was validated")

    monkeypatch.setattr(fdbench.judges, "evaluate_samples", no_compute)
    argv, message = _bad_inputs(tmp_path, ecg_train)[case]
    out = tmp_path / "out.json"
    if "--json" not in argv:
        argv = [*argv, "--json", str(out)]
    argv[0] = str(tmp_path / argv[0])
    assert main(["evaluate", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fdbench: error: "), err
    assert re.search(message, err[0]), err[0]
    assert not out.exists()


def test_evaluate_against_fresh_samples_of_a_synthetic_family(tmp_path, capsys):
    """--fresh N scores against new draws of the exact sampler, not the test split."""
    from fdbench.data import fresh_samples

    samples = fresh_samples("sines", 40, seed=7).numpy()  # true samples: near real vs real
    np.save(tmp_path / "s.npy", samples)
    out = tmp_path / "scores.json"
    assert main(["evaluate", str(tmp_path / "s.npy"), "--data", "sines", "--fresh", "64",
                 "--repeats", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_held_out"] == 64 and result["held_out"] == "64 fresh series"
    assert result["discriminative_score"] < result["dummy"]["discriminative_score"]
    assert main(["evaluate", str(tmp_path / "s.npy"), "--data", "ecg", "--fresh", "64"]) == 2
    assert "no exact sampler" in capsys.readouterr().err
