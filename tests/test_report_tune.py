"""``fdbench tune --all`` results in the report (``fdbench.report.tune_tables``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fdbench.errors import InputError
from fdbench.report import render_report
from fdbench.report.tune_tables import tune_findings, tune_tables


def result(target: str = "paired_error<=0.01") -> dict:
    settings = {"search_samples": 16, "num_samples": 64, "batch_size": 32, "threads": 2}
    return {"target": target, "metric": "paired_error", "baseline": "em/uniform T=1000",
            "settings": settings, "best_solver": "--solver ddim --steps 12",
            "rows": [{"method": "fora", "cli": "--cache fora:cache_interval=3",
                      "flop_speedup": 2.9, "wall": {"speedup": 2.5, "iqr": [2.4, 2.6]},
                      "validation": {"value": 0.0042, "se": 0.0002,
                                     "interval": [0.0038, 0.0046], "met": True},
                      "status": "met"},
                     {"method": "naive_kv", "cli": None, "flop_speedup": None,
                      "status": "unmet", "reason": "best value seen 0.36"}]}


def test_one_table_per_target_with_the_tuners_rows() -> None:
    tables = tune_tables([result(), result("paired_error<=0.03")])
    assert len(tables) == 2
    fora, naive = tables[0].rows
    assert fora == ["fora", "`--cache fora:cache_interval=3`", "2.90x", "2.50x (2.40-2.60)",
                    "0.0042 +- 0.0002 [0.0038, 0.0046]", "yes"]
    assert naive[-1] == "unmet: best value seen 0.36"
    assert "paired_error<=0.03" in tables[1].settings and "64" in tables[1].settings


def test_report_renders_the_tune_section(tmp_path: Path) -> None:
    source = tmp_path / "tune"
    source.mkdir()
    (source / "tune_all_paired_error_le_0.01.json").write_text(json.dumps(result()))
    render_report([source], tmp_path / "out")
    markdown = (tmp_path / "out" / "index.md").read_text(encoding="utf-8")
    section = markdown.split("## Tuned at equal quality", 1)[1].split("\n## ", 1)[0]
    assert "| fora | `--cache fora:cache_interval=3` | 2.90x |" in section


def test_a_file_without_rows_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "tune"
    source.mkdir()
    (source / "tune_all_x.json").write_text(json.dumps({"target": "x"}))
    with pytest.raises(InputError, match="not an fdbench tune result"):
        render_report([source], tmp_path / "out")


def test_findings_rank_the_methods_that_met_the_target() -> None:
    two = result()
    two["rows"].insert(0, {"method": "e2crf", "cli": "--cache e2crf:tau_0=0.5",
                           "flop_speedup": 2.1, "status": "met"})
    two["rows"].append({"method": "toca", "cli": "--cache toca:cache_interval=1",
                        "flop_speedup": 0.95, "status": "met"})     # met only by not caching
    (line,) = tune_findings([two])
    assert "fora 2.90x FLOPs / 2.50x wall; e2crf 2.10x FLOPs" in line
    assert "E²-CRF ranks 2 of 2 by FLOPs" in line
    assert "Not met (or no faster than uncached): naive_kv, toca" in line


def test_a_cache_no_faster_than_its_solver_alone_is_marked() -> None:
    """A cache on the best solver that met the target only at interval 1 (no caching) has
    the solver's own FLOP speedup: "met", but it adds nothing on top of the solver."""
    from fdbench.tune.table import row_cells, solver_speedups

    rows = [{"method": "fewer_steps:dpmpp_2m", "label": "uncached @ dpmpp_2m/log_snr T=24",
             "cli": "--solver dpmpp_2m --steps 24", "flop_speedup": 41.67, "status": "met"},
            {"method": "duca", "on": "dpmpp_2m/log_snr T=24", "cli": "--cache duca:c=1",
             "flop_speedup": 41.67, "status": "met"},
            {"method": "fora", "on": "dpmpp_2m/log_snr T=24", "cli": "--cache fora:c=2",
             "flop_speedup": 55.5, "status": "met"}]
    solvers = solver_speedups(rows)
    assert solvers == {"dpmpp_2m/log_snr T=24": 41.67}
    assert row_cells(rows[1], solvers)[-1] == \
        "yes, but only at a setting no faster than dpmpp_2m/log_snr T=24 alone"
    assert row_cells(rows[2], solvers)[-1] == "yes"
    assert row_cells(rows[1])[-1] == "yes"        # without the solver rows: against uncached
