"""Online time warping (Dixon 2005) with the refinements of Arzt, as numba kernels.

Task
----
Align a live feature sequence ``Y`` (frames arriving one at a time) to a reference ``X`` (all
known), keeping the work per live frame bounded: only a band of ``c`` cells around the current
position is ever computed, and the accumulated cost lives in ring buffers of ``c + 1`` rows.

Dixon's OLTW (DAFx 2005): the path grows by a *row* (a new live frame against the last ``c``
columns), a *column* (a new reference position against the last ``c`` live frames) or *both*,
depending on where the cheapest cell of the frontier (the newest row and the newest column) lies;
at most ``max_run`` consecutive steps go the same single direction.

Refinements after Arzt & Widmer (2008, 2010):

- **tempo model**: columns are reference positions sampled at the current tempo estimate (a
  column advances the reference by ``rate`` frames, the ratio of the reference's pace to the
  performer's), so the path stays near the diagonal at any tempo; the caller updates ``rate``
  from the recent path (:mod:`engine.follow`);
- **path-length normalisation**: costs compared along the frontier are divided by the weight of
  the path that reaches each cell, counted from where that path started;
- **step penalty**: non-diagonal steps pay an extra cost, so that frames matching everything a
  little (silence, sustained chords) cannot hold the path in long horizontal or vertical runs;
- **open start**: the first live frame may match any of the first ``open_start`` columns (the
  performance may begin a little into the score, e.g. a cropped intro), at a small cost per
  column skipped; these columns are laid at the tempo model's ``rate`` like all others, so a
  path started at another tempo (:mod:`engine.follow`'s tempo hypotheses) is diagonal from its
  first frame;
- **bounded lead**: no new column while the frontier is more than ``max_lead`` columns ahead of
  the newest row's best cell (a frontier running alone into a repeat of the same music would
  drag the band away from the performer);
- the position reported is the best cell of the newest row;
- **the path in hindsight**: each cell keeps the step that reached it, so the path to the newest
  best cell can be traced back (:meth:`OnlineTimeWarping.path_positions`). Its earlier cells have
  heard the frames since; the tempo model reads its slope there rather than from the best cells
  reported frame by frame.

Conventions
-----------
- Rows are live frames ``t``, columns ``j`` are reference positions ``colpos[j]`` (fractional
  reference frames); a column's features are those of the nearest reference frame.
- Cell cost ``d(t, j) = weight_sum - <X[round(colpos[j])], Y[t]>``. Steps (1, 0) and (0, 1) add
  ``d + penalty``; the diagonal adds ``diag_weight * d`` (2 as in Dixon's paper, so every path to
  a cell has the same total weight ``t + j - start + diag_weight``).
- State lives in numpy arrays owned by :class:`OnlineTimeWarping`; the kernels mutate them.
"""
from __future__ import annotations

import numpy as np
from numba import njit

ROW, COLUMN, BOTH = 1, 2, 3
# Indices into the int64 state vector.
_T, _J, _RUN, _PREV, _DECISION, _BEST_J = 0, 1, 2, 3, 4, 5
_INF = np.inf
# How a cell was reached (the step ring P): the path can be traced back from any cell.
_FROM_NONE, _FROM_START, _FROM_DIAGONAL, _FROM_ROW_BELOW, _FROM_COLUMN_BEFORE = 0, 1, 2, 3, 4


@njit(cache=True, fastmath=True)
def _dist(Xcol, W, j, Yring, r, w):
    s = 0.0
    jj = j % W
    for k in range(Xcol.shape[1]):
        s += Xcol[jj, k] * Yring[r, k]
    return w - s


@njit(cache=True)
def _has(lo, hi, row_id, R, row, col):
    r = row % R
    return row >= 0 and row_id[r] == row and lo[r] <= col < hi[r]


