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

import functools

import numpy as np

from engine.streaming import PitchEnergyStream, pitch_filterbank

N_CHROMA = 12
N_ONSET = 13  # onset feature width of the online follower (engine.follow_features): 12 classes + "none"
BLOCK_SIZES = (N_CHROMA,)
DISPLAY_MIDI_LO, DISPLAY_MIDI_HI = 21, 108  # the piano's keys, A0..C8


_pitch_filterbank = pitch_filterbank  # the sum of STFT bins into pitch bins (engine.streaming)


def window_samples(n_fft_at_22050: int, sr: int) -> int:
    """An analysis window as long in seconds as ``n_fft_at_22050`` samples at 22 050 Hz, at ``sr``."""
    return int(round(n_fft_at_22050 * sr / 22050))


def pitch_energy(y, sr, hop_length, n_fft, midi_lo=21, midi_hi=108, bins_per_semitone=1, block_frames=256):
    """Magnitude in log-frequency bins, frame by frame (centred Hann STFT, computed in blocks).

    Returns
    -------
    E : np.ndarray, float32, shape (n_frames, n_pitch_bins)
        Summed magnitude per pitch bin; ``n_frames = 1 + len(y) // hop_length``.
    """
    stream = PitchEnergyStream(sr, hop_length, n_fft, midi_lo, midi_hi, bins_per_semitone, block_frames)
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    step = max(1 << 16, block_frames * hop_length)  # pushed in pieces: no padded copy of the whole signal
    parts = [stream.push(y[k:k + step]) for k in range(0, len(y), step)]
    parts.append(stream.finish())
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _fold_chroma(E, midi_lo, bins_per_semitone=1):
    """Sum log-frequency bins into 12 pitch classes (class 0 = C)."""
    C = np.empty((E.shape[0], 12), dtype=np.float32)
    for pc, columns in enumerate(_fold_plan(E.shape[1], midi_lo, bins_per_semitone)):
        C[:, pc] = E[:, columns].sum(axis=1)
    return C


@functools.lru_cache(maxsize=64)
def _fold_plan(n_bins, midi_lo, bins_per_semitone):
    """The columns of each pitch class (ascending), made once per layout."""
    pitch_class = (midi_lo + np.arange(n_bins) // bins_per_semitone) % 12
    return tuple(np.nonzero(pitch_class == pc)[0] for pc in range(12))


def _finish_chroma(C, gamma=100.0):
    """Log-compress, then L2-normalise; silent frames become a flat (uninformative) chroma.

    Into a new array (``C`` is left as it is), without further temporaries: a long piece's fine
    chroma is several MB per copy.
    """
    X = np.multiply(C, gamma)
    X /= max(float(C.max()), 1e-9)
    np.log1p(X, out=X)
    X[X.sum(axis=1) < 1e-3] = 1.0
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-6)
    return X


class Rows:
    """Rows appended block by block into one growing float32 array (no list of blocks to
    concatenate at the end, which would hold everything twice)."""

    def __init__(self, width: int, expected_rows: int = 0):
        self._data = np.empty((max(int(expected_rows), 1024), width), dtype=np.float32)
        self.n = 0

    def append(self, block) -> None:
        if self.n + len(block) > len(self._data):
            grown = np.empty((max(self.n + len(block), int(1.5 * len(self._data))), self._data.shape[1]),
                             dtype=np.float32)
            grown[:self.n] = self._data[:self.n]
            self._data = grown
        self._data[self.n:self.n + len(block)] = block
        self.n += len(block)

    def array(self) -> np.ndarray:
        """The rows so far (a view: no copy); the accumulator is done after this."""
        data, self._data = self._data, np.empty((0, self._data.shape[1]), dtype=np.float32)
        return data[:self.n]


