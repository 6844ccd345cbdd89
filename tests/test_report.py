"""``fdbench report`` on small fixture results (made by tests/fixtures/report/make_fixtures.py
from the real bench / sweep / proofs_check / run code on a tiny random model)."""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path

import pytest

from fdbench.cli import main
from fdbench.errors import InputError
from fdbench.report import render_report
from fdbench.report.figures import FIGURES

FIXTURES = Path(__file__).parent / "fixtures" / "report"
SOURCES = [FIXTURES / name for name in ("bench", "sweep", "proofs", "run")]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("report") / "fixture"
    started = time.perf_counter()
    render_report(SOURCES, out)
    return out, time.perf_counter() - started


def test_renders_every_figure(report: tuple[Path, float]) -> None:
    # no wall-clock bound: a busy CI machine failed one (32.7 s against 30 s)
    out, _ = report
    for file, _, _ in FIGURES:
        assert (out / file).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", file
    markdown = (out / "index.md").read_text()
    assert "not drawn" not in markdown
    for file, _, _ in FIGURES:
        assert f"]({file})" in markdown


def test_html_embeds_every_figure(report: tuple[Path, float]) -> None:
    out, _ = report
    html = (out / "index.html").read_text()
    for file, _, _ in FIGURES:
        encoded = base64.b64encode((out / file).read_bytes()).decode("ascii")
        assert f"data:image/png;base64,{encoded}" in html, file
    assert "<img" in html and 'src="' + FIXTURES.name not in html  # nothing linked


def test_tables_show_the_fixture_numbers(report: tuple[Path, float]) -> None:
    out, _ = report
    markdown = (out / "index.md").read_text()
    timing = [json.loads(line) for line in (FIXTURES / "bench" / "results.jsonl").open()
              if '"timing"' in line]
    for record in timing:
        assert f"| {record['policy']} | {record['batch']} | {record['wall_speedup']:.2f}x" \
            in markdown
    claims = json.loads((FIXTURES / "proofs" / "proofs_check.json").read_text())["claims"]
    for claim in claims:
        assert f"| {claim['claim_id']} |" in markdown and f"**{claim['verdict']}**" in markdown


def test_identical_input_gives_identical_bytes(report: tuple[Path, float],
                                               tmp_path: Path) -> None:
    first, _ = report
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
    out, _ = report
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
    assert "Every cache method but E²-CRF's ablations: each method's operating points" in sweep
    assert "E²-CRF and its ablations (Liu et al. 2026, Table 3): each method's" in sweep
    assert "dashed = planned FLOPs" in sweep and "Left out: points without a paired" in sweep
    # without E²-CRF or an ablation the ablation figure is skipped, saying why
    only_fora = [r for r in records if not str(r["cache"]).startswith("e2crf")]
    _write(source / "sweep.jsonl", "".join(json.dumps(r) + "\n" for r in only_fora))
    markdown = (render_report([source], tmp_path / "out2") / "index.md").read_text()
    assert "Figure sweep_ablation.png not drawn: no record of E²-CRF and its ablations" \
        in markdown
    assert "](sweep_curves.png)" in markdown
