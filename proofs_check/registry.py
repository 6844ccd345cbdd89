"""The check registry, the result record every check returns, and the shared context."""

from __future__ import annotations

import importlib
import math
import pkgutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

VERDICTS = ("holds", "violated", "vacuous")


@dataclass(frozen=True)
class ClaimResult:
    """One claim decided.

    ``numbers``: the key measured numbers (name -> float), shown in the table and JSON.
    ``measured`` / ``bound``: the headline quantity and the claim's bound on it (None
    where the claim has no numeric bound); ``tightness`` = measured / bound.
    ``tolerance``: the tolerance the verdict used and why it is that size.
    ``readings``: for ambiguous statements, the verdict under each reading (name ->
    verdict), the strongest reasonable one and the one the paper's proof uses.
    ``series``: optional curves for the report (name -> list of floats).
    ``decided_by``: the reading whose verdict is the claim's verdict; ``measured`` and
    ``bound`` are that reading's. ``reading_values``: reading -> (measured, bound), so
    every reading's numbers can be shown beside its verdict. ``identities``: readings
    that hold by construction (an algebraic identity of the computation): shown, never
    counted as evidence for or against the claim. ``settings``: the sizes and policy
    settings the verdict was reached at (with the mode, quick or full)."""

    claim_id: str
    statement: str
    verdict: str
    numbers: dict[str, float]
    tolerance: str
    measured: float | None = None
    bound: float | None = None
    readings: dict[str, str] = field(default_factory=dict)
    note: str = ""
    series: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    decided_by: str = ""
    reading_values: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    identities: tuple[str, ...] = ()
    settings: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        for reading, verdict in self.readings.items():
            if verdict not in VERDICTS:
                raise ValueError(f"reading {reading!r}: verdict {verdict!r} not in {VERDICTS}")
        named = set(self.readings)
        if self.decided_by and self.decided_by not in named:
            raise ValueError(f"decided_by {self.decided_by!r} is not one of the readings")
        if self.decided_by in self.identities and named != set(self.identities):
            raise ValueError(f"reading {self.decided_by!r} is an identity: it cannot decide "
                             "while an evidence reading exists")
        if not set(self.identities) <= named or not set(self.reading_values) <= named:
            raise ValueError("identities and reading_values must name readings")

    @property
    def tightness(self) -> float | None:
        if self.measured is None or self.bound is None or self.bound == 0:
            return None
        return self.measured / self.bound

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["tightness"] = self.tightness
        record["identities"] = list(self.identities)
        record["reading_values"] = {k: list(v) for k, v in self.reading_values.items()}
        return {key: _finite_or_str(value) for key, value in record.items()}


def decide(readings: dict[str, str], values: dict[str, tuple[float | None, float | None]],
           order: list[str], identities: tuple[str, ...] = ()) -> tuple[str, str]:
    """(verdict, deciding reading): the first evidence reading of ``order`` that is
    violated (one counterexample refutes a claim), else the first of ``order`` (its
    verdict). Identities are skipped: they hold by construction; only a claim with no
    other reading is decided by its identity (shown as such)."""
    evidence = [name for name in order if name not in identities] or list(order)
    if not evidence:
        raise ValueError("no reading to decide the claim")
    for name in evidence:
        if readings[name] == "violated":
            return "violated", name
    return readings[evidence[0]], evidence[0]


def decided_fields(readings: dict[str, str],
                   values: dict[str, tuple[float | None, float | None]],
                   decided: str) -> dict[str, Any]:
    """The ClaimResult fields that name the deciding reading: its measured value and bound,
    every reading's verdict and values, and which one decided (see :func:`decide`)."""
    return {"measured": values[decided][0], "bound": values[decided][1], "readings": readings,
            "reading_values": values, "decided_by": decided}


def _finite_or_str(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings so the file stays standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite_or_str(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_str(item) for item in value]
    return value


@dataclass(frozen=True)
class Context:
    """What every check may use. ``quick``: the CI mode (all checks together <= 60 s on
    2 cores), smaller sizes and fewer repetitions; full mode <= 10 min. ``checkpoint``:
    the trained model for the model-dependent claims (None: the shipped ECG model)."""

    quick: bool = False
    checkpoint: Path | None = None
    seed: int = 0
    # expensive artefacts shared by several checks of one run (recorded trajectories,
    # the loaded model), keyed by a name the producing helper chooses
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def pick(self, quick: Any, full: Any) -> Any:
        """``quick`` in quick mode, ``full`` otherwise (sizes, repetitions)."""
        return quick if self.quick else full

    @cached_property
    def checkpoint_dir(self) -> Path:
        if self.checkpoint is not None:
            return Path(self.checkpoint)
        from fdbench.run import shipped_checkpoint

        return shipped_checkpoint()

    def load_model(self):  # -> fdbench.pipeline.ScoreModel
        """A fresh copy of the checkpoint's model (checks may enable caches on it)."""
        from fdbench.checkpoint import load_checkpoint

        return load_checkpoint(self.checkpoint_dir)


CheckFn = Callable[..., ClaimResult]


@dataclass(frozen=True)
class Check:
    claim_id: str
    title: str
    fn: CheckFn
    needs_model: bool = False


CHECKS: dict[str, Check] = {}


def register(claim_id: str, title: str, *, needs_model: bool = False
             ) -> Callable[[CheckFn], CheckFn]:
    """Decorator: register ``fn(ctx, **faults) -> ClaimResult`` as the check of a claim."""
    def wrap(fn: CheckFn) -> CheckFn:
        if claim_id in CHECKS:
            raise ValueError(f"claim {claim_id!r} registered twice")
        CHECKS[claim_id] = Check(claim_id, title, fn, needs_model)
        return fn
    return wrap


def load_all() -> dict[str, Check]:
    """Import every ``claim_*`` module of the package so each registers its check."""
    import proofs_check

    for module in pkgutil.iter_modules(proofs_check.__path__):
        if module.name.startswith("claim_"):
            importlib.import_module(f"proofs_check.{module.name}")
    return CHECKS


def run_checks(ctx: Context, only: Sequence[str] | None = None,
               progress: Callable[[str], None] | None = None) -> list[ClaimResult]:
    """Run the registered checks (all, or the ids in ``only``) in registry order."""
    checks = load_all()
    unknown = sorted(set(only or ()) - set(checks))
    if unknown:
        raise KeyError(f"unknown claim id(s) {unknown}; known: {sorted(checks)}")
    results = []
    for claim_id, check in checks.items():
        if only and claim_id not in only:
            continue
        if progress is not None:
            progress(claim_id)
        started = time.perf_counter()
        result = check.fn(ctx)
        results.append(_finished(result, time.perf_counter() - started, ctx))
    return results


def _finished(result: ClaimResult, seconds: float, ctx: Context) -> ClaimResult:
    """The result with its run time and the mode prefixed to its settings."""
    from dataclasses import replace

    mode = "quick" if ctx.quick else "full"
    return replace(result, seconds=seconds,
                   settings=mode + (f"; {result.settings}" if result.settings else ""))
