"""The report's solver-study section and findings (``fdbench.report.solver_study``), on
small hand-made records in the shape ``scripts/solver_study.py`` writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fdbench.errors import InputError
from fdbench.report import render_report
from fdbench.report.solver_study import solver_study_findings, solver_study_table

SETTINGS = {"checkpoint": "ecg", "n_samples": 256, "batch_size": 64, "seed": 0,
            "judge_repeats": 5}


def point(label: str, family: str, disc: float, se: float, evaluations: int,
          flop_speedup: float | None, paired: float | None = None) -> dict:
    solver = label.split(" @ ")[-1].split("/")[0]
    record = {"label": label, "family": family, "solver": solver, "grid": "g",
              "n_steps": evaluations, "settings": SETTINGS,
              "judges": {"discriminative_score": disc, "discriminative_score_se": se,
                         "predictive_score": 0.08, "sw_time": 0.03,
                         "marginal_w_time": 0.033, "memorisation_ratio": 1.3},
              "sw_time": {"value": 0.03}, "evaluations": evaluations,
              "flop_speedup": flop_speedup}
    if paired is not None:
        record["paired_error"] = paired
    return record


def study(solver_disc: float = 0.40, cache_disc: float = 0.41) -> list[dict]:
    return [point("em/uniform T=1000", "baseline", 0.43, 0.02, 1000, 1.0),
            point("network_off @ em/uniform T=1000", "control", 0.50, 0.0, 1000, None),
            point("em/uniform T=10", "solver", 0.50, 0.0, 10, 100.0),
            point("ddim/log_snr T=10", "solver", solver_disc, 0.02, 10, 100.0),
            point("ddim/log_snr T=50", "solver", 0.41, 0.02, 50, 20.0),
            point("fora:cache_interval=2 @ ddim/log_snr T=10", "cache+solver", cache_disc,
                  0.02, 10, 166.0, paired=0.10),
            point("freqca:cache_interval=3 @ ddim/log_snr T=10", "cache+solver", 0.50, 0.0,
                  10, 250.0, paired=0.26)]


def test_findings_name_the_best_solver_and_what_caches_keep() -> None:
    lines = solver_study_findings(study())
    assert len(lines) == 2
    assert "ddim/log_snr T=10 (10 score evaluations) matches" in lines[0]
    assert "em/uniform T=10 (0.500 +- 0.000)" in lines[0]    # EM at 10 steps is told apart
    assert "paired error to the uncached ddim/log_snr T=10 samples 0.100-0.260" in lines[1]
    assert "the judge's resolution (2 SE of a difference) is ~0.06" in lines[1]
    assert "1 keep the baseline's quality" in lines[1]
    assert "fora:cache_interval=2 @ ddim/log_snr T=10 at 166x FLOPs" in lines[1]


def test_findings_follow_the_judges() -> None:
    """A ten-step solver the judge tells apart is not called a match: the finding moves to
    the next solver point, and a cache the judge tells apart is not kept."""
    lines = solver_study_findings(study(solver_disc=0.50, cache_disc=0.50))
    assert "ddim/log_snr T=50 (50 score evaluations) matches" in lines[0]
    assert "ddim/log_snr T=10 (0.500 +- 0.020)" in lines[0]
    # caches sit on top of the new best solver's label only if the study ran them there:
    # here they ran on T=10, which the finding still reports, but none is kept
    assert "none keeps the baseline's quality" in lines[1]


def test_without_a_judged_baseline_there_is_no_finding() -> None:
    records = [r for r in study() if r["family"] != "baseline"]
    assert solver_study_findings(records) == []


def test_table_has_a_row_per_point_and_states_its_settings() -> None:
    table = solver_study_table(study())
    assert len(table.rows) == 7
    assert table.rows[1][4] == "0.500 +- 0.000"
    assert table.rows[5][9] == "0.1000"
    assert "256 samples" in table.settings and "5 judge repeats" in table.settings


def _write(directory: Path, records: list[dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "solver_study.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return directory


def test_report_renders_the_section_and_its_findings(tmp_path: Path) -> None:
    source = _write(tmp_path / "study", study())
    render_report([source], tmp_path / "out")
    markdown = (tmp_path / "out" / "index.md").read_text(encoding="utf-8")
    assert "## Solver study" in markdown
    assert "| freqca:cache_interval=3 @ ddim/log_snr T=10 | cache+solver |" in markdown
    findings = markdown.split("## Findings", 1)[1].split("\n## ", 1)[0]
    assert "Few-step solvers, judged at 256 samples" in findings


def test_a_line_without_family_is_refused(tmp_path: Path) -> None:
    source = _write(tmp_path / "study", [{"label": "x"}])
    with pytest.raises(InputError, match="line 1: expected a JSON object with a 'family'"):
        render_report([source], tmp_path / "out")
