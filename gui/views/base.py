"""The base of every view on the shared time axis: linked range, mouse, cursor, playhead, selection.

Task
----
A :class:`TimeView` is a pyqtgraph plot whose x axis is audio time and whose x range, cursor,
playhead and selection come from a :class:`gui.session.Session`. Mouse input goes to the session
(never to another view), and every view redraws from the session's events — so zooming one view
moves them all, and a new view (the tempo strip) only has to subclass this.

Mouse: :data:`MOUSE_REFERENCE` (wheel zooms time about the pointer, Shift+wheel or a horizontal
wheel pans, Ctrl+wheel zooms pitch on pitched views; left drag pans; Shift+drag or right drag
selects a time range; a click clears the selection, and seeks where the window has playback).
Keyboard shortcuts live in the main window.

Conventions
-----------
Times in seconds (audio time). Subclasses override :meth:`TimeView.set_pair`,
:meth:`TimeView.on_view_range` (level-of-detail updates) and :meth:`TimeView.on_display`.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QFont

from gui.session import LoadedPair, Session
from gui.views import theme

WHEEL_ZOOM_PER_NOTCH = 1.25

# What the mouse does in every view on the time axis, as Help → Keys and Mouse lists it
# (gesture, effect). The click's seek is gui.transport_bar's; the tempo strip adds its own click.
MOUSE_REFERENCE = (
    ("Wheel", "zoom time about the pointer"),
    ("Shift+Wheel, horizontal wheel", "pan in time"),
    ("Ctrl+Wheel", "zoom pitch (spectrogram, piano roll)"),
    ("Drag", "pan"),
    ("Shift+Drag, right drag", "select a time range (to loop, or Z to zoom to it)"),
    ("Click", "move the playhead there (seek) and clear the selection"),
)


def format_time_s(t_s: float | None, decimals: int = 2) -> str:
    """Seconds → ``m:ss.ss`` (``-`` for None/NaN); negative times keep their sign."""
    if t_s is None or not np.isfinite(t_s):
        return "–"
    sign = "-" if t_s < 0 else ""
    t_s = abs(float(t_s))
    minutes = int(t_s // 60)
    seconds = t_s - 60 * minutes
    width = 3 + decimals if decimals else 2
    text = f"{seconds:0{width}.{decimals}f}"
    if text.startswith("60"):  # rounding carried into the next minute
        minutes, text = minutes + 1, f"{0:0{width}.{decimals}f}"
    return f"{sign}{minutes}:{text}"


# Major/minor tick spacings of a time axis, in seconds: musical round numbers incl. minutes.
_TIME_SPACINGS = [(0.01, 0.002), (0.02, 0.005), (0.05, 0.01), (0.1, 0.02), (0.2, 0.05), (0.5, 0.1),
                  (1, 0.2), (2, 0.5), (5, 1), (10, 2), (15, 5), (30, 5), (60, 10), (120, 30),
                  (300, 60), (600, 120), (1200, 300), (1800, 600)]


class StableAxis(pg.AxisItem):
    """An axis that keeps its drawn picture when its range did not change.

    pyqtgraph re-generates every linked axis on any range change of the view; panning in time
    would re-layout the pitch axes of every view on every frame (~2 ms each, in Python).
    """

    def setRange(self, mn, mx):
        current = getattr(self, "range", None)
        if current is not None and float(current[0]) == float(mn) and float(current[1]) == float(mx):
            return
        super().setRange(mn, mx)


class TimeAxis(StableAxis):
    """A time axis labelled ``m:ss`` with ticks on round seconds and minutes."""

    def __init__(self, orientation="bottom", **kwargs):
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)
        self.setStyle(maxTextLevel=0)  # label the major ticks only: legible, and cheap to redraw

    def tickSpacing(self, minVal, maxVal, size):
        if maxVal <= minVal or size <= 0:
            return super().tickSpacing(minVal, maxVal, size)
        px_per_label = 95.0 if self.orientation in ("bottom", "top") else 36.0
        ideal = (maxVal - minVal) / max(size / px_per_label, 1.0)
        for major, minor in _TIME_SPACINGS:
            if major >= ideal:
                return [(major, 0), (minor, 0)]
        major = _TIME_SPACINGS[-1][0] * np.ceil(ideal / _TIME_SPACINGS[-1][0])
        return [(major, 0), (major / 5, 0)]

    def tickStrings(self, values, scale, spacing):
        decimals = 0 if spacing >= 1 else (1 if spacing >= 0.1 else 2)
        return [format_time_s(v, decimals) for v in values]


class TimeViewBox(pg.ViewBox):
    """A ViewBox that sends wheel/drag/click to the session instead of moving itself."""

    def __init__(self, session: Session, pitch_zoom: bool = False):
        super().__init__(enableMenu=False, defaultPadding=0.0)
        self.session = session
        self.pitch_zoom = pitch_zoom
        self.setMouseEnabled(x=False, y=False)
        self.disableAutoRange()
        self._select_anchor_s: float | None = None

    def _seconds_per_pixel(self) -> float:
        (x0, x1), _ = self.viewRange()
        return (x1 - x0) / max(self.width(), 1.0)

    def wheelEvent(self, ev, axis=None):
        horizontal = ev.orientation() == Qt.Orientation.Horizontal
        notches = ev.delta() / 120.0
        modifiers = ev.modifiers()
        if horizontal or modifiers & Qt.KeyboardModifier.ShiftModifier:
            self.session.pan(-0.1 * notches)
        elif modifiers & Qt.KeyboardModifier.ControlModifier and self.pitch_zoom:
            anchor = self.mapSceneToView(ev.scenePos()).y()
            self.session.zoom_pitch(WHEEL_ZOOM_PER_NOTCH ** notches, anchor)
        else:
            anchor = self.mapSceneToView(ev.scenePos()).x()
            self.session.zoom(WHEEL_ZOOM_PER_NOTCH ** notches, anchor)
        ev.accept()

    def mouseDragEvent(self, ev, axis=None):
        selecting = ev.button() == Qt.MouseButton.RightButton or (
            ev.button() == Qt.MouseButton.LeftButton and ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if ev.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            ev.ignore()
            return
        ev.accept()
        if selecting:
            if ev.isStart() or self._select_anchor_s is None:
                self._select_anchor_s = self.mapToView(ev.buttonDownPos()).x()
            here = self.mapToView(ev.pos()).x()
            self.session.set_selection(self._select_anchor_s, here)
            if ev.isFinish():
                self._select_anchor_s = None
        else:
            dx_px = ev.lastPos().x() - ev.pos().x()
            self.session.pan_by_s(dx_px * self._seconds_per_pixel())

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.MouseButton.LeftButton:
            self.session.set_selection(None)
            ev.accept()
        else:
            ev.ignore()


class TimeView(pg.PlotWidget):
    """A plot on the shared time axis, observing a session (see the module docstring).

    Parameters
    ----------
    session : Session
    title : str
        Shown in the top-left corner of the plot.
    left_axis : pg.AxisItem, optional
        Defaults to a plain axis; pitched views pass a piano-key axis.
    pitch_zoom : bool
        Whether Ctrl+wheel zooms the session's pitch range in this view.

    Attributes
    ----------
    draws_preview : bool
        Whether :meth:`set_pair` is given the preview shown while an alignment runs
        (``LoadedPair.aligned`` False); views that leave it False get None meanwhile.
    mouse_reference : tuple of (str, str)
        What the mouse does in this view (:data:`MOUSE_REFERENCE`, plus a view's own gestures).
    """

    draws_preview = False
    mouse_reference = MOUSE_REFERENCE  # (gesture, effect) rows for Help → Keys and Mouse

    def __init__(self, session: Session, title: str = "", left_axis: pg.AxisItem | None = None,
                 pitch_zoom: bool = False, parent=None):
        self.session = session
        viewbox = TimeViewBox(session, pitch_zoom=pitch_zoom)
        axes = {"bottom": TimeAxis("bottom"), "top": TimeAxis("top"), "right": StableAxis("right")}
        if left_axis is not None:
            axes["left"] = left_axis
        super().__init__(parent=parent, viewBox=viewbox, axisItems=axes, background=theme.BACKGROUND)
        self.setMinimumHeight(60)
        plot = self.getPlotItem()
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.showAxis("right")
        font = QFont()
        font.setPointSizeF(8.5)
        for name in ("left", "right", "bottom", "top"):
            axis = plot.getAxis(name)
            axis.setPen(pg.mkPen(theme.AXIS_LINE))
            axis.setTextPen(pg.mkPen(theme.AXIS_TEXT))
            axis.setStyle(tickFont=font)
        plot.getAxis("left").setWidth(theme.LEFT_AXIS_WIDTH_PX)
        right = plot.getAxis("right")
        right.setWidth(theme.RIGHT_AXIS_WIDTH_PX)
        right.setStyle(showValues=False)
        self.show_time_axis(bottom=False, top=False)

        self.cursor_line = pg.InfiniteLine(angle=90, movable=False,
                                           pen=pg.mkPen(theme.CURSOR, width=1, style=Qt.PenStyle.DashLine))
        self.playhead_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(theme.PLAYHEAD, width=2))
        self.selection_region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(theme.SELECTION_BRUSH),
                                                     pen=pg.mkPen(theme.SELECTION_EDGE))
        for item, z in ((self.selection_region, 20), (self.cursor_line, 30), (self.playhead_line, 31)):
            item.setZValue(z)
            item.setVisible(False)
            item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            item.setAcceptHoverEvents(False)
            viewbox.addItem(item, ignoreBounds=True)

        self.title_item = pg.TextItem(html="", anchor=(0, 0), fill=pg.mkBrush(theme.LABEL_BACKGROUND))
        self.title_item.setParentItem(viewbox)
        self.title_item.setPos(QPointF(4, 2))
        self.title_item.setZValue(40)
        self.set_title(title)

        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._initialised = False
        viewbox.sigResized.connect(self._on_resized)
        events = session.events
        events.pair_changed.connect(self._on_pair_changed)
        events.view_range_changed.connect(self._on_view_range_changed)
        events.cursor_moved.connect(self._on_cursor_moved)
        events.playhead_moved.connect(self._on_playhead_moved)
        events.selection_changed.connect(self._on_selection_changed)
        events.display_changed.connect(self._on_display_changed)
        self.viewbox.setXRange(*session.view_range_s, padding=0)

    def finish_init(self) -> None:
        """Subclasses call this at the end of ``__init__``: from now on events reach their hooks,
        and the view draws what the session already holds."""
        self._initialised = True
        self.set_pair(self._drawable(self.session.pair))
        self.on_display(self.session.display)
        self._apply_x_range(*self.session.view_range_s)

    # -- helpers --------------------------------------------------------------------------------
    @property
    def viewbox(self) -> TimeViewBox:
        return self.getPlotItem().getViewBox()

    def has_pending_work(self) -> bool:
        """True while background results this view will draw are still to come (``--screenshot``
        waits for them); views that draw only what they are given have none."""
        return False

    def set_title(self, text: str) -> None:
        self.title_text = text
        self.title_item.setHtml(f'<span style="color:{theme.LABEL_TEXT}; font-size:9pt; font-weight:600">'
                                f'{text}</span>')
        self.title_item.setVisible(bool(text))

    def show_time_axis(self, bottom: bool, top: bool = False) -> None:
        plot = self.getPlotItem()
        for name, visible in (("bottom", bottom), ("top", top)):
            if visible:
                plot.showAxis(name)
            else:
                plot.hideAxis(name)

    def set_y_range(self, lo: float, hi: float) -> None:
        self.viewbox.setYRange(lo, hi, padding=0)

    def visible_x_range(self) -> tuple[float, float]:
        (x0, x1), _ = self.viewbox.viewRange()
        return float(x0), float(x1)

    def plot_width_px(self) -> int:
        return max(int(self.viewbox.width()), 1)

    # -- session events -------------------------------------------------------------------------
    def _apply_x_range(self, start_s: float, end_s: float) -> None:
        self.viewbox.setXRange(start_s, end_s, padding=0)
        if self._initialised:
            self.on_view_range(start_s, end_s)

    def _on_resized(self, *_) -> None:
        if self._initialised:
            self.on_view_range(*self.session.view_range_s)

    def _on_display_changed(self, options) -> None:
        if self._initialised:
            self.on_display(options)

    def _on_view_range_changed(self, rng) -> None:
        self._apply_x_range(*rng)

    def _drawable(self, pair: LoadedPair | None) -> LoadedPair | None:
        return pair if pair is None or pair.aligned or self.draws_preview else None

    def _on_pair_changed(self, pair: LoadedPair | None) -> None:
        if self._initialised:
            self.set_pair(self._drawable(pair))

    def _on_cursor_moved(self, t_s) -> None:
        self.cursor_line.setVisible(t_s is not None)
        if t_s is not None:
            self.cursor_line.setValue(t_s)

    def _on_playhead_moved(self, t_s) -> None:
        self.playhead_line.setVisible(t_s is not None)
        if t_s is not None:
            self.playhead_line.setValue(t_s)

    def _on_selection_changed(self, rng) -> None:
        self.selection_region.setVisible(rng is not None)
        if rng is not None:
            self.selection_region.setRegion(rng)

    def _on_mouse_moved(self, scene_pos) -> None:
        vb = self.viewbox
        if vb.sceneBoundingRect().contains(scene_pos):
            point = vb.mapSceneToView(scene_pos)
            self.session.set_cursor(point.x())
            self.on_hover(point.x(), point.y())
        else:
            self.session.set_cursor(None)
            self.on_hover(None, None)

    def leaveEvent(self, event):
        self.session.set_cursor(None)
        self.on_hover(None, None)
        super().leaveEvent(event)

    # -- for subclasses -------------------------------------------------------------------------
    def set_pair(self, pair: LoadedPair | None) -> None:
        """Draw a new pair (or clear the view for None)."""

    def on_view_range(self, start_s: float, end_s: float) -> None:
        """The visible time range or the plot's size changed: update level of detail."""

    def on_display(self, options) -> None:
        """Display options changed."""

    def on_hover(self, x, y) -> None:
        """The mouse is at data point (x, y) of this view, or left it (None, None)."""


def text_colour(colour: str, alpha: int = 255) -> QColor:
    c = QColor(colour)
    c.setAlpha(alpha)
    return c
