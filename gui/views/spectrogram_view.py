"""The recording's spectrogram on the piano-key axis, with the aligned notes as an overlay.

Task
----
Show the display spectrogram the engine computed (semitone-spaced rows, dB) so that each row lines
up with the piano roll's key rows, with an adjustable dynamic range and colour map, and draw the
MIDI's notes (warped into audio time) as outlines over it: a note that was not played shows as an
empty box, a wrong note as a box off the energy.

Level of detail: the spectrogram is quantised to uint8 once (0.3 dB steps over its 80 dB range)
and kept as a max-pooled pyramid in time (each level halves the frames; :mod:`gui.lod`, built on
the worker thread). On every change of the
visible range, the view picks the finest level with at most one column per screen pixel and
hands only the visible slice (and only the visible rows) to the image item, so the work per redraw is bounded by the screen, not the piece.

Conventions: x audio time (s); y MIDI pitch; dB relative to the loudest cell (0 dB).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF

from gui.lod import SpectrogramPyramid
from gui.session import LoadedPair, Session
from gui.views import theme
from gui.views.base import TimeView
from gui.views.notes_item import NotesItem
from gui.views.pitch_axis import PianoKeyAxis
from gui.views.raster_item import RasterItem, colour_table


class SpectrogramView(TimeView):
    """Spectrogram + aligned-note overlay on the shared time axis (the overlay waits for the
    alignment: over a preview, notes in MIDI time would only mislead)."""

    draws_preview = True

    def __init__(self, session: Session, parent=None):
        super().__init__(session, title="Recording · spectrogram", left_axis=PianoKeyAxis(),
                         pitch_zoom=True, parent=parent)
        self.show_time_axis(bottom=False, top=True)
        self.image_item = RasterItem()
        self.viewbox.addItem(self.image_item)
        self.overlay = NotesItem(style="outline", half_height=0.5)
        self.overlay.setZValue(10)
        self.viewbox.addItem(self.overlay)
        self.pyramid: SpectrogramPyramid | None = None
        self.current_level = 0
        self.pair: LoadedPair | None = None
        session.events.pitch_range_changed.connect(self._on_pitch_range_changed)
        self.set_y_range(*session.pitch_range)
        self.finish_init()

    def _on_pitch_range_changed(self, rng) -> None:
        self.set_y_range(*rng)
        self.on_view_range(*self.session.view_range_s)

    def set_pair(self, pair: LoadedPair | None) -> None:
        self.pair = pair
        if pair is None:
            self.pyramid = None
            self.image_item.clear()
            self.overlay.set_notes(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, int), np.zeros((1, 4), np.uint8))
            return
        # built on the worker by gui.pipeline; built here only for pairs made some other way
        self.pyramid = pair.pyramid if pair.pyramid is not None else SpectrogramPyramid(pair.spectrogram)
        self._set_overlay_notes()
        self.on_display(self.session.display)

    def _set_overlay_notes(self) -> None:
        if self.pair is None:
            return
        notes = self.pair.notes
        pitched = ~notes.is_drum
        warped = self.session.display.show_warped
        starts = (notes.start_audio_s if warped else notes.start_midi_s)[pitched]
        ends = (notes.end_audio_s if warped else notes.end_midi_s)[pitched]
        palette = np.array([theme.hex_to_rgba(theme.OVERLAY_OUTLINE)], dtype=np.uint8)
        self.overlay.set_notes(starts, ends, notes.pitch[pitched], np.zeros(int(pitched.sum()), int), palette)

    def on_display(self, options) -> None:
        self.overlay.setVisible(options.show_overlay and self.pair is not None and self.pair.aligned)
        if self.pair is not None and getattr(self, "_warped_shown", None) != options.show_warped:
            self._set_overlay_notes()
        self._warped_shown = options.show_warped
        if self.pyramid is not None:
            top = self.pyramid.db_to_level(self.pyramid.max_db)
            low = self.pyramid.db_to_level(self.pyramid.max_db - options.dynamic_range_db)
            self.image_item.set_table(colour_table(theme.colormap_lut(options.colormap), low, top))
        self.on_view_range(*self.session.view_range_s)

    def on_view_range(self, start_s: float, end_s: float) -> None:
        if self.pyramid is None:
            self.image_item.clear()
            return
        image, t0, t1, level = self.pyramid.window(start_s, end_s, self.plot_width_px())
        self.current_level = level
        # only the rows on screen: the image drawn is never much larger than the plot
        step = (self.pyramid.pitch_hi - self.pyramid.pitch_lo) / image.shape[0]
        p0, p1 = self.session.pitch_range
        r0 = int(np.clip(np.floor((p0 - self.pyramid.pitch_lo) / step) - 1, 0, image.shape[0] - 1))
        r1 = int(np.clip(np.ceil((p1 - self.pyramid.pitch_lo) / step) + 1, r0 + 1, image.shape[0]))
        rect = QRectF(t0, self.pyramid.pitch_lo + r0 * step, t1 - t0, (r1 - r0) * step)
        self.image_item.set_cells(image[r0:r1], rect)
