"""The status line: confidence, durations, and the times and tempo ratio under the cursor.

Task: one line of text, kept current from the session's events, that answers "how good is this
alignment, and where am I": the alignment confidence (0-1, higher is better), both durations, the
cursor's audio time with the MIDI time the path maps it to, and the local tempo ratio there.
Conventions: times shown as ``m:ss.ss``; tempo ratio as d(MIDI time)/d(audio time).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from gui.session import LoadedPair, Session
from gui.views.base import format_time_s
from gui.views.pitch_axis import pitch_name


def confidence_words(confidence: float) -> str:
    """A word for a confidence score (thresholds after the Lakh MIDI dataset's usage)."""
    if confidence >= 0.66:
        return "good"
    if confidence >= 0.5:
        return "fair"
    return "doubtful"


class StatusLine(QLabel):
    """A label in the status bar that observes a :class:`Session`."""

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setObjectName("statusLine")
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        session.events.pair_changed.connect(lambda _: self.refresh())
        session.events.cursor_moved.connect(lambda _: self.refresh())
        session.events.pending_files_changed.connect(lambda _: self.refresh())
        self.refresh()

    def summary_parts(self, pair: LoadedPair) -> list[str]:
        if not pair.aligned:
            return ["<b>aligning…</b> (notes shown in MIDI time meanwhile)",
                    f"MIDI {format_time_s(pair.midi_duration_s, 1)}",
                    f"audio {format_time_s(pair.audio_duration_s, 1)}"]
        c = float(pair.alignment.confidence)
        return [f"confidence <b>{c:.2f}</b> ({confidence_words(c)})",
                f"MIDI {format_time_s(pair.midi_duration_s, 1)}",
                f"audio {format_time_s(pair.audio_duration_s, 1)}"]

    def cursor_parts(self, pair: LoadedPair, t_s: float) -> list[str]:
        midi_s = float(pair.audio_to_midi(t_s))
        ratio = pair.tempo_ratio_at(t_s)
        if not pair.aligned:
            return [f"cursor <b>{format_time_s(t_s)}</b>"]
        parts = [f"cursor audio <b>{format_time_s(t_s)}</b> ↔ MIDI <b>{format_time_s(midi_s)}</b>"]
        if np.isfinite(ratio):
            pace = "faster" if ratio > 1.005 else "slower" if ratio < 0.995 else "same tempo"
            parts.append(f"tempo ratio <b>×{ratio:.2f}</b> (recording {pace})")
        notes = pair.notes
        warped = self.session.display.show_warped
        starts = notes.start_audio_s if warped else notes.start_midi_s
        ends = notes.end_audio_s if warped else notes.end_midi_s
        sounding = notes.pitch[(starts <= t_s) & (ends > t_s) & ~notes.is_drum]
        if len(sounding):
            names = " ".join(pitch_name(p) for p in np.unique(sounding)[:6])
            parts.append(f"notes {names}{' …' if len(np.unique(sounding)) > 6 else ''}")
        return parts

    def refresh(self) -> None:
        pair = self.session.pair
        if pair is None:
            midi, audio = self.session.pending_midi_path, self.session.pending_audio_path
            if midi and not audio:
                self.setText("MIDI chosen; open a recording to align it with (File ▸ Open Audio…)")
            elif audio and not midi:
                self.setText("Recording chosen; open the MIDI to align (File ▸ Open MIDI…)")
            else:
                self.setText("Open a MIDI file and a recording (File ▸ Open Pair…), or drop them here")
            return
        parts = self.summary_parts(pair)
        t_s = self.session.cursor_s
        if t_s is not None:
            parts += self.cursor_parts(pair, t_s)
        self.setText(" &nbsp;│&nbsp; ".join(parts))
