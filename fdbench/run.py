"""``fdbench run``: the main job on the embedded default data.

Obtain a trained frequency-domain model (``bins`` layout) for the embedded ECG beats (the
shipped checkpoint, or a fresh one with ``retrain``), sample with 1000-step reverse
Euler–Maruyama, and score the samples with every judge (``fdbench.judges``: discriminative
and predictive scores, memorisation, feature statistics, sliced and marginal Wasserstein)
against held-out beats beside two references: real-vs-real (training beats vs held-out
beats) and a dummy (every sample = the mean training beat), and beside the ``network_off``
control (the same sampler with the network's output set to zero), which decides whether
the network matters at all (``model_fit``). The same samples are drawn again with the
E²-CRF cache under the same noise, batches interleaved with the uncached ones, for its
wall and FLOP speedups and paired error. Results go to ``runs/<name>/`` (JSON, samples,
PNG), written atomically; finished sample batches are kept so an interrupted run
resumes."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import statistics
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fdbench import __version__
from fdbench.bench import NetworkOff
from fdbench.cache import CacheConfig, CacheEngine, E2CRFConfig, combine, make_policy
from fdbench.checkpoint import load_checkpoint
from fdbench.data import load_dataset
from fdbench.errors import ConfigError
from fdbench.generate import generate
from fdbench.io import atomic_save_npy, atomic_write_json
from fdbench.judges import JUDGE_KEYS, MIN_SERIES, evaluate_samples, separation
from fdbench.metrics import sample_metrics
from fdbench.model import ModelConfig
from fdbench.plots import plot_real_vs_generated
from fdbench.quality import paired_relative_error, summarise_paired
from fdbench.sde import VPSDE
from fdbench.train import TrainConfig, train

DEFAULT_CHECKPOINT = "ecg-bins-compact"
# per-step statistics of the first cached batch kept for the report (event intensity is
# E²-CRF's; other policies leave it null)
TRACE_KEYS = ("executed_fraction", "event_intensity")
# The recipe of the shipped checkpoint; `fdbench run --retrain` reruns exactly this.
DEFAULT_RECIPE: dict[str, Any] = {
    "data": "ecg", "data_seed": 0, "preset": "compact", "layout": "bins", "sde": "vp",
    "parametrisation": "preconditioned",
    "steps": 12000, "batch_size": 64, "warmup_fraction": 0.05, "ema_decay": 0.999,
    "eval_every": 250, "seed": 0,
}
RECIPE_COMMAND = ("fdbench train --data ecg --preset compact --layout bins --sde vp "
                  "--parametrisation preconditioned --steps 12000 --batch-size 64 "
                  "--warmup-fraction 0.05 --ema-decay 0.999 --eval-every 250 --seed 0 "
                  "--threads 1 --out fdbench/checkpoints/ecg-bins-compact")


def shipped_checkpoint(name: str = DEFAULT_CHECKPOINT) -> Path:
    """Path of a checkpoint shipped inside the package."""
    return Path(str(files("fdbench") / "checkpoints" / name))


def train_default(out_dir: Path, *, progress: bool = True) -> None:
    """Train the default model with ``DEFAULT_RECIPE`` into ``out_dir``."""
    data = load_dataset(DEFAULT_RECIPE["data"], seed=DEFAULT_RECIPE["data_seed"])
    model_config = ModelConfig.from_preset(DEFAULT_RECIPE["preset"], data.n_steps,
                                           data.n_channels, layout=DEFAULT_RECIPE["layout"],
                                           parametrisation=DEFAULT_RECIPE["parametrisation"])
    train_config = TrainConfig(**{key: DEFAULT_RECIPE[key] for key in (
        "steps", "batch_size", "warmup_fraction", "ema_decay", "eval_every", "seed")})
    train(model_config, train_config, data, out_dir, sde=VPSDE(), resume=True,
          progress=progress, meta={"command": RECIPE_COMMAND,
                                   "data_seed": DEFAULT_RECIPE["data_seed"]})


def _fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _shard(model, shard_dir: Path, start: int, count: int, *, n_steps: int, seed: int,
           cache: CacheConfig | None, progress: bool) -> tuple[torch.Tensor, dict[str, Any]]:
    """One batch of samples (+ its wall time and cache statistics), from disk if done."""
    name = "uncached" if cache is None else cache.policy
    shard = shard_dir / f"{name}-{start:07d}_{count}.npy"
    info_path = shard.with_suffix(".json")
    if shard.exists() and info_path.exists():
        return torch.from_numpy(np.load(shard)), json.loads(info_path.read_text())
    engine = None if cache is None else CacheEngine(model.network, make_policy(cache))
    began = time.perf_counter()
    batch = generate(model, count, n_steps=n_steps, seed=seed, batch_size=count,
                     first_index=start, progress=progress, engine=engine)
    info = {"seconds": time.perf_counter() - began,
            "cache": combine(engine.history) if engine is not None else None}
    if engine is not None:  # per-step statistics of the batch, for the report's figure
        stats = engine.history[-1]
        info["trace"] = {key: [None if v != v else v for v in stats.trace(key)]
                         for key in TRACE_KEYS}
    atomic_save_npy(shard, batch.numpy())
    atomic_write_json(info_path, info)
    return batch, info


def _compare_uncached_and_cached(model, shard_dir: Path, cache: CacheConfig, *,
                                 n_samples: int, n_steps: int, seed: int, batch_size: int,
                                 progress: bool) -> dict[str, Any]:
    """Uncached and cached batches interleaved (U C U C ...), same noise: samples of both
    and the per-batch wall ratios (the timing protocol at batch granularity)."""
    samples: dict[str, list[torch.Tensor]] = {"uncached": [], "cached": []}
    ratios, caches, traces = [], [], {}
    for start in range(0, n_samples, batch_size):
        count = min(batch_size, n_samples - start)
        plain, plain_info = _shard(model, shard_dir, start, count, n_steps=n_steps, seed=seed,
                                   cache=None, progress=progress)
        cached, cached_info = _shard(model, shard_dir, start, count, n_steps=n_steps,
                                     seed=seed, cache=cache, progress=progress)
        samples["uncached"].append(plain)
        samples["cached"].append(cached)
        ratios.append(cached_info["seconds"] / plain_info["seconds"])
        caches.append(cached_info["cache"])
        traces.setdefault(cache.policy, cached_info.get("trace"))
    flops = statistics.mean(c["flop_ratio"] for c in caches)
    return {"uncached": torch.cat(samples["uncached"]), "cached": torch.cat(samples["cached"]),
            "time_ratios": ratios, "wall_speedup": 1.0 / statistics.median(ratios),
            "flop_speedup": 1.0 / flops,
            "recompute_fraction": sum(c["recompute_fraction"] for c in caches) / len(caches),
            "cache_bytes": max(c["cache_bytes"] for c in caches),
            "traces": {policy: trace for policy, trace in traces.items() if trace}}


def judge_samples(sets: dict[str, torch.Tensor], *, held_out: torch.Tensor,
                  train: torch.Tensor, seed: int, repeats: int = 5) -> dict[str, Any]:
    """Every judge's headline numbers (``fdbench.judges.JUDGE_KEYS``) per named sample set,
    plus ``real_vs_real`` and ``dummy`` (computed once, beside the first set)."""
    rows: dict[str, Any] = {}
    for position, (name, samples) in enumerate(sets.items()):
        scored = evaluate_samples(samples, held_out=held_out, train=train, seed=seed,
                                  repeats=repeats, references=position == 0)
        rows[name] = {key: scored[key] for key in JUDGE_KEYS}
        if position == 0:
            rows["real_vs_real"], rows["dummy"] = scored["reference"], scored["dummy"]
    return rows


def run_main_job(name: str = "default", *, runs_dir: str | Path = "runs",
                 checkpoint: str | Path | None = None, retrain: bool = False,
                 n_samples: int = 256, n_steps: int = 1000, seed: int = 0,
                 batch_size: int = 64, n_directions: int = 1000,
                 cache: CacheConfig | None = None, progress: bool = True,
                 judge_repeats: int = 5) -> dict[str, Any]:
    """Run the main job and return its results (also written to ``runs/<name>/``, with a
    report in ``runs/<name>/report/``: index.md, figures, self-contained index.html).
    ``cache`` is the policy compared with uncached sampling (default: E²-CRF defaults);
    ``judge_repeats`` the repeats of the classifier and predictor judges."""
    cache = cache if cache is not None else E2CRFConfig()
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"run name must be a plain directory name, got {name!r}")
    if retrain and checkpoint is not None:
        raise ConfigError("give either --checkpoint or --retrain, not both")
    if n_samples < MIN_SERIES:  # the judges' classifier needs a test part of each class
        raise ConfigError(f"--num-samples must be >= {MIN_SERIES}, got {n_samples}")
    runs_dir = Path(runs_dir)
    final_dir = runs_dir / name
    work_dir = runs_dir / f".{name}.partial"
    started = time.perf_counter()
    from fdbench.checkpoint import read_config
    from fdbench.data import dataset_for_checkpoint

    meta = {} if checkpoint is None or retrain else read_config(checkpoint).get("meta") or {}
    if meta.get("data_source") or meta.get("data") or meta.get("imported_from"):
        # the checkpoint's own data, read and split as recorded (fdbench.data.source)
        data = dataset_for_checkpoint(meta)
    else:  # the default model, or a checkpoint that records no data: the embedded ECG
        data = load_dataset(DEFAULT_RECIPE["data"], seed=DEFAULT_RECIPE["data_seed"])
    if retrain:
        checkpoint = work_dir / "checkpoint"
        train_default(Path(checkpoint), progress=progress)
    checkpoint = Path(checkpoint) if checkpoint is not None else shipped_checkpoint()
    model = load_checkpoint(checkpoint)
    if (model.n_steps, model.n_channels) != (data.n_steps, data.n_channels):
        raise ConfigError(f"checkpoint {checkpoint} models series of shape "
                          f"({model.n_steps}, {model.n_channels}), its data {data.name!r} "
                          f"has ({data.n_steps}, {data.n_channels})")
    trained_at = time.perf_counter()
    settings = {"checkpoint": str(checkpoint.resolve()), "n_samples": n_samples,
                "n_steps": n_steps, "seed": seed, "sampler": "reverse_euler_maruyama",
                "cache": cache.to_dict()}
    shard_dir = work_dir / f"shards-{_fingerprint(settings)}"
    comparison = _compare_uncached_and_cached(model, shard_dir, cache, n_samples=n_samples,
                                              n_steps=n_steps, seed=seed,
                                              batch_size=batch_size, progress=progress)
    samples, cached = comparison.pop("uncached"), comparison.pop("cached")
    traces = comparison.pop("traces")
    sampled_at = time.perf_counter()

    # the control every finding is read against: the network's output set to zero
    network_off = generate(model, n_samples, n_steps=n_steps, seed=seed,
                           batch_size=batch_size, progress=progress, engine=NetworkOff())
    held_out, train_set = data.test, data.train
    dummy = train_set.mean(0, keepdim=True).expand(n_samples, -1, -1)
    judges = judge_samples({"generated": samples, "cached": cached,
                            "network_off": network_off}, held_out=held_out, train=train_set,
                           seed=seed, repeats=judge_repeats)
    scores = {
        "generated": sample_metrics(samples, held_out, n_directions=n_directions, seed=seed),
        "real_vs_real": sample_metrics(train_set, held_out, n_directions=n_directions,
                                       seed=seed),
        "dummy_mean_beat": sample_metrics(dummy, held_out, n_directions=n_directions,
                                          seed=seed),
        "cached": sample_metrics(cached, held_out, n_directions=n_directions, seed=seed),
        "network_off": sample_metrics(network_off, held_out, n_directions=n_directions,
                                      seed=seed),
    }
    paired = summarise_paired(paired_relative_error(cached, samples)).to_dict()
    comparison.update({"policy": cache.to_dict(), "paired_error": paired,
                       "threads": torch.get_num_threads()})
    results = {
        "fdbench_version": __version__, "torch_version": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "threads": torch.get_num_threads(), "data": data.description,
        "n_train": int(train_set.shape[0]), "n_held_out": int(held_out.shape[0]),
        "checkpoint": str(checkpoint), "checkpoint_meta": model.meta,
        "settings": settings, "metrics": scores, "judges": judges,
        "judge_settings": {"repeats": judge_repeats, "seed": seed,
                           "held_out": int(held_out.shape[0]),
                           "real_vs_real": "training series scored as if generated"},
        "model_fit": separation(judges["generated"], judges["network_off"]),
        "cache_comparison": comparison,
        "seconds": {"model": trained_at - started, "sampling": sampled_at - trained_at},
    }
    atomic_save_npy(work_dir / "samples.npy", samples.numpy())
    atomic_save_npy(work_dir / "samples_cached.npy", cached.numpy())
    atomic_save_npy(work_dir / "samples_network_off.npy", network_off.numpy())
    plot_real_vs_generated(held_out, samples, work_dir / "samples.png",
                           title=f"{_data_label(data.name)}: held-out vs generated "
                                 f"({n_steps}-step EM)")
    results["seconds"]["total"] = time.perf_counter() - started
    atomic_write_json(work_dir / "results.json", results)
    atomic_write_json(work_dir / "traces.json", traces)   # first batch, per step
    shutil.rmtree(shard_dir)
    # swap the finished directory into place: runs/<name> is complete or absent
    if final_dir.exists():
        shutil.rmtree(final_dir)
    work_dir.rename(final_dir)
    from fdbench.report import render_report

    render_report([final_dir], final_dir / "report",
                  title=f"fdbench run {name!r}: uncached vs E²-CRF on "
                        f"{_data_label(data.name)}")
    return results


def _data_label(name: str) -> str:
    """How titles name the run's data (a checkpoint may bring its own)."""
    return "the embedded ECG beats" if name == "ecg" else f"the {name!r} data"


