"""dof: "mirror symmetry halves the effective dimension" (E²-CRF Sec. 3.1).

The spectral tokens of a real series of length N are its floor(N/2)+1 half-spectrum bins
[Re c_k, Im c_k]: the *token count* is about halved. The effective dimension in real
degrees of freedom is the rank of the linear map x -> tokens (R^N -> R^(2 floor(N/2)+2)):
Im c_0 (and Im c_(N/2) for even N) is always 0, and the map is injective (the DFT is
invertible), so the rank is N, not N/2. The check computes that rank from the map's
matrix (applied to the standard basis) for several N.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fdbench.spectral import chart, chart_to_bins, n_bins
from proofs_check.registry import ClaimResult, Context, decide, decided_fields, register

# "halved": at most one real dimension (or token) above N/2
SLACK = 1.0


def token_map(n: int, *, drop_imag: bool = False) -> Tensor:
    """The matrix (N, 2 n_bins) of x -> spectral tokens for a one-channel series, in
    float64 (``drop_imag``: the planted wrong chart that keeps only Re c_k)."""
    basis = torch.eye(n, dtype=torch.float64)[:, :, None]               # (N, N, 1)
    tokens = chart_to_bins(chart(basis))                                 # (N, bins, 2)
    if drop_imag:
        tokens = torch.cat([tokens[..., :1], torch.zeros_like(tokens[..., 1:])], dim=-1)
    return tokens.reshape(n, -1)


def real_dof(n: int, *, drop_imag: bool = False) -> int:
    """Rank of x -> tokens: the real degrees of freedom the tokens carry."""
    return int(torch.linalg.matrix_rank(token_map(n, drop_imag=drop_imag)))


@register("dof", "mirror symmetry halves the effective dimension")
def check(ctx: Context, *, drop_imag: bool = False) -> ClaimResult:
    """``drop_imag`` plants a wrong chart (imaginary parts dropped), under which the
    tokens do carry only about N/2 real degrees of freedom."""
    sizes = ctx.pick((16, 17, 187), (8, 16, 17, 64, 101, 187, 1000))
    dof = {n: real_dof(n, drop_imag=drop_imag) for n in sizes}
    excess_dof = max(dof[n] - n / 2 for n in sizes)
    excess_tokens = max(n_bins(n) - n / 2 for n in sizes)
    dims = "real degrees of freedom (rank of x -> tokens) <= N/2 + 1"
    tokens = "token count floor(N/2)+1 <= N/2 + 1"
    readings = {dims: "holds" if excess_dof <= SLACK else "violated",
                tokens: "holds" if excess_tokens <= SLACK else "violated"}
    worst = max(sizes, key=lambda n: dof[n] - n / 2)
    values = {dims: (float(dof[worst]), worst / 2 + SLACK),
              tokens: (float(n_bins(worst)), worst / 2 + SLACK)}
    verdict, decided = decide(readings, values, [dims, tokens])
    return ClaimResult(
        "dof", "mirror symmetry halves the effective dimension", verdict,
        {**{f"dof_N{n}": float(d) for n, d in dof.items()},
         **{f"tokens_N{n}": float(n_bins(n)) for n in sizes}},
        tolerance=(f"'halved' = at most N/2 + {SLACK:g}; the rank is exact (an integer "
                   "matrix rank of a float64 map with singular values 1 or 1/sqrt(2))"),
        **decided_fields(readings, values, decided),
        settings=f"N in {list(sizes)}, one channel" + ("; planted: Im dropped" if drop_imag
                                                       else ""),
        note="the token count halves; the real dimension does not (Im c_0 = 0 is the only "
             "structural saving)")
