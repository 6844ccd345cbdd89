"""Tests of fdbench.data: ECG beats, sines, standardiser, files, registry and splits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fdbench.data import (
    DATASETS,
    SeriesSplit,
    load_dataset,
    load_series_file,
    register_dataset,
    validate_series,
)
from fdbench.data.ecg import load_ecg_beats, load_ecg_record, segment_heartbeats
from fdbench.data.files import MissingFileError
from fdbench.data.standardise import MIN_STD, MIN_STD_FRACTION, Standardiser
from fdbench.data.synthetic import sines
from fdbench.errors import ConfigError, InputError
from fdbench.spectral import localisation_curve


@pytest.fixture(scope="module")
def ecg_beats() -> torch.Tensor:
    return load_ecg_beats()


@pytest.fixture
def numbered() -> Iterator[Callable[[], torch.Tensor]]:
    """Register "numbered": B = 50 series whose every value is the series' index, so
    a split's membership can be read off x[:, 0, 0]; unregistered afterwards."""
    @register_dataset("numbered")
    def numbered_series() -> torch.Tensor:
        """50 constant series numbered 0..49."""
        return torch.arange(50.0).view(50, 1, 1).expand(50, 8, 2).clone()
    yield numbered_series
    del DATASETS["numbered"]


# ---------------------------------------------------------------- ECG


def test_ecg_record_is_the_documented_excerpt() -> None:
    record = load_ecg_record()
    assert record.dtype == np.float64 and record.shape == (108_000,)
    # scipy.misc.electrocardiogram's first values: (975 - 1024) / 200 etc.
    np.testing.assert_allclose(record[:3], [-0.245, -0.215, -0.185])


def test_ecg_beats_shape_range_and_padding(ecg_beats: torch.Tensor) -> None:
    """~500 beats in 5 min of record 208 (98/min); some are lost at window ends."""
    n_beats = ecg_beats.shape[0]
    assert 350 <= n_beats <= 500
    assert ecg_beats.shape == (n_beats, 187, 1) and ecg_beats.dtype == torch.float32
    assert torch.isfinite(ecg_beats).all()
    assert ecg_beats.min() >= 0.0 and ecg_beats.max() <= 1.0
    # every beat starts at an R peak: above the detection threshold
    assert (ecg_beats[:, 0, 0] > 0.6).all()
    # the zero-padded tail: no R-R period here exceeds 1.25 s, so the last samples are 0
    assert (ecg_beats[:, -1, 0] == 0).all()


def _spike_train(period_s: float, first_s: float, duration_s: float, fs: float = 360.0):
    """R spikes (Gaussian, 8 ms) each followed 40 ms later by a half-height S dip, on a
    flat line: after min-max scaling the dip is 0, R is 1 and the line sits at 1/3, so a
    beat's extent is visible as the part of its segment at 1/3."""
    t = np.arange(int(duration_s * fs)) / fs
    x = np.zeros_like(t)
    for r in np.arange(first_s, duration_s, period_s):
        x += np.exp(-0.5 * ((t - r) / 0.008) ** 2)
        x -= 0.5 * np.exp(-0.5 * ((t - r - 0.04) / 0.008) ** 2)
    return x


@pytest.mark.parametrize("options", [
    {},  # the package's defaults
    {"threshold": 0.9, "refractory_s": 0.0, "baseline": False},  # the paper's literal recipe
])
def test_segmentation_of_a_spike_train(options: dict) -> None:
    """Period 1 s = 125 samples at 125 Hz, first R at 0.2 s: every 10 s window (1250
    samples) holds R peaks at offsets 25, 150, ..., 1150. A segment is 1.2 T = 150
    samples, so the peak at 1150 runs past the window end and is dropped: 9 beats per
    window, 54 in 60 s, each holding the next R peak at T = 125 and zero from 150 on."""
    beats = segment_heartbeats(_spike_train(1.0, 0.2, 60.0), 360.0, **options)
    assert beats.shape == (54, 187)
    np.testing.assert_allclose(beats[:, 0], 1.0, atol=1e-6)  # starts at the R peak
    assert (beats[:, 20:120] > 0.3).all()  # after R and S, the line at 1/3
    np.testing.assert_allclose(beats[:, 125], 1.0, atol=1e-6)  # the next R peak, at T
    assert (beats[:, 140:150] > 0.3).all()  # the line again, up to 1.2 T
    assert (beats[:, 150:] == 0).all()  # the zero padding


