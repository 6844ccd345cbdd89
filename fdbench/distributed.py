"""Multi-process sampling under ``torchrun``: process group from torchrun's environment,
contiguous sample shards, gathers of variable-size shards, rank-0-only writes.

Without ``WORLD_SIZE`` in the environment (a plain ``fdbench`` call) every helper is a
no-op for one process, so the same code path runs sharded or not. Samples depend only on
(seed, global index) (:mod:`fdbench.randomness`), so a shard started at its global
``first_index`` draws exactly the samples one process would draw there."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from fdbench.errors import ConfigError

T = TypeVar("T")
# Rank 0 runs the timing pass alone while the other ranks wait or have left; the default
# 10-30 min collective timeout would kill long paper-scale runs.
TIMEOUT = datetime.timedelta(hours=12)


def resolve_device(name: str) -> torch.device:
    """``cpu`` | ``cuda`` | ``cuda:K`` | ``auto`` (cuda when available) -> torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"device must be cpu, cuda, cuda:K or auto, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but torch sees no CUDA device")
    return torch.device(name)


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world_size`` (1 when unsharded)
    and the device it samples on (``cuda:LOCAL_RANK`` for NCCL jobs)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def shard(self, n: int, block: int = 1) -> tuple[int, int]:
        """(first global index, count) of this rank's contiguous share of ``n`` items cut
        into blocks of ``block`` (the last may be shorter); the first ``blocks %
        world_size`` ranks take one more block. Sampling in whole blocks keeps every batch
        the same in one process and in many, so cached samples (whose token-subset shapes
        depend on the batch) stay bit-identical too."""
        blocks = -(-n // block)
        if blocks < self.world_size:
            raise ConfigError(f"cannot split {n} samples in batches of {block} over "
                              f"{self.world_size} processes: need num_samples >= number of "
                              f"processes x batch ({self.world_size * block})")
        base, extra = divmod(blocks, self.world_size)
        first_block = self.rank * base + min(self.rank, extra)
        count_blocks = base + (1 if self.rank < extra else 0)
        start = first_block * block
        return start, min(n, start + count_blocks * block) - start

    def all_gather_shards(self, shard: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """Concatenate every rank's ``shard`` along ``dim`` in rank order (shards may
        differ in size along ``dim`` only); returned on the CPU on every rank."""
        if not self.active:
            return shard.cpu()
        moved = shard.movedim(dim, 0).contiguous().to(self.device)
        sizes = [int(s) for s in self.all_gather_object(moved.shape[0])]
        # collectives need equal shapes: pad each shard to the largest, trim afterwards
        padded = moved.new_zeros((max(sizes), *moved.shape[1:]))
        padded[: moved.shape[0]] = moved
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        whole = torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])
        return whole.movedim(0, dim).cpu()

    def all_gather_object(self, value: T) -> list[T]:
        """Every rank's ``value`` (picklable), in rank order."""
        if not self.active:
            return [value]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (decisions every rank must share, such as
        "these samples exist already" read from rank 0's disk)."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def main_only(self, write: Callable[[], T]) -> T | None:
        """Run ``write`` on rank 0 only (one writer per result file)."""
        return write() if self.is_main else None


def init_from_env(device: str = "cpu") -> Dist:
    """Join the torchrun job described by RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR /
    MASTER_PORT (gloo on CPU, NCCL on CUDA, one GPU per local rank); a single-process
    :class:`Dist` when WORLD_SIZE is unset or 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    resolved = resolve_device(device)
    if world_size <= 1:
        return Dist(0, 1, resolved)
    if resolved.type == "cuda":
        resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo",
                                timeout=TIMEOUT)
    return Dist(dist.get_rank(), dist.get_world_size(), resolved)


def shutdown(job: Dist) -> None:
    """Leave the process group (a no-op for one process)."""
    if job.active and dist.is_initialized():
        dist.destroy_process_group()
