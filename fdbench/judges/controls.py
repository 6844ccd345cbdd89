"""Is the model's network doing anything? The ``network_off`` test of every finding.

``network_off`` is the sampler with the network's output replaced by zeros (for a
preconditioned model: the Gaussian with the data's per-coordinate spectrum). A quality
number says something about a model, a cache or a solver only where a judge separates
the trained model from that control by more than the judge's own error bars
(docs/DESIGN.md, "Judges"); :func:`separation` decides it for one judge.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["SEPARATION_SIGMAS", "separation"]

#: The gap must exceed this many standard errors of the difference (two independent
#: means: se = sqrt(se_model^2 + se_control^2)).
SEPARATION_SIGMAS = 2.0


def separation(model: dict[str, Any], control: dict[str, Any], *,
               key: str = "discriminative_score") -> dict[str, Any]:
    """``control[key] - model[key]`` (lower is better for every judge this is used with),
    its standard error from ``key + "_se"`` where the rows have one, and whether the gap
    exceeds ``SEPARATION_SIGMAS`` of it. A judge without an SE separates when the gap is
    positive, which is weaker: say so where it is used."""
    value, off = float(model[key]), float(control[key])
    se_model, se_off = model.get(f"{key}_se"), control.get(f"{key}_se")
    gap = off - value
    se = None if se_model is None or se_off is None else math.hypot(se_model, se_off)
    separated = gap > SEPARATION_SIGMAS * se if se is not None else gap > 0
    return {"judge": key, "model": value, "network_off": off, "gap": gap, "gap_se": se,
            "sigmas": SEPARATION_SIGMAS, "separated": bool(separated)}