def _pm(value: float, se: float | None) -> str:
    return f"{value:.3f}" if se is None else f"{value:.3f} +- {se:.3f}"


def _fit_words(fit: dict[str, Any]) -> str:
    if not fit["separated"]:
        return "NOT separated: no quality finding on this model"
    if fit["gap_se"] is None:
        return "gap > 0 only (no SE with 1 repeat: not a test)"
    return "the network matters (gap > 2 SE)"


def summary_table(results: dict[str, Any]) -> str:
    """Plain-text tables of the headline numbers: realism judges, distances, the cache."""
    labels = (("generated (uncached)", "generated"), ("generated (E²-CRF)", "cached"),
              ("network_off (control)", "network_off"), ("real vs real", "real_vs_real"),
              ("dummy (mean beat)", "dummy"))
    rows = [("", "discriminative", "predictive", "memorisation", "SW time", "marginal W time")]
    judges = results.get("judges", {})
    for label, key in labels:
        j = judges.get(key)
        if j is None:
            continue
        rows.append((label, _pm(j["discriminative_score"], j["discriminative_score_se"]),
                     f"{j['predictive_score']:.4f}", f"{j['memorisation_ratio']:.3f}",
                     f"{j['sw_time']:.4f}", f"{j['marginal_w_time']:.4f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                       strict=True))
                      for row in rows)
    fit = results.get("model_fit")
    verdict = "" if fit is None else (
        f"\nnetwork vs network_off (discriminative): gap {_pm(fit['gap'], fit['gap_se'])}"
        " -> " + _fit_words(fit))
    c = results["cache_comparison"]
    return (f"{table}{verdict}\nE²-CRF vs uncached ({c['threads']} threads, interleaved per "
            f"batch): wall speedup {c['wall_speedup']:.2f}x, FLOP speedup "
            f"{c['flop_speedup']:.2f}x, recompute fraction {c['recompute_fraction']:.3f}, "
            f"paired relative error {c['paired_error']['mean']:.4f} (mean over samples)")
