"""The algebraic and distributional appendix checks (A.1, A.2, A.4, A.6, A.8, P3.1, P3.2,
mem): each gives its expected verdict in quick mode on the correct code, and a planted
fault flips it. Plus the exact cyclotomic arithmetic behind A.4."""

from __future__ import annotations

import cmath
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fdbench.spectral import chart, chart_lambda
from proofs_check import (
    claim_a01_energy,
    claim_a02_mirror,
    claim_a04_unitary,
    claim_a06_mirrored_bm,
    claim_a08_cache_size,
    claim_mem,
    claim_obs_findings,
    claim_p31_lambda_sde,
    claim_p32_score_matching,
)
from proofs_check.cyclotomic import (
    cyclotomic,
    dft_unitarity_exact,
    gram_polynomials,
    poly_divmod,
    reduce_rows,
)
from proofs_check.registry import CHECKS, ClaimResult, Context, decide


@pytest.fixture(scope="module")
def ctx() -> Context:
    return Context(quick=True)


def _valid(result: ClaimResult) -> ClaimResult:
    assert result.numbers and all(isinstance(v, float) for v in result.numbers.values())
    assert result.tolerance
    return result


# --- cyclotomic arithmetic ---------------------------------------------------------

@given(st.integers(min_value=1, max_value=60))
@settings(max_examples=25)
def test_cyclotomic_vanishes_exactly_at_primitive_roots(n: int) -> None:
    """Phi_n(e^{2 pi i k/n}) = 0 iff gcd(k, n) = 1; deg Phi_n = Euler phi(n)."""
    coeffs = cyclotomic(n)
    primitive = [k for k in range(n) if np.gcd(k, n) == 1]
    assert len(coeffs) - 1 == len(primitive)
    for k in range(n):
        root = cmath.exp(2j * cmath.pi * k / n)
        value = sum(c * root**e for e, c in enumerate(coeffs))
        assert (abs(value) < 1e-6 * max(1, n)) == (k in primitive)


def test_cyclotomic_product_is_x_n_minus_1() -> None:
    """prod_{d | 12} Phi_d = x^12 - 1, and known coefficients of Phi_105 (a 2 appears)."""
    poly = [1]
    for d in (1, 2, 3, 4, 6, 12):
        poly = list(np.convolve(poly, cyclotomic(d)))
    assert [int(c) for c in poly] == [-1] + [0] * 11 + [1]
    assert min(cyclotomic(105)) == -2


def test_reduction_is_polynomial_remainder() -> None:
    """reduce_rows agrees with the scalar division, and x^N = 1 mod Phi_N."""
    phi = cyclotomic(12)
    rows = np.array([[3, -1, 4, 1, -5, 9, 2, -6, 5, 3, 5, 8]], dtype=np.int64)
    assert list(reduce_rows(rows, phi)[0]) == poly_divmod(list(rows[0]), list(phi))[1]
    x_pow_n = np.zeros((1, 13), dtype=np.int64)
    x_pow_n[0, 12] = 1
    assert list(reduce_rows(x_pow_n, phi)[0]) == [1, 0, 0, 0]


def test_exact_unitarity_and_wrong_roots_fail() -> None:
    for n in (3, 5, 6, 7, 8, 187):
        assert dft_unitarity_exact(n) == (True, 0)
    # a non-primitive root of unity (omega^2 with N even) is not a DFT: fails
    ok, failures = dft_unitarity_exact(8, root_power=2)
    assert not ok and failures >= 1
    # reducing modulo the wrong cyclotomic polynomial (omega of order 2N) fails
    assert not dft_unitarity_exact(6, modulus_order=12)[0]
    # a primitive root other than omega is fine (Galois conjugate)
    assert dft_unitarity_exact(7, root_power=3)[0]
    # the unnormalised DFT is not unitary
    assert not dft_unitarity_exact(5, scale2=Fraction(1))[0]
    # the zero-difference class is the constant N
    assert list(gram_polynomials(7)[0]) == [7, 0, 0, 0, 0, 0]


# --- the checks: expected verdict, and a planted fault flips it ---------------------

def test_all_algebraic_checks_registered() -> None:
    """Importing the modules registers them (load_all imports every claim_* module)."""
    ids = {"A.1", "A.2", "A.4", "A.6", "A.8", "P3.1", "P3.2", "mem"}
    assert ids <= set(CHECKS)
    assert all(CHECKS[i].fn.__module__.startswith("proofs_check.claim_") for i in ids)
    assert not any(CHECKS[i].needs_model for i in ids - {"A.8"})


