"""Atomic file output: a result is either absent or complete, never half-written."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into
    place (``os.replace`` is atomic on POSIX), so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
    return atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: Any) -> Path:
    """Save a numpy array as ``.npy`` atomically (np.save on a path would append .npy to
    the temporary name, so it writes through a handle)."""
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array)
    return atomic_write(path, write)


def check_writable_file(path: str | os.PathLike, what: str = "output") -> Path:
    """Refuse, before any compute, an output path that cannot become a file: an existing
    directory, or a parent that is (or sits under) a regular file or is not writable."""
    from fdbench.errors import FdbenchError

    path = Path(path)
    if path.is_dir():
        raise FdbenchError(f"{what} {path} is a directory, not a file")
    _check_nearest_ancestor(path, path.parent, what, verb="write")
    return path


def check_writable_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Refuse, before any compute, a path that cannot become (or be written as) a
    directory: an existing regular file, a path through a regular file, or a nearest
    existing ancestor that is not writable."""
    from fdbench.errors import FdbenchError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FdbenchError(f"{what} {path} is a file, not a directory")
    _check_nearest_ancestor(path, path, what, verb="create")
    return path


def _check_nearest_ancestor(path: Path, start: Path, what: str, *, verb: str) -> None:
    """The nearest existing ancestor of ``start`` must be a writable directory."""
    from fdbench.errors import FdbenchError

    ancestor = start
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise FdbenchError(f"cannot {verb} {what} {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise FdbenchError(f"cannot write {what} {path}: {ancestor} is not writable")
