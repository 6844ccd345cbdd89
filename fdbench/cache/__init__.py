"""Cache policies for the score network, one interface (``base``), one engine (``engine``).

``parse_policy("e2crf:K=3,tau_0=0.2")`` builds a config from a name (``POLICY_PRESETS``)
and ``field=value`` overrides; ``CacheEngine(network, make_policy(config))`` runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from fdbench.cache.base import (
    POLICIES,
    CacheConfig,
    CachePolicy,
    Decision,
    StepInfo,
    make_policy,
    register_policy,
)
from fdbench.cache.e2crf import E2CRFConfig
from fdbench.cache.engine import CacheEngine
from fdbench.cache.fbcache import FirstBlockCacheConfig
from fdbench.cache.fora import FORAConfig
from fdbench.cache.freqca import FreqCaConfig
from fdbench.cache.simple import FixedConfig, NaiveKVConfig, NoCacheConfig
from fdbench.cache.stats import CacheStats, combine
from fdbench.cache.taylorseer import TaylorSeerCacheConfig
from fdbench.cache.teacache import TeaCacheConfig
from fdbench.cache.toca import DuCaConfig, ToCaConfig
from fdbench.errors import ConfigError

# name -> factory(n_steps) of a config; n_steps is the series length N (paper defaults
# depend on it)
POLICY_PRESETS: dict[str, Callable[[int], CacheConfig]] = {
    "none": lambda n: NoCacheConfig(),
    "fixed": lambda n: FixedConfig(),
    "naive_kv": lambda n: NaiveKVConfig(),
    "e2crf": lambda n: E2CRFConfig(),
    "e2crf_literal": lambda n: E2CRFConfig(reuse_mode="literal"),
    "e2crf_literal_kv": lambda n: E2CRFConfig(reuse_mode="literal", kv_fresh=True),
    "e2crf_v01": lambda n: E2CRFConfig.v01_readings(),
    "e2crf_paper": lambda n: E2CRFConfig.paper_stated(n),
    "e2crf_best": lambda n: E2CRFConfig.paper_best(),
    "e2crf_public": lambda n: E2CRFConfig.public_code(),
    "e2crf_no_event": lambda n: E2CRFConfig().ablation("no_event"),
    "e2crf_no_feedback": lambda n: E2CRFConfig().ablation("no_feedback"),
    "e2crf_no_energy": lambda n: E2CRFConfig().ablation("no_energy"),
    "e2crf_no_probe": lambda n: E2CRFConfig().ablation("no_probe"),
    # peers (docs/BASELINES.md); operating points by override, e.g. fora:cache_interval=2..5,
    # teacache:rel_l1_thresh=0.1/0.3/0.6, fbcache:threshold=0.05/0.1/0.2
    "fora": lambda n: FORAConfig(),
    "fora_residual": lambda n: FORAConfig(reuse="residual"),
    "toca": lambda n: ToCaConfig(),
    "duca": lambda n: DuCaConfig(),
    "teacache": lambda n: TeaCacheConfig(),
    "fbcache": lambda n: FirstBlockCacheConfig(),
    "taylorseer1": lambda n: TaylorSeerCacheConfig(max_order=1),
    "taylorseer2": lambda n: TaylorSeerCacheConfig(max_order=2),
    "freqca": lambda n: FreqCaConfig(),
}


def _convert(config: CacheConfig, name: str, text: str) -> Any:
    kinds = {f.name: str(f.type) for f in fields(config)}
    if name not in kinds:
        raise ConfigError(f"{type(config).__name__} has no field {name!r}; fields: "
                          f"{sorted(kinds)}")
    current, kind = getattr(config, name), kinds[name]
    if text.lower() == "none":
        return None
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ConfigError(f"{name} must be true or false, got {text!r}")
        return text.lower() in ("true", "1")
    if kind.startswith("tuple"):       # e.g. coefficients=1e-3;0.5;...: ';'-separated
        try:
            return tuple(float(part) for part in text.split(";"))
        except ValueError:
            raise ConfigError(f"{name} must be ';'-separated numbers, got {text!r}") from None
    if current is None and kind.startswith("str"):
        return text
    for number in (int, float):
        if isinstance(current, number) or (current is None and number is int):
            try:
                return number(text)
            except ValueError:
                raise ConfigError(f"{name} must be a {number.__name__}, got {text!r}") from None
    return text


def parse_policy(spec: str, n_steps: int) -> CacheConfig:
    """``NAME[:field=value,...]`` -> a validated cache config (N = ``n_steps``)."""
    name, _, overrides = spec.partition(":")
    if name not in POLICY_PRESETS:
        raise ConfigError(f"unknown cache policy {name!r}; known: {sorted(POLICY_PRESETS)}")
    config = POLICY_PRESETS[name](n_steps)
    changes = {}
    for item in filter(None, overrides.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"policy override {item!r} must look like field=value")
        changes[key.strip()] = _convert(config, key.strip(), value.strip())
    return replace(config, **changes) if changes else config


__all__ = ["POLICIES", "POLICY_PRESETS", "CacheConfig", "CacheEngine", "CachePolicy",
           "CacheStats", "Decision", "DuCaConfig", "E2CRFConfig", "FORAConfig",
           "FirstBlockCacheConfig", "FixedConfig", "FreqCaConfig", "NaiveKVConfig",
           "NoCacheConfig", "StepInfo", "TaylorSeerCacheConfig", "TeaCacheConfig",
           "ToCaConfig", "combine", "make_policy", "parse_policy", "register_policy"]
