"""Dynamic time warping kernels (numba) for aligning two feature sequences.

Task
----
Given feature sequences ``A`` (n × d, e.g. the MIDI) and ``B`` (m × d, the recording), find the
monotone path through the cost matrix ``C[i, j] = w - <A[i], B[j]>`` (cosine distance when each
block of the rows is L2-normalised and weighted so the weights sum to ``w``) with the least total
cost.

Conventions
-----------
- Steps: (1, 1), (1, 0), (0, 1). Non-diagonal steps pay an additive ``penalty`` (Raffel & Ellis
  2016 found the median of the cost matrix a good value), which discourages stalls.
- Gully: the path may begin anywhere in the first ``gully`` fraction of row 0 or column 0 and end
  anywhere in the last ``gully`` fraction of the last row or column, so recordings or MIDIs that
  are cropped still align. Frames left out at either end are charged ``skip_cost`` each (the
  typical cost of an unrelated pair of frames), so that a path never skips music that matches just
  because a shorter path accumulates less cost.
- Banded DTW evaluates only the cells ``lo[i] <= j < hi[i]`` of each row and keeps one back-pointer
  byte per cell (the accumulated cost only for two rows): memory is linear in the band's area, not
  n × m.
- Multiscale DTW solves a pooled (coarse) version of the problem, projects its path onto the next
  finer resolution, widens it by a radius, and solves again inside that band (as in FastDTW /
  MrMsDTW). Memory and time are then roughly linear in the sequence length.

Costs are computed on the fly inside the band from the feature rows, never stored as a full matrix.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_DIAG, _UP, _LEFT, _START = 0, 1, 2, 3


@njit(cache=True, fastmath=True)
def _cost(A, B, i, j, w):
    s = 0.0
    for k in range(A.shape[1]):
        s += A[i, k] * B[j, k]
    return w - s


@njit(cache=True, nogil=True)
def _band_row(A, B, i, lo, hi, prev, row, P_row, w, penalty, skip_cost, gully_n, gully_m):
    """Row ``i`` of the accumulated cost (``row``, from column ``lo[i]``) and its back-pointers,
    from row ``i - 1``'s (``prev``, from column ``lo[i - 1]``)."""
    inf = np.float32(np.inf)
    for j in range(lo[i], hi[i]):
        c = _cost(A, B, i, j, w)
        best = inf
        step = _START
        # Free starts along row 0 / column 0 inside the gully, charged for the frames skipped.
        if i == 0 and j < gully_m:
            best = skip_cost * j
        elif j == 0 and i < gully_n:
            best = skip_cost * i
        if i > 0 and j > 0 and lo[i - 1] <= j - 1 < hi[i - 1]:
            v = prev[j - 1 - lo[i - 1]]
            if v < best:
                best = v
                step = _DIAG
        if i > 0 and lo[i - 1] <= j < hi[i - 1]:
            v = prev[j - lo[i - 1]] + penalty
            if v < best:
                best = v
                step = _UP
        if j > lo[i]:
            v = row[j - 1 - lo[i]] + penalty
            if v < best:
                best = v
                step = _LEFT
        row[j - lo[i]] = best + c
        P_row[j - lo[i]] = step


@njit(cache=True, nogil=True)
def _best_end(last_row, last_col, lo, hi, n, m, skip_cost, gully_n, gully_m):
    """The best end: on the last row within the gully, or on the last column within the gully
    (``last_col[k]``: the cost at row ``n - gully_n + k``), charged for the frames left out."""
    best_end = np.float32(np.inf)
    end_i, end_j = n - 1, hi[n - 1] - 1
    for j in range(max(lo[n - 1], m - gully_m), hi[n - 1]):
        v = last_row[j - lo[n - 1]] + skip_cost * (m - 1 - j)
        if v < best_end:
            best_end, end_i, end_j = v, n - 1, j
    first = max(0, n - gully_n)
    for i in range(first, n):
        if hi[i] == m:
            v = last_col[i - first] + skip_cost * (n - 1 - i)
            if v < best_end:
                best_end, end_i, end_j = v, i, m - 1
    return end_i, end_j, best_end


