"""Paired sampler trajectories shared by the model-dependent checks.

Once per :class:`~proofs_check.registry.Context` (kept in ``ctx.memo``) the checkpoint's
model samples B series with reverse Euler–Maruyama (``fdbench.solvers``) twice from
the same prior draw and the same per-step noise (``PerSampleNoise``, seeded by
(ctx.seed, sample index)):

* uncached — the plain network every step (the reference);
* E²-CRF — the cache engine with ``E2CRFConfig()`` (fdbench's operating point); at every
  step of this run the plain network is also evaluated at the *same* state and time, so
  the cache's score error shat - s and final-residual-stream error z_L - zhat_L are exact
  per step (nothing else differs).

``policy_run`` samples once more per cache config (e.g. the paper's stated settings,
``paper_config``) from the same prior and noise, without the paired plain calls.

Everything is recorded on CPU in float32 (the model's dtype); sizes are
``ctx.pick((8, 100), (16, 1000))`` samples x steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fdbench.cache import CacheEngine, CacheStats, E2CRFConfig, make_policy
from fdbench.pipeline import ScoreModel
from fdbench.randomness import PerSampleNoise
from fdbench.sde import prior_sample
from fdbench.solvers import reverse_euler_maruyama, uniform_times
from fdbench.spectral import localisation_curve
from proofs_check.registry import Context

MEMO_KEY = "trajectories"
MODEL_KEY = "trajectories.model"


@dataclass(frozen=True)
class Trajectories:
    """Recorded paired runs. States ``x_*`` are (T+1, B, N, M): index i is the state the
    solver's step i starts from, index T the returned sample. Scores and noise are
    (T, B, N, M); ``noise[i]`` is the standard normal draw of step i (shared by all runs).
    ``score_err[i] = shat_i - s(x_cache[i], t_i)`` (the E²-CRF score minus the plain
    network's score at the same state); ``feat_err[i]`` (B,) and ``token_err[i]``
    (B, n_tokens) are the norms of zhat_L - z_L (all tokens / per token), ``fresh[i]``
    (B, n_tokens) the tokens the engine computed at step i."""

    config: E2CRFConfig
    times: Tensor            # (T,) float64
    dt: float
    lam: Tensor | None       # (N,) or None
    x_ref: Tensor
    score_ref: Tensor
    x_cache: Tensor
    score_cache: Tensor
    score_err: Tensor
    feat_err: Tensor
    token_err: Tensor
    fresh: Tensor
    noise: Tensor
    stats: CacheStats
    seconds_ref: float       # wall time of the uncached network calls
    seconds_cache: float     # wall time of the E²-CRF engine calls
    seconds_record: float    # the whole recording

    @property
    def n_steps(self) -> int:
        return int(self.times.shape[0])

    @property
    def batch(self) -> int:
        return int(self.x_ref.shape[1])


class _HeadInput:
    """Forward hook on the network's unembedder: the residual stream z_L the head read in
    the last call (the engine corrects its cached stream *after* the head read it, so the
    stream must be taken at the head, not from ``engine.final``)."""

    def __init__(self, network: torch.nn.Module):
        self.value: Tensor | None = None
        self.handle = network.unembedder.register_forward_hook(self._hook)

    def _hook(self, module: Any, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        self.value = inputs[0].detach().clone()


class _Recorder:
    """Collects what the solver sees: the state each step starts from, its score, and the
    noise draws (the solver draws the noise after the score call of a step)."""

    def __init__(self, noise: PerSampleNoise):
        self.states: list[Tensor] = []
        self.scores: list[Tensor] = []
        self.draws: list[Tensor] = []
        self._noise = noise

    def noise(self, shape: tuple[int, ...]) -> Tensor:
        draw = self._noise(shape)
        self.draws.append(draw)
        return draw


def shared_model(ctx: Context) -> ScoreModel:
    """The checkpoint's model, loaded once per context (eval mode)."""
    if MODEL_KEY not in ctx.memo:
        model = ctx.load_model()
        model.network.eval()
        ctx.memo[MODEL_KEY] = model
    return ctx.memo[MODEL_KEY]


def sizes(ctx: Context) -> tuple[int, int]:
    """(samples, sampler steps) of the recording."""
    return ctx.pick((8, 100), (16, 1000))


def record(ctx: Context, *, cached_gain: float = 1.0) -> Trajectories:
    """The paired trajectories of this context (recorded on first use, then memoised);
    ``cached_gain`` != 1: a separate recording with that planted fault (``_record``)."""
    key = MEMO_KEY if cached_gain == 1.0 else f"{MEMO_KEY}.cached_gain={cached_gain}"
    if key not in ctx.memo:
        ctx.memo[key] = _record(shared_model(ctx), *sizes(ctx), seed=ctx.seed,
                                cached_gain=cached_gain)
    return ctx.memo[key]


def _prior(model: ScoreModel, noise: PerSampleNoise) -> Tensor:
    return prior_sample(model.sde, noise((model.n_steps, model.n_channels)), model.noise_scale())


@torch.no_grad()
def _record(model: ScoreModel, batch: int, n_steps: int, *, seed: int,
            config: E2CRFConfig | None = None, cached_gain: float = 1.0) -> Trajectories:
    """``cached_gain`` != 1 plants a fault in the cached sampler: its output conversion
    multiplies the score by that gain (as a wrong Lambda in the conversion would), and the
    sampler steps with the faulty score."""
    started = time.perf_counter()
    network, sde, lam = model.network, model.sde, model.noise_scale()
    times = uniform_times(n_steps, sde.eps)
    ids = list(range(batch))
    config = config or E2CRFConfig()

    # uncached reference
    ref = _Recorder(PerSampleNoise(seed, ids))
    x0 = _prior(model, ref._noise)
    clock = [0.0]

    def plain(x: Tensor, t: Tensor, step: int) -> Tensor:
        ref.states.append(x)
        tick = time.perf_counter()
        out = network(x, t)
        clock[0] += time.perf_counter() - tick
        score = model.score(out, x, t)
        ref.scores.append(score)
        return score

    x_end = reverse_euler_maruyama(plain, x0.clone(), times, sde, lam, ref.noise)
    seconds_ref = clock[0]

    # E²-CRF, with the plain network evaluated at the same states alongside
    engine = CacheEngine(network, make_policy(config))
    engine.start_batch(n_steps, torch.tensor(ids))
    fresh_masks: list[Tensor] = []
    observe = engine.policy.observe

    def observe_and_keep(step, observation):  # the engine's fresh-token mask per step
        fresh_masks.append(observation.fresh.clone())
        return observe(step, observation)

    engine.policy.observe = observe_and_keep
    head = _HeadInput(network)
    cache = _Recorder(PerSampleNoise(seed, ids))
    _prior(model, cache._noise)  # advance the streams past the prior draw
    errors: dict[str, list[Tensor]] = {"score": [], "feat": [], "token": []}
    clock[0] = 0.0

    def cached(x: Tensor, t: Tensor, step: int) -> Tensor:
        cache.states.append(x)
        tick = time.perf_counter()
        out_hat = engine(x, t, step)
        clock[0] += time.perf_counter() - tick
        z_hat = head.value
        z = network.backbone(network.embed(x, t))
        s = model.score(network.head(z), x, t)
        s_hat = cached_gain * model.score(out_hat, x, t)
        cache.scores.append(s_hat)
        errors["score"].append(s_hat - s)
        diff = z_hat - z
        errors["token"].append(diff.norm(dim=-1))
        errors["feat"].append(diff.flatten(1).norm(dim=1))
        return s_hat

    try:
        x_cache_end = reverse_euler_maruyama(cached, x0.clone(), times, sde, lam, cache.noise)
    finally:
        head.handle.remove()
    seconds_cache = clock[0]

    noise = torch.stack(ref.draws)
    if not torch.equal(noise, torch.stack(cache.draws)):
        raise RuntimeError("paired runs drew different noise: the pairing is broken")
    return Trajectories(
        config=config, times=times, dt=float(times[0] - times[1]), lam=lam,
        x_ref=torch.stack(ref.states + [x_end]), score_ref=torch.stack(ref.scores),
        x_cache=torch.stack(cache.states + [x_cache_end]),
        score_cache=torch.stack(cache.scores), score_err=torch.stack(errors["score"]),
        feat_err=torch.stack(errors["feat"]), token_err=torch.stack(errors["token"]),
        fresh=torch.stack(fresh_masks), noise=noise, stats=engine.stats,
        seconds_ref=seconds_ref, seconds_cache=seconds_cache,
        seconds_record=time.perf_counter() - started)


@dataclass(frozen=True)
class PolicyRun:
    """One cached sampler run (no paired plain-network calls): the engine as left after
    the last step (its caches and ``stats``) and the returned samples."""

    config: Any
    engine: CacheEngine
    samples: Tensor


def paper_config(ctx: Context) -> E2CRFConfig:
    """E²-CRF at the paper's stated settings for the checkpoint's N (K = floor(N/10),
    tau_0 = 0.01, R = 50, the paper's readings)."""
    return E2CRFConfig.paper_stated(shared_model(ctx).n_steps)


def policy_run(ctx: Context, config: Any, fault: Any = None) -> PolicyRun:
    """Sample with ``config``'s cache policy from the recording's prior and noise
    (same sizes and seeds as :func:`record`), memoised per context, config and planted
    fault (``planted_policies.Fault``: the policy wrapped with it)."""
    from proofs_check.planted_policies import planted_policy

    if fault is not None and not fault.planted:
        fault = None                        # Fault() plants nothing: the plain run
    key = ("trajectories.policy_run", config, fault)
    if key not in ctx.memo:
        model = shared_model(ctx)
        batch, n_steps = sizes(ctx)
        ids = list(range(batch))
        noise = PerSampleNoise(ctx.seed, ids)
        x0 = _prior(model, noise)
        times = uniform_times(n_steps, model.sde.eps)
        engine = CacheEngine(model.network, planted_policy(config, fault))
        engine.start_batch(n_steps, torch.tensor(ids))

        def score(x: Tensor, t: Tensor, step: int) -> Tensor:
            return model.score(engine(x, t, step), x, t)

        with torch.no_grad():
            end = reverse_euler_maruyama(score, x0, times, model.sde, model.noise_scale(),
                                         noise)
        ctx.memo[key] = PolicyRun(config, engine, end)
    return ctx.memo[key]


def paired_errors(ctx: Context, samples: Tensor) -> Tensor:
    """(B,) float64 paired relative errors of ``samples`` against the uncached samples of
    the recording (same prior and noise), in the time domain (``quality.paired_relative_
    error`` on decoded series, as ``fdbench bench`` reports them)."""
    from fdbench.quality import paired_relative_error

    model = shared_model(ctx)
    reference = model.decode(record(ctx).x_ref[-1]).double()
    return paired_relative_error(model.decode(samples).double(), reference)


def localisation_data(ctx: Context) -> tuple[Tensor, str]:
    """The time-domain series delta(K) is measured on: the checkpoint's training data
    when it is a registered data set, else the uncached samples (decoded); and which."""
    key = "trajectories.localisation_data"
    if key not in ctx.memo:
        from fdbench.data import DATASETS, load_dataset

        model = shared_model(ctx)
        name = model.meta.get("data")
        if name in DATASETS:
            split = load_dataset(name, seed=int(model.meta.get("data_seed", 0)))
            ctx.memo[key] = (split.train, f"data '{name}' (train split)")
        else:
            ctx.memo[key] = (model.decode(record(ctx).x_ref[-1]), "uncached samples")
    return ctx.memo[key]


def data_localisation(ctx: Context) -> tuple[Tensor, str]:
    """delta(K) for K = 0..N//2 (``spectral.localisation_curve``) of
    :func:`localisation_data`, and which series it is."""
    key = "trajectories.delta"
    if key not in ctx.memo:
        series, source = localisation_data(ctx)
        ctx.memo[key] = (localisation_curve(series), source)
    return ctx.memo[key]


def fit_loglog_slope(x: Tensor, y: Tensor) -> float:
    """Least-squares slope of log y against log x (entries with y <= 0 dropped)."""
    keep = (y > 0) & (x > 0)
    lx, ly = x[keep].double().log(), y[keep].double().log()
    if lx.numel() < 2:
        return float("nan")
    lx = lx - lx.mean()
    return float((lx * (ly - ly.mean())).sum() / lx.square().sum())
