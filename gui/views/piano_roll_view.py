"""The MIDI as a piano roll in audio time (or its own time), and its drum track in a lane apart.

Task
----
Draw every pitched note as a box on key rows that line up with the spectrogram's rows above,
coloured by instrument (with a legend) or by velocity; drums go to a separate lane with one named
row per drum sound. A display option switches both to the MIDI's unwarped time, to see what the
alignment changed. Notes are drawn by :class:`gui.views.notes_item.NotesItem` (one item, culled,
rasterised when dense).

Conventions: x audio time (s) — or MIDI time when ``show_warped`` is off; y MIDI pitch.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QPen

from gui.session import LoadedPair, NoteTable, Session
from gui.views import theme
from gui.views.base import TimeView
from gui.views.notes_item import NotesItem
from gui.views.pitch_axis import BLACK_PITCH_CLASSES, DrumAxis, PianoKeyAxis

DRUM_ROW_HEIGHT_PX = 13


def note_colours(notes: NoteTable, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Colour index per note and the palette, by ``"instrument"`` or by ``"velocity"``."""
    if mode == "velocity":
        return theme.velocity_level(notes.velocity), theme.velocity_palette()
    return notes.instrument.astype(np.int64), theme.instrument_palette(len(notes.instrument_names))


class KeyRowsItem(pg.GraphicsObject):
    """The piano roll's background: darker rows for black keys and a line under every C."""

    def boundingRect(self) -> QRectF:
        return QRectF(-1e7, 0, 2e7, 128)

    def paint(self, painter, option, widget=None) -> None:
        view_rect = self.viewRect()
        if view_rect is None:
            return
        x0, x1 = view_rect.left(), view_rect.right()
        y0, y1 = sorted((view_rect.top(), view_rect.bottom()))
        painter.fillRect(QRectF(x0, y0, x1 - x0, y1 - y0), QColor(theme.ROW_WHITE_KEY))
        black = QColor(theme.ROW_BLACK_KEY)
        pen = QPen(QColor(theme.ROW_C_LINE))
        pen.setCosmetic(True)
        painter.setPen(pen)
        for p in range(max(int(np.floor(y0)) - 1, 0), min(int(np.ceil(y1)) + 2, 128)):
            if p % 12 in BLACK_PITCH_CLASSES:
                painter.fillRect(QRectF(x0, p - 0.5, x1 - x0, 1.0), black)
            elif p % 12 == 0:
                painter.drawLine(pg.QtCore.QPointF(x0, p - 0.5), pg.QtCore.QPointF(x1, p - 0.5))


class PianoRollView(TimeView):
    """Pitched notes of the MIDI on key rows."""

    draws_preview = True  # the notes in MIDI time while the alignment runs

    def __init__(self, session: Session, parent=None):
        super().__init__(session, title="MIDI · piano roll", left_axis=PianoKeyAxis(), pitch_zoom=True,
                         parent=parent)
        self.rows_item = KeyRowsItem()
        self.rows_item.setZValue(-10)
        self.viewbox.addItem(self.rows_item, ignoreBounds=True)
        self.notes_item = NotesItem(style="fill", half_height=0.42)
        self.viewbox.addItem(self.notes_item)
        self.pair: LoadedPair | None = None
        self.notes: NoteTable | None = None
        session.events.pitch_range_changed.connect(lambda rng: self.set_y_range(*rng))
        self.set_y_range(*session.pitch_range)
        self.finish_init()

    def set_pair(self, pair: LoadedPair | None) -> None:
        self.pair = pair
        self.notes = None if pair is None else pair.notes.select(~pair.notes.is_drum)
        self._redraw_notes()

    def _redraw_notes(self) -> None:
        notes = self.notes
        if notes is None or not len(notes):
            self.notes_item.set_notes(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, int), np.zeros((1, 4), np.uint8))
            self._update_title()
            return
        warped = self.session.display.show_warped
        starts = notes.start_audio_s if warped else notes.start_midi_s
        ends = notes.end_audio_s if warped else notes.end_midi_s
        colour_index, palette = note_colours(notes, self.session.display.note_colour)
        self.notes_item.set_notes(starts, ends, notes.pitch, colour_index, palette)
        self._update_title()

    def _update_title(self) -> None:
        options = self.session.display
        timeline = "warped to the recording" if options.show_warped else "unwarped · MIDI time"
        if self.pair is not None and not self.pair.aligned:
            timeline = "MIDI time · aligning…"
        parts = [f"MIDI · piano roll ({timeline})"]
        if self.pair is None:
            parts.append('<span style="font-weight:400">— open a MIDI file and a recording: File ▸ Open Pair… '
                         '(Ctrl+O), or drop both files on the window</span>')
        if self.notes is not None and len(self.notes):
            if options.note_colour == "instrument":
                palette = theme.instrument_palette(len(self.notes.instrument_names))
                used = sorted(set(self.notes.instrument.tolist()))
                for i in used[:8]:
                    r, g, b, _ = palette[i]
                    parts.append(f'<span style="color:rgb({r},{g},{b})">■</span> {self.notes.instrument_names[i]}')
                if len(used) > 8:
                    parts.append(f"+{len(used) - 8} more")
            else:
                parts.append("colour = velocity (soft → loud)")
        self.set_title(" &nbsp; ".join(parts))

    def on_display(self, options) -> None:
        self._redraw_notes()


class DrumLaneView(TimeView):
    """The MIDI's drum notes, one named row per drum sound; hidden when there are none."""

    draws_preview = True

    def __init__(self, session: Session, parent=None):
        self.drum_axis = DrumAxis()
        super().__init__(session, title="MIDI · drums", left_axis=self.drum_axis, parent=parent)
        self.notes_item = NotesItem(style="fill", half_height=0.36, min_width_px=3.0, raster_threshold=1500)
        self.viewbox.addItem(self.notes_item)
        self.notes: NoteTable | None = None
        self.keys: np.ndarray = np.zeros(0, int)
        self.setVisible(False)
        self.finish_init()

    @property
    def has_drums(self) -> bool:
        return self.notes is not None and len(self.notes) > 0

    def preferred_height_px(self) -> int:
        return int(max(len(self.keys), 2) * DRUM_ROW_HEIGHT_PX + 12)

    def set_pair(self, pair: LoadedPair | None) -> None:
        self.notes = None if pair is None else pair.notes.select(pair.notes.is_drum)
        if self.has_drums:
            self.keys = np.unique(self.notes.pitch)
            self.drum_axis.set_keys(self.keys)
            self.set_y_range(-0.5, len(self.keys) - 0.5)
        else:
            self.keys = np.zeros(0, int)
        self._redraw_notes()
        self.setVisible(self.has_drums)

    def _redraw_notes(self) -> None:
        if not self.has_drums:
            self.notes_item.set_notes(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, int), np.zeros((1, 4), np.uint8))
            return
        notes = self.notes
        warped = self.session.display.show_warped
        rows = np.searchsorted(self.keys, notes.pitch)
        if self.session.display.note_colour == "velocity":
            colour_index, palette = theme.velocity_level(notes.velocity), theme.velocity_palette()
        else:
            colour_index = np.zeros(len(notes), int)
            palette = np.array([theme.hex_to_rgba(theme.DRUM_COLOUR)], np.uint8)
        self.notes_item.set_notes(notes.start_audio_s if warped else notes.start_midi_s,
                                  notes.end_audio_s if warped else notes.end_midi_s, rows, colour_index, palette)

    def on_display(self, options) -> None:
        self._redraw_notes()
