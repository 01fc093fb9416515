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


def pitch_energy(y, sr, hop_length, n_fft, midi_lo=21, midi_hi=108, bins_per_semitone=1, block_frames=256):
    """Magnitude in log-frequency bins, frame by frame (centred Hann STFT, computed in blocks).

    Returns
    -------
    E : np.ndarray, float32, shape (n_frames, n_pitch_bins)
        Summed magnitude per pitch bin; ``n_frames = 1 + len(y) // hop_length``.
    """
    import scipy.fft
    import scipy.sparse

    fb = _pitch_filterbank(sr, n_fft, midi_lo, midi_hi, bins_per_semitone)
    # Only the STFT bins the filterbank reads (up to C8 of 2049 for a 4096-point FFT: about a
    # third) are turned into magnitudes and summed; the rest would only add zeros. The filterbank
    # has about one entry per STFT bin: as a sparse matrix the sum is a few times cheaper than a
    # dense product, and single-threaded (a threaded BLAS spins on a shared 2-core machine).
    used = np.nonzero(fb.any(axis=1))[0]
    k0, k1 = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 1)
    n_bins = fb.shape[1]
    fb = scipy.sparse.csc_matrix(fb[k0:k1])
    y = np.ascontiguousarray(y, dtype=np.float32)
    half = n_fft // 2
    n_frames = 1 + (len(y) + 2 * half - n_fft) // hop_length
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    out = np.empty((n_frames, n_bins), dtype=np.float32)
    strides = (y.strides[0] * hop_length, y.strides[0])
    windowed = np.empty((min(block_frames, n_frames), n_fft), dtype=np.float32)  # reused by every block
    for start in range(0, n_frames, block_frames):
        stop = min(n_frames, start + block_frames)
        # Samples of this block's frames; zero-padded (centred frames) only at the two ends, so
        # no padded copy of the whole signal is ever made.
        a, b = start * hop_length - half, (stop - 1) * hop_length - half + n_fft
        if a >= 0 and b <= len(y):
            segment = y[a:b]
        else:
            segment = np.zeros(b - a, dtype=np.float32)
            segment[max(a, 0) - a:min(b, len(y)) - a] = y[max(a, 0):min(b, len(y))]
        frames = np.lib.stride_tricks.as_strided(segment, shape=(stop - start, n_fft), strides=strides)
        # scipy's FFT stays in float32 (complex64) and is ~3x faster than numpy's here.
        block = np.multiply(frames, window, out=windowed[:stop - start])
        spectrum = scipy.fft.rfft(block, axis=1, overwrite_x=True)
        out[start:stop] = np.abs(spectrum[:, k0:k1]) @ fb
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
    Sharp in time (a 46 ms window): the last, one-frame snap of each note onset uses it; the fine
    DTW uses the vibrato-robust :func:`fine_features` onsets instead.

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


FINE_MIDI_LO, FINE_MIDI_HI, FINE_BINS_PER_SEMITONE = 21, 108, 3
ONSET_MIDI_LO = 36  # below C2 a 2048-point STFT has about one bin per semitone: onsets there are mostly noise
ONSET_LAG_FRAMES = 2


def _superflux_by_pitch_class(E, fps, local_s=1.0):
    """Onset strength per pitch class from 1/3-semitone magnitudes, vibrato-suppressed.

    SuperFlux-style (Böck & Widmer 2013): the increase of log-compressed 1/3-semitone energies
    (MIDI 36 up) over ``ONSET_LAG_FRAMES`` frames, measured against the maximum of the three
    neighbouring bins a lag earlier (so vibrato and glides, which only move energy between
    neighbouring bins, do not count), half-wave rectified and folded into 12 pitch classes; then
    minus a short moving average and divided by a local maximum over ``local_s`` seconds. On the
    alignment benchmark, with a 2048-point window, it finds the onsets of slow-attack sounds
    (strings, voices, winds) better than :func:`onset_strength_by_pitch_class`.
    Frame ``k`` measures the rise into frame ``k`` (same convention).
    """
    E = E[:, (ONSET_MIDI_LO - FINE_MIDI_LO) * FINE_BINS_PER_SEMITONE:]
    gain, lag = np.float32(1000.0 / max(float(E.max()), 1e-9)), ONSET_LAG_FRAMES
    O = np.zeros((len(E), 12), dtype=np.float32)
    # In blocks of frames (overlapping by the lag): a long recording's 1/3-semitone arrays are
    # ~100 MB each, and only the folded result is kept.
    for start in range(lag, len(E), 4096):
        stop = min(len(E), start + 4096)
        L = np.log1p(gain * E[start - lag:stop])
        # The maximum over ±1/3 semitone a lag earlier (vibrato suppression; slices: several times
        # faster than scipy's maximum_filter1d across this axis).
        earlier = L[:-lag].copy()
        np.maximum(earlier[:, 1:], L[:-lag, :-1], out=earlier[:, 1:])
        np.maximum(earlier[:, :-1], L[:-lag, 1:], out=earlier[:, :-1])
        flux = np.maximum(L[lag:] - earlier, 0.0)
        O[start:stop] = _fold_chroma(flux, ONSET_MIDI_LO, FINE_BINS_PER_SEMITONE)
    O = np.maximum(O - _moving(O, max(3, int(0.1 * fps)), np.mean), 0.0)
    peak = _moving(O.max(axis=1, keepdims=True), max(3, int(local_s * fps)), np.max)
    return (O / np.maximum(peak, 1e-3 * max(float(O.max()), 1e-9))).astype(np.float32)


