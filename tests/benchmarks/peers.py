"""The aligners ours is compared with, implemented as their authors publish them.

1. **pretty_midi recipe** (craffel/pretty-midi ``examples/align_midi.py`` with the parameters
   Raffel & Ellis (ICASSP 2016) found best): synthesize the MIDI with ``PrettyMIDI.fluidsynth``
   (pretty_midi's bundled TimGM6mb), load the audio with librosa at 22 050 Hz, CQT with hop 512
   and 48 bins from MIDI note 36, log amplitude (``amplitude_to_db``, ref = max), L2-normalised
   frames, cosine distance matrix (full), DTW with additive penalty = median distance and gully
   0.96 (djitw's algorithm, re-implemented here in numba: djitw is not on PyPI for Python 3).
   Confidence: the path cost normalised by path length and by the mean of the distance
   submatrix the path spans (Raffel & Ellis 2016 / the Lakh MIDI dataset), reported as
   ``1 - normalised score`` so that higher is better, like ours.
2. **Sync Toolbox** (Müller et al., JOSS 2021; pip ``synctoolbox``) as its
   ``sync_audio_score_full`` example does it: audio → pitch features (IIR filterbank, 50 Hz),
   quantized chroma and DLNCO onset features; the MIDI's notes → the same features
   symbolically; optimal chroma shift; MrMsDTW with step weights (1.5, 1.5, 2.0).

Each peer has ``features(midi_path, audio_path)`` (the expensive part, cached to .npz by file
content like ours, so "warm" means the same for every aligner) and ``align_features(...)``;
``run(midi_path, audio_path, cache_dir)`` does both and returns a :class:`PeerResult` with the
MIDI→audio map and the time spent in each.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

SR = 22050
HOP = 512
NOTE_START = 36
N_NOTES = 48
GULLY = 0.96


@dataclass
class PeerResult:
    """A peer's alignment: path in seconds, confidence (or NaN), and timings."""

    path_midi_s: np.ndarray
    path_audio_s: np.ndarray
    confidence: float
    timings: dict = field(default_factory=dict)
    cache_hit: bool = False

    def __post_init__(self):
        self._x, self._y = monotone_knots(self.path_midi_s, self.path_audio_s)

    def midi_to_audio(self, t):
        """MIDI seconds → audio seconds through the path (linear extrapolation past its ends)."""
        t = np.asarray(t, dtype=np.float64)
        x, y = self._x, self._y
        slope = (y[-1] - y[0]) / max(x[-1] - x[0], 1e-9)
        out = np.interp(t, x, y)
        out = np.where(t < x[0], y[0] + (t - x[0]) * slope, out)
        return np.where(t > x[-1], y[-1] + (t - x[-1]) * slope, out)


def monotone_knots(x, y):
    """Strictly increasing x with the mean y of each x, made non-decreasing (as ours does)."""
    ux, inv = np.unique(np.asarray(x, dtype=np.float64), return_inverse=True)
    uy = np.maximum.accumulate(np.bincount(inv, weights=np.asarray(y, dtype=np.float64)) / np.bincount(inv))
    if len(ux) == 1:
        ux, uy = np.array([ux[0], ux[0] + 1.0]), np.array([uy[0], uy[0] + 1.0])
    return ux, uy


def _file_key(midi_path, audio_path, version: str) -> str:
    """Cache key from both files' content hashes (memoised per process, as ours are)."""
    from engine.cache import file_hash

    blob = f"{version}:{file_hash(midi_path)}:{file_hash(audio_path)}"
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _cached(cache_dir, key, compute):
    """(arrays, hit): arrays from ``cache_dir/key.npz`` or computed and stored there."""
    if cache_dir is None:
        return compute(), False
    path = Path(cache_dir) / f"{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}, True
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays, False


# ---- 1. the pretty_midi align_midi recipe ------------------------------------------------------

@njit(cache=True)
def _djitw_core(D, add_pen, traceback):
    """djitw.dtw_core: accumulate in place; the path may start anywhere on row 0 or column 0."""
    n, m = D.shape
    for i in range(n - 1):
        for j in range(m - 1):
            diag = D[i, j]
            up = D[i, j + 1] + add_pen
            left = D[i + 1, j] + add_pen
            if diag <= up and diag <= left:
                traceback[i + 1, j + 1] = 0
                D[i + 1, j + 1] += diag
            elif up <= left:
                traceback[i + 1, j + 1] = 2
                D[i + 1, j + 1] += up
            else:
                traceback[i + 1, j + 1] = 1
                D[i + 1, j + 1] += left


