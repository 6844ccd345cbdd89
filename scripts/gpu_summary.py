"""Summarise ``fdbench bench`` timing records for the GPU check: per batch size the
median time per run, wall and FLOP speedups against uncached, wall/FLOP efficiency, and
the uncached sampler's achieved matmul throughput (analytic FLOPs / measured time).

Usage: python scripts/gpu_summary.py RESULTS_JSONL [RESULTS_JSONL ...]"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fdbench.checkpoint import read_config
from fdbench.flops import forward_flops
from fdbench.model import ModelConfig


def summarise(path: Path) -> list[str]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line]
    timed = [r for r in records if r["kind"] == "timing"]
    if not timed:
        return [f"{path}: no timing records"]
    settings = timed[0]["settings"]
    config = ModelConfig.from_dict(read_config(settings["checkpoint"])["model"])
    lines = [f"{path}: device {settings.get('device')}, precision "
             f"{settings.get('precision', 'fp32')}, T={settings['n_steps']}, "
             f"{config.d_model}d x {config.n_layers} layers, {config.n_tokens} tokens",
             "| batch | policy | median s | wall speedup | FLOP speedup | wall/FLOP "
             "| uncached TFLOP/s |", "|---|---|---|---|---|---|---|"]
    for r in sorted(timed, key=lambda r: (r["batch"], r["policy"] != "uncached")):
        seconds = r["time_ratio"]["candidate_median_s"]
        throughput = ""
        if r["policy"] == "uncached":
            flops = sum(forward_flops(config, r["batch"]).values()) * settings["n_steps"]
            throughput = f"{flops / seconds / 1e12:.3f}"
        lines.append(f"| {r['batch']} | {r['policy']} | {seconds:.3f} | "
                     f"{r['wall_speedup']:.2f}x | {r['flop_speedup']:.2f}x | "
                     f"{r['efficiency']:.2f} | {throughput} |")
    for r in (r for r in records if r["kind"] == "precision"):
        lines.append(f"{r['precision']} vs fp32 paired relative error (uncached): "
                     f"{r['paired_vs_fp32']['mean']:.2e}")
    return lines


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for argument in sys.argv[1:]:
        print("\n".join(summarise(Path(argument))))
