"""Note-level alignment: from the chroma DTW path to the time of every note in the recording.

Task
----
The chroma DTW (:mod:`engine.dtw`, 46 ms frames) finds the right passage but not the right
frame: where a chord is held it may place its stretch anywhere inside it, and parts of the MIDI
that the recording lacks pull it off. Three steps make it precise:

1. :func:`instrument_presence` — which of the MIDI's instruments the recording contains: the
   recording's pitch-class energy along the DTW path, fitted (non-negative least squares) as a
   mix of each instrument's piano-roll energy. Instruments whose gain is near zero are left out
   of the MIDI's features (the caller re-synthesizes without them and runs the DTW again).
2. :func:`fine_path` — DTW again at the fine hop (11.6 ms) on chroma and decaying pitch-class
   onsets (:func:`engine.features.fine_features`), inside a band around the DTW path, twice (the
   second pass around the first, narrower). The MIDI's features are first pre-warped by the
   smoothed reference path, so that the band's diagonal already follows the tempo: without that,
   a DTW runs straight (slope 1) through held notes and catches up in jumps at the next change.
3. :func:`note_anchors` — every group of notes that start together (instruments present only)
   is placed where the fine path puts it, snapped within one frame to the strongest onset in its
   pitch classes, and the times are made non-decreasing. Notes of absent instruments, and
   stretches without notes, are interpolated between anchors (extrapolated at the anchors' mean
   tempo past the first and last: :class:`engine.align.Alignment`).

Conventions
-----------
- Times in seconds; ``fps`` is the fine frame rate (``sr / onset_hop_length``).
- Onset strength per pitch class (``O``; the fine DTW's vibrato-robust one and the sharp one the
  snap uses, :func:`engine.features.onset_strength_by_pitch_class`): frame ``k`` measures the
  rise into frame ``k``, i.e. an onset at ``(k - 0.5) / fps``. The MIDI side uses the same
  convention, so the fine path needs no offset.
- Metric: mean absolute onset error of the notes against the true warp, on the alignment
  benchmark (docs/BENCHMARKS.md; 64 pairs corrupted as Raffel & Ellis 2016 did), where what each
  step is worth is listed.
"""
from __future__ import annotations

import numpy as np
from numba import njit


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

    The search is limited to ``± search_s`` around the prediction and weighted by a Gaussian
    prior of width ``prior_s``; a group without a clear onset (score below ``min_strength``) keeps
    its predicted time. The result is made non-decreasing by isotonic regression weighted by onset
    strength, so one bad snap cannot fold time back.

    Parameters
    ----------
    group_times_s : np.ndarray, shape (n,)
        MIDI times of the onset groups.
    pitch_class_weights : np.ndarray, shape (n, 12)
    predicted_audio_s : np.ndarray, shape (n,)
        Where each group is predicted in the recording.
    O : np.ndarray, shape (n_frames, 12)
        The recording's onset strength per pitch class.
    fps : float
        Frames per second of ``O``.

    Returns
    -------
    refined_audio_s : np.ndarray, shape (n,)
        Non-decreasing refined times.
    snapped : np.ndarray of bool, shape (n,)
        Which groups found an onset (the rest kept the predicted time).
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
        refined = isotonic_increasing(refined, strength)
    return refined, snapped


