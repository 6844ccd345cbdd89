"""Every trial of ``fdbench tune`` as one JSON line, resumable, keyed by its settings.

The file ``OUT/trials.jsonl`` belongs to one set of settings (checkpoint, baseline
sampler, seeds, sample counts, batch, judges, threads): a rerun with the same settings
skips the trials already there, a run with other settings is refused before anything is
computed (trials of other settings would otherwise mix into one table). The target is not
a setting: a trial's numbers do not depend on it, so runs at two targets share trials.
Written atomically after each trial (``fdbench.io``), so an interrupted run loses at
most the trial in flight."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fdbench.errors import ConfigError
from fdbench.io import atomic_write_text

TRIALS_FILE = "trials.jsonl"


class MixedSettingsError(ConfigError):
    """The trial file was written under other settings."""


def trial_key(kind: str, sampler: str, spec: str, noise: str, n_samples: int) -> str:
    """One trial's identity: what was run (``spec`` on ``sampler``), on which draws."""
    return f"{kind}|{sampler}|{spec}|{noise}|{n_samples}"


class TrialStore:
    """JSON-lines trial records of one set of settings."""

    def __init__(self, path: str | Path, settings: dict[str, Any]):
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings, sort_keys=True))
        self.records: list[dict[str, Any]] = []
        if self.path.exists():
            try:
                lines = [json.loads(line) for line in self.path.read_text().splitlines()
                         if line.strip()]
            except (OSError, json.JSONDecodeError) as err:
                raise ConfigError(f"cannot read the trial file {self.path}: {err}") from None
            for record in lines:
                if record.get("settings") != self.settings:
                    raise MixedSettingsError(
                        f"{self.path} holds trials of other settings ("
                        f"{_differences(record.get('settings') or {}, self.settings)}); "
                        "rerun with the same settings to resume, or use another --out")
            self.records = lines
        self._by_key = {r["key"]: r for r in self.records}

    def find(self, key: str) -> dict[str, Any] | None:
        return self._by_key.get(key)

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        if "key" not in record:
            raise ValueError("a trial record needs its key")
        record = {**record, "settings": self.settings}
        if record["key"] in self._by_key:            # a re-measurement replaces the old
            self.records = [r for r in self.records if r["key"] != record["key"]]
        self.records.append(record)
        self._by_key[record["key"]] = record
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n"
                                             for r in self.records))
        return record

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") == kind]


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:4])
