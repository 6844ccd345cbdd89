"""Tests for fdbench.quality: paired errors, bootstrap SEs, spectral errors, the summary.

Oracles are spelled out in the tests: per-sample loops for the paired errors, the
analytic standard error of a mean for the bootstrap, numpy's FFT for the spectra, and
exact scalings (a doubled amplitude multiplies every bin energy by exactly 4).
"""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest
import torch

import fdbench.quality as quality
from fdbench.errors import InputError
from fdbench.metrics import (
    frequency_sliced_wasserstein,
    marginal_wasserstein,
    sliced_wasserstein,
)
from fdbench.quality import (
    PairedSummary,
    bootstrap_metric,
    bootstrap_se,
    paired_relative_error,
    quality_summary,
    spectral_band_error,
    spectral_density_error,
    summarise_paired,
    trajectory_relative_error,
)
from fdbench.spectral import chart

TOL = 1e-12


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def test_doctests() -> None:
    result = doctest.testmod(quality, verbose=False)
    assert result.attempted >= 8 and result.failed == 0


# ---------------------------------------------------------------- paired errors


def test_paired_error_zero_for_identical_sets() -> None:
    r = _randn(5, 16, 2, seed=0)
    e = paired_relative_error(r.clone(), r)
    assert e.shape == (5,) and e.dtype == torch.float64
    assert torch.equal(e, torch.zeros(5, dtype=torch.float64))


def test_paired_error_scaled_candidate() -> None:
    """c = 1.1 r gives ||0.1 r|| / ||r|| = 0.1 for every sample, whatever r is."""
    r = _randn(6, 12, 3, seed=1)
    e = paired_relative_error(1.1 * r, r)
    torch.testing.assert_close(e, torch.full((6,), 0.1, dtype=torch.float64),
                               rtol=0, atol=TOL)


def test_paired_error_matches_per_sample_loop() -> None:
    c, r = _randn(4, 10, 2, seed=2), _randn(4, 10, 2, seed=3)
    expected = [math.sqrt(float(((c[b] - r[b]) ** 2).sum()) / float((r[b] ** 2).sum()))
                for b in range(4)]
    torch.testing.assert_close(paired_relative_error(c, r),
                               torch.tensor(expected, dtype=torch.float64),
                               rtol=1e-12, atol=0)


def test_paired_error_zero_reference_is_floored_not_nan() -> None:
    z = torch.zeros(2, 4, 1, dtype=torch.float64)
    assert torch.equal(paired_relative_error(z, z), torch.zeros(2, dtype=torch.float64))
    c = z.clone()
    c[1] += 1e-100
    e = paired_relative_error(c, z)
    assert e[0] == 0 and e[1] > 1.0 and not torch.isnan(e).any()


def test_trajectory_error_shape_and_values() -> None:
    """Step t scales sample b by (1 + (t + 1) (b + 1) / 10): the error at step t is the
    mean over b of (t + 1)(b + 1)/10, i.e. (t + 1) * mean(b + 1) / 10."""
    n_t, n_b = 5, 3
    r = _randn(n_t, n_b, 8, 2, seed=4)
    factor = 1 + torch.arange(1, n_t + 1, dtype=torch.float64)[:, None] \
        * torch.arange(1, n_b + 1, dtype=torch.float64)[None, :] / 10  # (T, B)
    c = r * factor[:, :, None, None]
    e = trajectory_relative_error(c, r)
    assert e.shape == (n_t,) and e.dtype == torch.float64
    expected = torch.arange(1, n_t + 1, dtype=torch.float64) * 2.0 / 10  # mean(1,2,3)=2
    torch.testing.assert_close(e, expected, rtol=0, atol=1e-12)
    # agrees with the per-step paired error
    for t in range(n_t):
        torch.testing.assert_close(e[t], paired_relative_error(c[t], r[t]).mean())


def test_trajectory_error_accepts_token_layout() -> None:
    r = _randn(3, 2, 5, 4, 6, seed=5)  # (T, B, extra, K, 2M): any trailing axes
    assert trajectory_relative_error(r, r).shape == (3,)


# ---------------------------------------------------------------- paired summary