def fine_features(y, sr, hop_length, n_fft=2048, chroma_pool=4):
    """What the note-level alignment pass compares: fine chroma and onsets, from one STFT.

    Parameters
    ----------
    y : np.ndarray
        Mono audio (a recording, or a synthesized MIDI).
    sr : int
    hop_length : int
        The fine hop (256 samples: 11.6 ms at 22 050 Hz).
    n_fft : int
    chroma_pool : int
        ``chroma_energy`` sums this many fine frames: the DTW hop over the fine hop.

    Returns
    -------
    dict
        ``fine_chroma`` (n, 12): unit chroma at ``hop_length``; ``onset_strength`` (n, 12): the
        vibrato-robust onsets of :func:`_superflux_by_pitch_class`; ``chroma_energy`` (ceil(n / chroma_pool), 12): the
        linear (uncompressed) pitch-class magnitudes, summed over ``chroma_pool`` frames centred on
        each DTW frame, for estimating which instruments of a MIDI a recording contains.
    """
    E = pitch_energy(y, sr, hop_length, n_fft, FINE_MIDI_LO, FINE_MIDI_HI, FINE_BINS_PER_SEMITONE)
    C = _fold_chroma(E, FINE_MIDI_LO, FINE_BINS_PER_SEMITONE)
    n_coarse = -(-len(C) // chroma_pool)
    # DTW frame k is centred on fine frame k * chroma_pool: sum the fine frames around it.
    padded = np.pad(C, ((chroma_pool // 2, n_coarse * chroma_pool - len(C) - chroma_pool // 2 + chroma_pool), (0, 0)))
    energy = padded[:n_coarse * chroma_pool].reshape(n_coarse, chroma_pool, 12).sum(axis=1)
    return {"fine_chroma": _finish_chroma(C), "onset_strength": _superflux_by_pitch_class(E, sr / hop_length),
            "chroma_energy": energy.astype(np.float32)}


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


def analyse_recording(y, sr, hop_length, onset_hop_length, n_fft=4096, n_fft_onset=2048, display_hop_length=None,
                      on_display=None, fine=True):
    """Everything alignment (and the window) needs of a recording, sharing STFT work.

    Parameters
    ----------
    y : np.ndarray
    sr : int
    hop_length : int
        Hop of the chroma (the DTW frames).
    onset_hop_length : int
        Hop of the fine chroma and the onset strength (the note-level pass's frames; finer), a
        divisor of ``hop_length``.
    display_hop_length : int, optional
        Also return the display spectrogram at this hop. When ``hop_length`` is a multiple of it,
        the chroma is folded from the same STFT instead of a second one.
    on_display : callable(display_db, display_pitches, display_times_s), optional
        Called as soon as the display spectrogram is made, before the slower note-level features
        (a window can draw the recording meanwhile).
    fine : bool
        Also the note-level features (``fine_features``, ``snap_onset_strength``); matching needs
        only the chroma.

    Returns
    -------
    dict with ``chroma`` (n, 12), the arrays of :func:`fine_features` (``fine_chroma``,
    ``onset_strength``, ``chroma_energy``), ``snap_onset_strength`` (n_onset, 12:
    :func:`onset_strength_by_pitch_class`) and, if asked for, ``display_db`` (n_bins, n_display),
    ``display_pitches`` (n_bins,), ``display_times_s``.
    """
    out = {}
    if display_hop_length and hop_length % display_hop_length == 0:
        bps = 3
        E = pitch_energy(y, sr, display_hop_length, n_fft, DISPLAY_MIDI_LO, DISPLAY_MIDI_HI, bps)
        out["chroma"] = _finish_chroma(_fold_chroma(E[:: hop_length // display_hop_length], DISPLAY_MIDI_LO, bps))
        display = _display_from_energy(E, sr, display_hop_length, bps, in_place=True)  # E is done with
        del E
    else:
        out["chroma"] = audio_chroma(y, sr, hop_length, n_fft)
        display = spectrogram_for_display(y, sr, display_hop_length, n_fft) if display_hop_length else None
    if display is not None:
        out.update(zip(("display_db", "display_pitches", "display_times_s"), display))
        if on_display is not None:
            on_display(*display)
    if fine:
        out.update(fine_features(y, sr, onset_hop_length, n_fft_onset, chroma_pool=hop_length // onset_hop_length))
        out["snap_onset_strength"] = onset_strength_by_pitch_class(y, sr, onset_hop_length)
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
    chroma = _notes_chroma_energy(midi.instruments, fps, n_frames, release_s)
    win = np.hanning(max(1, int(n_fft / hop_length)) + 2)[1:-1]
    chroma = np.apply_along_axis(lambda c: np.convolve(c, win / win.sum(), mode="same"), 0, chroma)
    return _finish_chroma(chroma)


def _notes_chroma_energy(instruments, fps, n_frames, release_s=0.15):
    """Pitch-class energy of the pitched notes of ``instruments`` (see :func:`midi_chroma`), unsmoothed."""
    chroma = np.zeros((n_frames, 12), dtype=np.float32)
    harmonics = ((0, 1.0), (7, 0.25), (4, 0.1))  # fundamental (+octaves), 3rd, 5th harmonic
    for inst in instruments:
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
    return chroma


def instrument_chroma_energy(midi, sr, hop_length, n_frames):
    """Pitch-class energy of each instrument's notes from the piano roll, shape (n_instruments, n_frames, 12).

    Pitched instruments as in :func:`midi_chroma`; a drum track's hits spread over all 12 classes
    and decay within 0.1 s (drums sound in every chroma bin). Used to estimate which instruments
    a recording contains.
    """
    fps = sr / hop_length
    out = np.zeros((len(midi.instruments), n_frames, 12), dtype=np.float32)
    hit = np.exp(-np.arange(max(1, int(0.3 * fps))) / (0.1 * fps)).astype(np.float32)
    for k, inst in enumerate(midi.instruments):
        if not inst.is_drum:
            out[k] = _notes_chroma_energy([inst], fps, n_frames)
            continue
        for note in inst.notes:
            f0 = int(round(note.start * fps))
            if 0 <= f0 < n_frames:
                f1 = min(n_frames, f0 + len(hit))
                out[k, f0:f1] += note.velocity / 127.0 * hit[:f1 - f0, None]
    return out


def midi_fine_features(midi, sr, hop_length, n_frames=None, n_fft=2048):
    """The arrays of :func:`fine_features` (but ``chroma_energy``) straight from a MIDI's notes.

    ``fine_chroma`` is :func:`midi_chroma` at the fine hop; ``onset_strength`` puts each pitched
    note's velocity (and a little on its 3rd and 5th harmonics' classes) in the frame its onset
    falls into, normalised per local maximum as the recording's is.
    """
    fps = sr / hop_length
    if n_frames is None:
        n_frames = int(np.ceil((midi.get_end_time() + 0.15) * fps)) + 1
    onsets = np.zeros((n_frames, 12), dtype=np.float32)
    for inst in midi.instruments:
        if inst.is_drum:
            continue
        for note in inst.notes:
            k = int(round(note.start * fps + 0.5))  # onset frame convention: rise into frame k
            if 0 <= k < n_frames:
                for shift, gain in ((0, 1.0), (7, 0.25), (4, 0.1)):
                    onsets[k, (note.pitch + shift) % 12] += gain * note.velocity / 127.0
    peak = _moving(onsets.max(axis=1, keepdims=True), max(3, int(fps)), np.max)
    onsets = onsets / np.maximum(peak, 1e-3 * max(float(onsets.max()), 1e-9))
    return {"fine_chroma": midi_chroma(midi, sr, hop_length, n_frames, n_fft=n_fft),
            "onset_strength": onsets.astype(np.float32)}


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


def _display_from_energy(E, sr, hop_length, bins_per_semitone, top_db=80.0, in_place=False):
    # In place, in float32 (``in_place``: in E itself): the display of a long recording is tens of
    # MB per copy.
    S_db = np.asarray(E, dtype=np.float32)
    S_db = np.maximum(S_db, np.float32(1e-10), out=S_db if in_place else None)
    np.square(S_db, out=S_db)
    S_db /= S_db.max()
    np.log10(S_db, out=S_db)
    S_db *= np.float32(10)
    np.maximum(S_db, np.float32(-top_db), out=S_db)
    S_db = S_db.T
    n_bins = S_db.shape[0]
    pitches = DISPLAY_MIDI_LO + (np.arange(n_bins) - (bins_per_semitone - 1) / 2) / bins_per_semitone
    times = np.arange(S_db.shape[1]) * hop_length / sr
    return np.ascontiguousarray(S_db), pitches, times