@njit(cache=True)
def _eval_cell(Xcol, Yring, D, S, P, lo, hi, row_id, t, j, w, diag_weight, open_start, penalty, start_cost):
    """Accumulated cost of cell (t, j) from its three predecessors (or a free start in row 0).

    ``S`` holds each cell's path weight (the sum of its steps' weights), so ``D / S`` is the
    weighted mean cost of the path; ``P`` the step that reached it (``_FROM_*``).
    """
    R, W = D.shape
    d = _dist(Xcol, W, j, Yring, t % R, w)
    best = _INF
    weight = 0.0
    step = _FROM_NONE
    if t == 0 and j < open_start:
        best = diag_weight * d + start_cost * j
        weight = diag_weight
        step = _FROM_START
    if t > 0 and j > 0 and _has(lo, hi, row_id, R, t - 1, j - 1):
        v = D[(t - 1) % R, (j - 1) % W] + diag_weight * d
        if v < best:
            best = v
            weight = S[(t - 1) % R, (j - 1) % W] + diag_weight
            step = _FROM_DIAGONAL
    if t > 0 and _has(lo, hi, row_id, R, t - 1, j):
        v = D[(t - 1) % R, j % W] + d + penalty
        if v < best:
            best = v
            weight = S[(t - 1) % R, j % W] + 1.0
            step = _FROM_ROW_BELOW
    if j > 0 and _has(lo, hi, row_id, R, t, j - 1):
        v = D[t % R, (j - 1) % W] + d + penalty
        if v < best:
            best = v
            weight = S[t % R, (j - 1) % W] + 1.0
            step = _FROM_COLUMN_BEFORE
    D[t % R, j % W] = best
    S[t % R, j % W] = weight
    P[t % R, j % W] = step


@njit(cache=True)
def _normalised(D, S, t, j, diag_weight):
    """Mean cost per unit of path weight of the best path to (t, j)."""
    R, W = D.shape
    s = S[t % R, j % W]
    if s <= 0.0:
        return _INF
    return D[t % R, j % W] / s


@njit(cache=True)
def _new_column(X, Xcol, colpos, j, rate, start_pos=0.0):
    """Create column ``j`` one ``rate`` step after column ``j - 1``; False past the reference's end."""
    pos = start_pos if j == 0 else colpos[j - 1] + rate
    if pos > X.shape[0] - 1 or j >= colpos.shape[0]:
        return False
    colpos[j] = pos
    Xcol[j % Xcol.shape[0], :] = X[int(pos + 0.5), :]
    return True


@njit(cache=True)
def _add_row(Xcol, Yring, D, S, P, lo, hi, row_id, t, j, c, w, diag_weight, open_start, penalty, start_cost):
    R = D.shape[0]
    r = t % R
    row_id[r] = t
    first = 0 if t == 0 else max(0, j - c + 1)
    lo[r] = first
    hi[r] = first
    for k in range(first, j + 1):
        _eval_cell(Xcol, Yring, D, S, P, lo, hi, row_id, t, k, w, diag_weight, open_start, penalty, start_cost)
        hi[r] = k + 1
    return j + 1 - first


@njit(cache=True)
def _add_column(Xcol, Yring, D, S, P, lo, hi, row_id, t, j, c, w, diag_weight, penalty):
    R, W = D.shape
    n = 0
    for k in range(max(0, t - c + 1), t + 1):
        r = k % R
        if row_id[r] != k or hi[r] != j:
            continue  # (cannot happen for rows inside the band; kept for safety)
        if hi[r] - lo[r] >= W - 1:  # keep the row inside its ring: forget its oldest cell
            lo[r] += 1
        _eval_cell(Xcol, Yring, D, S, P, lo, hi, row_id, k, j, w, diag_weight, 0, penalty, 0.0)
        hi[r] = j + 1
        n += 1
    return n


@njit(cache=True)
def _best_in_row(D, S, lo, hi, t, diag_weight):
    r = t % D.shape[0]
    best = _INF
    best_j = lo[r]
    for k in range(lo[r], hi[r]):
        v = _normalised(D, S, t, k, diag_weight)
        if v < best:
            best = v
            best_j = k
    return best_j, best