@njit(cache=True, nogil=True)  # nogil: callers on worker threads keep the GUI thread running
def _dtw_band_pointers(A, B, lo, hi, w, penalty, skip_cost, gully_n, gully_m):
    """Back-pointers inside the band and the best end cell; the accumulated cost is kept for two
    rows only (and for the last column's cells inside the gully): memory is one back-pointer byte
    per band cell."""
    n = A.shape[0]
    offsets = np.zeros(n + 1, dtype=np.int64)
    width = 1
    for i in range(n):
        offsets[i + 1] = offsets[i] + (hi[i] - lo[i])
        width = max(width, hi[i] - lo[i])
    P = np.empty(offsets[n], dtype=np.int8)
    prev = np.empty(width, dtype=np.float32)
    row = np.empty(width, dtype=np.float32)
    first = max(0, n - gully_n)
    last_col = np.full(n - first, np.inf, dtype=np.float32)
    for i in range(n):
        _band_row(A, B, i, lo, hi, prev, row, P[offsets[i]:offsets[i + 1]], w, penalty, skip_cost, gully_n, gully_m)
        if i >= first and hi[i] == B.shape[0]:
            last_col[i - first] = row[hi[i] - 1 - lo[i]]
        prev, row = row, prev
    end_i, end_j, best_end = _best_end(prev, last_col, lo, hi, n, B.shape[0], skip_cost, gully_n, gully_m)
    return P, offsets, end_i, end_j, best_end


@njit(cache=True, nogil=True)
def _backtrack(P, offsets, lo, end_i, end_j):
    path_i = np.empty(end_i + end_j + 2, dtype=np.int64)
    path_j = np.empty(end_i + end_j + 2, dtype=np.int64)
    i, j, k = end_i, end_j, 0
    while True:
        path_i[k] = i
        path_j[k] = j
        k += 1
        step = P[offsets[i] + j - lo[i]]
        if step == _START:
            break
        if step == _DIAG:
            i -= 1
            j -= 1
        elif step == _UP:
            i -= 1
        else:
            j -= 1
    return path_i[:k][::-1].copy(), path_j[:k][::-1].copy()


@njit(cache=True, fastmath=True, nogil=True)
def path_costs(A, B, path_i, path_j, w):
    """Cost ``C[i, j]`` of each cell on a path."""
    out = np.empty(path_i.shape[0], dtype=np.float64)
    for k in range(path_i.shape[0]):
        out[k] = _cost(A, B, path_i[k], path_j[k], w)
    return out


@njit(cache=True, fastmath=True, nogil=True)
def cost_matrix(A, B, w):
    """The whole cost matrix ``w - A @ B.T`` (float32; for small, pooled sequences: a display).

    A loop rather than a BLAS product, which on a busy 2-core machine spends more time waiting
    for its threads than computing.
    """
    out = np.empty((A.shape[0], B.shape[0]), dtype=np.float32)
    for i in range(A.shape[0]):
        for j in range(B.shape[0]):
            out[i, j] = _cost(A, B, i, j, w)
    return out


@njit(cache=True, fastmath=True, nogil=True)
def sampled_costs(A, B, rows, cols, w):
    """Cost of the cells (rows[k], cols[k]): a cheap estimate of the cost matrix's statistics."""
    out = np.empty(rows.shape[0], dtype=np.float64)
    for k in range(rows.shape[0]):
        out[k] = _cost(A, B, rows[k], cols[k], w)
    return out


def dtw_banded(A, B, lo, hi, penalty, skip_cost, gully=0.1, weight_sum=1.0):
    """DTW restricted to the band ``lo[i] <= j < hi[i]``.

    Parameters
    ----------
    A, B : np.ndarray, float32, shapes (n, d), (m, d)
        Feature rows; the cost of a cell is ``weight_sum - <A[i], B[j]>``.
    lo, hi : np.ndarray of int64, shape (n,)
        Column range of each row; both non-decreasing, ``lo[0] == 0`` and ``hi[-1] == m``.
    penalty : float
        Additive cost of a non-diagonal step.
    skip_cost : float
        Cost per frame left out at either end (inside the gully).
    gully : float in [0, 1)
        Fraction of either sequence that may be left out at the start and at the end.

    Returns
    -------
    path_i, path_j : np.ndarray of int64
        The warping path, non-decreasing in both.
    total_cost : float
        Accumulated cost including penalties and skip costs.
    """
    A = np.ascontiguousarray(A, dtype=np.float32)
    B = np.ascontiguousarray(B, dtype=np.float32)
    n, m = len(A), len(B)
    if n == 0 or m == 0:
        raise ValueError("DTW needs two non-empty sequences")
    gully_n = max(1, int(np.floor(gully * n)))
    gully_m = max(1, int(np.floor(gully * m)))
    P, offsets, end_i, end_j, total = _dtw_band_pointers(
        A, B, lo.astype(np.int64), hi.astype(np.int64), np.float32(weight_sum), np.float32(penalty),
        np.float32(skip_cost), gully_n, gully_m,
    )
    path_i, path_j = _backtrack(P, offsets, lo.astype(np.int64), end_i, end_j)
    return path_i, path_j, float(total)


