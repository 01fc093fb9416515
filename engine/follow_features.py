"""Causal (streaming) chroma + onset features for the online score follower.

Task
----
The alignment features of :mod:`engine.features` look at the whole recording: centred STFT
windows, a global maximum for log compression, centred moving averages and peak picking. A live
follower cannot wait for the future, so this module computes the same kind of features frame by
frame from the samples received so far, with the same building blocks (the log-frequency
filterbank :func:`engine.features._pitch_filterbank`, the pitch-class folding
:func:`engine.features._fold_chroma`, the L2 normalisation):

- **chroma** (12): magnitude of a Hann-windowed FFT *ending* at the frame's time, summed into
  semitone bins (MIDI 24-107), folded into pitch classes, log-compressed against a slowly decaying
  running peak (instead of the global maximum), L2-normalised; silence gives a flat chroma;
- **onsets** (13): half-wave-rectified rise of log semitone energy (MIDI 36-107, a shorter
  window), folded into pitch classes, divided by a decaying running peak, smoothed with a causal
  exponential tail (the IIR form of :func:`engine.features._finish_onsets`), plus the constant
  "no onset" dimension, L2-normalised.

The reference (the MIDI, synthesized) goes through exactly the same extractor as the live audio,
so both sides see the same window lag: matching live frame ``k`` with reference frame ``i`` means
audio time ``(k + 1) * hop_length / sr`` corresponds to MIDI time ``(i + 1) * hop_length / sr``.

Conventions
-----------
- ``sr`` in Hz, ``hop_length`` in samples. Frame ``k`` covers samples
  ``[(k + 1) * hop_length - n_fft, (k + 1) * hop_length)`` (zeros before the start) and is stamped
  with its end time ``(k + 1) * hop_length / sr``.
- A feature row has 25 columns laid out like :mod:`engine.features` (12 chroma × sqrt(chroma_weight),
  13 onsets × sqrt(onset_weight)), so the cost of a pair of frames is
  ``chroma_weight + onset_weight - <a, b>``.
- Work per frame is two small FFTs and two matrix-vector products (bounded, independent of the
  length of the stream).
- :meth:`StreamingFeatures.push` is :meth:`~StreamingFeatures.finish_energies` of
  :meth:`~StreamingFeatures.push_energies`: first the linear energies (what sums over the MIDI's
  parts, :mod:`engine.follow_parts`), then the sequential running-level part (a numba kernel).
"""
from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np
from numba import njit

from engine.features import N_CHROMA, N_ONSET, _fold_chroma, _pitch_filterbank

CHROMA_MIDI_RANGE = (24, 107)
SILENCE_FLOOR = 1e-3  # compressed chroma mass below which a frame reads as mostly flat (silence)
ONSET_MIDI_RANGE = (36, 107)


@dataclass(frozen=True)
class StreamFeatureParams:
    """Parameters of the streaming features (all part of a reference cache key).

    Attributes
    ----------
    sr : int
        Sample rate in Hz of the audio fed in.
    hop_length : int
        Samples between frames.
    n_fft_chroma, n_fft_onset : int
        Window lengths in samples of the two FFTs (windows end at the frame's time).
    chroma_weight, onset_weight : float
        Weights of the two blocks in the cosine cost.
    chroma_gamma : float
        Log compression ``log1p(gamma * C / level)`` of the chroma energies.
    level_half_life_s : float
        Half-life of the running peaks used instead of a global maximum.
    onset_decay_s : float
        Time constant of the onsets' exponential tail.
    onset_threshold : float
        Onset strengths (relative to the running peak) below this are dropped.
    onset_gamma : float
        Log compression ``log1p(gamma * E / level)`` of the semitone energies before the rise is
        taken (a small gamma keeps noise and codec artefacts from looking like onsets).
    flux_floor : float
        Rises smaller than this (in log units, per semitone) are not onsets.
    no_onset_level : float
        Value of the constant "no onset" dimension before normalisation (larger: frames with
        weak onsets look more like frames without).

    The defaults were chosen on three pairs of the alignment benchmark by how well the true
    alignment's cells separate from random cells (chroma: gamma 1 over 10/100, 4096-sample
    window; onsets: gamma 100, floor 0.2, "no onset" 0.5, 2048-sample window), and the onset
    weight by following seven pairs (piano and string quartets): 0.25 kept 72 % of the chunks
    within 100 ms against 50 % with 1.0 (onsets of bowed strings and voices are soft; chroma
    carries them), at a cost of a few ms of median error on piano. A chroma gamma of 10 followed
    the recordings that lost instruments better but those that kept every one worse (91.4 → 90.3 %
    within 100 ms; docs/BENCHMARKS.md, session 24), so the follower's path takes gamma 10 only
    once it leaves parts out (``engine.follow.FollowParams.parts_chroma_gamma``).
    """

    sr: int = 22050
    hop_length: int = 256
    n_fft_chroma: int = 4096
    n_fft_onset: int = 2048
    chroma_weight: float = 1.0
    onset_weight: float = 0.25
    chroma_gamma: float = 1.0
    level_half_life_s: float = 8.0
    onset_decay_s: float = 0.06
    onset_threshold: float = 0.15
    onset_gamma: float = 100.0
    flux_floor: float = 0.2
    no_onset_level: float = 0.5

    @property
    def weight_sum(self) -> float:
        return self.chroma_weight + self.onset_weight

    @property
    def frame_s(self) -> float:
        return self.hop_length / self.sr

    @property
    def window_lag_s(self) -> float:
        """How far a frame's content lies behind its time stamp: the centre of its windows (which
        end at the stamp), the two blocks weighted as in the cost."""
        centre_s = (self.chroma_weight * self.n_fft_chroma + self.onset_weight * self.n_fft_onset) / 2 / self.sr
        return centre_s / self.weight_sum

    def to_dict(self) -> dict:
        return asdict(self)