def test_a01_energy(ctx: Context) -> None:
    result = _valid(claim_a01_energy.check(ctx))
    assert result.verdict == "violated"                      # the proof's Parseval step
    readings = list(result.readings.values())
    assert readings == ["violated", "holds", "holds"]
    # the row shows the deciding reading's own numbers, and (*) is an identity
    assert result.decided_by.startswith("identity as written")
    assert (result.measured, result.bound) == result.reading_values[result.decided_by]
    assert result.measured > 0.3 and result.bound < 1e-9
    assert result.identities == ("corrected half-spectrum identity (*)",)
    assert 1.3 < result.numbers["ecg_paper_factor_mean"] < 2.0
    assert 1.9 < result.numbers["sines_paper_factor_mean"] <= 2.0
    assert result.numbers["max_rel_dev_identity"] < 1e-12
    # summing the full spectrum makes the paper's step right; a wrong norm breaks (*)
    assert list(claim_a01_energy.check(ctx, spectrum="full").readings.values())[:2] == \
        ["holds", "violated"]
    assert list(claim_a01_energy.check(ctx, norm="backward").readings.values())[1] == \
        "violated"


def test_a02_mirror(ctx: Context) -> None:
    assert _valid(claim_a02_mirror.check(ctx)).verdict == "holds"

    def conjugated_chart(x: torch.Tensor) -> torch.Tensor:   # Im parts with a wrong sign
        n = x.shape[-2]
        sign = torch.ones(n, dtype=x.dtype)
        sign[n // 2 + 1:] = -1
        return chart(x) * sign[:, None]

    def twisted_fft(x: torch.Tensor) -> torch.Tensor:        # DFT of a complex series
        phase = torch.exp(1j * torch.arange(x.shape[-2], dtype=torch.float64))
        return torch.fft.fft(x * phase[:, None], dim=-2, norm="ortho")

    assert claim_a02_mirror.check(ctx, chart_fn=conjugated_chart).verdict == "violated"
    assert claim_a02_mirror.check(ctx, spectrum_fn=twisted_fft).verdict == "violated"


def test_a04_unitary(ctx: Context) -> None:
    result = _valid(claim_a04_unitary.check(ctx))
    assert result.verdict == "holds" and result.numbers["exact_N_proved"] == 6
    assert claim_a04_unitary.check(ctx, norm="backward").verdict == "violated"
    assert claim_a04_unitary.check(ctx, root_power=2).verdict == "violated"
    assert claim_a04_unitary.check(ctx, perturbation=1e-9).verdict == "violated"


def test_a06_mirrored_bm(ctx: Context) -> None:
    result = _valid(claim_a06_mirrored_bm.check(ctx))
    assert result.verdict == "holds"
    assert 0.8 < result.numbers["rms_z"] < 1.2                 # the standard error is right

    def unscaled_chart(x: torch.Tensor) -> torch.Tensor:     # no 1/sqrt(2) on paired bins
        return chart(x) / chart_lambda(x.shape[-2], dtype=x.dtype)[:, None]

    assert claim_a06_mirrored_bm.check(ctx, chart_fn=unscaled_chart).verdict == "violated"


def test_a08_cache_size(ctx: Context) -> None:
    """Decided on the shipped model at the paper's settings and at the operating point,
    from per-sample planned token counts of runs that do reuse tokens."""
    result = _valid(claim_a08_cache_size.check(ctx))
    n, bound = result.numbers["N"], result.numbers["bound_floor_N2_plus_1"]
    assert bound == n // 2 + 1
    assert result.numbers["K_plus_1_paper"] == n // 10 + 1
    for tag in ("paper", "op"):
        assert result.numbers[f"tokens_held_{tag}"] <= bound
        assert result.numbers[f"cached_steps_{tag}"] > 0
        # the cache is exercised: fewer tokens planned than the whole spectrum
        assert result.numbers[f"mean_planned_tokens_{tag}"] < bound
    assert result.verdict == "violated"                       # N_eff > K+1
    assert result.decided_by.startswith("N_eff") and "paper settings" in result.decided_by
    assert result.measured > result.bound + 0.5
    # a policy computing only the low band meets N_eff = K+1 (the fault in the policy
    # flips the verdict); a chart-layout network's caches break the size bound
    low_band_only = {"tau_0": 1e12, "use_probes": False, "use_event": False}
    flipped = claim_a08_cache_size.check(ctx, policy_changes=low_band_only)
    assert flipped.verdict == "holds"
    assert abs(flipped.numbers["mean_planned_tokens_paper"]
               - flipped.numbers["K_plus_1_paper"]) < 1e-3
    chart = claim_a08_cache_size.check(ctx, layout="chart", policy_changes=low_band_only)
    assert chart.verdict == "violated" and "chart layout" in chart.decided_by
    assert chart.measured == n


def test_energy_observation_wrong_chart_flips(ctx: Context) -> None:
    """On the shipped model's data: most energy at k <= N/10; counted over time positions
    (a wrong chart in the computation) it is not."""
    assert claim_obs_findings.energy(ctx).verdict == "holds"
    assert claim_obs_findings.energy(ctx, wrong_chart=True).verdict == "violated"


def test_decide_skips_identities_and_result_checks_decider() -> None:
    readings = {"identity": "violated", "a": "holds", "b": "violated"}
    values = {name: (1.0, 2.0) for name in readings}
    assert decide(readings, values, ["identity", "a", "b"], ("identity",)) == ("violated", "b")
    assert decide({"a": "holds"}, {}, ["a"]) == ("holds", "a")
    with pytest.raises(ValueError, match="identity"):
        ClaimResult("X", "x", "holds", {}, "t", readings={"i": "holds", "e": "holds"},
                    identities=("i",), decided_by="i")
    with pytest.raises(ValueError, match="decided_by"):
        ClaimResult("X", "x", "holds", {}, "t", readings={"e": "holds"}, decided_by="z")


def test_table_shows_decider_settings_and_identities() -> None:
    from proofs_check.__main__ import format_table

    result = ClaimResult("X", "x", "violated", {}, "t", measured=3.0, bound=2.0,
                         readings={"i": "holds", "e": "violated"}, identities=("i",),
                         reading_values={"e": (3.0, 2.0)}, decided_by="e",
                         settings="quick; K=18")
    row = format_table([result]).splitlines()[-1]
    assert "| e | 3 | 2 | 1.5 | quick; K=18 |" in row
    assert "i: identity, holds" in row and "e: violated 3 vs 2" in row


def test_p31_lambda_sde(ctx: Context) -> None:
    """VP and VE, one channel and two correlated ones: each reading holds with Lambda^2
    in the sampler, and each is violated by a sampler without it."""
    result = _valid(claim_p31_lambda_sde.check(ctx))
    assert result.verdict == "holds"
    assert {name.split(":")[0] for name in result.readings} == {
        "VP, M = 1", "VE, M = 1", "VP, M = 2", "VE, M = 2"}
    assert set(result.readings.values()) == {"holds"}
    faulty = claim_p31_lambda_sde.check(ctx, sampler_lam="none")
    assert set(faulty.readings.values()) == {"violated"}


def test_p31_em_covariance_is_the_chain_covariance() -> None:
    """The exact recursion the tolerance uses agrees with a direct Monte-Carlo of the
    same chain (VE, M = 2), and C0 is the Kronecker chart covariance."""
    from fdbench.sde import VESDE

    n, m = 4, 2
    c0 = claim_p31_lambda_sde.chart_covariance(n, m)
    q = claim_p31_lambda_sde.chart_matrix(n)
    assert torch.allclose(c0[::m, ::m], q @ claim_p31_lambda_sde.gaussian_covariance(n) @ q.T)
    assert torch.allclose(c0[0, 1], torch.tensor(claim_p31_lambda_sde.CHANNEL_CORR,
                                                 dtype=torch.float64) * c0[0, 0])
    sde = VESDE(sigma_min=0.01, sigma_max=5.0)
    out = claim_p31_lambda_sde.sample_and_score(sde, n, m, 20000, 30, 0, "model")
    assert out["excess"] <= 1.0 and out["em_bias_rel"] > 0.01      # coarse grid: real bias


def test_p32_score_matching(ctx: Context) -> None:
    result = _valid(claim_p32_score_matching.check(ctx))
    assert result.verdict == "holds" and result.numbers["max_rel_gap"] < 1e-12
    assert result.numbers["dsm_loss_reimplementation_gap"] < 1e-12
    assert 1.5 < result.numbers["code_loss_over_weighted_mean"] < 2.0
    assert claim_p32_score_matching.check(ctx, weighting="none").verdict == "violated"


def test_mem(ctx: Context) -> None:
    result = _valid(claim_mem.check(ctx))
    assert result.verdict == "violated"
    assert result.numbers["e2crf_exp_B"] == pytest.approx(1.0, abs=0.05)
    assert result.numbers["e2crf_exp_N"] > 0.8
    assert "e2crf_exp_T" in result.numbers and "none_exp_L" not in result.numbers
    # an engine that frees its stores (a fault in the computation) has O(1) overhead
    assert claim_mem.check(ctx, policies=("e2crf",)).verdict == "violated"
    assert claim_mem.check(ctx, policies=("e2crf",), drop_store=True).verdict == "holds"


def test_dof_tokens_halve_but_real_dimension_does_not(ctx: Context) -> None:
    from proofs_check import claim_dof

    result = _valid(claim_dof.check(ctx))
    assert result.verdict == "violated" and result.decided_by.startswith("real degrees")
    assert all(result.numbers[f"dof_N{n}"] == n for n in (16, 17, 187))
    assert result.readings["token count floor(N/2)+1 <= N/2 + 1"] == "holds"
    # a chart that drops the imaginary parts (the planted fault) does halve it
    assert claim_dof.check(ctx, drop_imag=True).verdict == "holds"