def test_segmentation_truncates_long_periods() -> None:
    """Period 2 s: 1.2 T = 300 samples > 187, so each beat is cut to 187 samples, none of
    them padding; in each 10 s window the R peaks at 0.5, 2.5, 4.5, 6.5 s fit, 8.5 s not."""
    beats = segment_heartbeats(_spike_train(2.0, 0.5, 30.0), 360.0)
    assert beats.shape == (12, 187)
    assert (beats[:, 20:] > 0.3).all()


def test_segmentation_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="1-D"):
        segment_heartbeats(np.zeros((2, 3600)))
    with pytest.raises(InputError, match="NaN"):
        segment_heartbeats(np.full(3600, np.nan))
    with pytest.raises(ConfigError, match="threshold"):
        segment_heartbeats(np.zeros(3600), threshold=1.5)


# ---------------------------------------------------------------- sines


def test_sines_deterministic_given_generator() -> None:
    a = sines(16, 50, 3, generator=torch.Generator().manual_seed(7))
    b = sines(16, 50, 3, generator=torch.Generator().manual_seed(7))
    c = sines(16, 50, 3, generator=torch.Generator().manual_seed(8))
    assert a.shape == (16, 50, 3) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.abs().max() < 1.5


def test_sines_energy_is_low_frequency() -> None:
    """Components have at most 10 cycles per series; leakage of non-integer frequencies
    leaves a little energy above bin 10, but not much."""
    x = sines(256, 100, 1, generator=torch.Generator().manual_seed(0))
    delta = localisation_curve(x)
    assert delta[15] < 0.05
    assert delta[2] > 0.2  # and not all of it at DC / the lowest bins


@pytest.mark.parametrize("field, kwargs", [
    ("n_samples", {"n_samples": 0}), ("n_steps", {"n_steps": 1}),
    ("n_channels", {"n_channels": 0}), ("n_components", {"n_components": 0}),
])
def test_sines_rejects_bad_sizes(field: str, kwargs: dict) -> None:
    args = {"n_samples": 2, "n_steps": 10, "n_channels": 1} | kwargs
    with pytest.raises(ConfigError, match=field):
        sines(**args, generator=torch.Generator())


# ---------------------------------------------------------------- standardiser


@settings(max_examples=30, deadline=None)  # the first call pays torch's warm-up
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 6), n=st.integers(2, 9),
       m=st.integers(1, 3), scale=st.floats(1e-3, 1e3), shift=st.floats(-1e3, 1e3))
def test_standardiser_round_trip(seed: int, b: int, n: int, m: int, scale: float,
                                 shift: float) -> None:
    """inverse(transform(x)) == x, and the fitted data have mean 0 everywhere and std 1
    wherever the std was above the floor."""
    g = torch.Generator().manual_seed(seed)
    x = (shift + scale * torch.randn(b, n, m, generator=g, dtype=torch.float64)).float()
    s = Standardiser.fit(x)
    z = s.transform(x)
    torch.testing.assert_close(s.inverse(z), x, rtol=1e-5, atol=1e-5 * (scale + abs(shift)))
    # float32 rounding of x, of the mean and of x - mean is ~1e-7 (|shift| + 5 scale),
    # amplified by 1 / std in z
    tolerance = 1e-6 * (abs(shift) + 5 * scale) / s.std + 1e-5
    assert (z.mean(0).abs() <= tolerance).all()
    raw_std = x.double().std(0, correction=0)
    unclamped = raw_std > s.std.double() * (1 + 1e-4)
    assert not unclamped.any()  # the std is never below the data's own std
    clamped_exactly = torch.isclose(s.std.double(), raw_std, rtol=1e-4)
    z_std = z.std(0, correction=0)
    assert ((z_std - 1).abs() <= tolerance + 1e-3)[clamped_exactly].all()


def test_standardiser_clamps_zero_std() -> None:
    """A constant position (like the ECG tail) gets std = 1% of the median non-zero std,
    and maps to exactly 0 and back."""
    x = torch.zeros(4, 3, 1)
    x[:, 0, 0] = torch.tensor([0.0, 2.0, 4.0, 6.0])  # std sqrt(5)
    x[:, 1, 0] = torch.tensor([0.0, 1.0, 0.0, 1.0])  # std 0.5
    s = Standardiser.fit(x)  # position 2 is all zeros
    median = 0.5  # torch.median of [sqrt(5), 0.5] is the lower middle value
    assert s.std[2, 0] == pytest.approx(MIN_STD_FRACTION * median)
    assert s.std[0, 0] == pytest.approx(5**0.5)
    z = s.transform(x)
    assert torch.isfinite(z).all() and (z[:, 2, 0] == 0).all()
    torch.testing.assert_close(s.inverse(z), x)


