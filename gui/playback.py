"""The player: a PortAudio output stream (sounddevice) and the playhead clock it drives.

Task
----
Play the recording, the synthesized MIDI warped into the recording's time, or both (recording
left, MIDI right, with a balance), with play / pause / stop / seek / loop a selection, at
0.5×-1.5× speed without changing pitch — and say at every moment which audio time is being heard.

This module is Qt-free (an evented model, like :mod:`gui.session`): the Qt controller
(:mod:`gui.transport`) calls :meth:`Player.tick` from a timer and forwards the position to the
session. All audio work happens ahead of time (:mod:`engine.playback_mix`: decoding, the MIDI
synthesized for the mute/solo choice, time-stretch); the audio callback only slices and scales
the prepared buffers (mono, 16-bit: the pan is applied while mixing).

The playhead clock
------------------
The position comes from the stream, not from a wall-clock timer: each callback records which
buffer sample its first frame is and when that frame reaches the DAC
(``time_info.outputBufferDacTime``, in the stream's clock). The playhead at any moment is
``sample_at_dac + (stream.time - dac_time) * sr``, clamped to the block, mapped to audio time.
So it re-anchors on every block and cannot drift from what is heard, however long the piece.

Device trouble (no output device, device busy, unplugged mid-play) never raises out of here: it
becomes a ``message`` event with a clear text, and the player stops or pauses where it was.

Conventions
-----------
Times in seconds of *audio time* (the recording's timeline), whatever the speed; buffers hold
``speed``-stretched audio, so buffer sample ``k`` is audio time ``k * speed / sr``.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from engine.audio_devices import device_error_reason
from engine.playback_mix import channel_gains, mix_block
from gui.session import Event

PLAYBACK_SR = 44100
BLOCKSIZE = 1024
STOPPED, PLAYING, PAUSED = "stopped", "playing", "paused"
STALL_S = 1.0  # no audio block for this long while playing: the device is gone


@dataclass(frozen=True)
class PlaybackProgram:
    """What to play: the two tracks stretched for ``speed`` (either may be None)."""

    recording: np.ndarray | None
    midi: np.ndarray | None
    speed: float = 1.0
    sr: int = PLAYBACK_SR

    @property
    def nbytes(self) -> int:
        """Bytes held by the two buffers (each counted once)."""
        return buffer_bytes(self.recording, self.midi)

    @property
    def n_samples(self) -> int:
        return max(len(self.recording) if self.recording is not None else 0,
                   len(self.midi) if self.midi is not None else 0)

    @property
    def duration_s(self) -> float:
        """Length in audio time."""
        return self.n_samples * self.speed / self.sr

    def sample_of(self, audio_s: float) -> int:
        return int(round(audio_s / self.speed * self.sr))

    def time_of(self, sample: float) -> float:
        return float(sample) * self.speed / self.sr


class PlayerEvents:
    """Events of a :class:`Player` (plain-Python, see :class:`gui.session.Event`)."""

    def __init__(self):
        self.state_changed = Event("state_changed")        # "stopped" | "playing" | "paused"
        self.position_changed = Event("position_changed")  # audio time (s), from tick()
        self.message = Event("message")                    # a user-readable text (device trouble)
        self.program_changed = Event("program_changed")    # PlaybackProgram


class Player:
    """Plays a :class:`PlaybackProgram` through an output stream (see the module docstring).

    Parameters
    ----------
    stream_factory : callable, optional
        ``stream_factory(samplerate=, channels=, blocksize=, callback=, dtype=, device=)`` →
        a stream with ``start()``, ``stop()``, ``close()``, ``time``, ``active``, ``latency``;
        default ``sounddevice.OutputStream``. Tests inject a fake sound card here.
    device : int or str, optional
        Output device (default: the system's default output).
    blocksize : int
    """

    def __init__(self, stream_factory=None, device=None, blocksize: int = BLOCKSIZE):
        self.events = PlayerEvents()
        self._factory = stream_factory
        self.device = device
        self.blocksize = int(blocksize)
        self.program = PlaybackProgram(None, None)
        self.state = STOPPED
        self.source = "recording"
        self.balance = 0.0
        self._gains = channel_gains(self.source, self.balance)
        self._loop: tuple[float, float] | None = None   # audio seconds
        self._loop_samples: tuple[int, int] | None = None
        self._stream = None
        self._lock = threading.Lock()
        # Written by the callback, read by the GUI thread.
        self._next_sample = 0                 # buffer sample the next block starts at
        self._anchors: deque = deque(maxlen=64)  # (generation, dac_time, [(offset, sample, n)...])
        self._generation = 0                  # bumped on every seek / program swap
        self._finished = False
        self._rest_sample = 0                 # where a paused/stopped player stands
        self.underflows = 0

    # -- what to play ------------------------------------------------------------------------
    def set_program(self, program: PlaybackProgram, keep_position: bool = True) -> None:
        """Swap in new buffers (another speed, another mix), continuing at the same audio time."""
        position_s = self.position_s() if keep_position else 0.0
        with self._lock:
            self.program = program
            self._set_loop_samples()
            self._jump_to(program.sample_of(min(position_s, program.duration_s)))
        self.events.program_changed.emit(program)

    def set_source(self, source: str, balance: float | None = None) -> None:
        """Choose "recording", "midi" or "both" (recording left, MIDI right) and the balance."""
        if balance is not None:
            self.balance = float(np.clip(balance, -1.0, 1.0))
        self._gains = channel_gains(source, self.balance)  # one assignment: the callback sees old or new
        self.source = source

    def set_balance(self, balance: float) -> None:
        self.set_source(self.source, balance)

    def set_loop(self, start_s: float | None, end_s: float | None = None) -> None:
        """Loop audio times [start_s, end_s) (None: no loop). A playhead outside jumps in at the next block."""
        with self._lock:
            if start_s is None or end_s is None or end_s - start_s < 0.05:
                self._loop = None
            else:
                self._loop = (float(min(start_s, end_s)), float(max(start_s, end_s)))
            self._set_loop_samples()

    @property
    def loop(self) -> tuple[float, float] | None:
        return self._loop

    def _set_loop_samples(self) -> None:
        if self._loop is None:
            self._loop_samples = None
            return
        a, b = (self.program.sample_of(t) for t in self._loop)
        b = min(b, self.program.n_samples)
        self._loop_samples = (a, b) if b - a > self.blocksize // 4 else None

    # -- transport ---------------------------------------------------------------------------
    def play(self) -> bool:
        """Start (or resume) playing; False (and a message) when there is no usable output device."""
        if self.state == PLAYING:
            return True
        if self.program.n_samples == 0:
            self.events.message.emit("Nothing to play yet (the sound is still being prepared).")
            return False
        with self._lock:
            start = self._rest_sample
            if start >= self.program.n_samples:
                start = 0  # at the end: play from the start again
            if self._loop_samples is not None and not self._loop_samples[0] <= start < self._loop_samples[1]:
                start = self._loop_samples[0]
            self._jump_to(start)
            self._finished = False
        try:
            self._open_stream()
        except Exception as exc:  # noqa: BLE001 - any device problem becomes a message
            self._stream = None
            self.events.message.emit(f"Cannot play: {device_error_reason(exc)}")
            return False
        self._set_state(PLAYING)
        return True

    def pause(self) -> None:
        if self.state != PLAYING:
            return
        self._rest_sample = self.program.sample_of(self.position_s())
        self._close_stream()
        self._set_state(PAUSED)

    def toggle(self) -> bool:
        """Space bar: play when paused or stopped, pause when playing. Returns True if playing now."""
        if self.state == PLAYING:
            self.pause()
            return False
        return self.play()

    def stop(self) -> None:
        """Stop and go back to the start of the loop (or of the piece)."""
        self._close_stream()
        with self._lock:
            self._rest_sample = self._loop_samples[0] if self._loop_samples else 0
            self._jump_to(self._rest_sample)
        if self.state != STOPPED:
            self._set_state(STOPPED)
        self.events.position_changed.emit(self.position_s())

    def seek(self, audio_s: float) -> None:
        """Jump to an audio time (playing on from there if playing)."""
        audio_s = float(np.clip(audio_s, 0.0, max(self.program.duration_s, 0.0)))
        with self._lock:
            self._rest_sample = self.program.sample_of(audio_s)
            self._jump_to(self._rest_sample)
            self._finished = False
        self.events.position_changed.emit(audio_s)

    def _jump_to(self, sample: int) -> None:
        """(lock held) The next block starts at ``sample``; older anchors no longer count."""
        self._generation += 1
        self._next_sample = int(sample)
        self._rest_sample = int(sample)

    # -- the clock ---------------------------------------------------------------------------
    def position_s(self) -> float:
        """The audio time being heard now (from the stream's clock), or where the player stands."""
        stream = self._stream
        if stream is None or self.state != PLAYING:
            return self.program.time_of(self._rest_sample)
        try:
            now = float(stream.time)
        except Exception:  # noqa: BLE001 - a stream that died; tick() reports it
            return self.program.time_of(self._rest_sample)
        generation = self._generation
        anchors = [a for a in list(self._anchors) if a[0] == generation]
        if not anchors:
            return self.program.time_of(self._rest_sample)
        heard = [a for a in anchors if a[1] <= now]
        if not heard:  # the first block of this generation is not audible yet
            _, _, segments, _ = anchors[0]
            return self.program.time_of(segments[0][1])
        _, dac, segments, n_frames = heard[-1]
        offset = min(max((now - dac) * self.program.sr, 0.0), n_frames - 1e-6)
        for seg_offset, sample, n in reversed(segments):
            if offset >= seg_offset:
                return self.program.time_of(sample + min(offset - seg_offset, n))
        return self.program.time_of(segments[0][1])

    def tick(self) -> float:
        """Called by the GUI timer: notices the end of the piece and dead devices, emits the position."""
        if self.state == PLAYING:
            stream = self._stream
            dead = stream is None or not getattr(stream, "active", True) or self._stalled()
            if self._finished and self._all_heard():
                self._close_stream()
                self._rest_sample = self.program.n_samples
                self._set_state(STOPPED)
            elif dead and not self._finished:
                self._rest_sample = self.program.sample_of(self._last_known_position())
                self._close_stream()
                self._set_state(PAUSED)
                self.events.message.emit("Playback stopped: the output device went away (unplugged?). "
                                         "Press play to continue on the current default device.")
        position = self.position_s()
        self.events.position_changed.emit(position)
        return position

    def _stalled(self) -> bool:
        """The stream's clock runs (or fails) but no block came for a second: the device is gone."""
        try:
            now = float(self._stream.time)
        except Exception:  # noqa: BLE001 - PortAudio errors out on a vanished device
            return True
        anchors = list(self._anchors)
        if not anchors:
            return False
        _, dac, _, n_frames = anchors[-1]
        return now > dac + n_frames / self.program.sr + STALL_S

    def _all_heard(self) -> bool:
        anchors = list(self._anchors)
        if not anchors:
            return True
        try:
            now = float(self._stream.time)
        except Exception:  # noqa: BLE001
            return True
        _, dac, _, n_frames = anchors[-1]
        return now >= dac + n_frames / self.program.sr

    def _last_known_position(self) -> float:
        anchors = [a for a in list(self._anchors) if a[0] == self._generation]
        if not anchors:
            return self.program.time_of(self._rest_sample)
        _, _, segments, _ = anchors[-1]
        return self.program.time_of(segments[-1][1] + segments[-1][2])

    # -- the stream ---------------------------------------------------------------------------
    def _open_stream(self) -> None:
        factory = self._factory
        if factory is None:
            import sounddevice as sd

            factory = sd.OutputStream
        self._anchors.clear()
        stream = factory(samplerate=self.program.sr, channels=2, blocksize=self.blocksize, callback=self._callback,
                         dtype="float32", device=self.device)
        try:
            stream.start()
        except Exception:
            stream.close()
            raise
        self._stream = stream

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.stop()
        except Exception:  # noqa: BLE001 - an unplugged device may fail to stop; close anyway
            pass
        try:
            stream.close()
        except Exception:  # noqa: BLE001
            pass

    def _callback(self, outdata, frames, time_info, status) -> None:
        """The audio callback (PortAudio's thread): fill ``outdata`` and record the clock anchor."""
        if status and getattr(status, "output_underflow", False):
            self.underflows += 1
        program, gains, generation = self.program, self._gains, self._generation
        loop = self._loop_samples
        sample = self._next_sample
        segments, written = [], 0
        total = program.n_samples
        while written < frames:
            if loop is not None and sample >= loop[1]:
                sample = loop[0]
            end = loop[1] if loop is not None and sample < loop[1] else total
            n = min(frames - written, end - sample)
            if n <= 0:
                outdata[written:] = 0.0
                self._finished = True
                break
            mix_block(program.recording, program.midi, sample, outdata[written:written + n], gains)
            segments.append((written, sample, n))
            written += n
            sample += n
        dac = float(getattr(time_info, "outputBufferDacTime", 0.0) or 0.0)
        if dac <= 0.0:  # some host APIs leave it 0: estimate from the stream's clock and latency
            current = float(getattr(time_info, "currentTime", 0.0) or 0.0)
            dac = current + float(getattr(self._stream, "latency", 0.0) or 0.0)
        with self._lock:  # short and uncontended: the GUI thread only holds it to seek
            if generation != self._generation:
                return  # a seek happened meanwhile: this block's position is already stale
            self._next_sample = sample
            if segments:
                self._anchors.append((generation, dac, segments, frames))

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.events.state_changed.emit(state)

    def close(self) -> None:
        """Release the device (the window is closing)."""
        self._close_stream()
        self.state = STOPPED


# ---- preparing the sound (run on a worker thread: engine calls only, no Qt) ---------------------

@dataclass(frozen=True)
class PreparedSound:
    """The recording and the warped MIDI at the playback rate, unstretched, mono int16.

    ``midi`` is the instruments in ``active`` synthesized together (None until the MIDI is
    synthesized, or when nothing is heard); ``instrument_names`` lists every instrument of the
    warped MIDI (empty until it is synthesized), for mute/solo; ``stems`` holds each instrument's
    own track when they fit (:class:`engine.playback_mix.InstrumentStems`: mute/solo mixes them).
    """

    recording: np.ndarray | None
    midi: np.ndarray | None = None
    instrument_names: list = field(default_factory=list)
    sr: int = PLAYBACK_SR
    active: tuple = ()              # indices of the instruments heard in ``midi``
    warped_midi: object = None      # the PrettyMIDI synthesized (kept to re-synthesize on mute/solo)
    stems: object = None            # InstrumentStems, or None (too long to keep, or not made yet)

    @property
    def nbytes(self) -> int:
        """Bytes held by the sample buffers."""
        return buffer_bytes(self.recording, self.midi, None if self.stems is None else self.stems.tracks)


def buffer_bytes(*tracks) -> int:
    """Bytes held by sample buffers, each counted once (a view counts as its base's buffer)."""
    seen, total = set(), 0
    for track in tracks:
        if track is None:
            continue
        base = track if track.base is None else track.base
        if id(base) not in seen:
            seen.add(id(base))
            total += base.nbytes
    return total


def load_recording(audio_path, sr: int = PLAYBACK_SR, progress=None, cancel=None) -> PreparedSound:
    """Decode the recording for playback (worker thread). Raises ``AudioError`` for bad files."""
    from engine.playback_mix import decode_recording
    from gui.app import release_free_heap

    release_free_heap()  # what the alignment freed, before the sound takes its place
    return PreparedSound(decode_recording(audio_path, sr, cancel=cancel), sr=sr)


def synthesize_warped_midi(alignment, sound: PreparedSound, muted=(), soloed=(), soundfont=None, progress=None,
                           cancel=None) -> PreparedSound:
    """Add the MIDI warped into the recording's time: the instruments heard under the mute/solo
    choice in one track (worker thread). The first time, every instrument is synthesized on its
    own track when they fit (:func:`engine.playback_mix.synthesize_stems`); a mute/solo change
    then sums the heard tracks, else it synthesizes the heard instruments again."""
    from engine.playback_mix import active_instruments, synthesize_instruments, synthesize_stems

    first = sound.warped_midi is None
    warped = alignment.warped_midi() if first else sound.warped_midi
    active = active_instruments(len(warped.instruments), muted, soloed)
    if progress is not None:
        progress(0.0, "synthesizing the aligned MIDI")
    stems = synthesize_stems(warped, sound.sr, soundfont=soundfont, cancel=cancel) if first else sound.stems
    if stems is not None and stems.can_mix(active):
        midi = stems.mix(active)
    else:
        midi = synthesize_instruments(warped, sound.sr, active, soundfont=soundfont, cancel=cancel)
    names = [inst.name.strip() or f"Instrument {i + 1}" for i, inst in enumerate(warped.instruments)]
    return PreparedSound(sound.recording, midi, names, sound.sr, active, warped, stems)


def stretch_recording(sound: PreparedSound, speed: float, progress=None, cancel=None) -> tuple:
    """``(speed, the recording time-stretched for it)`` (worker thread); the recording does not
    change with mute/solo, so one stretch per speed serves every MIDI track."""
    from engine.playback_mix import time_stretch

    return float(speed), time_stretch(sound.recording, speed, progress=progress, cancel=cancel)


def render_program(sound: PreparedSound, speed: float = 1.0, stretched_recording=None, progress=None,
                   cancel=None) -> PlaybackProgram:
    """Time-stretch both tracks for ``speed`` (worker thread; at 1× the buffers are used as they are).

    ``stretched_recording`` may pass the recording already stretched for this speed (it does not
    change with mute/solo), which saves the longest step.
    """
    from engine.playback_mix import time_stretch

    recording, midi = sound.recording, sound.midi
    if abs(speed - 1.0) > 1e-6:
        if stretched_recording is not None:
            recording = stretched_recording
        elif recording is not None:
            recording = time_stretch(recording, speed, progress=progress, cancel=cancel)
        if midi is not None:
            midi = time_stretch(midi, speed, cancel=cancel)
    return PlaybackProgram(recording, midi, float(speed), sound.sr)
