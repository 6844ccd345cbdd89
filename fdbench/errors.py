"""User-facing errors. The CLI turns any of these into one line and exit code 2."""

from __future__ import annotations


class FdbenchError(Exception):
    """Base class for problems caused by the user's input, files or configuration."""


class InputError(FdbenchError, ValueError):
    """Bad data: NaN/Inf, wrong rank or shape, too few time steps or channels."""


class ConfigError(FdbenchError, ValueError):
    """A configuration value outside its allowed range (the message names the field)."""


class CheckpointError(FdbenchError):
    """A checkpoint that is missing, corrupt or incompatible."""


class UsageError(FdbenchError):
    """A command line argparse refused (unknown option, bad value, missing argument)."""
