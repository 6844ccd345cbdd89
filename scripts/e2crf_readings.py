"""E²-CRF's readings on the shipped ECG model: paired error and FLOP speedup per reading
on a tau_0 grid, every run one batch of the same per-sample noise as the uncached run.

    python scripts/e2crf_readings.py --steps 1000 --num-samples 64 \
        --tau-0 0.3 0.6 1.2 2.4 --variants e2crf_v01 e2crf e2crf:R=10 e2crf:R=20

prints one JSON line per (variant, tau_0) and writes them to --out (JSON lines). FLOP
speedups are executed (per-sample recompute sets padded to the batch's largest) and
planned; no wall clock is measured (use ``fdbench bench --sweep`` for that)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from fdbench.cache import CacheEngine, make_policy, parse_policy
from fdbench.checkpoint import load_checkpoint
from fdbench.generate import generate
from fdbench.io import atomic_write_text
from fdbench.quality import paired_relative_error

CHECKPOINT = Path(__file__).resolve().parents[1] / "fdbench/checkpoints/ecg-bins-compact"


def with_tau(variant: str, tau_0: float) -> str:
    return f"{variant}{',' if ':' in variant else ':'}tau_0={tau_0:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--steps", type=int, default=1000, help="reverse EM steps T")
    parser.add_argument("--num-samples", type=int, default=64, help="one batch of samples")
    parser.add_argument("--tau-0", type=float, nargs="+", default=[0.3, 0.6, 1.2, 2.4])
    parser.add_argument("--variants", nargs="+", default=["e2crf_v01", "e2crf"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/e2crf_readings.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_checkpoint(args.checkpoint)
    n_steps = model.network.config.n_steps
    specs = [with_tau(v, tau) for v in args.variants for tau in args.tau_0]
    for spec in specs:                      # bad specs fail before any sampling
        parse_policy(spec, n_steps)
    common = {"n_steps": args.steps, "seed": args.seed, "batch_size": args.num_samples,
              "progress": False}
    reference = generate(model, args.num_samples, **common)
    lines = []
    for spec in specs:
        engine = CacheEngine(model.network, make_policy(parse_policy(spec, n_steps)))
        samples = generate(model, args.num_samples, engine=engine, **common)
        summary = engine.stats.summary()
        record = {"spec": spec, "steps": args.steps, "samples": args.num_samples,
                  "paired_error": paired_relative_error(samples, reference).mean().item(),
                  "flop_speedup": summary["flop_speedup"],
                  "planned_flop_speedup": summary["planned_flop_speedup"],
                  "full_steps": summary["full_steps"]}
        lines.append(json.dumps(record))
        print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
