"""Per-sample randomness: one generator per sample, seeded by (seed, global index).

A sample's noise then never depends on the batch it was drawn in, the batch size or the
number of processes (EDM's per-sample generator stack; k-diffusion's noise_sampler)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def sample_seed(seed: int, index: int) -> int:
    """A well-mixed 63-bit seed for sample ``index`` of run ``seed`` (numpy SeedSequence,
    so nearby (seed, index) pairs give unrelated streams)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got {seed}, {index}")
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class PerSampleNoise:
    """Draws standard normal noise (B, *shape) with one generator per sample.

    Successive calls continue each sample's own stream: the prior draw and then one draw
    per sampler step, identically whatever the batching."""

    def __init__(self, seed: int, indices: Sequence[int], *,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.device, self.dtype = torch.device(device), dtype
        self.generators = [
            torch.Generator(device=self.device).manual_seed(sample_seed(seed, int(i)))
            for i in indices
        ]

    def __call__(self, shape: Sequence[int]) -> Tensor:
        draws = [
            torch.randn(tuple(shape), generator=g, device=self.device, dtype=self.dtype)
            for g in self.generators
        ]
        return torch.stack(draws)
