"""O.flops: "50 % K/V, 45 % MLP and 30 % attention compute reduction", from the FLOP
accounting of cached runs.

Per model call the engine records the planned (per-sample, unpadded) share of tokens
computed (``CacheStats`` ``planned_fraction``); ``fdbench.flops.layer_flops`` gives a
layer's FLOPs per component for ``rows`` tokens with queries, attention rows, out-projection
and norms, ``kv`` tokens with fresh K/V and ``ffn`` tokens through the MLP. Which token
counts a reuse mode gives (``fdbench.cache.base.CachePolicy.mode``): ``subset`` (rows = kv =
ffn = m), ``literal`` (rows = n, kv = ffn = m: the paper's text), ``literal_kv`` (rows = kv
= n, ffn = m). The reduction of component c over a run is 1 - sum_i c(step i) / (T c(n)),
with K/V = the K and V projections (4 d^2 kv), MLP = the feed-forward block, attention =
the score and value products (4 rows n d). Every count is linear in m, so the per-step
mean of the per-sample counts is exact.

Decided for E²-CRF at the paper's stated settings (as the preset runs, ``subset``), for
the same run's token sets counted under the paper text's reuse (``literal``: the paper's
accounting of what it computes), and at fdbench's operating point: each component
within 10 points of the stated percentage. Faults (``planted_policies.Fault``) act
inside the policy (a wrong recompute set).
"""

from __future__ import annotations

from fdbench.cache import E2CRFConfig
from fdbench.flops import layer_flops
from proofs_check import trajectories
from proofs_check.planted_policies import Fault
from proofs_check.registry import ClaimResult, Context, decide, decided_fields, register

STATED = {"K/V": 0.50, "MLP": 0.45, "attention": 0.30}
PP = 0.10


def token_counts(mode: str, n: int, m: float) -> tuple[float, float, float]:
    """(rows, kv, ffn) token counts of one layer under reuse ``mode`` with m of n tokens
    computed (see the module docstring)."""
    shares = {"subset": (m, m, m), "literal": (n, m, m), "literal_kv": (n, n, m),
              "kv_only": (n, m, n)}
    if mode not in shares:
        raise ValueError(f"unknown reuse mode {mode!r}")
    return shares[mode]


def component_flops(d_model: int, d_ff: int, n: int, mode: str, m: float
                    ) -> dict[str, float]:
    """K/V, MLP and attention FLOPs of one layer and one sample (``layer_flops``; the qkv
    entry split into its query part 2 d^2 rows and its K/V part)."""
    rows, kv, ffn = token_counts(mode, n, m)
    per = layer_flops(d_model, d_ff, n, rows=rows, kv=kv, ffn=ffn)
    query = 2.0 * d_model * d_model * rows
    return {"K/V": per["qkv"] - query, "MLP": per["ffn"], "attention": per["attention"]}


def reductions(stats, d_model: int, d_ff: int, n: int, mode: str | None = None
               ) -> dict[str, float]:
    """1 - (component FLOPs of the run) / (uncached component FLOPs), per component, from
    the per-step planned fractions (full steps have fraction 1), under the run's reuse
    mode or ``mode`` (the same token sets accounted under another reuse rule)."""
    planned = stats.trace("planned_fraction")
    mode = mode or stats.mode
    full = component_flops(d_model, d_ff, n, mode, float(n))
    used = {name: 0.0 for name in full}
    for fraction in planned:
        step = component_flops(d_model, d_ff, n, mode, fraction * n)
        for name, value in step.items():
            used[name] += value
    return {name: 1.0 - used[name] / (len(planned) * full[name]) for name in full}


@register("O.flops", "50 % K/V, 45 % MLP, 30 % attention compute reduction",
          needs_model=True)
def check(ctx: Context, *, fault: Fault | None = None) -> ClaimResult:
    """``fault`` is planted in every run's policy (e.g. ``Fault(recompute="invert")``)."""
    model = trajectories.shared_model(ctx)
    config = model.network.config
    paper = trajectories.paper_config(ctx)
    # (run config, reuse rule the FLOPs are counted under); the literal row counts the
    # paper run's token sets under the paper text's reuse (every token keeps Q and its row)
    runs = {f"paper settings, {paper.reuse_mode}": (paper, None),
            "paper settings, literal (the paper's text)": (paper, "literal"),
            "operating point, subset": (E2CRFConfig(), None)}
    readings: dict[str, str] = {}
    values: dict[str, tuple[float | None, float | None]] = {}
    numbers: dict[str, float] = {}
    for label, (run_config, mode) in runs.items():
        stats = trajectories.policy_run(ctx, run_config, fault).engine.stats
        red = reductions(stats, config.d_model, config.d_ff, config.n_tokens, mode)
        worst = max(abs(red[c] - STATED[c]) for c in STATED)
        name = f"each within {PP:.0%} points, {label}"
        readings[name] = "holds" if worst <= PP else "violated"
        values[name] = (worst, PP)
        tag = "_".join(label.replace(",", "").replace("(", "").replace(")", "")
                       .replace("'", "").split()[:3])
        numbers.update({f"{c}_reduction_{tag}": v for c, v in red.items()})
        numbers[f"max_deviation_{tag}"] = worst
    order = list(readings)
    verdict, decided = decide(readings, values, order)
    return ClaimResult(
        claim_id="O.flops", statement="50 % K/V, 45 % MLP, 30 % attention compute reduction",
        verdict=verdict, numbers=numbers,
        tolerance=(f"each component's reduction within {PP:.0%} points of the stated "
                   "percentage (rounded values); measured = the largest deviation"),
        **decided_fields(readings, values, decided),
        settings=(f"B x T = {'x'.join(map(str, trajectories.sizes(ctx)))}; paper K = "
                  f"{paper.K}, tau_0 = {paper.tau_0:g}, R = {paper.R}; operating point "
                  "E2CRFConfig()" + ("" if fault is None else f"; planted: "
                                     f"{fault.describe()}")),
        note=("subset mode: K/V, MLP and attention scale with the same token count, so the "
              "three reductions are equal; literal mode: every token keeps its attention "
              "row, so the attention reduction is 0 by the reuse rule"))
