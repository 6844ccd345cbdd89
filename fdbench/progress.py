"""Progress reporting: a tqdm bar on a terminal, one summary line per stage off it (a log
file or a pipe gets no carriage-return noise, and still says what ran and for how long).

Bars go to stderr (tqdm's default); summary lines go to stdout with the command's other
messages, so stderr stays the place of the one ``fdbench: error:`` line."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def on_terminal() -> bool:
    """True when the progress bars' stream (stderr) is a terminal."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def bar(iterable: Iterable[T], *, desc: str, enabled: bool = True, **options: Any) -> Any:
    """``tqdm(iterable)`` shown only on a terminal and when ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, disable=not (enabled and on_terminal()), **options)


def summary(line: str, *, enabled: bool = True) -> None:
    """Print one stage's summary line, off a terminal only (on one, the bar said it)."""
    if enabled and not on_terminal():
        print(line, flush=True)


class Stage:
    """``with Stage("sampling e2crf", enabled=progress) as stage: ...`` prints
    ``sampling e2crf: <detail> in 12.3 s`` off a terminal when the block ends without an
    error; ``stage.detail`` may be set inside the block."""

    def __init__(self, desc: str, *, enabled: bool = True, detail: str = "") -> None:
        self.desc, self.enabled, self.detail = desc, enabled, detail
        self.started = 0.0

    def __enter__(self) -> Stage:
        self.started = time.perf_counter()
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is None:
            seconds = time.perf_counter() - self.started
            detail = f": {self.detail}" if self.detail else ""
            summary(f"{self.desc}{detail} in {seconds:.1f} s", enabled=self.enabled)


def iterate(iterable: Iterable[T], *, desc: str, enabled: bool = True,
            **options: Any) -> Iterator[T]:
    """Iterate under a bar (terminal) or a one-line summary at the end (otherwise)."""
    with Stage(desc, enabled=enabled) as stage:
        count = 0
        for item in bar(iterable, desc=desc, enabled=enabled, **options):
            count += 1
            yield item
        stage.detail = f"{count} {options.get('unit', 'items')}"
