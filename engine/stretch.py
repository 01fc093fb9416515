"""Time-stretching without changing pitch, streamed in blocks (a phase vocoder in bounded memory).

Task
----
Play a recording 0.5×-1.5× as fast at the same pitch. :func:`time_stretch` computes the same
phase vocoder as ``librosa.effects.time_stretch`` (2048-point Hann STFT, hop 512, magnitudes
interpolated between the two analysis frames around each fractional step, phases advanced by the
measured instantaneous frequency, overlap-add normalised by the window's sum of squares) but one
block of output frames at a time: the analysis frames of a block are computed when needed and
the output is written straight into the result. Memory is the result plus a few MB, where the
whole-signal version holds the complex STFT of the input and of the output (≈ 1.5 GB for five
minutes at 44.1 kHz and 0.5×).

Conventions
-----------
- ``speed`` > 1 plays faster: the result is ``round(len(y) / speed)`` samples long.
- Input int16 (full scale 32768) or float; the result has the input's dtype (int16 saturates).
- The phase accumulator is kept modulo 2π (float64), so precision does not decay over long
  signals.
"""
from __future__ import annotations

import numpy as np

from engine.streaming import INT16_SCALE

N_FFT = 2048
HOP = N_FFT // 4          # the overlap-add below relies on N_FFT being 4 hops
BLOCK_FRAMES = 256        # output frames per block (≈ 3 s at 44.1 kHz; a few MB of spectra)
_TWO_PI = 2.0 * np.pi


def _window() -> np.ndarray:
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(_TWO_PI * n / N_FFT)).astype(np.float32)  # periodic Hann, as librosa


def _analysis_frames(y: np.ndarray, first: int, last: int, n_frames: int, window: np.ndarray,
                     scale: float) -> np.ndarray:
    """Spectra of analysis frames ``first..last`` (inclusive) of the centred STFT of ``y``.

    Frame ``j`` covers ``y[j * HOP - N_FFT // 2 : j * HOP + N_FFT // 2]`` (zeros outside ``y``);
    frames at or past ``n_frames`` are zero, like the two columns librosa appends.
    """
    count = last - first + 1
    start = first * HOP - N_FFT // 2
    length = (count - 1) * HOP + N_FFT
    segment = np.zeros(length, dtype=np.float32)
    lo, hi = max(start, 0), min(start + length, len(y))
    if hi > lo:
        segment[lo - start:hi - start] = y[lo:hi]
        if scale != 1.0:
            segment *= np.float32(scale)
    frames = np.lib.stride_tricks.sliding_window_view(segment, N_FFT)[::HOP]
    spectra = np.fft.rfft(frames * window, axis=1).astype(np.complex64)
    if last >= n_frames:
        spectra[max(n_frames - first, 0):] = 0.0
    return spectra