def test_summarise_paired_by_hand() -> None:
    s = summarise_paired(torch.tensor([0.1, 0.2, 0.3, 0.6], dtype=torch.float64))
    # mean 0.3; median (0.2 + 0.3)/2; std^2 = (0.04 + 0.01 + 0 + 0.09)/3; se = std/2
    assert s.n == 4
    assert s.mean == pytest.approx(0.3, abs=TOL)
    assert s.median == pytest.approx(0.25, abs=TOL)
    assert s.max == pytest.approx(0.6, abs=TOL)
    assert s.se == pytest.approx(math.sqrt(0.14 / 3) / 2, abs=TOL)
    assert isinstance(s, PairedSummary)
    with pytest.raises(AttributeError):
        s.mean = 1.0  # type: ignore[misc]  # frozen


def test_summarise_paired_single_sample() -> None:
    s = summarise_paired(torch.tensor([0.5]))
    assert s.n == 1 and s.mean == s.median == s.max == 0.5 and math.isnan(s.se)
    d = s.to_dict()
    assert d == {"mean": 0.5, "median": 0.5, "max": 0.5, "se": None, "n": 1}
    json.dumps(d, allow_nan=False)


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_se_of_mean_matches_analytic() -> None:
    """For the mean of n iid N(0, 1) values, SE = 1/sqrt(n) = 0.05 at n = 400.

    The ideal bootstrap SE is the plug-in sigma_hat / sqrt(n) (sigma_hat with ddof = 0,
    Efron & Tibshirani eq. 6.7); with B replicates its Monte Carlo relative sd is about
    1/sqrt(2 (B - 1)) = 0.022 at B = 1000. Against the plug-in value we allow 10% (4.5
    sd). Against the analytic 0.05 the sample sd adds a relative sd 1/sqrt(2n) = 0.035,
    together sqrt(0.022^2 + 0.035^2) = 0.042; we allow 20% (4.7 sd)."""
    n, n_boot = 400, 1000
    x = _randn(n, 3, seed=6)
    se = bootstrap_se(lambda s: s[:, 0].mean().item(), x, n_boot=n_boot, seed=0)
    plug_in = x[:, 0].std(correction=0).item() / math.sqrt(n)
    assert se == pytest.approx(plug_in, rel=0.10)
    assert se == pytest.approx(1 / math.sqrt(n), rel=0.20)


def test_bootstrap_se_deterministic_by_seed() -> None:
    x = _randn(50, 2, seed=7)

    def stat(s: torch.Tensor) -> float:
        return s.mean().item()

    a = bootstrap_se(stat, x, n_boot=30, seed=3)
    assert bootstrap_se(stat, x, n_boot=30, seed=3) == a
    assert bootstrap_se(stat, x, n_boot=30, seed=4) != a
    torch.manual_seed(123)  # the global RNG plays no part
    assert bootstrap_se(stat, x, n_boot=30, seed=3) == a


def test_bootstrap_se_resamples_rows_with_replacement() -> None:
    """A constant set has SE 0; a statistic that counts distinct rows sees duplicates."""
    assert bootstrap_se(lambda s: s.sum().item(), torch.ones(10, 3), n_boot=20) == 0.0
    x = torch.arange(20.0)[:, None]
    counts = []
    bootstrap_se(lambda s: counts.append(len(set(s[:, 0].tolist()))) or 0.0, x, n_boot=20)
    assert len(counts) == 20 and max(counts) < 20  # P(no duplicate) = 20!/20^20 ~ 2e-8


def test_bootstrap_metric_value_and_se() -> None:
    x, y = _randn(30, 6, 1, seed=8), _randn(20, 6, 1, seed=9) + 0.5

    def metric(s: torch.Tensor, r: torch.Tensor) -> float:
        return sliced_wasserstein(s, r, n_directions=20, seed=1).mean

    out = bootstrap_metric(metric, x, y, n_boot=15, seed=2)
    assert set(out) == {"value", "se", "n_boot"} and out["n_boot"] == 15
    assert out["value"] == metric(x, y)
    assert out["se"] == bootstrap_se(lambda s: metric(s, y), x, n_boot=15, seed=2)
    assert out["se"] > 0
    # a DistanceSummary is accepted and its mean is used
    out2 = bootstrap_metric(lambda s, r: sliced_wasserstein(s, r, n_directions=20, seed=1),
                            x, y, n_boot=15, seed=2)
    assert out2 == out