class StreamingFeatures:
    """Feature frames from audio pushed in chunks of any length (see the module docstring).

    Parameters
    ----------
    params : StreamFeatureParams, optional

    Attributes
    ----------
    n_frames : int
        Frames produced so far.
    n_samples : int
        Samples received so far.
    """

    def __init__(self, params: StreamFeatureParams | None = None):
        self.params = p = params or StreamFeatureParams()
        if p.hop_length <= 0 or p.n_fft_chroma < p.hop_length or p.n_fft_onset < p.hop_length:
            raise ValueError("need 0 < hop_length <= n_fft_onset, n_fft_chroma")
        fb_chroma = _pitch_filterbank(p.sr, p.n_fft_chroma, *CHROMA_MIDI_RANGE, 1)
        # Folding into pitch classes is linear: fold the filterbank once (STFT bins → 12 classes).
        self.chroma_fold = _fold_chroma(np.eye(fb_chroma.shape[1], dtype=np.float32), CHROMA_MIDI_RANGE[0])
        self._fb_chroma = (fb_chroma @ self.chroma_fold).astype(np.float32)
        self._fb_onset = _pitch_filterbank(p.sr, p.n_fft_onset, *ONSET_MIDI_RANGE, 1)
        self._fold_onset = _fold_chroma(np.eye(self._fb_onset.shape[1], dtype=np.float32), ONSET_MIDI_RANGE[0])
        self._win_chroma = np.hanning(p.n_fft_chroma + 1)[:-1].astype(np.float32)
        self._win_onset = np.hanning(p.n_fft_onset + 1)[:-1].astype(np.float32)
        self._history = max(p.n_fft_chroma, p.n_fft_onset)
        fps = p.sr / p.hop_length
        level_decay = float(0.5 ** (1.0 / (p.level_half_life_s * fps)))
        onset_decay = float(np.exp(-1.0 / (p.onset_decay_s * fps)))
        onset_peak_decay = float(0.5 ** (1.0 / (1.0 * fps)))  # ~1 s memory, like features' local_s
        self._decays = np.array([level_decay, onset_peak_decay, onset_decay])
        self._shape = np.array([p.chroma_gamma, p.onset_gamma, p.flux_floor, p.onset_threshold, p.no_onset_level,
                                np.sqrt(p.chroma_weight), np.sqrt(p.onset_weight)])
        self.reset()

    def reset(self) -> None:
        """Forget everything received (a new performance starts)."""
        self._buf = np.zeros(self._history, dtype=np.float32)  # the last n_fft samples, then new ones
        self._pending = 0          # samples in _buf after the last complete frame's end
        self._levels = np.array([1e-6, 1e-6, 1e-6, 0.0])  # chroma level, onset level, flux peak, has a frame
        self._prev_log_energy = np.zeros(self._fb_onset.shape[1])
        self._onset_tail = np.zeros(N_CHROMA)
        self.n_frames = 0
        self.n_samples = 0

    def push(self, samples) -> np.ndarray:
        """Feed mono samples; return the frames completed by them.

        Returns
        -------
        F : np.ndarray, float32, shape (n_new_frames, 25)
        """
        return self.finish_energies(*self.push_energies(samples))

    def push_energies(self, samples) -> tuple[np.ndarray, np.ndarray]:
        """Feed mono samples; return the linear energies of the frames completed by them, before
        the running-level part (:meth:`finish_energies` turns them into feature rows).

        Returns
        -------
        C : np.ndarray, float32, shape (n_new_frames, 12)
            Chroma energies (windowed magnitude folded into pitch classes).
        Eo : np.ndarray, float32, shape (n_new_frames, 72)
            Semitone magnitudes MIDI 36-107 of the onset window.
        """
        p = self.params
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        hop = p.hop_length
        self.n_samples += len(x)
        self._buf = np.concatenate([self._buf, x])
        self._pending += len(x)
        n_new = self._pending // hop
        C = np.zeros((n_new, N_CHROMA), dtype=np.float32)
        Eo = np.zeros((n_new, self._fb_onset.shape[1]), dtype=np.float32)
        if n_new:
            # Frame ends lie at hop, 2 hop, ... past the last complete frame's end.
            first_end = len(self._buf) - self._pending + hop
            C = self._spectra(first_end, n_new, p.n_fft_chroma, self._win_chroma) @ self._fb_chroma
            Eo = self._spectra(first_end, n_new, p.n_fft_onset, self._win_onset) @ self._fb_onset
        self._pending -= n_new * hop
        self._buf = self._buf[-(self._history + self._pending):].copy()
        self.n_frames += n_new
        return C, Eo

    def _spectra(self, first_end: int, n: int, n_fft: int, window: np.ndarray) -> np.ndarray:
        """Magnitude spectra of ``n`` windows of ``n_fft`` samples ending at first_end, + hop, ..."""
        start = first_end - n_fft
        frames = np.lib.stride_tricks.as_strided(
            self._buf[start:], shape=(n, n_fft), strides=(self._buf.strides[0] * self.params.hop_length,
                                                         self._buf.strides[0]), writeable=False)
        return np.abs(np.fft.rfft(frames * window, axis=1)).astype(np.float32)

    def finish_energies(self, C: np.ndarray, Eo: np.ndarray) -> np.ndarray:
        """Feature rows from per-frame energies, continuing this extractor's running state.

        Parameters
        ----------
        C : np.ndarray, shape (n, 12)
            Chroma energies (windowed magnitude folded into pitch classes).
        Eo : np.ndarray, shape (n, 72)
            Semitone magnitudes MIDI 36-107 of the onset window.

        Returns
        -------
        F : np.ndarray, float32, shape (n, 25)
        """
        out = np.empty((len(C), N_CHROMA + N_ONSET), dtype=np.float32)
        if len(C):
            _finish_frames(np.ascontiguousarray(C, dtype=np.float32), np.ascontiguousarray(Eo, dtype=np.float32),
                           self._fold_onset, self._levels, self._prev_log_energy, self._onset_tail,
                           self._decays, self._shape, out)
        return out


