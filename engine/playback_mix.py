"""Buffers for playback: time-stretching, per-instrument stems, mixing, stereo balance.

Task
----
Everything the player needs computed *ahead of time* (never in the audio callback), plus the
one cheap operation the callback does per block (:func:`mix_block`: slice two buffers, scale,
add):

- :func:`time_stretch` — play 0.5×-1.5× as fast without changing pitch (librosa's phase vocoder);
- :func:`instrument_stems` — the MIDI warped into the recording's time, synthesized with
  FluidSynth one instrument at a time, so instruments can be muted or soloed without
  re-synthesizing;
- :func:`stem_gains` / :func:`mix_stems` — mute/solo → one MIDI track;
- :func:`channel_gains` — which source goes to which ear: the recording, the MIDI, or both
  (recording left, MIDI right, with a balance between them).

Conventions
-----------
- ``sr`` in Hz; buffers are mono float32 (stems float16 to halve their memory), one sample per
  frame of the output stream.
- ``speed`` > 1 plays faster: a buffer stretched for ``speed`` is ``1 / speed`` as long, and its
  sample ``k`` holds audio time ``k * speed / sr``.
"""
from __future__ import annotations

import copy

import numpy as np

SOURCES = ("recording", "midi", "both")
MIN_SPEED, MAX_SPEED = 0.5, 1.5


def time_stretch(y: np.ndarray, speed: float) -> np.ndarray:
    """``y`` played ``speed`` times as fast, same pitch (phase vocoder; ``speed`` = 1 returns ``y``).

    Parameters
    ----------
    y : np.ndarray
        Mono samples.
    speed : float
        In [0.5, 1.5].

    Returns
    -------
    np.ndarray, float32, about ``len(y) / speed`` samples.
    """
    if not MIN_SPEED - 1e-9 <= speed <= MAX_SPEED + 1e-9:
        raise ValueError(f"speed must be within {MIN_SPEED}-{MAX_SPEED}, not {speed}")
    y = np.asarray(y, dtype=np.float32)
    if abs(speed - 1.0) < 1e-6 or len(y) == 0:
        return y
    import librosa

    out = librosa.effects.time_stretch(y, rate=float(speed))
    return np.asarray(out, dtype=np.float32)


def instrument_stems(midi, sr: int, soundfont=None, progress=None, cancel=None) -> list[np.ndarray]:
    """Synthesize each instrument of ``midi`` on its own (FluidSynth), all the same length.

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI
        E.g. ``Alignment.warped_midi()`` (notes in the recording's time).
    sr : int
    soundfont : str or Path, optional
    progress : callable(fraction, message), optional
    cancel : callable() -> bool, optional
        Checked between instruments; when True, ``InterruptedError`` is raised.

    Returns
    -------
    list of np.ndarray, float16, one per instrument (silent for instruments without notes).
    """
    from engine.media import synthesize

    stems = []
    for i, inst in enumerate(midi.instruments):
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        if progress is not None:
            progress(i / max(len(midi.instruments), 1), f"synthesizing {inst.name or f'instrument {i + 1}'}")
        if not inst.notes:
            stems.append(np.zeros(0, dtype=np.float16))
            continue
        single = copy.copy(midi)
        single.instruments = [inst]
        stems.append(synthesize(single, sr=sr, soundfont=soundfont).astype(np.float16))
    n = max((len(s) for s in stems), default=0)
    return [np.pad(s, (0, n - len(s))) for s in stems]


def stem_gains(n_stems: int, muted=(), soloed=()) -> np.ndarray:
    """Gain (0 or 1) of each stem: soloed stems only if any are soloed, minus the muted ones."""
    gains = np.ones(n_stems, dtype=np.float32)
    if soloed:
        gains[:] = 0.0
        gains[[i for i in soloed if 0 <= i < n_stems]] = 1.0
    gains[[i for i in muted if 0 <= i < n_stems]] = 0.0
    return gains


def mix_stems(stems, gains) -> np.ndarray:
    """Sum of ``stems`` scaled by ``gains`` (float32; empty when there are no stems)."""
    if not stems:
        return np.zeros(0, dtype=np.float32)
    out = np.zeros(len(stems[0]), dtype=np.float32)
    for stem, g in zip(stems, gains):
        if g:
            out += g * stem.astype(np.float32)
    return out


def channel_gains(source: str, balance: float = 0.0) -> np.ndarray:
    """Gains ``[[rec_left, rec_right], [midi_left, midi_right]]`` for a source choice.

    Parameters
    ----------
    source : {"recording", "midi", "both"}
        "both" puts the recording on the left and the MIDI on the right.
    balance : float in [-1, 1]
        For "both": -1 only the recording, 0 both at full level, +1 only the MIDI.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    b = float(np.clip(balance, -1.0, 1.0))
    if source == "recording":
        return np.array([[1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    if source == "midi":
        return np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    return np.array([[min(1.0, 1.0 - b), 0.0], [0.0, min(1.0, 1.0 + b)]], dtype=np.float32)


def mix_block(recording, midi, start: int, out: np.ndarray, gains: np.ndarray) -> None:
    """Write ``out.shape[0]`` stereo frames from sample ``start`` of the two tracks into ``out``.

    Cheap enough for the audio callback: slicing, two scaled adds per channel. Either track may be
    None or shorter than the block (the rest is silence).
    """
    n = out.shape[0]
    out[:] = 0.0
    for track, (g_left, g_right) in ((recording, gains[0]), (midi, gains[1])):
        if track is None or (g_left == 0.0 and g_right == 0.0) or start >= len(track):
            continue
        seg = track[start:start + n]
        m = len(seg)
        if g_left:
            out[:m, 0] += g_left * seg
        if g_right:
            out[:m, 1] += g_right * seg
    np.clip(out, -1.0, 1.0, out=out)
