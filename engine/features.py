"""Features of audio and of MIDI for alignment, and a spectrogram for display.

Task
----
Turn a recording and a MIDI file into sequences of frames that can be compared frame by frame:

- **chroma** (12 pitch classes, log-compressed, L2-normalised): harmony, robust to timbre;
- **onsets** (12 pitch classes, decaying, L2-normalised, with a "no onset" dimension): where notes
  begin, which pins the path down to a frame (the idea of Sync Toolbox's DLNCO features).

For MIDI there are two ways to the same features: straight from the piano roll (no synthesis: fast,
``midi_features="pianoroll"``) or by synthesizing it with FluidSynth and analysing the audio like
the recording (``"synth"``, the classic recipe of pretty_midi's align_midi).

Conventions
-----------
- ``sr`` in Hz, ``hop_length`` in samples; frame ``k`` is centred at ``k * hop_length / sr``
  seconds for audio and MIDI alike.
- A feature matrix has shape (n_frames, 25): columns 0-11 chroma × sqrt(chroma_weight), columns
  12-24 onsets × sqrt(onset_weight) (the last onset column is the "no onset" dimension), so that
  ``weight_sum - A @ B.T`` is the weighted sum of the two cosine distances.
- The STFT runs in blocks of frames, so memory stays flat for long recordings.
"""
from __future__ import annotations

import numpy as np

N_CHROMA = 12
N_ONSET = 13  # 12 pitch classes + a "no onset" dimension
BLOCK_SIZES = (N_CHROMA, N_ONSET)
DISPLAY_MIDI_LO, DISPLAY_MIDI_HI = 21, 108  # the piano's keys, A0..C8


def _pitch_filterbank(sr, n_fft, midi_lo, midi_hi, bins_per_semitone):
    """Sparse-ish matrix (n_fft//2+1, n_pitch_bins) summing STFT bins into log-frequency bins.

    Each STFT bin goes to the nearest pitch bin; pitch bins that no STFT bin falls into (low notes,
    where the STFT is coarser than a semitone) take linearly interpolated neighbours instead.
    """
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    n_bins = (midi_hi - midi_lo + 1) * bins_per_semitone
    centres = midi_lo + (np.arange(n_bins) - (bins_per_semitone - 1) / 2) / bins_per_semitone
    fb = np.zeros((len(freqs), n_bins), dtype=np.float32)
    with np.errstate(divide="ignore"):
        pitch_of_bin = 69 + 12 * np.log2(np.maximum(freqs, 1e-6) / 440.0)
    idx = np.round((pitch_of_bin - centres[0]) * bins_per_semitone).astype(int)
    ok = (idx >= 0) & (idx < n_bins) & (freqs > 0)
    fb[np.nonzero(ok)[0], idx[ok]] = 1.0
    empty = np.nonzero(fb.sum(axis=0) == 0)[0]
    for b in empty:  # interpolate between the two STFT bins around this pitch
        f = 440.0 * 2 ** ((centres[b] - 69) / 12)
        k = f * n_fft / sr
        k0 = int(np.floor(k))
        if 0 <= k0 < len(freqs) - 1:
            fb[k0, b] += 1 - (k - k0)
            fb[k0 + 1, b] += k - k0
    return fb


def pitch_energy(y, sr, hop_length, n_fft, midi_lo=21, midi_hi=108, bins_per_semitone=1, block_frames=1024):
    """Magnitude in log-frequency bins, frame by frame (centred Hann STFT, computed in blocks).

    Returns
    -------
    E : np.ndarray, float32, shape (n_frames, n_pitch_bins)
        Summed magnitude per pitch bin; ``n_frames = 1 + len(y) // hop_length``.
    """
    fb = _pitch_filterbank(sr, n_fft, midi_lo, midi_hi, bins_per_semitone)
    y = np.pad(np.asarray(y, dtype=np.float32), n_fft // 2)
    n_frames = 1 + (len(y) - n_fft) // hop_length
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    out = np.empty((n_frames, fb.shape[1]), dtype=np.float32)
    strides = (y.strides[0] * hop_length, y.strides[0])
    for start in range(0, n_frames, block_frames):
        stop = min(n_frames, start + block_frames)
        frames = np.lib.stride_tricks.as_strided(y[start * hop_length:], shape=(stop - start, n_fft), strides=strides)
        mag = np.abs(np.fft.rfft(frames * window, axis=1)).astype(np.float32)
        out[start:stop] = mag @ fb
    return out


def _fold_chroma(E, midi_lo, bins_per_semitone=1):
    """Sum log-frequency bins into 12 pitch classes (class 0 = C)."""
    n_bins = E.shape[1]
    pitch = midi_lo + np.arange(n_bins) // bins_per_semitone
    C = np.zeros((E.shape[0], 12), dtype=np.float32)
    for pc in range(12):
        C[:, pc] = E[:, (pitch % 12) == pc].sum(axis=1)
    return C


def _normalise_rows(X, floor=1e-6):
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, floor)


