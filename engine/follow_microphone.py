"""Following a live performance from the microphone (sounddevice / PortAudio input).

Task
----
Feed a :class:`engine.follow.ScoreFollower` from an input stream: the audio callback (PortAudio's
thread) only copies each block into a queue; a worker thread runs the follower and reports each
position. No input device, a busy device or a missing PortAudio library raise
:class:`engine.errors.DeviceError` with a readable reason when starting.

Conventions: ``on_position(audio_time_s, midi_time_s)`` is called from the worker thread after
every block; audio time counts the samples received.
"""
from __future__ import annotations

import queue
import threading

import numpy as np

from engine.audio_devices import device_error_reason
from engine.errors import DeviceError


class MicrophoneFollower:
    """A :class:`ScoreFollower` fed by a sounddevice input stream.

    The audio callback only copies samples into a queue; a worker thread feeds the follower and
    calls ``on_position(audio_time_s, midi_time_s)`` after each chunk (from that thread).

    Parameters
    ----------
    follower : engine.follow.ScoreFollower
    on_position : callable(audio_time_s, midi_time_s)
    device : int or str, optional
        A sounddevice input device (default: the system's default input).
    chunk_s : float
        Block size of the input stream.
    stream_factory : callable, optional
        ``stream_factory(samplerate=, channels=, blocksize=, callback=, device=, dtype=)`` returning
        a stream with ``start``/``stop``/``close``; default ``sounddevice.InputStream`` (tests pass
        a fake sound card).
    """

    def __init__(self, follower, on_position, device=None, chunk_s: float = 0.02,
                 stream_factory=None):
        self.follower = follower
        self.on_position = on_position
        self.device = device
        self.blocksize = max(1, int(round(chunk_s * follower.sr)))
        self._factory = stream_factory
        self._queue: queue.Queue = queue.Queue()
        self._stream = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.overflows = 0

    def start(self) -> None:
        """Open the input and start following; raises :class:`DeviceError` when there is no input."""
        self.follower.reset()
        factory = self._factory
        try:
            if factory is None:
                import sounddevice as sd

                factory = sd.InputStream
            self._stream = factory(samplerate=self.follower.sr, channels=1, blocksize=self.blocksize,
                                   callback=self._callback, device=self.device, dtype="float32")
            self._stream.start()
        except Exception as exc:  # PortAudioError, OSError (no PortAudio library), ValueError (no device)
            self._stream = None
            raise DeviceError(None, f"cannot open the microphone: {device_error_reason(exc)}") from None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="score-follower", daemon=True)
        self._thread.start()

    def _callback(self, indata, frames, time_info, status) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        self._queue.put(np.array(indata[:, 0] if np.ndim(indata) == 2 else indata, dtype=np.float32))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                block = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                midi_s = self.follower.push(block)
                self.on_position(self.follower.audio_time_s, midi_s)
            except Exception as exc:  # noqa: BLE001 - report, never die silently
                self.error = exc
                self._stop.set()

    def stop(self) -> None:
        """Close the input and stop the worker thread (safe to call twice)."""
        self._stop.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # noqa: BLE001 - a device already gone cannot be closed twice
                pass
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
