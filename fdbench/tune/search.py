"""The search of ``fdbench tune`` on an abstract trial: setting -> (speedup, quality).

Per secondary value, a bisection on the main knob's ladder (mild -> aggressive) finds the
last rung that meets the target, assuming quality worsens monotonically along it (the
classic bracket search, e.g. TeaCache's threshold choice, Liu et al. 2025, Sec. 3.3, done
here by bisection instead of by eye): the aggressive end first (if it meets, it is the
pick), then the mild end (if it fails, no rung meets), then halving the bracket
[last met, first failed]. Budget left after the bracket closes probes rungs beyond it,
evenly spaced, and any that meets is reported as non-monotonicity (and is a candidate).
The candidates meeting the target at the reduced (search) sample count are then
confirmed at the full count, fastest first, until one meets (the mildest candidate last);
nothing is ever relaxed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fdbench.errors import ConfigError
from fdbench.tune.targets import Target


@dataclass(frozen=True)
class Outcome:
    """One trial's result: FLOP speedup over the baseline (higher is faster) and the
    target metric's value (lower is better), with its standard error where known."""

    speedup: float
    quality: float
    se: float | None = None


@dataclass
class LadderSearch:
    """What a bisection on one ladder saw: rung index -> outcome, and the bracket."""

    ladder: tuple
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    last_met: int | None = None      # highest rung index that met (within the bracket)
    first_failed: int | None = None  # lowest rung index above last_met that failed
    trials: int = 0

    @property
    def converged(self) -> bool:
        """The boundary is pinned to one rung (or the aggressive end meets, or the mild
        end fails)."""
        n = len(self.ladder)
        if self.last_met == n - 1 or self.first_failed == 0:
            return True
        return (self.last_met is not None and self.first_failed is not None
                and self.first_failed - self.last_met == 1)

    def non_monotone(self, target: Target) -> list[tuple[int, int]]:
        """Pairs (i, j), i < j, where the milder rung i failed and the more aggressive
        rung j met: the monotone assumption is wrong there."""
        seen = sorted(self.outcomes.items())
        return [(i, j) for i, a in seen for j, b in seen
                if i < j and not target.met(a.quality) and target.met(b.quality)]

    def to_dict(self, target: Target) -> dict[str, Any]:
        return {"ladder": list(self.ladder), "trials": self.trials,
                "last_met": None if self.last_met is None else self.ladder[self.last_met],
                "first_failed": (None if self.first_failed is None
                                 else self.ladder[self.first_failed]),
                "converged": self.converged,
                "non_monotone": [[self.ladder[i], self.ladder[j]]
                                 for i, j in self.non_monotone(target)],
                "evaluated": [{"value": self.ladder[i], "speedup": o.speedup,
                               "quality": o.quality, "se": o.se, "met": target.met(o.quality)}
                              for i, o in sorted(self.outcomes.items())]}


def bisect_ladder(ladder: Sequence, evaluate: Callable[[Any], Outcome], target: Target,
                  budget: int, *, probe: bool = True) -> LadderSearch:
    """Bisection for the most aggressive rung of ``ladder`` (ordered mild -> aggressive)
    whose outcome meets ``target``, in at most ``budget`` calls of ``evaluate``."""
    if budget < 1:
        raise ConfigError(f"the trial budget must be >= 1, got {budget}")
    search = LadderSearch(tuple(ladder))
    n = len(search.ladder)

    def run(i: int) -> bool:
        if i not in search.outcomes:
            search.outcomes[i] = evaluate(search.ladder[i])
            search.trials += 1
        return target.met(search.outcomes[i].quality)

    if run(n - 1):                         # the aggressive end meets: nothing is faster
        search.last_met = n - 1
        return search
    search.first_failed = n - 1
    if n == 1 or search.trials >= budget:
        return search
    if not run(0):                         # the mild end fails: no rung meets
        search.first_failed = 0
        return search
    search.last_met = 0
    while search.first_failed - search.last_met > 1 and search.trials < budget:
        mid = (search.last_met + search.first_failed) // 2
        if run(mid):
            search.last_met = mid
        else:
            search.first_failed = mid
    if probe:                              # left-over budget: look past the boundary
        left = budget - search.trials
        beyond = [i for i in range(search.first_failed + 1, n - 1)
                  if i not in search.outcomes]
        for k in range(min(left, len(beyond))):
            run(beyond[(k + 1) * len(beyond) // (min(left, len(beyond)) + 1)])
    return search


@dataclass(frozen=True)
class Candidate:
    spec: str
    outcome: Outcome


def split_budget(budget: int, parts: int) -> list[int]:
    """``budget`` trials over ``parts`` searches, the remainder to the first ones."""
    base, extra = divmod(budget, parts)
    return [base + (1 if k < extra else 0) for k in range(parts)]


def search_candidates(searches: Sequence[tuple[Sequence[str], LadderSearch]],
                      target: Target) -> list[Candidate]:
    """Every searched setting that met the target, fastest (FLOP speedup) first."""
    found = [Candidate(specs[i], o) for specs, s in searches for i, o in s.outcomes.items()
             if target.met(o.quality)]
    return sorted(found, key=lambda c: (-c.outcome.speedup, c.outcome.quality, c.spec))


def confirm(candidates: Sequence[Candidate], evaluate_full: Callable[[str], Outcome],
            target: Target, limit: int) -> tuple[Candidate | None, list[Candidate]]:
    """Re-score up to ``limit`` candidates at the full sample count, fastest first, then,
    if none still met, the mildest candidate (the likeliest to meet) once more; the first
    that meets is the pick (None when none does). Returns (pick, tried)."""
    tried = []
    order = list(candidates)[:max(0, limit)]
    if len(candidates) > len(order) > 0:
        order.append(candidates[-1])
    for candidate in order:
        full = Candidate(candidate.spec, evaluate_full(candidate.spec))
        tried.append(full)
        if target.met(full.outcome.quality):
            return full, tried
    return None, tried
