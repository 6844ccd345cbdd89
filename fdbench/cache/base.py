"""The interface every cache policy shares, and the policy registry.

Per model call the engine asks the policy for a :class:`Decision` (which units to
recompute, which to probe) from the current input, runs the network under it, and hands
the policy an :class:`Observation` (the final residual stream, the measured staleness of
probed units), to which the policy may answer with a correction of the reused features.
Units are frequency bins for frequency policies (a bin's Re and Im chart tokens always
move together) and tokens otherwise. All tensors keep the batch dimension; policy state
is reset per sampling batch (:meth:`CachePolicy.reset`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from fdbench.errors import ConfigError

MODES = ("subset", "literal", "kv_only", "literal_kv")


def check_fields(owner: str, checks: Sequence[tuple[str, bool, str]], values: Any) -> None:
    """Raise ConfigError naming the first field whose check fails and its allowed range."""
    for name, ok, allowed in checks:
        if not ok:
            raise ConfigError(f"{owner}.{name} must be {allowed}, got {getattr(values, name)!r}")


@dataclass(frozen=True)
class CacheConfig:
    """Base of every policy's frozen config; ``policy`` names the registered policy."""

    policy: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, **asdict(self)}

    def recompute_all(self) -> CacheConfig | None:
        """This method's degenerate setting that computes every step exactly (interval 1,
        threshold 0, ...), or None where only the engine's ``force_recompute_all`` gives
        it (token-subset policies). The conformance suite checks it equals uncached."""
        return None


@dataclass(frozen=True)
class BatchInfo:
    """What a policy learns at the start of a sampling batch."""

    batch: int
    n_units: int           # bins (frequency policies) or tokens
    n_steps: int           # solver steps T of this run
    sample_ids: Tensor     # (B,) global sample indices (seeds per-sample randomness)
    device: torch.device


@dataclass(frozen=True)
class StepInfo:
    """The solver step a model call belongs to (passed explicitly by the sampler)."""

    index: int
    total: int
    t: Tensor              # (B,)
    # 0 for a solver step's first score call; 1 for the second call of two-evaluation
    # solvers (Heun's corrector, at the step's end time)
    stage: int = 0

    @property
    def first(self) -> bool:
        return self.index == 0

    @property
    def last(self) -> bool:
        return self.index == self.total - 1


@dataclass(frozen=True)
class Decision:
    """``recompute``: (B, n_units) bool of units to compute fresh, or None for a full step
    (every token through the plain layers, caches rebuilt). ``measure``: (B, n_units)
    bool of recomputed units whose staleness (fresh - cached reused feature) the engine
    measures for the policy."""

    recompute: Tensor | None
    measure: Tensor | None = None


@dataclass(frozen=True)
class Observation:
    """What the engine reports after a model call (token space, (B, n_tokens, ...)).
    The staleness ``error`` is reported on the computed tokens only (slot j of sample b
    is token ``index[b, j]``), so that measuring it costs two gathers of the computed
    rows instead of a copy of the whole reused feature; :meth:`dense_error` spreads it
    over all tokens."""

    final: Tensor               # (B, n_tokens, d) the residual stream the head read
    fresh: Tensor               # (B, n_tokens) bool, computed this step
    measured: Tensor | None     # (B, n_tokens) bool
    # (B, m, d) fresh - cached reused feature at the tokens ``index``; 0 in the slots of
    # tokens not measured and in padding slots
    error: Tensor | None
    unit_of_token: Tensor       # (n_tokens,) the unit (bin or token) each token belongs to
    index: Tensor | None = None  # (B, m) the token of each slot of ``error``

    def dense_error(self) -> Tensor | None:
        """(B, n_tokens, d): the error at every token, 0 where nothing was measured
        (padding slots hold 0, so adding them changes nothing)."""
        if self.error is None or self.index is None:
            return self.error
        batch, n_tokens = self.fresh.shape
        width = self.error.shape[-1]
        rows = (torch.arange(0, batch * n_tokens, n_tokens, device=self.index.device)[:, None]
                + self.index).flatten()                   # rows of a (B * n, d) view
        dense = self.error.new_zeros(batch * n_tokens, width)
        return dense.index_add_(0, rows, self.error.reshape(-1, width)).view(
            batch, n_tokens, width)


