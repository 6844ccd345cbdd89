"""Help texts of ``fdbench`` that name registered things (cache policies, sweep methods,
solvers), kept as plain text so ``--help`` never imports torch; tests/test_cli.py checks
each equals what the registries hold now (``render_policy_catalog``).

After adding or changing a cache policy, regenerate ``POLICY_CATALOG`` with
``python -c "from fdbench.cli_help import render_policy_catalog as r; print(r())"``."""

from __future__ import annotations

import textwrap

CATALOG_N = 187  # series length the presets are shown at (the shipped ECG model's N)

# kept in step with fdbench.sweep.CACHE_POINTS (tests/test_sweep.py checks)
SWEEP_METHODS = ("e2crf", "e2crf_v01", "fora", "toca", "duca", "teacache", "fbcache",
                 "taylorseer1", "taylorseer2", "freqca", "e2crf_no_event", "e2crf_no_feedback",
                 "e2crf_no_energy", "e2crf_no_probe", "fixed", "naive_kv")
# kept in step with fdbench.solvers.SOLVERS and fdbench.time_grids.GRIDS (tests check)
SOLVER_NAMES = ("em", "ode_euler", "ode_heun", "ddim", "dpmpp_2m")
GRID_NAMES = ("uniform", "log_snr", "edm")


def _value(value: object) -> str:
    """A field value as ``NAME:field=value`` syntax writes it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ";".join(map(str, value))
    return str(value)


def render_policy_catalog(n_steps: int = CATALOG_N) -> str:
    """Every registered cache policy (``fdbench.cache.POLICIES``) with each knob and its
    default, then every preset name (``POLICY_PRESETS``) under its policy with the knobs
    it changes, at series length ``n_steps``."""
    from dataclasses import fields

    from fdbench.cache import POLICIES, POLICY_PRESETS

    presets = {name: factory(n_steps) for name, factory in POLICY_PRESETS.items()}
    order = list(dict.fromkeys([c.policy for c in presets.values()] + list(POLICIES)))
    lines = [f"cache policies: NAME[:field=value,...]; knobs and defaults "
             f"(presets shown at N = {n_steps}):"]
    for policy in order:
        config_class = POLICIES[policy].config_class
        default = config_class()
        knobs = ", ".join(f"{f.name}={_value(getattr(default, f.name))}"
                          for f in fields(default))
        lines += textwrap.wrap(f"{policy}: {knobs or '(no knobs)'}", width=88,
                               initial_indent="  ", subsequent_indent="      ")
        for name, config in presets.items():
            if config.policy != policy:
                continue
            changed = ", ".join(f"{f.name}={_value(getattr(config, f.name))}"
                                for f in fields(config)
                                if getattr(config, f.name) != getattr(default, f.name))
            lines += textwrap.wrap(f"preset {name}" + (f": {changed}" if changed else ""),
                                   width=88, initial_indent="    ",
                                   subsequent_indent="        ")
    lines.append("controls (not caches): uncached (the reference), network_off (the "
                 "network's output set to zero)")
    return "\n".join(lines)


POLICY_CATALOG = """\
cache policies: NAME[:field=value,...]; knobs and defaults (presets shown at N = 187):
  none: (no knobs)
    preset none
  fixed: R=10, reuse_mode=subset
    preset fixed
  naive_kv: K=5, R=none
    preset naive_kv
  e2crf: K=5, tau_0=1.0, R=5, tau_warn=0.5, random_probe_ratio=0.05, alpha_max=0.1,
      eps=1e-06, eta=1e-06, reuse_mode=subset, event_source=previous,
      correction=band_mean, refresh=true, feedback_every=0, square_intensity=true,
      delta=absolute, kv_fresh=false, use_event=true, use_feedback=true,
      use_energy=true, use_probes=true, seed=0
    preset e2crf
    preset e2crf_literal: reuse_mode=literal
    preset e2crf_literal_kv: reuse_mode=literal, kv_fresh=true
    preset e2crf_v01: tau_0=0.2, R=10, refresh=false, square_intensity=false,
        delta=relative
    preset e2crf_paper: K=18, tau_0=0.01, R=50
    preset e2crf_best: K=1, tau_0=0.01, R=150
    preset e2crf_public: tau_0=0.1, R=10
    preset e2crf_no_event: use_event=false
    preset e2crf_no_feedback: use_feedback=false
    preset e2crf_no_energy: use_energy=false
    preset e2crf_no_probe: use_probes=false
  fora: cache_interval=3, warmup_steps=0, reuse=modules
    preset fora
    preset fora_residual: reuse=residual
  toca: cache_interval=4, warmup_steps=0, fresh_ratio=0.175, K=5, age_weight=0.25,
      score_norm=l2, age_scale=interval, schedule=toca
    preset toca
  duca: cache_interval=4, warmup_steps=0, fresh_ratio=0.175, K=5, age_weight=0.25,
      score_norm=l2, age_scale=interval, schedule=constant, seed=0,
      order=conservative_first, aggressive=stream
    preset duca
  teacache: rel_l1_thresh=0.3, coefficients=none, calibration=none, reference=previous
    preset teacache
  fbcache: threshold=0.1
    preset fbcache
  taylorseer: cache_interval=4, max_order=1, warmup_steps=2
    preset taylorseer1
    preset taylorseer2: max_order=2
  freqca: cache_interval=6, warmup_steps=3, K=5, forecast=hermite, max_order=2,
      damping=0.71
    preset freqca
controls (not caches): uncached (the reference), network_off (the network's output set to zero)"""