@njit(cache=True)
def _finish_frames(C, Eo, fold_onset, levels, prev_log_energy, onset_tail, decays, shape, out):
    """The sequential (running-level) part of the features, frame by frame; updates the state.

    ``levels``: [chroma level, onset level, flux peak, has previous frame];
    ``decays``: [level decay, onset peak decay, onset tail decay];
    ``shape``: [chroma gamma, onset gamma, flux floor, onset threshold, no-onset level,
    sqrt(chroma weight), sqrt(onset weight)].
    """
    n_classes = C.shape[1]
    n_semitones = Eo.shape[1]
    chroma_gamma, onset_gamma, flux_floor, threshold, no_onset, chroma_scale, onset_scale = (
        shape[0], shape[1], shape[2], shape[3], shape[4], shape[5], shape[6])
    chroma = np.empty(n_classes)
    L = np.empty(n_semitones)
    O = np.empty(n_classes)
    for k in range(C.shape[0]):
        # Chroma: compress against a decaying running peak, L2-normalise. A small constant in
        # every class: silence becomes flat, and near-silence fades into flat smoothly (a hard
        # switch made tiny differences of the input flip whole frames).
        levels[0] = max(C[k].max(), levels[0] * decays[0], 1e-6)
        norm = 0.0
        for c in range(n_classes):
            chroma[c] = np.log1p(chroma_gamma * C[k, c] / levels[0]) + SILENCE_FLOOR / n_classes
            norm += chroma[c] * chroma[c]
        norm = max(np.sqrt(norm), 1e-6)
        for c in range(n_classes):
            out[k, c] = chroma[c] / norm * chroma_scale
        # Onsets: rise of log semitone energy per pitch class, against a decaying running peak.
        levels[1] = max(Eo[k].max(), levels[1] * decays[0], 1e-6)
        O[:] = 0.0
        for s in range(n_semitones):
            L[s] = np.log1p(onset_gamma * Eo[k, s] / levels[1])
            rise = L[s] - prev_log_energy[s] - flux_floor if levels[3] > 0 else 0.0
            prev_log_energy[s] = L[s]
            if rise > 0.0:
                for c in range(n_classes):
                    O[c] += rise * fold_onset[s, c]
        levels[3] = 1.0
        levels[2] = max(O.max(), levels[2] * decays[1], 1e-3)
        # Small rises (vibrato, noise, codec artefacts) are not onsets: keep what clears a threshold.
        norm = no_onset * no_onset
        for c in range(n_classes):
            o = min(O[c] / levels[2], 1.0)
            onset_tail[c] = (o if o > threshold else 0.0) + decays[2] * onset_tail[c]
            norm += onset_tail[c] * onset_tail[c]
        norm = max(np.sqrt(norm), 1e-6)
        for c in range(n_classes):
            out[k, n_classes + c] = onset_tail[c] / norm * onset_scale
        out[k, 2 * n_classes] = no_onset / norm * onset_scale


