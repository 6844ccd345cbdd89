"""``fdbench import-fd``: a FourierDiffusion Lightning checkpoint -> fdbench checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _handler(args: Any) -> int:
    from fdbench.checkpoint import save_checkpoint
    from fdbench.fd_import import import_fourierdiffusion

    model = import_fourierdiffusion(args.checkpoint, data=args.data, data_seed=args.data_seed)
    out = save_checkpoint(args.out, model)
    config = model.network.config
    print(f"imported {args.checkpoint}: {config.layout} layout, N={config.n_steps}, "
          f"M={config.n_channels}, d={config.d_model}, {config.n_layers} layers, "
          f"{model.sde.kind.upper()} SDE; standardiser "
          f"{model.meta.get('standardiser', 'fitted on ' + str(args.data))} -> {out}")
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "import-fd", help="import a FourierDiffusion .ckpt as an fdbench checkpoint",
        description="Convert a FourierDiffusion (PyTorch Lightning) checkpoint into an "
                    "fdbench checkpoint (model.safetensors + config.json). Reading a .ckpt "
                    "runs pickle: only the fdiff VP/VE scheduler classes, tensors and plain "
                    "containers are accepted, anything else is refused.")
    parser.add_argument("checkpoint", type=Path, help="the .ckpt file")
    parser.add_argument("--out", type=Path, required=True, help="output checkpoint directory")
    parser.add_argument("--data", default=None,
                        help="registry dataset the model was trained on: fits the "
                             "standardisation and lets `fdbench bench` score samples "
                             "(default: identity standardisation, no data)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of its split")
    parser.set_defaults(handler=_handler)
