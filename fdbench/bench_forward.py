"""Forward time of ScoreTransformer against an equivalent ``nn.TransformerEncoder`` with
the same weights (the issue-2 bar: <= 1.1x), timed interleaved in one process.

    python -m fdbench.bench_forward --threads 1 --batch-sizes 1 64 --out runs/forward.json
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fdbench.io import atomic_write_json
from fdbench.model import ModelConfig, ScoreTransformer, build_model
from fdbench.timing import interleaved_timings, ratio_summary


def torch_reference(model: ScoreTransformer) -> nn.TransformerEncoder:
    """``nn.TransformerEncoder`` carrying ``model``'s backbone weights (eval mode)."""
    config = model.config
    layer = nn.TransformerEncoderLayer(config.d_model, config.n_heads, config.d_ff,
                                       config.dropout, batch_first=True,
                                       layer_norm_eps=config.layer_norm_eps)
    encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
    encoder.load_state_dict({name.removeprefix("backbone."): value
                             for name, value in model.state_dict().items()
                             if name.startswith("backbone.")})
    return encoder.eval()


def reference_forward(model: ScoreTransformer, encoder: nn.TransformerEncoder, x: Tensor,
                      t: Tensor) -> Tensor:
    """The same score network with torch's encoder as the backbone."""
    return model.head(encoder(model.embed(x, t)))


@torch.no_grad()
def compare_forward(config: ModelConfig, batch_size: int, *, repeats: int,
                    seed: int = 0) -> dict[str, object]:
    model = build_model(config, seed=seed).eval()
    encoder = torch_reference(model)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, config.n_steps, config.n_channels, generator=generator)
    t = torch.rand(batch_size, generator=generator)
    max_abs_diff = float((model(x, t) - reference_forward(model, encoder, x, t)).abs().max())
    times = interleaved_timings({
        "fdbench": lambda: model(x, t),
        "torch": lambda: reference_forward(model, encoder, x, t),
    }, repeats=repeats)
    summary = ratio_summary(times["fdbench"], times["torch"])
    return {"batch_size": batch_size, "max_abs_diff": max_abs_diff, **summary.to_dict()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fdbench.bench_forward",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--layout", default="chart", choices=("time", "chart", "bins"))
    parser.add_argument("--n-steps", type=int, default=187, help="N (default 187, ECG)")
    parser.add_argument("--n-channels", type=int, default=1)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = ModelConfig.from_preset(args.preset, args.n_steps, args.n_channels,
                                     layout=args.layout)
    rows = []
    print(f"{args.preset}/{args.layout} N={args.n_steps} M={args.n_channels}, "
          f"threads={torch.get_num_threads()}, torch {torch.__version__}")
    for batch_size in args.batch_sizes:
        repeats = max(3, args.repeats // max(1, batch_size // 8))
        row = compare_forward(config, batch_size, repeats=repeats)
        rows.append(row)
        print(f"batch {batch_size:>3}: fdbench / torch = {row['median']:.3f} "
              f"(IQR {row['q25']:.3f}-{row['q75']:.3f}, {row['rounds']} rounds; torch "
              f"{row['baseline_median_s'] * 1e3:.1f} ms), max |diff| {row['max_abs_diff']:.1e}")
    if args.out:
        atomic_write_json(args.out, {"config": config.to_dict(), "threads": args.threads,
                                     "torch": torch.__version__,
                                     "machine": platform.machine(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
