"""Tempo candidates: tempograms, candidate tempi with saliences, and the pace labels.

Task
----
One song can be timed at 40, 80, 160 or 320 bpm depending on what counts as a beat; a runner
wants every pace the song fits, not one tempo. Two steps:

1. **Candidates** (:func:`tempo_candidates`): split the onset-strength envelope into ~25 s
   segments (the first and last are ignored when there are at least three: intros and outros
   are often rubato or sparse), compute per segment the time-averaged autocorrelation tempogram
   (``librosa.feature.tempogram``: peaks at the beat period and its multiples, i.e. the
   beat and its *sub*-harmonics) and Fourier tempogram (peaks at the beat and its harmonics),
   pick the peaks of each mean in 40–320 bpm, and merge peaks within 4 % into candidates.
   ``salience`` (sums to 1 over a song's candidates) is the mean normalised peak prominence
   times a log-normal tempo prior (centre 120 bpm, one octave wide); most salient first.
2. **Pace compatibility** (:mod:`engine.pace`, the ONNX classifier): for each candidate, the
   probability that the song fits that pace and that it is the notated beat; classifying also
   re-ranks the candidates (:func:`engine.pace.classify_paces`). :func:`estimate_paces` does
   both for a file (what ``earworm tempo`` prints).

For the live tempo strip: :func:`tempogram_around` (the tempogram near a time, on a log-bpm
axis) and :func:`local_candidates` (the candidates of the window around a time). A recording's
whole-song candidates are kept in the project (:func:`store_candidates` /
:func:`stored_candidates`, result kind ``tempo_candidates``) for the pace panel's suggestions.

Conventions
-----------
- Audio is mono at ``SR`` = 22050 Hz; frames are ``HOP_LENGTH`` = 512 samples (43.07 frames/s),
  centred (librosa ``center=True``): frame ``j`` is at ``j * HOP_LENGTH / SR`` seconds.
- Tempi are in beats per minute (bpm). A *pace* is a tempo a listener could step to.
- Labels: the paces implied by a song's tempo and meter (:func:`metrical_paces`) are its
  metrical levels: the bar (and half-bar in four-beat meters), the beat, and the beat's first
  three subdivisions (×2, ×4, ×8 in simple meters, ×3, ×6, ×12 in compound ones). A candidate is
  *compatible* when it is within ``PACE_TOLERANCE`` = 5 % of one of them.

Metrics (models/MODEL_CARD_pace.md): pace classification accuracy on held-out songs, per-song
precision/recall of the compatible-pace set, and Accuracy1/Accuracy2 of the top candidate with
the mir_eval.tempo convention ``|estimate - reference| <= tol * reference`` at tol = 4 %
(Accuracy2 also accepts ×2, ×3, ×1/2, ×1/3 of the reference).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SR = 22050
HOP_LENGTH = 512
N_FFT = 2048
N_MELS = 64
SEGMENT_S = 25.0
AC_WIN_LENGTH = 384          # frames (8.9 s): librosa's default tempogram window
FT_WIN_LENGTH = 384
FT_N_FFT = 2048              # zero-padded Fourier tempogram: bins of 1.26 bpm before refinement
TEMPOGRAM_STRIDE = 8         # frames between the tempogram columns that are averaged
MIN_BPM, MAX_BPM = 40.0, 320.0
MERGE_TOLERANCE = 0.04
PACE_TOLERANCE = 0.05
PRIOR_CENTER_BPM, PRIOR_OCTAVES = 120.0, 1.0
MAX_CANDIDATES = 8
MIN_RELATIVE_STRENGTH = 0.1
MIN_SEGMENT_S = 4.0          # shorter excerpts hold too few beats for a tempo: no candidates


@dataclass
class TempoFeatures:
    """What tempo estimation needs from a recording, computed once (:func:`analyze`)."""

    log_mel_db: np.ndarray       # (N_MELS, n_frames) float32, dB re the loudest bin
    onset_envelope: np.ndarray   # (n_frames,) float32, librosa onset strength
    sr: int = SR
    hop_length: int = HOP_LENGTH

    @property
    def frame_rate(self) -> float:
        return self.sr / self.hop_length

    @property
    def duration_s(self) -> float:
        return self.onset_envelope.shape[0] / self.frame_rate


@dataclass
class TempoCandidate:
    """One candidate tempo: ``bpm``, ``salience`` (sums to 1 over a song), and the classifier's
    ``pace_probability`` / ``compatible`` / ``beat_probability`` (None when not classified; once
    classified, ``salience`` includes the classifier and ``tempogram_salience`` keeps the
    tempogram-only value, see :func:`engine.pace.classify_paces`)."""

    bpm: float
    salience: float
    pace_probability: float | None = None
    compatible: bool | None = None
    beat_probability: float | None = None
    tempogram_salience: float | None = None

    def to_json(self) -> dict:
        return {"bpm": round(float(self.bpm), 2), "salience": round(float(self.salience), 4),
                "pace_probability": None if self.pace_probability is None else round(float(self.pace_probability), 4),
                "compatible": self.compatible}


# --- features ------------------------------------------------------------------------------------

def analyze(y: np.ndarray, sr: int = SR) -> TempoFeatures:
    """Log-mel spectrogram and onset envelope of mono audio ``y`` at ``sr`` Hz (resampled to SR)."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if sr != SR:
        import soxr

        y = soxr.resample(y, sr, SR).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS)
    log_mel_db = librosa.power_to_db(mel, ref=max(float(mel.max()), 1e-10), top_db=80.0).astype(np.float32)
    onset = librosa.onset.onset_strength(S=log_mel_db, sr=SR, hop_length=HOP_LENGTH).astype(np.float32)
    return TempoFeatures(log_mel_db=log_mel_db, onset_envelope=onset)


