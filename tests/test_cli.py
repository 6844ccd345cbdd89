"""The fdbench command: end-to-end on tiny inputs, and one clear error (exit 2) for each
kind of bad input, with nothing half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fdbench.checkpoint import save_checkpoint
from fdbench.cli import main
from fdbench.data import load_dataset
from fdbench.data.standardise import Standardiser
from fdbench.model import ModelConfig, build_model
from fdbench.pipeline import ScoreModel, to_domain
from fdbench.run import _shard
from fdbench.sde import VPSDE


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def write_npy(path, array) -> str:
    np.save(path, np.asarray(array, dtype=np.float32))
    return str(path)


@pytest.fixture(scope="module")
def ecg_shaped_checkpoint(tmp_path_factory):
    """An untrained tiny bins model on the ECG shape (187, 1): enough to exercise `run`."""
    data = load_dataset("ecg")
    config = ModelConfig.from_preset("tiny", 187, 1, layout="bins")
    model = ScoreModel(build_model(config).eval(), VPSDE(),
                       Standardiser.fit(to_domain(data.train, True)), {"command": "test"})
    return save_checkpoint(tmp_path_factory.mktemp("ckpt"), model)


def test_help_explains_every_command(capsys) -> None:
    for command in ("train", "sample", "run"):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(command, "--help")
        assert exit_info.value.code == 0
    assert "resume" in capsys.readouterr().out


def test_train_then_sample_end_to_end(tmp_path, capsys) -> None:
    data = torch.randn(40, 12, 1, generator=torch.Generator().manual_seed(0))
    source = write_npy(tmp_path / "series.npy", data)
    out = tmp_path / "ckpt"
    assert run_cli("train", "--data", source, "--out", out, "--preset", "tiny", "--steps",
                   "6", "--eval-every", "3", "--batch-size", "8") == 0
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    assert json.loads((out / "config.json").read_text())["meta"]["command"].startswith(
        "fdbench")
    samples = tmp_path / "samples.npy"
    assert run_cli("sample", "--checkpoint", out, "--num-samples", "3", "--steps", "4",
                   "--out", samples) == 0
    assert np.load(samples).shape == (3, 12, 1)


def test_run_writes_results_and_figure(tmp_path, ecg_shaped_checkpoint) -> None:
    runs = tmp_path / "runs"
    assert run_cli("run", "--name", "smoke", "--runs-dir", runs, "--checkpoint",
                   ecg_shaped_checkpoint, "--num-samples", "12", "--steps", "3",
                   "--batch-size", "8", "--judge-repeats", "1") == 0
    results = json.loads((runs / "smoke" / "results.json").read_text())
    for key in ("generated", "real_vs_real", "dummy_mean_beat"):
        assert results["metrics"][key]["sw_time"]["mean"] > 0
    assert np.load(runs / "smoke" / "samples.npy").shape == (12, 187, 1)
    assert np.load(runs / "smoke" / "samples_network_off.npy").shape == (12, 187, 1)
    for key in ("generated", "cached", "network_off", "real_vs_real", "dummy"):
        assert 0 <= results["judges"][key]["discriminative_score"] <= 0.5
    assert results["model_fit"]["judge"] == "discriminative_score"
    assert (runs / "smoke" / "samples.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in runs.iterdir()] == ["smoke"]  # no partial directory left
    html = (runs / "smoke" / "report" / "index.html").read_text()
    assert "data:image/png;base64," in html          # the run ends by writing its report
    traces = json.loads((runs / "smoke" / "traces.json").read_text())
    assert len(traces["e2crf"]["executed_fraction"]) == 3   # one value per solver step


def test_finished_sample_batches_are_reused(tmp_path, ecg_shaped_checkpoint) -> None:
    """An interrupted run resumes: a finished shard is loaded, not regenerated."""
    from fdbench.checkpoint import load_checkpoint

    model = load_checkpoint(ecg_shaped_checkpoint)
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "uncached-0000000_2.npy", np.full((2, 187, 1), 7.0, dtype=np.float32))
    (shards / "uncached-0000000_2.json").write_text('{"seconds": 1.0, "cache": null}')
    reused, info = _shard(model, shards, 0, 2, n_steps=3, seed=0, cache=None, progress=False)
    assert torch.all(reused == 7.0) and info["seconds"] == 1.0
    fresh, info = _shard(model, shards, 2, 1, n_steps=3, seed=0, cache=None, progress=False)
    assert not torch.all(fresh == 7.0) and info["seconds"] > 0
    assert (shards / "uncached-0000002_1.npy").exists()


@pytest.mark.parametrize("array,message", [
    (np.array([[[np.nan]] * 8] * 4), "NaN"),
    (np.array([[[np.inf]] * 8] * 4), "Inf"),
    (np.zeros((4, 1, 1)), "N >= 2"),
    (np.zeros((4, 8, 0)), "M = 0"),
    (np.zeros((2, 3, 4, 5)), "shape"),
])
def test_bad_data_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, array,
                                                           message) -> None:
    source = tmp_path / "bad.npy"
    np.save(source, array.astype(np.float32))
    out = tmp_path / "out"
    assert run_cli("train", "--data", source, "--out", out, "--preset", "tiny") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fdbench: error:")
    assert message in err[0], err[0]
    assert not out.exists()


def test_unknown_preset_missing_file_and_unknown_dataset(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert run_cli("train", "--data", "sines", "--out", out, "--preset", "huge") == 2
    assert "preset" in capsys.readouterr().err
    assert run_cli("train", "--data", tmp_path / "missing.npy", "--out", out) == 2
    assert "missing.npy" in capsys.readouterr().err
    assert run_cli("train", "--data", "no-such-data", "--out", out) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert not out.exists()


def test_corrupt_or_missing_checkpoint_exits_2(tmp_path, capsys, ecg_shaped_checkpoint) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors"):
        (broken / name).write_bytes((ecg_shaped_checkpoint / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    out = tmp_path / "s.npy"
    assert run_cli("sample", "--checkpoint", broken, "--num-samples", "2", "--out", out) == 2
    assert "corrupt" in capsys.readouterr().err
    assert run_cli("sample", "--checkpoint", tmp_path / "nowhere", "--num-samples", "2",
                   "--out", out) == 2
    assert "not found" in capsys.readouterr().err
    assert not out.exists()


def test_bad_argument_values_exit_2_with_one_line(tmp_path, capsys) -> None:
    for args in (["sample", "--checkpoint", tmp_path, "--num-samples", "0", "--out", "x.npy"],
                 ["train", "--out", tmp_path / "o", "--steps", "-3"],
                 ["run", "--threads", "0"]):
        assert run_cli(*args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("fdbench: error: "), err
        assert "must be >= " in err[0] and "--help" in err[0]


def test_bench_with_an_unknown_policy_exits_2(tmp_path, capsys, ecg_shaped_checkpoint) -> None:
    assert run_cli("bench", "--checkpoint", ecg_shaped_checkpoint, "--policies", "teleport",
                   "--out", tmp_path / "b") == 2
    assert "unknown cache policy" in capsys.readouterr().err
    assert run_cli("bench", "--checkpoint", ecg_shaped_checkpoint, "--policies",
                   "e2crf:tau_0=-1", "--out", tmp_path / "b") == 2
    assert "tau_0" in capsys.readouterr().err
    assert not (tmp_path / "b" / "results.jsonl").exists()


def test_sample_with_a_cache_or_the_network_off_control(tmp_path, ecg_shaped_checkpoint) -> None:
    """`sample --cache SPEC` saves cached and control samples under the same noise."""
    paths = {spec: tmp_path / f"{spec.split(':')[0]}.npy"
             for spec in ("uncached", "network_off", "fora:cache_interval=2")}
    for spec, out in paths.items():
        assert run_cli("sample", "--checkpoint", ecg_shaped_checkpoint, "--num-samples", "2",
                       "--steps", "4", "--cache", spec, "--out", out) == 0
    uncached, off, fora = (np.load(p) for p in paths.values())
    assert uncached.shape == off.shape == fora.shape == (2, 187, 1)
    assert not np.array_equal(uncached, off)       # the control really drops the network
    assert not np.array_equal(uncached, fora)      # the cache really reuses


def test_sample_refuses_a_bad_cache_or_output_before_sampling(tmp_path, capsys,
                                                              ecg_shaped_checkpoint) -> None:
    out = tmp_path / "s.npy"
    assert run_cli("sample", "--checkpoint", ecg_shaped_checkpoint, "--num-samples", "2",
                   "--cache", "teleport", "--out", out) == 2
    assert "unknown cache policy" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert run_cli("sample", "--checkpoint", ecg_shaped_checkpoint, "--num-samples", "2",
                   "--out", tmp_path / "afile" / "y.npy") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a directory" in err[0]
    assert not out.exists()


def test_sample_refuses_weights_that_give_nan(tmp_path, capsys, ecg_shaped_checkpoint) -> None:
    """Weights overwritten with 0xFF (NaN floats) are refused at load, before sampling: by
    the recorded sha256 (tests/test_checkpoint.py: by the finite check without one)."""
    broken = tmp_path / "nan"
    broken.mkdir()
    for name in ("config.json", "model.safetensors"):
        (broken / name).write_bytes((ecg_shaped_checkpoint / name).read_bytes())
    raw = bytearray((broken / "model.safetensors").read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 4000] = b"\xff" * 4000
    (broken / "model.safetensors").write_bytes(bytes(raw))
    out = tmp_path / "s.npy"
    assert run_cli("sample", "--checkpoint", broken, "--num-samples", "2", "--steps", "3",
                   "--out", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt" in err[0] and "sha256" in err[0], err
    assert not out.exists()


# ---- issue 15: fast help, version, validation before compute, progress ----------------


def test_import_and_every_help_page_stay_off_torch_and_numpy() -> None:
    """`fdbench --help` and `fdbench CMD --help` must not pay for torch: build the parser
    and format every subcommand's help in a fresh interpreter, then look at sys.modules."""
    import subprocess
    import sys

    code = ("import sys, argparse, fdbench.cli as cli\n"
            "parser = cli.build_parser()\n"
            "parser.format_help()\n"
            "todo = [parser]\n"
            "while todo:\n"
            "    p = todo.pop()\n"
            "    p.format_help()\n"
            "    for a in p._actions:\n"
            "        if isinstance(a, argparse._SubParsersAction):\n"
            "            todo.extend(a.choices.values())\n"
            "heavy = sorted(m for m in ('torch', 'numpy', 'scipy', 'matplotlib') "
            "if m in sys.modules)\n"
            "print(heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_version(capsys) -> None:
    from fdbench import __version__

    with pytest.raises(SystemExit) as exit_info:
        run_cli("--version")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fdbench {__version__}"


def test_bench_help_lists_every_registered_policy_with_its_knobs(capsys) -> None:
    from dataclasses import fields

    from fdbench.cache import POLICIES, POLICY_PRESETS
    from fdbench.cli_help import POLICY_CATALOG, render_policy_catalog

    assert POLICY_CATALOG == render_policy_catalog(), (
        "fdbench/cli_help.py POLICY_CATALOG is stale: regenerate it (see its docstring)")
    with pytest.raises(SystemExit):
        run_cli("bench", "--help")
    text = " ".join(capsys.readouterr().out.split())
    for name in POLICIES:
        assert f" {name}: " in text, name
        assert all(f"{f.name}=" in text for f in fields(POLICIES[name].config_class()))
    for name in POLICY_PRESETS:
        assert f"preset {name}" in text, name


def test_solver_and_grid_names_in_help_match_the_registries() -> None:
    from fdbench.cli_help import GRID_NAMES, SOLVER_NAMES
    from fdbench.solvers import SOLVERS
    from fdbench.time_grids import GRIDS

    assert SOLVER_NAMES == tuple(SOLVERS) and GRID_NAMES == tuple(GRIDS)


def test_sweep_methods_take_commas_and_spaces() -> None:
    from fdbench.cli import build_parser

    args = build_parser().parse_args(["bench", "--sweep", "--sweep-methods", "fora,toca",
                                      "fixed"])
    assert args.sweep_methods == ["fora", "toca", "fixed"]


def test_one_solver_step_is_refused_by_the_parser_with_the_reason(tmp_path, capsys) -> None:
    assert run_cli("sample", "--checkpoint", "ecg", "--num-samples", "2", "--solver",
                   "ode_heun", "--steps", "1", "--out", tmp_path / "s.npy") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --steps: must be >= 2" in err[0], err
    assert "no step to take" in err[0]


@pytest.fixture()
def a_file(tmp_path):
    path = tmp_path / "afile"
    path.write_text("a regular file")
    return path


def _out_path_cases(a_file, checkpoint) -> dict[str, list]:
    """Every command's output option pointed through a regular file."""
    samples = a_file.parent / "samples.npy"
    np.save(samples, np.zeros((20, 187, 1), dtype=np.float32))
    return {
        "sample": ["sample", "--checkpoint", checkpoint, "--num-samples", "2", "--steps", "3",
                   "--out", a_file / "y.npy"],
        "bench": ["bench", "--checkpoint", checkpoint, "--out", a_file / "d"],
        "bench_file": ["bench", "--checkpoint", checkpoint, "--out", a_file],
        "report": ["report", a_file.parent, "--out", a_file / "r"],
        "check": ["check", "--quick", "--json", a_file / "x.json"],
        "evaluate": ["evaluate", samples, "--data", "ecg", "--json", a_file / "x.json"],
        "calibrate": ["calibrate", "teacache", "--checkpoint", checkpoint, "--out",
                      a_file / "c.json"],
        "train": ["train", "--data", "sines", "--out", a_file / "ckpt"],
        "run": ["run", "--runs-dir", a_file, "--checkpoint", checkpoint],
    }


@pytest.mark.parametrize("case", ["sample", "bench", "bench_file", "report", "check",
                                  "evaluate", "calibrate", "train", "run"])
def test_output_paths_through_a_file_are_refused_before_compute(a_file, capsys, monkeypatch,
                                                                case,
                                                                ecg_shaped_checkpoint) -> None:
    """No FileExistsError/NotADirectoryError after the work: one line, exit 2, and no
    checkpoint loaded, data read or claim run before the refusal."""
    import fdbench.bench
    import fdbench.checkpoint
    import fdbench.data

    def too_late(*args, **kwargs):
        raise AssertionError("work started before the output path was checked")

    for module in (fdbench.checkpoint, fdbench.bench):
        monkeypatch.setattr(module, "load_checkpoint", too_late)
    monkeypatch.setattr(fdbench.data, "load_dataset", too_late)
    argv = _out_path_cases(a_file, ecg_shaped_checkpoint)[case]
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fdbench: error: "), err
    assert "not a directory" in err[0], err[0]


@pytest.mark.parametrize(("argv", "message"), [
    (["sample", "--num-samples", "2", "--steps", "3", "--cache", "teleport"],
     "unknown cache policy"),
    (["sample", "--num-samples", "2", "--steps", "3", "--cache", "e2crf:tau_0=-1"], "tau_0"),
    (["sample", "--num-samples", "2", "--steps", "3", "--eta", "0.5"], "SolverConfig.eta"),
    (["sample", "--num-samples", "2", "--steps", "3", "--solver", "ode_euler",
      "--noise-free-last-step"], "noise_free_last_step"),
    (["bench", "--policies", "teleport"], "unknown cache policy"),
    (["bench", "--policies", "fora:nosuch=1"], "no field 'nosuch'"),
    (["bench", "--num-samples", "4"], "num_samples must be >= "),
    (["calibrate", "teacache", "--steps", "3", "--out", "TMP"], "is a directory"),
])
def test_bad_settings_are_refused_before_the_checkpoint_loads(tmp_path, capsys, monkeypatch,
                                                              ecg_shaped_checkpoint, argv,
                                                              message) -> None:
    import fdbench.bench
    import fdbench.checkpoint

    def too_late(*args, **kwargs):
        raise AssertionError("the checkpoint loaded before the settings were checked")

    for module in (fdbench.checkpoint, fdbench.bench):
        monkeypatch.setattr(module, "load_checkpoint", too_late)
    full = [tmp_path if a == "TMP" else a for a in argv] + ["--checkpoint",
                                                          ecg_shaped_checkpoint]
    if argv[0] != "calibrate":
        full += ["--out", tmp_path / ("s.npy" if argv[0] == "sample" else "b")]
    assert run_cli(*full) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fdbench: error: "), err
    assert message in err[0], err[0]
    assert not any(tmp_path.iterdir())


def test_progress_is_one_line_per_stage_off_a_terminal_and_a_bar_on_one(
        tmp_path, capsys, monkeypatch, ecg_shaped_checkpoint) -> None:
    import fdbench.progress

    argv = ["sample", "--checkpoint", ecg_shaped_checkpoint, "--num-samples", "3",
            "--batch-size", "2", "--steps", "3"]
    assert run_cli(*argv, "--out", tmp_path / "a.npy") == 0
    captured = capsys.readouterr()
    summaries = [line for line in captured.out.splitlines() if line.startswith("sampling")]
    assert len(summaries) == 1, captured.out
    assert "3 series, em T=3, 2 batch(es) in " in summaries[0]
    assert "batches" not in captured.err
    monkeypatch.setattr(fdbench.progress, "on_terminal", lambda: True)
    assert run_cli(*argv, "--out", tmp_path / "b.npy") == 0
    captured = capsys.readouterr()
    assert "sampling (uncached) (batches)" in captured.err       # tqdm's bar
    assert not any(line.startswith("sampling") for line in captured.out.splitlines())


def test_run_refuses_too_few_samples_by_the_judges_minimum() -> None:
    from fdbench.cli import MIN_JUDGED
    from fdbench.judges import MIN_SERIES

    assert MIN_JUDGED == MIN_SERIES
