"""Pace compatibility: is a song compatible with a candidate pace? (the ONNX pace classifier)

Task
----
For (recording, candidate tempo) → the probability that the tempo is one of the song's
metrical levels (see :func:`engine.tempo.metrical_paces`), and the probability that it is the
notated beat. Two inputs per candidate, computed here from :class:`engine.tempo.TempoFeatures`:

- **clips** (:func:`beat_clips`): a stretch of ``N_BEATS`` beats at the candidate tempo; its 8
  band energies and 8 band spectral fluxes, resampled by exact area averaging to
  ``STEPS_PER_BEAT`` steps per beat, laid out beats × time-within-beat (a compatible pace keeps
  the onsets in the same columns, beat after beat); each channel standardised per clip.
- **periodicity** (:func:`periodicity_features`): the song's autocorrelation (onset envelope and
  each band's flux) at simple multiples of the candidate period — 1/4 … 8 — which tells a
  level of the meter (strong at ×2 or ×3 *and* at the bar) from a neighbour (strong at ×3/2).

A small CNN + MLP (``models/pace.onnx``, trained by ``models/pace``, run with onnxruntime through
:mod:`engine.models`) gives logits; ``N_CLIPS`` clips at fixed placements over the song are
averaged per candidate. :func:`classify_paces` fills the candidates in, makes the song's pace
probabilities consistent with one metrical hierarchy (:func:`make_consistent`) and re-ranks them
(:func:`beat_scores`) by a weighted sum of ln tempogram salience, ln P(is the notated beat),
ln P(compatible), log2 bpm and its square (a tempo prior), the conditional logit ``models/pace/ranking.py``
fitted on the classifier's training songs and chose among simpler rules on songs the classifier
never saw (never on the held-out test songs). ``salience`` becomes that ranking's probability
(softmax over the song: sums to 1, most salient first); the tempogram-only value is kept in
``tempogram_salience``.

Conventions
-----------
Frames and rates as in :mod:`engine.tempo` (22050 Hz, hop 512). Probabilities in [0, 1];
``compatible`` is ``pace_probability >= COMPATIBLE_THRESHOLD``. Metrics: models/MODEL_CARD_pace.md.
"""
from __future__ import annotations

import numpy as np

from engine.tempo import SEGMENT_S, TempoCandidate, TempoFeatures

# Input shapes: clips (N, PACE_CHANNELS, N_BEATS, STEPS_PER_BEAT), periodicity (N, PERIODICITY_CHANNELS,
# len(PERIODICITY_RATIOS)); they must match the "pace" spec in engine.models.
N_BANDS = 8
PACE_CHANNELS = 2 * N_BANDS  # band energy (dB) and band spectral flux
N_BEATS = 16
STEPS_PER_BEAT = 24          # divisible by 2, 3, 4, 6, 8: duple and triple subdivisions land on steps
N_CLIPS = 4
COMPATIBLE_THRESHOLD = 0.5
# The classifier's second input: the autocorrelation of the onset envelope and of each band's
# flux at these multiples of the candidate period (max within ±4 %), (clips, 1 + N_BANDS, ratios).
PERIODICITY_RATIOS = (1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1, 4 / 3, 3 / 2, 2, 3, 4, 6, 8)
PERIODICITY_CHANNELS = 1 + N_BANDS
MAX_LAG = 560                # frames (13 s): 8 periods at 40 bpm
FEATURE_VERSION = "pace-v2"


