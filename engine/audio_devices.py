"""Sound devices through sounddevice/PortAudio: user-readable reasons for what went wrong.

Task
----
Turn the many ways opening a stream can fail (no PortAudio library, no device at all, device
busy, unplugged, unsupported sample rate) into one short sentence a user understands, for the
player (gui/playback.py), the microphone follower (engine/follow.py) and the CLI.
"""
from __future__ import annotations


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
