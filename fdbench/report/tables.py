"""The report's tables as (header, rows) of strings with the settings they were run at
(:mod:`fdbench.report.settings`); a missing field shows as "n/a"."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any, NamedTuple

from fdbench.report import settings as rs
from fdbench.report.inputs import ReportInputs

UNCACHED = "uncached"
NETWORK_OFF = "network_off"


class Table(NamedTuple):
    """A table: header, rows of strings, and the line stating the rows' settings."""

    header: list[str]
    rows: list[list[str]]
    settings: str = ""


def with_settings(header: list[str], rows: list[list[str]], row_settings: list[dict[str, Any]],
                  *, in_row: Collection[str] = (), where: str = "") -> Table:
    """The table with its settings line; settings that differ between rows become a
    ``settings`` column (``rs.describe``)."""
    line, column = rs.describe(row_settings, in_row=in_row, where=where)
    if column is not None:
        header = [*header, "settings"]
        rows = [[*row, cell] for row, cell in zip(rows, column, strict=True)]
    return Table(header, rows, line)


def bench_row_settings(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """id(record) -> settings for every bench record: a quality record carries only its
    judges' settings, so it takes those of the same policy's preceding samples record
    (the run that drew the samples it scores)."""
    out, last, by_policy = {}, None, {}
    for r in records:
        if r.get("kind") in ("samples", "timing") and "n_steps" in (r.get("settings") or {}):
            last = by_policy[r.get("policy")] = r
        source = r if "n_steps" in (r.get("settings") or {}) else by_policy.get(
            r.get("policy"), last) or r
        out[id(r)] = rs.bench_settings(source, r.get("batch") if r.get("kind") == "timing"
                                       else None)
    return out


def number(value: Any) -> float | None:
    """A finite float, or None (missing, non-numeric, "inf"/"nan" strings, bools)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def fmt(value: Any, spec: str = ".3g", suffix: str = "") -> str:
    x = number(value)
    return "n/a" if x is None else f"{x:{spec}}{suffix}"


def pm(stat: Any, key: str = "value") -> str:
    """``value +- se`` of a summary dict (``mean`` accepted for ``value``)."""
    if not isinstance(stat, dict):
        return "n/a"
    value = stat.get(key, stat.get("mean"))
    se = stat.get("se")
    return f"{fmt(value, '.4f')} +- {fmt(se, '.4f')}" if se is not None else fmt(value, ".4f")


def _quality(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r.get("policy"): r.get("quality") or {} for r in records if r.get("kind") == "quality"}


def paired_mean(records: list[dict[str, Any]], policy: Any) -> float | None:
    paired = _quality(records).get(policy, {}).get("paired") or {}
    return number(paired.get("mean"))


def sw_ratio_of(records: list[dict[str, Any]]) -> dict[Any, float | None]:
    """policy -> SW (time) / uncached SW (time), from bench quality records."""
    quality = _quality(records)
    base = number((quality.get(UNCACHED, {}).get("sw_time") or {}).get("value"))
    out = {}
    for policy, q in quality.items():
        value = number((q.get("sw_time") or {}).get("value"))
        out[policy] = value / base if value is not None and base else None
    return out


def speed_table(inputs: ReportInputs) -> Table:
    """Bench timing: wall speedup (IQR), FLOP speedup and ratio, efficiency, recompute."""
    header = ["policy", "batch", "wall speedup (IQR)", "FLOP speedup", "FLOP ratio",
              "wall/FLOP efficiency", "recompute fraction", "cache MiB"]
    rows, row_settings = [], []
    settings_of = bench_row_settings(inputs.bench)
    for r in inputs.bench:
        if r.get("kind") != "timing":
            continue
        ratio = r.get("time_ratio") or {}
        q25, q75 = number(ratio.get("q25")), number(ratio.get("q75"))
        iqr = f" ({1 / q75:.2f}-{1 / q25:.2f})" if q25 and q75 else ""
        cache = r.get("cache") or {}
        mib = number(cache.get("cache_bytes"))
        rows.append([str(r.get("policy")), str(r.get("batch", "-")),
                     fmt(r.get("wall_speedup"), ".2f", "x") + iqr,
                     fmt(r.get("flop_speedup"), ".2f", "x"), fmt(cache.get("flop_ratio"), ".3f"),
                     fmt(r.get("efficiency"), ".2f"), fmt(cache.get("recompute_fraction"), ".3f"),
                     "n/a" if mib is None else f"{mib / 2**20:.2f}"])
        row_settings.append(settings_of[id(r)])
    for r in inputs.runs:  # the main job's interleaved-per-batch comparison
        c = r.get("cache_comparison") or {}
        if c:
            policy = (c.get("policy") or {}).get("policy", "cached")
            flops = number(c.get("flop_speedup"))
            wall = number(c.get("wall_speedup"))
            mib = number(c.get("cache_bytes"))
            run_s = rs.run_settings(r)
            rows.append([f"{policy} (fdbench run)", rs.text(run_s, "batch"),
                         fmt(wall, ".2f", "x"), fmt(flops, ".2f", "x"),
                         fmt(1 / flops if flops else None, ".3f"),
                         fmt(wall / flops if wall and flops else None, ".2f"),
                         fmt(c.get("recompute_fraction"), ".3f"),
                         "n/a" if mib is None else f"{mib / 2**20:.2f}"])
            row_settings.append(run_s)
    return with_settings(header, rows, row_settings, in_row=("batch",), where="batch column")


def _network_off_row(label: str, width: int) -> list[str]:
    return [label, *["n/a"] * (width - 1)]


def quality_table(inputs: ReportInputs) -> Table:
    """SW (time, frequency) +- SE, ratio to uncached and paired error per policy, with the
    network_off control (a row saying it is absent where the inputs lack it)."""
    header = ["policy", "SW time +- SE", "SW time / uncached", "SW freq +- SE",
              "paired error +- SE", "spectral density error"]
    ratios = sw_ratio_of(inputs.bench)
    settings_of = bench_row_settings(inputs.bench)
    rows, row_settings = [], []
    for r in inputs.bench:
        if r.get("kind") != "quality":
            continue
        q = r.get("quality") or {}
        rows.append([str(r.get("policy")), pm(q.get("sw_time")), fmt(ratios.get(r.get("policy")),
                     ".3f"), pm(q.get("sw_freq")), pm(q.get("paired"), "mean"),
                     fmt(q.get("spectral_density_error"), ".4f")])
        row_settings.append(settings_of[id(r)])
    if rows and not any(row[0] == NETWORK_OFF for row in rows):
        rows.append(_network_off_row("network_off (not in results.jsonl: bench ran without "
                                     "the control)", len(header)))
        row_settings.append(row_settings[-1])
    for r in inputs.runs:
        metrics = r.get("metrics") or {}
        paired = (r.get("cache_comparison") or {}).get("paired_error")
        keys = sorted(metrics)
        for key in keys:
            m = metrics[key] or {}
            rows.append([f"{key} (fdbench run)", pm(m.get("sw_time"), "mean"), "n/a",
                         pm(m.get("sw_freq"), "mean"),
                         pm(paired, "mean") if key == "cached" else "n/a", "n/a"])
            row_settings.append(rs.run_settings(r))
        if keys and NETWORK_OFF not in keys:
            rows.append(_network_off_row("network_off (fdbench run: not in results.json)",
                                         len(header)))
            row_settings.append(rs.run_settings(r))
    return with_settings(header, rows, row_settings)


REALISM_ROWS = (("generated", "uncached"), ("cached", "cached"), ("network_off", "network_off"),
                ("real_vs_real", "real vs real (floor)"), ("dummy", "mean-series dummy"))


def _judge_cells(j: dict[str, Any]) -> list[str]:
    def with_se(key: str) -> str:
        se = j.get(f"{key}_se")
        return fmt(j.get(key), ".3f") + ("" if se is None else f" +- {fmt(se, '.3f')}")
    return [with_se("discriminative_score"), with_se("predictive_score"),
            fmt(j.get("memorisation_ratio"), ".3f"), fmt(j.get("sw_time"), ".4f"),
            fmt(j.get("marginal_w_time"), ".4f"), fmt(j.get("acd"), ".3f"),
            fmt(j.get("mdd"), ".3f")]


def realism_table(inputs: ReportInputs) -> Table:
    """The realism judges per sampler (fdbench run and bench quality rows) beside the
    network_off control (a row saying it is absent where the inputs lack it), real vs
    real and the mean-series dummy."""
    header = ["source", "sampler", "discriminative +- SE", "predictive +- SE",
              "memorisation", "SW time", "marginal W time", "ACD", "MDD"]
    rows, row_settings = [], []
    for r in inputs.runs:
        judges = r.get("judges") or {}
        if not judges:
            continue
        for key, label in REALISM_ROWS:
            if judges.get(key):
                rows.append(["fdbench run", label, *_judge_cells(judges[key])])
            elif key == NETWORK_OFF:
                rows.append(["fdbench run", "network_off: not in results.json",
                             *["n/a"] * (len(header) - 2)])
            else:
                continue
            row_settings.append(rs.run_settings(r))
    settings_of = bench_row_settings(inputs.bench)
    judged = [r for r in inputs.bench
              if r.get("kind") == "quality" and (r.get("quality") or {}).get("judges")]
    for r in judged:
        q = r["quality"]
        rows.append(["bench", str(r.get("policy")), *_judge_cells(q["judges"])])
        row_settings.append(settings_of[id(r)])
        for key, label in (("judges_real_vs_real", "real vs real (floor)"),
                           ("judges_dummy", "mean-series dummy")):
            if q.get(key):
                rows.append(["bench", label, *_judge_cells(q[key])])
                row_settings.append(settings_of[id(r)])
    if judged and not any(r.get("policy") == NETWORK_OFF for r in judged):
        rows.append(["bench", "network_off: no judged control in results.jsonl",
                     *["n/a"] * (len(header) - 2)])
        row_settings.append(settings_of[id(judged[-1])])
    return with_settings(header, rows, row_settings)


def model_fit_lines(inputs: ReportInputs) -> list[str]:
    """One sentence per run: does the discriminative score separate the model from
    network_off by more than 2 SE of the gap (docs/DESIGN.md, "Judges")?"""
    lines = []
    for r in inputs.runs:
        fit = r.get("model_fit")
        if not fit:
            continue
        se = fit.get("gap_se")
        gap = fmt(fit.get("gap"), ".3f") + ("" if se is None else f" +- {fmt(se, '.3f')}")
        lines.append(f"Discriminative score: model {fmt(fit.get('model'), '.3f')}, "
                     f"network_off {fmt(fit.get('network_off'), '.3f')}, gap {gap}: "
                     + (("**the network matters** (gap > 2 SE)." if se is not None else
                         "gap > 0 only (no SE with 1 repeat: not a test).")
                        if fit.get("separated") else
                        "**not separated from network_off**: no quality finding on this "
                        "model counts."))
    return lines


def sweep_table(inputs: ReportInputs) -> Table:
    """Every sweep record: the solver x cache sweep's fixed columns, or (older E²-CRF grid
    sweeps) the fields present in any record, fixed order first."""
    records = [r for r in inputs.sweep if r.get("kind") == "sweep"]
    if records and all("family" in r for r in records):
        return _solver_cache_sweep_table(records)
    preferred = ["policy", "method", "solver", "n_steps", "K", "tau_0", "R", "flop_speedup",
                 "wall_speedup", "recompute_fraction", "sw_ratio", "paired_mean"]
    scalar = {k for r in records for k, v in r.items()
              if k not in ("kind", "settings") and not isinstance(v, dict | list)}
    header = [k for k in preferred if k in scalar] + sorted(scalar - set(preferred))
    rows = [[fmt(r[k], ".4g") if number(r.get(k)) is not None else str(r.get(k, "n/a"))
             for k in header] for r in records]
    return with_settings(header, rows, [rs.sweep_settings(r) for r in records])


def _solver_cache_sweep_table(records: list[dict[str, Any]]) -> Table:
    header = ["point", "family", "NFE", "wall speedup", "FLOP speedup", "wall/FLOP",
              "SW time +- SE", "SW freq +- SE", "marginal W time", "discriminative +- SE",
              "paired error"]
    order = {"baseline": 0, "solver": 1, "cache": 2, "cache+solver": 3, "control": 4}
    ordered = sorted(records, key=lambda r: (order.get(r["family"], 9), r.get("solver", ""),
                                             r.get("n_steps", 0), str(r.get("policy"))))
    rows = []
    for r in ordered:
        sw_t, sw_f = r.get("sw_time") or {}, r.get("sw_freq") or {}
        rows.append([str(r.get("policy", "?")), str(r["family"]), fmt(r.get("evaluations")),
                     fmt(r.get("wall_speedup"), ".3g", "x"), fmt(r.get("flop_speedup"), ".3g", "x"),
                     fmt(r.get("wall_over_flop"), ".2f"),
                     f"{fmt(sw_t.get('value'), '.4f')} +- {fmt(sw_t.get('se'), '.4f')}",
                     f"{fmt(sw_f.get('value'), '.4f')} +- {fmt(sw_f.get('se'), '.4f')}",
                     fmt((r.get("marginal_w_time") or {}).get("value"), ".4f"),
                     _judge_cells(r["judges"])[0] if r.get("judges") else "n/a",
                     fmt((r.get("paired") or {}).get("mean"), ".4f")])
    row_settings = [rs.sweep_settings(r) for r in ordered]
    if not any(r["family"] == "control" for r in records):
        rows.append(["network_off: no control record in sweep.jsonl", "control",
                     *["n/a"] * (len(header) - 2)])
        row_settings.append(row_settings[-1])
    # T, solver and grid are in each point's label ("em/uniform T=1000")
    return with_settings(header, rows, row_settings, in_row=("T", "solver", "grid"),
                         where="in the point column")


def _claim_readings(c: dict[str, Any]) -> str:
    """Every reading with its verdict (and measured vs bound); identities marked."""
    identities, values = set(c.get("identities") or ()), c.get("reading_values") or {}
    cells = []
    for name, verdict in (c.get("readings") or {}).items():
        pair = values.get(name) or (None, None)
        numbers = "" if number(pair[0]) is None else f" {fmt(pair[0])} vs {fmt(pair[1])}"
        cells.append(f"{name}: {'identity, ' if name in identities else ''}{verdict}{numbers}")
    return "; ".join(cells)


def claims_table(inputs: ReportInputs) -> Table:
    """One row per claim: the verdict, the reading that decided it with that reading's
    measured value and bound, the mode and settings, and every reading."""
    header = ["id", "claim", "verdict", "decided by", "measured", "bound", "tightness",
              "settings", "readings", "tolerance", "note"]
    rows, row_settings = [], []
    for c, source in zip(inputs.claims, inputs.claim_sources, strict=True):
        payload = inputs.proofs[source]
        rows.append([str(c.get("claim_id", "?")), str(c.get("statement", "")),
                     f"**{c.get('verdict', '?')}**", str(c.get("decided_by") or "-"),
                     fmt(c.get("measured")), fmt(c.get("bound")), fmt(c.get("tightness")),
                     str(c.get("settings") or "-"), _claim_readings(c),
                     str(c.get("tolerance", "")), str(c.get("note", ""))])
        row_settings.append({"threads": payload.get("threads"),
                             "mode": rs.proofs_mode(payload), rs.SOURCE: "proofs_check.json"})
    # every check sets its own T, data, sample and batch sizes: its settings column says them
    return with_settings(header, rows, row_settings,
                         in_row=("T", "solver", "grid", "samples", "batch"),
                         where="each check's own, in the settings column")
