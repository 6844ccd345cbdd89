"""Tests for fdbench.metrics: exact 1-D W2, sliced and marginal W2 (time and frequency).

POT (``ot``) is the independent oracle: ``ot.emd2_1d`` solves the 1-D transport problem
as a linear program, ``ot.sliced_wasserstein_distance(..., log=True)`` exposes the
per-direction W2^2 for caller-supplied projections.
"""

from __future__ import annotations

import doctest
import json
import math
import statistics

import numpy as np
import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fdbench.metrics as metrics
from fdbench.errors import InputError
from fdbench.metrics import (
    DistanceSummary,
    frequency_marginal_wasserstein,
    frequency_sliced_wasserstein,
    marginal_wasserstein,
    projected_wasserstein,
    random_directions,
    sample_metrics,
    sliced_wasserstein,
    wasserstein_1d,
)
from fdbench.spectral import chart

TOL = 1e-10


def _randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)


def _pot_w2(x: np.ndarray, y: np.ndarray) -> float:
    """Reference: sqrt of POT's exact 1-D W2^2 (its LP may land a hair below zero)."""
    return math.sqrt(max(float(ot.emd2_1d(x, y)), 0.0))


def _pair(seed: int = 0, b1: int = 13, b2: int = 9, n: int = 6, m: int = 2):
    """Two sets of series with different laws (y shifted and scaled)."""
    return _randn(b1, n, m, seed=seed), 0.5 + 1.5 * _randn(b2, n, m, seed=seed + 1)


# ---------------------------------------------------------------- wasserstein_1d


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), m=st.integers(1, 40), d=st.integers(1, 3),
       seed=st.integers(0, 2**31 - 1), ties=st.booleans())
def test_wasserstein_1d_matches_pot(n: int, m: int, d: int, seed: int, ties: bool) -> None:
    """Theorem: for uniform empirical measures W2^2 = int_0^1 (Q_x - Q_y)^2 du equals the
    optimal-transport LP value that ot.emd2_1d computes, for any sizes n, m."""
    x = _randn(n, d, seed=seed, scale=3.0)
    y = _randn(m, d, seed=seed + 1) + 1.0
    if ties:  # rounding to a coarse grid forces repeated values and coinciding quantiles
        x, y = x.round(), y.round()
    ours = wasserstein_1d(x, y)
    assert ours.shape == (d,) and ours.dtype == torch.float64
    for j in range(d):
        assert ours[j].item() == pytest.approx(_pot_w2(x[:, j].numpy(), y[:, j].numpy()),
                                               abs=TOL)


@pytest.mark.parametrize(("x", "y", "expected"), [
    ([0.0], [1.0], 1.0),                          # two Diracs: |0 - 1|
    ([0.0, 1.0], [0.0], math.sqrt(0.5)),          # half the mass moves by 1
    ([0.0, 1.0, 2.0], [0.0, 2.0], math.sqrt(1 / 3)),  # breakpoints 1/3, 1/2, 2/3
    ([3.0, -1.0], [-1.0, 3.0], 0.0),              # same set, different order
])
def test_wasserstein_1d_hand_computed(x: list[float], y: list[float], expected: float) -> None:
    """Hand-integrated quantile differences; for {0,1,2} vs {0,2} the only non-zero pieces
    are (1/3, 1/2) and (1/2, 2/3), each with |Q_x - Q_y| = 1, so W2^2 = 1/3."""
    got = wasserstein_1d(torch.tensor(x)[:, None], torch.tensor(y)[:, None])
    assert got.item() == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("c", [-2.5, 0.75, 10.0])
def test_wasserstein_1d_shift(c: float) -> None:
    """Translation: the monotone coupling pairs x_(i) with x_(i) + c, so W2 = |c|."""
    x = _randn(17, 3, seed=3)
    assert torch.allclose(wasserstein_1d(x + c, x), torch.full((3,), abs(c),
                                                                  dtype=torch.float64),
                          atol=1e-12, rtol=0)