def _finish_chroma(C, gamma=100.0):
    """Log-compress, then L2-normalise; silent frames become a flat (uninformative) chroma."""
    C = np.log1p(gamma * C / max(float(C.max()), 1e-9))
    flat = C.sum(axis=1) < 1e-3
    C[flat] = 1.0
    return _normalise_rows(C)


def _finish_onsets(O, fps, decay_s=0.06):
    """Smooth onset impulses with a short decaying tail (DLNCO-like), add "no onset", normalise.

    ``O`` is (n_frames, 12): onset strength per pitch class; a 13th column, a small constant,
    so that frames without onsets match each other.
    """
    O = np.minimum(O / max(float(O.max()), 1e-9), 1.0)
    k = max(1, int(round(4 * decay_s * fps)))
    kernel = np.exp(-np.arange(k) / (decay_s * fps)).astype(np.float32)
    smoothed = np.empty_like(O)
    for c in range(O.shape[1]):
        smoothed[:, c] = np.convolve(O[:, c], kernel)[: O.shape[0]]
    out = np.concatenate([smoothed, np.full((O.shape[0], 1), 0.1, dtype=np.float32)], axis=1)
    return _normalise_rows(out)


def _assemble(chroma, onsets, chroma_weight, onset_weight):
    return np.concatenate([chroma * np.sqrt(chroma_weight), onsets * np.sqrt(onset_weight)], axis=1).astype(np.float32)


def onset_strength_by_pitch_class(y, sr, hop_length, n_fft=1024, local_s=1.0):
    """Onset strength per pitch class: rises of log energy per semitone, locally normalised.

    Half-wave-rectified frame-to-frame increase of log-compressed semitone energies (MIDI 36-107),
    folded into 12 pitch classes, minus a short moving average (steady vibrato and noise), divided
    by a local maximum over ``local_s`` seconds (so quiet passages count as much as loud ones).

    Returns
    -------
    O : np.ndarray, float32, shape (n_frames, 12), values in [0, 1]
        Frame ``k`` measures the rise between frames ``k - 1`` and ``k``, i.e. an onset at about
        ``(k - 0.5) * hop_length / sr`` seconds.
    """
    E = pitch_energy(y, sr, hop_length, n_fft, 36, 107)
    L = np.log1p(1000.0 * E / max(float(E.max()), 1e-9))
    flux = np.maximum(np.diff(L, axis=0, prepend=L[:1]), 0.0)
    O = _fold_chroma(flux, 36)
    fps = sr / hop_length
    O = np.maximum(O - _moving(O, max(3, int(0.1 * fps)), np.mean), 0.0)
    peak = _moving(O.max(axis=1, keepdims=True), max(3, int(local_s * fps)), np.max)
    return (O / np.maximum(peak, 1e-3 * max(float(O.max()), 1e-9))).astype(np.float32)


def _peaks(O, threshold=0.15):
    """Keep only local maxima in time above ``threshold``: sparse onset impulses like the MIDI's."""
    prev = np.vstack([O[:1], O[:-1]])
    nxt = np.vstack([O[1:], O[-1:]])
    return np.where((O >= prev) & (O > nxt) & (O > threshold), O, 0.0).astype(np.float32)


def _moving(X, width, reducer):
    """Centred moving ``reducer`` (np.mean or np.max) over ``width`` frames, per column."""
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    if reducer is np.max:
        return maximum_filter1d(X, size=width, axis=0, mode="nearest")
    return uniform_filter1d(X, size=width, axis=0, mode="nearest")


