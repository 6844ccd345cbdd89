"""Train a small model on each embedded dataset, per output parametrisation, and score
its samples.

For each dataset and parametrisation: ``fdbench train`` (``--preset``, a few hundred
steps), then ``--num-samples`` samples with reverse EM, scored against the held-out split
next to real-vs-real (train vs held-out) and the dummy (the train mean repeated), and the
ratio of the samples' std to the data's (a diverging sampler shows up there first).
Writes OUT/results.json (what the closing note and docs/RESULTS.md quote).

    python scripts/embedded_datasets.py nasdaq sp500 climate --out runs/datasets \
        --parametrisations score preconditioned
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from fdbench.checkpoint import load_checkpoint
from fdbench.data import load_dataset
from fdbench.generate import generate
from fdbench.io import atomic_write_json
from fdbench.metrics import sample_metrics


def measure(name: str, out: Path, *, train_steps: int, n_steps: int, n_samples: int,
            parametrisation: str, preset: str) -> dict:
    checkpoint = out / f"checkpoint-{name}-{parametrisation}"
    command = ["fdbench", "train", "--data", name, "--preset", preset, "--steps",
               str(train_steps), "--parametrisation", parametrisation, "--threads", "1",
               "--out", str(checkpoint)]
    started = time.perf_counter()
    # this interpreter's fdbench, whether or not a venv is activated
    subprocess.run([sys.executable, "-m", *command], check=True, stdout=subprocess.DEVNULL)
    trained = time.perf_counter()
    data = load_dataset(name, seed=0)
    samples = generate(load_checkpoint(checkpoint), n_samples, n_steps=n_steps, seed=0,
                       progress=False)
    sampled = time.perf_counter()
    dummy = data.train.mean(0, keepdim=True).expand(n_samples, -1, -1)
    sets = [("real_vs_real", data.train), ("dummy_mean", dummy)]
    if samples.isfinite().all():  # a diverged sampler has no distance to speak of
        sets.insert(0, ("generated", samples))
    metrics = {label: {metric: value["mean"] for metric, value in
                       sample_metrics(series, data.test, n_directions=1000, seed=0).items()}
               for label, series in sets}
    metrics.setdefault("generated", {"sw_time": float("nan")})
    std_ratio = float(samples.std() / data.test.std()) if samples.isfinite().all() else None
    return {"command": " ".join(command), "n_train": int(data.train.shape[0]),
            "std_ratio": std_ratio,
            "n_test": int(data.test.shape[0]), "sample_steps": n_steps,
            "train_s": trained - started, "sample_s": sampled - trained, "metrics": metrics}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", help="registered dataset names")
    parser.add_argument("--out", type=Path, default=Path("runs/datasets"))
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=200, help="reverse EM steps")
    parser.add_argument("--num-samples", type=int, default=64)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--parametrisations", nargs="+", default=["preconditioned"])
    args = parser.parse_args()
    results = {}
    for name in args.datasets:
        for parametrisation in args.parametrisations:
            key = f"{name}/{parametrisation}"
            results[key] = measure(name, args.out, train_steps=args.train_steps,
                                   n_steps=args.steps, n_samples=args.num_samples,
                                   parametrisation=parametrisation, preset=args.preset)
            m, ratio = results[key]["metrics"], results[key]["std_ratio"]
            print(f"{key}: SW time generated {m['generated']['sw_time']:.4g}, real-vs-real "
                  f"{m['real_vs_real']['sw_time']:.4g}, dummy {m['dummy_mean']['sw_time']:.4g}"
                  f", sample std / data std {ratio if ratio is None else round(ratio, 3)}")
    atomic_write_json(args.out / "results.json", results)
    print(f"-> {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