def pace_frame_features(log_mel_db: np.ndarray) -> np.ndarray:
    """Per-frame classifier features (PACE_CHANNELS, n_frames): N_BANDS band energies (mean dB of
    adjacent mel bands) followed by their spectral flux (mean positive dB increase per frame)."""
    n_mels, n_frames = log_mel_db.shape
    groups = log_mel_db[: n_mels // N_BANDS * N_BANDS].reshape(N_BANDS, -1, n_frames)
    energy = groups.mean(axis=1)
    rise = np.maximum(np.diff(log_mel_db, axis=1, prepend=log_mel_db[:, :1]), 0.0)
    flux = rise[: n_mels // N_BANDS * N_BANDS].reshape(N_BANDS, -1, n_frames).mean(axis=1)
    return np.concatenate([energy, flux]).astype(np.float32)


def beat_clips(frame_features: np.ndarray, frame_rate: float, bpm, start_s) -> np.ndarray:
    """Cut beat-synchronous clips: (N, C, N_BEATS, STEPS_PER_BEAT) float32.

    Each output step is the mean of the frame features over its time span (exact area averaging
    of the piecewise-constant frame signal, so no onset is skipped at slow tempi); clips running
    past either end hold the edge frame. Each channel is then standardised per clip:
    ``(x - mean) / (std + 1)`` (features are in dB, so 1 dB is the noise floor).
    """
    bpm = np.atleast_1d(np.asarray(bpm, dtype=np.float64))
    start_s = np.broadcast_to(np.asarray(start_s, dtype=np.float64), bpm.shape)
    x = np.asarray(frame_features, dtype=np.float64)
    n_ch, n_frames = x.shape
    n_steps = N_BEATS * STEPS_PER_BEAT
    step_s = 60.0 / bpm / STEPS_PER_BEAT
    # Frame j covers [j - 0.5, j + 0.5) in frame units (centred frames).
    pos = (start_s[:, None] + np.arange(n_steps + 1)[None, :] * step_s[:, None]) * frame_rate + 0.5
    pos = np.clip(pos, 0.0, float(n_frames))
    idx = np.minimum(np.floor(pos).astype(np.int64), n_frames - 1)
    frac = pos - idx
    cumsum = np.concatenate([np.zeros((n_ch, 1)), np.cumsum(x, axis=1)], axis=1)
    integral = cumsum[:, idx] + frac[None] * x[:, idx]             # (C, N, n_steps + 1)
    width = np.diff(pos, axis=1)[None]
    held = x[:, idx[:, :-1]]
    values = np.where(width > 1e-9, np.diff(integral, axis=2) / np.maximum(width, 1e-9), held)
    values = values.transpose(1, 0, 2)                              # (N, C, n_steps)
    mean = values.mean(axis=2, keepdims=True)
    std = values.std(axis=2, keepdims=True)
    values = (values - mean) / (std + 1.0)
    return values.reshape(bpm.shape[0], n_ch, N_BEATS, STEPS_PER_BEAT).astype(np.float32)


def autocorrelation_profile(features: TempoFeatures, start_frame: int = 0, stop_frame: int | None = None) -> np.ndarray:
    """Normalised, unbiased autocorrelation (lags 0..MAX_LAG) of the onset envelope and of each
    band's spectral flux over frames [start_frame, stop_frame): (PERIODICITY_CHANNELS, MAX_LAG + 1).

    ``r[k] = mean_t(x[t] x[t+k]) / mean_t(x[t]^2)`` for the mean-removed signal, so a periodic
    signal scores near 1 at its period whatever the song's length; lags the excerpt cannot hold
    are 0.
    """
    flux = pace_frame_features(features.log_mel_db[:, start_frame:stop_frame])[N_BANDS:]
    x = np.concatenate([features.onset_envelope[None, start_frame:stop_frame], flux]).astype(np.float64)
    # A 3-frame smoothing: a period that is not a whole number of frames still correlates fully.
    x[:, 1:-1] = 0.25 * x[:, :-2] + 0.5 * x[:, 1:-1] + 0.25 * x[:, 2:]
    x = x - x.mean(axis=1, keepdims=True)
    n = x.shape[1]
    out = np.zeros((x.shape[0], MAX_LAG + 1))
    if n < 4:
        return out
    n_fft = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(x, n=n_fft, axis=1)
    ac = np.fft.irfft(spec * np.conj(spec), n=n_fft, axis=1)[:, : min(MAX_LAG + 1, n - 1)]
    ac = ac / (n - np.arange(ac.shape[1]))[None, :]
    ac = ac / np.maximum(ac[:, :1], 1e-12)
    out[:, : ac.shape[1]] = ac
    return out


def periodicity_features(profile: np.ndarray, frame_rate: float, bpm) -> np.ndarray:
    """The autocorrelation at PERIODICITY_RATIOS × the candidate period (max within ±4 %, so a
    tempo slightly off still finds its peaks): (N, PERIODICITY_CHANNELS, len(PERIODICITY_RATIOS))."""
    bpm = np.atleast_1d(np.asarray(bpm, dtype=np.float64))
    period = 60.0 * frame_rate / bpm                                       # frames
    spread = np.linspace(-0.04, 0.04, 17)
    lags = period[:, None, None] * np.asarray(PERIODICITY_RATIOS)[None, :, None] * (1 + spread)[None, None, :]
    lags = np.clip(lags, 0, MAX_LAG + 1)                                   # past the end → 0 (padded)
    padded = np.concatenate([profile, np.zeros((profile.shape[0], 2))], axis=1)
    i0 = np.floor(lags).astype(np.int64)
    frac = lags - i0
    values = padded[:, i0] * (1 - frac) + padded[:, np.minimum(i0 + 1, MAX_LAG + 2)] * frac   # (C, N, R, S)
    return values.max(axis=3).transpose(1, 0, 2).astype(np.float32)


def clip_starts(duration_s: float, bpm: float, n_clips: int = N_CLIPS) -> np.ndarray:
    """Start times of ``n_clips`` stretches of N_BEATS beats at ``bpm``, spread evenly over the
    song (over its middle when it is longer than three segments), each shifted by a different
    fraction of a beat (fixed phases: the result is deterministic)."""
    clip_s = N_BEATS * 60.0 / bpm
    lo, hi = (SEGMENT_S, duration_s - SEGMENT_S) if duration_s >= 3 * SEGMENT_S else (0.0, duration_s)
    last = max(lo, hi - clip_s)
    starts = np.linspace(lo, last, n_clips) if n_clips > 1 else np.array([(lo + last) / 2])
    starts = starts + (np.arange(n_clips) / n_clips) * (60.0 / bpm)
    if clip_s >= duration_s:
        starts = np.full(n_clips, max(0.0, (duration_s - clip_s) / 2)) + (np.arange(n_clips) / n_clips) * (60.0 / bpm)
    return starts


def clip_starts_around(center_s: float, bpm: float, n_clips: int = N_CLIPS) -> np.ndarray:
    """Start times of ``n_clips`` stretches centred near ``center_s`` (the live strip), each
    shifted by a different fraction of a beat and spread over a quarter of a clip."""
    clip_s = N_BEATS * 60.0 / bpm
    offsets = (np.arange(n_clips) - (n_clips - 1) / 2) * (clip_s / 4 / max(n_clips, 1))
    return center_s - clip_s / 2 + offsets + (np.arange(n_clips) / n_clips) * (60.0 / bpm)


def pace_logits(features: TempoFeatures, bpm, n_clips: int = N_CLIPS, model_path=None,
                batch_size: int = 512, center_s: float | None = None, window_s: float = SEGMENT_S) -> np.ndarray:
    """Mean classifier logits over ``n_clips`` clips per candidate: (N, 2) = (compatible, beat).

    Clips are spread over the song (:func:`clip_starts`) and the periodicity profile is the
    song's; with ``center_s``, clips sit around that time and the profile is of the
    ``window_s`` around it (the live strip).
    """
    from engine import models

    bpm = np.atleast_1d(np.asarray(bpm, dtype=np.float64))
    if bpm.size == 0:
        return np.zeros((0, 2), np.float32)
    frame_features = pace_frame_features(features.log_mel_db)
    if center_s is None:
        starts = np.concatenate([clip_starts(features.duration_s, b, n_clips) for b in bpm])
        profile = autocorrelation_profile(features)
    else:
        starts = np.concatenate([clip_starts_around(center_s, b, n_clips) for b in bpm])
        half = int(round(window_s * features.frame_rate / 2))
        c = int(round(center_s * features.frame_rate))
        profile = autocorrelation_profile(features, max(0, c - half), c + half)
    clips = beat_clips(frame_features, features.frame_rate, np.repeat(bpm, n_clips), starts)
    periodicity = np.repeat(periodicity_features(profile, features.frame_rate, bpm), n_clips, axis=0)
    out = np.concatenate([models.run("pace", {"clips": clips[i:i + batch_size], "periodicity": periodicity[i:i + batch_size]},
                                     path=model_path)[0] for i in range(0, clips.shape[0], batch_size)])
    return out.reshape(bpm.size, n_clips, -1).mean(axis=1)


# Metrical hierarchies tried by :func:`make_consistent`: (beats per bar, beat division) of 2/4,
# 3/4, 4/4, 6/8, 9/8, 12/8 and 3/8, with the beat at a candidate × 1, 2, 3, 1/2 or 1/3.
METER_HYPOTHESES = ((2, 2), (3, 2), (4, 2), (2, 3), (3, 3), (4, 3), (1, 3))
BEAT_SHIFTS = (1.0, 2.0, 3.0, 1 / 2, 1 / 3)
CONSISTENCY_WEIGHT = 0.3


def make_consistent(bpm, probability, weight: float = CONSISTENCY_WEIGHT) -> np.ndarray:
    """Pull a song's pace probabilities towards one metrical hierarchy.

    The paces a song fits are the levels of *one* meter, so the candidates' verdicts are not
    independent. Every hierarchy ``engine.tempo.metrical_paces(beat, *METER_HYPOTHESES[k])`` with
    the beat at a candidate × BEAT_SHIFTS is scored by the log-likelihood of the candidates'
    probabilities (compatible inside it, not outside); the result is
    ``(1 - weight) * probability + weight * [candidate in the best hierarchy]``, which changes
    only the uncertain verdicts (with weight 0.3: probabilities within 0.29–0.71).
    """
    from engine.tempo import PACE_TOLERANCE, metrical_paces

    bpm = np.asarray(bpm, dtype=np.float64)
    probability = np.asarray(probability, dtype=np.float64)
    if bpm.size < 2 or weight <= 0:
        return probability
    hierarchies = [metrical_paces(b * shift, *meter) for b in bpm for shift in BEAT_SHIFTS for meter in METER_HYPOTHESES]
    paces = np.full((len(hierarchies), max(len(h) for h in hierarchies)), np.nan)  # NaN pads: never "inside"
    for i, h in enumerate(hierarchies):
        paces[i, : len(h)] = h
    inside = np.any(np.abs(bpm[None, :, None] / paces[:, None, :] - 1) <= PACE_TOLERANCE, axis=2)  # (H, N)
    eps = 1e-4
    log_likelihood = inside @ np.log(probability + eps) + (~inside) @ np.log(1 - probability + eps)
    best = inside[int(np.argmax(log_likelihood))]
    return (1 - weight) * probability + weight * best


# The re-ranking (:func:`beat_scores`), a score per candidate of "this is the notated beat":
# score = w_salience·ln(tempogram salience) + w_beat·ln P(beat) + w_pace·ln P(compatible)
#         + w_log2_bpm·x + w_log2_bpm_squared·x², with x = log2(bpm / RANK_REFERENCE_BPM)
# (the last two a tempo prior: log-normal when w_log2_bpm_squared < 0). Unit weights on the first
# three and none on x are the product salience × P(beat) × P(compatible) (the tempogram salience
# already holds a log-normal prior: centre 120 bpm, one octave, as librosa's).
# The values are models/pace/ranking.json's ``chosen_engine_form``: the ranking with the highest
# Accuracy1 + Accuracy2 on the validation songs the classifier never saw, here the conditional
# logit fitted on the classifier's training songs (tests/test_tempo.py checks the constants
# follow the file; models/MODEL_CARD_pace.md has the comparison).
RANK_REFERENCE_BPM = 120.0
RANK_FEATURES = ("salience", "beat", "pace", "log2_bpm", "log2_bpm_squared")
RANK_LOG_FLOOR = 1e-12  # logarithms of probabilities and saliences are floored here (as when fitted)
RANK_WEIGHTS = {"salience": -0.0916, "beat": 1.7012, "pace": 0.3806, "log2_bpm": 0.2740, "log2_bpm_squared": 0.0010}


def rank_features(bpm, tempogram_salience, beat_probability, pace_probability) -> np.ndarray:
    """(n, 5) features of one song's candidates, in :data:`RANK_FEATURES` order: ln salience,
    ln P(beat), ln P(compatible), x and x² with x = log2(bpm / RANK_REFERENCE_BPM)."""
    def log(v):
        return np.log(np.maximum(np.asarray(v, dtype=np.float64), RANK_LOG_FLOOR))

    x = np.log2(np.asarray(bpm, dtype=np.float64) / RANK_REFERENCE_BPM)
    return np.column_stack([log(tempogram_salience), log(beat_probability), log(pace_probability), x, x * x])


def beat_scores(bpm, tempogram_salience, beat_probability, pace_probability, weights=None) -> np.ndarray:
    """Log-scores of "this candidate is the notated beat" (the re-ranking; see RANK_WEIGHTS).

    ``softmax(beat_scores(...))`` over one song's candidates is the ranker's probability that each
    is the beat; higher first is the candidate order. ``weights`` may override some of
    :data:`RANK_WEIGHTS`.
    """
    w = dict(RANK_WEIGHTS, **(weights or {}))
    features = rank_features(bpm, tempogram_salience, beat_probability, pace_probability)
    return features @ np.array([w[k] for k in RANK_FEATURES])


def softmax(scores) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return scores
    e = np.exp(scores - scores.max())
    return e / e.sum()


def classify_paces(features: TempoFeatures, candidates: list[TempoCandidate], n_clips: int = N_CLIPS,
                   model_path=None, threshold: float = COMPATIBLE_THRESHOLD, center_s: float | None = None,
                   rerank: bool = True, consistent: bool = True) -> list[TempoCandidate]:
    """Fill in ``pace_probability``, ``compatible`` and ``beat_probability`` of ``candidates``.

    With ``consistent`` (default), the pace probabilities are made consistent across the
    candidates (:func:`make_consistent`).

    With ``rerank`` (default), ``salience`` becomes the ranker's probability that the candidate
    is the notated beat (``softmax(beat_scores(...))``, sum 1), the tempogram-only value goes to
    ``tempogram_salience``, and the returned list is most salient first. The candidate objects
    are updated in place.
    """
    if not candidates:
        return []
    logits = pace_logits(features, [c.bpm for c in candidates], n_clips, model_path, center_s=center_s)
    prob = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    if consistent:
        prob[:, 0] = make_consistent([c.bpm for c in candidates], prob[:, 0])
    for c, p in zip(candidates, prob):
        c.pace_probability, c.beat_probability = float(p[0]), float(p[1])
        c.compatible = bool(p[0] >= threshold)
    if not rerank:
        return list(candidates)
    for c in candidates:
        c.tempogram_salience = c.tempogram_salience if c.tempogram_salience is not None else c.salience
    weight = softmax(beat_scores([c.bpm for c in candidates], [c.tempogram_salience for c in candidates],
                                 [c.beat_probability for c in candidates], [c.pace_probability for c in candidates]))
    for c, w in zip(candidates, weight):
        c.salience = float(w)
    return sorted(candidates, key=lambda c: -c.salience)
