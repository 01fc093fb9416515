"""Finding the performance anywhere in the score again: the follower's global re-localisation.

Task
----
An online time warper only looks at a band around where it thinks the performer is; once it has
lost the performer (a recording that starts far into the piece, a long passage the reference
does not resemble), the right place may be outside the band for good. Every few seconds
:class:`Relocator` matches the last few seconds of the performance against the *whole*
reference at a coarse resolution (subsequence DTW over pooled features, as in Arzt & Widmer's
"any-time" tracking, which keeps a rough global position estimate next to the fine tracker) and
proposes a new position when that match is clearly better than the match ending where the
tracker stands. A passage can sound like another bar for a few seconds, so (with ``confirm_rates``)
a far match is only proposed once the next search finds the performance where that match would
have got to by then.

Conventions
-----------
- Features are the follower's (:mod:`engine.follow_features`), pooled by ``factor`` frames with
  :func:`engine.dtw.pool_features` (blocks re-normalised).
- Subsequence DTW: free start anywhere in the reference, steps (1,1) weight 2, (1,0) and (0,1)
  weight 1 plus ``penalty``; a path's score is its cost per unit of weight.
- Work per search is ``window_frames × search_frames / factor²`` cells, where the search spans
  ``max_back_frames + max_ahead_frames`` (plus twice the window) around the tracker: a few
  milliseconds, however long the piece.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from engine.dtw import pool_features
from engine.features import BLOCK_SIZES


@njit(cache=True, fastmath=True)
def subsequence_costs(Q, R, w, penalty):
    """Mean cost per unit weight of the best path ending at each reference frame (last query row).

    Parameters
    ----------
    Q : np.ndarray, float32, shape (n, d)
        The query (recent performance), pooled.
    R : np.ndarray, float32, shape (m, d)
        The reference, pooled.

    Returns
    -------
    costs : np.ndarray, float64, shape (m,)
    """
    n, m = Q.shape[0], R.shape[0]
    D_prev = np.empty(m)
    W_prev = np.empty(m)
    D = np.empty(m)
    Wt = np.empty(m)
    for i in range(n):
        for j in range(m):
            s = 0.0
            for k in range(Q.shape[1]):
                s += Q[i, k] * R[j, k]
            d = w - s
            if i == 0:
                best, weight = 2.0 * d, 2.0  # free start anywhere
            else:
                best, weight = np.inf, 0.0
                if j > 0:
                    v = D_prev[j - 1] + 2.0 * d
                    if v < best:
                        best, weight = v, W_prev[j - 1] + 2.0
                v = D_prev[j] + d + penalty
                if v < best:
                    best, weight = v, W_prev[j] + 1.0
            if j > 0:
                v = D[j - 1] + d + penalty
                if v < best:
                    best, weight = v, Wt[j - 1] + 1.0
            D[j] = best
            Wt[j] = weight
        for j in range(m):
            D_prev[j] = D[j]
            W_prev[j] = Wt[j]
    out = np.empty(m)
    for j in range(m):
        out[j] = D[j] / Wt[j] if Wt[j] > 0 else np.inf
    return out


class Match(NamedTuple):
    """Where the recent performance matches a reference best, as :meth:`Relocator.search` finds it.

    Frames are full-resolution reference frames: the last frame of a pooled block, so up to
    ``factor - 1`` past the reference's end when it ends inside its last block (callers clamp).
    Costs are mean costs per unit weight.
    """

    best_frame: float   # where the best match ends
    best_cost: float
    near_cost: float    # the best match ending near the tracker's position
    is_near: bool       # whether the best match ends near the tracker's position (no move)
    near_frame: float   # where that near match ends


class Relocator:
    """Coarse global search of the recent performance in the reference (see the module docstring).

    Parameters
    ----------
    reference : np.ndarray, shape (n_ref, 25)
        The follower's reference features.
    weight_sum : float
    window_frames : int
        Recent live frames matched (full resolution).
    min_window_frames : int, optional
        Searches start once this many live frames have arrived (default: ``window_frames``); until
        the window is full, all frames so far are matched.
    factor : int
        Pooling factor.
    penalty : float
        Non-diagonal step penalty (cost units).
    margin : float
        A proposal must cost less than ``(1 - margin)`` × the cost of the best match ending
        within ``min_jump_frames`` of the tracker's position.
    min_jump_frames : int
        Proposals this close to the tracker's position are not moves (the tracker's band
        corrects small errors itself).
    max_ahead_frames, max_back_frames : int
        How far ahead of / behind the tracker's position proposals are searched.
    confirm_rates : (float, float) or None
        When set, a move must be proposed by two searches in a row: the second must end where
        the first's match would have got to at a tempo ratio within this range (give or take
        ``min_jump_frames``). Not while :attr:`from_start` is set.

    Attributes
    ----------
    from_start : bool
        Search back to the reference's first frame, however far behind the tracker (the
        follower sets it during its first seconds, when its open start may have placed the
        performance far too late).
    """

    def __init__(self, reference, weight_sum: float, window_frames: int, factor: int = 4, penalty: float = 0.3,
                 margin: float = 0.3, min_jump_frames: int = 100, max_ahead_frames: int = 2600,
                 max_back_frames: int = 860, min_window_frames: int | None = None,
                 confirm_rates: tuple[float, float] | None = None):
        self.factor = int(factor)
        self.set_reference(reference)
        self.weight_sum = float(weight_sum)
        self.window_frames = int(window_frames)
        self.min_window_frames = self.window_frames if min_window_frames is None else \
            max(self.factor, min(int(min_window_frames), self.window_frames))
        self.penalty = float(penalty)
        self.margin = float(margin)
        self.min_jump_frames = int(min_jump_frames)
        self.max_ahead_frames = int(max_ahead_frames)
        self.max_back_frames = int(max_back_frames)
        self.confirm_rates = confirm_rates
        self._recent: list[np.ndarray] = []
        self._n_added = 0
        self._pending = None  # (frame, frames added then): a move one search proposed
        self.from_start = False  # search back to the reference's start, however far behind
        self.searches = 0  # how many times propose() searched
        self.last = None   # what the last propose() found: search()'s answer

    def set_reference(self, reference) -> None:
        """Search other features of the reference from now on (same frames, e.g. fewer parts)."""
        self.reference = self.pool(reference)

    def add(self, frame: np.ndarray) -> None:
        self._recent.append(np.asarray(frame, dtype=np.float32))
        self._n_added += 1
        if len(self._recent) > self.window_frames:
            del self._recent[0]

    @property
    def ready(self) -> bool:
        return len(self._recent) >= self.min_window_frames

    def propose(self, current_frame: float) -> float | None:
        """A better reference position (full-resolution frame) for the newest live frame, or None."""
        if not self.ready:
            return None
        self.searches += 1
        self.last = match = self.search(self.reference, current_frame)
        pending, self._pending = self._pending, None
        if match.is_near or not match.best_cost < (1.0 - self.margin) * match.near_cost:
            return None
        if self.confirm_rates is None or self.from_start:
            return match.best_frame
        if pending is not None:
            elapsed = self._n_added - pending[1]
            lo = pending[0] + self.confirm_rates[0] * elapsed - self.min_jump_frames
            hi = pending[0] + self.confirm_rates[1] * elapsed + self.min_jump_frames
            if lo <= match.best_frame <= hi:
                return match.best_frame
        self._pending = (match.best_frame, self._n_added)
        return None

    def search(self, reference_pooled, current_frame: float) -> Match:
        """Match the recent performance against ``reference_pooled`` (pooled like
        :attr:`reference`, e.g. with fewer parts) around ``current_frame``.

        Returns
        -------
        Match
            "Near" is within ``min_jump_frames`` of ``current_frame``.
        """
        query = pool_features(np.stack(self._recent), self.factor, list(BLOCK_SIZES))
        n_ref = len(reference_pooled)
        here = int(min(max(round(current_frame / self.factor), 0), n_ref - 1))
        # Performers lose their place forwards (a stall, a cut intro) more than backwards; far
        # leaps are more likely a repeat that sounds the same than a real move.
        lo = 0 if self.from_start else max(0, here - self.max_back_frames // self.factor)
        hi = min(n_ref, here + self.max_ahead_frames // self.factor + 1)
        # Only the reference that paths ending in [lo, hi) can cover is searched (twice the query:
        # the steepest path it may take), so the work does not grow with the piece.
        first = max(0, lo - 2 * len(query))
        costs = np.full(n_ref, np.inf)
        costs[first:hi] = subsequence_costs(query, reference_pooled[first:hi], self.weight_sum, self.penalty)
        best = lo + int(np.argmin(costs[lo:hi]))
        # The best match anywhere near the tracker (it may simply be a little off: its own band
        # will correct that; only a far-away, clearly better match is a reason to move).
        reach = max(1, self.min_jump_frames // self.factor)
        near_lo = max(0, here - reach)
        near = near_lo + int(np.argmin(costs[near_lo: here + reach + 1]))
        return Match((best + 1) * self.factor - 1.0, float(costs[best]), float(costs[near]), abs(best - here) <= reach,
                     (near + 1) * self.factor - 1.0)

    def pool(self, reference) -> np.ndarray:
        """``reference`` pooled as :meth:`search` wants it."""
        return pool_features(np.asarray(reference, dtype=np.float32), self.factor, list(BLOCK_SIZES))
