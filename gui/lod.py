"""Level-of-detail data for drawing, prepared once per pair on the worker thread (pure numpy).

Task
----
Turn the engine's display arrays into what the views can draw at any zoom without work
proportional to the piece:

- :class:`SpectrogramPyramid` — the dB spectrogram quantised to uint8 and max-pooled in time,
  level by level (each level halves the frames), so that any time range is drawn from the finest
  level with at most one column per screen pixel;
- :func:`cost_brightness` — the cost matrix as uint8 brightness, the lowest-cost quarter of the
  cells bright (see :func:`cost_ranks`).

Conventions: spectrogram rows are semitone sub-bins from low to high pitch, columns are frames;
cell values 0..255; times in seconds. No Qt here: :mod:`gui.pipeline` calls this off the GUI thread.
"""
from __future__ import annotations

import numpy as np

from gui.session import DisplaySpectrogram

QUANT_LEVELS = 255
BRIGHT_RANK_FRACTION = 0.25  # the lowest-cost quarter of the cost matrix is drawn bright


class SpectrogramPyramid:
    """A uint8 spectrogram and its max-pooled coarser versions, for drawing any range fast.

    Parameters
    ----------
    spectrogram : DisplaySpectrogram
    min_columns : int
        Stop halving once a level has fewer frames than this.
    """

    def __init__(self, spectrogram: DisplaySpectrogram, min_columns: int = 256):
        S = np.asarray(spectrogram.S_db, dtype=np.float32)
        self.floor_db = float(min(S.min(), -1.0))
        self.max_db = float(S.max())
        span = self.max_db - self.floor_db
        scaled = S - np.float32(self.floor_db)  # one float32 temporary (the spectrogram can be 50+ MB)
        scaled *= np.float32(QUANT_LEVELS / span)
        level0 = np.round(scaled, out=scaled).astype(np.uint8)
        del scaled
        self.levels = [np.ascontiguousarray(level0)]
        while self.levels[-1].shape[1] > min_columns:
            prev = self.levels[-1]
            n = prev.shape[1] // 2 * 2
            pooled = np.maximum(prev[:, 0:n:2], prev[:, 1:n:2])
            if prev.shape[1] % 2:
                pooled = np.concatenate([pooled, prev[:, -1:]], axis=1)
            self.levels.append(np.ascontiguousarray(pooled))
        times = np.asarray(spectrogram.times_s, dtype=float)
        self.frame_s = float(times[1] - times[0]) if len(times) > 1 else 0.01
        self.first_edge_s = float(times[0]) - 0.5 * self.frame_s  # left edge of frame 0
        pitches = np.asarray(spectrogram.bin_midi_pitches, dtype=float)
        bin_step = float(pitches[1] - pitches[0]) if len(pitches) > 1 else 1.0
        self.pitch_lo = float(pitches[0]) - 0.5 * bin_step  # lower edge of row 0
        self.pitch_hi = float(pitches[-1]) + 0.5 * bin_step
        self.n_frames = S.shape[1]

    def db_to_level(self, db: float) -> float:
        """A dB value → the uint8 scale the pyramid stores."""
        return (db - self.floor_db) * QUANT_LEVELS / (self.max_db - self.floor_db)

    def window(self, start_s: float, end_s: float, width_px: int):
        """The slice to draw for times [start_s, end_s] on ``width_px`` pixels.

        Returns
        -------
        image : np.ndarray uint8, shape (n_bins, n_columns)
        t0_s, t1_s : float
            Time of the left edge of the first column and the right edge of the last.
        level : int
            Pyramid level used (each column covers ``2**level`` frames): the finest level with at
            most one column per pixel, so a column is 1-2 pixels wide.
        """
        visible_frames = max((end_s - start_s) / self.frame_s, 1.0)
        level = int(np.clip(np.ceil(np.log2(max(visible_frames / max(width_px, 1), 1.0))), 0,
                            len(self.levels) - 1))
        data = self.levels[level]
        step_s = self.frame_s * 2 ** level
        j0 = int(np.clip(np.floor((start_s - self.first_edge_s) / step_s) - 1, 0, data.shape[1] - 1))
        j1 = int(np.clip(np.ceil((end_s - self.first_edge_s) / step_s) + 1, j0 + 1, data.shape[1]))
        return data[:, j0:j1], self.first_edge_s + j0 * step_s, self.first_edge_s + j1 * step_s, level


def cost_ranks(cost: np.ndarray) -> np.ndarray:
    """Each cell's cost as its rank among all cells, in [0, 1] (histogram equalisation).

    Path costs sit in the lowest few percent of a cost matrix, so a linear grey ramp renders
    nearly everything alike; ranks spread the cells evenly over the colour map instead.
    """
    flat = cost.ravel()
    ranks = np.empty(flat.size, dtype=np.float32)
    ranks[np.argsort(flat, kind="stable")] = np.linspace(0.0, 1.0, flat.size, dtype=np.float32)
    return ranks.reshape(cost.shape)


def cost_brightness(cost: np.ndarray) -> np.ndarray:
    """The cost matrix as uint8 brightness: only the best-matching quarter of the cells lights up,
    so the valley the path should follow (and the piece's repeats) stand out on a dark ground.

    The same as ranking every cell (:func:`cost_ranks`), but only the bright quarter is sorted:
    every other cell is dark whatever its rank.
    """
    flat = np.asarray(cost, dtype=np.float32).ravel()
    n = flat.size
    brightness = np.zeros(n, dtype=np.float32)
    n_bright = min(int(np.ceil(BRIGHT_RANK_FRACTION * n)), n)
    if n_bright:
        threshold = np.partition(flat, n_bright - 1)[n_bright - 1]
        lowest = np.nonzero(flat <= threshold)[0]  # in index order, so ties rank as a stable sort ranks them
        lowest = lowest[np.argsort(flat[lowest], kind="stable")][:n_bright]
        ranks = np.arange(n_bright, dtype=np.float32) / np.float32(max(n - 1, 1))
        brightness[lowest] = np.clip(1.0 - ranks / BRIGHT_RANK_FRACTION, 0.0, 1.0)
    return np.round(brightness ** 1.5 * 255).astype(np.uint8).reshape(np.shape(cost))
