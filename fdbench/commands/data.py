"""``fdbench data list | show NAME | prepare NAME --path DIR``: the data sets."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

SHOW_SERIES = 3  # series drawn by `data show`
SHOW_CHANNELS = 4  # channels drawn by `data show`: a legend of 50000 entries never ends


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The options that say how a ``--data`` file is read and split
    (:class:`fdbench.data.options.LoadOptions`); :func:`options_from_args` reads them.
    Every command taking ``--data`` adds them, so one file reads the same everywhere."""
    group = parser.add_argument_group("reading a data file (docs/DATASETS.md)")
    group.add_argument("--delimiter", default=None, metavar="CHAR",
                       help="CSV field separator: ',', ';' or tab (also 'tab'); default: "
                            "sniffed from the file")
    group.add_argument("--dropna", action="store_true",
                       help="drop every series with a missing/NaN/Inf value (default: "
                            "such a value is an error naming its line)")
    group.add_argument("--label-column", default=None, metavar="COL",
                       help="a column to ignore: index in a headerless CSV (-1 = last, "
                            "as in the Kaggle ECG files) or a long CSV's column name")
    group.add_argument("--split", default=None, choices=("random", "chronological"),
                       help="train/test split; chronological = the last series held out, "
                            "for overlapping windows (default: the set's own; files: "
                            "random)")
    group.add_argument("--purge", type=int, default=None, metavar="K",
                       help="chronological split: series dropped before the held-out part "
                            "(default: the set's own; files: N - 1, one window length)")


def options_from_args(args: argparse.Namespace) -> Any:
    """The :class:`fdbench.data.options.LoadOptions` of :func:`add_data_options`."""
    from fdbench.data.options import LoadOptions

    return LoadOptions.from_user(delimiter=args.delimiter, dropna=args.dropna,
                                 label_column=args.label_column, split=args.split,
                                 purge=args.purge)


def describe(name: str, options: Any = None) -> dict[str, Any]:
    """Shape, metadata and delta(K) at K = floor(N/10) of a registered set or a file."""
    from fdbench.data import DATASET_INFO, DATASETS, DatasetInfo, load_series_file
    from fdbench.data.files import validate_series
    from fdbench.errors import InputError
    from fdbench.spectral import localisation_curve

    if name in DATASETS:
        if options is not None and options.file_only:
            from fdbench.errors import ConfigError

            flags = ", ".join("--" + k.replace("_", "-") for k in options.file_only)
            raise ConfigError(f"{flags} apply to data files, not the registered set "
                              f"{name!r}")
        info = DATASET_INFO.get(name, DatasetInfo())
        x = validate_series(DATASETS[name](), what=f"dataset {name!r}")
        doc = (DATASETS[name].__doc__ or name).strip().splitlines()[0]
    elif Path(name).is_file():
        x, doc = load_series_file(name, options), f"series from {name}"
        split = getattr(options, "split", None) or "random"
        purge = getattr(options, "purge", None)
        info = DatasetInfo(source=str(Path(name).resolve()), licence="the user's",
                           split=split, purge=(x.shape[1] - 1 if purge is None else purge)
                           if split == "chronological" else 0)
    elif Path(name).is_dir():
        raise InputError(f"{name} is a directory, not a .npy/.npz/.csv file")
    else:
        raise InputError(f"unknown dataset {name!r}: neither a registered name "
                         f"({', '.join(sorted(DATASETS))}) nor an existing file")
    k = x.shape[1] // 10
    return {"name": name, "x": x, "shape": tuple(x.shape), "description": doc,
            "domain": info.domain, "source": info.source, "licence": info.licence,
            "split": info.split if info.split == "random" else
            f"{info.split} (purge {info.purge})", "K": k,
            "delta_K": float(localisation_curve(x)[k])}


