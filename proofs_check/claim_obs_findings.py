"""The paper's stated observations (docs/METHOD.md §3, "Observations"), measured on the
recorded trajectories (E²-CRF at fdbench's operating point ``E2CRFConfig()``; the uncached
run for the token dynamics), on runs at the paper's stated settings and on the data's
spectrum. Faults act inside the computation: a policy wrapper (``planted_policies.Fault``:
a wrong recompute set, an intensity taken between different samples) for O.event,
O.hitrate and O.recompute, a wrong chart for O.highfreq and O.energy. The decision rules
are pure functions (``early_late_z``, ``hitrate_rule``, ``share_rule``, ``band_ratio``),
unit-tested on their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from fdbench.cache import E2CRFConfig
from fdbench.spectral import chart_to_bins
from proofs_check import trajectories
from proofs_check.planted_policies import Fault
from proofs_check.registry import ClaimResult, Context, decide, decided_fields, register

Z_MIN = 2.0          # early above late by more than 2 standard errors (~98 % one-sided)
PP = 0.10             # percentage-point tolerance on the paper's stated percentages


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v == v]
    return sum(finite) / len(finite) if finite else float("nan")


def _window(curve: Sequence[float], share: float, late: bool) -> list[float]:
    """The first (or last) ``share`` of the curve, at least one point."""
    size = max(1, round(share * len(curve)))
    return list(curve[-size:] if late else curve[:size])


def _mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if v == v]
    if len(finite) < 2:
        return _mean(finite), float("inf")
    mean = sum(finite) / len(finite)
    var = sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)
    return mean, math.sqrt(var / len(finite))


def early_late_z(curve: Sequence[float], share: float = 0.2) -> tuple[float, float, float]:
    """(early mean, late mean, z): z = (early - late) / se, se from the step-to-step
    spread of the curve inside the two windows (the curve's own sampling spread)."""
    early, se_early = _mean_and_se(_window(curve, share, False))
    late, se_late = _mean_and_se(_window(curve, share, True))
    se = math.hypot(se_early, se_late)
    diff = early - late
    if se > 0:
        return early, late, diff / se
    return early, late, (math.inf if diff > 0 else -math.inf if diff < 0 else 0.0)


def _runs(ctx: Context, fault: Fault | None = None) -> dict[str, Any]:
    """Cache statistics at the paper settings and the operating point (the recording's, or
    a run with ``fault`` planted in the policy)."""
    op = trajectories.record(ctx).stats if fault is None else \
        trajectories.policy_run(ctx, E2CRFConfig(), fault).engine.stats
    return {"paper settings": trajectories.policy_run(
        ctx, trajectories.paper_config(ctx), fault).engine.stats, "operating point": op}


def _planted(fault: Fault | None) -> str:
    return "" if fault is None else f"; planted: {fault.describe()}"


@register("O.event", "event intensity high early, low late", needs_model=True)
def event(ctx: Context, *, fault: Fault | None = None) -> ClaimResult:
    """``fault`` is planted in the policies whose intensity is traced (e.g.
    ``Fault(roll_final=True)``: the intensity compares different samples)."""
    curves = {label: stats.trace("event_intensity") for label, stats in _runs(ctx, fault).items()}
    readings, values, numbers = {}, {}, {}
    for label, curve in curves.items():
        early, late, z = early_late_z(curve)
        name = f"early > late by > {Z_MIN:g} se, {label}"
        readings[name] = "holds" if z > Z_MIN else "violated"
        values[name] = (z, Z_MIN)
        tag = "op" if label == "operating point" else "paper"
        numbers.update({f"early_mean_{tag}": early, f"late_mean_{tag}": late,
                        f"z_{tag}": z})
    order = sorted(readings, key=lambda r: "paper" not in r)
    verdict, decided = decide(readings, values, order)
    return ClaimResult(
        claim_id="O.event", statement="event intensity r_i is high early and low late",
        verdict=verdict, numbers=numbers,
        tolerance=(f"'high early, low late' taken as: mean r over the first 20 % of steps "
                   f"above the mean over the last 20 % by more than {Z_MIN:g} standard errors "
                   "(from the step-to-step spread of r inside the two windows)"),
        **decided_fields(readings, values, decided),
        settings=_settings(ctx) + _planted(fault),
        series={f"event_intensity_{label.split()[0]}": list(c) for label, c in curves.items()})


def band_ratio(per_bin: Tensor, k: int) -> float:
    """Mean of the high band (bins > k) over the mean of the low band (bins <= k)."""
    return float(per_bin[k + 1:].mean()) / float(per_bin[: k + 1].mean())


@register("O.highfreq", "high-frequency tokens change less between steps", needs_model=True)
def highfreq(ctx: Context, *, wrong_chart: bool = False) -> ClaimResult:
    """``wrong_chart`` plants a fault in the computation: the bins view with its
    frequency order reversed (an fftshift-style indexing error: bin k read as bin
    n_bins - 1 - k)."""
    traj = trajectories.record(ctx)
    k = traj.config.K
    tokens = chart_to_bins(traj.x_ref.double())                          # (T+1, B, bins, 2M)
    if wrong_chart:
        tokens = tokens.flip(dims=(-2,))
    step = (tokens[1:] - tokens[:-1]).norm(dim=-1)                       # (T, B, bins)
    per_bin = (step / tokens[:-1].norm(dim=-1).clamp_min(1e-12)).mean(dim=(0, 1))
    absolute = step.mean(dim=(0, 1))
    low, high = float(per_bin[: k + 1].mean()), float(per_bin[k + 1:].mean())
    ratio = band_ratio(per_bin, k)
    verdict = "holds" if ratio <= 1 - PP else "violated"
    name = f"relative change of k > K at most {1 - PP:.0%} of k <= K's"
    return ClaimResult(
        claim_id="O.highfreq", statement="high-frequency tokens (k > K) change less per step",
        verdict=verdict,
        numbers={"rel_change_low": low, "rel_change_high": high, "high_over_low": ratio,
                 "abs_change_high_over_low": band_ratio(absolute, k)},
        tolerance=(f"relative per-step change (the quantity E²-CRF's trigger uses) of the "
                   f"high band at most {1 - PP:.0%} of the low band's: 'less' by a margin "
                   "larger than the spread between bins"),
        measured=ratio, bound=1 - PP, readings={name: verdict},
        reading_values={name: (ratio, 1 - PP)}, decided_by=name,
        settings=(f"uncached trajectory, B x T = {traj.batch}x{traj.n_steps}, K = {k}"
                  + ("; planted: wrong chart (bin order reversed)" if wrong_chart else "")),
        note=f"uncached trajectory, bins view, K = {k}; relative change per bin in series",
        series={"relative_change_per_bin": [float(v) for v in per_bin],
                "absolute_change_per_bin": [float(v) for v in absolute]})


def _inner(stats: Any) -> list[float]:
    """Per-step hit rate without the first and last steps (always computed fully)."""
    return [1.0 - p for p in stats.trace("planned_fraction")[1:-1]]


def _paper_first(readings: dict[str, str]) -> list[str]:
    return sorted(readings, key=lambda r: "paper" not in r)


def hitrate_rule(curve: Sequence[float]) -> tuple[float, float, str]:
    """(early, late, verdict): early/late = mean over the first/last 10 % of the curve;
    holds when both are within PP of 40 % and 75 %."""
    early, late = _mean(_window(curve, 0.1, False)), _mean(_window(curve, 0.1, True))
    ok = abs(early - 0.40) <= PP and abs(late - 0.75) <= PP
    return early, late, "holds" if ok else "violated"


def share_rule(share: float) -> str:
    """holds when the recomputed share is within PP of 35 %."""
    return "holds" if abs(share - 0.35) <= PP else "violated"


@register("O.hitrate", "hit rate rises from ~40 % to ~75 %", needs_model=True)
def hitrate(ctx: Context, *, fault: Fault | None = None) -> ClaimResult:
    """``fault`` is planted in the cache policies (e.g. ``Fault(recompute="invert")``: the
    high band's recompute set complemented)."""
    curves = {label: _inner(stats) for label, stats in _runs(ctx, fault).items()}
    readings, values, numbers = {}, {}, {}
    for label, curve in curves.items():
        early, late, verdict = hitrate_rule(curve)
        name = f"early ~40 %, late ~75 % (±{PP:.0%}), {label}"
        readings[name] = verdict
        values[name] = (late, 0.75)
        numbers.update({f"early_hit_rate_{label.split()[0]}": early,
                        f"late_hit_rate_{label.split()[0]}": late})
    verdict, decided = decide(readings, values, _paper_first(readings))
    return ClaimResult(
        claim_id="O.hitrate", statement="hit rate rises from ~40 % (early) to ~75 % (late)",
        verdict=verdict, numbers=numbers,
        tolerance=(f"±{PP:.0%} points on both ends (the paper gives rounded percentages); "
                   "early/late = mean over the first/last 10 % of the cached steps"),
        **decided_fields(readings, values, decided), settings=_settings(ctx) + _planted(fault),
        series={f"hit_rate_{label.split()[0]}": c for label, c in curves.items()})


@register("O.recompute", "~35 % of tokens recomputed per step", needs_model=True)
def recompute(ctx: Context, *, fault: Fault | None = None) -> ClaimResult:
    """``fault`` is planted in the cache policies (a wrong recompute set)."""
    runs = _runs(ctx, fault)
    shares = {label: _mean(stats.trace("planned_fraction")) for label, stats in runs.items()}
    readings, values = {}, {}
    for label, share in shares.items():
        name = f"planned share 35 % ± {PP:.0%}, {label}"
        readings[name] = share_rule(share)
        values[name] = (share, 0.35)
    verdict, decided = decide(readings, values, _paper_first(readings))
    stats = runs["operating point"]
    return ClaimResult(
        claim_id="O.recompute", statement="~35 % of tokens are recomputed per step",
        verdict=verdict,
        numbers={**{f"recomputed_share_{k.split()[0]}": v for k, v in shares.items()},
                 "executed_share_with_padding_op": _mean(stats.trace("executed_fraction"))},
        tolerance=f"±{PP:.0%} points (the paper gives a rounded percentage)",
        **decided_fields(readings, values, decided), settings=_settings(ctx) + _planted(fault),
        series={"recomputed_share_op": stats.trace("planned_fraction")})


@register("O.energy", "most energy at k <= N/10", needs_model=True)
def energy(ctx: Context, *, wrong_chart: bool = False) -> ClaimResult:
    """``wrong_chart`` plants a fault in the computation (energy counted over time
    positions instead of frequency bins)."""
    from proofs_check.claim_a03_hit_rate import position_localisation

    series, source = trajectories.localisation_data(ctx)
    curve = position_localisation(series) if wrong_chart else \
        trajectories.data_localisation(ctx)[0]
    n = trajectories.shared_model(ctx).n_steps
    cutoff = n // 10
    share = 1.0 - float(curve[cutoff])
    name = "more than half the energy at k <= N/10"
    verdict = "holds" if share > 0.5 else "violated"
    return ClaimResult(
        claim_id="O.energy", statement="most of the energy sits at k <= N/10",
        verdict=verdict,
        numbers={"energy_share_k_le_N/10": share, "cutoff_bin": float(cutoff)},
        tolerance="'most' = more than half of the energy (mirror bins counted)",
        measured=share, bound=0.5, readings={name: verdict},
        reading_values={name: (share, 0.5)}, decided_by=name,
        settings=f"N = {n}; {source}" + ("; planted: wrong chart" if wrong_chart else ""),
        note=f"delta(K) of {source}",
        series={"energy_below_K": [1.0 - float(v) for v in curve]})


def _settings(ctx: Context) -> str:
    paper = trajectories.paper_config(ctx)
    return (f"B x T = {'x'.join(map(str, trajectories.sizes(ctx)))}; paper settings K = "
            f"{paper.K}, tau_0 = {paper.tau_0:g}, R = {paper.R}; operating point "
            "E2CRFConfig()")
