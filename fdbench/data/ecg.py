"""Real ECG heartbeats from the embedded MIT-BIH record 208 excerpt.

The embedded ``embedded/ecg.dat`` is the excerpt that scipy 1.11/1.12 shipped as
``scipy/misc/ecg.dat`` (see ``embedded/README.md`` for attribution and licence): 5 min
of lead MLII at 360 Hz from MIT-BIH Arrhythmia Database record 208 (Moody & Mark 2001).
:func:`segment_heartbeats` cuts it into fixed-length beats the way the Kaggle heartbeat
dataset was built (Kachuee, Fazeli & Sarrafzadeh 2018), so the benchmark has a small real
data set of the shape the base paper uses (N = 187, M = 1) that loads offline.
"""

from __future__ import annotations

from fractions import Fraction
from importlib import resources

import numpy as np
import scipy.ndimage
import scipy.signal
import torch
from torch import Tensor

from fdbench.errors import ConfigError, InputError

ECG_FS = 360.0  # Hz, MIT-BIH sampling rate
ECG_ADC_ZERO = 1024  # ADC value of 0 mV in the scipy excerpt
ECG_ADC_GAIN = 200.0  # ADC units per mV
KAGGLE_FS = 125.0  # Hz, the rate of the Kaggle heartbeat CSVs
KAGGLE_LENGTH = 187  # samples per beat in the Kaggle heartbeat CSVs
WINDOW_S = 10.0  # Kachuee et al. Sec. III.A, step 1


def load_ecg_record() -> np.ndarray:
    """The embedded ECG excerpt in millivolts: float64, shape (108000,), 360 Hz.

    mV = (v - 1024) / 200 for the stored uint16 ADC values ``v`` (scipy's
    ``scipy.misc.electrocardiogram`` conversion)."""
    source = resources.files("fdbench.data").joinpath("embedded", "ecg.dat")
    # as_file gives a real path even if the package is installed zipped
    with resources.as_file(source) as path, np.load(path) as archive:
        adc = archive["ecg"]
    return (adc.astype(np.float64) - ECG_ADC_ZERO) / ECG_ADC_GAIN


def _odd(n: float) -> int:
    """The odd integer nearest to n (median filters need an odd width)."""
    k = max(1, int(round(n)))
    return k if k % 2 else k + 1


def remove_baseline(signal: np.ndarray, fs: float) -> np.ndarray:
    """Subtract baseline wander estimated by a 200 ms then a 600 ms median filter
    (de Chazal, O'Dwyer & Reilly 2004, IEEE TBME 51(7), Sec. II.B).

    The 200 ms filter removes QRS complexes and P waves, the 600 ms one T waves; what is
    left is the slow baseline."""
    baseline = scipy.ndimage.median_filter(signal, size=_odd(0.2 * fs), mode="nearest")
    baseline = scipy.ndimage.median_filter(baseline, size=_odd(0.6 * fs), mode="nearest")
    return signal - baseline


def _local_maxima(window: np.ndarray) -> np.ndarray:
    """Indices where the first difference crosses zero from + to - (local maxima)."""
    slope = np.diff(window)
    return np.nonzero((slope[:-1] > 0) & (slope[1:] <= 0))[0] + 1


def _suppress_close(peaks: np.ndarray, heights: np.ndarray, min_gap: int) -> np.ndarray:
    """Keep the highest of any maxima closer than ``min_gap`` samples, in time order."""
    kept: list[int] = []
    for i in np.argsort(-heights, kind="stable"):
        if all(abs(int(peaks[i]) - k) >= min_gap for k in kept):
            kept.append(int(peaks[i]))
    return np.array(sorted(kept), dtype=np.int64)