def test_standardiser_all_constant_and_ecg(ecg_beats: torch.Tensor) -> None:
    s = Standardiser.fit(torch.full((5, 4, 2), 3.0))
    assert torch.all(s.std == MIN_STD)
    z = Standardiser.fit(ecg_beats).transform(ecg_beats)
    assert torch.isfinite(z).all()
    assert z.abs().max() < 100  # no position blown up by a tiny std


def test_standardiser_leading_dims_and_state_dict() -> None:
    x = torch.randn(10, 6, 2, generator=torch.Generator().manual_seed(1))
    s = Standardiser.fit(x)
    y = torch.randn(3, 4, 6, 2, generator=torch.Generator().manual_seed(2))  # (..., N, M)
    torch.testing.assert_close(s.transform(y)[1, 2], s.transform(y[1, 2]))
    restored = Standardiser.from_state_dict(s.state_dict())
    assert torch.equal(restored.mean, s.mean) and torch.equal(restored.std, s.std)
    with pytest.raises(InputError, match="expected"):
        s.transform(torch.zeros(3, 5, 2))
    with pytest.raises(InputError, match="missing"):
        Standardiser.from_state_dict({"mean": s.mean})
    with pytest.raises(InputError, match="> 0"):
        Standardiser.from_state_dict({"mean": s.mean, "std": torch.zeros(6, 2)})
    with pytest.raises(InputError, match=r"\(B, N, M\)"):
        Standardiser.fit(torch.zeros(6, 2))


# ---------------------------------------------------------------- validate_series

BAD_SERIES = [
    (torch.zeros(4, 5), "rank 2"),
    (torch.zeros(2, 4, 5, 1), "rank 4"),
    (torch.zeros(0, 5, 1), "B = 0"),
    (torch.zeros(3, 1, 1), "N >= 2"),
    (torch.zeros(3, 5, 0), "M = 0"),
    (torch.zeros(3, 5, 1, dtype=torch.complex64), "real"),
    (np.zeros((3, 5, 1)), "torch.Tensor"),
]


@pytest.mark.parametrize("x, problem", BAD_SERIES)
def test_validate_series_rejects(x, problem: str) -> None:
    with pytest.raises(InputError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        validate_series(x, "my data")


def test_validate_series_reports_nonfinite_count_and_location() -> None:
    x = torch.zeros(3, 5, 2)
    x[1, 2, 0] = float("nan")
    x[2, 0, 1] = float("nan")
    x[2, 4, 1] = float("-inf")
    with pytest.raises(InputError, match=r"my data contains 2 NaN and 1 Inf values; the "
                                         r"first is nan at series 1, step 2, channel 0"):
        validate_series(x, "my data")
    big = torch.full((2, 3, 1), 1e300, dtype=torch.float64)  # overflows float32
    with pytest.raises(InputError, match="0 NaN and 6 Inf"):
        validate_series(big)


def test_validate_series_returns_contiguous_float32() -> None:
    x = torch.arange(24, dtype=torch.int64).view(2, 4, 3).transpose(1, 2)  # (2, 3, 4)
    y = validate_series(x)
    assert y.dtype == torch.float32 and y.is_contiguous() and torch.equal(y, x.float())


# ---------------------------------------------------------------- files


def test_load_series_file_formats(tmp_path) -> None:
    x3 = np.arange(24, dtype=np.float64).reshape(2, 4, 3)
    np.save(tmp_path / "a.npy", x3)
    np.save(tmp_path / "b.npy", x3[:, :, 0])  # (B, N) -> M = 1
    np.savez(tmp_path / "c.npz", other=np.zeros((1, 2)), x=x3)  # "x" wins over order
    np.savez(tmp_path / "d.npz", first=x3[:, :, :1], second=np.zeros((5, 5)))
    np.savetxt(tmp_path / "e.csv", x3[:, :, 1], delimiter=",")
    (tmp_path / "f.csv").write_text("1,2,3\n")  # a single row is still B = 1
    expected = {"a.npy": x3, "b.npy": x3[:, :, :1], "c.npz": x3, "d.npz": x3[:, :, :1],
                "e.csv": x3[:, :, 1:2], "f.csv": np.array([[[1.0], [2.0], [3.0]]])}
    for name, want in expected.items():
        got = load_series_file(tmp_path / name)
        assert got.dtype == torch.float32, name
        np.testing.assert_array_equal(got.numpy(), want.astype(np.float32), err_msg=name)


def test_load_series_file_errors(tmp_path) -> None:
    missing = tmp_path / "nope.npy"
    with pytest.raises(InputError, match="nope.npy: no such file") as info:
        load_series_file(missing)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, MissingFileError)
    (tmp_path / "x.txt").write_text("1,2\n")
    with pytest.raises(InputError, match="unknown file type '.txt'"):
        load_series_file(tmp_path / "x.txt")
    np.save(tmp_path / "rank1.npy", np.zeros(5))
    with pytest.raises(InputError, match=r"rank1.npy: expected an array of shape"):
        load_series_file(tmp_path / "rank1.npy")
    np.save(tmp_path / "text.npy", np.array([["a", "b"]]))
    with pytest.raises(InputError, match="real numeric array"):
        load_series_file(tmp_path / "text.npy")
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    with pytest.raises(InputError, match="ragged.csv, line 2: 2 fields"):
        load_series_file(tmp_path / "ragged.csv")
    (tmp_path / "nan.csv").write_text("1,2,3\n4,nan,6\n")
    with pytest.raises(InputError, match=r"nan.csv, line 2: series 1 has a missing .*--dropna"):
        load_series_file(tmp_path / "nan.csv")
    (tmp_path / "broken.npz").write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="broken.npz: cannot read"):
        load_series_file(tmp_path / "broken.npz")
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(InputError, match="holds no arrays"):
        load_series_file(tmp_path / "empty.npz")


