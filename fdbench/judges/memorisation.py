"""Memorisation: are generated series closer to the training series than fresh data is?

The nearest-neighbour distance-to-training test of the generative-model memorisation
literature (the "distance to closest record" of synthetic-data privacy audits; e.g.
Meehan, Chaudhuri & Dasgupta, "A Non-Parametric Test to Detect Data-Copying in Generative
Models", AISTATS 2020, which compares generated-to-train with held-out-to-train
distances). A model that copies its training series puts samples at distance ~0 from
them; held-out real series, drawn from the same distribution but never trained on, set
the scale of "naturally close".
"""

from __future__ import annotations

import torch
from torch import Tensor

from fdbench.errors import InputError
from fdbench.judges.result import JudgeResult
from fdbench.judges.validate import check_series, check_series_pair

__all__ = ["memorisation_ratio", "nearest_distances"]


def nearest_distances(queries: Tensor, bank: Tensor) -> Tensor:
    """Euclidean distance (over all N*M entries) of each query series to its nearest
    series in ``bank``: (B, N, M), (K, N, M) -> (B,) float64."""
    # exact differences, not the |a|^2 + |b|^2 - 2ab expansion: an exact copy must give 0
    d = torch.cdist(queries.flatten(1), bank.flatten(1),
                    compute_mode="donot_use_mm_for_euclid_dist")
    return d.amin(dim=1)


def memorisation_ratio(train: object, held_out: object, generated: object) -> JudgeResult:
    """median_g d(g, train) / median_h d(h, train), d = distance to the nearest training
    series (``nearest_distances``), g over the generated series, h over held-out real ones.

    About 1: samples are as close to the training set as fresh data from the same
    distribution (no sign of copying). Well below 1: samples sit on training series
    (0 for exact copies). Above 1: samples are farther than real data, i.e. off the data
    distribution (a quality problem the other judges measure better). ``details`` holds
    both medians. All three sets share (N, M); each needs >= 1 series.
    """
    tr = check_series(train, "train", min_count=1)
    ho, gen = check_series_pair(held_out, generated, min_count=1,
                                names=("held_out", "generated"))
    if tr.shape[1:] != ho.shape[1:]:
        raise InputError(f"train and held_out must have the same series shape (N, M), got "
                         f"{tuple(tr.shape[1:])} and {tuple(ho.shape[1:])}")
    median_generated = nearest_distances(gen, tr).median().item()
    median_held_out = nearest_distances(ho, tr).median().item()
    if median_held_out == 0.0:
        raise InputError("half or more of the held-out series are exact copies of training "
                         "series; the memorisation ratio has no scale")
    return JudgeResult(name="memorisation_ratio", value=median_generated / median_held_out,
                       details={"median_generated": median_generated,
                                "median_held_out": median_held_out})