def test_bootstrap_metric_keeps_reference_fixed() -> None:
    """A metric of the reference alone has SE 0: only the samples are resampled."""
    x, y = _randn(10, 4, 1, seed=10), _randn(8, 4, 1, seed=11)
    out = bootstrap_metric(lambda s, r: r.var().item(), x, y, n_boot=10)
    assert out["se"] == 0.0 and out["value"] == pytest.approx(y.var().item())


# ---------------------------------------------------------------- spectra


def _np_mean_energy(x: torch.Tensor) -> np.ndarray:
    """Oracle: numpy's unitary rFFT, |c_k|^2 summed over channels, mean over the batch."""
    c = np.fft.rfft(x.numpy(), axis=1, norm="ortho")  # (B, K, M)
    return (np.abs(c) ** 2).sum(axis=2).mean(axis=0)


def test_spectral_band_error_identical_sets_zero() -> None:
    x = _randn(7, 20, 2, seed=12)
    bands = spectral_band_error(x, x.clone(), n_bands=4)
    assert [b["band"] for b in bands] == [0, 1, 2, 3]
    for b in bands:
        assert b["relative_error"] == 0.0 and b["log_ratio"] == 0.0
    assert spectral_density_error(x, x.clone()) == 0.0


@pytest.mark.parametrize("n_steps", [9, 16, 187])
def test_spectral_band_error_doubled_amplitude(n_steps: int) -> None:
    """2x multiplies every |c_k|^2 by 4: relative error 3 and log ratio log 4 per band."""
    x = _randn(6, n_steps, 2, seed=13)
    for b in spectral_band_error(2 * x, x, n_bands=4):
        assert b["relative_error"] == pytest.approx(3.0, abs=TOL)
        assert b["log_ratio"] == pytest.approx(math.log(4.0), abs=TOL)
    assert spectral_density_error(2 * x, x) == pytest.approx(3.0, abs=TOL)
    # the sets need not have the same size
    assert spectral_density_error(2 * x[:3], x[:3]) == pytest.approx(3.0, abs=TOL)


@pytest.mark.parametrize(("n_steps", "n_bands"),
                         [(4, 1), (4, 3), (5, 2), (16, 4), (16, 9), (187, 4), (187, 7)])
