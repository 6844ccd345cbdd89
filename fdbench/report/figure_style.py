"""What every report figure shares: the Agg backend, the ``Skip`` signal, distinct
series styles and metadata-free PNG writing (identical inputs give identical bytes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402

DPI = 100
VERDICT_COLOURS = {"holds": "C2", "violated": "C3", "vacuous": "C7"}


class Skip(Exception):
    """A figure whose inputs are absent; the message says which."""


def style(i: int) -> tuple[Any, str]:
    """Distinct colour and marker for series i (20 colours x 4 markers)."""
    return plt.get_cmap("tab20")(i % 20), "osD^"[(i // 20) % 4]


def save(fig: Any, path: Path) -> None:
    # no Software/Creation metadata: the PNG bytes depend on the pixels only
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
