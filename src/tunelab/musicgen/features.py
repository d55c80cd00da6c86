"""Measures of a clip's sound, from a waveform and its sample rate: brightness, pitch and how often notes start.

Used to check that the tiny MusicGen makes prompt-dependent sound and, by a simulated listener, to prefer one
generation over another. numpy only; every function takes a float waveform, mono (samples,) or channels-first
(channels, samples), which is mixed down, and returns a plain float.

- `spectral_centroid`: the magnitude-weighted mean frequency of the whole clip, in Hz (brightness).
- `pitch`: the median fundamental frequency of the clip's voiced frames, in Hz, by autocorrelation (0 if none).
- `onset_rate`: note starts per second, from peaks of the spectral flux (tempo).
- `rms`: the root mean square level.
- `measure`: all of them at once, as `AudioFeatures`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AudioFeatures:
    centroid_hz: float
    pitch_hz: float
    onsets_per_second: float
    rms: float


def measure(wave: Any, sampling_rate: int) -> AudioFeatures:
    """All the measures of one clip."""
    mono = _mono(wave)
    return AudioFeatures(
        centroid_hz=spectral_centroid(mono, sampling_rate),
        pitch_hz=pitch(mono, sampling_rate),
        onsets_per_second=onset_rate(mono, sampling_rate),
        rms=rms(mono),
    )


def rms(wave: Any) -> float:
    mono = _mono(wave)
    return float(np.sqrt(np.mean(mono**2))) if mono.size else 0.0


def spectral_centroid(wave: Any, sampling_rate: int, n_fft: int = 2048) -> float:
    """Mean frequency weighted by the clip's summed STFT magnitudes, in Hz; 0 for silence."""
    magnitudes = np.abs(np.fft.rfft(_frames(_mono(wave), n_fft, n_fft // 4), axis=1)).sum(axis=0)
    total = magnitudes.sum()
    if total <= 1e-9:
        return 0.0
    frequencies = np.fft.rfftfreq(n_fft, 1.0 / sampling_rate)
    return float((frequencies * magnitudes).sum() / total)


def pitch(wave: Any, sampling_rate: int, fmin: float = 40.0, fmax: float = 2_000.0, n_fft: int = 2048) -> float:
    """Median fundamental frequency over the frames within 20 dB of the loudest, in Hz; 0 when none is periodic.

    Per frame, the lag (between 1/fmax and 1/fmin, past the first dip) where the biased autocorrelation peaks;
    the bias toward short lags keeps a harmonic tone from reading an octave low.
    """
    frames = _frames(_mono(wave), n_fft, n_fft // 2)
    energy = (frames**2).sum(axis=1)
    if not frames.size or energy.max() <= 1e-9:
        return 0.0
    voiced = frames[energy >= 0.01 * energy.max()]
    spectra = np.fft.rfft(voiced, n=2 * n_fft, axis=1)
    autocorrelation = np.fft.irfft(np.abs(spectra) ** 2, axis=1)[:, :n_fft]
    lo, hi = int(sampling_rate / fmax), min(int(sampling_rate / fmin), n_fft - 2)
    estimates = []
    for row in autocorrelation:
        if row[0] <= 0:
            continue
        rising = np.flatnonzero(np.diff(row[lo : hi + 1]) > 0)
        if not rising.size:
            continue
        start = lo + int(rising[0])  # past the lobe around lag 0, which is no period
        lag = start + int(np.argmax(row[start : hi + 1]))
        if row[lag] < 0.3 * row[0] or lag == hi:
            continue  # not periodic in range
        left, centre, right = row[lag - 1], row[lag], row[lag + 1]
        curvature = left - 2 * centre + right
        offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
        estimates.append(sampling_rate / (lag + offset))
    return float(np.median(estimates)) if estimates else 0.0


def onset_rate(wave: Any, sampling_rate: int, n_fft: int = 1024, min_gap_s: float = 0.06) -> float:
    """Note starts per second: peaks of the half-wave rectified log-spectral flux standing out of its spread."""
    mono = _mono(wave)
    hop = n_fft // 4
    frames = _frames(mono, n_fft, hop)
    if len(frames) < 3:
        return 0.0
    spectra = np.log1p(100.0 * np.abs(np.fft.rfft(frames, axis=1)))
    flux = np.maximum(np.diff(spectra, axis=0), 0.0).sum(axis=1)
    if flux.max() <= 1e-9:
        return 0.0
    threshold = np.median(flux) + 0.3 * (flux.max() - np.median(flux))
    gap = max(1, int(min_gap_s * sampling_rate / hop))
    peaks = 0
    for index, value in enumerate(flux):
        window = flux[max(0, index - gap) : index + gap + 1]
        if value >= threshold and value == window.max():
            peaks += 1
    return peaks * sampling_rate / len(mono)


def _mono(wave: Any) -> np.ndarray:
    """float64 samples; a (channels, samples) array (or one with more leading axes) is averaged down."""
    array = np.asarray(wave, dtype=np.float64)
    if array.ndim == 0:
        return array.reshape(1)
    return array.reshape(-1, array.shape[-1]).mean(axis=0) if array.ndim > 1 else array


def _frames(mono: np.ndarray, size: int, hop: int) -> np.ndarray:
    """(frames, size) Hann-windowed frames; a clip shorter than one frame is zero-padded to one."""
    if mono.size < size:
        mono = np.pad(mono, (0, size - mono.size))
    count = 1 + (mono.size - size) // hop
    index = np.arange(size)[None, :] + hop * np.arange(count)[:, None]
    return mono[index] * np.hanning(size)[None, :]