SNAP_MIDI_LO, SNAP_MIDI_HI = 36, 107


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
    E = pitch_energy(y, sr, hop_length, n_fft, SNAP_MIDI_LO, SNAP_MIDI_HI)
    return sharp_onsets([E], float(E.max()), sr / hop_length, local_s, len(E))


def sharp_onsets(E_blocks, E_max, fps, local_s=1.0, n_rows=0):
    """:func:`onset_strength_by_pitch_class` from its semitone energies, given block by block
    (any split: the result is the same) with the maximum over all of them (``n_rows``: how many
    there are, if known)."""
    scale = max(E_max, 1e-9)
    rows, previous = Rows(12, n_rows), None
    for E in E_blocks:
        if not len(E):
            continue
        L = np.log1p(1000.0 * E / scale)
        before = np.concatenate([L[:1] if previous is None else previous, L[:-1]])
        rows.append(_fold_chroma(np.maximum(L - before, 0.0), SNAP_MIDI_LO))
        previous = L[-1:]
    return _normalise_onsets(rows.array(), fps, local_s)


def _normalise_onsets(O, fps, local_s=1.0):
    """Minus a short moving average (steady vibrato, noise), over a local maximum of ``local_s`` seconds.

    Into one new float32 array (``O`` is left as it is).
    """
    X = _moving(O, max(3, int(0.1 * fps)), np.mean)
    np.subtract(O, X, out=X)
    np.maximum(X, 0.0, out=X)
    peak = _moving(X.max(axis=1, keepdims=True), max(3, int(local_s * fps)), np.max)
    X /= np.maximum(peak, 1e-3 * max(float(X.max()), 1e-9))
    return X.astype(np.float32, copy=False)


FINE_MIDI_LO, FINE_MIDI_HI, FINE_BINS_PER_SEMITONE = 21, 108, 3
ONSET_MIDI_LO = 36  # below C2 a 2048-point STFT has about one bin per semitone: onsets there are mostly noise
ONSET_LAG_FRAMES = 2
ONSET_FIRST_BIN = (ONSET_MIDI_LO - FINE_MIDI_LO) * FINE_BINS_PER_SEMITONE  # of the fine 1/3-semitone bins


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
    E = E[:, ONSET_FIRST_BIN:]
    # In blocks of frames: a long recording's 1/3-semitone arrays are ~100 MB each.
    return superflux_onsets((E[k:k + 4096] for k in range(0, len(E), 4096)), float(E.max()), fps, local_s, len(E))


def superflux_onsets(E_blocks, E_max, fps, local_s=1.0, n_rows=0):
    """:func:`_superflux_by_pitch_class` from the 1/3-semitone energies from MIDI 36 up, given
    block by block (any split: the result is the same) with the maximum over all of them
    (``n_rows``: how many there are, if known)."""
    gain, lag = np.float32(1000.0 / max(E_max, 1e-9)), ONSET_LAG_FRAMES
    rows, previous, seen = Rows(12, n_rows), None, 0
    for E in E_blocks:
        if not len(E):
            continue
        new = np.log1p(gain * E)
        L = new if previous is None else np.concatenate([previous, new])
        n_zero = max(0, min(lag - seen, len(new)))  # the first frames have nothing to rise from
        if n_zero:
            rows.append(np.zeros((n_zero, 12), dtype=np.float32))
        n_flux = len(new) - n_zero
        if n_flux > 0:
            now, before = L[len(L) - n_flux:], L[len(L) - n_flux - lag:len(L) - lag]
            # The maximum over ±1/3 semitone a lag earlier (vibrato suppression; slices: several
            # times faster than scipy's maximum_filter1d across this axis).
            earlier = before.copy()
            np.maximum(earlier[:, 1:], before[:, :-1], out=earlier[:, 1:])
            np.maximum(earlier[:, :-1], before[:, 1:], out=earlier[:, :-1])
            rows.append(_fold_chroma(np.maximum(now - earlier, 0.0), ONSET_MIDI_LO, FINE_BINS_PER_SEMITONE))
        seen += len(new)
        previous = L[-lag:]
    return _normalise_onsets(rows.array(), fps, local_s)