def isotonic_increasing(y, weights=None) -> np.ndarray:
    """The non-decreasing sequence closest to ``y`` in weighted least squares (isotonic regression).

    Pool adjacent violators: consecutive values that would decrease are merged into one block at
    their weighted mean, until none does. The same fit as scikit-learn's
    ``IsotonicRegression(increasing=True)`` on ``x = arange(len(y))``, without its import.

    Parameters
    ----------
    y : array_like, shape (n,)
    weights : array_like, shape (n,), positive, optional
        All ones by default.

    Returns
    -------
    np.ndarray, float64, shape (n,)
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    weights = np.ones(len(y)) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    return _pool_adjacent_violators(y, weights)


@njit(cache=True, nogil=True)
def _pool_adjacent_violators(y, weights):
    n = y.shape[0]
    value = np.empty(n)  # the blocks so far: weighted mean, total weight, first index
    weight = np.empty(n)
    first = np.empty(n + 1, dtype=np.int64)
    k = 0
    for i in range(n):
        value[k], weight[k], first[k] = y[i], weights[i], i
        while k > 0 and value[k - 1] > value[k]:  # a decrease: merge the last two blocks
            total = weight[k - 1] + weight[k]
            value[k - 1] = (value[k - 1] * weight[k - 1] + value[k] * weight[k]) / total
            weight[k - 1] = total
            k -= 1
        k += 1
    first[k] = n
    out = np.empty(n)
    for b in range(k):
        out[first[b]:first[b + 1]] = value[b]
    return out


def instrument_presence(midi, path_i, path_j, chroma_energy, sr, hop_length):
    """How loud each MIDI instrument is in the recording, relative to the loudest.

    The recording's pitch-class energy along the path is fitted (non-negative least squares) as
    a mix of each instrument's piano-roll energy (:func:`engine.features.instrument_chroma_energy`,
    velocity-scaled) plus a constant (noise, reverb); an instrument's fitted weight is its gain in
    the recording. A part the recording lacks gets a gain near 0; a quiet or sparse part that is
    there keeps a gain like the others' (on the benchmark this separates them better than each
    part's share of the fitted energy).

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI
    path_i, path_j : np.ndarray of int
        A warping path between MIDI frames and recording frames at ``hop_length``.
    chroma_energy : np.ndarray, shape (n_recording_frames, 12)
        The recording's linear pitch-class magnitudes at ``hop_length``
        (:func:`engine.features.fine_features`).

    Returns
    -------
    np.ndarray, shape (n_instruments,), values in [0, 1]
        Each instrument's gain over the largest gain. All ones when there are fewer than two
        instruments with notes; instruments without notes get 1 (there is nothing of them to
        leave out).
    """
    from engine import features

    n_inst = len(midi.instruments)
    has_notes = np.array([len(inst.notes) > 0 for inst in midi.instruments], dtype=bool)
    if has_notes.sum() < 2 or len(path_i) < 2:
        return np.ones(n_inst)
    out = np.ones(n_inst)
    # Each recording frame on the path, with the MIDI frame it is matched to (the last one, if several).
    midi_frame_of = np.full(len(chroma_energy), -1, dtype=np.int64)
    inside = path_j < len(chroma_energy)
    midi_frame_of[path_j[inside]] = path_i[inside]
    frames = np.nonzero(midi_frame_of >= 0)[0]
    rolls = features.instrument_chroma_energy(midi, sr, hop_length, int(path_i.max()) + 1)[has_notes]
    peak = float(chroma_energy[frames].max()) if len(frames) else 0.0
    if not peak > 0:
        return np.ones(n_inst)
    # The least squares on the normal equations (instruments × instruments), summed over blocks of
    # frames: the same solution, without a (frames × 12)-row matrix. Columns: each instrument's
    # energy in the frame the path matches, and a constant (noise, reverb).
    gram, xty = np.zeros((len(rolls) + 1,) * 2), np.zeros(len(rolls) + 1)
    for a in range(0, len(frames), 4096):
        block = frames[a:a + 4096]
        X = rolls[:, midi_frame_of[block], :].reshape(len(rolls), -1).T.astype(np.float64)
        X = np.c_[X, np.ones(len(X))]
        # einsum, not a BLAS product: no threads to wait for on a busy machine
        gram += np.einsum("fa,fb->ab", X, X)
        xty += np.einsum("fa,f->a", X, chroma_energy[block].reshape(-1).astype(np.float64) / peak)
    gains = mix_gains(gram, xty)
    out[has_notes] = gains / max(float(gains.max()), 1e-12)
    return out


def mix_gains(gram, xty) -> np.ndarray:
    """Each part's gain in a mix fitted as parts + a constant (the last unknown), from the normal
    equations (``gram``, ``xty``); a little ridge keeps parts that never sounded solvable."""
    gram = np.array(gram, dtype=np.float64)
    gram[np.diag_indices_from(gram)] += 1e-9 * max(float(np.trace(gram)), 1e-12)
    return nonnegative_least_squares(gram, xty)[:-1]


def nonnegative_least_squares(gram, xty):
    """``argmin_w |X w - y|^2`` subject to ``w >= 0``, from ``gram = X.T X`` and ``xty = X.T y``.

    Lawson & Hanson's active-set method on the normal equations (for a handful of unknowns: the
    instruments of a MIDI; scipy.optimize.nnls gives the same, but importing it costs ~20 MB).
    ``gram`` must be positive definite.
    """
    gram, xty = np.asarray(gram, dtype=np.float64), np.asarray(xty, dtype=np.float64)
    n = len(xty)
    tol = 10 * np.finfo(float).eps * n * max(float(np.abs(gram).max()), float(np.abs(xty).max()), 1e-300)
    free = np.zeros(n, dtype=bool)  # the unknowns not held at zero
    w = np.zeros(n)
    for _ in range(3 * n + 10):
        gradient = xty - gram @ w
        candidates = ~free & (gradient > tol)
        if not candidates.any():
            break
        free[int(np.argmax(np.where(candidates, gradient, -np.inf)))] = True
        while True:
            idx = np.nonzero(free)[0]
            s = np.zeros(n)
            s[idx] = np.linalg.solve(gram[np.ix_(idx, idx)], xty[idx])
            if np.all(s[idx] > 0):
                break
            # Step from w towards s until the first free unknown reaches zero; hold it there.
            blocked = idx[s[idx] <= 0]
            alpha = float(np.min(w[blocked] / np.maximum(w[blocked] - s[blocked], 1e-300)))
            w = w + alpha * (s - w)
            free &= w > tol
            w[~free] = 0.0
            if not free.any():
                s = w
                break
        w = s
    return w


def onset_block(O, n_decay: int = 10, power: float = 2.0, out=None):
    """Onset features for DTW: each onset decays over ``n_decay`` frames, plus a "no onset" value.

    Like Sync Toolbox's DLNCO features (Ewert, Müller & Grosche 2009): an onset at frame k also
    shows, weaker (by ``(1 / (1 + lag)) ** power``), in the frames after it, so that a path a few
    frames off still sees part of it. A 13th component ``max(0, 1 - |onsets|)`` makes frames without
    onsets alike. Rows are L2-normalised (cosine distance). Written into ``out`` (n, 13) if given.
    """
    O = np.asarray(O, dtype=np.float32)
    X = np.empty((len(O), 13), dtype=np.float32) if out is None else out
    X[:, :12] = O
    for lag in range(1, n_decay):
        np.maximum(X[lag:, :12], (1.0 / (1 + lag)) ** power * O[:-lag], out=X[lag:, :12])
    X[:, 12] = np.maximum(1.0 - np.linalg.norm(X[:, :12], axis=1), 0.0)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-9)
    return X


def smooth_map(x, y, half_width_s: float = 1.0, grid_s: float = 0.05):
    """A monotone map y(x) resampled every ``grid_s`` and smoothed by a moving mean of ± ``half_width_s``.

    The ends are extended by point reflection, so a straight stretch stays where it is up to the
    ends (a plain moving mean would bend it towards its end values).
    """
    t = np.arange(x[0], x[-1] + grid_s, grid_s)
    v = np.interp(t, x, y)
    h = int(round(half_width_s / grid_s))
    if h > 0 and len(v) > 1:
        padded = np.pad(v, h, mode="reflect", reflect_type="odd")
        c = np.concatenate([[0.0], np.cumsum(padded)])
        v = (c[2 * h + 1:] - c[:-2 * h - 1]) / (2 * h + 1)
    return t, np.maximum.accumulate(v)


def _resample_rows(X, positions, out, chunk=1 << 15):
    """Rows of X at fractional row ``positions`` (linear interpolation, clipped to the ends), into
    ``out``; in chunks, so the temporaries stay small."""
    u = np.clip(positions, 0, len(X) - 1)
    for a in range(0, len(u), chunk):
        v = u[a:a + chunk]
        i0 = np.floor(v).astype(np.int64)
        i1 = np.minimum(i0 + 1, len(X) - 1)
        f = (v - i0)[:, None].astype(np.float32)
        out[a:a + chunk] = (1 - f) * X[i0] + f * X[i1]
    return out


def _normalise_rows(X):
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-9)


def fine_path(midi_chroma, midi_onsets, rec_chroma, rec_onsets, fps, ref_audio_s, ref_midi_s, onset_weight=0.3,
              radius_s=0.4, penalty_scale=1.0, gully=0.2, smooth_s=1.0, passes=2, cancel=None):
    """DTW at the fine hop, in a band around a reference map, on chroma + decaying onsets.

    Parameters
    ----------
    midi_chroma, midi_onsets : np.ndarray, shapes (n, 12)
        The MIDI's fine chroma (unit rows) and onset strength, frame ``k`` at ``k / fps``.
    rec_chroma, rec_onsets : np.ndarray, shapes (m, 12)
        The recording's, at the same hop.
    fps : float
    ref_audio_s, ref_midi_s : np.ndarray
        A monotone reference map (recording time → MIDI time), e.g. the chroma DTW path.
    onset_weight : float
        Weight of the onset block in the cost (the chroma's is ``1 - onset_weight``).
    radius_s : float
        Half-width of the band around the (smoothed) reference.
    smooth_s : float
        Half-width of the moving mean that smooths the reference before pre-warping.
    passes : int
        Each further pass runs around the previous one's path, with half the smoothing and band.

    Returns
    -------
    midi_s, audio_s : np.ndarray
        The fine path (MIDI times fractional, from the pre-warp), non-decreasing in both.
    """
    B = fine_recording_block(rec_chroma, rec_onsets, onset_weight)
    return fine_path_from_blocks(midi_chroma, onset_block(midi_onsets), B, fps, ref_audio_s, ref_midi_s,
                                 onset_weight, radius_s, penalty_scale, gully, smooth_s, passes, cancel)


def _weights(onset_weight):
    return np.float32(np.sqrt(1.0 - onset_weight)), np.float32(np.sqrt(onset_weight))


def fine_recording_block(rec_chroma, rec_onsets, onset_weight=0.3) -> np.ndarray:
    """The recording's rows of the fine DTW, shape (m, 25): weighted chroma and :func:`onset_block`.

    Built in place (a 20-minute recording's fine frames are 10 MB per copy); once it is made, the
    recording's fine chroma and onsets are no longer needed.
    """
    m = min(len(rec_chroma), len(rec_onsets))
    wc, wo = _weights(onset_weight)
    B = np.empty((m, 25), dtype=np.float32)
    np.multiply(wc, rec_chroma[:m], out=B[:, :12])
    onset_block(rec_onsets[:m], out=B[:, 12:])
    B[:, 12:] *= wo
    return B


def fine_path_from_blocks(midi_chroma, midi_onset_block, B, fps, ref_audio_s, ref_midi_s, onset_weight=0.3,
                          radius_s=0.4, penalty_scale=1.0, gully=0.2, smooth_s=1.0, passes=2, cancel=None):
    """:func:`fine_path` from the MIDI's :func:`onset_block` and the recording's :func:`fine_recording_block`."""
    wc, wo = _weights(onset_weight)
    midi_s, audio_s = np.asarray(ref_midi_s, float), np.asarray(ref_audio_s, float)
    for k in range(passes):
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        midi_s, audio_s = _fine_pass(midi_chroma, midi_onset_block, B, wc, wo, fps, audio_s, midi_s,
                                     radius_s / 2 ** k, penalty_scale, gully, smooth_s / 2 ** k)
    return midi_s, audio_s


def _fine_pass(midi_chroma, midi_onset_block, B, wc, wo, fps, ref_audio_s, ref_midi_s, radius_s, penalty_scale,
               gully, smooth_s):
    """One pass of :func:`fine_path`: pre-warp the MIDI by the smoothed reference, banded DTW."""
    from engine import dtw

    m = len(B)
    x, y = smooth_map(ref_audio_s, ref_midi_s, smooth_s)
    # The MIDI frame each recording frame maps to under the reference (linear past its ends).
    t = np.arange(m) / fps
    slope = (y[-1] - y[0]) / max(x[-1] - x[0], 1e-9)
    u = np.interp(t, x, y)
    u = np.where(t < x[0], y[0] + (t - x[0]) * slope, np.where(t > x[-1], y[-1] + (t - x[-1]) * slope, u)) * fps
    A = np.empty((m, 25), dtype=np.float32)  # the MIDI's chroma and onsets, warped; built in place
    warped_chroma, warped_onsets = A[:, :12], A[:, 12:]
    _normalise_rows(_resample_rows(np.asarray(midi_chroma, np.float32), u, out=warped_chroma))
    _normalise_rows(_resample_rows(midi_onset_block, u, out=warped_onsets))
    # Before the MIDI's start and after its end there is nothing (not its first or last frame
    # again, whose onsets would match anywhere in a recording's leading silence).
    outside = (u < -0.5) | (u > len(midi_chroma) - 0.5)
    warped_chroma[outside] = 1.0 / np.sqrt(12.0)
    warped_onsets[outside] = 0.0
    warped_onsets[outside, -1] = 1.0
    warped_chroma *= wc
    warped_onsets *= wo
    radius = max(1, int(round(radius_s * fps)))
    k = np.arange(m, dtype=np.int64)
    lo, hi = np.clip(k - radius, 0, m - 1), np.clip(k + radius + 1, 1, m)
    lo[0], hi[-1] = 0, m
    rng = np.random.default_rng(0)
    median_cost = float(np.median(dtw.sampled_costs(A, B, rng.integers(0, m, 20000), rng.integers(0, m, 20000), 1.0)))
    pi, pj, _ = dtw.dtw_banded(A, B, lo, hi, penalty_scale * median_cost, median_cost, gully, 1.0)
    return np.interp(pi, k, u) / fps, pj / fps


def note_anchors(midi, midi_s, audio_s, O, fps, audio_duration_s, snap_frames: int = 1):
    """Anchors (MIDI time, audio time) at the MIDI's onset groups, from a fine path.

    Each group's time on the path is snapped to the strongest onset in its pitch classes within
    ``snap_frames`` frames (:func:`refine_onsets`; on the benchmark one frame of the sharp
    :func:`engine.features.onset_strength_by_pitch_class` helps, wider snaps hurt slow attacks);
    groups the path puts outside the recording are left out.

    Returns
    -------
    anchor_midi_s, anchor_audio_s : np.ndarray
        Both non-decreasing; empty when fewer than two groups are inside the recording.
    """
    times, weights = onset_groups(midi)
    if len(times) == 0:
        return np.zeros(0), np.zeros(0)
    from engine.align import _interp_extrap, _monotone_knots

    predicted = _interp_extrap(times, *_monotone_knots(midi_s, audio_s))
    margin = 1.0 / fps
    inside = (predicted > margin) & (predicted < audio_duration_s - margin)
    times, weights, predicted = times[inside], weights[inside], predicted[inside]
    if len(times) < 2:
        return np.zeros(0), np.zeros(0)
    if snap_frames <= 0:
        return times, np.maximum.accumulate(predicted)
    snapped, _ = refine_onsets(times, weights, predicted, O, fps, search_s=(snap_frames - 0.01) / fps)
    return times, np.asarray(snapped, dtype=np.float64)
