"""A.4: the DFT with norm="ortho" is unitary, U U* = I.

Decided twice: exactly, by integer arithmetic in Z[omega] = Z[x]/(Phi_N) for concrete N
(``proofs_check.cyclotomic``), and in float64 for ``torch.fft.fft(norm=...)`` itself."""

from __future__ import annotations

from fractions import Fraction

import torch

from proofs_check.cyclotomic import dft_unitarity_exact
from proofs_check.registry import ClaimResult, Context, decide, decided_fields, register

EXACT_N = (3, 5, 6, 7, 8, 187)
# the squared scale of each torch.fft norm: U = scale * F, so U U* = scale^2 F F*
NORM_SCALE2 = {"ortho": lambda n: Fraction(1, n), "backward": lambda n: Fraction(1),
               "forward": lambda n: Fraction(1, n * n)}
FLOAT_REL_TOL = 10.0  # x N x float64 eps: a length-N dot product's rounding bound, x10


def dft_matrix(n: int, norm: str) -> torch.Tensor:
    """U as torch.fft.fft computes it: the transform of the identity's columns."""
    return torch.fft.fft(torch.eye(n, dtype=torch.complex128), dim=0, norm=norm)


@register("A.4", "DFT unitarity (exact in Z[x]/Phi_N, float for torch.fft)")
def check(ctx: Context, *, norm: str = "ortho", root_power: int = 1,
          perturbation: float = 0.0) -> ClaimResult:
    """Faults: ``norm`` ("backward"/"forward": a non-unitary scaling), ``root_power``
    (omega^r, non-primitive when gcd(r, N) > 1), ``perturbation`` (added to U[0, 1])."""
    if norm not in NORM_SCALE2:
        raise ValueError(f"norm must be one of {sorted(NORM_SCALE2)}, got {norm!r}")
    exact_failures = {}
    for n in EXACT_N:
        _, failures = dft_unitarity_exact(n, scale2=NORM_SCALE2[norm](n), root_power=root_power)
        exact_failures[n] = failures
    float_n = ctx.pick((8, 64, 187), (8, 64, 187, 256, 1000))
    float_dev, float_tol = {}, {}
    for n in float_n:
        u = dft_matrix(n, norm)
        u[0, 1] += perturbation
        gram = u @ u.conj().T
        float_dev[n] = float((gram - torch.eye(n, dtype=gram.dtype)).abs().max())
        float_tol[n] = FLOAT_REL_TOL * n * torch.finfo(torch.float64).eps
    exact_ok = all(f == 0 for f in exact_failures.values())
    float_ok = all(float_dev[n] <= float_tol[n] for n in float_n)
    worst = max(float_n, key=lambda n: float_dev[n] / float_tol[n])
    numbers = {"exact_N_proved": float(sum(f == 0 for f in exact_failures.values())),
               "exact_N_tried": float(len(EXACT_N)),
               "max_float_dev": max(float_dev.values()),
               **{f"exact_fail_classes_N{n}": float(f) for n, f in exact_failures.items()},
               **{f"float_dev_N{n}": v for n, v in float_dev.items()}}
    exact_name = "exact (Z[x]/Phi_N, N in " + ",".join(map(str, EXACT_N)) + ")"
    float_name = f"float torch.fft norm={norm!r}"
    readings = {exact_name: "holds" if exact_ok else "violated",
                float_name: "holds" if float_ok else "violated"}
    values = {exact_name: (float(sum(exact_failures.values())), 0.0),
              float_name: (float_dev[worst], float_tol[worst])}
    verdict, decided = decide(readings, values, [exact_name, float_name])
    return ClaimResult(
        "A.4", "DFT unitary: U U* = I", verdict,
        numbers,
        tolerance=("exact part: equality of reduced integer polynomials (no tolerance); "
                   f"float part: max |U U* - I| <= {FLOAT_REL_TOL:g} N eps64 (rounding of a "
                   "length-N complex dot product is <= ~N eps; x10 margin)"),
        **decided_fields(readings, values, decided),
        settings=f"exact N in {list(EXACT_N)}; float N in {list(float_n)}",
        note=(f"norm={norm}, root_power={root_power}, perturbation={perturbation}; "
              "exact: (U U*)_jk = N^-1 sum_t omega^((j-k)t) reduced mod Phi_N"),
        series={"float_dev": [float_dev[n] for n in float_n],
                "float_N": [float(n) for n in float_n]})