def test_wasserstein_1d_unequal_size_replication() -> None:
    """Repeating every point k times leaves the empirical measure unchanged: W2 = 0."""
    x = _randn(7, 2, seed=5)
    assert torch.equal(wasserstein_1d(x, x.repeat(3, 1)), torch.zeros(2, dtype=torch.float64))


# ---------------------------------------------------------------- sliced vs POT


def test_random_directions_unit_and_seeded() -> None:
    """Columns are unit vectors; a repeated call repeats them; the seed matters."""
    theta = random_directions(12, 50, seed=4)
    assert theta.shape == (12, 50) and theta.dtype == torch.float64
    assert torch.allclose(theta.norm(dim=0), torch.ones(50, dtype=torch.float64), atol=1e-14)
    assert torch.equal(random_directions(12, 50, seed=4), theta)
    assert not torch.allclose(random_directions(12, 50, seed=5), theta)


def test_sliced_matches_pot_per_direction_and_differs_from_its_rms() -> None:
    """With the same projections, POT's log holds W2_l^2 per direction; our per-direction
    values are their square roots, our SW is their mean, and POT's returned number is the
    RMS sqrt(mean W2_l^2), strictly larger than the mean unless all W2_l are equal."""
    x, y = _pair(seed=11)
    xf, yf = x.flatten(1), y.flatten(1)
    theta = random_directions(xf.shape[1], 64, seed=7)
    rms, log = ot.sliced_wasserstein_distance(xf.numpy(), yf.numpy(),
                                              projections=theta.numpy(), log=True)
    pot_per_dir = np.sqrt(np.maximum(log["projected_emds"], 0.0))
    ours = projected_wasserstein(xf, yf, theta)
    np.testing.assert_allclose(ours.numpy(), pot_per_dir, atol=TOL, rtol=0)

    s = sliced_wasserstein(x, y, n_directions=64, seed=7)
    assert s.mean == pytest.approx(float(pot_per_dir.mean()), abs=TOL)
    assert s.max == pytest.approx(float(pot_per_dir.max()), abs=TOL)
    assert math.sqrt(float((ours**2).mean())) == pytest.approx(float(rms), abs=TOL)
    assert s.mean < float(rms) - 1e-3  # the directions do give different values here


def test_sliced_single_coordinate_is_exact() -> None:
    """N = M = 1: every unit direction is +-1, so each per-direction W2 equals |c|."""
    x = (8 * _randn(9, 1, 1, seed=2)).round() / 8  # dyadic values: x - 1.25 is exact
    s = sliced_wasserstein(x, x - 1.25, n_directions=20, seed=3)
    assert (s.mean, s.max, s.se, s.n_directions) == (1.25, 1.25, 0.0, 20)


def test_summary_statistics() -> None:
    """mean, max and se = stdev / sqrt(L) of the per-direction values."""
    x, y = _pair(seed=21)
    theta = random_directions(12, 30, seed=0)
    w = projected_wasserstein(x.flatten(1), y.flatten(1), theta).tolist()
    s = sliced_wasserstein(x, y, n_directions=30, seed=0)
    assert s.n_directions == 30
    assert s.mean == pytest.approx(statistics.fmean(w), rel=1e-13)
    assert s.max == max(w)
    assert s.se == pytest.approx(statistics.stdev(w) / math.sqrt(30), rel=1e-12)


# ---------------------------------------------------------------- metric properties


ALL_DISTANCES = {
    "sw_time": sliced_wasserstein,
    "sw_freq": frequency_sliced_wasserstein,
    "marginal_w_time": marginal_wasserstein,
    "marginal_w_freq": frequency_marginal_wasserstein,
}


@pytest.mark.parametrize("name", sorted(ALL_DISTANCES))
def test_zero_on_identical_sets(name: str) -> None:
    """d(x, x) = 0 exactly: same sorted projections, every quantile difference is 0."""
    x, _ = _pair(seed=31)
    s = ALL_DISTANCES[name](x, x)
    assert (s.mean, s.max, s.se) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("name", sorted(ALL_DISTANCES))