def pooled_energy(C, chroma_pool):
    """Linear pitch-class magnitudes summed over ``chroma_pool`` fine frames centred on each DTW frame."""
    n_coarse = -(-len(C) // chroma_pool)
    padded = np.pad(C, ((chroma_pool // 2, n_coarse * chroma_pool - len(C) - chroma_pool // 2 + chroma_pool), (0, 0)))
    return padded[:n_coarse * chroma_pool].reshape(n_coarse, chroma_pool, 12).sum(axis=1).astype(np.float32)


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
    return {"fine_chroma": _finish_chroma(C), "onset_strength": _superflux_by_pitch_class(E, sr / hop_length),
            "chroma_energy": pooled_energy(C, chroma_pool)}


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

    The whole signal at once; :class:`engine.feature_stream.FeatureStream` computes the same
    block by block (this function feeds it the signal in pieces).

    Parameters
    ----------
    y : np.ndarray
    sr : int
    hop_length : int
        Hop of the chroma (the DTW frames).
    onset_hop_length : int
        Hop of the fine chroma and the onset strength (the note-level pass's frames; finer), a
        divisor of ``hop_length``.
    n_fft, n_fft_onset : int
        Windows of the chroma and of the fine features (the sharp onsets' is half the latter).
    display_hop_length : int, optional
        Also return the display spectrogram at this hop. When ``hop_length`` is a multiple of it,
        the chroma is folded from the same STFT instead of a second one.
    on_display : callable(display_db, display_pitches, display_times_s), optional
        Called as soon as the display spectrogram is made, before the onset features are
        finished (a window can draw the recording meanwhile).
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
    from engine.feature_stream import FeatureStream

    stream = FeatureStream(sr, hop_length, onset_hop_length, display_hop_length=display_hop_length, fine=fine,
                           snap=fine, n_fft=n_fft, n_fft_onset=n_fft_onset)
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    for k in range(0, len(y), 1 << 17):
        stream.push(y[k:k + (1 << 17)])
    return stream.finish(on_display=on_display)


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


def _notes_chroma_energy(instruments, fps, n_frames, release_s=0.15, chunk_notes=4096):
    """Pitch-class energy of the pitched notes of ``instruments`` (see :func:`midi_chroma`), unsmoothed.

    All notes at once (in chunks, to bound the temporaries): every frame of every note is one
    entry of a weighted histogram over (frame, pitch class).
    """
    notes = [(n.start, n.end, n.pitch, n.velocity) for inst in instruments if not inst.is_drum for n in inst.notes]
    acc = np.zeros(n_frames * 12)
    for a in range(0, len(notes), chunk_notes):
        start, end, pitch, velocity = np.asarray(notes[a:a + chunk_notes], dtype=np.float64).T
        f0 = np.round(start * fps).astype(np.int64)
        inside = f0 < n_frames
        f0, end, pitch, velocity = f0[inside], end[inside], pitch[inside].astype(np.int64), velocity[inside]
        f1 = np.minimum(n_frames, np.maximum(f0 + 1, np.round((end + release_s) * fps).astype(np.int64)))
        lengths = f1 - f0
        note = np.repeat(np.arange(len(f0)), lengths)
        k = np.arange(len(note)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # frame within its note
        envelope = velocity[note] / 127.0 * np.maximum(np.exp(-k / (1.5 * fps)), 0.3)
        frame = (f0[note] + k) * 12
        for shift, gain in ((0, 1.0), (7, 0.25), (4, 0.1)):  # fundamental (+octaves), 3rd, 5th harmonic
            acc += np.bincount(frame + (pitch[note] + shift) % 12, weights=gain * envelope, minlength=n_frames * 12)
    return acc.reshape(n_frames, 12).astype(np.float32)


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
