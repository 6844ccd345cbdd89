"""The cache conformance suite for every registered preset (checks in
tests/cache_conformance.py and tests/cache_conformance_rules.py), and planted bugs that
prove it can fail: each bug is injected inside the cache code with monkeypatch, the whole
suite runs in-process, and some check must fail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from fdbench.cache import POLICY_PRESETS, execute, make_policy, taylorseer
from fdbench.cache import engine as engine_module
from fdbench.cache.base import CacheConfig, Decision
from fdbench.cache.e2crf import E2CRF
from fdbench.cache.engine import CacheEngine
from fdbench.cache.execute import LayerCache
from fdbench.cache.fora import FORA
from fdbench.cache.module_reuse import ModuleExecutor, StackPlan
from fdbench.cache.teacache import TeaCache
from tests import cache_conformance as cc
from tests import cache_conformance_rules as rules


@dataclass(frozen=True)
class Check:
    """A check function and the preset configs it applies to."""

    name: str
    function: Callable[[cc.Lab, str], None]
    applies: Callable[[CacheConfig], bool] = lambda config: True


CHECKS: tuple[Check, ...] = (       # cheap checks first: run_suite stops at a failure
    Check("taylorseer_linear_exact", rules.taylorseer_linear_exact,
          lambda c: c.policy == "taylorseer" and c.max_order >= 1),
    Check("freqca_extrapolation_exact", rules.freqca_extrapolation_exact,
          lambda c: c.policy == "freqca"),
    Check("teacache_follows_its_rule", rules.teacache_follows_its_rule,
          lambda c: c.policy == "teacache" and c.calibration is None),
    Check("identical_input_exact", cc.identical_input_exact),
    Check("degenerate_setting_exact", cc.degenerate_setting_exact),
    Check("full_steps_exact", cc.full_steps_exact),
    Check("recomputed_tokens_refresh_caches", cc.recomputed_tokens_refresh_caches,
          lambda c: make_policy(c).mode != "modules"),
    Check("schedule_followed", cc.schedule_followed,
          lambda c: cc.scheduled_full_steps(c, cc.LONG) is not None),
    Check("beats_frozen_features", cc.beats_frozen_features),
    Check("periodic_refresh", rules.periodic_refresh,
          lambda c: c.policy == "e2crf" and cc.has_field(c, "refresh")),
    Check("feedback_acts", rules.feedback_acts,
          lambda c: c.policy == "e2crf" and c.use_feedback),
    Check("reuse_matches_last_full_step", cc.reuse_matches_last_full_step,
          lambda c: not cc.FORECASTERS.get(c.policy, lambda _: False)(c)),
    Check("stage_one_invariant", cc.stage_one_invariant,
          lambda c: make_policy(c).mode == "modules"),
    Check("reset_between_batches", cc.reset_between_batches),
    Check("batch_equals_single", cc.batch_equals_single),
)


def cases() -> list[tuple[Check, str]]:
    """Every (check, preset) pair that applies, presets as registered now."""
    return [(check, name) for check in CHECKS for name in sorted(POLICY_PRESETS)
            if check.applies(cc.preset(name))]


@dataclass(frozen=True)
class Failure:
    """A failed (check, preset) pair and the check's message."""

    check: str
    preset: str
    message: str


def run_suite(*, fail_fast: bool = True) -> list[Failure]:
    """Run every check on every preset it applies to (in a fresh Lab); the failures, at
    most the first with ``fail_fast``, one per check otherwise."""
    lab, failures = cc.Lab(), []
    for check in CHECKS:
        for name in sorted(POLICY_PRESETS):
            if not check.applies(cc.preset(name)):
                continue
            try:
                check.function(lab, name)
            except AssertionError as error:
                failures.append(Failure(check.name, name, str(error)))
                if fail_fast:
                    return failures
                break
    return failures


LAB = cc.Lab()   # the unpatched suite's runs, shared by its parametrized cases


@pytest.mark.parametrize(("check", "name"), [(c, n) for c, n in cases()],
                         ids=[f"{c.name}-{n}" for c, n in cases()])
def test_conformance(check, name) -> None:
    check.function(LAB, name)


# ---- planted bugs -----------------------------------------------------------------------
# Each is a buggy copy or wrapper of one function or method of fdbench.cache.*, written
# against the original captured here (so that it keeps working while the code evolves).

ORIGINAL_FULL_LAYER = execute.full_layer
ORIGINAL_SUBSET_LAYER = execute.subset_layer
ORIGINAL_ALL_ROWS_LAYER = execute.all_rows_layer


def _both(monkeypatch, name: str, function: Callable) -> None:
    """Patch an execute.py function where it is defined and where the engine looks it up."""
    monkeypatch.setattr(execute, name, function)
    monkeypatch.setattr(engine_module, name, function)


