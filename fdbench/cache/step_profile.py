"""Per-step overhead profile of a sampling run (issue 17, item 4): the wall time of every
model call split into stages, for the uncached network, token-subset caches (E²-CRF,
...) and module-reuse caches (FORA, ...).

Stages: ``decision`` (the policy's choice and the index plan), ``embed``, ``gather``
(the computed rows taken from the stream), ``layers``, ``scatter`` (rows written back),
``head``, ``feedback`` (the policy's observation and correction) and ``record`` (the
statistics). The clock exists only while :func:`profile_steps` runs: the engine checks
``engine.profile`` (None otherwise) at each stage boundary, so an unprofiled run pays one
attribute test per boundary and no timer; module executors are timed through wrappers
set on the instances for the run and removed after it. On CUDA every mark synchronises
(the stages would otherwise time kernel launches), so a profiled run is slower than an
unprofiled one and its total is reported beside the stages, never as the run's speed."""

from __future__ import annotations

import functools
import time
from typing import Any

import torch
from torch import Tensor

from fdbench.cache import CacheEngine, make_policy, parse_policy
from fdbench.generate import generate
from fdbench.pipeline import ScoreModel

STAGES = ("decision", "embed", "gather", "layers", "scatter", "head", "feedback", "record")


class StageClock:
    """Seconds per stage: :meth:`start` at a call's beginning, :meth:`mark` at the end of
    each stage (the time since the previous mark goes to that stage)."""

    def __init__(self, device: torch.device):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.calls = 0
        self.cuda = device.type == "cuda"
        self.last = 0.0

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self) -> None:
        self.calls += 1
        self.last = self._now()

    def mark(self, stage: str) -> None:
        now = self._now()
        self.seconds[stage] += now - self.last
        self.last = now


class _Uncached:
    """The plain network call, timed as embed / layers / head."""

    def __init__(self, network: torch.nn.Module, clock: StageClock):
        self.network, self.clock, self.history = network, clock, []

    def start_batch(self, n_steps: int, sample_ids: Tensor) -> None:
        return None

    @torch.no_grad()
    def __call__(self, x: Tensor, t: Tensor, step: int, stage: int = 0) -> Tensor:
        net, clock = self.network, self.clock
        u = net.embed(x, t)
        clock.mark("embed")
        h = net.backbone(u)
        clock.mark("layers")
        score = net.head(h)
        clock.mark("head")
        return score


class _Timed:
    """An engine call between the clock's start and a final ``record`` mark."""

    def __init__(self, engine: Any, clock: StageClock):
        self.engine, self.clock = engine, clock
        self.history = getattr(engine, "history", [])

    def start_batch(self, n_steps: int, sample_ids: Tensor) -> None:
        self.engine.start_batch(n_steps, sample_ids)

    def __call__(self, x: Tensor, t: Tensor, step: int, stage: int = 0) -> Tensor:
        self.clock.start()
        out = self.engine(x, t, step, stage)
        self.clock.mark("record")
        return out


class _NetworkStages:
    """A module executor's view of the network with embed and head timed."""

    def __init__(self, network: torch.nn.Module, clock: StageClock):
        self._network, self._clock = network, clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._network, name)

    def embed(self, x: Tensor, t: Tensor) -> Tensor:
        out = self._network.embed(x, t)
        self._clock.mark("embed")
        return out

    def head(self, h: Tensor) -> Tensor:
        out = self._network.head(h)
        self._clock.mark("head")
        return out


def _after(function: Any, clock: StageClock, stage: str, before: str | None = None) -> Any:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            clock.mark(before)
        out = function(*args, **kwargs)
        clock.mark(stage)
        return out
    return timed


_MISSING = object()


def _set(undo: list[tuple[Any, str, Any]], owner: Any, name: str, value: Any) -> None:
    """``owner.name = value``, remembering the instance's own previous value (if any)."""
    undo.append((owner, name, vars(owner).get(name, _MISSING)))
    setattr(owner, name, value)


def _instrument(engine: CacheEngine, clock: StageClock) -> list[tuple[Any, str, Any]]:
    """Attach the clock to ``engine``; what to restore after the run."""
    undo: list[tuple[Any, str, Any]] = []
    executor = engine.executor
    if executor is None:
        _set(undo, engine, "profile", clock)
        return undo
    policy = executor.policy
    _set(undo, executor, "network", _NetworkStages(executor.network, clock))
    for name in ("plan", "after_first_block"):
        _set(undo, policy, name, _after(getattr(policy, name), clock, "decision"))
    _set(undo, policy, "store", _after(policy.store, clock, "decision", before="layers"))
    for name in ("_layers", "_stack"):
        _set(undo, executor, name, _after(getattr(executor, name), clock, "layers"))
    return undo


def profile_steps(model: ScoreModel, spec: str | None, *, batch: int, n_steps: int,
                  seed: int = 0, engine_options: dict[str, Any] | None = None,
                  engine: CacheEngine | None = None) -> dict[str, Any]:
    """Sample one batch of ``batch`` series with ``n_steps`` EM steps under policy
    ``spec`` (None: uncached; ``engine``: this engine, named ``spec``) with the stage
    clock on; returns per model call the milliseconds of every stage (``per_call_ms``),
    their shares of the profiled total, and the total. JSON-ready."""
    clock = StageClock(model.device)
    undo: list[tuple[Any, str, Any]] = []
    if spec is None and engine is None:
        run_engine: Any = _StartOnly(_Uncached(model.network, clock), clock)
    else:
        engine = engine or CacheEngine(model.network, make_policy(parse_policy(
            spec, model.n_steps)), **(engine_options or {}))
        undo = _instrument(engine, clock)
        run_engine = _Timed(engine, clock)
    try:
        generate(model, batch, n_steps=n_steps, seed=seed, batch_size=batch,
                 engine=run_engine, progress=False)
    finally:
        for owner, name, previous in reversed(undo):
            if previous is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, previous)
    total = sum(clock.seconds.values())
    calls = max(1, clock.calls)
    return {"policy": spec or "uncached", "batch": batch, "n_steps": n_steps,
            "calls": clock.calls, "total_ms_per_call": 1e3 * total / calls,
            "per_call_ms": {k: 1e3 * v / calls for k, v in clock.seconds.items()},
            "share": {k: (v / total if total else 0.0) for k, v in clock.seconds.items()}}


class _StartOnly:
    """The uncached candidate between the clock's start and its own last mark."""

    def __init__(self, candidate: _Uncached, clock: StageClock):
        self.candidate, self.clock, self.history = candidate, clock, []

    def start_batch(self, n_steps: int, sample_ids: Tensor) -> None:
        return None

    def __call__(self, x: Tensor, t: Tensor, step: int, stage: int = 0) -> Tensor:
        self.clock.start()
        return self.candidate(x, t, step, stage)


def format_profile(profiles: list[dict[str, Any]]) -> str:
    """One Markdown table: per policy and batch, ms per call by stage and the total."""
    rows = ["| policy | batch | " + " | ".join(STAGES) + " | total ms |",
            "|---|---|" + "---|" * len(STAGES) + "---|"]
    for p in profiles:
        cells = " | ".join(f"{p['per_call_ms'][s]:.3f}" for s in STAGES)
        rows.append(f"| {p['policy']} | {p['batch']} | {cells} | "
                    f"{p['total_ms_per_call']:.3f} |")
    return "\n".join(rows)