def stream_features(y, params: StreamFeatureParams | None = None) -> np.ndarray:
    """Streaming features of a whole signal (what the live extractor would produce).

    Parameters
    ----------
    y : np.ndarray
        Mono audio at ``params.sr``.
    params : StreamFeatureParams, optional

    Returns
    -------
    F : np.ndarray, float32, shape (len(y) // hop_length, 25)
    """
    extractor = StreamingFeatures(params)
    return extractor.push(y)


class SoundStart:
    """Hears where a performance starts in a live input: the first frame clearly louder than the
    room before it.

    A microphone delivers the room's noise before the player begins (and a recording may open
    with a silence); a follower fed that noise matches it somewhere in the score and starts the
    performance there. So the follower waits until this detector says the sound has started.

    Per feature frame (``hop_length`` samples), the level is the RMS in dBFS of the last
    ``window_length`` samples (the mean removed: a DC offset is not sound). The sound starts at the
    first frame whose level is at least ``level_dbfs`` (loud enough for any input), or at least
    ``rise_db`` above the median level of the ``memory_frames`` frames before it (a rise above the
    room's noise). Digital silence (below ``DIGITAL_SILENCE_DBFS``: a muted input, the zeros a
    driver sends while it opens) is neither sound nor room: a noise that follows it is measured
    as the room, not taken for a start. Until some room has been heard, only ``level_dbfs``
    counts (a quiet first note is taken once it rises above itself).

    Parameters
    ----------
    hop_length, window_length : int
        Samples between frames; samples per level measurement.
    rise_db, level_dbfs : float
    memory_frames : int

    Attributes
    ----------
    start_frame : int or None
        Index of the frame at which the sound started (None while waiting).
    """

    DIGITAL_SILENCE_DBFS = -100.0

    def __init__(self, hop_length: int, window_length: int, rise_db: float, level_dbfs: float,
                 memory_frames: int):
        self.hop_length, self.window_length = int(hop_length), int(window_length)
        self.rise_db, self.level_dbfs, self.memory_frames = float(rise_db), float(level_dbfs), int(memory_frames)
        self.reset()

    def reset(self) -> None:
        self.start_frame = None
        self._buf = np.zeros(0)       # the newest samples (at most window_length before the next frame end)
        self._buf_start = 0            # stream index of _buf[0]
        self._n_frames = 0
        self._room_db = deque(maxlen=self.memory_frames)  # levels of the newest frames heard while waiting

    def push(self, samples) -> int | None:
        """Feed the next samples; return ``start_frame`` (None while the sound has not started)."""
        if self.start_frame is not None:
            return self.start_frame
        self._buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float64).reshape(-1)])
        stream_end = self._buf_start + len(self._buf)
        while (self._n_frames + 1) * self.hop_length <= stream_end:
            end = (self._n_frames + 1) * self.hop_length - self._buf_start
            segment = self._buf[max(0, end - self.window_length):end]
            level_db = 10.0 * np.log10(max(float(np.var(segment)), 1e-30))
            frame, self._n_frames = self._n_frames, self._n_frames + 1
            if level_db < self.DIGITAL_SILENCE_DBFS:
                continue
            room = self._room_db
            if level_db >= self.level_dbfs or (room and level_db >= float(np.median(room)) + self.rise_db):
                self.start_frame = frame
                self._buf = np.zeros(0)
                return frame
            room.append(level_db)
        keep = max(0, (self._n_frames + 1) * self.hop_length - self.window_length - self._buf_start)
        self._buf, self._buf_start = self._buf[keep:], self._buf_start + keep
        return None
