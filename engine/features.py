"""Features of audio and of MIDI for alignment, and a spectrogram for display.

Task
----
Turn a recording and a MIDI file into sequences of frames that can be compared frame by frame:

- **chroma** (12 pitch classes, log-compressed, L2-normalised) of both sides: harmony, robust to
  timbre. This is what DTW compares.
- **onset strength per pitch class** of the recording: where notes begin. The note-level
  refinement (:mod:`engine.refine`) snaps MIDI onsets to it, which is where precision comes from.

For MIDI there are two ways to its chroma: synthesize it with FluidSynth and analyse the audio like
the recording (``midi_features="synth"``, the classic recipe of pretty_midi's align_midi), or
compute it straight from the piano roll (``"pianoroll"``: no synthesis, fast, less accurate).

Conventions
-----------
- ``sr`` in Hz, ``hop_length`` in samples; frame ``k`` is centred at ``k * hop_length / sr``
  seconds for audio and MIDI alike.
- A chroma matrix has shape (n_frames, 12), rows of unit length, so ``1 - A @ B.T`` is the cosine
  distance.
- The STFT runs in blocks of frames, so memory stays flat for long recordings. One STFT (4096-point
  at 22 050 Hz, 1/3-semitone bins) serves both the display spectrogram and the chroma.
"""
from __future__ import annotations

import numpy as np

N_CHROMA = 12
N_ONSET = 13  # onset feature width of the online follower (engine.follow_features): 12 classes + "none"
BLOCK_SIZES = (N_CHROMA,)
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


def _moving(X, width, reducer):
    """Centred moving ``reducer`` (np.mean or np.max) over ``width`` frames, per column."""
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    if reducer is np.max:
        return maximum_filter1d(X, size=width, axis=0, mode="nearest")
    return uniform_filter1d(X, size=width, axis=0, mode="nearest")


def audio_chroma(y, sr, hop_length, n_fft=4096):
    """Chroma of a recording at ``hop_length`` (see the module conventions).

    Folded from the same 1/3-semitone bins as the display spectrogram, so that the chroma is the
    same whether or not :func:`analyse_recording` also made the display.
    """
    E = pitch_energy(y, sr, hop_length, n_fft, DISPLAY_MIDI_LO, DISPLAY_MIDI_HI, 3)
    return _finish_chroma(_fold_chroma(E, DISPLAY_MIDI_LO, 3))


def analyse_recording(y, sr, hop_length, onset_hop_length, n_fft=4096, n_fft_onset=1024, display_hop_length=None):
    """Everything alignment (and the window) needs of a recording, sharing STFT work.

    Parameters
    ----------
    y : np.ndarray
    sr : int
    hop_length : int
        Hop of the chroma (the DTW frames).
    onset_hop_length : int
        Hop of the onset strength (the refinement's frames; finer).
    display_hop_length : int, optional
        Also return the display spectrogram at this hop. When ``hop_length`` is a multiple of it,
        the chroma is folded from the same STFT instead of a second one.

    Returns
    -------
    dict with ``chroma`` (n, 12), ``onset_strength`` (n_onset, 12) and, if asked for,
    ``display_db`` (n_bins, n_display), ``display_pitches`` (n_bins,), ``display_times_s``.
    """
    out = {"onset_strength": onset_strength_by_pitch_class(y, sr, onset_hop_length, n_fft_onset)}
    if display_hop_length and hop_length % display_hop_length == 0:
        bps = 3
        E = pitch_energy(y, sr, display_hop_length, n_fft, DISPLAY_MIDI_LO, DISPLAY_MIDI_HI, bps)
        out.update(zip(("display_db", "display_pitches", "display_times_s"),
                       _display_from_energy(E, sr, display_hop_length, bps)))
        out["chroma"] = _finish_chroma(_fold_chroma(E[:: hop_length // display_hop_length], DISPLAY_MIDI_LO, bps))
        return out
    out["chroma"] = audio_chroma(y, sr, hop_length, n_fft)
    if display_hop_length:
        out.update(zip(("display_db", "display_pitches", "display_times_s"),
                       spectrogram_for_display(y, sr, display_hop_length, n_fft)))
    return out


def midi_chroma(midi, sr, hop_length, n_frames=None, release_s=0.15, n_fft=4096):
    """Chroma straight from a MIDI's notes (no synthesis).

    Each pitched note adds its velocity to its pitch class from onset to offset (+ ``release_s``),
    with a gentle decay, plus weaker energy on the classes of its 3rd and 5th harmonics (what a
    chroma of real audio also sees). Drums add nothing. The result is smeared by the same Hann
    window the recording's chroma is seen through, so both rise at the same frame.

    Returns
    -------
    C : np.ndarray, float32, shape (n_frames, 12)
    """
    fps = sr / hop_length
    if n_frames is None:
        n_frames = int(np.ceil((midi.get_end_time() + release_s) * fps)) + 1
    chroma = np.zeros((n_frames, 12), dtype=np.float32)
    harmonics = ((0, 1.0), (7, 0.25), (4, 0.1))  # fundamental (+octaves), 3rd, 5th harmonic
    for inst in midi.instruments:
        if inst.is_drum:
            continue
        for note in inst.notes:
            f0 = int(round(note.start * fps))
            if f0 >= n_frames:
                continue
            f1 = min(n_frames, max(f0 + 1, int(round((note.end + release_s) * fps))))
            envelope = note.velocity / 127.0 * np.maximum(np.exp(-np.arange(f1 - f0) / (1.5 * fps)), 0.3)
            for shift, gain in harmonics:
                chroma[f0:f1, (note.pitch + shift) % 12] += gain * envelope
    win = np.hanning(max(1, int(n_fft / hop_length)) + 2)[1:-1]
    chroma = np.apply_along_axis(lambda c: np.convolve(c, win / win.sum(), mode="same"), 0, chroma)
    return _finish_chroma(chroma)


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
    return _display_from_energy(E, sr, hop_length, bins_per_semitone, top_db)


def _display_from_energy(E, sr, hop_length, bins_per_semitone, top_db=80.0):
    power = np.maximum(E, 1e-10) ** 2
    S_db = 10 * np.log10(power / power.max())
    S_db = np.maximum(S_db, -top_db).astype(np.float32).T
    n_bins = S_db.shape[0]
    pitches = DISPLAY_MIDI_LO + (np.arange(n_bins) - (bins_per_semitone - 1) / 2) / bins_per_semitone
    times = np.arange(S_db.shape[1]) * hop_length / sr
    return np.ascontiguousarray(S_db), pitches, times