# ---------------------------------------------------------------- registry and splits


def test_builtin_datasets() -> None:
    assert {"ecg", "sines"} <= set(DATASETS)
    split = load_dataset("sines")
    assert isinstance(split, SeriesSplit)
    assert (split.n_steps, split.n_channels) == (100, 1)
    assert (split.train.shape[0], split.test.shape[0]) == (410, 102)  # round(512 * 0.2)
    ecg = load_dataset("ecg", test_fraction=0.5)
    assert ecg.n_steps == 187 and ecg.description.startswith("MIT-BIH record 208")


def test_split_deterministic_and_disjoint(numbered) -> None:
    a = load_dataset("numbered", seed=3, test_fraction=0.3)
    b = load_dataset("numbered", seed=3, test_fraction=0.3)
    c = load_dataset("numbered", seed=4, test_fraction=0.3)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.test, c.test)
    train_ids = set(a.train[:, 0, 0].long().tolist())
    test_ids = set(a.test[:, 0, 0].long().tolist())
    assert len(test_ids) == 15 and len(train_ids) == 35
    assert train_ids.isdisjoint(test_ids) and train_ids | test_ids == set(range(50))
    assert a.name == "numbered" and a.description == "50 constant series numbered 0..49."
    assert (a.n_steps, a.n_channels) == (8, 2)


def test_register_dataset_rejects_duplicates(numbered) -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_dataset("numbered")(lambda: torch.zeros(2, 2, 1))


def test_load_dataset_from_file(tmp_path) -> None:
    np.save(tmp_path / "mine.npy", np.random.default_rng(0).normal(size=(10, 6)))
    split = load_dataset(str(tmp_path / "mine.npy"), test_fraction=0.2)
    assert split.name == "mine" and split.train.shape == (8, 6, 1)
    assert split.test.shape == (2, 6, 1)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan"), "0.2"])
def test_load_dataset_rejects_bad_test_fraction(fraction) -> None:
    with pytest.raises(ConfigError, match="test_fraction"):
        load_dataset("sines", test_fraction=fraction)


def test_load_dataset_errors(tmp_path) -> None:
    with pytest.raises(InputError, match=r"unknown dataset 'nonesuch'.*ecg, .*sines"):
        load_dataset("nonesuch")
    with pytest.raises(InputError, match="unknown dataset"):
        load_dataset(str(tmp_path / "missing.npy"))
    with pytest.raises(ConfigError, match="seed"):
        load_dataset("sines", seed=1.5)
    np.save(tmp_path / "one.npy", np.arange(5.0)[None])
    with pytest.raises(InputError, match=r"cannot split 1 series"):
        load_dataset(str(tmp_path / "one.npy"))
    np.save(tmp_path / "three.npy", np.arange(15.0).reshape(3, 5))
    with pytest.raises(InputError, match=r"test \(0\)"):
        load_dataset(str(tmp_path / "three.npy"), test_fraction=0.1)
    np.save(tmp_path / "short.npy", np.zeros((3, 1)))
    with pytest.raises(InputError, match="N >= 2"):
        load_dataset(str(tmp_path / "short.npy"))