def time_stretch(y: np.ndarray, speed: float, progress=None, cancel=None) -> np.ndarray:
    """``y`` played ``speed`` times as fast, same pitch, computed block by block.

    Parameters
    ----------
    y : np.ndarray, 1-D
        Mono samples, int16 or float.
    speed : float
        > 0; 1 returns ``y`` itself.
    progress : callable(fraction, message), optional
    cancel : callable() -> bool, optional
        Checked between blocks; when True, ``InterruptedError`` is raised.

    Returns
    -------
    np.ndarray, same dtype as ``y``, ``round(len(y) / speed)`` samples.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"time_stretch takes mono samples, not shape {y.shape}")
    if speed <= 0:
        raise ValueError(f"speed must be positive, not {speed}")
    if abs(speed - 1.0) < 1e-6 or len(y) == 0:
        return y
    is_int = y.dtype == np.int16
    scale = 1.0 / INT16_SCALE if is_int else 1.0
    n_out = int(round(len(y) / speed))
    out = np.zeros(n_out, dtype=np.int16 if is_int else y.dtype)
    window = _window()
    n_in_frames = 1 + len(y) // HOP
    steps = np.arange(0, n_in_frames, speed, dtype=np.float64)
    n_frames = len(steps)
    # the phase advance of each bin per hop, modulo 2π (all phases are kept modulo 2π)
    phi_advance = np.mod(HOP * _TWO_PI * np.arange(N_FFT // 2 + 1) / N_FFT, _TWO_PI).astype(np.float32)
    phase = np.angle(_analysis_frames(y, 0, 0, n_in_frames, window, scale)[0]).astype(np.float64)
    carry = np.zeros((3, HOP), dtype=np.float32)      # overlap of earlier frames into the next block
    carry_wss = np.zeros((3, HOP), dtype=np.float32)
    frame_wss = (window * window).reshape(4, HOP)
    for k0 in range(0, n_frames, BLOCK_FRAMES):
        if cancel is not None and cancel():
            raise InterruptedError("time-stretch cancelled")
        if progress is not None:
            progress(k0 / n_frames, f"time-stretching to {speed:g}×")
        k1 = min(k0 + BLOCK_FRAMES, n_frames)
        block_steps = steps[k0:k1]
        index = block_steps.astype(np.int64)
        first = int(index[0])
        spectra = _analysis_frames(y, first, int(index[-1]) + 1, n_in_frames, window, scale)
        magnitude, angle = np.abs(spectra), np.angle(spectra)
        here, after = index - first, index - first + 1
        alpha = (block_steps - index).astype(np.float32)[:, None]
        mag = magnitude[here]
        mag += alpha * (magnitude[after] - mag)
        # instantaneous frequency: the measured phase change, unwrapped around the bin's advance
        dphase = angle[after] - angle[here] - phi_advance
        dphase -= np.float32(_TWO_PI) * np.round(dphase * np.float32(1 / _TWO_PI))
        dphase += phi_advance
        # each frame sounds with the phase accumulated *before* its own increment (as librosa)
        phases = np.cumsum(dphase, axis=0, dtype=np.float64)
        phases -= dphase
        phases += phase
        phase = np.mod(phases[-1] + dphase[-1], _TWO_PI)
        phases = np.mod(phases, _TWO_PI).astype(np.float32)
        spectrum = np.empty(mag.shape, dtype=np.complex64)
        spectrum.real = mag * np.cos(phases)
        spectrum.imag = mag * np.sin(phases)
        frames = np.fft.irfft(spectrum, n=N_FFT, axis=1).astype(np.float32)
        frames *= window
        # overlap-add in units of one hop: frame k covers hops k..k+3 of the uncentred timeline
        count = k1 - k0
        signal = np.zeros((count + 3, HOP), dtype=np.float32)
        wss = np.zeros((count + 3, HOP), dtype=np.float32)
        signal[:3] += carry
        wss[:3] += carry_wss
        quarters = frames.reshape(count, 4, HOP)
        for q in range(4):
            signal[q:q + count] += quarters[:, q]
            wss[q:q + count] += frame_wss[q]
        carry, carry_wss = signal[count:].copy(), wss[count:].copy()
        _write_hops(out, k0, signal[:count], wss[:count], is_int)
    if n_frames:
        _write_hops(out, n_frames, carry, carry_wss, is_int)
    if progress is not None:
        progress(1.0, f"time-stretching to {speed:g}×")
    return out


def _write_hops(out: np.ndarray, first_hop: int, signal: np.ndarray, wss: np.ndarray, is_int: bool) -> None:
    """Normalise finished hops (uncentred hop index ``first_hop`` on) and store them in ``out``."""
    values = np.divide(signal, wss, out=signal, where=wss > np.finfo(np.float32).tiny).ravel()
    start = first_hop * HOP - N_FFT // 2  # the centred STFT's first N_FFT // 2 samples are padding
    lo, hi = max(start, 0), min(start + len(values), len(out))
    if hi <= lo:
        return
    chunk = values[lo - start:hi - start]
    if is_int:
        chunk = np.clip(chunk * INT16_SCALE, -INT16_SCALE, INT16_SCALE - 1)
    out[lo:hi] = chunk
