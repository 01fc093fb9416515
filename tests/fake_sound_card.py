"""A stand-in for the sound card (the one thing the tests may fake): sounddevice-like streams.

Output streams are driven by a simulated clock, deterministic and single-threaded; input streams
(:class:`FakeMicrophone`) play samples into the callback from their own thread, as PortAudio does.

``FakeSoundCard.output_stream`` has the signature of ``sounddevice.OutputStream`` as the player
calls it. The card's DAC really runs at ``sr * (1 + rate_error)`` frames per second of its
clock (real sound cards are a little off their nominal rate) and ``latency_s`` after the
callback; :meth:`FakeSoundCard.heard_sample` says which buffer sample is at the DAC at a given
clock time — the ground truth the playhead must follow.
"""
from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np


class FakeOutputStream:
    def __init__(self, card, samplerate, channels, blocksize, callback, dtype="float32", device=None):
        self.card, self.sr, self.channels, self.blocksize = card, samplerate, channels, blocksize
        self.callback = callback
        self.latency = card.latency_s
        self.started = False
        self.closed = False
        self.next_callback_time = None

    @property
    def time(self) -> float:
        if self.card.unplugged:
            raise RuntimeError("Unanticipated host error")
        return self.card.clock

    @property
    def active(self) -> bool:
        return self.started and not self.card.unplugged

    def start(self):
        self.started = True
        self.next_callback_time = self.card.clock

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True
        self.started = False

    def pump(self, until_s: float) -> None:
        """Run every callback due up to clock time ``until_s``."""
        period = self.blocksize / (self.sr * (1.0 + self.card.rate_error))
        while self.active and self.next_callback_time <= until_s:
            out = np.full((self.blocksize, self.channels), np.nan, dtype=np.float32)
            now = self.next_callback_time
            info = SimpleNamespace(currentTime=now, outputBufferDacTime=now + self.latency, inputBufferAdcTime=0.0)
            self.callback(out, self.blocksize, info, None)
            assert not np.isnan(out).any(), "the callback must fill every frame"
            self.card.blocks.append((now + self.latency, out.copy()))
            self.next_callback_time += period


class FakeSoundCard:
    """See the module docstring. ``fail_with`` makes opening a stream raise that exception."""

    def __init__(self, latency_s: float = 0.08, rate_error: float = 0.0, fail_with: BaseException | None = None):
        self.latency_s, self.rate_error, self.fail_with = latency_s, rate_error, fail_with
        self.clock = 100.0  # PortAudio's clock does not start at 0
        self.unplugged = False
        self.streams: list[FakeOutputStream] = []
        self.blocks: list[tuple[float, np.ndarray]] = []  # (DAC time of the first frame, frames)

    def output_stream(self, **kwargs) -> FakeOutputStream:
        if self.fail_with is not None:
            raise self.fail_with
        stream = FakeOutputStream(self, **kwargs)
        self.streams.append(stream)
        return stream

    def advance(self, seconds: float, step_s: float = 0.01) -> None:
        """Let ``seconds`` of clock time pass, running callbacks as they fall due."""
        end = self.clock + seconds
        while self.clock < end - 1e-12:
            self.clock = min(end, self.clock + step_s)
            for s in self.streams:
                s.pump(self.clock)

    def output(self) -> np.ndarray:
        """Everything written to the card, concatenated (n_frames, 2)."""
        return np.concatenate([b for _, b in self.blocks]) if self.blocks else np.zeros((0, 2), np.float32)

    def heard_frame_index(self, at_s: float) -> int | None:
        """Index into :meth:`output` of the frame at the DAC at clock time ``at_s``."""
        index = 0
        sr = self.streams[-1].sr * (1.0 + self.rate_error)
        for dac, frames in self.blocks:
            if dac <= at_s < dac + len(frames) / sr:
                return index + int((at_s - dac) * sr)
            index += len(frames)
        return None


class FakeInputStream:
    """A sounddevice.InputStream stand-in that plays samples into the callback, block by block, from
    its own thread (as PortAudio calls an input callback)."""

    def __init__(self, samples, samplerate, channels, blocksize, callback, device=None, dtype="float32"):
        self.samples, self.samplerate, self.blocksize, self.callback = samples, samplerate, blocksize, callback
        self._thread = None
        self._running = threading.Event()
        self.closed = False

    def start(self):
        self._running.set()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self):
        for start in range(0, len(self.samples), self.blocksize):
            if not self._running.is_set():
                return
            block = self.samples[start:start + self.blocksize]
            if len(block) < self.blocksize:
                block = np.pad(block, (0, self.blocksize - len(block)))
            self.callback(block[:, None].copy(), self.blocksize, None, None)

    def stop(self):
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self):
        self.closed = True


class FakeMicrophone:
    """An input device that, like many real ones, only opens at its own rate (``native_sr``).

    ``input_stream`` has the signature of ``sounddevice.InputStream``; any other sample rate
    raises PortAudio's "Invalid sample rate" error. ``query_devices`` answers like
    ``sounddevice.query_devices(device, "input")``. ``samples`` (at ``native_sr``) are what the
    microphone hears.
    """

    def __init__(self, samples, native_sr: int = 48000):
        self.samples, self.native_sr = np.asarray(samples, dtype=np.float32), int(native_sr)
        self.streams: list[FakeInputStream] = []
        self.refused: list[float] = []

    def query_devices(self, device=None, kind=None) -> dict:
        return {"name": "Fake microphone", "max_input_channels": 1, "default_samplerate": float(self.native_sr)}

    def input_stream(self, **kwargs) -> FakeInputStream:
        if kwargs.get("samplerate") != self.native_sr:
            self.refused.append(kwargs.get("samplerate"))
            raise RuntimeError("Error opening InputStream: Invalid sample rate [PaErrorCode -9997]")
        stream = FakeInputStream(self.samples, **kwargs)
        self.streams.append(stream)
        return stream


def room_tone(seconds: float, level_dbfs: float, sr: int = 22050, seed: int = 1) -> np.ndarray:
    """Pink noise at ``level_dbfs`` (RMS): the room a microphone hears before the player begins."""
    from engine import synthetic

    return synthetic.gaussian_noise(int(round(seconds * sr)), 10.0 ** (level_dbfs / 10.0),
                                    np.random.default_rng(seed)).astype(np.float32)
