"""``fdbench run``: the main job on the embedded default data.

Obtain a trained frequency-domain model (``bins`` layout) for the embedded ECG beats (the
shipped checkpoint, or a fresh one with ``retrain``), sample with 1000-step reverse
Euler–Maruyama, and score the samples against held-out beats beside two references:
real-vs-real (training beats vs held-out beats) and a dummy (every sample = the mean
training beat). Results go to ``runs/<name>/`` (JSON, samples, PNG), written atomically;
finished sample batches are kept so an interrupted run resumes."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fdbench import __version__
from fdbench.checkpoint import load_checkpoint
from fdbench.data import load_dataset
from fdbench.errors import ConfigError
from fdbench.generate import generate
from fdbench.io import atomic_save_npy, atomic_write_json
from fdbench.metrics import sample_metrics
from fdbench.model import ModelConfig
from fdbench.plots import plot_real_vs_generated
from fdbench.sde import VPSDE
from fdbench.train import TrainConfig, train

DEFAULT_CHECKPOINT = "ecg-bins-small"
# The recipe of the shipped checkpoint; `fdbench run --retrain` reruns exactly this.
DEFAULT_RECIPE: dict[str, Any] = {
    "data": "ecg", "data_seed": 0, "preset": "small", "layout": "bins", "sde": "vp",
    "steps": 2000, "batch_size": 64, "seed": 0,
}
RECIPE_COMMAND = ("fdbench train --data ecg --preset small --layout bins --sde vp "
                  "--steps 2000 --batch-size 64 --seed 0 --out fdbench/checkpoints/ecg-bins-small")


def shipped_checkpoint(name: str = DEFAULT_CHECKPOINT) -> Path:
    """Path of a checkpoint shipped inside the package."""
    return Path(str(files("fdbench") / "checkpoints" / name))


def train_default(out_dir: Path, *, progress: bool = True) -> None:
    """Train the default model with ``DEFAULT_RECIPE`` into ``out_dir``."""
    data = load_dataset(DEFAULT_RECIPE["data"], seed=DEFAULT_RECIPE["data_seed"])
    model_config = ModelConfig.from_preset(DEFAULT_RECIPE["preset"], data.n_steps,
                                           data.n_channels, layout=DEFAULT_RECIPE["layout"])
    train_config = TrainConfig(steps=DEFAULT_RECIPE["steps"],
                               batch_size=DEFAULT_RECIPE["batch_size"],
                               seed=DEFAULT_RECIPE["seed"])
    train(model_config, train_config, data, out_dir, sde=VPSDE(), resume=True,
          progress=progress, meta={"command": RECIPE_COMMAND,
                                   "data_seed": DEFAULT_RECIPE["data_seed"]})


def _fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _sample_with_shards(model, shard_dir: Path, *, n_samples: int, n_steps: int, seed: int,
                        batch_size: int, progress: bool) -> torch.Tensor:
    """Generate in batches, keeping each finished batch as an .npy shard so a rerun with
    the same settings skips it (sample i depends only on (seed, i), so this is exact)."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    chunks = []
    for start in range(0, n_samples, batch_size):
        count = min(batch_size, n_samples - start)
        shard = shard_dir / f"{start:07d}_{count}.npy"
        if shard.exists():
            chunks.append(torch.from_numpy(np.load(shard)))
            continue
        batch = generate(model, count, n_steps=n_steps, seed=seed, batch_size=count,
                         first_index=start, progress=progress)
        atomic_save_npy(shard, batch.numpy())
        chunks.append(batch)
    return torch.cat(chunks)


def run_main_job(name: str = "default", *, runs_dir: str | Path = "runs",
                 checkpoint: str | Path | None = None, retrain: bool = False,
                 n_samples: int = 256, n_steps: int = 1000, seed: int = 0,
                 batch_size: int = 64, n_directions: int = 1000,
                 progress: bool = True) -> dict[str, Any]:
    """Run the main job and return its results (also written to ``runs/<name>/``)."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"run name must be a plain directory name, got {name!r}")
    if retrain and checkpoint is not None:
        raise ConfigError("give either --checkpoint or --retrain, not both")
    runs_dir = Path(runs_dir)
    final_dir = runs_dir / name
    work_dir = runs_dir / f".{name}.partial"
    started = time.perf_counter()
    data = load_dataset(DEFAULT_RECIPE["data"], seed=DEFAULT_RECIPE["data_seed"])
    if retrain:
        checkpoint = work_dir / "checkpoint"
        train_default(Path(checkpoint), progress=progress)
    checkpoint = Path(checkpoint) if checkpoint is not None else shipped_checkpoint()
    model = load_checkpoint(checkpoint)
    if (model.n_steps, model.n_channels) != (data.n_steps, data.n_channels):
        raise ConfigError(f"checkpoint {checkpoint} models series of shape "
                          f"({model.n_steps}, {model.n_channels}), the ECG data is "
                          f"({data.n_steps}, {data.n_channels})")
    trained_at = time.perf_counter()
    settings = {"checkpoint": str(checkpoint.resolve()), "n_samples": n_samples,
                "n_steps": n_steps, "seed": seed, "sampler": "reverse_euler_maruyama"}
    shard_dir = work_dir / f"shards-{_fingerprint(settings)}"
    samples = _sample_with_shards(model, shard_dir, n_samples=n_samples, n_steps=n_steps,
                                  seed=seed, batch_size=batch_size, progress=progress)
    sampled_at = time.perf_counter()

    held_out, train_set = data.test, data.train
    dummy = train_set.mean(0, keepdim=True).expand(n_samples, -1, -1)
    scores = {
        "generated": sample_metrics(samples, held_out, n_directions=n_directions, seed=seed),
        "real_vs_real": sample_metrics(train_set, held_out, n_directions=n_directions,
                                       seed=seed),
        "dummy_mean_beat": sample_metrics(dummy, held_out, n_directions=n_directions,
                                          seed=seed),
    }
    results = {
        "fdbench_version": __version__, "torch_version": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "threads": torch.get_num_threads(), "data": data.description,
        "n_train": int(train_set.shape[0]), "n_held_out": int(held_out.shape[0]),
        "checkpoint": str(checkpoint), "checkpoint_meta": model.meta,
        "settings": settings, "metrics": scores,
        "seconds": {"model": trained_at - started, "sampling": sampled_at - trained_at},
    }
    atomic_save_npy(work_dir / "samples.npy", samples.numpy())
    plot_real_vs_generated(held_out, samples, work_dir / "samples.png",
                           title=f"ECG beats: held-out vs generated ({n_steps}-step EM)")
    results["seconds"]["total"] = time.perf_counter() - started
    atomic_write_json(work_dir / "results.json", results)
    shutil.rmtree(shard_dir)
    # swap the finished directory into place: runs/<name> is complete or absent
    if final_dir.exists():
        shutil.rmtree(final_dir)
    work_dir.rename(final_dir)
    return results


def summary_table(results: dict[str, Any]) -> str:
    """Plain-text table of the headline numbers."""
    rows = [("", "SW time", "SW freq", "marginal W time", "marginal W freq")]
    for label, key in (("generated", "generated"), ("real vs real", "real_vs_real"),
                       ("dummy (mean beat)", "dummy_mean_beat")):
        m = results["metrics"][key]
        rows.append((label, *(f"{m[k]['mean']:.4f}" for k in
                              ("sw_time", "sw_freq", "marginal_w_time", "marginal_w_freq"))))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                     for row in rows)