def analyze_file(path) -> TempoFeatures:
    """:func:`analyze` of an audio file, cached on disk by content hash (engine.cache)."""
    from engine.cache import cached, file_hash
    from engine.media import audio_duration, load_audio

    audio_duration(path)  # a missing, empty or undecodable file → AudioError naming it, before hashing
    params = {"sr": SR, "hop_length": HOP_LENGTH, "n_fft": N_FFT, "n_mels": N_MELS, "v": 1}

    def compute():
        f = analyze(load_audio(path, sr=SR))
        return {"log_mel_db": f.log_mel_db.astype(np.float16), "onset_envelope": f.onset_envelope}

    arrays, _ = cached("tempo-features", file_hash(path), params, compute)
    return TempoFeatures(log_mel_db=arrays["log_mel_db"].astype(np.float32), onset_envelope=arrays["onset_envelope"])


# --- tempograms ----------------------------------------------------------------------------------

def _framed(onset: np.ndarray, win_length: int, stride: int) -> np.ndarray:
    """Centred windows of the onset envelope, every ``stride`` frames (as librosa pads them)."""
    import librosa

    n = onset.shape[0]
    padded = np.pad(onset, win_length // 2, mode="linear_ramp", end_values=(0, 0))
    frames = librosa.util.frame(np.ascontiguousarray(padded), frame_length=win_length, hop_length=stride)
    return frames[:, : (n + stride - 1) // stride]


def autocorrelation_tempogram(onset: np.ndarray, stride: int = 1, win_length: int = AC_WIN_LENGTH) -> np.ndarray:
    """``librosa.feature.tempogram(onset_envelope=onset, win_length=…)[:, ::stride]``, computed
    only for the kept columns. Shape (win_length, ceil(n_frames / stride)); row = lag in frames."""
    import librosa
    import scipy.signal

    window = scipy.signal.get_window("hann", win_length, fftbins=True)[:, None]
    ac = librosa.autocorrelate(_framed(onset, win_length, stride) * window, axis=0)
    return librosa.util.normalize(ac, norm=np.inf, axis=0)


def fourier_tempogram(onset: np.ndarray, stride: int = 1, win_length: int = FT_WIN_LENGTH,
                      n_fft: int = FT_N_FFT) -> np.ndarray:
    """Magnitude Fourier tempogram (local mean removed, Hann window, zero-padded to ``n_fft``),
    each column normalised to max 1. Shape (n_fft // 2 + 1, ceil(n_frames / stride))."""
    import scipy.signal

    frames = _framed(onset, win_length, stride)
    frames = frames - frames.mean(axis=0, keepdims=True)
    window = scipy.signal.get_window("hann", win_length, fftbins=True)[:, None]
    mag = np.abs(np.fft.rfft(frames * window, n=n_fft, axis=0))
    return mag / np.maximum(mag.max(axis=0, keepdims=True), 1e-10)


def _refined_peaks(curve: np.ndarray, lo: int, hi: int):
    """Peaks of ``curve[lo:hi]``: (fractional index, prominence), parabolic refinement."""
    import scipy.signal

    part = curve[lo:hi]
    idx, props = scipy.signal.find_peaks(part, prominence=1e-6)
    if idx.size == 0:
        return np.zeros(0), np.zeros(0)
    i = idx + lo
    a, b, c = curve[i - 1], curve[i], curve[np.minimum(i + 1, curve.shape[0] - 1)]
    denom = a - 2 * b + c
    delta = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    return i + np.clip(delta, -0.5, 0.5), props["prominences"]


def segment_peaks(onset: np.ndarray, frame_rate: float, stride: int = TEMPOGRAM_STRIDE):
    """Peaks of the time-averaged autocorrelation and Fourier tempograms of one segment.

    Returns
    -------
    bpm : np.ndarray
    strength : np.ndarray
        Peak prominence divided by the largest prominence in range, per tempogram (so the
        strongest autocorrelation peak and the strongest Fourier peak are both 1).
    """
    out_bpm, out_strength = [], []
    lo_bpm, hi_bpm = MIN_BPM * (1 - MERGE_TOLERANCE), MAX_BPM * (1 + MERGE_TOLERANCE)
    if onset.shape[0] < 8 or not np.any(onset > 0):
        return np.zeros(0), np.zeros(0)
    ac_mean = autocorrelation_tempogram(onset, stride).mean(axis=1)
    lag_lo = max(2, int(np.floor(60 * frame_rate / hi_bpm)))
    lag_hi = min(ac_mean.shape[0] - 1, int(np.ceil(60 * frame_rate / lo_bpm)) + 1)
    lag, prom = _refined_peaks(ac_mean, lag_lo, lag_hi)
    if prom.size:
        out_bpm.append(60 * frame_rate / lag)
        out_strength.append(prom / prom.max())
    ft_mean = fourier_tempogram(onset, stride).mean(axis=1)
    hz_per_bin = frame_rate / FT_N_FFT
    bin_lo = max(1, int(np.floor(lo_bpm / 60 / hz_per_bin)))
    bin_hi = min(ft_mean.shape[0] - 1, int(np.ceil(hi_bpm / 60 / hz_per_bin)) + 1)
    k, prom = _refined_peaks(ft_mean, bin_lo, bin_hi)
    if prom.size:
        out_bpm.append(60 * hz_per_bin * k)
        out_strength.append(prom / prom.max())
    if not out_bpm:
        return np.zeros(0), np.zeros(0)
    bpm, strength = np.concatenate(out_bpm), np.concatenate(out_strength)
    keep = (bpm >= lo_bpm) & (bpm <= hi_bpm)
    return bpm[keep], strength[keep]


def segment_bounds(n_frames: int, frame_rate: float, segment_s: float = SEGMENT_S) -> list[tuple[int, int]]:
    """Frame ranges of ~``segment_s`` segments; the first and last are dropped when there are ≥ 3."""
    n_segments = max(1, int(round(n_frames / frame_rate / segment_s)))
    edges = np.linspace(0, n_frames, n_segments + 1).round().astype(int)
    bounds = list(zip(edges[:-1], edges[1:]))
    return bounds[1:-1] if len(bounds) >= 3 else bounds


def tempo_prior(bpm) -> np.ndarray:
    """Log-normal prior on the perceived beat: 1 at PRIOR_CENTER_BPM, e^-1/2 one octave away."""
    return np.exp(-0.5 * (np.log2(np.asarray(bpm, dtype=float) / PRIOR_CENTER_BPM) / PRIOR_OCTAVES) ** 2)


def merge_peaks(bpm: np.ndarray, strength: np.ndarray, n_sources: int, tolerance: float = MERGE_TOLERANCE):
    """Gather peaks into candidates: strongest first, a peak within ``tolerance`` of a candidate's
    (strength-weighted, geometric) centre joins it. Returns (bpm, strength) with strength =
    summed peak strength / ``n_sources`` (the number of tempogram means the peaks came from)."""
    order = np.argsort(-strength, kind="stable")
    centers, weights, log_sums = [], [], []
    for i in order:
        b, s = bpm[i], strength[i]
        for j, c in enumerate(centers):
            if abs(b / c - 1) <= tolerance:
                weights[j] += s
                log_sums[j] += s * np.log(b)
                centers[j] = float(np.exp(log_sums[j] / weights[j]))
                break
        else:
            centers.append(float(b))
            weights.append(float(s))
            log_sums.append(float(s * np.log(b)))
    return np.array(centers), np.array(weights) / max(n_sources, 1)


def candidates_from_onsets(onset: np.ndarray, frame_rate: float, segment_s: float = SEGMENT_S,
                           max_candidates: int = MAX_CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
    """Candidate tempi (bpm) and saliences (sum 1), most salient first, from an onset envelope."""
    peaks_bpm, peaks_strength = [], []
    bounds = [(a, b) for a, b in segment_bounds(onset.shape[0], frame_rate, segment_s)
              if b - a >= MIN_SEGMENT_S * frame_rate]
    for start, stop in bounds:
        b, s = segment_peaks(onset[start:stop], frame_rate)
        peaks_bpm.append(b)
        peaks_strength.append(s)
    if not bounds:
        return np.zeros(0), np.zeros(0)
    bpm, strength = np.concatenate(peaks_bpm), np.concatenate(peaks_strength)
    if bpm.size == 0:
        return np.zeros(0), np.zeros(0)
    bpm, strength = merge_peaks(bpm, strength, n_sources=2 * len(bounds))
    inside = (bpm >= MIN_BPM * (1 - PACE_TOLERANCE)) & (bpm <= MAX_BPM * (1 + PACE_TOLERANCE))
    bpm, strength = np.clip(bpm[inside], MIN_BPM, MAX_BPM), strength[inside]
    keep = strength >= MIN_RELATIVE_STRENGTH * strength.max(initial=0)
    bpm, strength = bpm[keep], strength[keep]
    salience = strength * tempo_prior(bpm)
    order = np.argsort(-salience, kind="stable")[:max_candidates]
    bpm, salience = bpm[order], salience[order]
    return bpm, salience / max(salience.sum(), 1e-12)


def tempo_candidates(features: TempoFeatures, segment_s: float = SEGMENT_S,
                     max_candidates: int = MAX_CANDIDATES) -> list[TempoCandidate]:
    """Candidate tempi of a whole recording (see the module docstring), most salient first."""
    bpm, salience = candidates_from_onsets(features.onset_envelope, features.frame_rate, segment_s, max_candidates)
    return [TempoCandidate(bpm=float(b), salience=float(s)) for b, s in zip(bpm, salience)]


def tempogram_around(features: TempoFeatures, time_s: float, window_s: float = 16.0, n_bpm: int = 96,
                     stride: int = 4):
    """The autocorrelation tempogram around ``time_s`` on a log-bpm axis, for display.

    Returns
    -------
    times_s : np.ndarray, (n_times,)
    bpm : np.ndarray, (n_bpm,), log-spaced MIN_BPM..MAX_BPM
    tempogram : np.ndarray, (n_bpm, n_times), each column max-normalised (0..1)
    """
    fr = features.frame_rate
    n = features.onset_envelope.shape[0]
    center = int(round(time_s * fr))
    half = int(round(window_s * fr / 2))
    start, stop = max(0, center - half), min(n, center + half)
    bpm = np.geomspace(MIN_BPM, MAX_BPM, n_bpm)
    if stop - start < 2:
        return np.zeros(0), bpm, np.zeros((n_bpm, 0), np.float32)
    # Windows centred on the displayed frames, taken from the whole envelope so edges are honest.
    lo = max(0, start - AC_WIN_LENGTH // 2)
    hi = min(n, stop + AC_WIN_LENGTH // 2)
    ac = autocorrelation_tempogram(features.onset_envelope[lo:hi], stride)
    cols = np.arange(0, hi - lo, stride)
    sel = (cols + lo >= start) & (cols + lo < stop)
    lags = 60 * fr / bpm
    rows = np.arange(ac.shape[0])
    tg = np.stack([np.interp(lags, rows, ac[:, j]) for j in np.flatnonzero(sel)], axis=1) if sel.any() \
        else np.zeros((n_bpm, 0))
    return (cols[sel] + lo) / fr, bpm, tg.astype(np.float32)


def local_candidates(features: TempoFeatures, time_s: float, window_s: float = SEGMENT_S,
                     max_candidates: int = MAX_CANDIDATES) -> list[TempoCandidate]:
    """Candidates of the ``window_s`` around ``time_s`` only (the live strip's "current" ones)."""
    fr = features.frame_rate
    n = features.onset_envelope.shape[0]
    half = int(round(window_s * fr / 2))
    c = int(round(time_s * fr))
    start, stop = max(0, min(c - half, n - 2 * half)), min(n, max(c + half, 2 * half))
    b, s = candidates_from_onsets(features.onset_envelope[start:stop], fr, segment_s=window_s,
                                  max_candidates=max_candidates)
    return [TempoCandidate(bpm=float(x), salience=float(y)) for x, y in zip(b, s)]


def estimate_paces(path, classify: bool = True, model_path=None) -> list[TempoCandidate]:
    """Candidates of an audio file, most salient first, classified (:func:`engine.pace.classify_paces`)
    unless ``classify`` is False."""
    features = analyze_file(path)
    candidates = tempo_candidates(features)
    if classify and candidates:
        from engine.pace import classify_paces

        candidates = classify_paces(features, candidates, model_path=model_path)
    return candidates


# --- the project store ---------------------------------------------------------------------------

def store_candidates(project, file_id: int, candidates: list[TempoCandidate]) -> None:
    """Save a recording's whole-song candidates in a project (:class:`engine.store.Project`) as its
    ``tempo_candidates`` result, replacing earlier ones: ``value`` = the top candidate's bpm,
    ``data`` = ``{"candidates": [TempoCandidate.to_json(), ...]}`` in the given order. The pace
    panel offers them as one-click pace labels (:func:`stored_candidates`)."""
    from engine.store import TEMPO_CANDIDATES

    project.put_result(TEMPO_CANDIDATES, file_id, value=float(candidates[0].bpm) if candidates else None,
                       data={"candidates": [c.to_json() for c in candidates]})


def stored_candidates(project, file_id: int) -> list[TempoCandidate]:
    """A recording's stored candidates (every stored result, in stored order). Besides the layout
    :func:`store_candidates` writes, a bare list of ``{"bpm": x}`` or of numbers is read too."""
    from engine.store import TEMPO_CANDIDATES

    out = []
    for result in project.results(TEMPO_CANDIDATES, file_id, params=None):
        data = result.data
        items = data.get("candidates", data.get("bpm", [])) if isinstance(data, dict) else data or []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("bpm") is not None:
                out.append(TempoCandidate(bpm=float(item["bpm"]), salience=float(item.get("salience") or 0.0),
                                          pace_probability=item.get("pace_probability"),
                                          compatible=item.get("compatible")))
            elif isinstance(item, (int, float)):
                out.append(TempoCandidate(bpm=float(item), salience=0.0))
    return out


# --- labels --------------------------------------------------------------------------------------

def metrical_paces(beat_bpm: float, beats_per_bar: int, beat_division: int) -> np.ndarray:
    """Paces implied by a tempo and meter: bar (+ half bar for 4 beats), beat, 3 subdivisions.

    Parameters
    ----------
    beat_bpm : float
        Tempo of the notated beat (quarter in 4/4, dotted quarter in 6/8, half in 2/2).
    beats_per_bar : int
        4 in 4/4 and 12/8, 3 in 3/4 and 9/8, 2 in 2/4, 2/2 and 6/8.
    beat_division : int
        2 for simple meters, 3 for compound ones.
    """
    levels = [beat_bpm / beats_per_bar, beat_bpm]
    if beats_per_bar == 4:
        levels.append(beat_bpm / 2)
    levels += [beat_bpm * beat_division * 2 ** k for k in range(3)]
    return np.unique(np.round(levels, 6))


def compatible_mask(bpm, paces, tolerance: float = PACE_TOLERANCE) -> np.ndarray:
    """True where a tempo is within ``tolerance`` (relative) of one of ``paces``."""
    bpm = np.atleast_1d(np.asarray(bpm, dtype=float))
    paces = np.asarray(paces, dtype=float)
    if paces.size == 0:
        return np.zeros(bpm.shape, bool)
    return np.any(np.abs(bpm[:, None] / paces[None, :] - 1) <= tolerance, axis=1)
