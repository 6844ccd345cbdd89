"""``fdbench report`` on small fixture results (made by tests/fixtures/report/make_fixtures.py
from the real bench / sweep / proofs_check / run code on a tiny random model)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fdbench.cli import main
from fdbench.errors import InputError
from fdbench.report import render_report
from fdbench.report.figures import FIGURES

FIXTURES = Path(__file__).parent / "fixtures" / "report"
SOURCES = [FIXTURES / name for name in ("bench", "sweep", "proofs", "run")]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "fixture"
    render_report(SOURCES, out)
    return out


def test_renders_every_figure(report: Path) -> None:
    out = report
    for file, _, _ in FIGURES:
        assert (out / file).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", file
    markdown = (out / "index.md").read_text()
    assert "Figure " not in markdown or " not drawn: " not in markdown
    for file, _, _ in FIGURES:
        assert f"]({file})" in markdown


def test_html_embeds_every_figure(report: Path) -> None:
    out = report
    html = (out / "index.html").read_text()
    for file, _, _ in FIGURES:
        encoded = base64.b64encode((out / file).read_bytes()).decode("ascii")
        assert f"data:image/png;base64,{encoded}" in html, file
    assert "<img" in html and 'src="' + FIXTURES.name not in html  # nothing linked


def test_tables_show_the_fixture_numbers(report: Path) -> None:
    out = report
    markdown = (out / "index.md").read_text()
    timing = [json.loads(line) for line in (FIXTURES / "bench" / "results.jsonl").open()
              if '"timing"' in line]
    for record in timing:
        assert f"| {record['policy']} | {record['batch']} | {record['wall_speedup']:.2f}x" \
            in markdown
    claims = json.loads((FIXTURES / "proofs" / "proofs_check.json").read_text())["claims"]
    for claim in claims:
        assert f"| {claim['claim_id']} |" in markdown and f"**{claim['verdict']}**" in markdown


def test_identical_input_gives_identical_bytes(report: Path,
                                               tmp_path: Path) -> None:
    first = report
    second = render_report(SOURCES, tmp_path / "again")
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_missing_inputs_skip_figures_with_a_note(tmp_path: Path) -> None:
    out = render_report([FIXTURES / "sweep"], tmp_path / "sweep-only")
    markdown = (out / "index.md").read_text()
    assert (out / "pareto.png").exists() and not (out / "samples.png").exists()
    assert "Figure samples.png not drawn: no run directory with samples.npy" in markdown


def test_rerender_replaces_the_report_atomically(tmp_path: Path) -> None:
    out = tmp_path / "r"
    render_report([FIXTURES / "sweep"], out)
    (out / "stale.txt").write_text("old")
    render_report([FIXTURES / "sweep"], out)
    assert not (out / "stale.txt").exists() and (out / "pareto.png").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no partial or backup left


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "absent", "no such result directory"),
    (lambda d: d, "no result files there"),
    (lambda d: _write(d / "results.json", "{not json"), "not valid JSON"),
    (lambda d: _write(d / "results.jsonl", '{"kind": "timing"}\n[1,'), "line 2"),
    (lambda d: _write(d / "x.json", '{"kind": "bench"}'), "not a proofs_check result"),
])
def test_bad_input_is_one_clear_error(tmp_path: Path, make, message: str) -> None:
    source = tmp_path / "in"
    source.mkdir()
    with pytest.raises(InputError, match=message):
        render_report([make(source)], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path.parent if path.name != "x.json" else path


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(FIXTURES / "sweep", tmp_path / "sweep")
    assert main(["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "index.html").is_file()
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "rep2")]) == 2
    assert "no such result directory" in capsys.readouterr().err


def test_missing_and_extra_fields_render(tmp_path: Path) -> None:
    source = tmp_path / "peer"
    source.mkdir()
    _write(source / "results.jsonl", json.dumps({"kind": "timing", "policy": "fora",
                                                 "batch": 4, "wall_speedup": 1.5}) + "\n")
    _write(source / "sweep.jsonl", json.dumps(
        {"kind": "sweep", "policy": "toca:ratio=0.5", "method": "toca", "solver": "ddim",
         "n_steps": 50, "flop_speedup": 2.0, "wall_speedup": 1.4, "sw": 0.03,
         "sw_ratio": 1.01, "paired_mean": 0.02, "new_nested": {"x": 1}}) + "\n")
    out = render_report([source], tmp_path / "out")
    markdown = (out / "index.md").read_text()
    assert "| fora | 4 | 1.50x | n/a | n/a | n/a | n/a | n/a |" in markdown
    assert "| policy | method | solver | n_steps | flop_speedup | wall_speedup |" in markdown
    assert (out / "pareto.png").exists()


def test_findings_and_realism_are_computed_from_the_inputs(report, tmp_path) -> None:
    """The Findings open the report and follow the records: the fixture's random model
    is not separated from network_off, and the report says so; an edited record that is
    separated turns the sentence around (nothing is typed in)."""
    out = report
    markdown = (out / "index.md").read_text()
    assert markdown.index("## Findings") < markdown.index("## Speed")
    assert "NOT separated" in markdown and "| fdbench run | network_off |" in markdown
    assert "real vs real (floor)" in markdown
    # the sweep is judged on its own baseline and network_off record
    assert "Sweep baseline 0.500 vs its network_off 0.500" in markdown
    run = json.loads((FIXTURES / "run" / "results.json").read_text())
    run["judges"]["generated"]["discriminative_score"] = 0.05
    run["model_fit"] = {**run["model_fit"], "model": 0.05, "gap": 0.45, "separated": True}
    edited = tmp_path / "run"
    shutil.copytree(FIXTURES / "run", edited)
    (edited / "results.json").write_text(json.dumps(run))
    render_report([edited], tmp_path / "out")
    text = (tmp_path / "out" / "index.md").read_text()
    assert "model 0.050" in text and "the network matters" in text


def _sweep_record(spec: str | None, family: str, paired: float | None, wall: float,
                  flop: float | None, planned: float | None) -> dict:
    policy = "em/uniform T=1000" if spec is None else f"{spec} @ em/uniform T=1000"
    return {"kind": "sweep", "family": family, "policy": policy, "cache": spec,
            "method": spec.partition(":")[0] if spec else "uncached", "solver": "em",
            "grid": "uniform", "n_steps": 1000, "evaluations": 1000, "wall_speedup": wall,
            "flop_speedup": flop, "planned_flop_speedup": planned,
            "sw_time": {"value": 0.1, "se": 0.01}, "sw_freq": {"value": 0.1, "se": 0.01},
            "paired": None if paired is None else {"mean": paired, "se": 0.001}}


def test_sweep_section_draws_the_curves_with_planned_flops(tmp_path: Path) -> None:
    records = [_sweep_record(None, "baseline", None, 1.0, 1.0, 1.0),
               _sweep_record("network_off", "control", 0.9, 60.0, None, None)]
    for i, tau in enumerate((0.02, 0.05, 0.2, 0.5)):
        records.append(_sweep_record(f"e2crf:tau_0={tau:g}", "cache", 0.01 * (i + 1),
                                     1 + i, 1.2 + i, 1.5 + 1.4 * i))
        records.append(_sweep_record(f"e2crf_no_probe:tau_0={tau:g}", "cache",
                                     0.02 * (i + 1), 1 + i, 1.1 + i, 1.3 + i))
    for i, n in enumerate((2, 3, 4, 6)):
        records.append(_sweep_record(f"fora:cache_interval={n}", "cache", 0.003 * 3 ** i,
                                     1.5 + i, 1.8 + i, 1.8 + i))
    source = tmp_path / "sweep"
    source.mkdir()
    _write(source / "sweep.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    out = render_report([source], tmp_path / "out")
    markdown = (out / "index.md").read_text()
    sweep = markdown[markdown.index("## Sweep"):markdown.index("## Appendix claims")]
    for file in ("sweep_curves.png", "sweep_ablation.png"):
        assert (out / file).read_bytes()[:4] == b"\x89PNG"
        assert f"]({file})" in sweep
    assert "Every cache method but E²-CRF's ablations: the higher a method's curve" in sweep
    assert "E²-CRF and its ablations (Liu et al. 2026, Table 3): the higher" in sweep
    assert "dashed = planned FLOPs" in sweep
    # without E²-CRF or an ablation the ablation figure is skipped, saying why
    only_fora = [r for r in records if not str(r["cache"]).startswith("e2crf")]
    _write(source / "sweep.jsonl", "".join(json.dumps(r) + "\n" for r in only_fora))
    markdown = (render_report([source], tmp_path / "out2") / "index.md").read_text()
    assert "Figure sweep_ablation.png not drawn: no record of E²-CRF and its ablations" \
        in markdown
    assert "](sweep_curves.png)" in markdown


def _tables(markdown: str) -> list[tuple[str, str]]:
    """(line above the table, header row) of every Markdown table."""
    lines = markdown.splitlines()
    return [(lines[i - 2], line) for i, line in enumerate(lines[:-1])
            if line.startswith("| ") and lines[i + 1].startswith("|---")]


def test_every_table_states_its_settings(report: Path) -> None:
    """T, solver, grid, samples, batch, threads and mode above every results table, read
    from the records; what a file does not hold says which file lacks it."""
    markdown = (report / "index.md").read_text()
    found = [(above, head) for above, head in _tables(markdown) if not head.startswith(
        "| source | kind | machine")]
    assert len(found) == 5   # speed, realism, quality, sweep, claims
    for above, head in found:
        assert above.startswith("*Settings: "), head
        for key in ("T", "solver", "grid", "samples", "batch", "threads", "mode"):
            assert re.search(rf"\b{key}\b", above), (key, head)
    speed = next(above for above, head in found if head.startswith("| policy | batch"))
    assert "samples 12" in speed and "T 20" in speed and "threads 1" in speed
    assert "solver, grid: differ" in speed  # bench records none, the run names its sampler
    claims = next(above for above, head in found if head.startswith("| id | claim"))
    assert "mode quick" in claims and "threads " in claims
    assert "solver n/a (results.jsonl lacks it)" in markdown


def test_rows_of_other_settings_are_told_apart(tmp_path: Path) -> None:
    """The issue's case: bench at T = 50, interrupted, then T = 20 into the same store; the
    report must not show two identical-looking e2crf rows."""
    source = tmp_path / "bench"
    source.mkdir()
    records = [{"kind": "timing", "policy": "e2crf", "batch": 1, "wall_speedup": w,
                "settings": {"n_steps": t, "num_samples": 8, "threads": 2}}
               for t, w in ((50, 1.9), (20, 1.4))]
    _write(source / "results.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    markdown = (render_report([source], tmp_path / "out") / "index.md").read_text()
    assert "T: differ, see the settings column" in markdown
    assert "| e2crf | 1 | 1.90x |" in markdown and "| T 50 |" in markdown
    assert "| e2crf | 1 | 1.40x |" in markdown and "| T 20 |" in markdown


def test_header_names_the_rendering_commit_and_each_inputs_own(tmp_path: Path) -> None:
    done = subprocess.run(["git", "-C", str(Path(__file__).parent), "describe", "--always",
                           "--dirty"], capture_output=True, text=True, check=False)
    expected = done.stdout.strip() if done.returncode == 0 else "unknown (not a git checkout)"
    run = json.loads((FIXTURES / "run" / "results.json").read_text())
    shutil.copytree(FIXTURES / "run", tmp_path / "run")
    (tmp_path / "run" / "results.json").write_text(json.dumps({**run, "commit": "abc1234"}))
    out = render_report([tmp_path / "run", FIXTURES / "sweep"], tmp_path / "out")
    markdown = (out / "index.md").read_text()
    assert f"at commit {expected} (git describe --always --dirty" in markdown
    assert "| abc1234 |" in markdown                     # the commit the run recorded
    assert "| n/a (sweep.jsonl lacks it) |" in markdown  # the sweep records none
    assert "n/a (sweep.jsonl records hold only: " in markdown   # ... and what it holds


def test_every_quality_table_has_the_network_off_control(report: Path, tmp_path: Path) -> None:
    markdown = (report / "index.md").read_text()
    assert "| network_off |" in markdown and "| fdbench run | network_off |" in markdown
    assert "network_off @ " in markdown and "not in results.jsonl" not in markdown
    (tmp_path / "bench").mkdir()
    (tmp_path / "sweep").mkdir()
    _write(tmp_path / "bench" / "results.jsonl", "".join(
        line + "\n" for line in (FIXTURES / "bench" / "results.jsonl").read_text().splitlines()
        if '"policy": "network_off"' not in line))
    _write(tmp_path / "sweep" / "sweep.jsonl", "".join(
        line + "\n" for line in (FIXTURES / "sweep" / "sweep.jsonl").read_text().splitlines()
        if '"family": "control"' not in line))
    out = render_report([tmp_path / "bench", tmp_path / "sweep"], tmp_path / "out")
    markdown = (out / "index.md").read_text()
    assert "| network_off (not in results.jsonl: bench ran without the control) |" in markdown
    assert "| network_off: no control record in sweep.jsonl |" in markdown