def kv_from_output(monkeypatch) -> None:
    """The public E²-CRF code's bug: the cache keeps K/V projected from the layer's
    output instead of its input."""
    def full_layer(layer, h, keep_ffn):
        out, cache = ORIGINAL_FULL_LAYER(layer, h, keep_ffn)
        k, v = layer.self_attn.project_kv(out)
        return out, LayerCache(k.contiguous(), v.contiguous(), cache.ffn)

    def subset_layer(layer, h_subset, kv_index, cache):
        out = ORIGINAL_SUBSET_LAYER(layer, h_subset, kv_index, cache)
        k, v = layer.self_attn.project_kv(out)
        cache.k.scatter_(2, kv_index, k)
        cache.v.scatter_(2, kv_index, v)
        return out

    def all_rows_layer(layer, h, token_idx, kv_index, cache, *args, **kwargs):
        out = ORIGINAL_ALL_ROWS_LAYER(layer, h, token_idx, kv_index, cache, *args, **kwargs)
        k, v = layer.self_attn.project_kv(torch.gather(out, 1, token_idx))
        cache.k.scatter_(2, kv_index, k)
        cache.v.scatter_(2, kv_index, v)
        return out

    _both(monkeypatch, "full_layer", full_layer)
    _both(monkeypatch, "subset_layer", subset_layer)
    _both(monkeypatch, "all_rows_layer", all_rows_layer)


def cached_tokens_zero(monkeypatch) -> None:
    """The engine's subset path returns zeros for the tokens it did not compute."""
    original = CacheEngine._cached

    def _cached(self, u, idx):
        h = original(self, u, idx)
        if self.mode != "subset":
            return h
        where = execute.token_index(idx, h.shape[-1])
        return torch.zeros_like(h).scatter_(1, where, torch.gather(h, 1, where))

    monkeypatch.setattr(CacheEngine, "_cached", _cached)


def fora_never_refreshes(monkeypatch) -> None:
    """FORA keeps the modules of step 0 and never stores those of later compute steps."""
    original = FORA.store
    monkeypatch.setattr(FORA, "store", lambda self, step, computed:
                        original(self, step, computed) if step.index == 0 else None)


def taylorseer_backwards(monkeypatch) -> None:
    """TaylorSeer evaluates its Taylor series at minus the distance (backwards)."""
    original = taylorseer.taylor_forecast
    monkeypatch.setattr(taylorseer, "taylor_forecast",
                        lambda differences, offset: original(differences, -offset))


def mask_off_by_one(monkeypatch) -> None:
    """mask_to_indices places the j-th True entry in slot j + 1 (cumsum without - 1):
    token 0 is computed instead of the last planned token."""
    def mask_to_indices(mask):
        batch, n = mask.shape
        counts = mask.sum(dim=1)
        m = int(counts.max()) if mask.numel() else 0
        slot = torch.where(mask, mask.cumsum(dim=1), m)
        tokens = torch.arange(n, device=mask.device).expand(batch, n)
        idx = torch.zeros(batch, m + 1, dtype=torch.long, device=mask.device)
        idx.scatter_(1, slot, tokens)
        return idx[:, :m], counts

    monkeypatch.setattr(engine_module, "mask_to_indices", mask_to_indices)


def kv_scatter_shifted(monkeypatch) -> None:
    """subset_layer writes the subset's fresh K/V into the slots of the neighbouring
    subset tokens (indices rolled by one)."""
    def subset_layer(layer, h_subset, kv_index, cache):
        return ORIGINAL_SUBSET_LAYER(layer, h_subset, kv_index.roll(1, dims=2), cache)

    _both(monkeypatch, "subset_layer", subset_layer)


def stale_across_batches(monkeypatch) -> None:
    """start_batch forgets to reset the policy's state after the first batch (it only
    tells the policy the new batch's sizes)."""
    original = CacheEngine.start_batch

    def start_batch(self, n_steps, sample_ids):
        if self.history:
            def keep_state(batch):
                self.policy.batch = batch
            self.policy.reset = keep_state
        try:
            original(self, n_steps, sample_ids)
        finally:
            self.policy.__dict__.pop("reset", None)

    monkeypatch.setattr(CacheEngine, "start_batch", start_batch)


def probe_never_measured(monkeypatch) -> None:
    """E²-CRF's decision drops the mask of tokens to measure: the error feedback never
    sees a measurement."""
    original = E2CRF.decide

    def decide(self, step, units_x):
        decision = original(self, step, units_x)
        return Decision(decision.recompute, None)

    monkeypatch.setattr(E2CRF, "decide", decide)


def refresh_skipped(monkeypatch) -> None:
    """E²-CRF never runs its periodic full refresh."""
    if not hasattr(E2CRF, "refresh_due"):
        pytest.skip("E2CRF.refresh_due does not exist yet")
    monkeypatch.setattr(E2CRF, "refresh_due", lambda self, step: False)


