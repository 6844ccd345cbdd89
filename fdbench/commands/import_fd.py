"""``fdbench import-fd``: a FourierDiffusion Lightning checkpoint -> fdbench checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fdbench.commands.data import add_data_options, options_from_args


def _check_out(out: Path, force: bool) -> None:
    """Refuse to overwrite a checkpoint (or write into a non-directory) unless --force."""
    from fdbench.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"--out {out} is not empty (it holds "
                          f"{', '.join(sorted(p.name for p in out.iterdir())[:3])}); pass "
                          "--force to overwrite it or choose another directory")
    for parent in out.parents:  # the first existing ancestor must be a directory
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--out {out}: {parent} is not a directory")
            break


def _handler(args: Any) -> int:
    from fdbench.checkpoint import save_checkpoint
    from fdbench.fd_import import import_fourierdiffusion

    _check_out(args.out, args.force)  # before the .ckpt is read
    options = options_from_args(args)
    model = import_fourierdiffusion(args.checkpoint, data=args.data, data_seed=args.data_seed,
                                    options=options, domain=args.domain,
                                    standardise=args.standardise)
    out = save_checkpoint(args.out, model)
    config = model.network.config
    print(f"imported {model.meta['imported_from']}: {config.layout} layout, "
          f"N={config.n_steps}, M={config.n_channels}, d={config.d_model}, "
          f"{config.n_layers} layers, {model.sde.kind.upper()} SDE; standardiser "
          f"{model.meta.get('standardiser')} -> {out}")
    if args.data is None:
        print("no --data: `fdbench bench` and `run` cannot score this model's samples; "
              "re-import with --data NAME_OR_FILE to give them held-out series")
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "import-fd", help="import a FourierDiffusion .ckpt as an fdbench checkpoint",
        description="Convert a FourierDiffusion (PyTorch Lightning) checkpoint into an "
                    "fdbench checkpoint (model.safetensors + config.json). Reading a .ckpt "
                    "runs pickle: only the fdiff VP/VE scheduler classes, tensors, numpy "
                    "scalars and plain containers are accepted, anything else is refused. "
                    "Only FD's transformer score model imports (not its MLP or LSTM).")
    parser.add_argument("checkpoint", type=Path,
                        help="the .ckpt file, or a directory holding it (or checkpoints/ "
                             "with it; several: the lowest val_loss in FD's file names)")
    parser.add_argument("--out", type=Path, required=True, help="output checkpoint directory")
    parser.add_argument("--force", action="store_true",
                        help="overwrite a non-empty --out (default: refused)")
    parser.add_argument("--data", default=None,
                        help="the data the model was trained on, a registered name or a "
                             "file (e.g. mitbih_train.csv --label-column -1): fits the "
                             "standardisation and lets `fdbench bench` score samples "
                             "(default: identity standardisation, no data)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of its split")
    parser.add_argument("--domain", default=None, choices=("time", "frequency"),
                        help="the domain the model was trained in; needed only for "
                             "fourier_noise_scaling=False without FD's train_config.yaml "
                             "beside the checkpoint")
    parser.add_argument("--standardise", default="fdbench", choices=("fdbench", "fd"),
                        help="fdbench: training split, population std with a floor "
                             "(default); fd: FourierDiffusion's own, every series of "
                             "--data, unbiased std")
    add_data_options(parser)
    parser.set_defaults(handler=_handler)