def djitw_dtw(distance, gully=GULLY, additive_penalty=0.0):
    """djitw.dtw (Raffel): DTW with additive penalty and gully; returns (p, q, score).

    Steps (1,1), (1,0), (0,1); the path ends on the last row or column within the last
    ``1 - gully`` fraction of the shorter side, and may start anywhere on the first row/column.
    ``distance`` is overwritten with the accumulated cost.
    """
    D = distance
    traceback = np.zeros(D.shape, dtype=np.uint8)
    _djitw_core(D, float(additive_penalty), traceback)
    g = int(gully * min(D.shape)) if gully < 1.0 else min(D.shape) - 1
    i = int(np.argmin(D[g:, -1])) + g
    j = int(np.argmin(D[-1, g:])) + g
    if D[-1, j] > D[i, -1]:
        j = D.shape[1] - 1
    else:
        i = D.shape[0] - 1
    score = float(D[i, j])
    p, q = [i], [j]
    while i > 0 and j > 0:
        step = traceback[i, j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            j -= 1
        else:
            i -= 1
        p.append(i)
        q.append(j)
    return np.array(p[::-1]), np.array(q[::-1]), score


def extract_cqt(y, sr=SR, hop=HOP, note_start=NOTE_START, n_notes=N_NOTES):
    """Log-magnitude, L2-normalised CQT frames (rows), exactly as align_midi.py computes them."""
    import librosa

    cqt = librosa.cqt(y, sr=sr, hop_length=hop, fmin=librosa.midi_to_hz(note_start), n_bins=n_notes).T
    cqt = librosa.amplitude_to_db(librosa.magphase(cqt)[0], ref=np.abs(cqt).max())
    return librosa.util.normalize(cqt, norm=2.0, axis=1).astype(np.float32)


def pretty_midi_features(midi_path, audio_path):
    """The recipe's features: CQT of the synthesized MIDI and of the recording."""
    import librosa
    import pretty_midi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        midi = pretty_midi.PrettyMIDI(str(midi_path))
        midi_audio = midi.fluidsynth(fs=SR)  # pretty_midi's default soundfont: TimGM6mb
        audio, _ = librosa.load(str(audio_path), sr=SR)
    return {"midi_cqt": extract_cqt(midi_audio), "audio_cqt": extract_cqt(audio)}


def pretty_midi_align_features(midi_cqt, audio_cqt):
    """Cosine distance matrix, penalty = its median, djitw DTW (gully 0.96) → PeerResult parts."""
    A, B = midi_cqt.astype(np.float64), audio_cqt.astype(np.float64)
    distance = 1.0 - np.dot(A, B.T)
    penalty = float(np.median(distance))
    p, q, score = djitw_dtw(distance, GULLY, penalty)  # accumulates in place
    # Mean of the raw distance submatrix the path spans, from row sums (no copy of the matrix).
    a, b = A[p.min():p.max() + 1], B[q.min():q.max() + 1]
    sub_mean = 1.0 - float(a.sum(axis=0) @ b.sum(axis=0)) / (len(a) * len(b))
    normalised = score / len(p) / max(sub_mean, 1e-9)
    frame_s = HOP / SR
    return p * frame_s, q * frame_s, float(1.0 - normalised)


def run_pretty_midi(midi_path, audio_path, cache_dir=None) -> PeerResult:
    """The whole recipe: features (cached by file content when ``cache_dir``) and DTW."""
    t0 = time.perf_counter()
    arrays, hit = _cached(cache_dir, "prettymidi_" + _file_key(midi_path, audio_path, "v1"),
                          lambda: pretty_midi_features(midi_path, audio_path))
    t1 = time.perf_counter()
    pm, pa, conf = pretty_midi_align_features(arrays["midi_cqt"], arrays["audio_cqt"])
    t2 = time.perf_counter()
    return PeerResult(pm, pa, conf, {"features_s": t1 - t0, "dtw_s": t2 - t1, "total_s": t2 - t0}, hit)


# ---- 2. Sync Toolbox ---------------------------------------------------------------------------

FEATURE_RATE = 50


def _midi_dataframe(midi_path):
    """The notes of a MIDI in synctoolbox's symbolic format (start, duration, pitch, velocity, instrument)."""
    import pandas as pd
    import pretty_midi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        midi = pretty_midi.PrettyMIDI(str(midi_path))
    rows = []
    for inst in midi.instruments:
        name = "percussive" if inst.is_drum else (inst.name or "instrument")
        for n in inst.notes:
            if 21 <= n.pitch <= 108 or inst.is_drum:  # synctoolbox rejects pitches outside the piano
                rows.append((n.start, n.end - n.start, 60 if inst.is_drum else n.pitch, n.velocity, name))
    rows.sort()
    return pd.DataFrame(rows, columns=["start", "duration", "pitch", "velocity", "instrument"])


def synctoolbox_features(midi_path, audio_path):
    """Quantized chroma + DLNCO of the recording and of the MIDI, as synctoolbox's examples do."""
    import librosa

    audio, _ = librosa.load(str(audio_path), sr=SR)
    with contextlib.redirect_stdout(io.StringIO()):  # its filterbank prints progress dots
        return _synctoolbox_features(audio, midi_path)


def _synctoolbox_features(audio, midi_path):
    from synctoolbox.feature.chroma import pitch_to_chroma, quantize_chroma
    from synctoolbox.feature.csv_tools import df_to_pitch_features, df_to_pitch_onset_features
    from synctoolbox.feature.dlnco import pitch_onset_features_to_DLNCO
    from synctoolbox.feature.pitch import audio_to_pitch_features
    from synctoolbox.feature.pitch_onset import audio_to_pitch_onset_features
    from synctoolbox.feature.utils import estimate_tuning

    tuning = estimate_tuning(audio, SR)
    f_pitch = audio_to_pitch_features(f_audio=audio, Fs=SR, tuning_offset=tuning, feature_rate=FEATURE_RATE, verbose=False)
    audio_chroma = quantize_chroma(f_chroma=pitch_to_chroma(f_pitch=f_pitch))
    f_onset = audio_to_pitch_onset_features(f_audio=audio, Fs=SR, tuning_offset=tuning, verbose=False)
    audio_dlnco = pitch_onset_features_to_DLNCO(f_peaks=f_onset, feature_rate=FEATURE_RATE,
                                                feature_sequence_length=audio_chroma.shape[1], visualize=False)
    df = _midi_dataframe(midi_path)
    m_pitch = df_to_pitch_features(df, feature_rate=FEATURE_RATE)
    midi_chroma = quantize_chroma(f_chroma=pitch_to_chroma(f_pitch=m_pitch))
    m_onset = df_to_pitch_onset_features(df)
    midi_dlnco = pitch_onset_features_to_DLNCO(f_peaks=m_onset, feature_rate=FEATURE_RATE,
                                               feature_sequence_length=midi_chroma.shape[1], visualize=False)
    return {"audio_chroma": audio_chroma, "audio_dlnco": audio_dlnco, "midi_chroma": midi_chroma,
            "midi_dlnco": midi_dlnco}


def synctoolbox_align_features(audio_chroma, audio_dlnco, midi_chroma, midi_dlnco):
    """Chroma shift + MrMsDTW (step weights 1.5, 1.5, 2; threshold_rec 1e6) → path in seconds."""
    from synctoolbox.dtw.mrmsdtw import sync_via_mrmsdtw
    from synctoolbox.dtw.utils import compute_optimal_chroma_shift, make_path_strictly_monotonic, shift_chroma_vectors
    from synctoolbox.feature.chroma import quantized_chroma_to_CENS

    cens_audio = quantized_chroma_to_CENS(audio_chroma, 201, 50, FEATURE_RATE)[0]
    cens_midi = quantized_chroma_to_CENS(midi_chroma, 201, 50, FEATURE_RATE)[0]
    shift = compute_optimal_chroma_shift(cens_audio, cens_midi)
    midi_chroma = shift_chroma_vectors(midi_chroma, shift)
    midi_dlnco = shift_chroma_vectors(midi_dlnco, shift)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        wp = sync_via_mrmsdtw(f_chroma1=audio_chroma, f_onset1=audio_dlnco, f_chroma2=midi_chroma,
                              f_onset2=midi_dlnco, input_feature_rate=FEATURE_RATE,
                              step_weights=np.array([1.5, 1.5, 2.0]), threshold_rec=10 ** 6, verbose=False)
    wp = make_path_strictly_monotonic(wp)
    return wp[1] / FEATURE_RATE, wp[0] / FEATURE_RATE


def run_synctoolbox(midi_path, audio_path, cache_dir=None) -> PeerResult:
    """Sync Toolbox end to end (features cached by file content when ``cache_dir``)."""
    t0 = time.perf_counter()
    arrays, hit = _cached(cache_dir, "synctoolbox_" + _file_key(midi_path, audio_path, "v1"),
                          lambda: synctoolbox_features(midi_path, audio_path))
    t1 = time.perf_counter()
    pm, pa = synctoolbox_align_features(arrays["audio_chroma"], arrays["audio_dlnco"], arrays["midi_chroma"],
                                        arrays["midi_dlnco"])
    t2 = time.perf_counter()
    return PeerResult(pm, pa, float("nan"), {"features_s": t1 - t0, "dtw_s": t2 - t1, "total_s": t2 - t0}, hit)


PEERS = {"pretty_midi": run_pretty_midi, "synctoolbox": run_synctoolbox}
