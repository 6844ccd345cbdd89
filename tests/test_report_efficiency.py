"""scripts/efficiency.py results in the report's Speed section
(``fdbench.report.efficiency``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fdbench.cache.step_profile import STAGES
from fdbench.errors import InputError
from fdbench.report import render_report
from fdbench.report.efficiency import efficiency_tables


def result() -> dict:
    row = {"policy": "e2crf", "batch": 64, "steps": 200, "repeats": 3,
           "wall_speedup": 2.286, "wall_speedup_iqr": [2.265, 2.363],
           "flop_speedup_planned": 3.006, "flop_speedup_paid": 2.917, "efficiency": 0.784,
           "padded_planned_ratio": 0.970, "decision_share": 0.0552}
    profile = {"policy": "uncached", "batch": 64, "n_steps": 50, "total_ms_per_call": 59.9,
               "per_call_ms": {s: float(i) for i, s in enumerate(STAGES)}}
    return {"settings": {"ragged": "auto", "compile": False, "device": "cpu"}, "threads": 1,
            "torch": "2.13.0", "timing": {"shipped": [row]}, "profile": {"shipped": [profile]}}


def test_timing_and_profile_tables() -> None:
    timing, profile = efficiency_tables([result()])
    assert timing.rows == [["shipped", "e2crf", "64", "200", "3", "2.29x (2.27-2.36)",
                            "3.01x", "2.92x", "0.78", "0.970", "5.5 %"]]
    assert profile.header[4:-1] == list(STAGES)
    assert profile.rows[0][4:6] == ["0.000", "1.000"] and profile.rows[0][-1] == "59.900"
    assert "threads 1" in timing.settings and "ragged auto" in timing.settings


def test_compiled_run_gets_the_compiled_baseline_columns() -> None:
    compiled = result()
    compiled["settings"]["compile"] = True
    compiled["timing"]["shipped"][0].update({"wall_speedup_vs_compiled": 0.87,
                                             "wall_speedup_vs_compiled_iqr": [0.85, 0.87],
                                             "efficiency_vs_compiled": 0.294})
    timing = efficiency_tables([compiled])[0]
    assert timing.header[-2:] == ["vs compiled uncached (IQR)", "wall/FLOP vs compiled"]
    assert timing.rows[0][-2:] == ["0.87x (0.85-0.87)", "0.29"]
    assert len(efficiency_tables([result()])[0].header) == 11     # eager: no such columns


def test_report_renders_them_in_the_speed_section(tmp_path: Path) -> None:
    source = tmp_path / "eff"
    source.mkdir()
    (source / "efficiency_batch64.json").write_text(json.dumps(result()))
    render_report([source], tmp_path / "out")
    markdown = (tmp_path / "out" / "index.md").read_text(encoding="utf-8")
    speed = markdown.split("## Speed", 1)[1].split("\n## ", 1)[0]
    assert "| shipped | e2crf | 64 | 200 | 3 | 2.29x (2.27-2.36) |" in speed


def test_a_file_without_timing_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "eff"
    source.mkdir()
    (source / "efficiency.json").write_text(json.dumps({"profile": {}}))
    with pytest.raises(InputError, match="not a scripts/efficiency.py result"):
        render_report([source], tmp_path / "out")
