"""``fdbench evaluate SAMPLES.npy --data NAME``: every sample-quality judge on a file of
generated series, beside real-vs-real and mean-series-dummy references."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fdbench.argtypes import non_negative_int, positive_int

DESCRIPTION = """\
Score generated series (SAMPLES.npy, shape (B, N) or (B, N, M), the data set's N and M)
against the held-out (test) split of --data, with two references: "real vs real" (training
series scored as if generated: what a perfect generator gets with this many series) and
"dummy" (every sample = the training mean series: what a useless one gets).

judges (lower is better for all but memorisation):
  discriminative  |accuracy - 0.5| of a conv classifier real-vs-generated on a 20 % hold-out
                  (TimeGAN): 0 = indistinguishable, 0.5 = perfectly separable; mean +- SE
  predictive      MAE of a GRU trained on the samples to predict the next step of real series
                  (TimeGAN's train-on-synthetic-test-on-real), in units of the real std
  sw_time         sliced Wasserstein-2 over 1000 random directions (the base paper), data units
  marginal_w      per-coordinate Wasserstein-2 of the marginals, averaged, data units
  memorisation    median nearest-training-series distance of samples / of held-out series:
                  ~1 = no sign of copying, << 1 = copies training series, > 1 = off the data
  acd             L2 gap of the pooled autocorrelation functions up to lag 64 (TSGBench)
  mdd             mean total variation between per-coordinate histograms, in [0, 1] (TSGBench)
  skew / kurt     |gap| of the pooled skewness / excess kurtosis (TSGBench)
Read each number against its real-vs-real value (the floor set by finite samples) and the
dummy. Errors (bad file, shape, NaN, unknown data set, unwritable --json) exit with code 2
before anything is computed."""

ROWS = (("discriminative", "discriminative_score", "discriminative_score_se"),
        ("predictive", "predictive_score", "predictive_score_se"),
        ("sw_time", "sw_time", None), ("marginal_w", "marginal_w_time", None),
        ("memorisation", "memorisation_ratio", None), ("acd", "acd", None),
        ("mdd", "mdd", None), ("skew", "skewness_difference", None),
        ("kurt", "kurtosis_difference", None))


def load_samples(path: Path) -> Any:
    """The array in a .npy file, or an error naming the file and the problem."""
    import numpy as np

    from fdbench.errors import InputError

    if not path.is_file():
        raise InputError(f"samples file {path} does not exist")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise InputError(f"cannot read samples file {path} as .npy: {err}") from None
    if not isinstance(array, np.ndarray):
        raise InputError(f"samples file {path} holds an archive, not one array")
    return array


def _format(value: Any, se: Any = None) -> str:
    if value is None:
        return "-"
    text = f"{value:.4f}"
    return f"{text} +- {se:.4f}" if se is not None else text


def table(result: dict[str, Any]) -> str:
    """The judge | samples | real vs real | dummy table."""
    rows = [("judge", "samples", "real vs real", "dummy")]
    for label, key, se in ROWS:
        rows.append((label, *(_format(r[key], r[se] if se else None) for r in
                              (result, result["reference"], result["dummy"]))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def _handler(args: Any) -> int:
    from fdbench.data import load_dataset
    from fdbench.errors import InputError
    from fdbench.io import atomic_write_json, check_writable_file
    from fdbench.judges import MIN_SERIES, check_series, evaluate_samples

    if args.json is not None:  # refused now, not after a minute of training classifiers
        check_writable_file(args.json, "--json")
    from fdbench.commands.data import options_from_args  # read/split as in training

    data = load_dataset(args.data, seed=args.data_seed, options=options_from_args(args))
    held_out, against = data.test, "held-out"
    if args.fresh:  # a synthetic family: new true series, not the finite test split
        from fdbench.data import fresh_samples

        held_out, against = fresh_samples(args.data, args.fresh, seed=args.data_seed), "fresh"
    samples = check_series(load_samples(args.samples), f"samples ({args.samples})",
                           min_count=MIN_SERIES)
    expected = (data.n_steps, data.n_channels)
    if tuple(samples.shape[1:]) != expected:
        raise InputError(f"samples ({args.samples}) have series of shape (N, M) = "
                         f"{tuple(samples.shape[1:])}; data set {data.name!r} has "
                         f"{expected}")
    print(f"evaluating {samples.shape[0]} samples against {held_out.shape[0]} {against} "
          f"{data.name} series ({args.repeats} repeats, seed {args.seed})")
    result = evaluate_samples(samples, held_out=held_out, train=data.train, seed=args.seed,
                              repeats=args.repeats)
    result.update(samples_file=str(args.samples), data=data.name, data_seed=args.data_seed,
                  held_out=f"{held_out.shape[0]} {against} series")
    print(table(result))
    if args.json is not None:
        atomic_write_json(args.json, result)
        print(f"-> {args.json}")
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "evaluate", help="score generated series with every sample-quality judge",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", type=Path, metavar="SAMPLES.npy",
                        help="generated series, (B, N) or (B, N, M) floats")
    parser.add_argument("--data", required=True, help="data set name or series file")
    parser.add_argument("--data-seed", type=non_negative_int, default=0,
                        help="seed of the train/test split (default: 0)")
    parser.add_argument("--fresh", type=non_negative_int, default=0, metavar="N",
                        help="score against N new series from the data set's exact sampler "
                             "(synthetic families: sines, sines-large, powerlaw, ar2, bumps) "
                             "instead of its test split (default 0: the test split)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="also write all numbers to OUT as JSON (atomically)")
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="repeats of the classifier and predictor judges (default: 5)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of every judge's randomness (default: 0)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    from fdbench.commands.data import add_data_options  # light: argparse only

    add_data_options(parser)
    parser.set_defaults(handler=_handler)