def stage_one_stores(monkeypatch) -> None:
    """The module executor drops the stage: Heun's second evaluation is run (and
    stored) as if it were the next step's first."""
    original = ModuleExecutor.__call__
    monkeypatch.setattr(ModuleExecutor, "__call__",
                        lambda self, x, t, step, stage=0: original(self, x, t, step, 0))


def teacache_batch_uniform(monkeypatch) -> None:
    """TeaCache computes every sample when any sample's accumulator crosses the
    threshold (a batch-level decision; samples no longer independent)."""
    original = TeaCache.plan

    def plan(self, step, u):
        decided = original(self, step, u)
        if step.stage == 0:
            self.compute = self.compute.any().expand_as(self.compute).clone()
        return StackPlan(self.compute, decided.residual)

    monkeypatch.setattr(TeaCache, "plan", plan)


def teacache_acc_never_reset(monkeypatch) -> None:
    """TeaCache's accumulator is not reset when a sample computes (so once it crossed the
    threshold, the sample computes at every step)."""
    original = TeaCache.store

    def store(self, step, computed):
        accumulated = self.acc
        original(self, step, computed)
        self.acc = accumulated

    monkeypatch.setattr(TeaCache, "store", store)


def subset_kv_not_written(monkeypatch) -> None:
    """subset_layer attends with the subset's fresh K/V but never writes them into the
    cache: later steps attend to K/V from the last full step."""
    def subset_layer(layer, h_subset, kv_index, cache):
        scratch = LayerCache(cache.k.clone(), cache.v.clone(), cache.ffn)
        return ORIGINAL_SUBSET_LAYER(layer, h_subset, kv_index, scratch)

    _both(monkeypatch, "subset_layer", subset_layer)


@dataclass(frozen=True)
class PlantedBug:
    plant: Callable
    caught_by: tuple[str, ...]     # the checks that fail on it (docs/DESIGN.md's table)


PLANTED = {
    "kv_from_output": PlantedBug(kv_from_output, (
        "identical_input_exact", "recomputed_tokens_refresh_caches",
        "reuse_matches_last_full_step")),
    "cached_tokens_zero": PlantedBug(cached_tokens_zero, (
        "identical_input_exact", "recomputed_tokens_refresh_caches", "beats_frozen_features",
        "feedback_acts", "reuse_matches_last_full_step")),
    "fora_never_refreshes": PlantedBug(fora_never_refreshes, (
        "reuse_matches_last_full_step",)),
    "taylorseer_backwards": PlantedBug(taylorseer_backwards, ("taylorseer_linear_exact",)),
    "mask_off_by_one": PlantedBug(mask_off_by_one, (
        "degenerate_setting_exact", "recomputed_tokens_refresh_caches",
        "beats_frozen_features", "batch_equals_single")),
    "kv_scatter_shifted": PlantedBug(kv_scatter_shifted, (
        "identical_input_exact", "recomputed_tokens_refresh_caches", "beats_frozen_features",
        "reuse_matches_last_full_step", "batch_equals_single")),
    "subset_kv_not_written": PlantedBug(subset_kv_not_written, (
        "recomputed_tokens_refresh_caches",)),
    "stale_across_batches": PlantedBug(stale_across_batches, ("reset_between_batches",)),
    "probe_never_measured": PlantedBug(probe_never_measured, ("feedback_acts",)),
    "refresh_skipped": PlantedBug(refresh_skipped, ("schedule_followed", "periodic_refresh")),
    "stage_one_stores": PlantedBug(stage_one_stores, ("stage_one_invariant",)),
    "teacache_batch_uniform": PlantedBug(teacache_batch_uniform, (
        "teacache_follows_its_rule", "batch_equals_single")),
    "teacache_acc_never_reset": PlantedBug(teacache_acc_never_reset, (
        "teacache_follows_its_rule",)),
}


@pytest.mark.parametrize("bug", sorted(PLANTED),
                         ids=[f"{b}-caught_by_{PLANTED[b].caught_by[0]}" for b in sorted(PLANTED)])
def test_planted_bug_fails_the_suite(bug, monkeypatch, record_property) -> None:
    """The suite, run whole (stopping at the first failure), fails with the bug planted,
    and the first check to fail is one the documentation names."""
    PLANTED[bug].plant(monkeypatch)
    failures = run_suite(fail_fast=True)
    assert failures, f"planted bug {bug!r} passed every conformance check"
    failure = failures[0]
    record_property("caught_by", f"{failure.check}[{failure.preset}]")
    assert failure.check in PLANTED[bug].caught_by, (
        f"{bug} was caught by {failure.check}[{failure.preset}] ({failure.message}), not by "
        f"the documented {PLANTED[bug].caught_by}")

