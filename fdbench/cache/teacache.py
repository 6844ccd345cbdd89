"""TeaCache: timestep-embedding-aware adaptive step skipping (Liu et al. 2024, "Timestep
Embedding Tells: It's Time to Cache for Video Diffusion Model", CVPR 2025).

Per sample b at step i, with u the embedded input (tokens + positions + time encoding,
the analogue of TeaCache's timestep-modulated input):
  d_i = mean|u_i - u_ref| / mean|u_ref|                                    (TeaCache eq. 4)
  acc += max(0, p(d_i)),  p = degree-4 polynomial fitted offline            (eq. 5-6)
  acc < rel_l1_thresh -> reuse: out = u_i + cached(out - u); else compute, acc = 0.
u_ref is the previous step's input (``reference="previous"``, TeaCache's code, which is
what the calibration fits) or that of the last computed step (``"computed"``, the wording
of docs/BASELINES.md). p(d) is clamped at 0 so that rel_l1_thresh = 0 computes every
step.

Coefficients: ``coefficients`` (numpy.polyfit order, highest degree first) or a
``calibration`` file written by ``fdbench calibrate teacache``; with neither, the
documented default is the identity polynomial p(d) = d (uncalibrated TeaCache). Decisions
and accumulators are per sample, so a sample's output never depends on its batch. A
stage-1 call computes exactly the samples its stage 0 computed and reuses for the others
(no accumulator update)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fdbench.cache.base import BatchInfo, CacheConfig, StepInfo, check_fields, register_policy
from fdbench.cache.module_reuse import Computed, ModulePolicy, StackPlan, rel_l1, scatter_rows
from fdbench.errors import ConfigError

IDENTITY = (0.0, 0.0, 0.0, 1.0, 0.0)   # p(d) = d in numpy.polyfit order
REFERENCES = ("previous", "computed")


@dataclass(frozen=True)
class TeaCacheConfig(CacheConfig):
    """TeaCache's parameters (names as in its public code / diffusers)."""

    policy = "teacache"
    rel_l1_thresh: float = 0.3    # accumulated rescaled change that triggers a compute
    coefficients: tuple[float, ...] | None = None   # degree-4 polynomial, highest first
    calibration: str | None = None   # path of a teacache_calibration.json
    reference: str = "previous"   # "previous" | "computed" (see module docstring)

    def __post_init__(self) -> None:
        coefficients = self.coefficients
        check_fields("TeaCacheConfig", [
            ("rel_l1_thresh", self.rel_l1_thresh >= 0.0, ">= 0"),
            ("coefficients", coefficients is None or (
                len(coefficients) == 5 and all(
                    isinstance(c, (int, float)) and c == c and abs(c) != float("inf")
                    for c in coefficients)), "None or 5 finite numbers (degree 4)"),
            ("calibration", self.calibration is None or coefficients is None,
             "None when coefficients are given (one source only)"),
            ("reference", self.reference in REFERENCES, f"one of {REFERENCES}")], self)
        if coefficients is not None:   # a list from JSON or the CLI: store a tuple
            object.__setattr__(self, "coefficients", tuple(float(c) for c in coefficients))

    def recompute_all(self) -> TeaCacheConfig:
        return TeaCacheConfig(rel_l1_thresh=0.0, coefficients=self.coefficients,
                              calibration=self.calibration, reference=self.reference)

    def resolved_coefficients(self) -> tuple[float, ...]:
        """The polynomial in use: explicit, from the calibration file, or the identity."""
        if self.coefficients is not None:
            return self.coefficients
        if self.calibration is not None:
            from fdbench.cache.teacache_calibration import load_calibration

            return load_calibration(self.calibration)
        return IDENTITY


def rescale(coefficients: tuple[float, ...], d: Tensor) -> Tensor:
    """max(0, p(d)) by Horner's rule, p in numpy.polyfit order (TeaCache eq. 5-6)."""
    value = torch.zeros_like(d)
    for c in coefficients:
        value = value * d + c
    return value.clamp_min(0.0)


@register_policy
class TeaCache(ModulePolicy):
    config_class = TeaCacheConfig

    def __init__(self, config: TeaCacheConfig):
        super().__init__(config)
        coefficients = config.resolved_coefficients()
        if len(coefficients) != 5:
            raise ConfigError(f"TeaCacheConfig.coefficients must have 5 entries, got "
                              f"{len(coefficients)}")
        self.coefficients = tuple(coefficients)

    def reset(self, batch: BatchInfo) -> None:
        super().reset(batch)
        self.acc = torch.zeros(batch.batch, device=batch.device)
        self.u_ref: Tensor | None = None
        self.residual: Tensor | None = None
        self.compute = torch.ones(batch.batch, dtype=torch.bool, device=batch.device)
        self.indicator = torch.zeros(batch.batch, device=batch.device)

    def plan(self, step: StepInfo, u: Tensor) -> StackPlan:
        if step.stage == 1:
            return StackPlan(self.compute, self.residual)
        d = rel_l1(u, self.u_ref)
        self.acc = self.acc + rescale(self.coefficients, d)
        self.indicator = d
        self.compute = self.acc >= self.config.rel_l1_thresh
        if self.config.reference == "previous":
            self.u_ref = u
        return StackPlan(self.compute, self.residual)

    def store(self, step: StepInfo, computed: Computed) -> None:
        samples = computed.samples
        residual = computed.out - computed.u
        self.residual = residual if samples is None else scatter_rows(self.residual, samples,
                                                                       residual)
        if samples is None:
            self.acc = torch.zeros_like(self.acc)
            self.compute = torch.ones_like(self.compute)
        else:
            self.acc = self.acc.index_fill(0, samples, 0.0)
        if samples is None:     # every sample computed (forced first/last steps included)
            self.u_ref = computed.u
        elif self.config.reference == "computed":
            self.u_ref = scatter_rows(self.u_ref, samples, computed.u)

    def step_trace(self) -> dict[str, float | Tensor]:
        return {"indicator": self.indicator.mean(), "accumulator": self.acc.mean(),
                "computed_samples": self.compute.float().mean()}

    def state_tensors(self) -> list[Tensor]:
        return [t for t in (self.residual, self.u_ref) if t is not None]
