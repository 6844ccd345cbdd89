"""A.8: "the cache stores at most floor(N/2)+1 tokens" and "N_eff = K+1".

The E²-CRF engine runs inside the reverse Euler-Maruyama sampler on the checkpoint's
model (``trajectories.policy_run``: the recording's sizes, prior and noise) at the
paper's stated settings (K = floor(N/10), tau_0 = 0.01, R = 50) and at fdbench's
operating point. Tokens held are counted on every layer's cache (the K/V tensors' token
axis, and the final-stream cache of ``subset`` mode). "N_eff = K+1" (tokens effectively
computed per step) is compared with the mean number of tokens the policy *planned* per
sample on the cached steps (no padding of per-sample subsets to the batch maximum):
trigger set and random probes come on top of the low band {0..K}.

The chart layout (one token per chart position, N tokens) is the layout fault: its
caches hold N > floor(N/2)+1 tokens.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from fdbench.cache import CacheEngine, E2CRFConfig, make_policy, parse_policy
from fdbench.model import ModelConfig, ScoreTransformer, build_model
from fdbench.randomness import PerSampleNoise
from fdbench.sde import VPSDE, prior_sample
from fdbench.solvers import reverse_euler_maruyama, uniform_times
from fdbench.spectral import chart_lambda, n_bins
from proofs_check import trajectories
from proofs_check.registry import ClaimResult, Context, decide, decided_fields, register

# counts are integers per sample and step: a mean more than half a token above K+1
# cannot come from rounding
TOKEN_TOL = 0.5


def run_engine(network: ScoreTransformer, spec: str, *, n_steps: int, batch: int,
               seed: int = 0) -> CacheEngine:
    """Sample ``batch`` series with ``n_steps`` reverse EM steps through a cache engine
    running policy ``spec`` on ``network``; return the engine (caches as left after the
    last step, statistics in ``engine.stats``). The network itself is not modified."""
    config = network.config
    engine = CacheEngine(network, make_policy(parse_policy(spec, config.n_steps)))
    sde = VPSDE()
    lam = chart_lambda(config.n_steps) if config.frequency_domain else None
    noise = PerSampleNoise(seed, range(batch))
    x = prior_sample(sde, noise((config.n_steps, config.n_channels)), lam)
    engine.start_batch(n_steps, torch.arange(batch))
    with torch.no_grad():
        reverse_euler_maruyama(engine, x, uniform_times(n_steps, sde.eps), sde, lam, noise)
    return engine


def tokens_held(engine: CacheEngine) -> int:
    """Largest number of tokens held by any one cache of the engine (per sample)."""
    counts = [cache.k.shape[2] for cache in engine.caches or []]
    if engine.final is not None:
        counts.append(engine.final.shape[1])
    return max(counts, default=0)


def planned_tokens(engine: CacheEngine) -> list[float]:
    """Tokens the policy planned per sample on each cached step (mean over the batch)."""
    n_tokens = engine.config.n_tokens
    return [s.planned_fraction * n_tokens for s in engine.stats.records() if not s.full]


def _setting(config: E2CRFConfig) -> str:
    return f"K={config.K}, tau_0={config.tau_0:g}, R={config.R}"


@register("A.8", "cache holds <= floor(N/2)+1 tokens; N_eff = K+1", needs_model=True)
def check(ctx: Context, *, layout: str = "bins", policy_changes: dict[str, Any] | None = None
          ) -> ClaimResult:
    """Faults/variants: ``layout="chart"`` runs the engine on a chart-layout network of
    the same N (N tokens per cache); ``policy_changes`` alter both E²-CRF configs (e.g.
    no probes and an unreachable trigger threshold: exactly K+1 tokens per step)."""
    model = trajectories.shared_model(ctx)
    n = model.n_steps
    bound = n_bins(n)
    changes = policy_changes or {}
    configs = {"paper settings": replace(trajectories.paper_config(ctx), **changes),
               "operating point": replace(E2CRFConfig(), **changes)}
    readings: dict[str, str] = {}
    values: dict[str, tuple[float | None, float | None]] = {}
    numbers: dict[str, float] = {"N": float(n), "bound_floor_N2_plus_1": float(bound)}
    series: dict[str, list[float]] = {}
    for label, config in configs.items():
        engine = trajectories.policy_run(ctx, config).engine
        tag = "paper" if label == "paper settings" else "op"
        held = tokens_held(engine)
        planned = planned_tokens(engine)
        mean = sum(planned) / len(planned) if planned else float("nan")
        key = f"{label} ({_setting(config)})"
        readings[f"<= floor(N/2)+1 tokens held, {key}"] = "holds" if held <= bound \
            else "violated"
        values[f"<= floor(N/2)+1 tokens held, {key}"] = (float(held), float(bound))
        name = f"N_eff = K+1 (planned tokens per cached step), {key}"
        readings[name] = "vacuous" if not planned else (
            "holds" if abs(mean - (config.K + 1)) <= TOKEN_TOL else "violated")
        values[name] = (mean, float(config.K + 1))
        numbers.update({f"mean_planned_tokens_{tag}": mean, f"K_plus_1_{tag}": config.K + 1.0,
                        f"tokens_held_{tag}": float(held), f"cached_steps_{tag}":
                        float(len(planned))})
        series[f"planned_tokens_per_cached_step_{tag}"] = [round(v, 3) for v in planned]
    if layout != "bins":
        net_config = ModelConfig.from_preset("tiny", n, model.n_channels, layout=layout)
        engine = run_engine(build_model(net_config, seed=ctx.seed).eval(), "e2crf",
                            n_steps=ctx.pick(10, 20), batch=2, seed=ctx.seed)
        name = f"<= floor(N/2)+1 tokens held, {layout} layout (tiny network, same N)"
        readings[name] = "holds" if tokens_held(engine) <= bound else "violated"
        values[name] = (float(tokens_held(engine)), float(bound))
    order = sorted(readings, key=lambda r: ("layout" not in r, "paper" not in r,
                                            "N_eff" in r))
    verdict, decided = decide(readings, values, order)
    return ClaimResult(
        "A.8", "cache stores <= floor(N/2)+1 tokens; N_eff = K+1", verdict, numbers,
        tolerance=(f"size: exact token count <= floor(N/2)+1; N_eff: |mean planned tokens "
                   f"per cached step - (K+1)| <= {TOKEN_TOL} (counts are integers)"),
        **decided_fields(readings, values, decided),
        settings=(f"B x T = {'x'.join(map(str, trajectories.sizes(ctx)))}, N = {n}; "
                  + "; ".join(f"{k} {_setting(c)}" for k, c in configs.items())),
        note="planned = per-sample token counts of the policy (no padding); the checkpoint's "
             "model in the reverse EM sampler",
        series=series)