@njit(cache=True)
def _trace_back(P, lo, hi, row_id, colpos, t, j, out):
    """Follow the path that reaches cell (t, j) back through the step ring.

    Fills ``out[k]`` with the reference position of the path in row ``t - k`` (its last cell in
    that row), for as many rows as ``out`` holds or until the path's start (or the ring's oldest
    cell); returns how many rows were filled.
    """
    R, W = P.shape
    n = 0
    while n < out.shape[0] and _has(lo, hi, row_id, R, t, j):
        out[n] = colpos[j]
        n += 1
        # Walk back over this row's cells to the step that came from the row before.
        while True:
            step = P[t % R, j % W]
            if step == _FROM_COLUMN_BEFORE and _has(lo, hi, row_id, R, t, j - 1):
                j -= 1
            elif step == _FROM_DIAGONAL:
                t, j = t - 1, j - 1
                break
            elif step == _FROM_ROW_BELOW:
                t -= 1
                break
            else:
                return n  # the path's start (or a cell no longer held)
    return n


@njit(cache=True)
def _decide(D, S, lo, hi, row_id, t, j, c, at_end, run, prev, max_run, diag_weight, max_lead):
    """Dixon's GetInc: which way the frontier grows next."""
    if at_end:
        return ROW
    best_j, best_row = _best_in_row(D, S, lo, hi, t, diag_weight)
    if j - best_j > max_lead:
        return ROW  # the frontier is far enough ahead of the best match: wait for the performer
    if run >= max_run and prev != BOTH:
        return COLUMN if prev == ROW else ROW
    best_col = _INF
    best_t = t
    R = D.shape[0]
    for k in range(max(0, t - c + 1), t):
        if _has(lo, hi, row_id, R, k, j):
            v = _normalised(D, S, k, j, diag_weight)
            if v < best_col:
                best_col = v
                best_t = k
    if best_col < best_row and best_t < t:
        return COLUMN  # the newest column was best matched by an earlier live frame: catch up
    if best_j < j:
        return ROW     # the newest live frame matches an earlier column: wait for the performer
    return BOTH


@njit(cache=True)
def _count_run(state, step):
    if step == state[_PREV]:
        state[_RUN] += 1
    else:
        state[_RUN] = 1
    state[_PREV] = step


@njit(cache=True)
def oltw_push(X, Xcol, colpos, y, Yring, D, S, P, lo, hi, row_id, state, rate, c, max_run, w, diag_weight,
              open_start, penalty, start_cost, start_pos, max_lead):
    """Consume one live frame ``y``: add its row, then the columns the frontier asks for.

    Returns
    -------
    best_j : int
        The column best matching the newest live frame (cheapest normalised cell of the newest
        row); its reference position is ``colpos[best_j]``.
    cells : int
        Cells evaluated for this frame (a measure of the work done).
    """
    R = D.shape[0]
    t = state[_T] + 1
    j = state[_J]
    decision = state[_DECISION]
    Yring[t % R, :] = y
    cells = 0
    if t == 0:
        j = -1
        while j + 1 < open_start and _new_column(X, Xcol, colpos, j + 1, rate, start_pos):
            j += 1
        cells += _add_row(Xcol, Yring, D, S, P, lo, hi, row_id, 0, j, c, w, diag_weight, open_start, penalty,
                          start_cost)
        state[_RUN] = 0
        state[_PREV] = BOTH
    else:
        cells += _add_row(Xcol, Yring, D, S, P, lo, hi, row_id, t, j, c, w, diag_weight, open_start, penalty,
                          start_cost)
        if decision == BOTH and _new_column(X, Xcol, colpos, j + 1, rate):
            j += 1
            cells += _add_column(Xcol, Yring, D, S, P, lo, hi, row_id, t, j, c, w, diag_weight, penalty)
            _count_run(state, BOTH)
        else:
            _count_run(state, ROW)
    # Columns until the frontier asks for the next live frame.
    at_end = j + 1 >= colpos.shape[0] or colpos[j] + rate > X.shape[0] - 1
    decision = _decide(D, S, lo, hi, row_id, t, j, c, at_end, state[_RUN], state[_PREV], max_run, diag_weight,
                       max_lead)
    while decision == COLUMN:
        if not _new_column(X, Xcol, colpos, j + 1, rate):
            decision = ROW
            break
        j += 1
        cells += _add_column(Xcol, Yring, D, S, P, lo, hi, row_id, t, j, c, w, diag_weight, penalty)
        _count_run(state, COLUMN)
        at_end = j + 1 >= colpos.shape[0] or colpos[j] + rate > X.shape[0] - 1
        decision = _decide(D, S, lo, hi, row_id, t, j, c, at_end, state[_RUN], state[_PREV], max_run, diag_weight,
                       max_lead)
    state[_T] = t
    state[_J] = j
    state[_DECISION] = decision
    best_j, _ = _best_in_row(D, S, lo, hi, t, diag_weight)
    state[_BEST_J] = best_j
    return best_j, cells


