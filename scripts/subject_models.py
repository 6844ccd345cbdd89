"""Markdown tables of the subject models' judges, from the JSON that `fdbench evaluate` and
`fdbench run` wrote (what docs/RESULTS.md, "Subject models", quotes).

    python scripts/subject_models.py NAME=PATH.json [NAME=PATH.json ...]

Each PATH is an `fdbench evaluate --json` file (its samples, real vs real and dummy rows
are shown) or an `fdbench run` results.json (its generated, cached, network_off, real vs
real and dummy rows). Rows are labelled NAME / row.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = (("discriminative", "discriminative_score", "discriminative_score_se", ".3f"),
           ("predictive", "predictive_score", "predictive_score_se", ".4f"),
           ("SW time", "sw_time", None, ".4f"), ("marginal W time", "marginal_w_time", None,
                                                  ".4f"),
           ("memorisation", "memorisation_ratio", None, ".3f"), ("ACD", "acd", None, ".3f"),
           ("MDD", "mdd", None, ".3f"), ("skew", "skewness_difference", None, ".3f"),
           ("kurt", "kurtosis_difference", None, ".3f"))


def _cell(row: dict, key: str, se_key: str | None, spec: str) -> str:
    value = row.get(key)
    if value is None:
        return "n/a"
    se = row.get(se_key) if se_key else None
    return f"{value:{spec}}" + ("" if se is None else f" +- {se:{spec}}")


def rows_of(path: Path) -> list[tuple[str, dict]]:
    payload = json.loads(path.read_text())
    if "judges" in payload and "generated" in payload["judges"]:      # fdbench run
        judges = payload["judges"]
        return [(key, judges[key]) for key in ("generated", "cached", "network_off",
                                               "real_vs_real", "dummy") if key in judges]
    return [("samples", payload), ("real vs real", payload["reference"]),
            ("dummy", payload["dummy"])]


def main(argv: list[str]) -> int:
    if not argv or any("=" not in a for a in argv):
        print(__doc__, file=sys.stderr)
        return 2
    lines = ["| set | n | " + " | ".join(c[0] for c in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for item in argv:
        name, _, path = item.partition("=")
        for label, row in rows_of(Path(path)):
            cells = [_cell(row, key, se, spec) for _, key, se, spec in COLUMNS]
            lines.append(f"| {name} / {label} | {row.get('n_samples', '?')} | "
                         + " | ".join(cells) + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
