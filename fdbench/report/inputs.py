"""Read result directories for ``fdbench report``: detect each one's kind by the files in
it and load them into plain records, tolerant of fields other versions add or lack.

Kinds (a directory may hold several): ``results.jsonl`` (``fdbench bench``),
``sweep.jsonl`` (``fdbench bench --sweep``), ``proofs_check.json`` or any file given
directly whose JSON says ``"kind": "proofs_check"`` (``python -m proofs_check --json``),
``results.json`` (``fdbench run``, with ``samples.npy`` / ``samples_cached.npy``),
``solver_study.jsonl`` (``scripts/solver_study.py``), ``tune_all_<target>.json``
(``fdbench tune --all``), ``efficiency*.json`` (``scripts/efficiency.py``), and the
optional ``traces.json`` ({policy: {"executed_fraction": [...], "event_intensity":
[...]}}) with per-step cache traces."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fdbench.errors import InputError

BENCH_FILE = "results.jsonl"
SWEEP_FILE = "sweep.jsonl"
PROOFS_FILE = "proofs_check.json"
RUN_FILE = "results.json"
TRACES_FILE = "traces.json"
SOLVER_STUDY_FILE = "solver_study.jsonl"
TUNE_GLOB = "tune_all_*.json"
EFFICIENCY_GLOB = "efficiency*.json"


@dataclass
class ReportInputs:
    """Everything the report renders, in the order the sources were given."""

    bench: list[dict[str, Any]] = field(default_factory=list)
    sweep: list[dict[str, Any]] = field(default_factory=list)
    solver_study: list[dict[str, Any]] = field(default_factory=list)
    tune: list[dict[str, Any]] = field(default_factory=list)     # tune_all_*.json
    efficiency: list[dict[str, Any]] = field(default_factory=list)  # efficiency*.json
    claims: list[dict[str, Any]] = field(default_factory=list)
    claim_sources: list[int] = field(default_factory=list)       # index into proofs
    proofs: list[dict[str, Any]] = field(default_factory=list)   # payloads minus claims
    runs: list[dict[str, Any]] = field(default_factory=list)     # results.json + "dir"
    traces: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    sources: list[tuple[str, str]] = field(default_factory=list)  # (kind, path label)
    datasets: list[str] = field(default_factory=list)  # for the localisation figure

    def data_names(self) -> list[str]:
        """Data sets the results are about (from run checkpoints' meta), in order."""
        names = [str((r.get("checkpoint_meta") or {}).get("data")) for r in self.runs]
        return list(dict.fromkeys(n for n in names if n != "None"))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {path}: {err}") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON: {err}") from None


def _read_jsonl(path: Path, required: str = "kind") -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {path}: {err}") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path} line {number} is not valid JSON: {err}") from None
        if not isinstance(record, dict) or required not in record:
            raise InputError(f"{path} line {number}: expected a JSON object with a "
                             f"'{required}'")
        records.append(record)
    return records


def _label(path: Path) -> str:
    """A stable name for a source: relative to the working directory when below it (so
    absolute temporary paths do not leak into otherwise identical reports)."""
    try:
        return Path(os.path.relpath(path)).as_posix()
    except ValueError:
        return path.name


def _add_proofs(inputs: ReportInputs, path: Path, payload: Any) -> None:
    if not isinstance(payload, dict) or payload.get("kind") != "proofs_check":
        raise InputError(f"{path}: not a proofs_check result (no \"kind\": \"proofs_check\")")
    claims = payload.get("claims")
    if not isinstance(claims, list) or not all(isinstance(c, dict) for c in claims):
        raise InputError(f"{path}: 'claims' must be a list of objects")
    inputs.claims.extend(claims)
    inputs.claim_sources.extend([len(inputs.proofs)] * len(claims))
    inputs.proofs.append({k: v for k, v in payload.items() if k != "claims"})
    inputs.sources.append(("proofs_check", _label(path)))


def _add_dir(inputs: ReportInputs, directory: Path) -> None:
    found = False
    if (directory / BENCH_FILE).is_file():
        inputs.bench.extend(_read_jsonl(directory / BENCH_FILE))
        inputs.sources.append(("bench", _label(directory / BENCH_FILE)))
        found = True
    if (directory / SWEEP_FILE).is_file():
        inputs.sweep.extend(_read_jsonl(directory / SWEEP_FILE))
        inputs.sources.append(("sweep", _label(directory / SWEEP_FILE)))
        found = True
    if (directory / PROOFS_FILE).is_file():
        _add_proofs(inputs, directory / PROOFS_FILE, _read_json(directory / PROOFS_FILE))
        found = True
    if (directory / RUN_FILE).is_file():
        results = _read_json(directory / RUN_FILE)
        if not isinstance(results, dict):
            raise InputError(f"{directory / RUN_FILE}: expected a JSON object")
        inputs.runs.append({**results, "dir": str(directory)})
        inputs.sources.append(("run", _label(directory / RUN_FILE)))
        found = True
    if (directory / SOLVER_STUDY_FILE).is_file():
        inputs.solver_study.extend(_read_jsonl(directory / SOLVER_STUDY_FILE, "family"))
        inputs.sources.append(("solver study", _label(directory / SOLVER_STUDY_FILE)))
        found = True
    for kind, pattern, field_name, field_type, into, what in (
            ("tune", TUNE_GLOB, "rows", list, inputs.tune, "an fdbench tune result"),
            ("efficiency", EFFICIENCY_GLOB, "timing", dict, inputs.efficiency,
             "a scripts/efficiency.py result")):
        for path in sorted(directory.glob(pattern)):
            result = _read_json(path)
            if not isinstance(result, dict) or not isinstance(result.get(field_name),
                                                              field_type):
                raise InputError(f"{path}: not {what} (no '{field_name}')")
            into.append(result)
            inputs.sources.append((kind, _label(path)))
            found = True
    if (directory / TRACES_FILE).is_file():
        traces = _read_json(directory / TRACES_FILE)
        if not isinstance(traces, dict) or not all(isinstance(v, dict) for v in traces.values()):
            raise InputError(f"{directory / TRACES_FILE}: expected {{policy: {{name: [...]}}}}")
        inputs.traces.update(traces)
        inputs.sources.append(("traces", _label(directory / TRACES_FILE)))
        found = True
    if not found:
        raise InputError(f"{directory}: no result files there (expected one of {BENCH_FILE}, "
                         f"{SWEEP_FILE}, {PROOFS_FILE}, {RUN_FILE}, {SOLVER_STUDY_FILE}, "
                         f"{TUNE_GLOB}, {EFFICIENCY_GLOB})")


def load_inputs(paths: Sequence[str | os.PathLike],
                datasets: Sequence[str] | None = None) -> ReportInputs:
    """Load every result directory (or proofs_check JSON file) in ``paths``. ``datasets``:
    data sets for the localisation figure ("all": every registered one; None: those the
    runs name, else ecg)."""
    if not paths:
        raise InputError("give at least one result directory")
    inputs = ReportInputs()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            _add_dir(inputs, path)
        elif path.is_file():
            _add_proofs(inputs, path, _read_json(path))
        else:
            raise InputError(f"{path}: no such result directory or file")
    inputs.datasets = list(datasets) if datasets else (inputs.data_names() or ["ecg"])
    return inputs
