"""The followed score position in the piano roll: the notes sounding there, and a score cursor.

Task
----
While "Follow microphone" runs, show where in the score the performer is: the MIDI notes that
sound at the followed position are drawn again on top of the piano roll, lit up (white, with a
soft halo: white is in no instrument's palette), and a score cursor (a vertical line labelled
"score") marks the position.
:class:`FollowHighlight` owns these graphics items in a
:class:`gui.views.piano_roll_view.PianoRollView`'s view box and never touches the view's own
notes; :class:`gui.live_follow.LiveFollowController` calls :meth:`FollowHighlight.show` on its
GUI timer.

Conventions
-----------
``show(midi_s)`` takes MIDI time. The items are drawn on the view's time axis: audio time
through the alignment when the piano roll shows the warped MIDI, MIDI time otherwise. A note
sounds at ``t`` when ``start_midi_s <= t < end_midi_s``.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from gui.views.notes_item import NotesItem

HIGHLIGHT_FILL = (255, 255, 255, 240)    # white: in no instrument's palette, unlike any hue
HIGHLIGHT_HALO = (255, 255, 255, 80)
HALO_HALF_HEIGHT = 0.9                   # rows; the lit notes themselves fill their row (0.5)
SCORE_CURSOR = "#ffffff"
HIGHLIGHT_Z = 25                         # above the notes, under the cursor/playhead lines (30, 31)
CURSOR_Z = 32
CURSOR_LABEL_POSITION = 0.1              # of the line's height, from the foot: the view's title covers its top


class FollowHighlight:
    """See the module docstring.

    Parameters
    ----------
    view : gui.views.piano_roll_view.PianoRollView
        Reads ``view.notes`` (the pitched notes), ``view.pair`` and ``view.session.display``.

    Attributes
    ----------
    sounding : np.ndarray of int
        Indices into ``view.notes`` of the notes highlighted now (empty when hidden).
    midi_s, cursor_s : float or None
        The position shown, in MIDI time and on the view's axis.
    """

    def __init__(self, view):
        self.view = view
        self.halo_item = NotesItem(style="fill", half_height=HALO_HALF_HEIGHT, min_width_px=8.0)
        self.fill_item = NotesItem(style="fill", half_height=0.5, min_width_px=3.0)
        self.cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(SCORE_CURSOR, width=2),
                                      label="score", labelOpts={"position": CURSOR_LABEL_POSITION,
                                                                "color": SCORE_CURSOR, "fill": (20, 21, 26, 200)})
        for item, z in ((self.halo_item, HIGHLIGHT_Z), (self.fill_item, HIGHLIGHT_Z + 1), (self.cursor, CURSOR_Z)):
            item.setZValue(z)
            item.setVisible(False)
            item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            view.viewbox.addItem(item, ignoreBounds=True)
        self.sounding = np.zeros(0, dtype=np.int64)
        self.midi_s: float | None = None
        self.cursor_s: float | None = None
        self._drawn_key = None

    @property
    def visible(self) -> bool:
        return self.cursor.isVisible()

    def show(self, midi_s: float | None) -> None:
        """Highlight the notes sounding at ``midi_s`` (MIDI seconds) and put the score cursor there;
        None hides both."""
        notes, pair = self.view.notes, self.view.pair
        if midi_s is None or pair is None or notes is None or not np.isfinite(midi_s):
            self.clear()
            return
        warped = bool(self.view.session.display.show_warped)
        self.midi_s = float(midi_s)
        self.cursor_s = self.view.session.midi_to_axis_s(midi_s)
        sounding = np.flatnonzero((notes.start_midi_s <= midi_s) & (notes.end_midi_s > midi_s))
        key = (warped, id(notes), sounding.tobytes())
        if key != self._drawn_key:  # redraw the boxes only when the set of sounding notes changes
            self._drawn_key = key
            self.sounding = sounding
            starts = (notes.start_audio_s if warped else notes.start_midi_s)[sounding]
            ends = (notes.end_audio_s if warped else notes.end_midi_s)[sounding]
            colours = np.zeros(len(sounding), dtype=np.int64)
            self.halo_item.set_notes(starts, ends, notes.pitch[sounding], colours, np.array([HIGHLIGHT_HALO], np.uint8))
            self.fill_item.set_notes(starts, ends, notes.pitch[sounding], colours, np.array([HIGHLIGHT_FILL], np.uint8))
        self.cursor.setValue(self.cursor_s)
        for item in (self.halo_item, self.fill_item, self.cursor):
            item.setVisible(True)

    def clear(self) -> None:
        """Hide the highlight and the cursor."""
        self.sounding = np.zeros(0, dtype=np.int64)
        self.midi_s = self.cursor_s = None
        self._drawn_key = None
        empty = np.zeros(0)
        for item in (self.halo_item, self.fill_item):
            item.set_notes(empty, empty, empty, np.zeros(0, np.int64), np.zeros((1, 4), np.uint8))
            item.setVisible(False)
        self.cursor.setVisible(False)
