"""Extra ``fdbench`` subcommands, one module each.

Every module here defines ``register(commands)`` that adds its subparser(s) to the
``fdbench`` argument parser (``commands`` is the object ``add_subparsers`` returned) and
sets ``handler`` on them; ``fdbench.cli`` discovers the modules, so a new command never
edits ``cli.py``. Keep imports of heavy modules inside the handlers: ``fdbench --help``
imports every module in this package."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def register_all(commands: Any) -> None:
    """Add every command module's subparsers, in alphabetical order of module name."""
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        importlib.import_module(f"{__name__}.{module}").register(commands)