def dtw_full(A, B, penalty, skip_cost, gully=0.1, weight_sum=1.0):
    """DTW over the whole cost matrix (memory n × m: for short sequences and tests)."""
    n, m = len(A), len(B)
    return dtw_banded(A, B, np.zeros(n, np.int64), np.full(n, m, np.int64), penalty, skip_cost, gully, weight_sum)


def pool_features(X, factor, block_sizes):
    """Average ``factor`` consecutive rows, then re-normalise each block of columns to unit length.

    ``block_sizes`` lists the widths of the feature blocks (e.g. [12, 12] for chroma + onsets); each
    block keeps the norm it had (its weight) after pooling.
    """
    n = len(X)
    n_out = int(np.ceil(n / factor))
    pad = n_out * factor - n
    Xp = np.concatenate([X, np.repeat(X[-1:], pad, axis=0)]) if pad else X
    pooled = Xp.reshape(n_out, factor, X.shape[1]).mean(axis=1)
    start = 0
    for width in block_sizes:
        block = X[:, start:start + width]
        target = float(np.sqrt(np.mean(np.sum(block.astype(np.float64) ** 2, axis=1))))  # the block's weight
        sub = pooled[:, start:start + width]
        norms = np.linalg.norm(sub, axis=1, keepdims=True)
        pooled[:, start:start + width] = sub / np.maximum(norms, 1e-9) * target
        start += width
    return pooled.astype(np.float32)


def band_from_path(path_i, path_j, factor, n_fine, m_fine, radius):
    """Project a coarse path onto a grid ``factor`` times finer and widen it by ``radius`` cells."""
    lo = np.full(n_fine, m_fine, dtype=np.int64)
    hi = np.zeros(n_fine, dtype=np.int64)
    for ci, cj in zip(path_i, path_j):
        r0, r1 = max(0, ci * factor - radius), min(n_fine, (ci + 1) * factor + radius)
        c0, c1 = max(0, cj * factor - radius), min(m_fine, (cj + 1) * factor + radius)
        lo[r0:r1] = np.minimum(lo[r0:r1], c0)
        hi[r0:r1] = np.maximum(hi[r0:r1], c1)
    # Rows the projection missed (cannot happen for a connected path, but keep the band valid).
    hi = np.maximum.accumulate(hi)
    lo = np.minimum.accumulate(lo[::-1])[::-1]
    lo = np.minimum(lo, hi - 1)
    lo[0] = 0
    hi[-1] = m_fine
    return lo, hi


def dtw_multiscale(A, B, block_sizes, penalty, skip_cost, gully=0.1, factor=4, radius=16,
                   max_coarse_frames=1500, cancel=None):
    """Linear-memory multiscale DTW (coarse path → band at the next finer resolution).

    Parameters
    ----------
    A, B : np.ndarray, float32
        Feature rows, blocks of widths ``block_sizes``, each block L2-normalised times its weight.
    block_sizes : list of int
    penalty, skip_cost, gully
        As in :func:`dtw_banded`, in the cost units of the finest level.
    factor : int
        Pooling factor between levels.
    radius : int
        Half-width, in frames, added around the projected path at each finer level.
    max_coarse_frames : int
        Pool until both sequences are at most this long; the coarsest level is solved in full.
    cancel : callable, optional
        Called between levels; if it returns True, ``InterruptedError`` is raised.

    Returns
    -------
    path_i, path_j : np.ndarray of int64
    total_cost : float
    band_cells : int
        Cells evaluated at the finest level (a measure of work and memory).
    """
    weight_sum = float(sum(np.mean(np.sum(A[:, s:s + w] ** 2, axis=1))
                           for s, w in zip(np.cumsum([0] + list(block_sizes[:-1])), block_sizes)))
    levels = [(A, B)]
    while max(len(levels[-1][0]), len(levels[-1][1])) > max_coarse_frames and min(len(levels[-1][0]), len(levels[-1][1])) > 2 * factor:
        a, b = levels[-1]
        levels.append((pool_features(a, factor, block_sizes), pool_features(b, factor, block_sizes)))
    a, b = levels[-1]
    path_i, path_j, total = dtw_full(a, b, penalty, skip_cost, gully, weight_sum)
    band_cells = len(a) * len(b)
    for a, b in reversed(levels[:-1]):
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        lo, hi = band_from_path(path_i, path_j, factor, len(a), len(b), radius)
        path_i, path_j, total = dtw_banded(a, b, lo, hi, penalty, skip_cost, gully, weight_sum)
        band_cells = int(np.sum(hi - lo))
    return path_i, path_j, total, band_cells
