"""How a data file is read and split: the options every ``--data`` command shares.

A checkpoint records these beside the file's path and content hash
(:mod:`fdbench.data.source`), so ``bench``, ``run --checkpoint`` and ``evaluate`` rebuild
exactly the split the model was trained on. The rules (docs/DATASETS.md, "Your own data"):

* ``delimiter``: a CSV's field separator; None sniffs ``,``, ``;`` or tab from the file;
* ``dropna``: drop every *series* holding a missing or non-finite value (one rule for
  .npy, .npz, headerless and long CSV; N never changes); without it such a value is an
  error naming the line (CSV) or (series, step, channel) (arrays);
* ``label_column``: a column that is not part of the series (the Kaggle ECG files' last
  column): an index into a headerless CSV's fields (``-1`` = last), or a long CSV's
  column name; ignored when read;
* ``split`` / ``purge``: ``random`` (seeded permutation, series exchangeable) or
  ``chronological`` (series in file order are windows in time: the last part is held
  out and the ``purge`` series before it are dropped so no time step is in both parts);
  None takes the data set's declared split (files: random). A file's default purge is
  N - 1, one window length: with stride-1 sliding windows exactly the windows that share
  a time step with the first held-out one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fdbench.errors import ConfigError

SPLITS = ("random", "chronological")
DELIMITERS = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "\\t": "\t", "comma": ",",
              "semicolon": ";"}


@dataclass(frozen=True)
class LoadOptions:
    """Options for reading and splitting a data set (see the module docstring)."""

    delimiter: str | None = None
    dropna: bool = False
    label_column: str | None = None
    split: str | None = None
    purge: int | None = None

    def __post_init__(self) -> None:
        if self.delimiter is not None and (not isinstance(self.delimiter, str)
                                           or len(self.delimiter) != 1
                                           or self.delimiter in "\"\r\n"):
            raise ConfigError(f"--delimiter must be one character (',', ';', tab), got "
                              f"{self.delimiter!r}")
        if not isinstance(self.dropna, bool):
            raise ConfigError(f"dropna must be a bool, got {self.dropna!r}")
        if self.label_column is not None and (not isinstance(self.label_column, str)
                                              or not self.label_column.strip()):
            raise ConfigError(f"--label-column must be a column index or name, got "
                              f"{self.label_column!r}")
        if self.split is not None and self.split not in SPLITS:
            raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got "
                              f"{self.split!r}")
        if self.purge is not None and (isinstance(self.purge, bool)
                                       or not isinstance(self.purge, int) or self.purge < 0):
            raise ConfigError(f"--purge must be an integer >= 0, got {self.purge!r}")
        if self.purge is not None and self.split == "random":
            raise ConfigError("--purge applies to --split chronological only")

    @classmethod
    def from_user(cls, *, delimiter: str | None = None, dropna: bool = False,
                  label_column: str | None = None, split: str | None = None,
                  purge: int | None = None) -> LoadOptions:
        """From command-line text: ``--delimiter`` may be spelt ``tab``/``\\t``."""
        if delimiter is not None:
            delimiter = DELIMITERS.get(delimiter, delimiter)
        return cls(delimiter=delimiter, dropna=dropna, label_column=label_column,
                   split=split, purge=purge)

    @property
    def file_only(self) -> dict[str, Any]:
        """The options that only make sense for a file, with their non-default values."""
        return {k: v for k, v in (("delimiter", self.delimiter), ("dropna", self.dropna),
                                  ("label_column", self.label_column)) if v}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, every field (a checkpoint's record)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any] | None) -> LoadOptions:
        """The inverse of :meth:`to_dict`; unknown keys are a ConfigError."""
        record = dict(record or {})
        unknown = set(record) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown data options {sorted(unknown)}")
        return cls(**record)
