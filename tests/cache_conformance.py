"""The cache conformance suite: the lab (one tiny random-weight float64 ScoreTransformer,
bins layout, batch 3; trajectories; cached runs) and the checks that every registered
preset of ``fdbench.cache.POLICY_PRESETS`` must pass (tests/cache_conformance_rules.py
holds the checks of one policy's own rule).

A check is a plain function ``check(lab, name)`` that raises AssertionError naming what
broke. ``tests/test_cache_conformance.py`` lists them (``CHECKS``) with the presets they
apply to, runs each (check, preset) pair as a test, and runs the whole suite again with
planted bugs to prove that it fails. A :class:`Lab` memoises the cached runs of one
execution of the suite, so a planted bug always gets runs of its own; the uncached
references depend on the network only and are shared."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cache

import torch
from torch import Tensor

from fdbench.cache import POLICY_PRESETS, CacheConfig, CacheEngine, CacheStats, make_policy
from fdbench.cache.base import CachePolicy, Decision, StepInfo
from fdbench.model import ModelConfig, build_model

N, M, BATCH = 24, 2, 3
LONG, SHORT = 24, 8           # steps of the smooth and of the uneven trajectory
ATOL = 1e-9                   # float64: the subset path differs from the plain one by ~1e-15
# a cache must err at most this share of "features frozen at step 0" (presets: <= 0.63)
FROZEN_MARGIN = 0.75
# policies whose cached steps forecast rather than reuse (config.policy -> predicate)
FORECASTERS: dict[str, Callable[[CacheConfig], bool]] = {
    "taylorseer": lambda config: config.max_order > 0,
    "freqca": lambda config: getattr(config, "max_order", 2) > 0,
}

NET = build_model(ModelConfig.from_preset("tiny", N, M, layout="bins", dropout=0.0),
                  seed=1).eval().double()
N_TOKENS = NET.config.n_tokens


@dataclass(frozen=True, eq=False)       # compared (and memoised) by identity
class Trajectory:
    """The sampler's inputs: x_i (B, N, M) and t_i (B,) for i = 0..T-1."""

    name: str
    xs: tuple[Tensor, ...]
    ts: tuple[Tensor, ...]

    @property
    def steps(self) -> int:
        return len(self.xs)


def drifting(name: str, steps: int, seed: int, speed: Tensor) -> Trajectory:
    """x_i = a + speed * b * i / T with t_i falling by 5e-4 a step: slow enough that the
    Gaussian Fourier time features (scale 30) change smoothly, and x small enough
    (std 0.5) that E²-CRF's absolute trigger skips tokens."""
    g = torch.Generator().manual_seed(seed)
    a, b = (0.5 * torch.randn(BATCH, N, M, generator=g, dtype=torch.float64) for _ in "ab")
    xs = tuple(a + 0.3 * speed[:, None, None] * b * i / steps for i in range(steps))
    ts = tuple(torch.full((BATCH,), 0.6 - 5e-4 * i, dtype=torch.float64) for i in range(steps))
    return Trajectory(name, xs, ts)


SMOOTH = drifting("smooth", LONG, 0, torch.ones(BATCH, dtype=torch.float64))
# samples at very different speeds: adaptive policies decide differently per sample
UNEVEN = drifting("uneven", SHORT, 7, torch.tensor([0.2, 1.0, 5.0], dtype=torch.float64))
STILL = Trajectory("still", (SMOOTH.xs[0],) * SHORT, (SMOOTH.ts[0],) * SHORT)


def held(base: Trajectory, changes: list[int]) -> Trajectory:
    """``base`` with the input held from each step in ``changes`` to the next one."""
    sources = [max(c for c in changes if c <= i) for i in range(base.steps)]
    return Trajectory(f"{base.name}@{changes}", tuple(base.xs[i] for i in sources),
                      tuple(base.ts[i] for i in sources))


@cache
def uncached(trajectory: Trajectory) -> tuple[Tensor, ...]:
    """The plain network's outputs along a trajectory (the planted bugs patch only
    fdbench.cache, so these are shared by every execution)."""
    with torch.no_grad():
        return tuple(NET(x, t) for x, t in zip(trajectory.xs, trajectory.ts, strict=True))


def preset(name: str) -> CacheConfig:
    return POLICY_PRESETS[name](N)


def has_field(config: CacheConfig, name: str) -> bool:
    return name in {f.name for f in fields(config)}


@dataclass
class Run:
    """A cached run's stage-0 outputs and statistics."""

    outputs: list[Tensor]
    stats: CacheStats

    @property
    def full(self) -> list[int]:
        return [i for i, record in enumerate(self.stats.records()) if record.full]


