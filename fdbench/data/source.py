"""Where a checkpoint's data came from, and getting exactly that data back.

``fdbench train`` stores ``meta["data_source"]`` in the checkpoint's ``config.json``
(:class:`fdbench.data.SeriesSplit.source`): for a file its absolute path, byte count and
sha256 content hash, for a registered set its name; both with the loader options
(:class:`fdbench.data.options.LoadOptions`), split seed and test fraction.
:func:`dataset_for_checkpoint` rebuilds the same train/test split from that record, so
``bench``, ``run --checkpoint`` and ``tune`` score a model of the user's own data against
its own held-out series; a file that was moved or changed since is one clear error naming
the path and both hashes, never a silent other split."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from fdbench.errors import InputError

HASH_PREFIX = 16  # hex digits shown in messages (the record keeps all 64)


class DataSourceError(InputError):
    """The data a checkpoint records cannot be had back as recorded."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of the file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | os.PathLike) -> dict[str, Any]:
    """{"kind": "file", "path" (absolute), "bytes", "sha256"} of an existing file."""
    path = Path(path).resolve()
    return {"kind": "file", "path": str(path), "bytes": path.stat().st_size,
            "sha256": sha256_file(path)}


def check_file_record(record: dict[str, Any]) -> Path:
    """The recorded file's path, after checking it exists with the recorded hash."""
    path, recorded = Path(str(record.get("path"))), str(record.get("sha256"))
    if not path.is_file():
        raise DataSourceError(
            f"the checkpoint's data file {path} (sha256 {recorded[:HASH_PREFIX]}...) is "
            "missing: it was moved or deleted since training; put it back, or pass the "
            "file with --data where the command takes one")
    actual = sha256_file(path)
    if actual != recorded:
        raise DataSourceError(
            f"the checkpoint's data file {path} changed since training: sha256 "
            f"{actual[:HASH_PREFIX]}... now, {recorded[:HASH_PREFIX]}... recorded; "
            "restore the file the model was trained on, or retrain")
    return path


def checkpoint_meta(directory: Path) -> dict[str, Any]:
    """``meta`` of a checkpoint's ``config.json``, read as plain JSON (no weights)."""
    import json

    path = directory / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataSourceError(f"cannot read the checkpoint config {path}: {err}") from None
    meta = config.get("meta") if isinstance(config, dict) else None
    if not isinstance(meta, dict):
        raise DataSourceError(f"{path} has no meta record of its data")
    return meta


def dataset_for_checkpoint(meta: dict[str, Any]) -> Any:
    """The :class:`fdbench.data.SeriesSplit` a checkpoint was trained on, from its
    ``meta`` (``load_checkpoint(...).meta`` or ``read_config(...)["meta"]``).

    Order: the ``data_source`` record (file: path and hash checked first); else a
    registered name in ``meta["data"]`` with ``meta["data_seed"]`` (checkpoints older
    than the record). Raises :class:`DataSourceError` when neither gives the data,
    saying what to do: re-import a FourierDiffusion model with ``--data``, or give the
    file of an old checkpoint that recorded only its stem."""
    from fdbench.data import DATASETS, load_dataset
    from fdbench.data.options import LoadOptions

    record = meta.get("data_source")
    if isinstance(record, dict) and record:
        options = LoadOptions.from_dict(record.get("options"))
        seed = int(record.get("seed", meta.get("data_seed", 0)))
        fraction = float(record.get("test_fraction", 0.2))
        if record.get("kind") == "file":
            path = check_file_record(record)
            return load_dataset(str(path), seed=seed, test_fraction=fraction,
                                options=options)
        if record.get("kind") == "registered":
            return load_dataset(str(record.get("name")), seed=seed, test_fraction=fraction,
                                options=options)
        raise DataSourceError(f"the checkpoint's data_source has unknown kind "
                              f"{record.get('kind')!r}")
    name = meta.get("data")
    if not name:
        if meta.get("source") == "FourierDiffusion":
            raise DataSourceError(
                "the checkpoint was imported from FourierDiffusion without --data, so "
                "there are no held-out series to score samples against; re-import it: "
                "fdbench import-fd CKPT --out DIR --data NAME_OR_FILE")
        raise DataSourceError("the checkpoint does not say which data it was trained on "
                              "(no meta.data_source or meta.data)")
    if name in DATASETS:
        return load_dataset(str(name), seed=int(meta.get("data_seed", 0)))
    raise DataSourceError(
        f"the checkpoint records its data as {name!r}, which is not a registered data set, "
        "and no data file (checkpoints trained before fdbench recorded data_source kept "
        "only the file's stem); pass the file with --data where the command takes one, "
        "or retrain")
