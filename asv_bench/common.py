"""Shared set-up of the asv benchmarks: the shipped ECG checkpoint, a pinned policy list and
short deterministic sampling runs. Benchmarks come from the working tree but run against
the package at each commit, so anything a commit lacks raises NotImplementedError (asv
then skips that benchmark for that commit)."""

from __future__ import annotations

import statistics
import time
from typing import Any

# Pinned: names that exist at every benchmarked commit (c7179ff and later); a name missing
# from POLICY_PRESETS at some commit is skipped there, not an error.
POLICIES = ["fixed", "naive_kv", "e2crf"]
BATCH_SIZES = [1, 16]
N_STEPS = 20          # solver steps per sampling run: small, so the suite fits in minutes
NUM_SAMPLES = 16      # samples per policy for the quality numbers
N_DIRECTIONS = 200    # sliced Wasserstein directions
ROUNDS = 3            # interleaved uncached/cached rounds for the wall-time fraction
SEED = 0
THREADS = 1


def _require(module: str, *names: str) -> Any:
    """Import ``names`` from ``module``; NotImplementedError when this commit lacks them."""
    import importlib

    try:
        mod = importlib.import_module(module)
        return [getattr(mod, name) for name in names]
    except (ImportError, AttributeError) as err:
        raise NotImplementedError(f"{module}.{names} missing at this commit: {err}") from None


def load_model() -> Any:
    import torch

    torch.set_num_threads(THREADS)
    (shipped,) = _require("fdbench.run", "shipped_checkpoint")
    (load,) = _require("fdbench.checkpoint", "load_checkpoint")
    return load(shipped())


def make_engine(model: Any, policy: str) -> Any:
    """A cache engine for ``policy`` (None for "uncached")."""
    if policy == "uncached":
        return None
    presets, parse, make, engine_cls = _require(
        "fdbench.cache", "POLICY_PRESETS", "parse_policy", "make_policy", "CacheEngine")
    if policy not in presets:
        raise NotImplementedError(f"policy {policy!r} not in POLICY_PRESETS at this commit")
    return engine_cls(model.network, make(parse(policy, model.n_steps)))


def sample(model: Any, engine: Any, n: int, n_steps: int = N_STEPS, callback: Any = None) -> Any:
    (generate,) = _require("fdbench.generate", "generate")
    kwargs = {"callback": callback} if callback is not None else {}
    return generate(model, n, n_steps=n_steps, seed=SEED, batch_size=n, engine=engine,
                    progress=False, **kwargs)


class Recorder:
    """Stands in for a cache engine in ``generate``: records every call's arguments and
    forwards them to the engine (or to the bare network when there is none)."""

    def __init__(self, model: Any, engine: Any):
        self.model, self.engine, self.calls = model, engine, []

    def start_batch(self, n_steps: int, sample_ids: Any) -> None:
        if self.engine is not None:
            self.engine.start_batch(n_steps, sample_ids)

    def __call__(self, x: Any, t: Any, step: int, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((x.clone(), t.clone(), step, args, kwargs))
        if self.engine is None:
            return self.model.network(x, t)
        return self.engine(x, t, step, *args, **kwargs)


def flop_fraction(engine: Any) -> float:
    (combine,) = _require("fdbench.cache", "combine")
    return float(combine(engine.history)["flop_ratio"])


def wall_fraction(model: Any, engine: Any, n: int) -> float:
    """Median over interleaved rounds (uncached, cached, uncached, ...) of cached seconds
    / uncached seconds of the same round: machine drift cancels within a round."""
    sample(model, None, n, n_steps=4)   # warm-up of both paths
    sample(model, engine, n, n_steps=4)
    ratios = []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        sample(model, None, n)
        plain = time.perf_counter() - began
        began = time.perf_counter()
        sample(model, engine, n)
        ratios.append((time.perf_counter() - began) / plain)
    return statistics.median(ratios)


def quality(model: Any, cached: Any, uncached: Any) -> tuple[float, float]:
    """(SW(cached) / SW(uncached) against held-out data, mean paired relative error)."""
    (sliced,) = _require("fdbench.metrics", "sliced_wasserstein")
    (paired,) = _require("fdbench.quality", "paired_relative_error")
    (load_dataset,) = _require("fdbench.data", "load_dataset")
    meta = model.meta
    reference = load_dataset(meta.get("data", "ecg"), seed=int(meta.get("data_seed", 0))).test

    def sw(x: Any) -> float:
        summary = sliced(x, reference, n_directions=N_DIRECTIONS, seed=SEED)
        return float(summary.mean)

    return sw(cached) / sw(uncached), float(paired(cached, uncached).mean())
