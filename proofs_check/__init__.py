"""Executable checks of the E²-CRF paper's appendix claims (Liu et al. 2026, App. A;
docs/METHOD.md §3), one module per claim.

Each module registers one :class:`~proofs_check.registry.Check`: a function of a
:class:`~proofs_check.registry.Context` that measures the claim's quantities and returns a
:class:`~proofs_check.registry.ClaimResult` whose verdict (holds / violated / vacuous) is
computed from the measurements and a stated tolerance, never typed in. Every check takes
keyword-only "fault" arguments (a different DFT norm, a sampler without Lambda^2, ...)
so the tests can plant a fault and watch the verdict flip.

``python -m proofs_check [--quick] [--checkpoint DIR] [--json FILE]`` (also
``fdbench check``) runs them all and prints the table."""

from proofs_check.registry import (
    CHECKS,
    VERDICTS,
    Check,
    ClaimResult,
    Context,
    register,
    run_checks,
)

__all__ = ["CHECKS", "VERDICTS", "Check", "ClaimResult", "Context", "register",
           "run_checks"]