@dataclass(frozen=True)
class Correction:
    """A correction ``weight * value`` of the reused feature, applied by the engine in
    place (``addcmul_``) without materialising the (B, n, d) product: ``weight``
    (B, n, 1) selects and scales tokens, ``value`` (B, 1 or n, d)."""

    weight: Tensor
    value: Tensor


class CachePolicy(ABC):
    """Decision logic of one caching method. Subclasses set ``config_class``, ``units``
    and ``mode`` and register themselves with :func:`register_policy`."""

    config_class: ClassVar[type[CacheConfig]]
    units: ClassVar[str] = "tokens"    # "bins" for frequency policies

    def __init__(self, config: CacheConfig):
        if not isinstance(config, self.config_class):
            raise ConfigError(f"{type(self).__name__} needs a {self.config_class.__name__}, "
                              f"got {type(config).__name__}")
        self.config = config
        self.batch: BatchInfo | None = None

    @property
    def mode(self) -> str:
        """How cached units are reused: ``subset`` (cached tokens skip the whole layer),
        ``literal`` (all tokens get Q and attention rows; cached ones skip K/V and FFN),
        ``kv_only`` (only the K/V projections of cached tokens are skipped),
        ``literal_kv`` (``literal`` with fresh K/V for every token: only the FFN of cached
        tokens is skipped)."""
        return getattr(self.config, "reuse_mode", "subset")

    def reset(self, batch: BatchInfo) -> None:
        """Forget everything: a new sampling batch starts."""
        self.batch = batch

    def make_executor(self, engine: Any) -> Any:
        """The executor that runs the network for this policy's plans, or None for the
        engine's own token-subset path (every policy deciding token masks). Policies that
        reuse whole module outputs return a ``module_reuse.ModuleExecutor``."""
        return None

    @abstractmethod
    def decide(self, step: StepInfo, units_x: Tensor) -> Decision:
        """Choose what to recompute from the current input in unit view
        (B, n_units, unit_dim)."""

    def observe(self, step: StepInfo, observation: Observation) -> Tensor | Correction | None:
        """Learn from the finished call; may return a correction (B, n_tokens, d) or a
        :class:`Correction` that the engine adds to the cached reused features (error
        feedback)."""
        return None

    def step_trace(self) -> dict[str, float | Tensor]:
        """Policy-specific numbers of the last step for the statistics (e.g. event
        intensity, feedback strength); 0-d tensors are fine (converted when read, so the
        sampling loop does not synchronise on them)."""
        return {}


POLICIES: dict[str, type[CachePolicy]] = {}


def register_policy(cls: type[CachePolicy]) -> type[CachePolicy]:
    """Class decorator: make a policy available under its config's ``policy`` name."""
    name = cls.config_class.policy
    if not name or name in POLICIES:
        raise ConfigError(f"cannot register policy {name!r}: empty or already registered")
    POLICIES[name] = cls
    return cls


def make_policy(config: CacheConfig) -> CachePolicy:
    """The policy object for a config."""
    if config.policy not in POLICIES:
        raise ConfigError(f"unknown cache policy {config.policy!r}; known: {sorted(POLICIES)}")
    return POLICIES[config.policy](config)


@dataclass
class StepRecord:
    """Statistics of one model call. ``planned_fraction`` and ``extra`` values may be
    0-d tensors until :meth:`materialise` turns them into floats."""

    index: int
    full: bool
    executed_fraction: float    # layer-token units computed / uncached units (padding included)
    planned_fraction: float | Tensor  # units the policy asked for / uncached units
    flops: float
    decision_seconds: float
    extra: dict[str, float | Tensor] = field(default_factory=dict)

    def materialise(self) -> StepRecord:
        self.planned_fraction = float(self.planned_fraction)
        self.extra = {key: float(value) for key, value in self.extra.items()}
        return self