class OnlineTimeWarping:
    """Dixon's OLTW with Arzt's refinements over a fixed reference (see the module docstring).

    Parameters
    ----------
    reference : np.ndarray, float32, shape (n_ref, d)
        Reference feature rows (block-normalised, see :mod:`engine.follow_features`).
    weight_sum : float
        ``d(t, j) = weight_sum - <X[j], Y[t]>``.
    window_frames : int
        ``c``: width of the band of cells computed per step (rows and columns).
    max_run : int
        At most this many consecutive row-only or column-only steps.
    diag_weight : float
        Weight of the diagonal step's cost (2 = Dixon).
    open_start_frames : int or None
        The first live frame may match any of this many first columns (default ``c``; 1 forces
        the start at the reference's first frame); they span ``open_start_frames * rate``
        reference frames.
    penalty : float
        Extra cost of a non-diagonal step.
    min_rate : float
        Slowest reference pace the tempo model may be set to (sizes the column buffer).
    start_cost : float
        Cost per column of starting later than the first one (a prior for starting at
        the beginning; diluted as the path grows, so evidence soon outweighs it).
    max_lead_frames : int, optional
        No new column while the frontier is this many columns ahead of the newest row's best
        cell (default ``c``: no limit): a frontier running alone into a repeat of the same music
        drags the band away from the performer.

    Attributes
    ----------
    rate : float
        Reference frames per column (the tempo model; set it between pushes).
    """

    def __init__(self, reference, weight_sum: float = 2.0, window_frames: int = 400, max_run: int = 3,
                 diag_weight: float = 2.0, open_start_frames: int | None = None, penalty: float = 0.0,
                 min_rate: float = 0.25, start_cost: float = 0.0, max_lead_frames: int | None = None):
        self.reference = np.ascontiguousarray(reference, dtype=np.float32)
        if self.reference.ndim != 2 or len(self.reference) < 2:
            raise ValueError("the reference needs at least two feature frames")
        self.c = int(max(2, window_frames))
        self.max_run = int(max_run)
        self.weight_sum = float(weight_sum)
        self.diag_weight = float(diag_weight)
        self.penalty = float(penalty)
        self.min_rate = float(min_rate)
        self.start_cost = float(start_cost)
        self.max_lead = int(self.c if max_lead_frames is None else max_lead_frames)
        self.open_start = int(self.c if open_start_frames is None else max(1, min(open_start_frames, self.c)))
        self.rate = 1.0
        self.restart(0.0)

    def restart(self, start_frame: float = 0.0, open_frames: int | None = None) -> None:
        """Forget everything: the next live frame starts a new path in the ``open_frames`` columns
        (default ``open_start``, at most ``c``) from ``start_frame`` on (the tempo model's
        ``rate`` is kept).

        The cost rings are left uninitialised: a cell is read only where ``row_id``, ``lo`` and
        ``hi`` say it was written since (so a restart does not write the ~64 MB of a 16 s band).
        """
        R, W = self.c + 1, 2 * self.c + 2 * self.max_run + 8
        n_ref, d = self.reference.shape
        self.start_pos = float(min(max(start_frame, 0.0), n_ref - 1))
        self._open_now = self.open_start if open_frames is None else int(max(1, min(open_frames, self.c)))
        self._Xcol = np.zeros((W, d), dtype=np.float32)
        self._colpos = np.zeros(int(np.ceil(n_ref / self.min_rate)) + self.c + 2, dtype=np.float64)
        self._Yring = np.zeros((R, d), dtype=np.float32)
        self._D = np.empty((R, W), dtype=np.float64)
        self._S = np.empty((R, W), dtype=np.float64)  # path weights
        self._P = np.empty((R, W), dtype=np.int8)     # the step that reached each cell
        self._lo = np.zeros(R, dtype=np.int64)
        self._hi = np.zeros(R, dtype=np.int64)
        self._row_id = np.full(R, -1, dtype=np.int64)
        self._state = np.zeros(6, dtype=np.int64)
        self._state[_T] = -1
        self._state[_DECISION] = ROW
        self.last_cells = 0

    def set_reference(self, reference) -> None:
        """Swap in other features of the same reference frames (the MIDI without a part the
        performer leaves out): the columns in the band take the new features; the path and the
        costs accumulated so far are kept."""
        reference = np.ascontiguousarray(reference, dtype=np.float32)
        if reference.shape != self.reference.shape:
            raise ValueError(f"the new reference has shape {reference.shape}, not {self.reference.shape}")
        self.reference = reference
        j, W = int(self._state[_J]), len(self._Xcol)
        for col in range(max(0, j - W + 1), j + 1):
            self._Xcol[col % W] = reference[int(self._colpos[col] + 0.5)]

    @property
    def n_live_frames(self) -> int:
        return int(self._state[_T]) + 1

    @property
    def frontier_position(self) -> float:
        """Reference position (frames) of the newest column (``j`` of Dixon's algorithm)."""
        return float(self._colpos[self._state[_J]]) if self.n_live_frames else 0.0

    @property
    def best_cost(self) -> float:
        """Normalised cost of the newest row's best cell: the mean cost per unit of path weight of
        the path to the reported position (inf before any frame). Paths over the same reference at
        other tempos compare by it."""
        t = int(self._state[_T])
        if t < 0:
            return _INF
        # push() found that cell already (_BEST_J): no need to scan the row again.
        return float(_normalised(self._D, self._S, t, int(self._state[_BEST_J]), self.diag_weight))

    def path_positions(self, n_frames: int) -> np.ndarray:
        """The reference positions (fractional frames) of the path to the newest best cell, one
        per live frame, for the last ``n_frames`` live frames of that path, oldest first. Fewer
        where the path began later, and never more than the ``c + 1`` rows the rings hold (nor
        past a cell the band has since dropped).

        Unlike the positions reported frame by frame, each one is seen in hindsight: the path is
        traced back from where it stands now, so its earlier cells have heard the frames since.
        """
        out = np.empty(max(0, int(n_frames)), dtype=np.float64)
        if self.n_live_frames == 0 or out.size == 0:
            return out[:0]
        n = _trace_back(self._P, self._lo, self._hi, self._row_id, self._colpos, int(self._state[_T]),
                        int(self._state[_BEST_J]), out)
        return out[:n][::-1].copy()

    @property
    def position(self) -> float:
        """Reference position (fractional frame) best matching the newest live frame."""
        return float(self._colpos[self._state[_BEST_J]]) if self.n_live_frames else 0.0

    def push(self, frame) -> float:
        """Consume one live feature frame; return the best-matching reference position (frames)."""
        y = np.ascontiguousarray(frame, dtype=np.float32).reshape(-1)
        rate = float(min(max(self.rate, self.min_rate), 1.0 / self.min_rate))

        best_j, cells = oltw_push(self.reference, self._Xcol, self._colpos, y, self._Yring, self._D, self._S, self._P,
                                  self._lo, self._hi, self._row_id, self._state, rate, self.c, self.max_run,
                                  self.weight_sum, self.diag_weight, self._open_now, self.penalty,
                                  self.start_cost, self.start_pos, self.max_lead)
        self.last_cells = int(cells)
        return float(self._colpos[best_j])
