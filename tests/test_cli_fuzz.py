"""Bad command lines, many of them: each must end with exit code 2, exactly one
``fdbench: error:`` line on stderr, and no traceback, before any compute (issue 15).
Run in-process through ``fdbench.cli.main`` so the whole list takes seconds."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fdbench.checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_checkpoint
from fdbench.cli import main
from fdbench.data import load_dataset
from fdbench.data.standardise import Standardiser
from fdbench.model import ModelConfig, build_model
from fdbench.pipeline import ScoreModel, to_domain
from fdbench.sde import VPSDE

# (name, argv); placeholders: CKPT (a good tiny ECG-shaped checkpoint), NAN (its weights
# overwritten with 0xFF, hash removed), SWAPPED (weights replaced, hash kept), NOWHERE (a
# missing path), AFILE (a regular file), DIR (an empty directory), GOOD (a samples file)
S = ["sample", "--checkpoint", "CKPT", "--num-samples", "2", "--steps", "3"]
CASES = [
    ("no command", []),
    ("unknown command", ["teleport"]),
    ("unknown option", [*S, "--out", "DIR/s.npy", "--frobnicate"]),
    ("sample without arguments", ["sample"]),
    ("sample zero samples", [*S, "--num-samples", "0", "--out", "DIR/s.npy"]),
    ("sample non-integer count", [*S, "--num-samples", "two", "--out", "DIR/s.npy"]),
    ("sample one step", [*S, "--steps", "1", "--out", "DIR/s.npy"]),
    ("ode_heun one step", [*S, "--solver", "ode_heun", "--steps", "1", "--out", "DIR/s.npy"]),
    ("unknown solver", [*S, "--solver", "rk4", "--out", "DIR/s.npy"]),
    ("unknown grid", [*S, "--grid", "cosine", "--out", "DIR/s.npy"]),
    ("eta without ddim", [*S, "--eta", "0.5", "--out", "DIR/s.npy"]),
    ("eta out of range", [*S, "--solver", "ddim", "--eta", "2", "--out", "DIR/s.npy"]),
    ("noise-free last step off em", [*S, "--solver", "ode_euler", "--noise-free-last-step",
                                     "--out", "DIR/s.npy"]),
    ("unknown cache", [*S, "--cache", "teleport", "--out", "DIR/s.npy"]),
    ("bad cache value", [*S, "--cache", "e2crf:tau_0=-1", "--out", "DIR/s.npy"]),
    ("unknown cache field", [*S, "--cache", "fora:nosuch=1", "--out", "DIR/s.npy"]),
    ("cache override syntax", [*S, "--cache", "fora:cache_interval", "--out", "DIR/s.npy"]),
    ("sample out through a file", [*S, "--out", "AFILE/y.npy"]),
    ("sample out is a directory", [*S, "--out", "DIR"]),
    ("sample out not .npy", [*S, "--out", "DIR/s.txt"]),
    ("sample threads zero", [*S, "--threads", "0", "--out", "DIR/s.npy"]),
    ("missing checkpoint", ["sample", "--checkpoint", "NOWHERE", "--num-samples", "2",
                            "--out", "DIR/s.npy"]),
    ("checkpoint is a file", ["sample", "--checkpoint", "AFILE", "--num-samples", "2",
                              "--out", "DIR/s.npy"]),
    ("NaN weights", ["sample", "--checkpoint", "NAN", "--num-samples", "2", "--steps", "3",
                     "--out", "DIR/s.npy"]),
    ("replaced weights", ["sample", "--checkpoint", "SWAPPED", "--num-samples", "2",
                          "--steps", "3", "--out", "DIR/s.npy"]),
    ("bench out is a file", ["bench", "--checkpoint", "CKPT", "--out", "AFILE"]),
    ("bench out through a file", ["bench", "--checkpoint", "CKPT", "--out", "AFILE/b"]),
    ("bench unknown policy", ["bench", "--checkpoint", "CKPT", "--policies", "teleport",
                              "--out", "DIR/b"]),
    ("bench too few samples to judge", ["bench", "--checkpoint", "CKPT", "--num-samples", "4",
                                        "--out", "DIR/b"]),
    ("bench one sample without judges", ["bench", "--checkpoint", "CKPT", "--num-samples",
                                         "1", "--judge-repeats", "0", "--out", "DIR/b"]),
    ("bench zero batch", ["bench", "--checkpoint", "CKPT", "--batch-sizes", "0",
                          "--out", "DIR/b"]),
    ("bench precision", ["bench", "--checkpoint", "CKPT", "--precision", "fp8",
                         "--out", "DIR/b"]),
    ("bench one step", ["bench", "--checkpoint", "CKPT", "--steps", "1", "--out", "DIR/b"]),
    ("bench missing checkpoint", ["bench", "--checkpoint", "NOWHERE", "--out", "DIR/b"]),
    ("bench random model preset", ["bench", "--random-model", "huge", "--out", "DIR/b"]),
    ("sweep unknown method", ["bench", "--sweep", "--sweep-methods", "nosuch",
                              "--out", "DIR/b"]),
    ("sweep unknown in a comma list", ["bench", "--sweep", "--sweep-methods", "fora,nosuch",
                                       "--out", "DIR/b"]),
    ("sweep empty comma item", ["bench", "--sweep", "--sweep-methods", "fora,,toca",
                                "--out", "DIR/b"]),
    ("sweep one step", ["bench", "--sweep", "--sweep-steps", "1", "--out", "DIR/b"]),
    ("report missing input", ["report", "NOWHERE", "--out", "DIR/r"]),
    ("report out through a file", ["report", "DIR", "--out", "AFILE/r"]),
    ("check json through a file", ["check", "--quick", "--json", "AFILE/x.json"]),
    ("check missing checkpoint", ["check", "--quick", "--checkpoint", "NOWHERE"]),
    ("check unknown claim", ["check", "--quick", "--only", "Z.99"]),
    ("evaluate missing samples", ["evaluate", "DIR/none.npy", "--data", "ecg"]),
    ("evaluate unknown data", ["evaluate", "GOOD", "--data", "no-such-set"]),
    ("evaluate json through a file", ["evaluate", "GOOD", "--data", "ecg", "--json",
                                      "AFILE/x.json"]),
    ("calibrate missing checkpoint", ["calibrate", "teacache", "--checkpoint", "NOWHERE"]),
    ("calibrate out through a file", ["calibrate", "teacache", "--checkpoint", "CKPT",
                                      "--out", "AFILE/c.json"]),
    ("calibrate unknown method", ["calibrate", "fora", "--checkpoint", "CKPT"]),
    ("train out through a file", ["train", "--data", "sines", "--out", "AFILE/ckpt"]),
    ("train unknown data", ["train", "--data", "no-such-set", "--out", "DIR/ckpt"]),
    ("train unknown preset", ["train", "--data", "sines", "--preset", "huge",
                              "--out", "DIR/ckpt"]),
    ("train negative steps", ["train", "--steps", "-3", "--out", "DIR/ckpt"]),
    ("run too few samples", ["run", "--num-samples", "1", "--runs-dir", "DIR/runs"]),
    ("run runs-dir is a file", ["run", "--runs-dir", "AFILE"]),
    ("run missing checkpoint", ["run", "--checkpoint", "NOWHERE", "--runs-dir", "DIR/runs"]),
    ("data show unknown", ["data", "show", "no-such-set"]),
    ("tune unknown method", ["tune", "--checkpoint", "CKPT", "--method", "nosuch",
                             "--target", "paired_error<=0.01", "--out", "DIR/t"]),
    ("tune higher-is-better target", ["tune", "--checkpoint", "CKPT", "--all",
                                      "--target", "paired_error>=0.01", "--out", "DIR/t"]),
    ("tune zero budget", ["tune", "--checkpoint", "CKPT", "--method", "fora", "--budget",
                          "0", "--target", "paired_error<=0.01", "--out", "DIR/t"]),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fuzz")
    data = load_dataset("ecg")
    config = ModelConfig.from_preset("tiny", 187, 1, layout="bins")
    model = ScoreModel(build_model(config).eval(), VPSDE(),
                       Standardiser.fit(to_domain(data.train, True)), {"data": "ecg"})
    good = save_checkpoint(root / "ckpt", model)
    nan = root / "nan"
    shutil.copytree(good, nan)
    raw = bytearray((nan / WEIGHTS_FILE).read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 4000] = b"\xff" * 4000
    (nan / WEIGHTS_FILE).write_bytes(bytes(raw))
    stripped = json.loads((nan / CONFIG_FILE).read_text())
    stripped.pop("weights_sha256")
    (nan / CONFIG_FILE).write_text(json.dumps(stripped))
    swapped = root / "swapped"
    shutil.copytree(good, swapped)
    other = save_checkpoint(root / "other", ScoreModel(
        build_model(config, seed=1).eval(), VPSDE(), model.standardiser, {"data": "ecg"}))
    shutil.copy(other / WEIGHTS_FILE, swapped / WEIGHTS_FILE)
    (root / "afile").write_text("a regular file")
    np.save(root / "good.npy", data.train[:20].numpy())
    return {"CKPT": str(good), "NAN": str(nan), "SWAPPED": str(swapped),
            "NOWHERE": str(root / "nowhere"), "AFILE": str(root / "afile"),
            "GOOD": str(root / "good.npy")}


def _fill(argv: list[str], places: dict[str, str], directory: str) -> list[str]:
    filled = []
    for item in argv:
        head, sep, tail = item.partition("/")
        base = directory if head == "DIR" else places.get(head)
        filled.append(item if base is None else base + sep + tail)
    return filled


def test_the_list_is_long_enough() -> None:
    assert len(CASES) >= 30 and len({name for name, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("argv", [argv for _, argv in CASES],
                         ids=[name for name, _ in CASES])
def test_bad_invocation_is_one_error_line_and_exit_2(argv, places, tmp_path, capsys) -> None:
    code = main(_fill(argv, places, str(tmp_path)))
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, (code, captured.err)
    assert len(errors) == 1 and errors[0].startswith("fdbench: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not any(tmp_path.rglob("*.npy")) and not any(tmp_path.rglob("*.jsonl"))
