"""``fdbench bench``: cached sampling against uncached, by the timing protocol.

For one checkpoint: (1) a quality pass — ``num_samples`` samples per policy drawn with the
same prior and step noise as the uncached ones, scored against held-out data and paired
with the uncached samples; (2) a timing pass per batch size — the uncached sampler and
every policy run interleaved in one process (round robin, after a warm-up, fixed
threads), each round's wall ratio taken against the same round's uncached run. Every
speedup is printed beside its FLOP ratio. Records go to ``results.jsonl`` (rewritten
atomically after each record, ``fdbench.result_store``); a rerun with the same settings
skips finished records and says which, a rerun with other settings into the same
directory is refused."""

from __future__ import annotations

import contextlib
import functools
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fdbench import __version__
from fdbench.bench_table import UNCACHED
from fdbench.cache import CacheEngine, combine, make_policy, parse_policy
from fdbench.checkpoint import load_checkpoint, read_config
from fdbench.data import SeriesSplit, load_dataset
from fdbench.distributed import Dist, resolve_device
from fdbench.errors import ConfigError, FdbenchError
from fdbench.generate import generate
from fdbench.io import atomic_save_npy, check_writable_dir
from fdbench.judges import JUDGE_KEYS, MIN_SERIES, check_judge_sizes, evaluate_samples
from fdbench.pipeline import ScoreModel
from fdbench.progress import Stage, bar
from fdbench.quality import (
    paired_relative_error,
    quality_summary,
    summarise_paired,
    trajectory_relative_error,
)
from fdbench.result_store import ResultStore
from fdbench.timing import ratio_summary, time_call

RESULTS_FILE = "results.jsonl"
NETWORK_OFF = "network_off"
COMPILED = "uncached_compiled"
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class NetworkOff:
    """Control, not a cache: the network's output replaced by zeros at every step. Its
    quality is what sampling achieves without the network at all (for a preconditioned
    model: the Gaussian skip alone); a cache's errors mean something only next to it."""

    def __init__(self) -> None:
        self.history: list = []

    def start_batch(self, n_steps: int, sample_ids: torch.Tensor) -> None:
        return None

    def __call__(self, x: torch.Tensor, t: torch.Tensor, step: int,
                 stage: int = 0) -> torch.Tensor:
        return torch.zeros_like(x)


class CompiledNetwork:
    """The uncached sampler step through ``torch.compile`` (static shapes: one graph per
    batch size) — a timing candidate beside the eager uncached sampler. On CUDA it uses
    mode "reduce-overhead", i.e. CUDA graphs of the fixed-shape step, which remove the
    per-kernel launch overhead that dominates small batches."""

    def __init__(self, network: torch.nn.Module) -> None:
        self.history: list = []
        on_gpu = next(network.parameters()).device.type == "cuda"
        self.network = torch.compile(network, dynamic=False,
                                     mode="reduce-overhead" if on_gpu else "default")

    def start_batch(self, n_steps: int, sample_ids: torch.Tensor) -> None:
        return None

    def __call__(self, x: torch.Tensor, t: torch.Tensor, step: int,
                 stage: int = 0) -> torch.Tensor:
        # a CUDA graph's output buffer is overwritten by the next replay: hand out a copy
        return self.network(x, t).clone()


