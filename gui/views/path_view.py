"""The warping path over the cost matrix: MIDI time (y) against audio time (x), with the tempo ratio.

Task
----
Show how the alignment walked: the engine's downsampled distance matrix as an image (the
lowest-cost quarter of the cells bright, the rest dark, so the valley the path follows glows), the path drawn over it, and the local slope
d(MIDI time)/d(audio time) — the tempo ratio — as a thin curve in the lower part of the plot with
its own axis on the right. Hovering shows both times at the pointer and the path's MIDI time at
that audio time; the time cursor of any other view shows as a dot on the path. When the time range
changes, the MIDI-time axis follows the path, so the path stays a diagonal across the view.

Conventions: x audio time (s), y MIDI time (s), ratio > 1 = the recording plays faster than the MIDI.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt

from gui.lod import cost_brightness
from gui.session import LoadedPair, Session
from gui.views import theme
from gui.views.base import StableAxis, TimeAxis, TimeView, format_time_s
from gui.views.raster_item import RasterItem, colour_table

RATIO_BAND_FRACTION = 0.28
BRIGHT_RANK_FRACTION = 0.25  # the lowest-cost quarter of the cost matrix is drawn bright  # the tempo-ratio curve uses the lowest ~28 % of the plot's height


class RatioAxis(StableAxis):
    """Right axis of the tempo-ratio curve: ticks only where the curve lives."""

    def __init__(self):
        super().__init__("right")
        self.value_range = (0.5, 1.5)
        self.enableAutoSIPrefix(False)

    def tickValues(self, minVal, maxVal, size):
        lo, hi = self.value_range
        span = hi - lo
        band_px = max(size * (span / max(maxVal - minVal, 1e-9)), 1.0)
        max_labels = max(int(band_px // 16), 2)  # ~16 px per label keeps them apart
        step = next((s for s in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0) if span / s <= max_labels), 5.0)
        ticks = np.arange(np.ceil(lo / step) * step, hi + 1e-9, step)
        return [(step, [float(t) for t in ticks])]

    def tickStrings(self, values, scale, spacing):
        return [f"×{v:.2f}".rstrip("0").rstrip(".") for v in values]


class PassiveViewBox(pg.ViewBox):
    """A view box that only draws: mouse and wheel pass through to the plot's own view box."""

    def mouseDragEvent(self, ev, axis=None):
        ev.ignore()

    def mouseClickEvent(self, ev):
        ev.ignore()

    def wheelEvent(self, ev, axis=None):
        ev.ignore()


PATH_TITLE = ("Warping path · cost matrix (MIDI time × audio time) · "
              f'<span style="color:{theme.TEMPO_LINE}">— tempo ratio</span>')


