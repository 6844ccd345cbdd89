"""Draw samples from a trained score model: per-sample noise, prior, reverse solver,
decode to the time domain. Samples depend only on (seed, global sample index)."""

from __future__ import annotations

import torch
from torch import Tensor

from fdbench.cache import CacheEngine
from fdbench.errors import ConfigError
from fdbench.pipeline import ScoreModel
from fdbench.progress import Stage, bar
from fdbench.randomness import PerSampleNoise
from fdbench.sde import prior_sample
from fdbench.solvers import Callback, ScoreFn, SolverConfig


def score_fn_of(model: ScoreModel, engine: CacheEngine | None = None) -> ScoreFn:
    """The score as the solver sees it: one call of the network (or of a cache engine
    running it, keyed by the solver's step index and ``stage``, 1 for the second call of
    a two-evaluation step) per solver evaluation, converted by the model's
    parametrisation."""
    def score(x: Tensor, t: Tensor, step: int, stage: int = 0) -> Tensor:
        output = model.network(x, t) if engine is None else engine(x, t, step, stage=stage)
        return model.score(output, x, t)
    return score


@torch.no_grad()
def generate(model: ScoreModel, n_samples: int, *, n_steps: int = 1000, seed: int = 0,
             batch_size: int = 64, first_index: int = 0, noise_free_last_step: bool = False,
             progress: bool = True, engine: CacheEngine | None = None,
             callback: Callback | None = None, solver: str = "em", grid: str = "uniform",
             eta: float = 0.0, rho: float = 7.0, desc: str = "sampling") -> Tensor:
    """``n_samples`` time-domain series (n, N, M) from the ``solver`` (``solvers.SOLVERS``;
    default reverse Euler–Maruyama) with ``n_steps`` steps on the time ``grid``
    (``time_grids.GRIDS``; ``eta`` for DDIM, ``rho`` for the EDM grid). Sample i uses the
    noise stream of (seed, first_index + i), so any batching (or sharding across
    processes) gives the same samples. With ``engine`` the score comes from a cache engine
    (reset per batch with ``n_steps`` solver steps; its ``history`` holds the stats).
    ``progress``: bars (batches, solver steps) on a terminal, else one line ``desc: ...``
    when done."""
    for name, value, low in (("n_samples", n_samples, 1), ("n_steps", n_steps, 2),
                             ("batch_size", batch_size, 1), ("first_index", first_index, 0),
                             ("seed", seed, 0)):
        if value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value}")
    config = SolverConfig(solver, n_steps, grid, eta, rho, noise_free_last_step)
    model.network.eval()
    device = model.device
    lam = model.noise_scale()
    times = config.times(model.sde, device=device)
    score_fn = score_fn_of(model, engine)
    chunks = []
    starts = range(first_index, first_index + n_samples, batch_size)
    detail = f"{n_samples} series, {solver} T={n_steps}, {len(starts)} batch(es)"
    with Stage(desc, enabled=progress, detail=detail):
        for start in bar(starts, desc=f"{desc} (batches)", enabled=progress):
            indices = range(start, min(start + batch_size, first_index + n_samples))
            noise = PerSampleNoise(seed, indices, device=device)
            if engine is not None:
                engine.start_batch(n_steps, torch.tensor(list(indices)))
            x = prior_sample(model.sde, noise((model.n_steps, model.n_channels)), lam)
            x = config.run(score_fn, x, model.sde, lam, noise, times=times,
                           callback=callback, progress=progress)
            chunks.append(model.decode(x).cpu())
    return torch.cat(chunks)