def audio_features(y, sr, hop_length, n_fft_chroma=4096, n_fft_onset=1024, chroma_weight=1.0, onset_weight=1.0,
                   return_onset_strength=False):
    """Chroma + onset features of a recording.

    Returns
    -------
    F : np.ndarray, float32, shape (n_frames, 25)
        See the module conventions.
    O : np.ndarray, float32, shape (n_frames, 12)
        Only if ``return_onset_strength``: :func:`onset_strength_by_pitch_class`.
    """
    E = pitch_energy(y, sr, hop_length, n_fft_chroma, 24, 107)
    chroma = _finish_chroma(_fold_chroma(E, 24))
    O = onset_strength_by_pitch_class(y, sr, hop_length, n_fft_onset)
    onsets = _finish_onsets(_peaks(O), sr / hop_length)
    n = min(len(chroma), len(onsets))
    F = _assemble(chroma[:n], onsets[:n], chroma_weight, onset_weight)
    return (F, O[:n]) if return_onset_strength else F


def midi_features(midi, sr, hop_length, n_frames=None, chroma_weight=1.0, onset_weight=1.0, release_s=0.15,
                  n_fft_chroma=4096):
    """Chroma + onset features straight from a MIDI's notes (no synthesis).

    Each pitched note adds its velocity to its pitch class from onset to offset (+ ``release_s``),
    with a gentle decay, plus weaker energy on the classes of its 3rd and 5th harmonics (what a
    chroma of real audio also sees); its onset adds an impulse. Drum notes add onsets to every
    group at a lower weight and no chroma.

    Returns
    -------
    F : np.ndarray, float32, shape (n_frames, 25)
    """
    fps = sr / hop_length
    if n_frames is None:
        n_frames = int(np.ceil((midi.get_end_time() + release_s) * fps)) + 1
    chroma = np.zeros((n_frames, 12), dtype=np.float32)
    onset_pc = np.zeros((n_frames, 12), dtype=np.float32)
    harmonics = ((0, 1.0), (7, 0.25), (4, 0.1))  # fundamental (+octaves), 3rd, 5th harmonic
    for inst in midi.instruments:
        for note in inst.notes:
            f0 = int(round(note.start * fps))
            if f0 >= n_frames:
                continue
            v = note.velocity / 127.0
            if inst.is_drum:
                onset_pc[f0, :] += 0.3 * v
                continue
            onset_pc[f0, note.pitch % 12] += v
            f1 = min(n_frames, max(f0 + 1, int(round((note.end + release_s) * fps))))
            envelope = v * np.maximum(np.exp(-np.arange(f1 - f0) / (1.5 * fps)), 0.3)
            for shift, gain in harmonics:
                chroma[f0:f1, (note.pitch + shift) % 12] += gain * envelope
    # The recording's chroma is seen through a Hann window of n_fft_chroma samples centred on each
    # frame, so it rises ~half a window before an onset; smear the MIDI's the same way.
    win = np.hanning(max(3, int(n_fft_chroma / hop_length)) + 2)[1:-1]
    chroma = np.apply_along_axis(lambda c: np.convolve(c, win / win.sum(), mode="same"), 0, chroma)
    chroma = _finish_chroma(chroma)
    onsets = _finish_onsets(onset_pc, fps)
    return _assemble(chroma, onsets, chroma_weight, onset_weight)


def spectrogram_for_display(y, sr, hop_length=512, n_fft=4096, bins_per_semitone=3, top_db=80.0):
    """A log-frequency spectrogram whose rows line up with piano keys, in dB.

    Parameters
    ----------
    y : np.ndarray
        Mono audio.
    sr : int
    hop_length : int
    n_fft : int
    bins_per_semitone : int
        Rows per piano key; row centres are spaced 1/bins_per_semitone semitone apart and the middle
        row of each key sits on the key's pitch.
    top_db : float
        Dynamic range kept below the maximum.

    Returns
    -------
    S_db : np.ndarray, float32, shape (n_bins, n_frames)
        Rows from A0 (MIDI 21) up to C8 (MIDI 108); 0 dB is the loudest cell.
    bin_midi_pitches : np.ndarray, shape (n_bins,)
        MIDI pitch (fractional) at the centre of each row.
    times_s : np.ndarray, shape (n_frames,)
    """
    E = pitch_energy(y, sr, hop_length, n_fft, DISPLAY_MIDI_LO, DISPLAY_MIDI_HI, bins_per_semitone)
    power = np.maximum(E, 1e-10) ** 2
    S_db = 10 * np.log10(power / power.max())
    S_db = np.maximum(S_db, -top_db).astype(np.float32).T
    n_bins = S_db.shape[0]
    pitches = DISPLAY_MIDI_LO + (np.arange(n_bins) - (bins_per_semitone - 1) / 2) / bins_per_semitone
    times = np.arange(S_db.shape[1]) * hop_length / sr
    return np.ascontiguousarray(S_db), pitches, times