@dataclass(frozen=True)
class BenchConfig:
    """What one ``fdbench bench`` run measures."""

    policies: tuple[str, ...] = ("e2crf", "e2crf_literal", "e2crf_paper", "e2crf_best",
                                 "fixed", "naive_kv")
    batch_sizes: tuple[int, ...] = (1, 64)
    n_steps: int = 1000
    num_samples: int = 64
    # quality-pass batch: samples are drawn in batches of this size in one process and
    # under torchrun alike (ranks take whole batches), so both give the same bits
    sample_batch: int = 32
    rounds: int = 3
    warmup_steps: int = 20
    seed: int = 0
    threads: int = 1
    n_directions: int = 1000
    n_boot: int = 100
    device: str = "cpu"          # cpu | cuda | cuda:K | auto
    precision: str = "fp32"      # fp32 | bf16 | fp16 (autocast around the network)
    compile: bool = False        # also time/score the torch.compile'd uncached sampler
    judge_repeats: int = 5       # repeats of the classifier/predictor judges; 0: no judges

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"BenchConfig.precision must be one of {sorted(PRECISIONS)}, "
                              f"got {self.precision!r}")
        if self.n_steps < 2:  # a solver steps between >= 2 grid times (fdbench.solvers)
            raise ConfigError(f"BenchConfig.n_steps must be >= 2, got {self.n_steps}")
        for name in ("num_samples", "sample_batch", "rounds", "threads",
                     "n_directions", "n_boot"):
            if getattr(self, name) < 1:
                raise ConfigError(f"BenchConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ConfigError(f"batch sizes must be >= 1, got {self.batch_sizes}")
        if self.judge_repeats < 0:
            raise ConfigError(f"BenchConfig.judge_repeats must be >= 0, got "
                              f"{self.judge_repeats}")
        if self.num_samples < 2:  # the bootstrap SEs of SW and paired error resample rows
            raise ConfigError(f"BenchConfig.num_samples must be >= 2 (the bootstrap "
                              f"resamples samples), got {self.num_samples}")
        if self.judge_repeats and self.num_samples < MIN_SERIES:
            raise ConfigError(f"BenchConfig.num_samples must be >= {MIN_SERIES} for the "
                              f"judges (or judge_repeats=0), got {self.num_samples}")
        if self.warmup_steps < 2:
            raise ConfigError(f"BenchConfig.warmup_steps must be >= 2, got {self.warmup_steps}")


def policy_engine(model: ScoreModel, spec: str) -> CacheEngine | NetworkOff | None:
    """The sampler's engine for ``spec``: None (uncached), the network-off control, the
    compiled network, or a cache policy ``NAME[:field=value,...]`` (validated here)."""
    if spec == UNCACHED:
        return None
    if spec == NETWORK_OFF:
        return NetworkOff()
    if spec == COMPILED:
        return CompiledNetwork(model.network)
    return CacheEngine(model.network, make_policy(parse_policy(spec, model.n_steps)))


def validate_policy_spec(spec: str, n_steps: int) -> None:
    """Refuse a bad ``spec`` for series of length ``n_steps`` (a checkpoint's
    ``config.json`` gives it) before any model is loaded: the policy is parsed and built
    as :func:`policy_engine` would, without a network."""
    if spec not in (UNCACHED, NETWORK_OFF, COMPILED):
        make_policy(parse_policy(spec, n_steps))


def training_data(model: ScoreModel) -> SeriesSplit:
    """The train/test split of the data the checkpoint was trained on (from its meta:
    the recorded data source, file path and hash checked, or a registered name)."""
    from fdbench.data import dataset_for_checkpoint

    return dataset_for_checkpoint(model.meta)


def judge_summary(samples: torch.Tensor, split: SeriesSplit, config: BenchConfig, *,
                  references: bool = False) -> dict[str, Any]:
    """The realism judges' headline numbers (``fdbench.judges.JUDGE_KEYS``) of ``samples``
    against the held-out split; with ``references`` also real-vs-real and the dummy."""
    scored = evaluate_samples(samples, held_out=split.test, train=split.train,
                              seed=config.seed, repeats=config.judge_repeats,
                              references=references)
    out: dict[str, Any] = {"judges": {key: scored[key] for key in JUDGE_KEYS}}
    if references:
        out.update(judges_real_vs_real=scored["reference"], judges_dummy=scored["dummy"])
    return out


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast of the network's matmuls to ``precision`` (a no-op for fp32); the solver
    state stays fp32 because its updates promote to the wider type."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def quality_pass(model: ScoreModel, config: BenchConfig, store: ResultStore,
                 out_dir: Path, *, progress: bool = True, job: Dist | None = None) -> None:
    """Samples per policy (same noise as uncached), scored and paired. Under torchrun
    each rank draws its shard of the samples; rank 0 gathers, scores and writes."""
    job = job or Dist(device=model.device)
    split = training_data(model) if job.is_main else None
    reference = split.test if split is not None else None
    samples_dir = out_dir / "samples"
    def draw(spec: str, **precision: str) -> torch.Tensor:
        return policy_samples(model, spec, config, samples_dir, store, progress, job,
                              **precision)

    uncached = draw(UNCACHED)
    extra = (COMPILED,) if config.compile else ()
    shown = progress and job.is_main
    specs = (*config.policies, *extra, NETWORK_OFF)
    for spec in bar(specs, desc="quality pass (policies)", enabled=shown, unit="policy"):
        if job.broadcast(store.find("quality", spec) is not None):
            continue
        samples = draw(spec)
        if job.is_main:
            with Stage(f"quality pass: scored {spec}", enabled=shown):
                summary = quality_summary(samples, reference, paired_reference=uncached,
                                          n_directions=config.n_directions,
                                          seed=config.seed, n_boot=config.n_boot)
                summary["trajectory_paired"] = _trajectory_error(samples_dir, spec, config)
                if config.judge_repeats:
                    summary.update(judge_summary(samples, split, config))
            store.add({"kind": "quality", "policy": spec, "quality": summary})
    if config.precision != "fp32" and not job.broadcast(store.find("precision", UNCACHED)):
        # the precision's quality effect: uncached samples against fp32 ones, same noise
        full = draw(UNCACHED, precision="fp32")
        if job.is_main:
            paired = summarise_paired(paired_relative_error(uncached, full)).to_dict()
            store.add({"kind": "precision", "policy": UNCACHED,
                       "precision": config.precision, "paired_vs_fp32": paired})
    if job.is_main and store.find("quality", UNCACHED) is None:
        with Stage(f"quality pass: scored {UNCACHED}", enabled=shown):
            summary = quality_summary(uncached, reference, n_directions=config.n_directions,
                                      seed=config.seed, n_boot=config.n_boot)
            if config.judge_repeats:
                summary.update(judge_summary(uncached, split, config, references=True))
        store.add({"kind": "quality", "policy": UNCACHED, "quality": summary})


