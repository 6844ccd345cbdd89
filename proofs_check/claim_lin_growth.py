"""lin: "the accumulated error grows at most linearly with the number of cached steps".

On the recorded ``fixed`` run (one full step, then every layer reused: R = T, the most
cached steps possible) and its uncached partner from the same prior and noise, the gap
e(k) = mean_b ||x_fixed - x_ref|| after k cached steps is fitted three ways: linear
(e = a + b k), exponential (log e = a + b k, residual taken in e itself) and a power law
(log-log slope p). "At most linear" means p <= 1 + tolerance.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fdbench.quality import trajectory_relative_error
from proofs_check import trajectories
from proofs_check.registry import ClaimResult, Context, register
from proofs_check.trajectories import fit_loglog_slope

EXPONENT_TOL = 0.15


def linear_fit(k: Tensor, e: Tensor) -> tuple[float, float, float]:
    """(intercept, slope, residual sum of squares) of e ~ a + b k."""
    design = torch.stack([torch.ones_like(k), k], dim=1)
    coef = torch.linalg.lstsq(design, e[:, None]).solution[:, 0]
    return float(coef[0]), float(coef[1]), float((design @ coef - e).square().sum())


def exponential_fit(k: Tensor, e: Tensor) -> tuple[float, float, float]:
    """(log-intercept, rate, residual sum of squares in e) of log e ~ a + b k."""
    keep = e > 0
    a, b, _ = linear_fit(k[keep], e[keep].log())
    return a, b, float((torch.exp(a + b * k) - e).square().sum())


@register("lin", "accumulated error grows at most linearly with cached steps",
          needs_model=True)
def check(ctx: Context, *, planted: str | None = None) -> ClaimResult:
    """Planted faults for the tests: ``planted="exponential"`` multiplies the gap by
    exp(8 k / k_max) (an exponentially growing error); ``planted="linear"`` replaces it
    by the straight line from 0 to its measured end value."""
    if planted not in (None, "linear", "exponential"):
        raise ValueError(f"planted must be None, 'linear' or 'exponential', got {planted!r}")
    traj = trajectories.record(ctx)
    # state i+1 follows step i; step 0 is full, steps 1..T-2 reuse everything
    gaps = (traj.x_fixed - traj.x_ref).flatten(2).norm(dim=2).mean(dim=1).double()
    cached = gaps[2:traj.n_steps]                       # after k = 1..T-2 cached steps
    k = torch.arange(1, cached.shape[0] + 1, dtype=torch.float64)
    if planted == "exponential":
        cached = cached * torch.exp(8.0 * k / k[-1])
    elif planted == "linear":
        cached = cached[-1] * k / k[-1]
    a_lin, b_lin, rss_lin = linear_fit(k, cached)
    a_exp, b_exp, rss_exp = exponential_fit(k, cached)
    exponent = fit_loglog_slope(k, cached)
    verdict = "holds" if exponent <= 1 + EXPONENT_TOL else "violated"
    relative = trajectory_relative_error(traj.x_fixed, traj.x_ref)
    return ClaimResult(
        claim_id="lin", statement="accumulated error grows at most linearly with cached steps",
        verdict=verdict,
        numbers={"power_exponent": exponent, "rss_linear": rss_lin, "rss_exponential": rss_exp,
                 "exp_rate_per_step": b_exp, "linear_slope": b_lin,
                 "final_gap": float(cached[-1])},
        tolerance=(f"power-law exponent <= 1 + {EXPONENT_TOL}: the log-log fit over "
                   f"{len(k)} steps; a sum of linear and saturating terms stays below it"),
        measured=exponent, bound=1.0,
        readings={"power law (exponent <= 1)": verdict,
                  "linear fits better than exponential": "holds" if rss_lin <= rss_exp
                  or b_exp <= 0 else "violated"},
        note=(f"fixed schedule R = T (every layer reused after step 0); linear fit "
              f"{a_lin:.3g} + {b_lin:.3g} k, exponential {math.exp(a_exp):.3g} "
              f"exp({b_exp:.3g} k)"),
        series={"gap": [float(x) for x in cached],
                "relative_gap": [float(x) for x in relative]})
