"""Exact arithmetic in Z[omega], omega a primitive N-th root of unity, as Z[x] / (Phi_N(x)).

Z[x]/(Phi_N) is isomorphic to Z[omega] (Phi_N is the minimal polynomial of omega over Q
and is monic with integer coefficients), so an integer polynomial in omega is zero iff
its remainder mod Phi_N is the zero polynomial. Complex conjugation is the automorphism
x -> x^-1 = x^(N-1). Everything here uses python ints or numpy int64 (the coefficients
stay small for the N we use), never floats and never ``sympy.simplify`` (which gives
false negatives on these sums: docs/METHOD.md §3, "Symbolic checks").
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache

import numpy as np


def poly_divmod(num: list[int], den: list[int]) -> tuple[list[int], list[int]]:
    """Exact division of integer polynomials (coefficient lists, lowest degree first) by
    a monic ``den``: (quotient, remainder)."""
    if not den or den[-1] != 1:
        raise ValueError(f"divisor must be monic with integer coefficients, got {den}")
    rem = list(num)
    deg = len(den) - 1
    quot = [0] * max(1, len(rem) - deg)
    for i in range(len(rem) - 1, deg - 1, -1):
        c = rem[i]
        if c:
            quot[i - deg] = c
            for j, d in enumerate(den):
                rem[i - deg + j] -= c * d
    rem = rem[:deg] if deg else []
    return quot, rem


@cache
def cyclotomic(n: int) -> tuple[int, ...]:
    """Coefficients (lowest first) of the n-th cyclotomic polynomial,
    Phi_n = (x^n - 1) / prod_{d | n, d < n} Phi_d."""
    if n < 1:
        raise ValueError(f"cyclotomic polynomial needs n >= 1, got {n}")
    poly = [-1] + [0] * (n - 1) + [1]
    for d in range(1, n):
        if n % d == 0:
            poly, rem = poly_divmod(poly, list(cyclotomic(d)))
            if any(rem):
                raise ArithmeticError(f"Phi_{d} does not divide x^{n} - 1")  # cannot happen
    while len(poly) > 1 and poly[-1] == 0:
        poly.pop()
    return tuple(poly)


def reduce_rows(coeffs: np.ndarray, modulus: tuple[int, ...]) -> np.ndarray:
    """Remainders mod the monic ``modulus`` of many integer polynomials at once: ``coeffs``
    (rows, degree+1) int64, lowest degree first -> (rows, deg(modulus)). Exact as long as
    no coefficient overflows int64 (checked)."""
    rem = np.array(coeffs, dtype=np.int64, copy=True)
    mod = np.asarray(modulus, dtype=np.int64)
    deg = len(mod) - 1
    for i in range(rem.shape[1] - 1, deg - 1, -1):
        lead = rem[:, i].copy()                                # (rows,)
        rem[:, i - deg:i + 1] -= lead[:, None] * mod[None, :]
    if np.abs(rem).max(initial=0) > 2**62:
        raise OverflowError("coefficients too large for exact int64 reduction")
    return rem[:, :deg]


def gram_polynomials(n: int, *, root_power: int = 1, modulus_order: int | None = None
                     ) -> np.ndarray:
    """Entries of F F* for the DFT matrix F_jt = w^(j t), w = omega^root_power, as integer
    polynomials in omega reduced mod Phi_{modulus_order} (default N): row d holds
    sum_{t<N} w^(d t), which is (F F*)_jk for every (j, k) with j - k = d mod N (F_jt
    conj(F_kt) = w^((j-k) t), conjugation being x -> x^-1). Shape (N, phi(N))."""
    order = n if modulus_order is None else modulus_order
    d = np.arange(n)[:, None]
    t = np.arange(n)[None, :]
    exponents = (root_power * d * t) % n                      # (N, N): w^(d t) = x^e
    counts = np.zeros((n, n), dtype=np.int64)                 # (d, exponent) multiplicity
    np.add.at(counts, (np.repeat(np.arange(n), n), exponents.ravel()), 1)
    # x^N = 1 holds in Z[x]/Phi_N; with another modulus x^e stays x^e (exponents < N)
    return reduce_rows(counts, cyclotomic(order))


def dft_unitarity_exact(n: int, *, scale2: Fraction | None = None, root_power: int = 1,
                        modulus_order: int | None = None) -> tuple[bool, int]:
    """Decide U U* = I exactly for U = sqrt(scale2) F (scale2 = 1/N: the unitary DFT).

    (U U*)_jk = scale2 * G_{(j-k) mod N} with G_d the reduced polynomial of
    ``gram_polynomials``; identity iff scale2 * G_0 == 1 (constant) and G_d == 0 for d != 0.
    Returns (is_identity, number of the N difference classes d that fail)."""
    scale2 = Fraction(1, n) if scale2 is None else scale2
    gram = gram_polynomials(n, root_power=root_power, modulus_order=modulus_order)
    failures = 0
    for d in range(n):
        row = [scale2 * int(c) for c in gram[d]]
        expected = [Fraction(int(d == 0))] + [Fraction(0)] * (len(row) - 1)
        failures += row != expected
    return failures == 0, failures
