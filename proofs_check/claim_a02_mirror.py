"""A.2: mirror symmetry c_k = conj(c_{N-k}) of the DFT of a real series, and what it buys:
the half spectrum (the chart, the bins tokens) determines the whole spectrum.

Two measurements on random real inputs (odd and even N, float64): (a) the symmetry of
the full DFT itself; (b) the full spectrum rebuilt from the chart by mirroring
(c_{N-k} := conj c_k) against the full DFT, which is what lets the model drop half of the
bins. Token counts per layout come from ``ModelConfig.n_tokens``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fdbench.model import ModelConfig
from fdbench.spectral import chart, chart_to_spectrum
from proofs_check.registry import ClaimResult, Context, decide, register

REL_TOL = 100.0  # x float64 eps x log2-ish FFT depth margin: see ``tolerance`` below


def ortho_fft(x: Tensor) -> Tensor:
    """Full unitary DFT along time of (B, N, M)."""
    return torch.fft.fft(x, dim=-2, norm="ortho")


def mirror_deviation(spectrum: Tensor) -> Tensor:
    """max_k |c_k - conj c_{N-k}| per sample, k = 1..N-1 (c_0 must be real: k = 0 too)."""
    n = spectrum.shape[-2]
    mirrored = spectrum[..., (-torch.arange(n)) % n, :].conj()
    return (spectrum - mirrored).abs().amax(dim=(-2, -1))


def spectrum_from_chart(phi: Tensor) -> Tensor:
    """Full spectrum (B, N, M) from the chart: the half spectrum plus its mirror image."""
    n = phi.shape[-2]
    half = chart_to_spectrum(phi)                              # (B, N//2+1, M)
    upper = half[..., 1:(n + 1) // 2, :].conj().flip(-2)       # c_{N-k} = conj c_k
    return torch.cat([half, upper], dim=-2)


def token_counts(n: int) -> dict[str, int]:
    return {layout: ModelConfig(n_steps=n, n_channels=1, layout=layout).n_tokens
            for layout in ("time", "chart", "bins")}


@register("A.2", "mirror symmetry c_k = conj c_{N-k}; token counts per layout")
def check(ctx: Context, *, spectrum_fn: Callable[[Tensor], Tensor] = ortho_fft,
          chart_fn: Callable[[Tensor], Tensor] = chart) -> ClaimResult:
    """Faults: ``spectrum_fn`` (a transform that is not the DFT of a real series) and
    ``chart_fn`` (a chart that breaks conjugate symmetry)."""
    sizes = ctx.pick((2, 3, 7, 8, 16, 187), (2, 3, 7, 8, 16, 17, 100, 101, 187, 256, 1000))
    batch = ctx.pick(16, 64)
    generator = torch.Generator().manual_seed(ctx.seed)
    direct, rebuilt, tol = {}, {}, {}
    for n in sizes:
        x = torch.randn(batch, n, 2, generator=generator, dtype=torch.float64)
        scale = x.square().sum(dim=(-2, -1)).sqrt()            # ||x|| = ||c|| (Parseval)
        full = spectrum_fn(x)
        direct[n] = float((mirror_deviation(full) / scale).max())
        rebuilt[n] = float(((spectrum_from_chart(chart_fn(x)) - ortho_fft(x)).abs()
                            .amax(dim=(-2, -1)) / scale).max())
        tol[n] = REL_TOL * torch.finfo(torch.float64).eps * max(1, n.bit_length())
    ok_direct = all(direct[n] <= tol[n] for n in sizes)
    ok_rebuilt = all(rebuilt[n] <= tol[n] for n in sizes)
    counts = {n: token_counts(n) for n in sizes}
    counts_ok = all(c["time"] == n and c["chart"] == n and c["bins"] == n // 2 + 1
                    for n, c in counts.items())
    worst = max(sizes, key=lambda n: max(direct[n], rebuilt[n]) / tol[n])
    sym, rebuild, count_name = ("symmetry of the DFT",
                                "half spectrum (chart) determines the spectrum",
                                "token counts time N / chart N / bins floor(N/2)+1")
    readings = {sym: "holds" if ok_direct else "violated",
                rebuild: "holds" if ok_rebuilt else "violated",
                count_name: "holds" if counts_ok else "violated"}
    values = {sym: (direct[worst], tol[worst]), rebuild: (rebuilt[worst], tol[worst])}
    verdict, decided = decide(readings, values, [sym, rebuild, count_name])
    return ClaimResult(
        "A.2", "c_k = conj c_{N-k} for real x; bins need floor(N/2)+1 tokens", verdict,
        {"max_rel_dev_dft": max(direct.values()),
         "max_rel_dev_chart_rebuild": max(rebuilt.values()),
         "tokens_time_N187": float(token_counts(187)["time"]),
         "tokens_bins_N187": float(token_counts(187)["bins"]),
         "token_layouts_match_formulas": float(counts_ok)},
        tolerance=(f"relative deviation (to ||x||) <= {REL_TOL:g} eps64 log2(N): an FFT's "
                   "rounding error grows like eps log2 N; x100 margin, still ~1e12 below "
                   "any real asymmetry"),
        measured=values.get(decided, (None, None))[0],
        bound=values.get(decided, (None, None))[1], readings=readings,
        reading_values=values, decided_by=decided, settings=f"N in {list(sizes)}",
        note=f"{batch} random real series (M=2, float64) per N in {list(sizes)}",
        series={"N": [float(n) for n in sizes],
                "rel_dev_dft": [direct[n] for n in sizes],
                "tokens_time": [float(counts[n]["time"]) for n in sizes],
                "tokens_chart": [float(counts[n]["chart"]) for n in sizes],
                "tokens_bins": [float(counts[n]["bins"]) for n in sizes]})
