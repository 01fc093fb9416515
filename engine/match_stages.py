"""The numeric stages of library matching: summaries, pruning, coarse DTW, z-scores, calibration.

Task
----
Score every (MIDI, recording) pair of a library cheaply enough for 10 000 × 10 000, by a cascade
(:mod:`engine.match` runs it; this module holds the pure functions over numpy arrays):

1. **prune** — each file is summarised by its chroma averaged over ``n_segments`` equal parts of
   its (silence-trimmed) duration, smoothed across segments and flattened into one unit vector;
   a MIDI also by the same summary of a few sub-spans (:func:`summary_variants`: a recording
   often starts or ends somewhere inside the score, which shifts every segment of a whole-file
   profile). A pair's score is the best dot product over the MIDI's variants (matrix products
   done in row blocks). The
   score matrix is z-scored by row and by column (the seed study's normalisation, so that no file
   is favoured by its length or its texture; leave-one-out, so that the scale does not depend on
   the library's size) and each MIDI keeps its top ``k_prune`` recordings;
2. **coarse DTW** (numba, parallel over pairs) on chroma pooled to ~0.23 s frames, for the kept
   pairs plus ``n_null`` random other recordings per MIDI: its score is the alignment confidence
   of Raffel & Ellis, ``1 - mean cost on the path / mean cost of the submatrix it spans``. These
   sparse scores are z-scored by row against the MIDI's random pairs (a sample of non-matches
   whose statistics do not depend on how many candidates were kept) and by column against the
   recording's other computed pairs (leave-one-out);
3. **confirm** — the full alignment (:func:`engine.align.align`) of each MIDI's top ``k_confirm``
   pairs, for its confidence (aligned again without the MIDI's parts the recording lacks).

Calibrated confidence: a logistic model per stage maps the evidence a pair reached to P(match)
(:data:`CALIBRATION`, fitted on a separate synthetic calibration set by
``python -m tests.benchmarks.bench_match calibrate``, never on an evaluated set's labels). The
evidence: prune — z and row margin; coarse — z, row margin, column margin; confirm — those and
the alignment confidence with its row and column margins. Column margins make a match mutual: a
recording that several MIDIs like (a lone melody line fits many harmonisations) is nobody's sure
match.

Measured on the calibration set (50 MIDIs × 50 recordings; 5-fold cross-validated by MIDI):
open-set F1 1.000 (the confirm stage separates it completely, so its regularisation came out
weak: C = 100). On the evaluated benchmark (180 × 185, never used for fitting): rank-1 0.967,
F1 0.966, ROC AUC 0.997; on the 1 000 × 1 000 set rank-1 0.952, F1 0.952, ROC AUC 0.996 (from
0.937 / 0.940 / 0.995 with the top 24 and 2 confirmed, and alignments that kept every part: a
recording that lost voices scored low against the whole score). Docs: tests/benchmarks/bench_match.py.

Conventions
-----------
- Chroma rows are unit vectors (12 pitch classes, :mod:`engine.features`); matrices are indexed
  ``[midi, audio]``; z-scores add the row z and the column z.
- A "margin" of a pair is its score minus the best score of the same MIDI's other pairs (at the
  same stage): positive only for the MIDI's best pair.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine import dtw

# Logistic models (sklearn LogisticRegression on standardised features), one per stage:
# P(match) = 1 / (1 + exp(-(bias + sum(coef * (x - mean) / scale)))). Fitted by
# `python -m tests.benchmarks.bench_match calibrate` on data/bench/match/calib (disjoint from the
# evaluated set), each stage's regularisation (C = 10, 1, 100 for prune, coarse, confirm) chosen
# there by cross-validated log-loss; see the benchmark's report for the fit.
CALIBRATION = {
    "prune": {
        "features": ["z", "margin"],
        "mean": [-0.010084, -4.266661],
        "scale": [1.879781, 2.555743],
        "coef": [2.181408, 5.47338],
        "bias": -14.500537,
    },
    "coarse": {
        "features": ["z", "margin", "col_margin"],
        "mean": [0.114026, -12.260665, -12.656272],
        "scale": [2.435672, 6.789156, 6.413003],
        "coef": [1.169092, 1.577531, 0.834403],
        "bias": -9.262542,
    },
    "confirm": {
        "features": ["z", "margin", "col_margin", "confidence", "confidence_margin", "confidence_col_margin"],
        "mean": [6.346159, -3.271815, -2.083221, 0.275616, -0.093335, -0.150809],
        "scale": [5.760354, 10.361084, 9.716424, 0.156908, 0.265747, 0.288489],
        "coef": [3.193879, 2.225959, 1.33408, 2.921378, 1.654927, 1.929401],
        "bias": -5.549966,
    },
}
SILENT_SPREAD = 1e-3  # a chroma row whose values span less than this is silence (a flat row)


# ---- per-file summaries ----------------------------------------------------------------------

def trim_silence(chroma: np.ndarray) -> np.ndarray:
    """Drop silent frames (flat chroma rows) at the start and the end."""
    live = np.flatnonzero(chroma.max(axis=1) - chroma.min(axis=1) > SILENT_SPREAD)
    return chroma[live[0]:live[-1] + 1] if len(live) else chroma[:0]


def summary_vector(chroma: np.ndarray, n_segments: int = 32, smooth_segments: float = 1.0) -> np.ndarray:
    """A file's chroma averaged over ``n_segments`` equal parts, smoothed, centred, unit length.

    Returns
    -------
    np.ndarray, float32, shape (12 * n_segments,)
    """
    from scipy.ndimage import gaussian_filter1d

    n = len(chroma)
    if n < n_segments:
        raise ValueError(f"{n} frames cannot make {n_segments} segments")
    edges = np.linspace(0, n, n_segments + 1).astype(int)  # strictly increasing when n >= n_segments
    cumulative = np.concatenate([np.zeros((1, chroma.shape[1])), np.cumsum(chroma, axis=0, dtype=np.float64)])
    segments = (cumulative[edges[1:]] - cumulative[edges[:-1]]) / np.diff(edges)[:, None]
    segments /= np.maximum(np.linalg.norm(segments, axis=1, keepdims=True), 1e-9)
    if smooth_segments > 0:
        segments = gaussian_filter1d(segments, smooth_segments, axis=0, mode="nearest")
    segments -= segments.mean(axis=1, keepdims=True)
    v = segments.ravel()
    return (v / max(float(np.linalg.norm(v)), 1e-9)).astype(np.float32)


def summary_variants(chroma: np.ndarray, n_segments: int = 12, smooth_segments: float = 0.4,
                     spans=((0.0, 1.0),)) -> np.ndarray:
    """:func:`summary_vector` of each sub-span ``(start, end)`` (fractions of the file's length).

    A span shorter than ``n_segments`` frames is widened to that many (from its start).

    Returns
    -------
    np.ndarray, float32, shape (len(spans), 12 * n_segments)
    """
    n = len(chroma)
    out = []
    for start, end in spans:
        a = min(int(start * n), max(n - n_segments, 0))
        b = max(int(round(end * n)), a + n_segments)
        out.append(summary_vector(chroma[a:b], n_segments, smooth_segments))
    return np.stack(out)


def crop_spans(crop_step: float, n_crops: int) -> tuple:
    """Sub-spans cutting ``0, step, …, (n_crops - 1) · step`` off the start and (independently) the end."""
    cuts = [round(i * crop_step, 6) for i in range(max(n_crops, 1))]
    return tuple((a, 1.0 - b) for a in cuts for b in cuts)


def pooled_chroma(chroma: np.ndarray, factor: int) -> np.ndarray:
    """Chroma averaged over ``factor`` frames and re-normalised (the coarse DTW's frames)."""
    return dtw.pool_features(np.ascontiguousarray(chroma, dtype=np.float32), factor, (12,))


# ---- stage 1: pruning ------------------------------------------------------------------------

def raw_scores(U: np.ndarray, V: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
    """Summary scores of some MIDIs (``rows``) with every recording: the best over the MIDI's variants.

    ``U`` is (n_midi, d) or (n_variants, n_midi, d); the result is float32 (n_rows, n_audio).
    """
    if U.ndim == 2:
        return U[rows] @ V.T
    S = U[0, rows] @ V.T
    for variant in U[1:]:
        np.maximum(S, variant[rows] @ V.T, out=S)
    return S


def prune(U: np.ndarray, V: np.ndarray, k: int, block_rows: int = 4096, keep_below: int = 1 << 26,
          z_out: np.ndarray | None = None):
    """Z-scored summary scores of all pairs, in row blocks, and each MIDI's top ``k``.

    A pair's z-score is its leave-one-out z within its row plus the same within its column
    (:func:`loo_z`): a MIDI or a recording that scores high with everything is not favoured.

    Parameters
    ----------
    U : np.ndarray, float32, shape (n_midi, d) or (n_variants, n_midi, d)
        MIDI summary vectors (each MIDI's variants: :func:`summary_variants`).
    V : np.ndarray, float32, shape (n_audio, d)
        Recording summary vectors.
    k : int
        Candidates kept per MIDI (``min(k, n_audio)``).
    block_rows : int
        MIDIs per matrix product.
    keep_below : int
        Keep the raw score matrix between the two passes when it has fewer cells than this
        (else recompute each block: memory stays ``block_rows × n_audio``).
    z_out : np.ndarray, float32, shape (n_midi, n_audio), optional
        When given, every pair's z-score is written into it (the decision stage reads them all).

    Returns
    -------
    top : np.ndarray of int, shape (n_midi, k)
        Recording indices, best first.
    top_z : np.ndarray, float32, shape (n_midi, k)
        Their z-scores.
    """
    U = np.ascontiguousarray(U, np.float32)
    V = np.ascontiguousarray(V, np.float32)
    n_midi, n_audio = U.shape[-2], len(V)
    if z_out is not None and (z_out.shape != (n_midi, n_audio) or z_out.dtype != np.float32
                              or not z_out.flags.c_contiguous or not z_out.flags.writeable):
        raise ValueError(f"z_out must be a writeable C-contiguous float32 array of shape {(n_midi, n_audio)}")
    k = min(k, n_audio)
    row_sum, row_sq = np.empty(n_midi), np.empty(n_midi)
    col_sum, col_sq = np.zeros(n_audio), np.zeros(n_audio)
    kept = {}
    for start in range(0, n_midi, block_rows):
        S = raw_scores(U, V, slice(start, start + block_rows))
        rs, rq, cs, cq = _block_stats(S)
        row_sum[start:start + len(S)], row_sq[start:start + len(S)] = rs, rq
        col_sum += cs
        col_sq += cq
        if n_midi * n_audio < keep_below:
            kept[start] = S
    no_z = np.empty((0, 0), np.float32)
    top = np.empty((n_midi, k), np.int64)
    top_z = np.empty((n_midi, k), np.float32)
    for start in range(0, n_midi, block_rows):
        S = kept.pop(start) if start in kept else raw_scores(U, V, slice(start, start + block_rows))
        z_block = no_z if z_out is None else z_out[start:start + len(S)]
        top[start:start + len(S)], top_z[start:start + len(S)] = _zscore_topk(
            S, row_sum, row_sq, col_sum, col_sq, n_midi, k, start, z_block, z_out is not None)
    return top, top_z


@njit(parallel=True, cache=True)
def _block_stats(S):
    """Row sums and sums of squares, and column ones, of a float32 block (float64 accumulators)."""
    n, m = S.shape
    n_chunks = max(1, min(n, 32))
    part_sum = np.zeros((n_chunks, m))
    part_sq = np.zeros((n_chunks, m))
    row_sum = np.empty(n)
    row_sq = np.empty(n)
    for c in prange(n_chunks):
        for i in range(c, n, n_chunks):
            rs = 0.0
            rq = 0.0
            for j in range(m):
                x = np.float64(S[i, j])
                rs += x
                rq += x * x
                part_sum[c, j] += x
                part_sq[c, j] += x * x
            row_sum[i] = rs
            row_sq[i] = rq
    return row_sum, row_sq, part_sum.sum(axis=0), part_sq.sum(axis=0)


@njit(parallel=True, cache=True, fastmath=True)
def _zscore_topk(S, row_sum, row_sq, col_sum, col_sq, n_rows_total, k, row_offset, z_out, write_z):
    """Leave-one-out row z + column z of each cell (into ``z_out`` if ``write_z``), and each row's ``k`` best."""
    n, m = S.shape
    top = np.empty((n, k), np.int64)
    top_z = np.empty((n, k), np.float32)
    n_row_other = max(m - 1, 1)
    n_col_other = max(n_rows_total - 1, 1)
    for i in prange(n):
        zs = np.full(k, -np.inf, np.float32)
        idx = np.full(k, -1, np.int64)
        rs, rq = row_sum[row_offset + i], row_sq[row_offset + i]
        for j in range(m):
            x = np.float64(S[i, j])
            mean = (rs - x) / n_row_other
            var = (rq - x * x) / n_row_other - mean * mean
            z = (x - mean) / np.sqrt(max(var, 1e-12))
            mean = (col_sum[j] - x) / n_col_other
            var = (col_sq[j] - x * x) / n_col_other - mean * mean
            z += (x - mean) / np.sqrt(max(var, 1e-12))
            if write_z:
                z_out[i, j] = z
            if z > zs[k - 1]:
                p = k - 1
                while p > 0 and zs[p - 1] < z:
                    zs[p] = zs[p - 1]
                    idx[p] = idx[p - 1]
                    p -= 1
                zs[p] = z
                idx[p] = j
        top[i] = idx
        top_z[i] = zs
    return top, top_z


def loo_z(x, total, total_sq, n):
    """Leave-one-out z-score: ``x`` against the mean and std of the *other* values of its row/column.

    ``total`` and ``total_sq`` are the sum and the sum of squares of all ``n`` values, ``x``
    included. Leaving the value out keeps a true match from inflating its own row's spread, so
    the z-scores of a small library are on the same scale as those of a large one.
    """
    n_other = np.maximum(n - 1, 1)
    mean = (total - x) / n_other
    var = (total_sq - x * x) / n_other - mean * mean
    return (x - mean) / np.sqrt(np.maximum(var, 1e-12))


# ---- stage 2: coarse DTW ---------------------------------------------------------------------

@njit(cache=True)
def _coarse_confidence(A, B, gully, penalty_scale):
    n, m = A.shape[0], B.shape[0]
    C = np.empty((n, m), np.float32)
    for i in range(n):
        for j in range(m):
            s = 0.0
            for c in range(A.shape[1]):
                s += A[i, c] * B[j, c]
            C[i, j] = 1.0 - s
    mean = C.mean()
    lo = np.zeros(n, np.int64)
    hi = np.full(n, m, np.int64)
    gully_n = max(1, int(np.floor(gully * n)))
    gully_m = max(1, int(np.floor(gully * m)))
    P, offsets, end_i, end_j, _ = dtw._dtw_band_pointers(A, B, lo, hi, np.float32(1.0),
                                                         np.float32(penalty_scale * mean), np.float32(mean),
                                                         gully_n, gully_m)
    pi, pj = dtw._backtrack(P, offsets, lo, end_i, end_j)
    on_path = 0.0
    for t in range(pi.shape[0]):
        on_path += C[pi[t], pj[t]]
    on_path /= pi.shape[0]
    spanned = C[pi[0]:pi[-1] + 1, pj[0]:pj[-1] + 1].mean()
    return 1.0 - on_path / max(spanned, 1e-9)


@njit(parallel=True, cache=True)
def _coarse_batch(A_all, a_offsets, B_all, b_offsets, pair_midi, pair_audio, gully, penalty_scale):
    out = np.empty(pair_midi.shape[0], np.float64)
    for t in prange(pair_midi.shape[0]):
        i, j = pair_midi[t], pair_audio[t]
        out[t] = _coarse_confidence(A_all[a_offsets[i]:a_offsets[i + 1]], B_all[b_offsets[j]:b_offsets[j + 1]],
                                    gully, penalty_scale)
    return out


def pack(sequences) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate feature sequences into one array and the offsets of each (for the numba batch)."""
    offsets = np.zeros(len(sequences) + 1, np.int64)
    offsets[1:] = np.cumsum([len(s) for s in sequences])
    packed = np.concatenate(sequences).astype(np.float32) if sequences else np.zeros((0, 12), np.float32)
    return np.ascontiguousarray(packed), offsets


def coarse_scores(midi_packed, audio_packed, pair_midi, pair_audio, gully: float = 0.35,
                  penalty_scale: float = 1.0) -> np.ndarray:
    """Coarse-DTW confidence of each pair ``(pair_midi[t], pair_audio[t])`` (numba, all cores).

    Parameters
    ----------
    midi_packed, audio_packed : tuple (packed, offsets)
        From :func:`pack` of the pooled chroma sequences.
    pair_midi, pair_audio : np.ndarray of int
    gully : float
        Fraction of either sequence that may be left out at each end (intros, cuts, endings).
    penalty_scale : float
        Non-diagonal steps cost ``penalty_scale`` × the pair's mean cost.
    """
    return _coarse_batch(midi_packed[0], midi_packed[1], audio_packed[0], audio_packed[1],
                         np.asarray(pair_midi, np.int64), np.asarray(pair_audio, np.int64),
                         float(gully), float(penalty_scale))


def null_candidates(n_audio: int, exclude: np.ndarray, n_null: int, seed: int, midi_index: int) -> np.ndarray:
    """``n_null`` random recordings not in ``exclude`` (sorted), drawn from a generator seeded per MIDI."""
    rng = np.random.default_rng([seed, midi_index])
    excluded = set(np.asarray(exclude).tolist())
    want = min(n_null, n_audio - len(excluded))
    if want <= 0:
        return np.zeros(0, np.int64)
    if n_audio <= 4 * (len(excluded) + n_null):  # a small library: draw from the free ones exactly
        free = np.setdiff1d(np.arange(n_audio), np.fromiter(excluded, np.int64, len(excluded)))
        return np.sort(rng.choice(free, size=want, replace=False)).astype(np.int64)
    chosen: set = set()
    while len(chosen) < want:  # a large one: rejection sampling, O(n_null) instead of O(n_audio)
        j = int(rng.integers(n_audio))
        if j not in excluded:
            chosen.add(j)
    return np.array(sorted(chosen), np.int64)


def sparse_zscores(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, row_reference=None,
                   min_count: int = 4) -> np.ndarray:
    """Row z + column z of sparse scores.

    Each entry is compared with the other entries of its column (leave-one-out, :func:`loo_z`),
    and with the *reference* entries of its row (``row_reference``: a boolean mask, e.g. the
    random null pairs, whose statistics do not depend on how many candidates were kept; all
    entries when None; leave-one-out for a reference entry itself). A row or column with fewer
    than ``min_count`` statistics entries is scored against all entries instead.
    """
    values = np.asarray(values, np.float64)
    rows, cols = np.asarray(rows), np.asarray(cols)
    g_sum, g_sq, g_n = values.sum(), (values * values).sum(), len(values)

    def z_along(index, reference):
        w = np.ones(len(values)) if reference is None else np.asarray(reference, np.float64)
        n = np.bincount(index, w, minlength=index.max() + 1)[index]
        total = np.bincount(index, w * values, minlength=index.max() + 1)[index]
        total_sq = np.bincount(index, w * values * values, minlength=index.max() + 1)[index]
        own = w > 0  # the entry is among its own statistics: leave it out
        z_in = loo_z(values, total, total_sq, n)
        z_out = (values - total / np.maximum(n, 1)) / np.sqrt(
            np.maximum(total_sq / np.maximum(n, 1) - (total / np.maximum(n, 1)) ** 2, 1e-12))
        z = np.where(own, z_in, z_out)
        few = (n - own) < min_count - 1
        return np.where(few, loo_z(values, g_sum, g_sq, g_n), z)

    return z_along(rows, row_reference) + z_along(cols, None)


def row_margins(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each entry minus the best other entry of its row (0 when the row has one entry)."""
    rows = np.asarray(rows)
    values = np.asarray(values, np.float64)
    out = np.zeros(len(values))
    order = np.lexsort((-values, rows))
    starts = np.flatnonzero(np.r_[True, rows[order][1:] != rows[order][:-1]])
    ends = np.r_[starts[1:], len(order)]
    for s, e in zip(starts, ends):
        idx = order[s:e]
        if e - s < 2:
            continue
        best, second = values[idx[0]], values[idx[1]]
        out[idx] = values[idx] - best
        out[idx[0]] = best - second
    return out


# ---- decisions -------------------------------------------------------------------------------

DECIDE_BLOCK_ROWS = 256  # rows of the score matrix computed at a time (bounds decide's temporaries)


def decide(Z1, pm, pa, z2, in_top, confirm_idx, c3, threshold: float = 0.5,
           calibration: dict | None = None) -> dict:
    """Calibrated confidence of every pair, the cascade's order kept per row, and the decisions.

    Parameters
    ----------
    Z1 : np.ndarray, shape (n_midi, n_audio)
        Prune-stage z-scores of all pairs.
    pm, pa, z2 : np.ndarray
        The coarse-DTW pairs (MIDI, audio indices) and their z-scores.
    in_top : np.ndarray of bool
        Which coarse pairs were kept by the pruning (the others are random null pairs).
    confirm_idx : np.ndarray of int
        Indices (into the coarse pairs) of the confirmed pairs; ``c3`` their alignment
        confidence (NaN where the alignment failed).
    threshold : float
        Calibrated confidence a MIDI's best confirmed pair needs to be its match.

    Returns
    -------
    dict
        ``scores``, ``stage``, ``predicted``, ``best``, ``confidence``, ``gap`` and ``evidence``
        (per stage: pair indices and the features the calibration uses), as in
        :class:`engine.match.MatchResult`.
    """
    n_midi, n_audio = Z1.shape
    # The coarse and confirm stages touch a few pairs per row: their arrays are per pair.
    top2 = np.flatnonzero(in_top)
    p2 = np.full(len(z2), np.nan)
    # Margins over the MIDI's other pairs, and over the recording's other MIDIs (a match should be
    # both: a recording that many MIDIs like — a lone melody, say — is no one's match for sure).
    margin2, col_margin2 = row_margins(pm, z2), row_margins(pa, z2)
    p2[top2] = calibrated("coarse", {"z": z2[top2], "margin": margin2[top2], "col_margin": col_margin2[top2]},
                          calibration)
    ok = np.isfinite(c3)
    cm, ca = pm[confirm_idx], pa[confirm_idx]
    c3_margin, c3_col_margin = row_margins(cm[ok], c3[ok]), row_margins(ca[ok], c3[ok])
    p3 = calibrated("confirm", {"z": z2[confirm_idx][ok], "margin": margin2[confirm_idx][ok],
                                "col_margin": col_margin2[confirm_idx][ok], "confidence": c3[ok],
                                "confidence_margin": c3_margin, "confidence_col_margin": c3_col_margin}, calibration)
    stage = np.ones(Z1.shape, np.int8)
    stage[pm[top2], pa[top2]] = 2
    stage[cm[ok], ca[ok]] = 3
    # The prune stage scores every pair: done in blocks of rows, so that no temporary is a full
    # n_midi x n_audio array (at 10 000 x 10 000 each is 0.4-0.8 GB).
    margin1 = np.empty_like(Z1)
    scores = np.empty(Z1.shape)
    for a in range(0, n_midi, DECIDE_BLOCK_ROWS):
        Zb = Z1[a:a + DECIDE_BLOCK_ROWS]
        row_max = Zb.max(axis=1, keepdims=True)
        second = np.partition(Zb, -2, axis=1)[:, -2:-1] if n_audio > 1 else row_max
        margin1[a:a + len(Zb)] = np.where(Zb >= row_max, Zb - second, Zb - row_max)
        scores[a:a + len(Zb)] = calibrated("prune", {"z": Zb.ravel(), "margin": margin1[a:a + len(Zb)].ravel()},
                                           calibration).reshape(Zb.shape)
    # Keep the cascade's order within each row: every stage-s pair scores below the row's
    # lowest stage-(s+1) pair.
    for rows, cols, p, below in ((pm[top2], pa[top2], p2[top2], 1), (cm[ok], ca[ok], p3, 2)):
        floor = np.full(n_midi, np.inf)
        np.minimum.at(floor, rows, p)
        floor *= 1 - 1e-6
        for a in range(0, n_midi, DECIDE_BLOCK_ROWS):
            block = scores[a:a + DECIDE_BLOCK_ROWS]
            np.minimum(block, floor[a:a + len(block), None], out=block, where=stage[a:a + len(block)] <= below)
        scores[rows, cols] = p
    best = np.full(n_midi, -1)
    confidence = np.zeros(n_midi)
    gap = np.zeros(n_midi)
    for i in range(n_midi):
        order = np.argsort(-scores[i], kind="stable")
        if stage[i, order[0]] == 3:
            best[i], confidence[i] = order[0], scores[i, order[0]]
        gap[i] = scores[i, order[0]] - (scores[i, order[1]] if n_audio > 1 else 0.0)
    predicted = np.where(confidence >= threshold, best, -1)
    evidence = {
        "prune": {"midi": np.repeat(np.arange(n_midi, dtype=np.int32), n_audio),
                  "audio": np.tile(np.arange(n_audio, dtype=np.int32), n_midi), "z": Z1.ravel(), "margin": margin1.ravel()},
        "coarse": {"midi": pm[top2], "audio": pa[top2], "z": z2[top2], "margin": margin2[top2],
                   "col_margin": col_margin2[top2]},
        "confirm": {"midi": cm[ok], "audio": ca[ok], "z": z2[confirm_idx][ok], "margin": margin2[confirm_idx][ok],
                    "col_margin": col_margin2[confirm_idx][ok],
                    "confidence": c3[ok], "confidence_margin": c3_margin, "confidence_col_margin": c3_col_margin},
    }
    return {"scores": scores, "stage": stage, "predicted": predicted, "best": best, "confidence": confidence,
            "gap": gap, "evidence": evidence}


# ---- calibration -----------------------------------------------------------------------------

def calibrated(stage: str, features: dict, calibration: dict | None = None) -> np.ndarray:
    """P(match) of pairs from the evidence of one stage (``features``: name → array)."""
    model = (calibration or CALIBRATION)[stage]
    X = np.column_stack([np.asarray(features[name], np.float64) for name in model["features"]])
    logit = model["bias"] + ((X - np.asarray(model["mean"])) / np.asarray(model["scale"])) @ np.asarray(model["coef"])
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))


def fit_calibration(stage_features: dict, labels: dict, C: float = 1.0) -> dict:
    """Fit one logistic model per stage (sklearn); ``stage_features[stage]`` is name → array.

    Returns a dict in the layout of :data:`CALIBRATION`.
    """
    from sklearn.linear_model import LogisticRegression

    out = {}
    for stage, feats in stage_features.items():
        names = list(feats)
        X = np.column_stack([np.asarray(feats[n], np.float64) for n in names])
        mean, scale = X.mean(axis=0), np.maximum(X.std(axis=0), 1e-9)
        model = LogisticRegression(C=C, max_iter=1000).fit((X - mean) / scale, np.asarray(labels[stage], bool))
        out[stage] = {"features": names, "mean": mean.round(6).tolist(), "scale": scale.round(6).tolist(),
                      "coef": model.coef_[0].round(6).tolist(), "bias": round(float(model.intercept_[0]), 6)}
    return out
