"""The timing protocol's pieces: per-call timer (wall clock on CPU, CUDA events on a
GPU), round-robin interleaving, per-round ratio summary."""

from __future__ import annotations

import time

import pytest
import torch

from fdbench.timing import ratio_summary, time_call


def test_time_call_measures_the_call_on_cpu() -> None:
    calls = []
    seconds = time_call(lambda: (calls.append(1), time.sleep(0.02)), "cpu")
    # a lower bound only: sleep guarantees it, while an upper bound fails on a busy machine
    assert calls == [1] and seconds >= 0.02


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_time_call_waits_for_the_gpu() -> None:
    x = torch.randn(2048, 2048, device="cuda")
    small = time_call(lambda: x @ x, "cuda")
    large = time_call(lambda: [x @ x for _ in range(20)], "cuda")
    assert 0 < small < large  # asynchronous launches would make both ~0


def test_ratio_summary_of_one_round() -> None:
    # (round-robin order and multi-round quartiles: tests/test_bench.py)
    single = ratio_summary([3.0], [2.0])
    assert single.q25 == single.q75 == single.median == 1.5
