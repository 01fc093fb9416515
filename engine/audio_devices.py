"""Sound devices through sounddevice/PortAudio: user-readable reasons for what went wrong.

Task
----
Turn the many ways opening a stream can fail (no PortAudio library, no device at all, device
busy, unplugged, unsupported sample rate) into one short sentence a user understands, for the
player (gui/playback.py), the microphone follower (engine/follow.py) and the CLI; and open /
close microphone streams the same way for the follower and the recorder.
"""
from __future__ import annotations

import numpy as np

from engine.errors import DeviceError


def device_error_reason(exc: BaseException) -> str:
    """A short, user-readable reason from a sounddevice/PortAudio exception."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if "portaudio library not found" in lowered:
        return "the PortAudio library is not installed (libportaudio2)"
    if "error querying device -1" in lowered or "no default" in lowered or "invalid device" in lowered \
            or "no such device" in lowered:
        return "no sound device found"
    if "device unavailable" in lowered or "busy" in lowered:
        return "the sound device is busy (used by another program?)"
    if "invalid sample rate" in lowered:
        return "the sound device does not support this sample rate"
    return text[:200]


def open_microphone(stream_factory, samplerate: float, blocksize: int, callback, device=None):
    """Open and start a mono float32 input stream; :class:`DeviceError` with a readable reason.

    ``stream_factory`` is ``sounddevice.InputStream`` when None (tests pass a fake sound card).
    """
    try:
        if stream_factory is None:
            import sounddevice as sd

            stream_factory = sd.InputStream
        stream = stream_factory(samplerate=samplerate, channels=1, blocksize=blocksize, callback=callback,
                                device=device, dtype="float32")
        stream.start()
    except Exception as exc:  # PortAudioError, OSError (no PortAudio library), ValueError (no device)
        raise DeviceError(None, f"cannot open the microphone: {device_error_reason(exc)}") from None
    return stream


def close_stream(stream) -> None:
    """Stop and close a stream; a device already gone is not an error."""
    if stream is None:
        return
    try:
        stream.stop()
        stream.close()
    except Exception:  # noqa: BLE001 - a device already gone cannot be closed twice
        pass


def mono_block(indata) -> np.ndarray:
    """A float32 copy of a callback's first channel (PortAudio reuses its buffer)."""
    return np.array(indata[:, 0] if np.ndim(indata) == 2 else indata, dtype=np.float32)