TRAJECTORY_POINTS = 10  # reverse-process snapshots kept for the paired trajectory error


def file_stem(spec: str) -> str:
    """A policy spec as a file name (``:``, ``/``, ``,`` ... become ``_``)."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in spec)


def _samples_path(samples_dir: Path, spec: str, precision: str, config: BenchConfig) -> Path:
    suffix = "_fp32" if precision != config.precision else ""
    return samples_dir / f"{file_stem(spec)}{suffix}.npy"


def policy_samples(model: ScoreModel, spec: str, config: BenchConfig, samples_dir: Path,
                   store: ResultStore, progress: bool, job: Dist | None = None, *,
                   precision: str | None = None) -> torch.Tensor:
    """``config.num_samples`` samples under policy ``spec`` with the run's seed (so the
    same noise as every other policy), plus trajectory snapshots; reused from disk when
    this setting already produced them. Each rank draws its contiguous shard (global
    sample indices, so the same samples as one process); every rank gets all samples."""
    job = job or Dist(device=model.device)
    precision = precision or config.precision
    path = _samples_path(samples_dir, spec, precision, config)
    key = spec if precision == config.precision else f"{spec}@{precision}"
    done = job.broadcast(path.exists() and store.find("samples", key) is not None)
    if done:
        return torch.from_numpy(np.load(path)) if job.is_main else torch.empty(0)
    engine = policy_engine(model, spec)
    every = max(1, config.n_steps // TRAJECTORY_POINTS)
    snapshots: list[list[torch.Tensor]] = []   # per batch, per kept step: (b, N, M)

    def keep(step: int, t: torch.Tensor, x: torch.Tensor, score: torch.Tensor) -> None:
        if (step + 1) % every == 0:
            if step + 1 == every:                # a new batch's first snapshot
                snapshots.append([])
            snapshots[-1].append(x.float().cpu())

    first, count = job.shard(config.num_samples, config.sample_batch)
    with autocast(job.device, precision):
        shard = generate(model, count, n_steps=config.n_steps, seed=config.seed,
                         batch_size=config.sample_batch, first_index=first, engine=engine,
                         progress=progress and job.is_main, callback=keep,
                         desc=f"quality pass: {key}")
    samples = job.all_gather_shards(shard.float())
    if not bool(torch.isfinite(samples).all()):  # every rank sees the gathered samples
        bad = int((~torch.isfinite(samples)).flatten(1).any(1).sum())
        raise FdbenchError(f"sampling with {key!r} gave non-finite values in {bad} of "
                           f"{samples.shape[0]} samples; nothing written for it (finished "
                           f"policies' files in {samples_dir} are kept)")
    trajectory = job.all_gather_shards(                     # (snapshots, samples, N, M)
        torch.cat([torch.stack(batch) for batch in snapshots], dim=1), dim=1)
    histories = job.all_gather_object(getattr(engine, "history", []))
    if job.is_main:
        atomic_save_npy(path, samples.numpy())
        atomic_save_npy(path.with_name(path.stem + "_trajectory.npy"), trajectory.numpy())
        cache = combine([s for h in histories for s in h]) \
            if isinstance(engine, CacheEngine) else {}
        store.add({"kind": "samples", "policy": key, "cache": cache})
    return samples


def _trajectory_error(samples_dir: Path, spec: str, config: BenchConfig) -> dict[str, list]:
    """Paired relative error to the uncached trajectory (same noise) at the snapshots."""
    def load(name: str) -> torch.Tensor:
        return torch.from_numpy(np.load(samples_dir / f"{file_stem(name)}_trajectory.npy"))

    every = max(1, config.n_steps // TRAJECTORY_POINTS)
    errors = trajectory_relative_error(load(spec), load(UNCACHED))
    return {"step": [every * (i + 1) - 1 for i in range(len(errors))],
            "relative_error": errors.tolist()}


def timing_pass(model: ScoreModel, config: BenchConfig, store: ResultStore,
                batch: int, *, progress: bool = True) -> None:
    """Interleaved time of uncached vs every policy at one batch size (CUDA events and
    synchronisation on a GPU, wall clock on the CPU)."""
    if store.find("timing", UNCACHED, batch) is not None:
        return
    names = (UNCACHED, *config.policies, *((COMPILED,) if config.compile else ()))
    engines = {name: policy_engine(model, name) for name in names}
    device = model.device

    def sample(name: str, n_steps: int) -> None:
        with autocast(device, config.precision):
            generate(model, batch, n_steps=n_steps, seed=config.seed, batch_size=batch,
                     engine=engines[name], progress=False)

    for name in names:  # warm-up: allocator, kernels, caches (and compilation)
        sample(name, config.warmup_steps)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    stats: dict[str, dict[str, Any]] = {}
    for round_index in range(config.rounds):
        for name in names:
            if engines[name] is not None:
                engines[name].history.clear()
            seconds[name].append(time_call(functools.partial(sample, name, config.n_steps), device))
            if isinstance(engines[name], CacheEngine):
                stats[name] = combine(engines[name].history)
        if progress:
            print(f"  batch {batch}: round {round_index + 1}/{config.rounds} done", flush=True)
    for name in names:
        ratio = ratio_summary(seconds[name], seconds[UNCACHED])
        cache = stats.get(name, {"flop_ratio": 1.0, "flop_speedup": 1.0,
                                 "recompute_fraction": 1.0, "cache_bytes": 0,
                                 "decision_seconds": 0.0})
        wall_speedup = 1.0 / ratio.median
        store.add({"kind": "timing", "policy": name, "batch": batch,
                   "seconds": seconds[name], "time_ratio": ratio.to_dict(),
                   "wall_speedup": wall_speedup, "flop_speedup": cache["flop_speedup"],
                   "efficiency": wall_speedup / cache["flop_speedup"], "cache": cache})


def random_checkpoint(directory: str | Path, *, preset: str = "paper",
                      layout: str = "chart", data: str = "ecg", seed: int = 0) -> Path:
    """A checkpoint with randomly initialised weights of ``preset`` on ``data``'s shape,
    for timing and FLOP measurements only (its samples mean nothing; meta says so). The
    preconditioned parametrisation keeps its trajectories bounded."""
    from fdbench.checkpoint import save_checkpoint
    from fdbench.data.standardise import Standardiser
    from fdbench.model import ModelConfig, build_model
    from fdbench.pipeline import to_domain
    from fdbench.sde import VPSDE

    split = load_dataset(data)
    config = ModelConfig.from_preset(preset, split.n_steps, split.n_channels, layout=layout,
                                     parametrisation="preconditioned")
    network = build_model(config, seed=seed).eval()
    standardiser = Standardiser.fit(to_domain(split.train, config.frequency_domain))
    model = ScoreModel(network, VPSDE(), standardiser,
                       {"data": data, "weights": "random (timing and FLOPs only)",
                        "preset": preset})
    return save_checkpoint(directory, model)


def run_bench(checkpoint: str | Path, out_dir: str | Path, config: BenchConfig, *,
              progress: bool = True, job: Dist | None = None) -> list[dict[str, Any]]:
    """Run the quality and timing passes; returns all records of this setting. Under
    torchrun (``job`` from :func:`fdbench.distributed.init_from_env`) the quality pass is
    sharded over the ranks and rank 0 alone times, writes and returns the records.
    Everything that can be refused is refused before the checkpoint loads: the output
    directory, every policy spec, and a directory holding results of other settings."""
    torch.set_num_threads(config.threads)
    job = job or Dist(device=resolve_device(config.device))
    out_dir = check_writable_dir(Path(out_dir), "bench output directory")
    n_steps = read_config(checkpoint)["model"]["n_steps"]
    for spec in config.policies:  # fail on a bad spec before any long work
        validate_policy_spec(spec, n_steps)
    settings = {**asdict(config), "checkpoint": str(Path(checkpoint).resolve()),
                "threads": torch.get_num_threads(), "torch": torch.__version__,
                "fdbench": __version__, "machine": platform.machine(),
                "device": str(job.device.type)}
    store = ResultStore(out_dir / RESULTS_FILE, settings, writable=job.is_main)
    model = load_checkpoint(checkpoint, device=job.device)
    if config.judge_repeats and job.is_main:   # and on data too small to judge
        split = training_data(model)
        check_judge_sizes(config.num_samples, len(split.test), len(split.train))
    if store.records and progress and job.is_main:
        print(f"resuming {out_dir} (same settings): reusing {len(store.records)} finished "
              f"record(s), skipped: {store.reused()}", flush=True)
    quality_pass(model, config, store, out_dir, progress=progress, job=job)
    if not job.is_main:  # timing is one process's business: the others leave
        return []
    for batch in config.batch_sizes:
        timing_pass(model, config, store, batch, progress=progress)
    return store.records