def run(config: CacheConfig, trajectory: Trajectory, *, force: bool = False,
        engine: CacheEngine | None = None, ids: Tensor | None = None,
        heun: bool = False) -> Run:
    """Stage-0 outputs of a fresh (or the given) engine along ``trajectory``; ``heun``
    interleaves a stage-1 call at the next input after every step."""
    engine = engine or CacheEngine(NET, make_policy(config), force_recompute_all=force)
    batch = trajectory.xs[0].shape[0]
    engine.start_batch(trajectory.steps, torch.arange(batch) if ids is None else ids)
    outputs = []
    for i, (x, t) in enumerate(zip(trajectory.xs, trajectory.ts, strict=True)):
        outputs.append(engine(x, t, i))
        if heun:
            j = min(i + 1, trajectory.steps - 1)
            engine(trajectory.xs[j], trajectory.ts[j], i, stage=1)
    return Run(outputs, engine.stats)


@dataclass
class Lab:
    """One execution of the suite: memoised default-setting runs of fresh engines."""

    runs: dict[tuple[str, str], Run] = field(default_factory=dict)

    def default_run(self, name: str, trajectory: Trajectory) -> Run:
        key = (name, trajectory.name)
        if key not in self.runs:
            self.runs[key] = run(preset(name), trajectory)
        return self.runs[key]


def deviation(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max())


def rms(a: Tensor, b: Tensor) -> float:
    return float((a - b).square().mean().sqrt())


def assert_exact(outputs: list[Tensor], reference: tuple[Tensor, ...], steps, what: str):
    for i in steps:
        gap = deviation(outputs[i], reference[i])
        assert gap <= ATOL, f"{what}: step {i} deviates from the uncached network by {gap:.3g}"


# ---- the checks -------------------------------------------------------------------------

def identical_input_exact(lab: Lab, name: str) -> None:
    """Same x and t at every step: a cache has nothing to be stale about, so every step
    equals the uncached network, while the policy still skips work."""
    result = lab.default_run(name, STILL)
    assert_exact(result.outputs, uncached(STILL), range(STILL.steps), "identical input")
    if preset(name).policy != "none":
        fraction = result.stats.summary()["recompute_fraction"]
        assert fraction < 1.0, f"identical input: nothing was reused ({fraction=})"


def degenerate_setting_exact(lab: Lab, name: str) -> None:
    """The policy's recompute-all setting (interval 1, threshold 0, ...) or the engine's
    forced all-tokens plan (same gather/scatter code) equals the uncached network on a
    moving trajectory and executes everything."""
    config = preset(name).recompute_all()
    result = run(config or preset(name), UNEVEN, force=config is None)
    assert_exact(result.outputs, uncached(UNEVEN), range(UNEVEN.steps), "recompute-all")
    fraction = result.stats.summary()["recompute_fraction"]
    assert fraction == 1.0, f"recompute-all executed a fraction {fraction} != 1"


def full_steps_exact(lab: Lab, name: str) -> None:
    """The first and last steps are full, and every step the statistics record as full
    outputs exactly the uncached network."""
    result = lab.default_run(name, SMOOTH)
    full = result.full
    assert full[0] == 0 and full[-1] == SMOOTH.steps - 1, f"full steps {full}"
    assert_exact(result.outputs, uncached(SMOOTH), full, "full step")


def scheduled_full_steps(config: CacheConfig, steps: int) -> set[int] | None:
    """The full steps a static schedule prescribes, as the policies' docstrings state it
    (written out here, not imported, so the check does not trust the code it checks), or
    None for adaptive schedules."""
    always = {0, steps - 1}
    interval, warmup = getattr(config, "cache_interval", None), getattr(config, "warmup_steps", 0)
    if config.policy in ("taylorseer", "freqca"):   # w warm-up steps, then every N from w - 1
        anchor = max(warmup, 1) - 1
        return always | {i for i in range(steps) if i < warmup or (i - anchor) % interval == 0}
    if interval is not None and getattr(config, "schedule", "constant") == "constant":
        return always | {i for i in range(steps) if i < warmup or i % interval == 0}
    periodic = {"fixed": True, "naive_kv": getattr(config, "R", None) is not None,
                "e2crf": getattr(config, "refresh", False)}   # E²-CRF: only its refreshes
    if config.policy in periodic:
        return always | (set(range(0, steps, config.R)) if periodic[config.policy] else set())
    return set(range(steps)) if config.policy == "none" else None


def schedule_followed(lab: Lab, name: str) -> None:
    """Static schedules run their full steps exactly where they prescribe."""
    expected = scheduled_full_steps(preset(name), SMOOTH.steps)
    full = set(lab.default_run(name, SMOOTH).full)
    assert full == expected, f"full steps {sorted(full)}, schedule says {sorted(expected)}"


def beats_frozen_features(lab: Lab, name: str) -> None:
    """On a smooth trajectory a cache skips work and errs (RMS summed over the steps
    between the first and the last) at most FROZEN_MARGIN times as much as reusing the
    step-0 output for every step."""
    result, reference = lab.default_run(name, SMOOTH), uncached(SMOOTH)
    inner = range(1, SMOOTH.steps - 1)
    frozen = sum(rms(reference[0], reference[i]) for i in inner)
    error = sum(rms(result.outputs[i], reference[i]) for i in inner)
    assert error <= FROZEN_MARGIN * frozen, (
        f"error {error:.4g} is {error / frozen:.2f} of frozen features' {frozen:.4g}")
    summary = result.stats.summary()
    if preset(name).policy != "none":
        assert summary["recompute_fraction"] < 1.0 and summary["flop_ratio"] < 1.0, (
            f"nothing skipped on the smooth trajectory: {summary}")


