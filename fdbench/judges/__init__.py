"""Judges of sample quality: can they tell a trained model's samples from real series?

One module per family, all taking real and generated sets (B, N, M) (numpy or torch,
(B, N) meaning M = 1) and returning a :class:`JudgeResult`:

* :mod:`~fdbench.judges.discriminative` — TimeGAN's post-hoc classifier score;
* :mod:`~fdbench.judges.predictive` — TimeGAN's train-on-synthetic-test-on-real MAE;
* :mod:`~fdbench.judges.features` — TSGBench's ACD, MDD, skewness and kurtosis gaps;
* :mod:`~fdbench.judges.memorisation` — nearest-training-series distance ratio;
* :mod:`~fdbench.judges.distances` — the base paper's sliced / marginal Wasserstein.

:func:`evaluate_samples` runs them all beside two references that give the numbers a
scale: real vs real (what a perfect generator would get with this many series) and a
mean-series dummy (what a useless one gets).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from fdbench.errors import InputError
from fdbench.judges.controls import separation
from fdbench.judges.discriminative import MIN_SERIES, discriminative_score
from fdbench.judges.distances import marginal_wasserstein_time, sliced_wasserstein_time
from fdbench.judges.features import (
    autocorrelation_difference,
    kurtosis_difference,
    marginal_distribution_difference,
    skewness_difference,
)
from fdbench.judges.memorisation import memorisation_ratio, nearest_distances
from fdbench.judges.predictive import predictive_score
from fdbench.judges.result import JudgeResult, summarise_repeats
from fdbench.judges.validate import check_positive_int, check_series, check_series_pair

__all__ = [
    "JUDGE_KEYS", "MIN_SERIES", "JudgeResult", "autocorrelation_difference",
    "check_judge_sizes",
    "check_series", "check_series_pair", "discriminative_score", "dummy_mean_series",
    "evaluate_samples", "kurtosis_difference", "marginal_distribution_difference",
    "marginal_wasserstein_time", "memorisation_ratio", "nearest_distances",
    "predictive_score", "separation", "skewness_difference", "sliced_wasserstein_time",
    "summarise_repeats",
]

#: The numeric keys of every row of :func:`evaluate_samples` (samples, reference, dummy).
JUDGE_KEYS = ("discriminative_score", "discriminative_score_se", "predictive_score",
              "predictive_score_se", "sw_time", "marginal_w_time", "memorisation_ratio",
              "acd", "mdd", "skewness_difference", "kurtosis_difference", "n_samples",
              "n_held_out")
#: Std of the dummy's noise relative to the training data's per-channel std: enough to
#: make the copies distinct (identical inputs are a degenerate case for the classifier
#: and the predictor), far too little to change any judge's verdict.
DUMMY_NOISE = 1e-3


def dummy_mean_series(train: Tensor, n: int, *, seed: int = 0) -> Tensor:
    """The useless generator: n copies of the training mean series (as ``fdbench run``'s
    mean-beat dummy) plus N(0, (DUMMY_NOISE * per-channel std)^2) noise, float64."""
    x = check_series(train, "train", min_count=1)
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn((n, *x.shape[1:]), generator=gen, dtype=torch.float64)
    return x.mean(dim=0, keepdim=True) + DUMMY_NOISE * x.std(dim=(0, 1)) * noise


def check_judge_sizes(n_samples: int, n_held_out: int, n_train: int) -> None:
    """Raise :class:`InputError` unless :func:`evaluate_samples` can run on sets of these
    sizes (callers with long sampling ahead check before they start)."""
    for what, count in (("samples", n_samples), ("held-out series", n_held_out)):
        if count < MIN_SERIES:
            raise InputError(f"the judges need at least {MIN_SERIES} {what}, got {count}")
    if min(n_samples, n_train - math.ceil(n_train / 4)) < MIN_SERIES:
        raise InputError(f"train has {n_train} series; the real-vs-real reference needs "
                         f"at least {MIN_SERIES + math.ceil(MIN_SERIES / 3)}")


def _row(generated: Tensor, held_out: Tensor, bank: Tensor, *, seed: int,
         repeats: int) -> tuple[dict[str, float | int], dict[str, Any]]:
    results = [
        discriminative_score(held_out, generated, repeats=repeats, seed=seed),
        predictive_score(held_out, generated, repeats=repeats, seed=seed),
        sliced_wasserstein_time(held_out, generated, seed=seed),
        marginal_wasserstein_time(held_out, generated),
        memorisation_ratio(bank, held_out, generated),
        autocorrelation_difference(held_out, generated),
        marginal_distribution_difference(held_out, generated),
        skewness_difference(held_out, generated),
        kurtosis_difference(held_out, generated),
    ]
    by_name = {r.name: r for r in results}
    row: dict[str, float | int] = {name: by_name[name].value for name in
                                   ("discriminative_score", "predictive_score", "sw_time",
                                    "marginal_w_time", "memorisation_ratio", "acd", "mdd",
                                    "skewness_difference", "kurtosis_difference")}
    row["discriminative_score_se"] = by_name["discriminative_score"].se
    row["predictive_score_se"] = by_name["predictive_score"].se
    row.update(n_samples=int(generated.shape[0]), n_held_out=int(held_out.shape[0]))
    return {k: row[k] for k in JUDGE_KEYS}, {r.name: r.to_dict() for r in results}


def evaluate_samples(samples: object, *, held_out: object, train: object, seed: int = 0,
                     repeats: int = 5, references: bool = True) -> dict[str, Any]:
    """Every judge on ``samples`` against the ``held_out`` real series, beside two
    references, as one JSON-ready dict.

    Top level: the numbers of ``JUDGE_KEYS`` for the samples (each judge with ``real`` =
    ``held_out``; memorisation against ``train``); ``reference``: the same keys for a
    random subset of ``train`` of the samples' size (capped so that a quarter of
    ``train`` stays out of it) scored as if it were generated — memorisation then uses
    the rest of ``train`` as the training set, since the subset *is* training data;
    ``dummy``: the same keys for :func:`dummy_mean_series` with the samples' size;
    ``judges``: every judge's full :meth:`JudgeResult.to_dict` for the samples;
    ``settings``. ``references=False`` leaves out ``reference`` and ``dummy`` (for a
    second sampler scored against the same data). All rows use the same ``seed`` (common
    random numbers), the classifier- and predictor-based judges ``repeats`` repeats.

    ``samples``, ``held_out`` and ``train`` are (B, N, M) (or (B, N)) with one shared
    (N, M); samples and held_out need >= ``MIN_SERIES`` series, train enough for a
    reference of ``MIN_SERIES``. Raises :class:`InputError` otherwise, before computing.
    """
    ho, gen = check_series_pair(held_out, samples, min_count=MIN_SERIES,
                                names=("held_out", "samples"))
    tr = check_series(train, "train", min_count=1)
    if tr.shape[1:] != ho.shape[1:]:
        raise InputError(f"train and held_out must have the same series shape (N, M), got "
                         f"{tuple(tr.shape[1:])} and {tuple(ho.shape[1:])}")
    repeats = check_positive_int(repeats, "repeats")
    n_train = tr.shape[0]
    check_judge_sizes(gen.shape[0], ho.shape[0], n_train)
    n_ref = min(gen.shape[0], n_train - math.ceil(n_train / 4))
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(int(seed)))
    ref, bank = tr[order[:n_ref]], tr[order[n_ref:]]

    top, judges = _row(gen, ho, tr, seed=seed, repeats=repeats)
    settings = {"seed": int(seed), "repeats": repeats, "n_train": n_train}
    if not references:  # e.g. a second sampler scored against the same data
        return {**top, "judges": judges, "settings": settings}
    reference, _ = _row(ref, ho, bank, seed=seed, repeats=repeats)
    dummy, _ = _row(dummy_mean_series(tr, gen.shape[0], seed=seed), ho, tr, seed=seed,
                    repeats=repeats)
    return {**top, "reference": reference, "dummy": dummy, "judges": judges,
            "settings": {**settings,
                         "reference": f"{n_ref} random training series vs held_out; "
                                      f"memorisation against the other {n_train - n_ref}",
                         "dummy": f"training mean series + {DUMMY_NOISE} x std noise"}}
