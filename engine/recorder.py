"""Recording a clip from the microphone (sounddevice / PortAudio input) and saving it as WAV.

Task
----
Capture a short query clip for piece identification (the Identify panel): open an input
stream, keep every block the sound card delivers until :meth:`MicrophoneRecorder.stop` or until
``max_s`` seconds were received, and write the result as a WAV file that the rest of the engine
(identification, alignment) reads like any other recording.

Conventions
-----------
- Mono float32 samples at ``sr`` (22050 Hz by default: what :mod:`engine.embed` works at).
- The audio callback (PortAudio's thread) only copies blocks into a list; it stops keeping
  samples once ``max_s`` is reached, and the owner notices through :attr:`full`.
- No input device, a busy device or a missing PortAudio library raise
  :class:`engine.errors.DeviceError` with a readable reason when starting
  (:func:`engine.audio_devices.device_error_reason`), as :mod:`engine.follow_microphone` does.
- Elapsed time is counted in received samples (the sound card's clock), not wall time.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from engine.audio_devices import close_stream, mono_block, open_microphone
from engine.errors import AudioError

DEFAULT_SR = 22050


class MicrophoneRecorder:
    """Collects microphone input until stopped or ``max_s`` seconds long.

    Parameters
    ----------
    sr : int
        Sample rate asked of the input stream.
    max_s : float, optional
        Stop keeping samples after this many seconds (None: no limit).
    device : int or str, optional
        A sounddevice input device (default: the system's default input).
    chunk_s : float
        Block size of the input stream.
    stream_factory : callable, optional
        ``stream_factory(samplerate=, channels=, blocksize=, callback=, device=, dtype=)`` returning
        a stream with ``start``/``stop``/``close``; default ``sounddevice.InputStream`` (tests pass
        a fake sound card).
    """

    def __init__(self, sr: int = DEFAULT_SR, max_s: float | None = 30.0, device=None, chunk_s: float = 0.05,
                 stream_factory=None):
        self.sr = int(sr)
        self.max_samples = None if max_s is None else int(round(max_s * self.sr))
        self.device = device
        self.blocksize = max(1, int(round(chunk_s * self.sr)))
        self._factory = stream_factory
        self._stream = None
        self._blocks: list[np.ndarray] = []
        self._n_samples = 0
        self._lock = threading.Lock()
        self.overflows = 0

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the input and start keeping samples; raises :class:`DeviceError` when there is none."""
        self.stop()
        with self._lock:
            self._blocks, self._n_samples = [], 0
        self._stream = open_microphone(self._factory, self.sr, self.blocksize, self._callback, self.device)

    def stop(self) -> np.ndarray:
        """Close the input (safe to call twice) and return what was recorded."""
        stream, self._stream = self._stream, None
        close_stream(stream)
        return self.samples()

    # -- state -------------------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._stream is not None

    @property
    def elapsed_s(self) -> float:
        """Seconds of audio received so far."""
        return self._n_samples / self.sr

    @property
    def full(self) -> bool:
        """True once ``max_s`` seconds were received (the owner should stop)."""
        return self.max_samples is not None and self._n_samples >= self.max_samples

    def samples(self) -> np.ndarray:
        """A copy of the samples recorded so far (mono float32)."""
        with self._lock:
            blocks = list(self._blocks)
        y = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        return y[: self.max_samples] if self.max_samples is not None else y

    def _callback(self, indata, frames, time_info, status) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        if self.full:
            return
        block = mono_block(indata)
        with self._lock:
            self._blocks.append(block)
            self._n_samples += len(block)


def write_recording(samples: np.ndarray, sr: int, folder, stem: str = "recording") -> Path:
    """Write mono ``samples`` as a 16-bit WAV ``<stem>-<date>-<time>.wav`` in ``folder`` (created).

    Raises :class:`engine.errors.AudioError` when nothing was recorded or the file cannot be written.
    """
    import soundfile as sf

    folder = Path(folder)
    y = np.asarray(samples, dtype=np.float32)
    if len(y) == 0:
        raise AudioError(folder, "nothing was recorded (no input from the microphone)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        path, k = folder / f"{base}.wav", 1
        while path.exists():  # two recordings within one second
            k += 1
            path = folder / f"{base}-{k}.wav"
        sf.write(str(path), np.clip(y, -1.0, 1.0), int(sr), subtype="PCM_16")
    except OSError as exc:
        raise AudioError(folder, f"cannot write the recording: {exc.strerror or exc}") from None
    return path
