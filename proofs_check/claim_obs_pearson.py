"""O.pearson: the paper's "Pearson r = 0.78" between E²-CRF's event intensity and the
change it is meant to detect.

The paper gives the coefficient without its two series in the parts docs/METHOD.md
records; the event intensity is the trigger's measure of change, so it is read here as
the Pearson correlation over the reverse steps of

* the event intensity r_i (E²-14, the policy's trace: the mean over samples of the
  relative change of the final CRF between calls i-1 and i), against
* the token change at the same step, mean over samples and bins of
  ||x_k(i) - x_k(i-1)|| (the absolute delta_k of E²-15 between consecutive inputs, on the
  uncached trajectory from the same prior and noise), and against
* the cache's actual error ||z_L - zhat_L|| at step i (operating point: the recording
  evaluates the plain network at every cached state).

Decided at the paper's stated settings and at fdbench's operating point: |r - 0.78| at
most 0.10 (a rounded coefficient). The first call has no intensity and is dropped.
Faults (``planted_policies.Fault``, e.g. ``roll_final``: the intensity computed between
different samples) act inside the policy whose intensity is traced.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fdbench.cache import E2CRFConfig
from fdbench.spectral import chart_to_bins
from proofs_check import trajectories
from proofs_check.planted_policies import Fault
from proofs_check.registry import ClaimResult, Context, decide, decided_fields, register

STATED_R = 0.78
TOL = 0.10


def pearson(x: Tensor, y: Tensor) -> float:
    """Pearson correlation of two series (entries where either is NaN dropped)."""
    keep = ~(x.isnan() | y.isnan())
    x, y = x[keep].double(), y[keep].double()
    if x.numel() < 3:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    denom = (x.square().sum() * y.square().sum()).sqrt()
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def token_change_series(states: Tensor) -> Tensor:
    """(T,) mean over samples and bins of ||x_k(i) - x_k(i-1)|| for the inputs of calls
    i = 0..T-1 (states (T+1, B, N, M), index i = the input of call i); entry 0 is NaN."""
    tokens = chart_to_bins(states[:-1].double())                       # (T, B, bins, 2M)
    change = (tokens[1:] - tokens[:-1]).norm(dim=-1).mean(dim=(1, 2))  # (T-1,)
    return torch.cat([torch.full((1,), float("nan"), dtype=change.dtype), change])


def intensity_series(stats) -> Tensor:
    return torch.tensor(stats.trace("event_intensity"), dtype=torch.float64)


@register("O.pearson", "Pearson r = 0.78 between event intensity and change",
          needs_model=True)
def check(ctx: Context, *, fault: Fault | None = None) -> ClaimResult:
    """``fault`` is planted in the E²-CRF policies whose intensity is traced; the
    recorded-error reading (which needs the unfaulted recording) is then left out."""
    traj = trajectories.record(ctx)
    change = token_change_series(traj.x_ref)
    configs = {"paper settings": trajectories.paper_config(ctx),
               "operating point": E2CRFConfig()}
    readings: dict[str, str] = {}
    values: dict[str, tuple[float | None, float | None]] = {}
    numbers: dict[str, float] = {}
    series: dict[str, list[float]] = {"token_change": [float(v) for v in change]}
    for label, config in configs.items():
        stats = trajectories.policy_run(ctx, config, fault).engine.stats
        intensity = intensity_series(stats)
        r = pearson(intensity, change)
        name = f"r(intensity, token change) = {STATED_R} ± {TOL}, {label}"
        readings[name] = "holds" if abs(r - STATED_R) <= TOL else "violated"
        values[name] = (r, STATED_R)
        tag = "paper" if label == "paper settings" else "op"
        numbers[f"r_token_change_{tag}"] = r
        series[f"event_intensity_{tag}"] = [float(v) for v in intensity]
    if fault is None:
        intensity = intensity_series(traj.stats)
        error = traj.feat_err.double().mean(dim=1)
        r = pearson(intensity, error)
        name = f"r(intensity, cache error ||z_L - zhat_L||) = {STATED_R} ± {TOL}, operating point"
        readings[name] = "holds" if abs(r - STATED_R) <= TOL else "violated"
        values[name] = (r, STATED_R)
        numbers["r_cache_error_op"] = r
        series["cache_error_op"] = [float(v) for v in error]
    order = sorted(readings, key=lambda name: "paper" not in name)
    verdict, decided = decide(readings, values, order)
    return ClaimResult(
        claim_id="O.pearson", statement="Pearson r = 0.78 (event intensity vs change)",
        verdict=verdict, numbers=numbers,
        tolerance=(f"|r - {STATED_R}| <= {TOL} (the paper's coefficient is rounded; over "
                   "T - 1 steps of one run its own sampling spread is smaller)"),
        **decided_fields(readings, values, decided),
        settings=(f"B x T = {'x'.join(map(str, trajectories.sizes(ctx)))}; paper K = "
                  f"{configs['paper settings'].K}, tau_0 = 0.01, R = 50; operating point "
                  "E2CRFConfig(); token change on the uncached trajectory"
                  + ("" if fault is None else f"; planted: {fault.describe()}")),
        note=("the paper does not name the two series in what docs/METHOD.md records: "
              "read as intensity vs the trigger's token change, and vs the cache's error"),
        series=series)