class PathView(TimeView):
    """Cost matrix, warping path, tempo ratio (empty, saying so, while an alignment runs)."""

    draws_preview = True

    def __init__(self, session: Session, parent=None):
        self.ratio_axis = RatioAxis()
        super().__init__(session, title=PATH_TITLE, left_axis=TimeAxis("left"), parent=parent)
        plot = self.getPlotItem()
        plot.setAxisItems({"right": self.ratio_axis})
        self.ratio_axis.setWidth(theme.RIGHT_AXIS_WIDTH_PX)
        self.ratio_axis.setPen(pg.mkPen(theme.AXIS_LINE))
        self.ratio_axis.setTextPen(pg.mkPen(theme.TEMPO_LINE))
        plot.getAxis("left").setLabel("MIDI time", color=theme.AXIS_TEXT)
        self.show_time_axis(bottom=True)
        plot.getAxis("bottom").setLabel("audio time (recording)", color=theme.AXIS_TEXT)

        self.cost_image = RasterItem()
        self.viewbox.addItem(self.cost_image)
        lut = theme.colormap_lut("CET-L1")  # black → white, tinted blue
        self.cost_image.set_table(colour_table((lut * np.array([0.7, 0.8, 1.0])).astype(np.uint8), 0, 255))
        self.path_curve = pg.PlotDataItem(pen=pg.mkPen(theme.PATH_LINE, width=2))
        self.path_curve.setClipToView(True)
        self.path_curve.setDownsampling(auto=True, method="subsample")
        self.path_curve.setSkipFiniteCheck(True)
        self.path_curve.opts["autoDownsampleFactor"] = 1.0  # ~1 point per pixel: a path is a line
        self.path_curve.setZValue(10)
        self.viewbox.addItem(self.path_curve)
        self.cursor_dot = pg.ScatterPlotItem(size=9, pen=pg.mkPen("w", width=1.5), brush=pg.mkBrush(theme.PATH_LINE))
        self.cursor_dot.setZValue(35)
        self.viewbox.addItem(self.cursor_dot, ignoreBounds=True)
        self.hover_line = pg.InfiniteLine(angle=0, movable=False,
                                          pen=pg.mkPen(theme.CURSOR, width=1, style=Qt.PenStyle.DashLine))
        self.hover_line.setZValue(30)
        self.hover_line.setVisible(False)
        self.viewbox.addItem(self.hover_line, ignoreBounds=True)
        self.hover_text = pg.TextItem(color=theme.LABEL_TEXT, fill=pg.mkBrush(theme.LABEL_BACKGROUND), anchor=(0, 1))
        self.hover_text.setZValue(41)
        self.hover_text.setVisible(False)
        self.viewbox.addItem(self.hover_text, ignoreBounds=True)

        # The tempo ratio lives in a second view box sharing x, with its own y (the right axis).
        self.ratio_viewbox = PassiveViewBox(enableMenu=False)
        self.ratio_viewbox.setMouseEnabled(x=False, y=False)
        self.ratio_viewbox.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.ratio_viewbox.setAcceptHoverEvents(False)
        plot.scene().addItem(self.ratio_viewbox)
        self.ratio_axis.linkToView(self.ratio_viewbox)
        self.ratio_viewbox.setXLink(self.viewbox)
        self.ratio_viewbox.setZValue(5)  # above the plot item (and its image), below nothing interactive
        self.ratio_curve = pg.PlotDataItem(pen=pg.mkPen(theme.TEMPO_LINE, width=1))
        self.ratio_curve.setClipToView(True)
        self.ratio_curve.setDownsampling(auto=True, method="peak")
        self.ratio_unity = pg.InfiniteLine(pos=1.0, angle=0, movable=False,
                                           pen=pg.mkPen(theme.TEMPO_LINE, width=1, style=Qt.PenStyle.DotLine))
        self.ratio_band = pg.LinearRegionItem(orientation="horizontal", movable=False,
                                              brush=pg.mkBrush(10, 10, 14, 120), pen=pg.mkPen(None))
        self.ratio_band.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.ratio_viewbox.addItem(self.ratio_band, ignoreBounds=True)
        self.ratio_viewbox.addItem(self.ratio_curve)
        self.ratio_viewbox.addItem(self.ratio_unity, ignoreBounds=True)
        self.viewbox.sigResized.connect(self._sync_ratio_geometry)
        self._sync_ratio_geometry()
        self.pair: LoadedPair | None = None
        self.finish_init()

    def _sync_ratio_geometry(self, *_) -> None:
        self.ratio_viewbox.setGeometry(self.viewbox.sceneBoundingRect())
        self.ratio_viewbox.linkedViewChanged(self.viewbox, self.ratio_viewbox.XAxis)

    def set_pair(self, pair: LoadedPair | None) -> None:
        aligning = pair is not None and not pair.aligned
        self.set_title(PATH_TITLE + (' <span style="font-weight:400">— aligning…</span>' if aligning else ""))
        if aligning:
            pair = None  # no path yet, and no stale one
        self.pair = pair
        self.ratio_band.setVisible(pair is not None)
        self.ratio_axis.setStyle(showValues=pair is not None)
        self.ratio_unity.setVisible(pair is not None)
        if pair is None:
            self.cost_image.clear()
            self.path_curve.setData([], [])
            self.ratio_curve.setData([], [])
            return
        a = pair.alignment
        cost = np.asarray(a.cost_preview, dtype=np.float32)
        midi_s = np.asarray(a.cost_preview_midi_s, dtype=float)
        audio_s = np.asarray(a.cost_preview_audio_s, dtype=float)
        # Row i covers MIDI times [midi_s[i], midi_s[i + 1]); likewise columns in audio time.
        row_step = float(midi_s[1] - midi_s[0]) if len(midi_s) > 1 else 1.0
        col_step = float(audio_s[1] - audio_s[0]) if len(audio_s) > 1 else 1.0
        cells = pair.cost_brightness if pair.cost_brightness is not None else cost_brightness(cost)
        self.cost_image.set_cells(cells,
                                  QRectF(float(audio_s[0]), float(midi_s[0]), col_step * len(audio_s),
                                         row_step * len(midi_s)))
        self.path_curve.setData(np.asarray(a.path_audio_s, float), np.asarray(a.path_midi_s, float))
        ratio = np.asarray(pair.tempo_ratio, dtype=float)
        finite = ratio[np.isfinite(ratio)]
        r_lo, r_hi = (np.percentile(finite, [1, 99]) if len(finite) else (1.0, 1.0))
        r_lo, r_hi = min(float(r_lo), 0.9), max(float(r_hi), 1.1)
        pad = 0.08 * (r_hi - r_lo)
        r_lo, r_hi = r_lo - pad, r_hi + pad
        self.ratio_axis.value_range = (r_lo, r_hi)
        self.ratio_band.setRegion((r_lo, r_hi))
        self.ratio_viewbox.setYRange(r_lo, r_lo + (r_hi - r_lo) / RATIO_BAND_FRACTION, padding=0)
        self.ratio_curve.setData(np.asarray(pair.tempo_times_s, float), ratio)
        self.ratio_axis.picture = None
        self.ratio_axis.update()
        self.on_view_range(*self.session.view_range_s)

    def path_extent(self) -> tuple[float, float, float, float]:
        """(audio start, audio end, MIDI start, MIDI end) of the path item's data, for tests."""
        x, y = self.path_curve.getOriginalDataset()
        if x is None or not len(x):
            return (np.nan,) * 4
        return float(x[0]), float(x[-1]), float(y[0]), float(y[-1])

    def on_view_range(self, start_s: float, end_s: float) -> None:
        if self.pair is None:
            return
        m0, m1 = self.pair.audio_to_midi(np.array([start_s, end_s], dtype=float))
        if not m1 > m0:
            m1 = m0 + (end_s - start_s)
        pad = 0.04 * (m1 - m0)
        self.set_y_range(float(m0) - pad, float(m1) + pad)

    def _on_cursor_moved(self, t_s) -> None:
        super()._on_cursor_moved(t_s)
        if t_s is None or self.pair is None:
            self.cursor_dot.setData([], [])
        else:
            self.cursor_dot.setData([t_s], [float(self.pair.audio_to_midi(t_s))])

    def on_hover(self, x, y) -> None:
        if x is None or self.pair is None:
            self.hover_line.setVisible(False)
            self.hover_text.setVisible(False)
            return
        path_midi = float(self.pair.audio_to_midi(x))
        self.hover_line.setValue(y)
        self.hover_line.setVisible(True)
        ratio = self.pair.tempo_ratio_at(x)
        self.hover_text.setText(f"audio {format_time_s(x)}   MIDI {format_time_s(y)}\n"
                                f"path: audio {format_time_s(x)} ↔ MIDI {format_time_s(path_midi)}   "
                                f"tempo ×{ratio:.2f}")
        (x0, x1), (y0, y1) = self.viewbox.viewRange()
        self.hover_text.setAnchor((1 if x > x0 + 0.6 * (x1 - x0) else 0, 1 if y < 0.5 * (y0 + y1) else 0))
        self.hover_text.setPos(x, y)
        self.hover_text.setVisible(True)
