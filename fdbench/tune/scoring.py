"""The target metrics of ``fdbench tune`` on sample sets, with bootstrap intervals.

``score`` gives a trial's value and standard error; ``validate_score`` adds a 95 %
basic bootstrap interval (Davison & Hinkley 1997, Sec. 5.2) for the validation on
fresh seeds: over samples for the paired error (the mean of per-sample errors,
``fdbench.quality``), over paired rows (samples and their baseline counterparts resampled
together, held-out series fixed) for the SW ratio, over repeats for the discriminative
score (each repeat is one independent classifier protocol, ``fdbench.judges``)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from fdbench.metrics import random_directions, wasserstein_1d
from fdbench.quality import paired_relative_error, summarise_paired
from fdbench.tune.targets import Target

CONFIDENCE = 0.95


def _percentile_interval(values: Tensor) -> tuple[float, float]:
    alpha = (1 - CONFIDENCE) / 2
    low, high = torch.quantile(values.double(), torch.tensor([alpha, 1 - alpha],
                                                             dtype=torch.float64))
    return float(low), float(high)


def _projections(x: Tensor, held_out: Tensor, n_directions: int,
                 seed: int) -> tuple[Tensor, Tensor]:
    theta = random_directions(x.shape[1] * x.shape[2], n_directions, seed=seed)
    return x.flatten(1).double() @ theta, held_out.flatten(1).double() @ theta


def _projected_sw_ratio(ps: Tensor, pb: Tensor, ph: Tensor) -> float:
    return float(wasserstein_1d(ps, ph).mean() / wasserstein_1d(pb, ph).mean())


def sw_ratio(samples: Tensor, baseline: Tensor, held_out: Tensor, *, n_directions: int,
             seed: int) -> float:
    """SW(samples, held_out) / SW(baseline, held_out) (``metrics.sliced_wasserstein``'s
    estimator, the same directions for both)."""
    ps, ph = _projections(samples, held_out, n_directions, seed)
    pb, _ = _projections(baseline, held_out, n_directions, seed)
    return _projected_sw_ratio(ps, pb, ph)


def score(target: Target, samples: Tensor, *, reference: Tensor | None = None,
          baseline: Tensor | None = None, held_out: Tensor | None = None,
          judge_repeats: int = 3, n_directions: int = 500, seed: int = 0) -> dict[str, Any]:
    """``{"value", "se", ...}`` of ``target.metric`` for ``samples`` (B, N, M):
    ``reference`` — the uncached samples under the same noise (paired_error);
    ``baseline`` — the baseline sampler's samples under the same noise (sw_ratio);
    ``held_out`` — real series (sw_ratio, discriminative_score)."""
    out: dict[str, Any] = {}
    if reference is not None:
        errors = paired_relative_error(samples, reference)
        out["paired_error"] = summarise_paired(errors).to_dict()
    if target.metric == "paired_error":
        if reference is None:
            raise ValueError("paired_error needs the uncached reference samples")
        return {"value": out["paired_error"]["mean"], "se": out["paired_error"]["se"], **out}
    if held_out is None:
        raise ValueError(f"{target.metric} needs held-out series")
    if target.metric == "sw_ratio":
        if baseline is None:
            raise ValueError("sw_ratio needs the baseline samples")
        return {"value": sw_ratio(samples, baseline, held_out, n_directions=n_directions,
                                  seed=seed), "se": None, **out}
    from fdbench.judges import discriminative_score

    judged = discriminative_score(held_out, samples, repeats=judge_repeats, seed=seed)
    return {"value": judged.value, "se": judged.se, "repeats": list(judged.values), **out}


def validate_score(target: Target, samples: Tensor, *, n_boot: int = 200, seed: int = 0,
                   **inputs: Any) -> dict[str, Any]:
    """``score`` plus ``interval`` (95 % basic bootstrap), the bootstrap SE for the
    SW ratio, and the verdict: ``met`` (the value meets the target), ``verdict`` "met"
    (the whole interval meets it), "borderline" (the value does, the interval's upper end
    does not) or "missed"."""
    out = score(target, samples, seed=seed, **inputs)
    gen = torch.Generator().manual_seed(seed)
    n = samples.shape[0]
    draws = torch.randint(0, n, (n_boot, n), generator=gen)
    if target.metric == "paired_error":
        errors = paired_relative_error(samples, inputs["reference"])
        boot = errors[draws].mean(dim=1)
    elif target.metric == "sw_ratio":
        # project once; resampling projected rows equals re-running SW on resampled rows
        n_directions = inputs.get("n_directions", 500)
        ps, ph = _projections(samples, inputs["held_out"], n_directions, seed)
        pb, _ = _projections(inputs["baseline"], inputs["held_out"], n_directions, seed)
        boot = torch.tensor([_projected_sw_ratio(ps[rows], pb[rows], ph) for rows in draws])
        out["se"] = float(boot.std(correction=1))
    else:
        repeats = torch.tensor(out["repeats"], dtype=torch.float64)
        picks = torch.randint(0, len(repeats), (n_boot, len(repeats)), generator=gen)
        boot = repeats[picks].mean(dim=1)
    # the basic (reverse-percentile) interval: corrects the bootstrap's bias, which is
    # not small for SW on few samples (duplicated rows shrink the spread)
    q_low, q_high = _percentile_interval(boot)
    low, high = 2 * out["value"] - q_high, 2 * out["value"] - q_low
    met = target.met(out["value"])
    verdict = "missed" if not met else ("met" if target.met(high) else "borderline")
    se = out.get("se")
    return {**out, "interval": [low, high], "n_boot": n_boot, "met": met, "verdict": verdict,
            "se": None if se is None or not math.isfinite(se) else se, "n": n}
