"""Trials of ``fdbench tune`` on a score model: search, confirm, validate, time.

A *setting* is a cache spec (or ``uncached``) on a sampler (solver, grid, T). Each trial
draws samples on calibration noise (``fdbench.tune.seeds``): the search at the reduced
sample count, the confirmation at the full one; the pick is validated on fresh noise and
its wall time measured against the uncached baseline, interleaved in one process
(``fdbench.timing``, the project's timing protocol). FLOP speedups are executed FLOPs
(``fdbench.cache.combine``) times score evaluations, against the baseline sampler's.
Paired references: a cache against the uncached run of its own sampler; a shortened
solver against ``pf_ode_reference`` (every deterministic solver integrates the same
probability-flow ODE from the same prior draw, Song et al. 2021, Sec. 4.3)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from fdbench.cache import CacheEngine, combine, make_policy, parse_policy
from fdbench.cache.teacache_calibration import FILE_NAME as CALIBRATION_FILE
from fdbench.errors import ConfigError
from fdbench.io import atomic_save_npy
from fdbench.pipeline import ScoreModel
from fdbench.tune.config import (
    UNCACHED,
    Sampler,
    Setting,
    TuneConfig,
    parse_sampler,
    pf_ode_reference,
)
from fdbench.tune.knobs import FAST_SOLVERS, Knob, cache_knob, steps_ladder
from fdbench.tune.scoring import score, validate_score
from fdbench.tune.search import Outcome, bisect_ladder, confirm, search_candidates, split_budget
from fdbench.tune.seeds import NoiseRange, SeedPlan, check_fresh
from fdbench.tune.store import TrialStore, trial_key

WARMUP_STEPS = 10


def _outcome(record: dict[str, Any]) -> Outcome:
    return Outcome(record["flop_speedup"], record["quality"], record.get("se"))


class Tuner:
    """Runs settings on one model with one seed plan, recording every trial."""

    def __init__(self, model: ScoreModel, config: TuneConfig, store: TrialStore, out_dir: Path,
                 *, checkpoint: Path, held_out: torch.Tensor | None = None,
                 log: Callable[[str], None] = print, progress: bool = True):
        self.model, self.config, self.store = model, config, store
        self.out_dir, self.checkpoint, self.log = Path(out_dir), Path(checkpoint), log
        self.target = config.target
        self.plan = SeedPlan(config.seed, config.num_samples, config.num_samples)
        self.used: set[tuple[int, int]] = set()     # calibration draws used so far
        self.held_out = held_out
        if config.target.metric != "paired_error" and held_out is None:
            raise ConfigError(f"tune: {config.target.metric} needs held-out series")
        self.references: dict[str, torch.Tensor] = {}
        self.bar = tqdm(disable=None if progress else True, desc="tune trials", unit="trial")

    # ------------------------------------------------------------ sampling

    def fixed_overrides(self, method: str) -> str:
        """TeaCache runs on the checkpoint's calibration file when it has one (as
        ``fdbench bench --sweep``), named in the spec so ``--cache SPEC`` does the same."""
        path = self.checkpoint / CALIBRATION_FILE
        return f"calibration={path.resolve()}" if method == "teacache" and path.exists() else ""

    def engine(self, spec: str) -> CacheEngine | None:
        if spec == UNCACHED:
            return None
        return CacheEngine(self.model.network, make_policy(parse_policy(spec, self.model.n_steps)))

    def draw(self, sampler: Sampler, spec: str,
             noise: NoiseRange) -> tuple[torch.Tensor, float, float]:
        """Samples, executed FLOP ratio to uncached, wall seconds."""
        engine = self.engine(spec)
        started = time.perf_counter()
        samples = self._generate(sampler, engine, noise.count, noise)
        seconds = time.perf_counter() - started
        ratio = combine(engine.history)["flop_ratio"] if engine is not None else 1.0
        return samples, ratio, seconds

    def _generate(self, sampler: Sampler, engine: CacheEngine | None, count: int,
                  noise: NoiseRange, n_steps: int | None = None) -> torch.Tensor:
        from fdbench.generate import generate

        return generate(self.model, count, n_steps=n_steps or sampler.n_steps, seed=noise.seed,
                        batch_size=min(count, self.config.batch_size), first_index=noise.first,
                        engine=engine, solver=sampler.solver, grid=sampler.grid, progress=False)

    def _full(self, noise: NoiseRange) -> NoiseRange:
        return self.plan.calibration if noise.tag == "calibration" else self.plan.validation

    def _use(self, noise: NoiseRange) -> None:
        if noise.tag == "calibration":
            self.used |= noise.keys()

    def reference(self, sampler: Sampler, noise: NoiseRange) -> torch.Tensor:
        """Uncached samples of ``sampler`` on the whole range ``noise`` belongs to, sliced
        to ``noise`` (samples depend only on (seed, index); saved, so reruns reuse them)."""
        full = self._full(noise)
        key = trial_key("reference", sampler.label, UNCACHED, full.tag, full.count)
        if key not in self.references:
            from fdbench.bench import file_stem

            path = self.out_dir / "references" / f"{file_stem(key)}.npy"
            self._use(full)
            if path.exists() and self.store.find(key) is not None:
                self.references[key] = torch.from_numpy(np.load(path))
            else:
                samples, _, seconds = self.draw(sampler, UNCACHED, full)
                atomic_save_npy(path, samples.numpy())
                self.store.add({"key": key, "kind": "reference", "sampler": sampler.label,
                                "noise": full.tag, "n_samples": full.count, "seconds": seconds})
                self.log(f"reference {sampler.label} on {full.count} {full.tag} draws: "
                         f"{seconds:.1f} s")
                self.references[key] = samples
        return self.references[key][:noise.count]

    def inputs(self, setting: Setting, noise: NoiseRange) -> dict[str, Any]:
        metric = self.target.metric
        out: dict[str, Any] = {"judge_repeats": self.config.judge_repeats,
                               "n_directions": self.config.n_directions}
        if metric == "paired_error":
            out["reference"] = self.reference(setting.paired, noise)
        if metric == "sw_ratio":
            out["baseline"] = self.reference(self.config.baseline, noise)
        if metric != "paired_error":
            out["held_out"] = self.held_out
        return out

    def speedup(self, sampler: Sampler, flop_ratio: float) -> float:
        flops = sampler.evaluations * flop_ratio
        return self.config.baseline.evaluations / flops if flops > 0 else math.inf

    # ------------------------------------------------------------ trials

    def trial(self, setting: Setting, noise: NoiseRange, phase: str) -> dict[str, Any]:
        """One scored run of ``setting`` on ``noise`` (from the store when done before)."""
        key = trial_key("trial", setting.sampler.label, setting.spec, noise.tag, noise.count)
        self._use(noise)
        found = self.store.find(key)
        if found is None:
            samples, ratio, seconds = self.draw(setting.sampler, setting.spec, noise)
            if torch.isfinite(samples).all():
                scored = score(self.target, samples, seed=self.config.seed,
                               **self.inputs(setting, noise))
                value, se = scored["value"], scored["se"]
            else:                              # a diverged run meets no target
                scored, value, se = {"non_finite": True}, math.inf, None
            found = self.store.add({
                "key": key, "kind": "trial", "phase": phase, "label": setting.label,
                "sampler": setting.sampler.label, "spec": setting.spec,
                "paired": setting.paired.label, "noise": noise.tag, "n_samples": noise.count,
                "flop_ratio": ratio, "flop_speedup": self.speedup(setting.sampler, ratio),
                "seconds": seconds, "metric": self.target.metric, "quality": value, "se": se,
                "scored": scored})
            how = f"{seconds:.1f} s"
        else:
            how = "resumed"
        line = (f"{phase} {found['label']} ({noise.count} {noise.tag}): "
                f"{self.target.metric} {found['quality']:.4g} "
                f"{'meets' if self.target.met(found['quality']) else 'fails'} {self.target}; "
                f"FLOPs {found['flop_speedup']:.2f}x ({how})")
        self.bar.update(1)
        if self.bar.disable:
            self.log(line)
        else:
            self.bar.set_postfix_str(line[:60])
        return found

    def validate(self, setting: Setting) -> dict[str, Any]:
        """The pick on fresh draws, with a bootstrap interval; never calibration noise."""
        noise = self.plan.validation
        check_fresh(noise, self.used)
        key = trial_key("validation", setting.sampler.label, setting.spec, noise.tag,
                        noise.count)
        if (found := self.store.find(key)) is not None:
            return found
        samples, ratio, seconds = self.draw(setting.sampler, setting.spec, noise)
        if torch.isfinite(samples).all():
            scored = validate_score(self.target, samples, n_boot=self.config.n_boot,
                                    seed=self.config.seed, **self.inputs(setting, noise))
        else:
            scored = {"value": math.inf, "se": None, "interval": None, "met": False,
                      "verdict": "missed", "n": noise.count, "non_finite": True}
        return self.store.add({"key": key, "kind": "validation", "label": setting.label,
                               "spec": setting.spec, "sampler": setting.sampler.label,
                               "noise": noise.tag, "first_index": noise.first,
                               "n_samples": noise.count, "flop_ratio": ratio,
                               "flop_speedup": self.speedup(setting.sampler, ratio),
                               "seconds": seconds, **scored})

    # ------------------------------------------------------------ one method

    def tune_ladders(self, name: str, ladders: list[tuple[Any, tuple, Callable[[Any], Setting]]],
                     knob: dict[str, Any]) -> dict[str, Any]:
        """Bisection per (grid value, ladder, value -> setting), then confirmation at full
        samples and validation on fresh draws. The result row of ``name``."""
        search_noise = self.plan.calibration.head(self.config.n_search)
        lookup: dict[str, Setting] = {}
        searches, described = [], []
        for (grid_value, ladder, make), budget in zip(ladders, split_budget(
                self.config.budget, len(ladders)), strict=True):
            labels = [make(v).label for v in ladder]
            lookup.update({make(v).label: make(v) for v in ladder})
            if budget < 1:
                described.append({"grid_value": grid_value, "skipped": "no budget left"})
                continue
            found = bisect_ladder(ladder, lambda v, make=make: _outcome(
                self.trial(make(v), search_noise, "search")), self.target, budget)
            searches.append((labels, found))
            described.append({"grid_value": grid_value, **found.to_dict(self.target)})
        candidates = search_candidates(searches, self.target)
        pick, tried = confirm(candidates, lambda label: _outcome(self.trial(
            lookup[label], self.plan.calibration, "confirm")), self.target, self.config.confirm)
        row: dict[str, Any] = {
            "method": name, "target": str(self.target), "knob": knob, "searches": described,
            "non_monotone": any(s.get("non_monotone") for s in described),
            "candidates": [{"label": c.spec, "speedup": c.outcome.speedup,
                            "quality": c.outcome.quality} for c in candidates],
            "confirmed": [{"label": c.spec, "speedup": c.outcome.speedup,
                           "quality": c.outcome.quality,
                           "met": self.target.met(c.outcome.quality)} for c in tried]}
        if pick is None:
            best = min((o.quality for _, s in searches for o in s.outcomes.values()),
                       default=None)
            why = ("no searched setting met it on the search samples" if not candidates
                   else f"none of the {len(tried)} fastest candidates met it on "
                        f"{self.config.num_samples} calibration samples")
            seen = "-" if best is None else f"{best:.4g}"
            row.update(status="unmet",
                       reason=f"{why} (best {self.target.metric} seen: {seen})")
            return row
        setting = lookup[pick.spec]
        validation = self.validate(setting)
        row.update(status=validation["verdict"], reason="", tuned_spec=setting.spec,
                   sampler=setting.sampler.label, cli=setting.cli(), label=setting.label,
                   flop_speedup=pick.outcome.speedup,
                   calibration={"quality": pick.outcome.quality, "se": pick.outcome.se,
                                "n": self.config.num_samples},
                   validation={k: validation.get(k) for k in
                               ("value", "se", "interval", "met", "verdict", "n",
                                "first_index", "flop_speedup")})
        self.log(f"{name}: {setting.label}, FLOPs {pick.outcome.speedup:.2f}x; fresh seeds "
                 f"{self.target.metric} {validation['value']:.4g} -> {validation['verdict']}")
        return row

    def tune_cache(self, method: str, sampler: Sampler | None = None) -> dict[str, Any]:
        """``method``'s knob on ``sampler`` (default: the baseline)."""
        sampler = sampler or self.config.baseline
        knob: Knob = cache_knob(method, self.model.n_steps, fixed=self.fixed_overrides(method))
        ladders = [(g, knob.ladder, lambda v, g=g: Setting(sampler, knob.spec(v, g), sampler))
                   for g in knob.grid_values()]
        return self.tune_ladders(method, ladders, {"field": knob.field,
                                                   "grid_field": knob.grid_field,
                                                   "grid": list(knob.grid)})

    def tune_steps(self, solver: str) -> dict[str, Any]:
        """The smallest T of ``solver`` (uncached) that meets the target."""
        name = f"fewer_steps:{solver}"
        if solver == "em" and self.target.metric == "paired_error":
            return {"method": name, "target": str(self.target), "status": "skipped",
                    "reason": "em with fewer steps draws another Brownian path: no paired "
                              "counterpart (use a distributional target)"}
        grid = FAST_SOLVERS[solver]
        paired = pf_ode_reference(self.config.steps)
        ladder = tuple(steps_ladder(self.config.steps))

        def make(t: float) -> Setting:
            return Setting(Sampler(solver, grid, int(t)), UNCACHED, paired)

        return self.tune_ladders(name, [(None, ladder, make)], {"field": "steps",
                                                                "grid_field": None, "grid": []})

    # ------------------------------------------------------------ wall time

    def time_wall(self, rows: list[dict[str, Any]]) -> None:
        """Interleaved wall time (round robin, one process) of every picked setting and
        the uncached baseline on one batch of validation draws; adds ``wall`` to rows."""
        from fdbench.timing import interleaved_timings, ratio_summary

        picked = [r for r in rows if r.get("label")]
        if not picked or self.config.timing_rounds == 0:
            return
        batch = min(self.config.timing_batch, self.config.num_samples)
        noise = self.plan.validation.head(batch)
        labels = sorted({r["label"] for r in picked})
        key = trial_key("timing", self.config.baseline.label, ";".join(labels), noise.tag, batch)
        found = self.store.find(key)
        if found is None:
            settings = {r["label"]: Setting(parse_sampler(r["sampler"]), r["tuned_spec"],
                                            self.config.baseline) for r in picked}
            base = Setting(self.config.baseline, UNCACHED, self.config.baseline)
            runs = {}
            for label, setting in [(UNCACHED, base), *settings.items()]:
                engine = self.engine(setting.spec)
                self._generate(setting.sampler, engine, batch, noise, n_steps=WARMUP_STEPS)
                runs[label] = (lambda s=setting, e=engine:
                               self._generate(s.sampler, e, batch, noise))
            self.log(f"timing {len(settings)} setting(s) against uncached, "
                     f"{self.config.timing_rounds} interleaved rounds of {batch} samples")
            seconds = interleaved_timings(runs, repeats=self.config.timing_rounds, warmup=0)
            wall = {}
            for label in settings:
                ratio = ratio_summary(seconds[label], seconds[UNCACHED])
                wall[label] = {"speedup": 1 / ratio.median, "iqr": [1 / ratio.q75, 1 / ratio.q25],
                               "rounds": ratio.rounds, "batch": batch,
                               "seconds": seconds[label], "uncached_seconds": seconds[UNCACHED]}
            found = self.store.add({"key": key, "kind": "timing", "wall": wall,
                                    "threads": torch.get_num_threads()})
        for row in picked:
            row["wall"] = found["wall"][row["label"]]
            row["wall_confirms"] = row["wall"]["speedup"] > 1.0