def reuse_matches_last_full_step(lab: Lab, name: str) -> None:
    """Hold the input constant from each full step of a moving run to the next: a
    policy that reuses (does not forecast) is then exact on every step whose input was
    last changed at a step it ran in full - its caches must come from that step."""
    moving = lab.default_run(name, UNEVEN)
    trajectory = held(UNEVEN, moving.full)
    result = run(preset(name), trajectory)
    full, reference, checked, source = set(result.full), uncached(UNEVEN), 0, 0
    for i in range(trajectory.steps):
        source = i if i in moving.full else source
        if source in full:
            gap = deviation(result.outputs[i], reference[source])
            assert gap <= ATOL, (f"held input: step {i} deviates by {gap:.3g} from the "
                                 f"network at its full step {source}")
            checked += i not in full
    if preset(name).policy != "none":
        assert checked > 0, "held input: no cached step was checked"


@dataclass(frozen=True)
class ScriptedConfig(CacheConfig):
    """The suite's own token policy (not registered): a fixed plan per step."""

    policy = "scripted"
    reuse_mode: str = "subset"


class Scripted(CachePolicy):
    """Step 1: every token recomputed (not a full step); step 2: tokens 0, 1; later:
    none."""

    config_class = ScriptedConfig

    def decide(self, step: StepInfo, units_x: Tensor) -> Decision:
        plan = torch.zeros(units_x.shape[:2], dtype=torch.bool)
        plan[:, : {1: N_TOKENS, 2: 2}.get(step.index, 0)] = True
        return Decision(plan)


def recomputed_tokens_refresh_caches(lab: Lab, name: str) -> None:
    """The engine path of the preset's reuse mode: after every token was recomputed at
    step 1 (input x_b, not a full step), steps 2 and 3 on the same input reuse what step 1
    left in the caches (K/V, features), so they equal the uncached network at x_b."""
    x_b, t_b = SMOOTH.xs[-1], SMOOTH.ts[-1]
    trajectory = Trajectory("scripted", (SMOOTH.xs[0],) + (x_b,) * 4,
                            (SMOOTH.ts[0],) + (t_b,) * 4)
    policy = Scripted(ScriptedConfig(reuse_mode=make_policy(preset(name)).mode))
    result = run(preset(name), trajectory, engine=CacheEngine(NET, policy))
    assert result.full == [0, 4], f"full steps {result.full}"
    assert_exact(result.outputs, (uncached(SMOOTH)[-1],) * 5, (1, 2, 3), "after recompute")


def stage_one_invariant(lab: Lab, name: str) -> None:
    """Module policies key their caches on the step: interleaving stage-1 calls (Heun's
    second evaluation) leaves every stage-0 output unchanged."""
    plain = lab.default_run(name, UNEVEN)
    with_heun = run(preset(name), UNEVEN, heun=True)
    for i, (a, b) in enumerate(zip(plain.outputs, with_heun.outputs, strict=True)):
        assert torch.equal(a, b), f"stage-1 calls changed step {i} by {deviation(a, b):.3g}"


def reset_between_batches(lab: Lab, name: str) -> None:
    """A batch run after another gives exactly what it gives on a fresh engine: caches
    and policy state are reset in start_batch."""
    engine = CacheEngine(NET, make_policy(preset(name)))
    first = run(preset(name), STILL, engine=engine)
    lab.runs.setdefault((name, STILL.name), first)    # a first batch is a fresh run
    after = run(preset(name), UNEVEN, engine=engine)
    fresh = lab.default_run(name, UNEVEN)
    for i, (a, b) in enumerate(zip(after.outputs, fresh.outputs, strict=True)):
        assert torch.equal(a, b), f"second batch differs at step {i} by {deviation(a, b):.3g}"


def batch_equals_single(lab: Lab, name: str) -> None:
    """Every policy decides per sample: a sample's outputs do not depend on its batch
    (samples moving at different speeds; per-sample randomness keyed by sample index)."""
    batched = lab.default_run(name, UNEVEN)
    for b in range(BATCH):
        one_sample = Trajectory(f"uneven[{b}]", tuple(x[b:b + 1] for x in UNEVEN.xs),
                                tuple(t[b:b + 1] for t in UNEVEN.ts))
        alone = run(preset(name), one_sample, ids=torch.tensor([b]))
        for i, (a, one) in enumerate(zip(batched.outputs, alone.outputs, strict=True)):
            gap = deviation(a[b:b + 1], one)
            assert gap <= ATOL, f"sample {b} at step {i}: batched differs by {gap:.3g}"
