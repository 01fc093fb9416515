"""Playback in the window: the controller between player and session, and the transport bar.

Task
----
:class:`PlaybackController` (a QObject, no widgets) keeps a :class:`gui.playback.Player` in step
with the :class:`gui.session.Session`: when a pair is shown it prepares the sound on background
jobs (decode the recording; synthesize the warped MIDI, each instrument on its own track when
they fit, so that a mute/solo change mixes the heard ones — else synthesized again; time-stretch
the recording once per speed, the MIDI for each change) and swaps it into the
player; a timer reads the player's stream clock and moves ``session.playhead_s``; the views
follow the playhead page by page or continuously. :class:`gui.transport_bar.TransportBar` is the
toolbar of buttons that drive it, and :func:`gui.transport_bar.install_playback` puts both into a
main window.

Device trouble and bad files arrive as ``message(str)`` — the transport shows it next to the
buttons; nothing raises into Qt.

Conventions: times in seconds of audio time; the controller never computes audio itself (it
submits :mod:`gui.playback`'s worker functions, which call the engine).
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from engine.playback_mix import MAX_SPEED, MIN_SPEED
from gui.playback import (PLAYING, STOPPED, PlaybackProgram, Player, PreparedSound, load_recording,
                          render_program, stretch_recording, synthesize_warped_midi)
from gui.session import Session

TICK_MS = 30
FOLLOW_MODES = ("page", "continuous", "off")
CONTINUOUS_ANCHOR = 0.3   # continuous follow keeps the playhead at this fraction of the view
PAGE_MARGIN = 0.02        # page follow turns the page when the playhead is this close to the edge


class PlaybackController(QObject):
    """Player ↔ session (see the module docstring).

    Parameters
    ----------
    session : Session
    runner : gui.workers.JobRunner
        Where the sound is prepared.
    player : Player, optional
        Default: a player on the system's default output (tests pass one on a fake sound card).
    """

    message = Signal(str)
    state_changed = Signal(str)       # "stopped" | "playing" | "paused"
    sound_changed = Signal(object)    # PreparedSound (instrument names for mute/solo)
    busy_changed = Signal(str)        # what is being prepared ("" when idle)

    def __init__(self, session: Session, runner, player: Player | None = None, parent=None):
        super().__init__(parent)
        self.session = session
        self.runner = runner
        self.player = None
        self.set_player(player or Player())
        self.follow_mode = "page"
        self.speed = 1.0
        self.muted: set[int] = set()
        self.soloed: set[int] = set()
        self.sound: PreparedSound | None = None
        self._stretched_recording: tuple | None = None  # (speed, buffer) for the current recording only
        self._stretching_speed: float | None = None     # of the recording's stretch job in flight
        self._jobs: dict[str, object] = {}
        self._external_position = None   # callable → audio time, when something else drives the playhead
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.tick)
        self.timer.start()
        session.events.pair_changed.connect(self._on_pair_changed)
        if session.pair is not None:
            self._on_pair_changed(session.pair)

    def set_player(self, player: Player) -> None:
        """Use another player (another output device, or a test's fake sound card); the sound,
        source and loop carry over, the old player is released."""
        old, self.player = self.player, player
        player.events.message.connect(self.message.emit)
        player.events.state_changed.connect(self._on_player_state)
        if old is not None:
            old.close()
            player.set_source(old.source, old.balance)
            player.set_program(old.program, keep_position=False)
            player.set_loop(*(old.loop or (None, None)))

    # -- preparing the sound ------------------------------------------------------------------
    def _submit(self, key: str, fn, *args, on_done, label: str, **kwargs):
        old = self._jobs.pop(key, None)
        if old is not None and not old.done:
            old.cancel()
        job = self.runner.submit(fn, *args, name=f"playback:{key}", **kwargs)
        self._jobs[key] = job
        self.busy_changed.emit(label)
        job.succeeded.connect(lambda result, j=job: self._job_done(key, j) and on_done(result))
        job.failed.connect(lambda exc, j=job: self._job_done(key, j) and self._report(exc))
        job.cancelled.connect(lambda j=job: self._job_done(key, j))
        return job

    def _report(self, exc: BaseException) -> None:
        text = _error_text(exc)
        if text:
            self.message.emit(text)

    def _job_done(self, key: str, job) -> bool:
        """Forget a finished job; False when it was superseded (its result must be ignored)."""
        if self._jobs.get(key) is not job:
            return False
        del self._jobs[key]
        if not self._jobs:
            self.busy_changed.emit("")
        return True

    def _on_pair_changed(self, pair) -> None:
        self.player.stop()
        self.player.set_program(PlaybackProgram(None, None), keep_position=False)
        self.player.set_loop(None)
        self.sound = None
        self._stretched_recording = self._stretching_speed = None
        self.muted.clear()
        self.soloed.clear()
        for job in self._jobs.values():
            job.cancel()
        self._jobs.clear()
        self.busy_changed.emit("")
        if pair is None or not pair.aligned:  # a preview: the sound is prepared for the aligned pair
            return
        self._submit("recording", load_recording, pair.audio_path, on_done=self._on_recording_loaded,
                     label="decoding the recording")

    def _on_recording_loaded(self, sound: PreparedSound) -> None:
        self._set_sound(sound)
        self._synthesize_midi()

    def _synthesize_midi(self) -> None:
        """The MIDI track for the current mute/solo choice: synthesized (each instrument on its own
        track when they fit) for a new pair, then mixed from those tracks or synthesized again."""
        pair = self.session.pair
        if pair is None or self.sound is None:
            return
        self._submit("midi", synthesize_warped_midi, pair.alignment, self.sound, set(self.muted), set(self.soloed),
                     on_done=self._set_sound, label="synthesizing the aligned MIDI")

    def _set_sound(self, sound: PreparedSound) -> None:
        old, self.sound = self.sound, sound
        if old is None or old.instrument_names != sound.instrument_names:
            self.sound_changed.emit(sound)  # not after a mute/solo re-synthesis: the menu stays as it is
        self._render()

    def _render(self) -> None:
        """Stretch the current sound for the current speed (jobs), then swap it in; at 1× the
        prepared buffers are played as they are. The recording is stretched once per speed, in its
        own job (a mute/solo change or the MIDI arriving does not start it over); the MIDI after it."""
        if self.sound is None:
            return
        if abs(self.speed - 1.0) < 1e-6:
            for key in ("stretch_recording", "render"):
                old = self._jobs.get(key)
                if old is not None:
                    old.cancel()
                    self._job_done(key, old)
            self._stretched_recording = None  # played as it is: no stretched copy held
            self._apply_program(PlaybackProgram(self.sound.recording, self.sound.midi, 1.0, self.sound.sr))
            return
        cached = self._stretched_recording
        if cached is None or abs(cached[0] - self.speed) > 1e-6:
            if "stretch_recording" not in self._jobs or abs(self._stretching_speed - self.speed) > 1e-6:
                self._stretching_speed = self.speed
                self._submit("stretch_recording", stretch_recording, self.sound, self.speed,
                             on_done=self._on_recording_stretched, label=f"preparing {self.speed:g}× playback")
            return  # the MIDI is stretched once the recording is
        self._submit("render", render_program, self.sound, self.speed, cached[1], on_done=self._apply_program,
                     label=f"preparing {self.speed:g}× playback")

    def _on_recording_stretched(self, stretched: tuple) -> None:
        if abs(stretched[0] - self.speed) < 1e-6:
            self._stretched_recording = stretched  # one stretched recording (this speed's) is kept
            self._render()

    def _apply_program(self, program: PlaybackProgram) -> None:
        if abs(program.speed - self.speed) > 1e-6:
            return  # the speed changed again meanwhile; a newer render is coming
        self.player.set_program(program)

    # -- transport ----------------------------------------------------------------------------
    def toggle_play(self) -> None:
        if self._external_position is not None:
            self.message.emit("Stop following the microphone to play.")
            return
        self.player.toggle()

    def play(self) -> None:
        if self.player.state != PLAYING:
            self.toggle_play()

    def pause(self) -> None:
        self.player.pause()

    def stop(self) -> None:
        self.player.stop()
        self.session.playhead_s = self.player.position_s() if self.session.pair is not None else None

    def seek(self, audio_s: float) -> None:
        if self.session.pair is None or self._external_position is not None:
            return
        self.player.seek(audio_s)
        self.session.playhead_s = self.player.position_s()

    def set_speed(self, speed: float) -> None:
        speed = float(min(max(speed, MIN_SPEED), MAX_SPEED))
        if abs(speed - self.speed) < 1e-6:
            return
        self.speed = speed
        self._render()

    def set_source(self, source: str) -> None:
        self.player.set_source(source)

    def set_balance(self, balance: float) -> None:
        self.player.set_balance(balance)

    def set_loop_selection(self, on: bool) -> bool:
        """Loop the session's selection (False, with a message, when nothing is selected)."""
        selection = self.session.selection_s
        if on and selection is None:
            self.message.emit("Select a time range first (Shift+drag or right-drag in a view), then loop it.")
            self.player.set_loop(None)
            return False
        self.player.set_loop(*(selection if on else (None, None)))
        return on

    def set_instrument(self, index: int, muted: bool | None = None, soloed: bool | None = None) -> None:
        """Mute or solo one MIDI instrument (the MIDI track is mixed from the instruments' own tracks,
        or synthesized again when those were too long to keep, in the background; the current one
        plays on meanwhile)."""
        for flag, group in ((muted, self.muted), (soloed, self.soloed)):
            if flag is True:
                group.add(index)
            elif flag is False:
                group.discard(index)
        if self.sound is not None and (self.sound.instrument_names or "midi" in self._jobs):
            self._synthesize_midi()

    def set_follow_mode(self, mode: str) -> None:
        if mode not in FOLLOW_MODES:
            raise ValueError(f"follow mode must be one of {FOLLOW_MODES}")
        self.follow_mode = mode

    def drive_playhead(self, position=None) -> None:
        """Let something else move the playhead (the live follower): ``position()`` → audio time or None."""
        if position is not None and self.player.state == PLAYING:
            self.player.pause()
        self._external_position = position

    # -- the clock ----------------------------------------------------------------------------
    def tick(self) -> None:
        """Timer: read the stream clock (or the live follower), move the playhead, follow it."""
        if self.session.pair is None:
            return
        if self._external_position is not None:
            t = self._external_position()
            if t is not None:
                self.session.playhead_s = t
                self._follow(t)
            return
        if self.player.state == STOPPED and self.session.playhead_s is None:
            return
        t = self.player.tick()
        self.session.playhead_s = t
        if self.player.state == PLAYING:
            self._follow(t)

    def _follow(self, t: float) -> None:
        start, end = self.session.view_range_s
        span = end - start
        if self.follow_mode == "continuous":
            self.session.set_view_range(t - CONTINUOUS_ANCHOR * span, t + (1 - CONTINUOUS_ANCHOR) * span)
        elif self.follow_mode == "page" and not (start <= t <= end - PAGE_MARGIN * span):
            self.session.set_view_range(t - PAGE_MARGIN * span, t + (1 - PAGE_MARGIN) * span)

    def _on_player_state(self, state: str) -> None:
        self.state_changed.emit(state)

    def shutdown(self) -> None:
        """Release the sound device and cancel preparation (the window is closing)."""
        self.timer.stop()
        for job in self._jobs.values():
            job.cancel()
        self.player.close()


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, InterruptedError):
        return ""
    path = getattr(exc, "path", None)
    reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
    return f"Cannot prepare playback: {path + ': ' if path else ''}{reason}"
