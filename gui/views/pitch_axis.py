"""Pitch axes: a piano keyboard with octave labels, and the named rows of a drum lane.

Conventions: y is the MIDI note number; the row of pitch ``p`` spans ``[p - 0.5, p + 0.5]``.
Octaves are named the scientific way (MIDI 60 = C4, 69 = A4 = 440 Hz).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap

from gui.views.base import StableAxis

NOTE_NAMES = ("C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")
BLACK_PITCH_CLASSES = frozenset({1, 3, 6, 8, 10})
KEYBOARD_WIDTH_PX = 24

# General MIDI percussion key map (channel 10), short names.
GM_DRUM_NAMES = {
    35: "Kick 2", 36: "Kick", 37: "Side stick", 38: "Snare", 39: "Clap", 40: "Snare 2", 41: "Low tom 2",
    42: "Hi-hat", 43: "Low tom", 44: "Pedal hat", 45: "Mid tom 2", 46: "Open hat", 47: "Mid tom",
    48: "High tom 2", 49: "Crash", 50: "High tom", 51: "Ride", 52: "China", 53: "Ride bell",
    54: "Tambourine", 55: "Splash", 56: "Cowbell", 57: "Crash 2", 58: "Vibraslap", 59: "Ride 2",
    60: "Hi bongo", 61: "Lo bongo", 62: "Mute conga", 63: "Conga", 64: "Lo conga", 65: "Hi timbale",
    66: "Lo timbale", 67: "Hi agogo", 68: "Lo agogo", 69: "Cabasa", 70: "Maracas", 71: "Whistle",
    72: "Long whistle", 73: "Guiro", 74: "Long guiro", 75: "Claves", 76: "Hi block", 77: "Lo block",
    78: "Mute cuica", 79: "Cuica", 80: "Mute triangle", 81: "Triangle",
}


def pitch_name(pitch: int) -> str:
    """MIDI note number → name with octave, e.g. 60 → ``C4``, 70 → ``B♭4``."""
    pitch = int(pitch)
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def drum_name(key: int) -> str:
    return GM_DRUM_NAMES.get(int(key), f"Drum {int(key)}")


class PianoKeyAxis(StableAxis):
    """A left axis that draws a piano keyboard next to the plot and names every C (or every key
    when zoomed in far enough)."""

    def __init__(self, **kwargs):
        super().__init__("left", **kwargs)
        self.setStyle(tickLength=0, tickTextOffset=KEYBOARD_WIDTH_PX + 5, autoExpandTextSpace=False)
        self.enableAutoSIPrefix(False)

    def _px_per_semitone(self) -> float:
        view = self.linkedView()
        if view is None:
            return 0.0
        lo, hi = view.viewRange()[1]
        return view.height() / max(hi - lo, 1e-9)

    def tickValues(self, minVal, maxVal, size):
        lo, hi = int(np.ceil(minVal)), int(np.floor(maxVal))
        c_keys = [p for p in range(lo, hi + 1) if p % 12 == 0]
        if self._px_per_semitone() >= 13:
            others = [p for p in range(lo, hi + 1) if p % 12 != 0]
            return [(12, c_keys), (1, others)]
        if self._px_per_semitone() >= 6:
            return [(12, c_keys), (1, [p for p in range(lo, hi + 1) if p % 12 in (4, 7)])]  # E, G
        return [(12, c_keys)]

    def tickStrings(self, values, scale, spacing):
        return [pitch_name(round(v)) for v in values]

    def paint(self, painter, option, widget=None):
        view = self.linkedView()
        if view is not None:
            self._paint_keyboard(painter, view)
        super().paint(painter, option, widget)

    def _paint_keyboard(self, painter, view) -> None:
        """Draw the keyboard strip, from a pixmap redrawn only when the pitch range or size changes."""
        plot_rect = view.mapRectToItem(self, view.boundingRect())
        lo, hi = view.viewRange()[1]
        if hi <= lo or plot_rect.height() <= 0:
            return
        right = self.mapRectFromParent(self.geometry()).right()
        key = (round(lo, 6), round(hi, 6), round(plot_rect.height(), 2))
        if getattr(self, "_keyboard_key", None) != key:
            self._keyboard_key = key
            self._keyboard = self._render_keyboard(lo, hi, plot_rect.height())
        painter.drawPixmap(QPointF(right - KEYBOARD_WIDTH_PX, plot_rect.top()), self._keyboard)

    @staticmethod
    def _render_keyboard(lo: float, hi: float, height_px: float) -> QPixmap:
        pixmap = QPixmap(KEYBOARD_WIDTH_PX, max(int(np.ceil(height_px)), 1))
        pixmap.fill(QColor("#e9e9ec"))
        painter = QPainter(pixmap)
        scale = height_px / (hi - lo)
        black_w = KEYBOARD_WIDTH_PX * 0.6

        def y_px(pitch_edge):
            return height_px - (pitch_edge - lo) * scale

        painter.setPen(QPen(QColor("#8a8b93")))
        for p in range(int(np.floor(lo)) - 1, int(np.ceil(hi)) + 2):
            top, bottom = y_px(p + 0.5), y_px(p - 0.5)
            pc = p % 12
            if pc in BLACK_PITCH_CLASSES:
                painter.fillRect(QRectF(0, top, black_w, bottom - top), QColor("#202126"))
                mid = 0.5 * (top + bottom)
                painter.drawLine(QPointF(black_w, mid), QPointF(KEYBOARD_WIDTH_PX, mid))
            elif pc in (4, 11):  # E|F and B|C: white keys meet along the full width
                painter.drawLine(QPointF(0, top), QPointF(KEYBOARD_WIDTH_PX, top))
            if pc == 0 and scale >= 5:  # mark C rows so the labels have an anchor
                painter.fillRect(QRectF(black_w + 2, top + 1, KEYBOARD_WIDTH_PX - black_w - 4,
                                        max(bottom - top - 2, 1)), QColor("#c7d7f2"))
        painter.end()
        return pixmap


class DrumAxis(StableAxis):
    """A left axis naming the rows of a drum lane (row ``i`` holds drum key ``keys[i]``)."""

    def __init__(self, **kwargs):
        super().__init__("left", **kwargs)
        self.setStyle(tickLength=0, tickTextOffset=6, autoExpandTextSpace=False)
        self.enableAutoSIPrefix(False)
        self.keys: list[int] = []

    def set_keys(self, keys) -> None:
        self.keys = [int(k) for k in keys]
        self.picture = None
        self.update()

    def tickValues(self, minVal, maxVal, size):
        rows = [i for i in range(len(self.keys)) if minVal <= i <= maxVal]
        view = self.linkedView()
        px_per_row = view.height() / max(maxVal - minVal, 1e-9) if view is not None else 20
        step = max(1, int(np.ceil(11 / max(px_per_row, 1e-9))))  # keep labels from overlapping
        return [(1, rows[::step])]

    def tickStrings(self, values, scale, spacing):
        return [drum_name(self.keys[int(round(v))]) if 0 <= int(round(v)) < len(self.keys) else "" for v in values]
