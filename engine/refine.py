"""Note-level refinement of a DTW alignment: snap each MIDI onset to the recording's onset.

Task
----
DTW on chroma-like frames puts a note's onset within a few frames of the truth, but where a chord
is held the path may place its stretch anywhere inside it. The onsets in the recording pin that
down: for every group of MIDI notes that start together, look around the time DTW predicts for the
strongest rise of energy in the group's pitch classes, and move the group there.

Conventions
-----------
- ``O`` is the recording's onset strength per pitch class (``features.onset_strength_by_pitch_class``),
  frame ``k`` measuring the rise between frames ``k-1`` and ``k``, i.e. an onset at
  ``(k - 0.5) / fps`` seconds.
- The search is limited to ``± search_s`` around the DTW prediction and weighted by a Gaussian prior
  of width ``prior_s`` so that a strong but distant onset of another note does not win.
- A group without a clear onset (score below ``min_strength``) keeps the DTW time. The refined times
  are made non-decreasing with isotonic regression weighted by onset strength, so one bad snap
  cannot fold time back.
"""
from __future__ import annotations

import numpy as np


def onset_groups(midi, tolerance_s: float = 0.025):
    """Group the MIDI's note onsets that start within ``tolerance_s`` of each other.

    Returns
    -------
    times_s : np.ndarray, shape (n_groups,)
        The earliest onset of each group (MIDI time).
    pitch_class_weights : np.ndarray, shape (n_groups, 12)
        Sum of velocities per pitch class (drum notes spread a little over all classes).
    """
    events = []
    for inst in midi.instruments:
        for n in inst.notes:
            events.append((n.start, n.pitch, n.velocity / 127.0, inst.is_drum))
    if not events:
        return np.zeros(0), np.zeros((0, 12))
    events.sort(key=lambda e: e[0])
    times, weights = [], []
    for start, pitch, vel, drum in events:
        if not times or start - times[-1] > tolerance_s:
            times.append(start)
            weights.append(np.zeros(12))
        if drum:
            weights[-1] += 0.1 * vel
        else:
            weights[-1][pitch % 12] += vel
    return np.asarray(times), np.asarray(weights)


def refine_onsets(group_times_s, pitch_class_weights, predicted_audio_s, O, fps, search_s=0.12, prior_s=0.08,
                  min_strength=0.15):
    """Move each onset group to the recording's onset near its predicted time.

    Parameters
    ----------
    group_times_s : np.ndarray, shape (n,)
        MIDI times of the onset groups.
    pitch_class_weights : np.ndarray, shape (n, 12)
    predicted_audio_s : np.ndarray, shape (n,)
        Where DTW puts each group in the recording.
    O : np.ndarray, shape (n_frames, 12)
        The recording's onset strength per pitch class.
    fps : float
        Frames per second of ``O``.

    Returns
    -------
    refined_audio_s : np.ndarray, shape (n,)
        Non-decreasing refined times.
    snapped : np.ndarray of bool, shape (n,)
        Which groups found an onset (the rest kept the DTW time).
    """
    n_frames = O.shape[0]
    radius = int(np.ceil(search_s * fps))
    predicted = np.asarray(predicted_audio_s, dtype=np.float64)
    refined = predicted.copy()
    strength = np.full(len(refined), 0.05)
    snapped = np.zeros(len(refined), dtype=bool)
    totals = pitch_class_weights.sum(axis=1)
    if len(refined) == 0:
        return refined, snapped
    # All groups at once: a (n_groups, window) grid of frames around each prediction.
    centre = predicted * fps + 0.5
    ks = np.round(centre).astype(np.int64)[:, None] + np.arange(-radius, radius + 1)[None, :]
    valid = (ks >= 1) & (ks < n_frames - 1)
    ks_clipped = np.clip(ks, 0, n_frames - 1)
    weights = pitch_class_weights / np.maximum(totals, 1e-9)[:, None]
    score = 0.8 * np.einsum("gwc,gc->gw", O[ks_clipped], weights) + 0.2 * O.mean(axis=1)[ks_clipped]
    score = np.where(valid, score, 0.0)
    prior = np.exp(-0.5 * ((ks - centre[:, None]) / (prior_s * fps)) ** 2)
    weighted = score * prior
    best = np.argmax(weighted, axis=1)
    rows = np.arange(len(best))
    best_score = score[rows, best]
    ok = (best_score >= min_strength) & (totals > 0) & valid.any(axis=1)
    # Parabolic interpolation of each peak for sub-frame precision.
    inner = (best > 0) & (best < weighted.shape[1] - 1)
    a = weighted[rows, np.maximum(best - 1, 0)]
    b = weighted[rows, best]
    c = weighted[rows, np.minimum(best + 1, weighted.shape[1] - 1)]
    denom = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(inner & (denom < 0), np.clip(0.5 * (a - c) / denom, -0.5, 0.5), 0.0)
    refined[ok] = (ks[rows, best][ok] + offset[ok] - 0.5) / fps
    strength[ok] = best_score[ok]
    snapped[ok] = True
    if len(refined) > 1:
        from sklearn.isotonic import IsotonicRegression

        refined = IsotonicRegression(increasing=True).fit_transform(np.arange(len(refined)), refined, sample_weight=strength)
    return refined, snapped
