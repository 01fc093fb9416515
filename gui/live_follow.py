"""“Follow microphone”: the piano roll follows a live performance of the open MIDI.

Task
----
:class:`LiveFollowController` builds an :class:`engine.follow.ScoreFollower` for the session's
MIDI on a background job (its reference features need a FluidSynth rendering), opens the
microphone with :class:`engine.follow.MicrophoneFollower` (at the device's own default sample
rate; the engine resamples) — the performance starts where the playhead stands, like playback
from the cursor (at the MIDI's start: from the beginning, found by listening) — and, while it
runs, drives the session's playhead (through
:meth:`gui.transport.PlaybackController.drive_playhead`) to the followed score position — so
the playhead line marks it in every view and the views scroll with it — and highlights the
score position in the piano roll (:class:`gui.views.follow_highlight.FollowHighlight`: the
notes sounding there and a score cursor). The follower's thread only stores the newest
position; the GUI timer reads it, and says so in a message when the follower hears the performance
start (it waits through the room's noise before the first notes: ``ScoreFollower.performance_start_s``)
and when it leaves out a part the performer does not play (:mod:`engine.follow_parts`).

No microphone, a busy device or a follower error → a ``message`` and following stops; nothing
raises into Qt.

Conventions: the follower reports MIDI time; the views' axis is audio time (the recording's),
so the position is mapped through the alignment (``midi_to_audio``) when the piano roll shows
the warped MIDI, and shown as is when it shows the MIDI's own time.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from engine.errors import EarwormError
from gui.session import Session
from gui.views.base import format_time_s

HIGHLIGHT_INTERVAL_MS = 40  # the score highlight moves at 25 frames per second
START_MARGIN_S = 1.0  # a playhead this close to the MIDI's start or end: follow from the beginning


def build_follower(midi_path, start_s: float = 0.0, progress=None, cancel=None):
    """Worker job: a score follower for ``midi_path`` (synthesizes the reference once, cached),
    for a performance that starts at ``start_s`` of the MIDI (0: the beginning)."""
    from engine.follow import ScoreFollower

    if progress is not None:
        progress(0.1, "preparing the score follower")
    return ScoreFollower(str(midi_path), start_s=start_s)


class LiveFollowController(QObject):
    """See the module docstring.

    Parameters
    ----------
    session : Session
    runner : gui.workers.JobRunner
    playback : gui.transport.PlaybackController
    stream_factory : callable, optional
        For :class:`engine.follow.MicrophoneFollower` (tests pass a fake sound card).
    query_devices : callable, optional
        Asked for the input's default sample rate (default ``sounddevice.query_devices``; tests
        pass the fake card's).
    piano_roll : gui.views.piano_roll_view.PianoRollView, optional
        Where the followed position is highlighted (also :meth:`attach_piano_roll`).
    """

    message = Signal(str)
    following_changed = Signal(bool)

    def __init__(self, session: Session, runner, playback, stream_factory=None, parent=None, query_devices=None,
                 piano_roll=None):
        super().__init__(parent)
        self.session = session
        self.runner = runner
        self.playback = playback
        self.stream_factory = stream_factory
        self.query_devices = query_devices
        self.highlight = None
        self.mic = None
        self._job = None
        self._latest_midi_s: float | None = None
        self.start_midi_s = 0.0  # where the performance followed now starts (playhead_midi_s)
        self._parts_reported = 0
        self._start_reported = False
        self.timer = QTimer(self)
        self.timer.setInterval(HIGHLIGHT_INTERVAL_MS)
        self.timer.timeout.connect(self._check)
        session.events.pair_changed.connect(lambda pair: self.stop())
        if piano_roll is not None:
            self.attach_piano_roll(piano_roll)

    def attach_piano_roll(self, view) -> None:
        """Highlight the followed score position in ``view`` (a PianoRollView; None: nowhere)."""
        from gui.views.follow_highlight import FollowHighlight

        if self.highlight is not None:
            self.highlight.clear()
        self.highlight = None if view is None else FollowHighlight(view)

    @property
    def following(self) -> bool:
        return self.mic is not None or (self._job is not None and not self._job.done)

    @property
    def latest_midi_s(self) -> float | None:
        return self._latest_midi_s

    def start(self) -> bool:
        """Start following (False with a message when there is no MIDI)."""
        pair = self.session.pair
        if pair is None:
            self.message.emit("Open a MIDI file (and its recording) first, then follow the microphone.")
            return False
        if self.following:
            return True
        self.playback.pause()
        self._latest_midi_s = None
        self.start_midi_s = self.playhead_midi_s()
        self._job = self.runner.submit(build_follower, pair.midi_path, self.start_midi_s, name="follow:prepare")
        self._job.succeeded.connect(self._on_follower_ready)
        self._job.failed.connect(self._on_failed)
        self.following_changed.emit(True)
        return True

    def _on_follower_ready(self, follower) -> None:
        from engine.follow import MicrophoneFollower

        if self._job is None:  # stopped meanwhile
            return
        self._job = None
        self._parts_reported, self._start_reported = 0, False
        self.mic = MicrophoneFollower(follower, self._on_position, stream_factory=self.stream_factory,
                                      query_devices=self.query_devices)
        try:
            self.mic.start()
        except EarwormError as exc:
            self.mic = None
            self.message.emit(f"Cannot follow: {exc.reason}")
            self.following_changed.emit(False)
            return
        self.playback.drive_playhead(self.current_audio_s)
        self.timer.start()
        where = "the beginning of the piece" if self.start_midi_s == 0.0 else \
            f"{format_time_s(self.start_midi_s, 1)} of the MIDI, where the playhead stood"
        self.message.emit(f"Following the microphone ({self.mic.samplerate / 1000:g} kHz): play from {where}; "
                          f"waiting for the first notes.")

    def playhead_midi_s(self) -> float:
        """Where a performance followed now starts: the playhead's score position, like playback
        from the cursor; 0 (the beginning, found by listening) when the playhead is within
        ``START_MARGIN_S`` of either end of the MIDI or there is none."""
        pair, playhead_s = self.session.pair, self.session.playhead_s
        if pair is None or playhead_s is None:
            return 0.0
        midi_s = self.session.axis_to_midi_s(playhead_s)
        if not START_MARGIN_S <= midi_s <= pair.midi_duration_s - START_MARGIN_S:
            return 0.0
        return midi_s

    def _on_failed(self, exc) -> None:
        self._job = None
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        self.message.emit(f"Cannot follow: {reason}")
        self.following_changed.emit(False)

    def _on_position(self, audio_s: float, midi_s: float) -> None:
        """(the follower's thread) Remember the newest position; the GUI reads it on its timer."""
        self._latest_midi_s = midi_s

    def current_audio_s(self) -> float | None:
        """The followed position on the views' time axis (None before the first one)."""
        midi_s = self._latest_midi_s
        if midi_s is None or self.session.pair is None:
            return None
        return self.session.midi_to_axis_s(midi_s)

    def _check(self) -> None:
        """GUI timer: surface a follower error, or move the score highlight to the newest position."""
        mic = self.mic
        if mic is not None and mic.error is not None:
            error = mic.error
            self.stop()
            self.message.emit(f"Following stopped: {getattr(error, 'reason', None) or error}")
            return
        if mic is None:
            return
        if self.highlight is not None:
            self.highlight.show(self._latest_midi_s)
        heard_s = mic.follower.performance_start_s  # set once, on the follower's thread
        if heard_s is not None and not self._start_reported:
            self._start_reported = True
            self.message.emit(f"Heard the performance start ({heard_s:.1f} s after following began); following.")
        changes = list(mic.follower.part_changes)  # appended on the follower's thread
        if len(changes) > self._parts_reported:
            self._parts_reported = len(changes)
            from engine.follow import describe_part_change  # loaded already: the follower exists

            text = describe_part_change(changes[-1][1])
            self.message.emit(text[0].upper() + text[1:] + ".")

    def stop(self) -> None:
        """Stop following and give the playhead back to the player."""
        was = self.following
        if self._job is not None:
            self._job.cancel()
            self._job = None
        self.timer.stop()
        mic, self.mic = self.mic, None
        if mic is not None:
            mic.stop()
        if self.highlight is not None:
            self.highlight.clear()
        self.playback.drive_playhead(None)
        if was:
            self.following_changed.emit(False)
