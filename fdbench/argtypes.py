"""argparse value types shared by ``fdbench.cli`` and the ``fdbench.commands`` modules:
a bad value becomes a usage error (one ``fdbench: error:`` line, exit 2) naming the
option. Nothing here imports torch or numpy, so ``fdbench --help`` stays fast."""

from __future__ import annotations

import argparse
from pathlib import Path

# short names of the checkpoints shipped in fdbench/checkpoints/ (directory names work too)
SHIPPED_CHECKPOINTS = {"ecg": "ecg-bins-compact", "sines": "sines-bins-compact"}
SHIPPED_DIR = Path(__file__).resolve().parent / "checkpoints"
CHECKPOINT_HELP = ("a checkpoint directory, or a shipped model by name: "
                   + ", ".join(f"{k} (= {v})" for k, v in SHIPPED_CHECKPOINTS.items())
                   + "; an existing directory of the same name wins")
MIN_SOLVER_STEPS = 2  # fdbench.solvers.SolverConfig: a grid from t = 1 to eps has >= 2 times


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1)


def solver_steps(text: str) -> int:
    """A number of reverse-solver steps T >= 2, for every solver: the time grid runs from
    t = 1 down to eps, so it needs two points (Heun's last step is an Euler step between
    them); one step has no grid to take."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < MIN_SOLVER_STEPS:
        raise argparse.ArgumentTypeError(
            f"must be >= {MIN_SOLVER_STEPS}, got {value}: every solver steps between grid "
            f"times from t = 1 down to eps, so T = 1 has no step to take")
    return value


def resolve_checkpoint(name: str | Path) -> Path:
    """The checkpoint directory ``name`` names: an existing path as given; else a shipped
    model's short name (``SHIPPED_CHECKPOINTS``) or directory name; else the path as given
    (loading it then says it is missing). The one place shipped names are resolved."""
    path = Path(name)
    if path.exists():
        return path
    text = str(name)
    dirname = SHIPPED_CHECKPOINTS.get(text, text)
    if dirname in SHIPPED_CHECKPOINTS.values():
        return SHIPPED_DIR / dirname
    return path


def checkpoint_arg(text: str) -> Path:
    """argparse type of every ``--checkpoint``: :func:`resolve_checkpoint`."""
    return resolve_checkpoint(text)


class SplitCommas(argparse.Action):
    """``nargs="+"`` that also takes comma-separated items: ``a,b c`` -> [a, b, c], each
    checked against ``known`` (argparse's own ``choices`` would see ``a,b`` whole)."""

    def __init__(self, *args: object, known: tuple[str, ...] | None = None,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.known = known

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        given = values if isinstance(values, list) else [values]
        items = [part.strip() for value in given for part in str(value).split(",")]
        if not all(items):
            raise argparse.ArgumentError(self, f"empty item in {' '.join(map(str, given))!r}")
        if self.known is not None:
            unknown = [item for item in items if item not in self.known]
            if unknown:
                raise argparse.ArgumentError(
                    self, f"unknown {unknown}; known: {', '.join(self.known)}")
        setattr(namespace, self.dest, items)


def add_threads(parser: argparse.ArgumentParser, default: str = "torch's choice") -> None:
    """The ``--threads`` option every compute command takes (``fdbench.cli.main`` sets it)."""
    parser.add_argument("--threads", type=positive_int, default=None,
                        help=f"torch CPU threads (default: {default}); printed at start")
