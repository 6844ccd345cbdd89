"""Sharded bench under a 2-process gloo group: the same samples as one process, one
result file written by rank 0, variable-size gathers."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from fdbench.bench import RESULTS_FILE, BenchConfig, run_bench
from fdbench.distributed import Dist, init_from_env, shutdown
from fdbench.errors import ConfigError

# 5 samples in batches of 2 over 2 ranks: shards of 4 and 1, so the gather handles
# unequal sizes
CONFIG = dict(policies=("e2crf",), batch_sizes=(2,), n_steps=6, num_samples=5,
              sample_batch=2, rounds=1, warmup_steps=2, n_directions=10, n_boot=2,
              judge_repeats=0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, checkpoint: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    job = init_from_env("cpu")
    try:
        assert (job.rank, job.world_size, job.active) == (rank, world_size, True)
        # variable-size shard gather: rank r contributes r + 1 rows of value r
        gathered = job.all_gather_shards(torch.full((rank + 1, 2), float(rank)))
        assert gathered[:, 0].tolist() == [0.0, 1.0, 1.0]
        records = run_bench(checkpoint, out, BenchConfig(**CONFIG), progress=False, job=job)
        assert (records == []) == (rank != 0)  # rank 0 alone returns (and writes) records
    finally:
        shutdown(job)


@pytest.fixture(scope="module")
def checkpoint(sines_checkpoint):
    return sines_checkpoint


def test_two_processes_give_the_samples_of_one(checkpoint, tmp_path) -> None:
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    run_bench(checkpoint, single, BenchConfig(**CONFIG), progress=False)
    mp.spawn(_worker, args=(2, _free_port(), str(checkpoint), str(sharded)), nprocs=2,
             join=True)
    for name in ("uncached", "e2crf", "network_off"):
        for suffix in ("", "_trajectory"):
            one = np.load(single / "samples" / f"{name}{suffix}.npy")
            two = np.load(sharded / "samples" / f"{name}{suffix}.npy")
            assert one.shape[1 if suffix else 0] == 5  # (snapshots, samples, N, M)
            np.testing.assert_array_equal(one, two)  # bit-identical, not merely close

    def quality(path):
        lines = [json.loads(x) for x in (path / RESULTS_FILE).read_text().splitlines()]
        return {r["policy"]: r for r in lines if r["kind"] in ("quality", "samples")}
    one, two = quality(single), quality(sharded)
    assert one.keys() == two.keys()
    for name in one:  # same scores; the same cache stats over the same batches
        for field in ("quality", "cache"):
            if field in one[name]:
                got = two[name][field]
                if field == "cache" and got:
                    # the same three batches of (2, 2, 1) samples, wherever they ran
                    assert got["batches"] == one[name][field]["batches"] == 3
                    for key in ("decision_seconds",):  # wall time, never equal
                        got.pop(key), one[name][field].pop(key)
                assert got == one[name][field], name


def test_shards_cover_every_sample_once_in_whole_batches() -> None:
    for n, world, block in ((5, 2, 1), (7, 3, 1), (4, 4, 1), (10, 1, 3), (64, 2, 32),
                            (70, 3, 16)):
        shards = [Dist(rank, world).shard(n, block) for rank in range(world)]
        indices = [i for start, count in shards for i in range(start, start + count)]
        assert indices == list(range(n))
        assert all(start % block == 0 for start, _ in shards)   # batches never split
    with pytest.raises(ConfigError, match="num_samples >= number of processes"):
        Dist(0, 3).shard(2)
    with pytest.raises(ConfigError, match="x batch"):
        Dist(0, 3).shard(40, 32)


def test_without_torchrun_everything_is_a_single_process(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    job = init_from_env("cpu")
    assert (job.rank, job.world_size, job.active, job.is_main) == (0, 1, False, True)
    x = torch.arange(6.0).reshape(3, 2)
    assert torch.equal(job.all_gather_shards(x), x) and job.broadcast(3) == 3
    with pytest.raises(ConfigError, match="device"):
        init_from_env("tpu")