def test_spectral_bands_cover_all_bins_once(n_steps: int, n_bands: int) -> None:
    x = _randn(3, n_steps, 1, seed=14)
    bands = spectral_band_error(x, x, n_bands=n_bands)
    assert len(bands) == n_bands
    covered = [k for b in bands for k in range(b["bins"][0], b["bins"][1] + 1)]
    assert covered == list(range(n_steps // 2 + 1))
    sizes = [b["bins"][1] - b["bins"][0] + 1 for b in bands]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_spectral_band_error_matches_numpy_oracle() -> None:
    x, y = _randn(8, 30, 2, seed=15), 0.7 * _randn(5, 30, 2, seed=16)
    e_s, e_r = _np_mean_energy(x), _np_mean_energy(y)
    bands = spectral_band_error(x, y, n_bands=3)
    for b, idx in zip(bands, np.array_split(np.arange(16), 3), strict=True):
        assert b["bins"] == [int(idx[0]), int(idx[-1])]
        rel = np.abs(e_s[idx] - e_r[idx]).sum() / e_r[idx].sum()
        log_ratio = np.log(e_s[idx] / e_r[idx]).mean()
        assert b["relative_error"] == pytest.approx(rel, rel=1e-10)
        assert b["log_ratio"] == pytest.approx(log_ratio, rel=1e-10, abs=1e-12)
    whole = np.abs(e_s - e_r).sum() / e_r.sum()
    assert spectral_density_error(x, y) == pytest.approx(whole, rel=1e-10)
    one_band = spectral_band_error(x, y, n_bands=1)[0]
    assert one_band["relative_error"] == pytest.approx(spectral_density_error(x, y),
                                                       rel=1e-14)


def test_spectral_band_error_localises_a_change() -> None:
    """Adding a pure tone at bin 7 of N = 32 (bins 0..16, 4 bands: 0-4, 5-8, 9-12,
    13-16) changes only band 1."""
    x = _randn(10, 32, 1, seed=17)
    t = torch.arange(32, dtype=torch.float64)
    tone = torch.cos(2 * math.pi * 7 * t / 32)[None, :, None]
    bands = spectral_band_error(x + 3 * tone, x, n_bands=4)
    assert [b["bins"] for b in bands] == [[0, 4], [5, 8], [9, 12], [13, 16]]
    assert bands[1]["relative_error"] > 0.5 and bands[1]["log_ratio"] > 0
    for i in (0, 2, 3):
        assert bands[i]["relative_error"] < 1e-12


# ---------------------------------------------------------------- summary


SUMMARY_KEYS = {"n_samples", "n_reference", "settings", "sw_time", "sw_freq",
                "marginal_w_time", "marginal_w_freq", "spectral_bands",
                "spectral_density_error", "paired"}
SW_KEYS = {"value", "se", "n_boot", "max", "se_directions", "n_directions"}


def test_quality_summary_keys_values_and_json() -> None:
    x, y = _randn(24, 10, 2, seed=18), _randn(16, 10, 2, seed=19) * 1.2
    paired = x + 0.01 * _randn(24, 10, 2, seed=20)
    q = quality_summary(x, y, paired_reference=paired, n_directions=40, seed=3, n_boot=10)
    assert set(q) == SUMMARY_KEYS
    assert q["n_samples"] == 24 and q["n_reference"] == 16
    assert q["settings"] == {"n_directions": 40, "seed": 3, "n_boot": 10}
    for key in ("sw_time", "sw_freq"):
        assert set(q[key]) == SW_KEYS and q[key]["n_boot"] == 10
        assert q[key]["n_directions"] == 40 and q[key]["se"] > 0
    assert q["sw_time"]["value"] == pytest.approx(
        sliced_wasserstein(x, y, n_directions=40, seed=3).mean, rel=1e-12)
    assert q["sw_freq"]["value"] == pytest.approx(
        frequency_sliced_wasserstein(x, y, n_directions=40, seed=3).mean, rel=1e-12)
    assert q["marginal_w_time"]["value"] == pytest.approx(marginal_wasserstein(x, y).mean)
    assert q["marginal_w_freq"]["value"] == pytest.approx(
        marginal_wasserstein(chart(x), chart(y)).mean)
    assert q["spectral_bands"] == spectral_band_error(x, y, n_bands=4)
    assert q["spectral_density_error"] == spectral_density_error(x, y)
    assert q["paired"] == summarise_paired(paired_relative_error(x, paired)).to_dict()
    assert q["paired"]["n"] == 24
    json.dumps(q, allow_nan=False)


def test_quality_summary_projected_bootstrap_equals_direct_bootstrap() -> None:
    """Projecting once and resampling projected rows gives the same SE as re-running
    sliced_wasserstein on resampled rows (projection commutes with row selection)."""
    x, y = _randn(20, 8, 1, seed=21), _randn(12, 8, 1, seed=22) + 0.3
    q = quality_summary(x, y, n_directions=30, seed=5, n_boot=12)

    def sw(s: torch.Tensor, r: torch.Tensor) -> float:
        return sliced_wasserstein(s, r, n_directions=30, seed=5).mean

    def fsw(s: torch.Tensor, r: torch.Tensor) -> float:
        return frequency_sliced_wasserstein(s, r, n_directions=30, seed=5).mean

    direct = bootstrap_metric(sw, x, y, n_boot=12, seed=5)
    assert q["sw_time"]["se"] == pytest.approx(direct["se"], rel=1e-9)
    direct_f = bootstrap_metric(fsw, x, y, n_boot=12, seed=5)
    assert q["sw_freq"]["se"] == pytest.approx(direct_f["se"], rel=1e-9)


def test_quality_summary_without_pairs_and_nan_to_none() -> None:
    """One direction leaves se_directions undefined: it must come out as None."""
    x, y = _randn(6, 4, 1, seed=23), _randn(5, 4, 1, seed=24)
    q = quality_summary(x, y, n_directions=1, n_boot=3)
    assert q["paired"] is None
    assert q["sw_time"]["se_directions"] is None and q["sw_time"]["n_directions"] == 1
    assert len(q["spectral_bands"]) == 3  # N = 4 has only 3 bins
    json.dumps(q, allow_nan=False)


# ---------------------------------------------------------------- bad inputs


GOOD = torch.zeros(3, 8, 2) + 1.0
NAN = GOOD.clone()
NAN[1, 2, 0] = float("nan")
INF = GOOD.clone()
INF[0, 0, 1] = float("inf")


@pytest.mark.parametrize(("candidate", "reference", "match"), [
    (GOOD[0], GOOD[0], "shape"),  # rank 2
    (GOOD[None], GOOD[None], "shape"),  # rank 4
    (GOOD, GOOD[:2], "same shape"),
    (GOOD, GOOD[:, :4], "same shape"),
    (NAN, GOOD, "NaN"),
    (GOOD, INF, "Inf"),
    (GOOD[:0], GOOD[:0], "empty"),
    (GOOD.numpy(), GOOD, "torch.Tensor"),
    (GOOD.to(torch.complex64), GOOD, "real"),
])
def test_paired_error_rejects_bad_inputs(candidate, reference, match) -> None:
    with pytest.raises(InputError, match=match):
        paired_relative_error(candidate, reference)


@pytest.mark.parametrize(("c", "r", "match"), [
    (GOOD, GOOD, "rank >= 3"),  # (T, B, ...) needs a sample axis after B
    (GOOD[None], GOOD[None, :, :4], "same shape"),
    (NAN[None], GOOD[None], "NaN"),
    (GOOD[None, :0], GOOD[None, :0], "empty"),
])
def test_trajectory_error_rejects_bad_inputs(c, r, match) -> None:
    if match == "rank >= 3":
        c, r = c[0], r[0]  # rank 2
    with pytest.raises(InputError, match=match):
        trajectory_relative_error(c, r)


@pytest.mark.parametrize(("errors", "match"), [
    (torch.ones(2, 2), "shape"), (torch.ones(0), "empty"),
    (torch.tensor([0.1, float("nan")]), "NaN"), ([0.1, 0.2], "torch.Tensor"),
])
def test_summarise_paired_rejects_bad_inputs(errors, match) -> None:
    with pytest.raises(InputError, match=match):
        summarise_paired(errors)


def test_bootstrap_rejects_bad_inputs() -> None:
    x = torch.ones(5, 2)

    def stat(s: torch.Tensor) -> float:
        return s.mean().item()

    with pytest.raises(InputError, match="n >= 2"):
        bootstrap_se(stat, torch.ones(1, 2))
    with pytest.raises(InputError, match="n >= 2"):
        bootstrap_se(stat, torch.tensor(1.0))
    with pytest.raises(InputError, match="n_boot"):
        bootstrap_se(stat, x, n_boot=1)
    with pytest.raises(InputError, match="n_boot"):
        bootstrap_se(stat, x, n_boot=True)
    with pytest.raises(InputError, match="NaN"):
        bootstrap_se(stat, torch.tensor([[1.0], [float("nan")]]))
    with pytest.raises(InputError, match="callable"):
        bootstrap_se(3.0, x)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="must return a number"):
        bootstrap_se(lambda s: s, x)  # returns a (5, 2) tensor
    with pytest.raises(InputError, match="callable"):
        bootstrap_metric(None, x, x)  # type: ignore[arg-type]


@pytest.mark.parametrize(("s", "r", "match"), [
    (GOOD[0], GOOD, r"\(B, N, M\)"),
    (GOOD, GOOD[:, :6], r"agree on \(N, M\)"),
    (GOOD, GOOD[:, :, :1], r"agree on \(N, M\)"),
    (GOOD, NAN, "NaN"),
    (INF, GOOD, "Inf"),
    (GOOD[:0], GOOD, "empty"),
    (GOOD[:, :1], GOOD[:, :1], "N >= 2"),
])
def test_spectral_errors_reject_bad_inputs(s, r, match) -> None:
    with pytest.raises(InputError, match=match):
        spectral_band_error(s, r)
    with pytest.raises(InputError, match=match):
        spectral_density_error(s, r)
    with pytest.raises(InputError, match=match):
        quality_summary(s, r, n_directions=4, n_boot=2)


@pytest.mark.parametrize("n_bands", [0, -1, 6, 2.0, True])
def test_spectral_band_error_rejects_bad_n_bands(n_bands) -> None:
    with pytest.raises(InputError, match="n_bands"):
        spectral_band_error(GOOD, GOOD, n_bands=n_bands)  # N = 8: 5 bins


def test_quality_summary_rejects_bad_settings() -> None:
    with pytest.raises(InputError, match="n_boot"):
        quality_summary(GOOD, GOOD, n_boot=1)
    with pytest.raises(InputError, match="n_directions"):
        quality_summary(GOOD, GOOD, n_directions=0)
    with pytest.raises(InputError, match="same shape"):
        quality_summary(GOOD, GOOD, paired_reference=GOOD[:2], n_directions=4, n_boot=2)
