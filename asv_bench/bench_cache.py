"""Cache policies on the shipped ECG model: FLOP and wall-time fractions, quality, step
time and peak memory. Every tracked number is a cached/uncached ratio or an error, so lower
is better for all of them (asv's assumption for every metric)."""

from __future__ import annotations

import torch

from asv_bench import common


class CachedVsUncached:
    """Tracked ratios per policy. All sampling happens once per commit in ``setup_cache``
    (interleaved timing rounds included) and each ``track_`` reports one number of it."""

    params = [common.POLICIES]
    param_names = ["policy"]
    timeout = 600

    def setup_cache(self) -> dict:
        model = common.load_model()
        uncached = common.sample(model, None, common.NUM_SAMPLES)
        out = {}
        for policy in common.POLICIES:
            try:
                engine = common.make_engine(model, policy)
            except NotImplementedError:
                out[policy] = None
                continue
            cached = common.sample(model, engine, common.NUM_SAMPLES)
            sw_ratio, paired = common.quality(model, cached, uncached)
            out[policy] = {"flop_fraction": common.flop_fraction(engine),
                           "wall_fraction": common.wall_fraction(
                               model, common.make_engine(model, policy), common.NUM_SAMPLES),
                           "sw_ratio": sw_ratio, "paired_error": paired}
        return out

    def setup(self, results: dict, policy: str) -> None:
        if results.get(policy) is None:
            raise NotImplementedError(f"policy {policy!r} unavailable at this commit")
        self.numbers = results[policy]

    def track_flop_fraction(self, results: dict, policy: str) -> float:
        return self.numbers["flop_fraction"]
    track_flop_fraction.unit = "cached/uncached FLOPs"

    def track_wall_fraction(self, results: dict, policy: str) -> float:
        return self.numbers["wall_fraction"]
    track_wall_fraction.unit = "cached/uncached seconds"

    def track_sw_ratio(self, results: dict, policy: str) -> float:
        return self.numbers["sw_ratio"]
    track_sw_ratio.unit = "SW cached/SW uncached"

    def track_paired_error(self, results: dict, policy: str) -> float:
        return self.numbers["paired_error"]
    track_paired_error.unit = "relative L2 error"


class SamplingStep:
    """Wall time of one score evaluation (one solver step) at a mid-run step, per policy
    ("uncached" = the bare network) and batch size. ``setup`` samples once recording the
    network inputs, then replays steps 0..STEP-1 on a fresh batch so the caches hold a
    real run's state; the timed calls are the policy's decision plus its (partial)
    recompute at step STEP (repeated calls at one step: the policy's state moves a little
    with each, the work per call stays that of a mid-run step)."""

    params = [["uncached", *common.POLICIES], common.BATCH_SIZES]
    param_names = ["policy", "batch"]
    STEP = 13  # mid-run and not a multiple of fixed's refresh interval (10): a cached step

    def setup(self, policy: str, batch: int) -> None:
        self.model = common.load_model()
        engine = common.make_engine(self.model, policy)
        recorder = common.Recorder(self.model, engine)
        common.sample(self.model, recorder, batch)
        calls = [c for c in recorder.calls if c[2] <= self.STEP]
        if engine is not None:  # replay steps 0..STEP-1: the caches as a real run has them
            engine.start_batch(common.N_STEPS, torch.arange(batch))
            with torch.no_grad():
                for x, t, step, args, kwargs in calls[:-1]:
                    engine(x, t, step, *args, **kwargs)
        x, t, step, args, kwargs = calls[-1]
        self.call = (lambda: self.model.network(x, t)) if engine is None else (
            lambda: engine(x, t, step, *args, **kwargs))

    def time_sampling_step(self, policy: str, batch: int) -> None:
        with torch.no_grad():
            self.call()


class PeakMemory:
    """Peak resident memory of a short sampling run per policy (batch 16)."""

    params = [["uncached", *common.POLICIES]]
    param_names = ["policy"]

    def setup(self, policy: str) -> None:
        self.model = common.load_model()
        self.engine = common.make_engine(self.model, policy)

    def peakmem_sampling(self, policy: str) -> None:
        common.sample(self.model, self.engine, 16, n_steps=10)
