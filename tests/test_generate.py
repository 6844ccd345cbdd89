"""``fdbench sample`` with the solver options (the shipped ECG checkpoint, a few steps)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fdbench.cli import main
from fdbench.run import shipped_checkpoint


@pytest.mark.parametrize("options", [["--solver", "ode_heun", "--grid", "edm"],
                                     ["--solver", "ddim", "--eta", "1.0"],
                                     ["--solver", "dpmpp_2m", "--grid", "log_snr"]])
def test_sample_with_a_solver_writes_series(tmp_path, options) -> None:
    out = tmp_path / "samples.npy"
    code = main(["sample", "--checkpoint", str(shipped_checkpoint()), "--num-samples", "2",
                 "--steps", "3", "--out", str(out), *options])
    samples = np.load(out)
    assert code == 0 and samples.shape == (2, 187, 1) and np.isfinite(samples).all()


@pytest.mark.parametrize(("options", "message"), [
    (["--solver", "rk4"], "SolverConfig.name must be one of"),
    (["--grid", "cosine"], "SolverConfig.grid must be one of"),
    (["--eta", "0.5"], "SolverConfig.eta must be 0 unless name is 'ddim'"),
    (["--solver", "ddim", "--eta", "2"], r"SolverConfig.eta must be in \[0, 1\]")])
def test_bad_solver_options_exit_2_with_one_line(tmp_path, capsys, options, message) -> None:
    out = tmp_path / "samples.npy"
    code = main(["sample", "--checkpoint", str(shipped_checkpoint()), "--num-samples", "2",
                 "--steps", "3", "--out", str(out), *options])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
