"""The paper's stated observations (docs/METHOD.md §3, "Observations"), measured on the
recorded trajectories (E²-CRF at fdbench's operating point ``E2CRFConfig()``; the uncached
run for the token dynamics) and on the data's spectrum. Each check takes ``planted``: a curve (or
value) that replaces the measured one, so a test can confirm the decision flips.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fdbench.spectral import chart_to_bins
from proofs_check import trajectories
from proofs_check.registry import ClaimResult, Context, register

PP = 0.10             # percentage-point tolerance on the paper's stated percentages


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v == v]
    return sum(finite) / len(finite) if finite else float("nan")


def _window(curve: Sequence[float], share: float, late: bool) -> list[float]:
    """The first (or last) ``share`` of the curve, at least one point."""
    size = max(1, round(share * len(curve)))
    return list(curve[-size:] if late else curve[:size])


def _inner_hit_rates(ctx: Context) -> list[float]:
    """Per-step hit rate (share of bins reused) of the E²-CRF run, without the first and
    last steps (the engine always computes them fully)."""
    stats = trajectories.record(ctx).stats
    return [1.0 - p for p in stats.trace("planned_fraction")[1:-1]]


@register("O.event", "event intensity high early, low late", needs_model=True)
def event(ctx: Context, *, planted: Sequence[float] | None = None) -> ClaimResult:
    curve = list(planted) if planted is not None else \
        trajectories.record(ctx).stats.trace("event_intensity")
    early, late = _mean(_window(curve, 0.2, False)), _mean(_window(curve, 0.2, True))
    ratio = early / late if late > 0 else float("inf")
    verdict = "holds" if ratio >= 2.0 else "violated"
    return ClaimResult(
        claim_id="O.event", statement="event intensity r_i is high early and low late",
        verdict=verdict, numbers={"early_mean": early, "late_mean": late, "early_over_late": ratio},
        tolerance=("'high early, low late' taken as: mean r over the first 20 % of steps at "
                   "least 2x the mean over the last 20 % (a qualitative statement; 2x is a "
                   "clear drop, not noise)"),
        measured=ratio, bound=2.0, series={"event_intensity": curve})


@register("O.highfreq", "high-frequency tokens change less between steps", needs_model=True)
def highfreq(ctx: Context, *, planted: Sequence[float] | None = None) -> ClaimResult:
    traj = trajectories.record(ctx)
    k = traj.config.K
    if planted is not None:
        per_bin = torch.tensor(list(planted), dtype=torch.float64)
        absolute = per_bin
    else:
        tokens = chart_to_bins(traj.x_ref.double())                      # (T+1, B, bins, 2M)
        step = (tokens[1:] - tokens[:-1]).norm(dim=-1)                   # (T, B, bins)
        per_bin = (step / tokens[:-1].norm(dim=-1).clamp_min(1e-12)).mean(dim=(0, 1))
        absolute = step.mean(dim=(0, 1))
    low, high = float(per_bin[: k + 1].mean()), float(per_bin[k + 1:].mean())
    ratio = high / low
    verdict = "holds" if ratio <= 1 - PP else "violated"
    return ClaimResult(
        claim_id="O.highfreq", statement="high-frequency tokens (k > K) change less per step",
        verdict=verdict,
        numbers={"rel_change_low": low, "rel_change_high": high, "high_over_low": ratio,
                 "abs_change_high_over_low": float(absolute[k + 1:].mean()
                                                   / absolute[: k + 1].mean())},
        tolerance=(f"relative per-step change (the quantity E²-CRF's trigger uses) of the "
                   f"high band at most {1 - PP:.0%} of the low band's: 'less' by a margin "
                   "larger than the spread between bins"),
        measured=ratio, bound=1 - PP,
        note=f"uncached trajectory, bins view, K = {k}; relative change per bin in series",
        series={"relative_change_per_bin": [float(v) for v in per_bin],
                "absolute_change_per_bin": [float(v) for v in absolute]})


@register("O.hitrate", "hit rate rises from ~40 % to ~75 %", needs_model=True)
def hitrate(ctx: Context, *, planted: Sequence[float] | None = None) -> ClaimResult:
    curve = list(planted) if planted is not None else _inner_hit_rates(ctx)
    early, late = _mean(_window(curve, 0.1, False)), _mean(_window(curve, 0.1, True))
    ok = abs(early - 0.40) <= PP and abs(late - 0.75) <= PP
    return ClaimResult(
        claim_id="O.hitrate", statement="hit rate rises from ~40 % (early) to ~75 % (late)",
        verdict="holds" if ok else "violated",
        numbers={"early_hit_rate": early, "late_hit_rate": late},
        tolerance=(f"±{PP:.0%} points on both ends (the paper gives rounded percentages); "
                   "early/late = mean over the first/last 10 % of the cached steps"),
        measured=late, bound=0.75, series={"hit_rate": curve})


@register("O.recompute", "~35 % of tokens recomputed per step", needs_model=True)
def recompute(ctx: Context, *, planted: float | None = None) -> ClaimResult:
    stats = trajectories.record(ctx).stats
    planned = stats.trace("planned_fraction")
    share = planted if planted is not None else _mean(planned)
    executed = _mean(stats.trace("executed_fraction"))
    return ClaimResult(
        claim_id="O.recompute", statement="~35 % of tokens are recomputed per step",
        verdict="holds" if abs(share - 0.35) <= PP else "violated",
        numbers={"recomputed_share": share, "executed_share_with_padding": executed},
        tolerance=f"±{PP:.0%} points (the paper gives a rounded percentage)",
        measured=share, bound=0.35, series={"recomputed_share": planned})


@register("O.energy", "most energy at k <= N/10", needs_model=True)
def energy(ctx: Context, *, planted: float | None = None) -> ClaimResult:
    curve, source = trajectories.data_localisation(ctx)
    n = trajectories.shared_model(ctx).n_steps
    cutoff = n // 10
    share = planted if planted is not None else 1.0 - float(curve[cutoff])
    return ClaimResult(
        claim_id="O.energy", statement="most of the energy sits at k <= N/10",
        verdict="holds" if share > 0.5 else "violated",
        numbers={"energy_share_k_le_N/10": share, "cutoff_bin": float(cutoff)},
        tolerance="'most' = more than half of the energy (mirror bins counted)",
        measured=share, bound=0.5, note=f"delta(K) of {source}",
        series={"energy_below_K": [1.0 - float(v) for v in curve]})
