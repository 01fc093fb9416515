"""Following a live performance from the microphone (sounddevice / PortAudio input).

Task
----
Feed a :class:`engine.follow.ScoreFollower` from an input stream: the audio callback (PortAudio's
thread) only copies each block into a queue; a worker thread resamples the block to the
follower's rate and runs the follower, and reports each position. The input is opened at the
device's own default sample rate (many devices refuse 22050 Hz), and the stream is resampled
causally (:class:`StreamResampler`: an anti-aliasing low-pass with state carried across blocks,
then linear interpolation), so the follower sees the same signal whatever the device's rate. No
input device, a busy device or a missing PortAudio library raise
:class:`engine.errors.DeviceError` with a readable reason when starting.

Conventions: ``on_position(audio_time_s, midi_time_s)`` is called from the worker thread after
every block; audio time counts the samples received (at the follower's rate).
"""
from __future__ import annotations

import queue
import threading

import numpy as np

from engine.audio_devices import close_stream, device_error_reason, mono_block, open_microphone
from engine.errors import DeviceError

ANTI_ALIAS_FRACTION = 0.45  # low-pass cut-off before downsampling, as a fraction of the output rate
ANTI_ALIAS_ORDER = 8


class StreamResampler:
    """Resample a stream of blocks from ``sr_in`` to ``sr_out`` Hz, causally and block-size free.

    Downsampling first low-passes at ``ANTI_ALIAS_FRACTION × sr_out`` (a Butterworth filter whose
    state is carried from block to block); output sample ``k`` is the input linearly
    interpolated at ``k × sr_in / sr_out`` input samples. Feeding a signal in blocks of any sizes
    gives the same output as feeding it whole. Work is linear in the block length.

    Parameters
    ----------
    sr_in, sr_out : float
        Rates in Hz.
    """

    def __init__(self, sr_in: float, sr_out: float):
        if sr_in <= 0 or sr_out <= 0:
            raise ValueError("sample rates must be positive")
        self.sr_in, self.sr_out = float(sr_in), float(sr_out)
        self.step = self.sr_in / self.sr_out   # input samples per output sample
        self._sos = None
        if self.sr_in > self.sr_out:
            from scipy.signal import butter

            self._sos = butter(ANTI_ALIAS_ORDER, ANTI_ALIAS_FRACTION * self.sr_out, fs=self.sr_in, output="sos")
        self.reset()

    def reset(self) -> None:
        self._zi = None if self._sos is None else np.zeros((self._sos.shape[0], 2))
        self._n_in = 0       # input samples received
        self._n_out = 0      # output samples produced
        self._last = 0.0     # the newest input sample (index n_in - 1), after filtering

    @property
    def passthrough(self) -> bool:
        return self.sr_in == self.sr_out

    def process(self, x) -> np.ndarray:
        """Resample the next block; returns the output samples it completes (float32)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if self.passthrough or not len(x):
            self._n_in += len(x)
            self._n_out += len(x) if self.passthrough else 0
            return x.astype(np.float32)
        if self._sos is not None:
            from scipy.signal import sosfilt

            x, self._zi = sosfilt(self._sos, x, zi=self._zi)
        first = self._n_in - 1            # index of the sample before this block (the kept one)
        last = self._n_in + len(x) - 1    # index of the newest sample
        k_end = int(np.floor(last / self.step + 1e-9)) + 1  # outputs at positions <= last
        k = np.arange(self._n_out, max(k_end, self._n_out))
        pos = k * self.step - first       # positions in [last kept sample, this block]
        ext = np.concatenate([[self._last], x])
        i = np.minimum(np.floor(pos).astype(np.int64), len(ext) - 1)
        frac = pos - i
        nxt = np.minimum(i + 1, len(ext) - 1)
        out = ext[i] * (1.0 - frac) + ext[nxt] * frac
        self._n_in += len(x)
        self._n_out += len(k)
        self._last = float(x[-1])
        return out.astype(np.float32)


def default_input_samplerate(device=None, query_devices=None) -> float:
    """The default sample rate (Hz) of an input device (``device`` None: the system's default).

    ``query_devices`` is ``sounddevice.query_devices`` unless given (tests pass a fake card's).
    Raises :class:`DeviceError` when there is no such input.
    """
    try:
        if query_devices is None:
            import sounddevice as sd

            query_devices = sd.query_devices
        info = query_devices(device, "input")
        rate = float(info["default_samplerate"])
    except Exception as exc:  # PortAudioError, OSError (no PortAudio library), ValueError (no device)
        raise DeviceError(None, f"cannot open the microphone: {device_error_reason(exc)}") from None
    if not rate > 0:
        raise DeviceError(None, "cannot open the microphone: the input device reports no sample rate")
    return rate


class MicrophoneFollower:
    """A :class:`ScoreFollower` fed by a sounddevice input stream.

    The audio callback only copies samples into a queue; a worker thread resamples them to the
    follower's rate, feeds the follower and calls ``on_position(audio_time_s, midi_time_s)``
    after each block (from that thread).

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
    samplerate : float, optional
        Rate to open the input at; default: the device's default rate, asked from
        ``query_devices`` — or, with a custom ``stream_factory`` and no ``query_devices``, the
        follower's own rate.
    query_devices : callable, optional
        ``query_devices(device, "input") -> {"default_samplerate": ...}`` (default
        ``sounddevice.query_devices``).

    Attributes
    ----------
    samplerate : float or None
        The rate the input was opened at (after :meth:`start`).
    """

    def __init__(self, follower, on_position, device=None, chunk_s: float = 0.02,
                 stream_factory=None, samplerate: float | None = None, query_devices=None):
        self.follower = follower
        self.on_position = on_position
        self.device = device
        self.chunk_s = float(chunk_s)
        self.samplerate = samplerate
        self._requested_rate = samplerate
        self._factory = stream_factory
        self._query = query_devices
        self.blocksize = max(1, int(round(chunk_s * follower.sr)))
        self.resampler: StreamResampler | None = None
        self._queue: queue.Queue = queue.Queue()
        self._stream = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.overflows = 0

    def _input_rate(self) -> float:
        if self._requested_rate:
            return float(self._requested_rate)
        if self._factory is not None and self._query is None:
            return float(self.follower.sr)
        return default_input_samplerate(self.device, self._query)

    def start(self) -> None:
        """Open the input and start following; raises :class:`DeviceError` when there is no input."""
        self.follower.reset()
        rate = self._input_rate()
        self.samplerate = rate
        self.resampler = StreamResampler(rate, self.follower.sr)
        self.blocksize = max(1, int(round(self.chunk_s * rate)))
        while not self._queue.empty():  # blocks left from an earlier run
            self._queue.get_nowait()
        self._stream = open_microphone(self._factory, rate, self.blocksize, self._callback, self.device)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="score-follower", daemon=True)
        self._thread.start()

    def _callback(self, indata, frames, time_info, status) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        self._queue.put(mono_block(indata))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                block = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                samples = self.resampler.process(block)
                if not len(samples):
                    continue
                midi_s = self.follower.push(samples)
                self.on_position(self.follower.audio_time_s, midi_s)
            except Exception as exc:  # noqa: BLE001 - report, never die silently
                self.error = exc
                self._stop.set()

    def stop(self) -> None:
        """Close the input and stop the worker thread (safe to call twice)."""
        self._stop.set()
        stream, self._stream = self._stream, None
        close_stream(stream)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