def test_symmetry(name: str) -> None:
    """d(x, y) = d(y, x) (bit for bit: same projections, same merged grid)."""
    x, y = _pair(seed=41)
    f = ALL_DISTANCES[name]
    assert f(x, y) == f(y, x)
    assert f(x, y).mean > 0.1


def test_determinism_and_global_rng_untouched() -> None:
    """Same inputs and seed -> identical numbers, whatever the global RNG does; the
    global RNG is not consumed; a different seed gives different directions."""
    x, y = _pair(seed=51)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = sliced_wasserstein(x, y, n_directions=40, seed=9)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(456)
    assert sliced_wasserstein(x, y, n_directions=40, seed=9) == a
    assert sliced_wasserstein(x, y, n_directions=40, seed=10) != a


def test_float32_inputs_are_promoted() -> None:
    """float32 inputs give the float64 result of their exact float64 values."""
    x, y = _pair(seed=61)
    x32, y32 = x.float(), y.float()
    assert sliced_wasserstein(x32, y32, n_directions=16) == sliced_wasserstein(
        x32.double(), y32.double(), n_directions=16)


# ---------------------------------------------------------------- marginal and frequency


def test_marginal_matches_pot_per_coordinate() -> None:
    """Marginal W = mean / max over coordinates of the POT 1-D W2 of each column."""
    x, y = _pair(seed=71, b1=11, b2=5, n=4, m=3)
    xf, yf = x.flatten(1).numpy(), y.flatten(1).numpy()
    ref = [_pot_w2(xf[:, j], yf[:, j]) for j in range(xf.shape[1])]
    s = marginal_wasserstein(x, y)
    assert s.n_directions == 12
    assert s.mean == pytest.approx(statistics.fmean(ref), abs=TOL)
    assert s.max == pytest.approx(max(ref), abs=TOL)


def test_marginal_single_shifted_coordinate() -> None:
    """Shifting one of D coordinates by c: W2 vector (c, 0, ..., 0), mean c/D, max c."""
    x = _randn(8, 5, 2, seed=81)
    y = x.clone()
    y[:, 3, 1] += 4.0
    s = marginal_wasserstein(x, y)
    w = [4.0] + [0.0] * 9
    assert s.mean == pytest.approx(0.4, abs=1e-14) and s.max == pytest.approx(4.0, abs=1e-14)
    assert s.se == pytest.approx(statistics.stdev(w) / math.sqrt(10), abs=1e-14)


def test_frequency_versions_are_time_versions_of_charted_sets() -> None:
    """sw_freq(x, y) = sw_time(phi(x), phi(y)) with the same directions; likewise for the
    marginal, whose per-coordinate values are the 1-D W2 of the chart coordinates."""
    x, y = _pair(seed=91, n=7)
    cx, cy = chart(x), chart(y)
    assert frequency_sliced_wasserstein(x, y, n_directions=50, seed=2) == \
        sliced_wasserstein(cx, cy, n_directions=50, seed=2)
    w = wasserstein_1d(cx.flatten(1), cy.flatten(1))
    assert frequency_marginal_wasserstein(x, y).max == w.max().item()


def test_frequency_marginal_differs_from_time_marginal() -> None:
    """The chart is not an isometry of coordinates: a change in one time coordinate
    spreads over all frequency coordinates, so the two marginal numbers differ."""
    x = _randn(16, 8, 1, seed=101)
    y = x.clone()
    y[:, 2, 0] += 3.0  # one time coordinate shifted -> every chart coordinate moves
    t, f = marginal_wasserstein(x, y), frequency_marginal_wasserstein(x, y)
    assert t.max == pytest.approx(3.0, abs=1e-13)
    assert f.max < 2.5 and abs(f.mean - t.mean) > 0.05


