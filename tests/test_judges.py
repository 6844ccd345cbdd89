"""The sample-quality judges (fdbench.judges) on the embedded ECG beats: real vs real is at
the floor, a Gaussian with the data's spectrum (the ``network_off`` control) and planted
distortions of real beats are caught by the judges meant to see them, and a judge with a
planted bug no longer separates, so each separation test is capable of failing.

Sets (all float64): REAL = the 92 held-out beats (the ``real`` argument of every judge);
``real`` = 128 training beats (real vs real); ``bank`` = the other 239 training beats, the
training set of the memorisation judge; controls of 128 series each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fdbench.judges.discriminative as discriminative
import fdbench.judges.memorisation as memorisation
import fdbench.judges.predictive as predictive
from fdbench.data import load_dataset
from fdbench.errors import InputError
from fdbench.judges import (
    autocorrelation_difference,
    check_series_pair,
    discriminative_score,
    dummy_mean_series,
    kurtosis_difference,
    marginal_distribution_difference,
    marginal_wasserstein_time,
    memorisation_ratio,
    predictive_score,
    skewness_difference,
    sliced_wasserstein_time,
)
from fdbench.spectral import chart, inverse_chart

N_SET = 128
REPEATS = 3  # fewer than the default 5: the tests need the verdict, not the last digit


@pytest.fixture(scope="module")
def ecg() -> dict[str, torch.Tensor]:
    data = load_dataset("ecg")
    train, test = data.train.double(), data.test.double()
    gen = torch.Generator().manual_seed(1)
    real, bank = train[:N_SET], train[N_SET:]
    coords = chart(train)
    mean, std = coords.mean(0), coords.std(0)
    n_steps = train.shape[1]
    # frequency of each chart coordinate: Re c_0..c_{N//2}, then Im c_1..c_{ceil(N/2)-1}
    freq = torch.cat([torch.arange(n_steps // 2 + 1), torch.arange(1, (n_steps + 1) // 2)])
    ramp = (1 + 0.8 * freq / (n_steps // 2)).double()[:, None]
    noise = torch.randn(real.shape, generator=gen, dtype=torch.float64)
    return {
        "held_out": test, "bank": bank, "real": real,
        # network_off-like control: independent Gaussian chart coordinates with the
        # training beats' per-coordinate mean and std, i.e. the data's mean and spectrum
        "gauss": inverse_chart(mean + std * torch.randn((N_SET, *mean.shape), generator=gen,
                                                        dtype=torch.float64)),
        "shift": torch.roll(real, 20, dims=1),  # R peak 20 steps late
        "tail": torch.where(real == 0, 0.05 * noise, real),  # no exact-zero tail
        "tilt": inverse_chart(chart(real) * ramp),  # high frequencies up to 1.8x
        "dummy": dummy_mean_series(train, N_SET),
        "copies": bank[:N_SET] + 1e-4 * noise,  # memorised training beats
    }


# ---------------------------------------------------------------- input validation


def test_check_series_pair_accepts_numpy_and_2d():
    r, g = check_series_pair(np.zeros((4, 8), dtype=np.float32), torch.ones(3, 8, 1))
    assert r.shape == (4, 8, 1) and g.shape == (3, 8, 1)
    assert r.dtype == g.dtype == torch.float64 and r.device.type == "cpu"


@pytest.mark.parametrize("real, generated, match", [
    (torch.zeros(4, 8, 1), torch.zeros(4, 9, 1), r"real and generated .* \(8, 1\) and \(9, 1\)"),
    (torch.zeros(4, 8, 1), torch.zeros(4, 8, 2), "same series shape"),
    (torch.zeros(4, 8, 1), torch.zeros(8), r"generated must have shape \(B, N, M\)"),
    (torch.zeros(4, 8, 1), torch.full((4, 8, 1), float("nan")), "generated contains 32 NaN"),
    (np.array([[0.0, np.inf]] * 4), torch.zeros(4, 2), r"real contains 4 NaN/Inf .*\(0, 1, 0\)"),
    (torch.zeros(1, 8, 1), torch.zeros(4, 8, 1), "real has 1 series; .* at least 2"),
    (torch.zeros(4, 8, 1), np.array([["a"] * 8] * 4), "generated must hold real numbers"),
    (torch.zeros(4, 8, 1), [[0.0] * 8] * 4, "generated must be a numpy array or torch"),
])
def test_check_series_pair_names_the_bad_input(real, generated, match):
    with pytest.raises(InputError, match=match):
        check_series_pair(real, generated)


def test_judges_refuse_too_few_series_for_a_test_split(ecg):
    with pytest.raises(InputError, match="generated has 5 series; this judge needs at least"):
        discriminative_score(ecg["held_out"], ecg["real"][:5])


# ---------------------------------------------------------------- discriminative


@pytest.fixture(scope="module")
def disc(ecg):
    return {name: discriminative_score(ecg["held_out"], ecg[name], repeats=REPEATS)
            for name in ("real", "gauss", "shift", "tail", "tilt", "dummy")}


def test_discriminative_real_vs_real_is_about_chance(disc):
    assert disc["real"].value < 0.15
    assert len(disc["real"].values) == REPEATS and disc["real"].se is not None


@pytest.mark.parametrize("name", ["gauss", "shift", "tail", "tilt", "dummy"])
def test_discriminative_catches_the_control_and_every_distortion(disc, name):
    assert disc[name].value >= 0.3, disc[name]


def test_discriminative_with_shuffled_labels_no_longer_separates(ecg, monkeypatch):
    fit = discriminative._fit_classifier

    def shuffled_labels(x, y, **kw):  # the planted bug: labels detached from the series
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        return fit(x, y[perm], **kw)

    monkeypatch.setattr(discriminative, "_fit_classifier", shuffled_labels)
    broken = discriminative_score(ecg["held_out"], ecg["gauss"], repeats=REPEATS)
    assert broken.value < 0.3  # the separation test above would fail


def test_discriminative_is_deterministic(ecg):
    kw = dict(repeats=2, steps=20)
    a = discriminative_score(ecg["held_out"], ecg["tail"], seed=3, **kw)
    b = discriminative_score(ecg["held_out"], ecg["tail"], seed=3, **kw)
    state = torch.random.get_rng_state()
    c = discriminative_score(ecg["held_out"], ecg["real"], seed=3, **kw)
    d = discriminative_score(ecg["held_out"], ecg["real"], seed=4, **kw)
    assert a.values == b.values and a.to_dict() == b.to_dict()
    assert c.values != d.values  # the seed reaches split and init
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched


# ---------------------------------------------------------------- predictive


@pytest.fixture(scope="module")
def pred(ecg):
    return {name: predictive_score(ecg["held_out"], ecg[name], repeats=REPEATS)
            for name in ("real", "gauss", "tail")}


def _clearly_worse(bad, good, factor: float = 1.15) -> bool:
    """bad > factor * good and the gap exceeds 3 combined repeat SEs."""
    gap = bad.value - good.value
    return bad.value > factor * good.value and gap > 3 * np.hypot(bad.se, good.se)


@pytest.mark.parametrize("name", ["gauss", "tail"])
def test_predictive_separates_the_control_and_the_noisy_tail(pred, name):
    # TSTR sees changed one-step dynamics; a shift or a tilt leaves them predictable
    # (trained on those, the GRU predicts real beats as well as real-trained ones)
    assert _clearly_worse(pred[name], pred["real"]), (pred[name], pred["real"])


def test_predictive_trained_on_real_data_no_longer_separates(ecg, pred, monkeypatch):
    fit = predictive._fit_predictor
    real = ecg["held_out"]
    leaked = ((real - real.mean()) / real.std()).float()

    def train_on_real(train, **kw):  # the planted bug: TRTR instead of TSTR
        return fit(leaked, **kw)

    monkeypatch.setattr(predictive, "_fit_predictor", train_on_real)
    broken = predictive_score(ecg["held_out"], ecg["gauss"], repeats=REPEATS)
    assert not _clearly_worse(broken, pred["real"])


def test_predictive_is_deterministic(ecg):
    kw = dict(repeats=2, steps=10, seed=5)
    a = predictive_score(ecg["held_out"], ecg["gauss"], **kw)
    b = predictive_score(ecg["held_out"], ecg["gauss"], **kw)
    assert a.values == b.values and a.details["units"] == "real std"


# ---------------------------------------------------------------- features

FEATURES = {"acd": autocorrelation_difference, "mdd": marginal_distribution_difference,
            "sd": skewness_difference, "kd": kurtosis_difference}
# which planted difference each statistic is meant to see (factor over real vs real).
# ACD is a function of pooled second moments, which the Gaussian control matches by
# construction, and the noisy tail adds little correlation: blind to both by design.
# SD and KD pool over time: a shift leaves them exactly unchanged.
SEES = [("acd", "shift", 3.0), ("acd", "dummy", 3.0),
        ("mdd", "gauss", 3.0), ("mdd", "shift", 3.0), ("mdd", "tail", 3.0),
        ("mdd", "dummy", 3.0),
        ("sd", "gauss", 3.0), ("sd", "tail", 2.0), ("sd", "tilt", 2.0), ("sd", "dummy", 3.0),
        ("kd", "gauss", 3.0), ("kd", "tail", 1.5), ("kd", "tilt", 2.0), ("kd", "dummy", 3.0)]


@pytest.mark.parametrize("stat, name, factor", SEES)
def test_feature_statistic_sees_its_distortion(ecg, stat, name, factor):
    real = FEATURES[stat](ecg["held_out"], ecg["real"]).value
    assert FEATURES[stat](ecg["held_out"], ecg[name]).value > factor * real


@pytest.mark.parametrize("stat", sorted(FEATURES))
def test_feature_statistic_is_zero_for_identical_sets_and_small_real_vs_real(ecg, stat):
    assert FEATURES[stat](ecg["held_out"], ecg["held_out"]).value == pytest.approx(0, abs=1e-12)
    bound = {"acd": 0.3, "mdd": 0.15, "sd": 0.2, "kd": 0.6}[stat]
    assert FEATURES[stat](ecg["held_out"], ecg["real"]).value < bound


def test_shift_leaves_pooled_moments_unchanged_and_acd_blind_to_the_control(ecg):
    for stat in ("sd", "kd"):
        assert FEATURES[stat](ecg["real"], ecg["shift"]).value == pytest.approx(0, abs=1e-9)
    real = autocorrelation_difference(ecg["held_out"], ecg["real"]).value
    assert autocorrelation_difference(ecg["held_out"], ecg["gauss"]).value < 2 * real


def test_mdd_bins_come_from_the_real_data_and_count_out_of_range_mass():
    real = torch.linspace(0, 1, 11).reshape(11, 1, 1).expand(11, 3, 1)
    assert marginal_distribution_difference(real, real + 10).value == 1.0  # all beyond
    # 11 bins centred on the 11 real values, width 0.1: a 0.02 offset stays in its bin
    assert marginal_distribution_difference(real, real + 0.02, n_bins=11).value == 0.0
    # 0.07 moves every value one bin up: the uniform histograms differ at the two ends
    shifted = marginal_distribution_difference(real, real + 0.07, n_bins=11)
    assert shifted.value == pytest.approx(1 / 11)
    assert marginal_distribution_difference(torch.zeros(5, 3), torch.zeros(5, 3)).value == 0


# ---------------------------------------------------------------- memorisation


def test_memorisation_real_vs_real_is_about_one_and_copies_are_caught(ecg):
    real = memorisation_ratio(ecg["bank"], ecg["held_out"], ecg["real"])
    assert 0.8 < real.value < 1.25
    copies = memorisation_ratio(ecg["bank"], ecg["held_out"], ecg["copies"])
    assert copies.value < 0.1
    assert copies.details["median_held_out"] == real.details["median_held_out"]


@pytest.mark.parametrize("name", ["gauss", "shift"])
def test_memorisation_puts_off_distribution_samples_above_one(ecg, name):
    assert memorisation_ratio(ecg["bank"], ecg["held_out"], ecg[name]).value > 1.5


def test_memorisation_against_the_generated_set_itself_misses_copies(ecg, monkeypatch):
    def self_distances(queries, bank):  # the planted bug: nearest neighbour among queries
        d = torch.cdist(queries.flatten(1), queries.flatten(1))
        return (d + torch.diag(torch.full((len(d),), float("inf")))).amin(dim=1)

    monkeypatch.setattr(memorisation, "nearest_distances", self_distances)
    assert memorisation_ratio(ecg["bank"], ecg["held_out"], ecg["copies"]).value > 0.1


def test_memorisation_validates_all_three_sets(ecg):
    with pytest.raises(InputError, match="train and held_out"):
        memorisation_ratio(ecg["bank"][:, :100], ecg["held_out"], ecg["real"])
    with pytest.raises(InputError, match="exact copies"):
        memorisation_ratio(ecg["bank"], ecg["bank"], ecg["real"])


# ---------------------------------------------------------------- distances


@pytest.mark.parametrize("judge", [sliced_wasserstein_time, marginal_wasserstein_time])
@pytest.mark.parametrize("name, factor", [("gauss", 1.15), ("shift", 3.0), ("dummy", 2.0)])
def test_wasserstein_separates_control_shift_and_dummy(ecg, judge, name, factor):
    real = judge(ecg["held_out"], ecg["real"]).value
    assert judge(ecg["held_out"], ecg[name]).value > factor * real


def test_sliced_wasserstein_matches_metrics_and_is_seeded(ecg):
    from fdbench.metrics import sliced_wasserstein

    a = sliced_wasserstein_time(ecg["held_out"].numpy(), ecg["real"], seed=2)
    assert a.value == sliced_wasserstein(ecg["real"], ecg["held_out"], seed=2).mean
    assert a.to_dict() == sliced_wasserstein_time(ecg["held_out"], ecg["real"], seed=2).to_dict()


# ---------------------------------------------------------------- evaluate_samples


def test_evaluate_samples_multichannel_is_json_ready_and_validated():
    import json

    from fdbench.judges import JUDGE_KEYS, evaluate_samples

    gen = torch.Generator().manual_seed(0)
    train, held_out = torch.randn(60, 16, 3, generator=gen), torch.randn(20, 16, 3, generator=gen)
    samples = torch.randn(30, 16, 3, generator=gen).numpy()
    result = evaluate_samples(samples, held_out=held_out, train=train, repeats=1)
    json.dumps(result, allow_nan=False)
    for row in (result, result["reference"], result["dummy"]):
        assert set(JUDGE_KEYS) <= set(row)
    assert result["reference"]["n_samples"] == 30 and result["n_held_out"] == 20
    assert 0.5 < result["memorisation_ratio"] < 2  # fresh noise is no copy
    with pytest.raises(InputError, match="train and held_out"):
        evaluate_samples(samples, held_out=held_out, train=train[:, :8])
    with pytest.raises(InputError, match="held_out and samples"):
        evaluate_samples(samples[:, :8], held_out=held_out, train=train)
    with pytest.raises(InputError, match="reference needs"):
        evaluate_samples(samples, held_out=held_out, train=train[:12])
