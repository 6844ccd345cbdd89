"""A result directory's store: JSON-lines records of one experiment, keyed by its settings.

``bench`` (results.jsonl) and the sweep (sweep.jsonl) write one record per finished piece
of work, each carrying the run's settings, plus ``<stem>.settings.json`` beside the file.
A rerun with the same settings resumes (finished records are skipped, and it says which);
a rerun with other settings into the same directory is refused, naming the settings that
differ, because its samples/*.npy would overwrite the first run's and its table would mix
two experiments (issue 15 item 3). Files are rewritten atomically after each record."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from fdbench.errors import ConfigError
from fdbench.io import atomic_write_json, atomic_write_text


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def settings_difference(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: recorded there, current now`` for every setting that differs."""
    keys = sorted(set(recorded) | set(current))
    return [f"{key}: {_short(recorded.get(key))} there, {_short(current.get(key))} now"
            for key in keys if recorded.get(key) != current.get(key)]


class ResultStore:
    """JSON-lines records keyed by (kind, policy, batch) under one settings dict."""

    def __init__(self, path: str | Path, settings: dict[str, Any], *, writable: bool = True):
        # JSON-normalised (tuples -> lists) so settings read back from disk compare equal
        self.path, self.settings = Path(path), json.loads(json.dumps(settings))
        self.settings_path = self.path.with_name(f"{self.path.stem}.settings.json")
        self.writable = writable  # False on ranks > 0: one writer per file
        self.records = self._read()
        recorded = [r.get("settings") for r in self.records if r.get("settings") != self.settings]
        if self.settings_path.is_file():
            try:
                recorded.append(json.loads(self.settings_path.read_text(encoding="utf-8")))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ConfigError(f"cannot read {self.settings_path}: {err}") from None
        other = next((s for s in recorded if s != self.settings), None)
        if other is not None:
            difference = settings_difference(other if isinstance(other, dict) else {},
                                             self.settings)
            raise ConfigError(
                f"{self.path.parent} holds results of other settings ("
                + "; ".join(difference) + "); rerun with the same settings to resume, or "
                "give another --out (results of different settings are never mixed)")

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"cannot read {self.path} line {number}: {err}") from None
            if not isinstance(record, dict):
                raise ConfigError(f"{self.path} line {number} is not a JSON object")
            records.append(record)
        return records

    def find(self, kind: str, policy: str, batch: int | None = None) -> dict[str, Any] | None:
        for record in self.records:
            if (record["kind"], record["policy"], record.get("batch")) == (kind, policy, batch):
                return record
        return None

    def add(self, record: dict[str, Any]) -> None:
        self.records.append({**record, "settings": self.settings})
        if not self.writable:
            return
        if not self.settings_path.exists():
            atomic_write_json(self.settings_path, self.settings)
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records)
        atomic_write_text(self.path, text)

    def reused(self) -> str:
        """What a resumed run finds done, one phrase per kind ('' when nothing):
        e.g. ``quality: uncached, e2crf; timing: uncached@1, e2crf@1``."""
        done: dict[str, list[str]] = defaultdict(list)
        for record in self.records:
            batch = record.get("batch")
            done[record["kind"]].append(record["policy"]
                                        + ("" if batch is None else f"@{batch}"))
        return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in done.items())