def test_sample_metrics_json_and_consistent() -> None:
    """The four entries are JSON-serialisable (no NaN) and equal the single functions."""
    x, y = _pair(seed=111)
    out = sample_metrics(x, y, n_directions=25, seed=4)
    assert set(out) == {"sw_time", "sw_freq", "marginal_w_time", "marginal_w_freq"}
    json.dumps(out, allow_nan=False)
    assert out["sw_time"] == sliced_wasserstein(x, y, n_directions=25, seed=4).to_dict()
    assert out["sw_freq"] == frequency_sliced_wasserstein(x, y, n_directions=25,
                                                          seed=4).to_dict()
    assert out["marginal_w_time"] == marginal_wasserstein(x, y).to_dict()
    assert out["marginal_w_freq"] == frequency_marginal_wasserstein(x, y).to_dict()
    assert set(out["sw_time"]) == {"mean", "max", "se", "n_directions"}


def test_summary_to_dict_single_direction() -> None:
    """se is undefined for one direction: NaN on the object, None in the JSON dict."""
    x, y = _pair(seed=121)
    s = sliced_wasserstein(x, y, n_directions=1)
    assert math.isnan(s.se) and s.to_dict()["se"] is None
    with pytest.raises(AttributeError):
        s.mean = 0.0  # type: ignore[misc]
    assert DistanceSummary(1.0, 2.0, 0.5, 3).to_dict() == {
        "mean": 1.0, "max": 2.0, "se": 0.5, "n_directions": 3}


def test_docstring_examples() -> None:
    """The exact values quoted in the module's docstrings hold."""
    result = doctest.testmod(metrics, verbose=False)
    assert result.attempted >= 5 and result.failed == 0


# ---------------------------------------------------------------- bad inputs

_GOOD = torch.zeros(4, 6, 2)


def _with(value: float) -> torch.Tensor:
    bad = _GOOD.clone()
    bad[1, 2, 0] = value
    return bad


@pytest.mark.parametrize(("x", "y", "match"), [
    (torch.zeros(4, 12), _GOOD, r"x must have shape \(B, N, M\)"),
    (_GOOD, torch.zeros(1, 4, 6, 2), r"y must have shape \(B, N, M\)"),
    (_GOOD, torch.zeros(4, 5, 2), "agree on all but the sample axis"),
    (_GOOD, torch.zeros(4, 6, 3), "agree on all but the sample axis"),
    (torch.zeros(0, 6, 2), _GOOD, "x is empty"),
    (_GOOD, torch.zeros(0, 6, 2), "y is empty"),
    (_with(math.nan), _GOOD, "x contains NaN or Inf"),
    (_GOOD, _with(math.inf), "y contains NaN or Inf"),
    (_GOOD.numpy(), _GOOD, "x must be a torch.Tensor"),
    (_GOOD, _GOOD.to(torch.complex64), "y must be real"),
])
@pytest.mark.parametrize("name", sorted(ALL_DISTANCES))
def test_bad_series_raise(name: str, x: object, y: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        ALL_DISTANCES[name](x, y)
    with pytest.raises(InputError, match=match):
        sample_metrics(x, y, n_directions=3)


@pytest.mark.parametrize("n_directions", [0, -1, 2.0, True, None])
def test_bad_n_directions_raise(n_directions: object) -> None:
    for f in (sliced_wasserstein, frequency_sliced_wasserstein, sample_metrics):
        with pytest.raises(InputError, match="n_directions must be an integer >= 1"):
            f(_GOOD, _GOOD, n_directions=n_directions)


@pytest.mark.parametrize(("x", "y", "match"), [
    (torch.zeros(3), torch.zeros(3, 1), r"x must have shape \(n, D\)"),
    (torch.zeros(3, 2), torch.zeros(3, 1), "agree on all but the sample axis"),
    (torch.zeros(3, 1), torch.zeros(0, 1), "y is empty"),
    (torch.tensor([[math.nan]]), torch.zeros(3, 1), "x contains NaN or Inf"),
])
def test_bad_1d_inputs_raise(x: torch.Tensor, y: torch.Tensor, match: str) -> None:
    with pytest.raises(InputError, match=match):
        wasserstein_1d(x, y)


def test_bad_directions_raise() -> None:
    x = torch.zeros(3, 4)
    with pytest.raises(InputError, match=r"directions must have shape \(4, L >= 1\)"):
        projected_wasserstein(x, x, torch.zeros(3, 5))
