"""``fdbench report``: Markdown + PNG figures + one self-contained HTML page from the JSON
results of ``fdbench bench``, ``bench --sweep``, ``proofs_check`` and ``fdbench run``."""

from fdbench.report.inputs import ReportInputs, load_inputs
from fdbench.report.render import render_report

__all__ = ["ReportInputs", "load_inputs", "render_report"]
