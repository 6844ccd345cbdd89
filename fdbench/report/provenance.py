"""Where the report and its inputs come from: the commit of the code rendering the report
(``git describe --always --dirty``, so uncommitted edits show as ``-dirty``), and per
input file the machine, threads, versions, seed and commit it recorded, or what it holds
where it records none (issue 15: "the sweep's machine, threads and versions show n/a")."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from fdbench.report.inputs import ReportInputs
from fdbench.report.tables import Table

FILES = {"bench": "results.jsonl", "sweep": "sweep.jsonl", "proofs_check": "proofs_check.json",
         "run": "results.json", "traces": "traces.json", "solver study": "solver_study.jsonl",
         "tune": "tune_all_*.json", "efficiency": "efficiency*.json"}


def repo_commit() -> str:
    """``git describe --always --dirty`` of the checkout holding this package (the code
    that renders the report), or "unknown (not a git checkout)"."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return out.stdout.strip() or "unknown (not a git checkout)"


def fdbench_version() -> str:
    from fdbench import __version__

    return str(__version__)


def _commit(*holders: Any) -> Any:
    for h in holders:
        if isinstance(h, dict):
            for key in ("commit", "git_commit", "git_describe"):
                if h.get(key):
                    return h[key]
    return None


def _versions(names: dict[str, Any]) -> str | None:
    known = [f"{name} {value}" for name, value in names.items() if value is not None]
    return ", ".join(known) or None


def header_table(inputs: ReportInputs) -> Table:
    """Per source: machine, threads, versions, seed and commit as recorded in the input
    file; where a file records none of them, what it does hold."""
    header = ["source", "kind", "machine", "threads", "versions", "seed(s)", "commit (recorded)"]
    bench_s = (inputs.bench[0].get("settings") or {}) if inputs.bench else {}
    sweep_s = (inputs.sweep[0].get("settings") or {}) if inputs.sweep else {}
    proofs, runs = iter(inputs.proofs), iter(inputs.runs)
    tunes, efficiencies = iter(inputs.tune), iter(inputs.efficiency)
    study_s = (inputs.solver_study[0].get("settings") or {}) if inputs.solver_study else {}
    rows = []
    for kind, label in inputs.sources:
        file = FILES.get(kind, kind)
        if kind == "bench":
            row = [bench_s.get("machine"), bench_s.get("threads"),
                   _versions({"fdbench": bench_s.get("fdbench"), "torch": bench_s.get("torch")}),
                   bench_s.get("seed"), _commit(bench_s)]
        elif kind == "sweep":
            holds = f"n/a (sweep.jsonl records hold only: {', '.join(sorted(sweep_s))})"
            row = [sweep_s.get("machine") or holds, sweep_s.get("threads"),
                   _versions({"fdbench": sweep_s.get("fdbench"), "torch": sweep_s.get("torch")})
                   or holds, sweep_s.get("seed"), _commit(sweep_s)]
        elif kind == "proofs_check":
            p = next(proofs, {})
            row = [p.get("machine"), p.get("threads"),
                   _versions({"python": p.get("python"), "torch": p.get("torch")}),
                   p.get("seed"), _commit(p)]
        elif kind == "run":
            r = next(runs, {})
            row = [r.get("machine"), r.get("threads"),
                   _versions({"fdbench": r.get("fdbench_version"), "torch": r.get("torch_version"),
                              "python": r.get("python")}),
                   (r.get("settings") or {}).get("seed"), _commit(r, r.get("settings"))]
        elif kind == "solver study":
            row = [None, None, None, study_s.get("seed"), _commit(study_s)]
        elif kind == "tune":
            t = (next(tunes, {}).get("settings") or {})
            row = [t.get("machine"), t.get("threads"),
                   _versions({"torch": t.get("torch")}), t.get("seed"), _commit(t)]
        elif kind == "efficiency":
            e = next(efficiencies, {})
            row = [None, e.get("threads"), _versions({"torch": e.get("torch")}),
                   (e.get("settings") or {}).get("seed"), _commit(e)]
        else:
            row = [f"n/a ({file} holds per-step traces only)", None, None, None, None]
        rows.append([label, kind, *(f"n/a ({file} lacks it)" if v is None else str(v)
                                    for v in row)])
    return Table(header, rows, "As recorded in each input file; the report itself was "
                 f"rendered by fdbench {fdbench_version()} at commit {repo_commit()}.")
