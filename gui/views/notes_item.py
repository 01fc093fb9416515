"""All the notes of a view as one graphics item, drawn with culling and level of detail.

Task
----
Draw tens of thousands of notes fluidly. One :class:`NotesItem` holds every note as numpy arrays
sorted by start time; each paint

1. culls to the visible time range with two binary searches (on the start times, and on the
   running maximum of the end times, so a long note never widens the search);
2. if few enough notes are visible (``raster_threshold``), draws them as rectangles, one
   ``QPainter.drawRects`` call per colour, from ``QRectF`` lists made once (chunk by chunk, the
   first time they are on screen);
3. otherwise — or when many are visible and a typical note is under 4 pixels wide — rasterises
   them into a screen-resolution image (one column per pixel, one row per pitch) and draws that
   image once: at that zoom a note is a pixel or two wide anyway.

Conventions
-----------
x is time in seconds, y is a row (MIDI pitch, or a drum-lane row); a note occupies
``[row - half_height, row + half_height]``. Colours come from a palette (k, 4) uint8 RGBA and a
colour index per note.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen

MAX_RASTER_COLUMNS = 4096
RECT_CHUNK = 512  # QRectF objects are made in chunks of this many notes, when first drawn
NARROW_NOTE_PX = 4.0  # typical notes narrower than this on screen: rasterise (boxes would be slivers)
MIN_RASTER_NOTES = 800  # ... once there are this many of them


class NotesItem(pg.GraphicsObject):
    """Notes as filled boxes (``style="fill"``) or outlines (``style="outline"``).

    Parameters
    ----------
    style : {"fill", "outline"}
    half_height : float
        Half the height of a note box, in rows (0.5 fills the row).
    min_width_px : float
        Notes narrower than this many pixels are widened to it (drum hits, staccato).
    raster_threshold : int
        Above this many visible notes, draw the rasterised level of detail.
    outline_width_px : float
        Pen width of outlines (cosmetic, in pixels).
    """

    def __init__(self, style: str = "fill", half_height: float = 0.42, min_width_px: float = 0.0,
                 raster_threshold: int = 5000, outline_width_px: float = 1.5):
        super().__init__()
        if style not in ("fill", "outline"):
            raise ValueError(f"style must be 'fill' or 'outline', not {style!r}")
        self.style = style
        self.half_height = half_height
        self.min_width_px = min_width_px
        self.raster_threshold = raster_threshold
        self.outline_width_px = outline_width_px
        self.last_paint_mode: str | None = None  # "rects" | "raster" | None, for tests and benchmarks
        self.last_painted_count = 0
        self._bounds = QRectF()
        self.set_notes(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, int), np.zeros((1, 4), np.uint8))

    # -- data -----------------------------------------------------------------------------------
    def set_notes(self, start_s, end_s, rows, colour_index, palette) -> None:
        """Replace the notes.

        Parameters
        ----------
        start_s, end_s : array (n,)
            Note start/end times (seconds).
        rows : array (n,)
            Row (pitch) of each note.
        colour_index : array (n,) of int
            Index into ``palette`` per note.
        palette : array (k, 4) uint8
            RGBA colours.
        """
        start_s = np.asarray(start_s, dtype=np.float64)
        order = np.argsort(start_s, kind="stable")
        self._order = order
        self.start_s = start_s[order]
        self.end_s = np.maximum(np.asarray(end_s, dtype=np.float64)[order], self.start_s)
        self.rows = np.asarray(rows, dtype=np.float64)[order]
        self.colour_index = np.asarray(colour_index, dtype=np.int64)[order]
        self.palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 4)
        self.max_duration_s = float(np.max(self.end_s - self.start_s)) if len(self.start_s) else 0.0
        # Sorted by start, the running maximum of the ends is non-decreasing: the first note that
        # can reach into a range is one binary search away, however long some notes are.
        self.max_end_so_far = np.maximum.accumulate(self.end_s) if len(self.end_s) else self.end_s
        self.median_duration_s = float(np.median(self.end_s - self.start_s)) if len(self.end_s) else 0.0
        self._build_groups()
        self.prepareGeometryChange()
        if len(self.start_s):
            lo, hi = float(self.rows.min()), float(self.rows.max())
            t0, t1 = float(self.start_s[0]), float(self.end_s.max())
            self._bounds = QRectF(t0, lo - self.half_height, max(t1 - t0, 1e-6), hi - lo + 2 * self.half_height)
        else:
            self._bounds = QRectF()
        self.update()

    def set_palette(self, colour_index, palette) -> None:
        """Recolour the same notes (``colour_index`` in the order given to :meth:`set_notes`)."""
        self.colour_index = np.asarray(colour_index, dtype=np.int64)[self._order]
        self.palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 4)
        self._build_groups()
        self.update()

    def _build_groups(self) -> None:
        """Per colour: the notes' indices, sorted starts, running max of ends, median duration, and
        a list for their QRectF — filled chunk by chunk the first time a paint needs them, so that
        opening a 20 000-note piece costs nothing for the notes that are not on screen yet."""
        self._qcolours = [QColor(*map(int, rgba)) for rgba in self.palette]
        self._groups = []
        for c in np.unique(self.colour_index):
            idx = np.nonzero(self.colour_index == c)[0]
            starts, ends = self.start_s[idx], self.end_s[idx]
            rects = [None] * len(idx) if self.min_width_px <= 0 else None  # None: widths depend on zoom
            built = np.zeros((len(idx) + RECT_CHUNK - 1) // RECT_CHUNK, dtype=bool)
            self._groups.append((int(c), idx, starts, np.maximum.accumulate(ends), rects, built,
                                 float(np.median(ends - starts))))

    def _rects(self, group, g0: int, g1: int) -> list:
        """The QRectF of notes ``g0:g1`` of a group, building the missing chunks."""
        _, idx, _, _, rects, built, _ = group
        height = 2 * self.half_height
        for chunk in range(g0 // RECT_CHUNK, (g1 - 1) // RECT_CHUNK + 1):
            if not built[chunk]:
                sel = idx[chunk * RECT_CHUNK:(chunk + 1) * RECT_CHUNK]
                starts = self.start_s[sel]
                rects[chunk * RECT_CHUNK:chunk * RECT_CHUNK + len(sel)] = [
                    QRectF(x, y, w, height) for x, y, w in zip(
                        starts.tolist(), (self.rows[sel] - self.half_height).tolist(), (self.end_s[sel] - starts).tolist())]
                built[chunk] = True
        return rects[g0:g1]

    def __len__(self) -> int:
        return len(self.start_s)

    def visible_indices(self, x0: float, x1: float) -> np.ndarray:
        """Indices (into the sorted arrays) of the notes overlapping times [x0, x1]."""
        i0 = int(np.searchsorted(self.max_end_so_far, x0, side="left"))
        i1 = int(np.searchsorted(self.start_s, x1, side="right"))
        idx = np.arange(i0, i1)
        return idx[self.end_s[i0:i1] >= x0]

    def boundingRect(self) -> QRectF:
        return QRectF(self._bounds)

    # -- drawing --------------------------------------------------------------------------------
    def paint(self, painter: QPainter, option, widget=None) -> None:
        self.last_paint_mode, self.last_painted_count = None, 0
        if not len(self.start_s):
            return
        view_rect = self.viewRect()
        if view_rect is None or view_rect.width() <= 0:
            return
        x0, x1 = view_rect.left(), view_rect.right()
        y0, y1 = sorted((view_rect.top(), view_rect.bottom()))
        i0 = int(np.searchsorted(self.max_end_so_far, x0, side="left"))
        i1 = int(np.searchsorted(self.start_s, x1, side="right"))
        if i1 <= i0:
            return
        px_w = self.pixelWidth() or (x1 - x0) / 1000.0
        px_h = self.pixelHeight() or 1.0
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        narrow = max(self.median_duration_s, self.min_width_px * px_w) / px_w < NARROW_NOTE_PX
        if i1 - i0 > self.raster_threshold or (narrow and i1 - i0 > MIN_RASTER_NOTES):
            idx = np.arange(i0, i1)
            idx = idx[(self.end_s[idx] >= x0) & (self.rows[idx] + self.half_height >= y0)
                      & (self.rows[idx] - self.half_height <= y1)]
            if len(idx) > self.raster_threshold or (narrow and len(idx) > MIN_RASTER_NOTES):
                self._paint_raster(painter, idx, x0, x1, y0, y1, px_w)
                self.last_painted_count = len(idx)
                return
        self.last_painted_count = self._paint_rects(painter, x0, x1, px_w, px_h)

    def _paint_rects(self, painter: QPainter, x0: float, x1: float, px_w: float, px_h: float) -> int:
        """Draw the notes in [x0, x1] as rectangles, one drawRects per colour; returns how many."""
        height = 2 * self.half_height
        row_px = height / max(px_h, 1e-12)
        painted = 0
        for group in self._groups:
            c, idx, starts, max_end_so_far, rects, _, median_duration_s = group
            g0 = int(np.searchsorted(max_end_so_far, x0, side="left"))
            g1 = int(np.searchsorted(starts, x1, side="right"))
            if g1 <= g0:
                continue
            if rects is not None:
                batch = self._rects(group, g0, g1)
            else:  # widened notes: their width depends on the zoom, so build them now
                sel = idx[g0:g1]
                widths = np.maximum(self.end_s[sel] - self.start_s[sel], self.min_width_px * px_w)
                batch = [QRectF(x, y, w, height) for x, y, w in zip(
                    self.start_s[sel].tolist(), (self.rows[sel] - self.half_height).tolist(), widths.tolist())]
            colour = self._qcolours[c % len(self._qcolours)]
            if self.style == "outline":
                pen = QPen(colour)
                pen.setCosmetic(True)
                pen.setWidthF(self.outline_width_px)
                painter.setPen(pen)
                painter.setBrush(Qt.BrushStyle.NoBrush)
            else:
                if row_px >= 4 and median_duration_s / px_w >= 4:  # outlines only where notes are boxes
                    pen = QPen(colour.darker(170))
                    pen.setCosmetic(True)
                    painter.setPen(pen)
                else:
                    painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(QBrush(colour))
            painter.drawRects(batch)
            painted += len(batch)
        self.last_paint_mode = "rects"
        return painted

    def _paint_raster(self, painter: QPainter, idx: np.ndarray, x0: float, x1: float, y0: float, y1: float,
                      px_w: float) -> None:
        n_cols = int(min(np.ceil((x1 - x0) / px_w), MAX_RASTER_COLUMNS))
        col_s = (x1 - x0) / n_cols
        row_lo = int(np.floor(y0 + 0.5))
        row_hi = int(np.ceil(y1 - 0.5))
        n_rows = row_hi - row_lo + 1
        c0 = np.clip(((self.start_s[idx] - x0) / col_s).astype(np.int64), 0, n_cols - 1)
        c1 = np.clip(np.ceil((self.end_s[idx] - x0) / col_s).astype(np.int64) - 1, c0, n_cols - 1)
        c1 = np.where(c1 - c0 >= 2, c1 - 1, c1)  # a one-pixel gap keeps repeated notes apart
        r = np.clip(np.round(self.rows[idx]).astype(np.int64) - row_lo, 0, n_rows - 1)
        lengths = c1 - c0 + 1
        total = int(lengths.sum())
        owner = np.repeat(np.arange(len(idx)), lengths)
        offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        image = np.zeros((n_rows, n_cols, 4), dtype=np.uint8)
        colour = self.palette[self.colour_index[idx] % len(self.palette)]
        if self.style == "outline":
            colour = colour.copy()
            colour[:, 3] = 150
        image[r[owner], c0[owner] + offsets] = colour[owner]
        qimage = QImage(image.data, n_cols, n_rows, 4 * n_cols, QImage.Format.Format_RGBA8888)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        painter.drawImage(QRectF(x0, row_lo - 0.5, n_cols * col_s, n_rows), qimage)
        self.last_paint_mode = "raster"
