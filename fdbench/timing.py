"""The timing protocol: candidates run interleaved in one process (A B A B ...) after a
warm-up, on the same inputs and thread count; speed is reported as the median of
per-round ratios with its spread, never against a number from another run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch


def _synchronise() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def time_call(run: Callable[[], object], device: torch.device | str = "cpu") -> float:
    """Seconds one call of ``run`` takes on ``device``: CUDA events around it with the
    device synchronised before and after on a GPU (kernel launches are asynchronous, so
    host wall clock alone would time the launches), ``perf_counter`` on the CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(device)
    begin.record()
    run()
    end.record()
    torch.cuda.synchronize(device)
    return begin.elapsed_time(end) / 1000.0  # elapsed_time is in milliseconds


def interleaved_timings(candidates: dict[str, Callable[[], object]], *, repeats: int,
                        warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each candidate, measured round-robin ``repeats`` times after
    ``warmup`` untimed rounds, so machine drift hits every candidate alike."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    for _ in range(warmup):
        for run in candidates.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, run in candidates.items():
            _synchronise()
            start = time.perf_counter()
            run()
            _synchronise()
            times[name].append(time.perf_counter() - start)
    return times


@dataclass(frozen=True)
class RatioSummary:
    """Median and quartiles of per-round time ratios candidate / baseline."""

    median: float
    q25: float
    q75: float
    rounds: int
    baseline_median_s: float
    candidate_median_s: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def ratio_summary(candidate: list[float], baseline: list[float]) -> RatioSummary:
    """Summarise paired timings from :func:`interleaved_timings`."""
    ratios = sorted(c / b for c, b in zip(candidate, baseline, strict=True))
    if len(ratios) >= 2:
        q25, _, q75 = statistics.quantiles(ratios, n=4, method="inclusive")
    else:
        q25 = q75 = ratios[0]
    return RatioSummary(statistics.median(ratios), q25, q75, len(ratios),
                        statistics.median(baseline), statistics.median(candidate))
