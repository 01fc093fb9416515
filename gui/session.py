"""The session: an evented model of what the window shows, with no Qt widgets in it.

Task
----
Hold the state every view shares — the loaded pair (alignment, display spectrogram, notes), the
time range on screen, the cursor under the mouse, the playhead, the selection and the display
options — and announce every change through plain-Python events. Views (Qt widgets) observe the
session and redraw; user input on a view calls a session method, never another view. This is the
napari pattern: one model, many observers, no view-to-view wiring, so a later view (tempo strip)
or panel (labels, playback) plugs in by connecting to the same events.

Conventions
-----------
- The shared time axis is **audio time** in seconds (``*_s``). MIDI time appears only as a
  quantity mapped through the alignment (``midi_to_audio`` / ``audio_to_midi``).
- Events carry the new value: ``session.events.view_range_changed.connect(cb)`` calls
  ``cb((start_s, end_s))``. Events fire only when a value really changes.
- Nothing here imports Qt, so the model is testable and scriptable on its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

MIN_SPAN_S = 0.05  # narrowest time range one can zoom to
MIN_PITCH_SPAN = 6.0  # narrowest pitch range (semitones) one can zoom to
MIN_FIT_PITCH_SPAN = 24.0  # "fit all" shows at least two octaves
PIANO_PITCH_RANGE = (20.5, 108.5)  # A0..C8, edges of the key rows
EDGE_MARGIN_FRACTION = 0.02  # how far past either end one may pan, as a fraction of the extent


class Event:
    """A plain-Python signal: ``connect(callback)``, ``disconnect(callback)``, ``emit(value)``."""

    def __init__(self, name: str):
        self.name = name
        self._callbacks: list[Callable[[Any], None]] = []

    def connect(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[[Any], None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, value: Any = None) -> None:
        for callback in list(self._callbacks):
            callback(value)

    def __len__(self) -> int:
        return len(self._callbacks)


class SessionEvents:
    """The events a :class:`Session` emits (each is an :class:`Event`)."""

    def __init__(self):
        self.pair_changed = Event("pair_changed")            # LoadedPair or None (alignment changed)
        self.pending_files_changed = Event("pending_files_changed")  # (midi_path, audio_path)
        self.view_range_changed = Event("view_range_changed")  # (start_s, end_s)
        self.pitch_range_changed = Event("pitch_range_changed")  # (low, high) MIDI pitch, row edges
        self.cursor_moved = Event("cursor_moved")            # audio time (s) or None
        self.playhead_moved = Event("playhead_moved")        # audio time (s) or None
        self.selection_changed = Event("selection_changed")  # (start_s, end_s) or None
        self.display_changed = Event("display_changed")      # DisplayOptions

    @property
    def alignment_changed(self) -> Event:
        """Alias of ``pair_changed``: a new alignment always comes with its pair."""
        return self.pair_changed


@dataclass
class DisplaySpectrogram:
    """A spectrogram for display: semitone bins on the piano-key axis, dB.

    Attributes
    ----------
    S_db : np.ndarray, float32, shape (n_bins, n_frames)
    bin_midi_pitches : np.ndarray, shape (n_bins,)
        MIDI pitch at the centre of each bin (consecutive semitones).
    times_s : np.ndarray, shape (n_frames,)
        Audio time of each frame, seconds.
    """

    S_db: np.ndarray
    bin_midi_pitches: np.ndarray
    times_s: np.ndarray


@dataclass
class NoteTable:
    """Every note of a MIDI file as flat arrays, sorted by MIDI onset time.

    Times exist twice: in the MIDI's own timeline (``*_midi_s``) and mapped into the recording's
    timeline through the alignment (``*_audio_s``).
    """

    start_midi_s: np.ndarray
    end_midi_s: np.ndarray
    start_audio_s: np.ndarray
    end_audio_s: np.ndarray
    pitch: np.ndarray          # int, MIDI note number
    velocity: np.ndarray       # int, 1..127
    instrument: np.ndarray     # int, index into instrument_names
    is_drum: np.ndarray        # bool
    instrument_names: list[str] = field(default_factory=list)
    instrument_programs: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pitch)

    def select(self, mask: np.ndarray) -> "NoteTable":
        """The notes where ``mask`` is True (instrument names are kept as they are)."""
        return NoteTable(
            self.start_midi_s[mask], self.end_midi_s[mask], self.start_audio_s[mask], self.end_audio_s[mask],
            self.pitch[mask], self.velocity[mask], self.instrument[mask], self.is_drum[mask],
            list(self.instrument_names), list(self.instrument_programs),
        )


@dataclass
class LoadedPair:
    """Everything the views draw for one aligned (MIDI, audio) pair.

    ``aligned`` is False for the preview shown while the alignment still runs: the recording is
    analysed, the notes are read, but ``alignment`` is the identity map (notes in MIDI time), with
    no path or cost matrix worth drawing. Views that cannot draw such a pair show nothing meanwhile.
    """

    midi_path: str
    audio_path: str
    alignment: Any  # engine.align.Alignment
    spectrogram: DisplaySpectrogram
    notes: NoteTable
    tempo_times_s: np.ndarray  # audio times of the local tempo ratio samples
    tempo_ratio: np.ndarray    # d(MIDI time)/d(audio time)
    timings: dict = field(default_factory=dict)
    pyramid: Any = None                        # gui.lod.SpectrogramPyramid, made on the worker
    cost_brightness: np.ndarray | None = None  # uint8 cost matrix for display, made on the worker
    aligned: bool = True                       # False: the preview before the alignment is done

    @property
    def audio_duration_s(self) -> float:
        return float(self.alignment.audio_duration_s)

    @property
    def midi_duration_s(self) -> float:
        return float(self.alignment.midi_duration_s)

    def tempo_ratio_at(self, audio_s: float) -> float:
        """Local tempo ratio (d MIDI time / d audio time) at an audio time, NaN if unknown."""
        if len(self.tempo_times_s) == 0:
            return float("nan")
        return float(np.interp(audio_s, self.tempo_times_s, self.tempo_ratio))

    def audio_to_midi(self, audio_s):
        return self.alignment.audio_to_midi(audio_s)

    def midi_to_audio(self, midi_s):
        return self.alignment.midi_to_audio(midi_s)


@dataclass(frozen=True)
class DisplayOptions:
    """How the views draw.

    Attributes
    ----------
    show_warped : bool
        Piano roll in audio time (True) or in the MIDI's own, unwarped time (False).
    show_overlay : bool
        Aligned notes drawn as outlines over the spectrogram.
    note_colour : str
        ``"instrument"`` or ``"velocity"``.
    dynamic_range_db : float
        Spectrogram levels span ``[max - dynamic_range_db, max]``.
    colormap : str
        A pyqtgraph colour map name, or ``"grey"``.
    """

    show_warped: bool = True
    show_overlay: bool = True
    note_colour: str = "instrument"
    dynamic_range_db: float = 50.0
    colormap: str = "magma"


class Session:
    """What is open and what is on screen; see the module docstring.

    Attributes
    ----------
    events : SessionEvents
    pair : LoadedPair or None
        The aligned pair on screen.
    pending_midi_path, pending_audio_path : str or None
        Files chosen but not yet aligned (e.g. only a MIDI opened so far).
    """

    def __init__(self):
        self.events = SessionEvents()
        self.pair: LoadedPair | None = None
        self.pending_midi_path: str | None = None
        self.pending_audio_path: str | None = None
        self._view_range_s: tuple[float, float] = (0.0, 10.0)
        self._pitch_range: tuple[float, float] = (35.5, 84.5)
        self._fitted_range_s, self._fitted_pitch = self._view_range_s, self._pitch_range  # as the last fit left them
        self._cursor_s: float | None = None
        self._playhead_s: float | None = None
        self._selection_s: tuple[float, float] | None = None
        self._display = DisplayOptions()

    # -- the pair -------------------------------------------------------------------------------
    def set_pair(self, pair: LoadedPair | None, keep_view: bool = False) -> None:
        """Show a newly aligned pair (or its preview, or nothing); the view fits the whole piece.

        With ``keep_view`` (the aligned pair replacing its own preview), the time and pitch ranges
        the user chose meanwhile are kept; ranges still as "fit all" left them are fitted again.
        """
        refit_time = not keep_view or np.allclose(self._view_range_s, self._fitted_range_s, rtol=0, atol=1e-9)
        refit_pitch = not keep_view or np.allclose(self._pitch_range, self._fitted_pitch, rtol=0, atol=1e-9)
        self.pair = pair
        if pair is not None:
            self.pending_midi_path, self.pending_audio_path = pair.midi_path, pair.audio_path
        self._selection_s = None
        self._playhead_s = None
        self.events.pair_changed.emit(pair)
        self.events.selection_changed.emit(None)
        self.events.playhead_moved.emit(None)
        if refit_time:
            self.fit_all()
        if refit_pitch:
            self.fit_pitch()

    def set_pending_files(self, midi_path: str | None = None, audio_path: str | None = None) -> None:
        """Remember files chosen for the next alignment (None keeps the current choice)."""
        if midi_path is not None:
            self.pending_midi_path = str(midi_path)
        if audio_path is not None:
            self.pending_audio_path = str(audio_path)
        self.events.pending_files_changed.emit((self.pending_midi_path, self.pending_audio_path))

    @property
    def time_extent_s(self) -> tuple[float, float]:
        """(0, end) covering the recording and the notes as currently drawn."""
        if self.pair is None:
            return (0.0, 10.0)
        end = self.pair.audio_duration_s
        notes = self.pair.notes
        if len(notes):
            ends = notes.end_audio_s if self._display.show_warped else notes.end_midi_s
            end = max(end, float(np.max(ends)))
        if not self._display.show_warped:
            end = max(end, self.pair.midi_duration_s)
        return (0.0, max(end, MIN_SPAN_S))

    # -- the time range on screen ---------------------------------------------------------------
    @property
    def view_range_s(self) -> tuple[float, float]:
        return self._view_range_s

    def set_view_range(self, start_s: float, end_s: float) -> None:
        """Show audio times [start_s, end_s], clamped to the piece (plus a small margin)."""
        lo, hi = self.time_extent_s
        margin = EDGE_MARGIN_FRACTION * (hi - lo)
        lo, hi = lo - margin, hi + margin
        start_s, end_s = float(min(start_s, end_s)), float(max(start_s, end_s))
        span = min(max(end_s - start_s, MIN_SPAN_S), hi - lo)
        start_s = min(max(start_s, lo), hi - span)
        new = (start_s, start_s + span)
        if not np.allclose(new, self._view_range_s, rtol=0, atol=1e-9):
            self._view_range_s = new
            self.events.view_range_changed.emit(new)

    def zoom(self, factor: float, anchor_s: float | None = None) -> None:
        """Zoom in by ``factor`` (> 1 in, < 1 out), keeping ``anchor_s`` (default: centre) in place."""
        start, end = self._view_range_s
        if anchor_s is None:
            anchor_s = 0.5 * (start + end)
        new_span = (end - start) / factor
        rel = (anchor_s - start) / (end - start) if end > start else 0.5
        new_start = anchor_s - rel * new_span
        self.set_view_range(new_start, new_start + new_span)

    def pan(self, fraction: float) -> None:
        """Move the view by ``fraction`` of its width (positive: later in time)."""
        start, end = self._view_range_s
        self.pan_by_s(fraction * (end - start))

    def pan_by_s(self, delta_s: float) -> None:
        start, end = self._view_range_s
        self.set_view_range(start + delta_s, end + delta_s)

    def fit_all(self) -> None:
        self.set_view_range(*self.time_extent_s)
        self._fitted_range_s = self._view_range_s

    # -- the pitch range on screen (spectrogram and piano roll share it) -------------------------
    @property
    def pitch_range(self) -> tuple[float, float]:
        """(low, high) MIDI pitch shown by pitched views; key rows span pitch ± 0.5."""
        return self._pitch_range

    def set_pitch_range(self, low: float, high: float) -> None:
        lo_limit, hi_limit = PIANO_PITCH_RANGE
        low, high = float(min(low, high)), float(max(low, high))
        span = min(max(high - low, MIN_PITCH_SPAN), hi_limit - lo_limit)
        low = min(max(low, lo_limit), hi_limit - span)
        new = (low, low + span)
        if not np.allclose(new, self._pitch_range, rtol=0, atol=1e-9):
            self._pitch_range = new
            self.events.pitch_range_changed.emit(new)

    def zoom_pitch(self, factor: float, anchor: float | None = None) -> None:
        low, high = self._pitch_range
        anchor = 0.5 * (low + high) if anchor is None else anchor
        rel = (anchor - low) / (high - low)
        span = (high - low) / factor
        self.set_pitch_range(anchor - rel * span, anchor - rel * span + span)

    def fit_pitch(self) -> None:
        """Show the pitched notes' range (at least two octaves), or the piano's when no notes."""
        notes = None if self.pair is None else self.pair.notes
        pitched = None if notes is None else notes.pitch[~notes.is_drum]
        if pitched is None or len(pitched) == 0:
            self.set_pitch_range(*PIANO_PITCH_RANGE)
        else:
            low, high = float(pitched.min()) - 2.5, float(pitched.max()) + 2.5
            if high - low < MIN_FIT_PITCH_SPAN:
                mid = 0.5 * (low + high)
                low, high = mid - MIN_FIT_PITCH_SPAN / 2, mid + MIN_FIT_PITCH_SPAN / 2
            self.set_pitch_range(low, high)
        self._fitted_pitch = self._pitch_range

    # -- cursor, playhead, selection ------------------------------------------------------------
    @property
    def cursor_s(self) -> float | None:
        return self._cursor_s

    def set_cursor(self, audio_s: float | None) -> None:
        """The time under the mouse (None when the mouse leaves the views)."""
        if audio_s != self._cursor_s:
            self._cursor_s = None if audio_s is None else float(audio_s)
            self.events.cursor_moved.emit(self._cursor_s)

    @property
    def playhead_s(self) -> float | None:
        """The playback position in audio time (None when nothing plays); set by playback."""
        return self._playhead_s

    @playhead_s.setter
    def playhead_s(self, audio_s: float | None) -> None:
        if audio_s != self._playhead_s:
            self._playhead_s = None if audio_s is None else float(audio_s)
            self.events.playhead_moved.emit(self._playhead_s)

    @property
    def selection_s(self) -> tuple[float, float] | None:
        return self._selection_s

    def set_selection(self, start_s: float | None, end_s: float | None = None) -> None:
        """Select a time range (None clears it)."""
        if start_s is None or end_s is None or abs(end_s - start_s) < 1e-6:
            new = None
        else:
            new = (float(min(start_s, end_s)), float(max(start_s, end_s)))
        if new != self._selection_s:
            self._selection_s = new
            self.events.selection_changed.emit(new)

    def zoom_to_selection(self) -> bool:
        """Show the selected range; returns False when nothing is selected."""
        if self._selection_s is None:
            return False
        self.set_view_range(*self._selection_s)
        return True

    # -- the views' time axis: audio time, or MIDI time when the MIDI is not warped ---------------
    def midi_to_axis_s(self, midi_s: float) -> float:
        """Where MIDI time ``midi_s`` lies on the views' time axis (needs a pair)."""
        return float(self.pair.midi_to_audio(midi_s)) if self._display.show_warped else float(midi_s)

    def axis_to_midi_s(self, axis_s: float) -> float:
        """The MIDI time at ``axis_s`` of the views' time axis (needs a pair)."""
        return float(self.pair.audio_to_midi(axis_s)) if self._display.show_warped else float(axis_s)

    # -- display options ------------------------------------------------------------------------
    @property
    def display(self) -> DisplayOptions:
        return self._display

    def set_display(self, **changes) -> None:
        """Change display options, e.g. ``set_display(show_warped=False)``."""
        new = replace(self._display, **changes)
        if new.note_colour not in ("instrument", "velocity"):
            raise ValueError(f"note_colour must be 'instrument' or 'velocity', not {new.note_colour!r}")
        if new != self._display:
            warped_changed = new.show_warped != self._display.show_warped
            self._display = new
            self.events.display_changed.emit(new)
            if warped_changed:  # the extent changed: keep the view inside it
                self.set_view_range(*self._view_range_s)