def segment_heartbeats(signal: np.ndarray, fs: float = ECG_FS, *,
                       target_fs: float = KAGGLE_FS, length: int = KAGGLE_LENGTH,
                       threshold: float = 0.6, refractory_s: float = 0.2,
                       baseline: bool = True) -> np.ndarray:
    """Cut a single-lead ECG into fixed-length heartbeats, Kaggle-style.

    Follows the beat extraction of Kachuee, Fazeli & Sarrafzadeh (2018), "ECG Heartbeat
    Classification: A Deep Transferable Representation", IEEE ICHI, Sec. III.A, which
    built the Kaggle MIT-BIH heartbeat CSVs (125 Hz, 187 samples per beat):

    1. resample to ``target_fs`` (125 Hz; 360 -> 125 is the exact ratio 25/72);
    2. split into non-overlapping 10 s windows (a last partial window is dropped);
    3. normalise each window's amplitude to [0, 1];
    4. local maxima = zero crossings of the first derivative;
    5. R-peak candidates = local maxima above ``threshold``;
    6. nominal heartbeat period T = median R-R interval in the window;
    7. for each R peak, the segment of length 1.2 T starting at the R peak;
    8. zero-pad each segment to ``length``.

    Two departures from the paper, both needed on record 208 (frequent PVCs up to twice
    the normal R amplitude, baseline wander near 1 mV), where the literal recipe keeps only
    ~120 of the ~500 beats: baseline wander is removed first (:func:`remove_baseline`), and
    the threshold is 0.6 instead of 0.9 with a ``refractory_s`` (200 ms, the ventricular
    refractory period) suppression of lower maxima near a higher one, so the lower
    threshold does not pick up two maxima of one QRS complex. ``threshold=0.9,
    refractory_s=0, baseline=False`` is the paper's literal recipe. Segments that would
    run past their window's end, and windows with fewer than two R peaks, are dropped;
    segments longer than ``length`` (T > 1.25 s at 125 Hz) are truncated.

    Values lie in [0, 1] (per-window normalisation, as in the Kaggle CSVs); each beat's
    tail after 1.2 T is exactly zero, so per-position statistics over beats have zero
    spread there (see :class:`fdbench.data.standardise.Standardiser`).

    Args:
        signal: (T,) ECG samples, any unit.
        fs: sampling rate of ``signal`` in Hz.
    Returns:
        (n_beats, length) float64 array.
    """
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 1:
        raise InputError(f"ECG signal must be 1-D, got shape {signal.shape}")
    if not np.all(np.isfinite(signal)):
        raise InputError("ECG signal contains NaN or Inf")
    if fs <= 0 or target_fs <= 0:
        raise ConfigError(f"sampling rates must be > 0, got fs={fs}, target_fs={target_fs}")
    if length < 2:
        raise ConfigError(f"length must be >= 2, got {length}")
    if not 0.0 <= threshold < 1.0:
        raise ConfigError(f"threshold must be in [0, 1), got {threshold}")

    # 1. Resample with a polyphase filter: the exact rational ratio avoids FFT-resampling
    #    edge ringing, and its anti-aliasing filter matters when downsampling.
    up, down = _rational_ratio(target_fs, fs)
    x = scipy.signal.resample_poly(signal, up, down)
    if baseline:
        # Before windowing: a window-wide min-max scale of a drifting signal leaves most
        # R peaks far below the window's maximum.
        x = remove_baseline(x, target_fs)

    window_len = int(round(WINDOW_S * target_fs))
    min_gap = int(round(refractory_s * target_fs))
    beats: list[np.ndarray] = []
    # 2. Non-overlapping 10 s windows: each window is normalised on its own.
    for start in range(0, len(x) - window_len + 1, window_len):
        w = x[start:start + window_len]
        # 3. Min-max normalisation: R-peak threshold and beat values become unit-free.
        span = w.max() - w.min()
        if span <= 0:
            continue  # a flat window has no beats
        w = (w - w.min()) / span
        # 4.-5. R-peak candidates: local maxima high enough to be R waves.
        peaks = _local_maxima(w)
        peaks = peaks[w[peaks] > threshold]
        if min_gap > 1:
            peaks = _suppress_close(peaks, w[peaks], min_gap)
        if len(peaks) < 2:
            continue  # no R-R interval, so no period T
        # 6. Nominal period: the median is robust to a missed or extra peak.
        period = float(np.median(np.diff(peaks)))
        seg_len = int(round(1.2 * period))
        for r in peaks:
            # 7. 1.2 T from the R peak spans the beat and the start of the next P wave.
            if r + seg_len > window_len:
                continue  # cut off by the window end: its padding would start mid-beat
            beat = np.zeros(length)
            # 8. Zero-pad (or truncate) to the fixed length the models need.
            n = min(seg_len, length)
            beat[:n] = w[r:r + n]
            beats.append(beat)
    return np.stack(beats) if beats else np.zeros((0, length))


def _rational_ratio(target_fs: float, fs: float) -> tuple[int, int]:
    """(up, down) with up/down = target_fs/fs, reduced (360 -> 125 Hz gives 25/72)."""
    ratio = Fraction(target_fs).limit_denominator(10_000) / Fraction(fs).limit_denominator(
        10_000)
    return ratio.numerator, ratio.denominator


def load_ecg_beats() -> Tensor:
    """Heartbeats of the embedded record: float32 tensor (n_beats, 187, 1) in [0, 1],
    from :func:`segment_heartbeats` with its defaults."""
    beats = segment_heartbeats(load_ecg_record(), ECG_FS)
    return torch.from_numpy(beats).to(torch.float32).unsqueeze(-1)  # (B, N, 1)