def _cmd_list(args: argparse.Namespace) -> int:
    from fdbench.data import DATASET_INFO, DATASETS
    from fdbench.errors import InputError

    rows = [("name", "B x N x M", "domain", "split", "delta(K=N/10)", "licence")]
    for name in sorted(DATASETS):
        try:
            d = describe(name)
        except InputError as error:  # an optional package missing: say so, keep listing
            extra = DATASET_INFO[name].extra
            rows.append((name, "-", DATASET_INFO[name].domain, "-", "-",
                         f"unavailable: {error}" if not extra else
                         f"unavailable: pip install 'fdbench[{extra}]'"))
            continue
        rows.append((name, " x ".join(map(str, d["shape"])), d["domain"], d["split"],
                     f"{d['delta_K']:.4f} (K={d['K']})", d["licence"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    print("paper sets (need the Kaggle files): fdbench data prepare "
          "{ecg,nasdaq,nasa-charge,nasa-discharge,droughts} --path DIR")
    return 0


def plot_dataset(x: Any, path: Path, title: str) -> Path:
    """PNG: a few series (channel 0) and the mean per-bin energy of the first
    ``SHOW_CHANNELS`` channels (each standardised over the set, so curves share a scale);
    the panel's title says how many of how many are drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from fdbench.io import atomic_write
    from fdbench.spectral import bin_energy

    n_channels = int(x.shape[2])
    shown = min(SHOW_CHANNELS, n_channels)
    x = x[..., :shown].to(torch.float64)  # only what is drawn is computed
    z = (x - x.mean((0, 1))) / x.std((0, 1)).clamp_min(1e-12)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for b in range(min(SHOW_SERIES, x.shape[0])):
        left.plot(x[b, :, 0].numpy(), lw=1.2, label=f"series {b}")
    left.set(xlabel="time step", ylabel="value (channel 0)", title="series")
    left.legend(fontsize=8)
    for m in range(x.shape[2]):
        energy = bin_energy(z[..., m:m + 1]).mean(0).clamp_min(1e-12)
        right.semilogy(energy.numpy(), lw=1.2, label=f"channel {m}")
    right.set(xlabel="frequency bin k", ylabel="mean |c_k|^2 (standardised)",
              title="spectral density" + channels_drawn(shown, n_channels))
    if x.shape[2] > 1:
        right.legend(fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=10)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def channels_drawn(shown: int, total: int) -> str:
    """'' when every channel is drawn, else ' (channels 0-3 of 50000)'."""
    if shown == total:
        return ""
    return f" (channels 0-{shown - 1} of {total})"


def _cmd_show(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    if args.out is not None:
        from fdbench.io import check_writable_file

        check_writable_file(args.out, "--out")
    d = describe(args.name, options)
    for key in ("name", "description", "shape", "domain", "source", "licence", "split"):
        print(f"{key}: {d[key]}")
    print(f"delta(K) at K = floor(N/10) = {d['K']}: {d['delta_K']:.4f}")
    if args.out is not None:
        title = f"{d['name']}: {d['description']}"
        print(f"wrote {plot_dataset(d['x'], args.out, title)}")
        total = d["shape"][2]
        if total > SHOW_CHANNELS:
            print(f"the figure draws the first {SHOW_CHANNELS} of {total} channels")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    import json

    from fdbench.data.prepare import prepare
    from fdbench.errors import ConfigError

    params: dict[str, Any] = {}
    for option in args.option:
        key, sep, text = option.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"--option must be KEY=VALUE, got {option!r}")
        try:
            params[key] = json.loads(text)  # numbers, true/false; else the raw text
        except json.JSONDecodeError:
            params[key] = text
    if args.header_quirk:
        if args.name != "ecg":
            raise ConfigError("--header-quirk applies to the ecg set only")
        params["header_quirk"] = True
    path, reused = prepare(args.name, args.path, cache_dir=args.cache_dir, **params)
    import numpy as np

    with np.load(path, allow_pickle=False) as archive:
        shape = archive["x"].shape
    print(f"{'reused' if reused else 'wrote'} {path}: x {shape}")
    print(f"use it with: fdbench train --data {path} ...")
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser("data", help="list, show and prepare datasets")
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="registered datasets with shape and delta(K)")
    listing.set_defaults(handler=_cmd_list)
    show = sub.add_parser("show", help="one dataset's details (and a PNG with --out)")
    show.add_argument("name", help="registered name or .npy/.npz/.csv file")
    show.add_argument("--out", type=Path, default=None, help="write a PNG of a few series "
                      f"and the spectral density of the first {SHOW_CHANNELS} channels here")
    add_data_options(show)
    show.set_defaults(handler=_cmd_show)
    prep = sub.add_parser("prepare", help="preprocess a paper dataset from its Kaggle "
                          "files and cache it (keyed by file contents and parameters)")
    prep.add_argument("name", choices=("ecg", "nasdaq", "nasa-charge", "nasa-discharge",
                                       "droughts"))
    prep.add_argument("--path", type=Path, required=True, help="folder of the Kaggle files")
    prep.add_argument("--cache-dir", type=Path, default=None,
                      help="default $FDBENCH_CACHE or ~/.cache/fdbench")
    prep.add_argument("--header-quirk", action="store_true",
                      help="ecg: drop each file's first row as the base code did")
    prep.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                      help="a loader parameter, e.g. start=2019-01-01, n_days=252, "
                           "cutoff_s=5000 (see fdbench.data.paper)")
    prep.set_defaults(handler=_cmd_prepare)
