"""Buffers for playback: decoding, time-stretching, the MIDI synthesized per mute/solo choice,
stereo balance, and the mixing the audio callback does.

Task
----
Everything the player needs computed *ahead of time* (never in the audio callback), plus the
one cheap operation the callback does per block (:func:`mix_block`: slice two buffers, scale,
add):

- :func:`decode_recording` — the recording at the playback rate in 16-bit mono, filled block by
  block (:func:`engine.media.audio_blocks`): no full-length float copy;
- :func:`synthesize_stems` / :class:`InstrumentStems` — the MIDI warped into the recording's
  time, each instrument on its own 16-bit track (one FluidSynth pass, block by block,
  :class:`engine.media.StemRenderer`) while they fit in :data:`STEMS_MAX_BYTES` (48 MB: 2.3 minutes
  of a quartet at 44.1 kHz): a mute/solo change then only sums the heard tracks, at once;
- :func:`synthesize_instruments` — otherwise (a long piece with many parts) the heard instruments
  (:func:`active_instruments`: mute/solo) synthesized together into one 16-bit track, synthesized
  again on each mute/solo change (seconds), so memory holds one MIDI track whatever the number of
  instruments;
- :func:`time_stretch` — play 0.5×-1.5× as fast without changing pitch (:mod:`engine.stretch`:
  a phase vocoder streamed in blocks, so the stretch needs its result plus a few MB);
- :func:`channel_gains` — which source goes to which ear: the recording, the MIDI, or both
  (recording left, MIDI right, with a balance between them). The pan is applied here, when
  mixing: the buffers stay mono.

Memory: a prepared five-minute piece at 44.1 kHz is two 16-bit mono tracks (2 × 26 MB), plus
two more stretched ones (``1 / speed`` as long) when the speed is not 1.

Conventions
-----------
- ``sr`` in Hz; buffers are mono, int16 (full scale 32768; :func:`to_float32` reads them) or
  float32, one sample per frame of the output stream.
- ``speed`` > 1 plays faster: a buffer stretched for ``speed`` is ``1 / speed`` as long, and its
  sample ``k`` holds audio time ``k * speed / sr``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from engine.streaming import INT16_SCALE, to_int16

SOURCES = ("recording", "midi", "both")
MIN_SPEED, MAX_SPEED = 0.5, 1.5
SYNTH_TAIL_S = 1.0              # release tails after the MIDI's last event (as engine.media.synthesize)
# Per-instrument tracks are kept (instant mute/solo) while they fit in this: a couple of minutes of
# a quartet. Longer pieces re-synthesize on mute/solo (seconds), keeping the window's peak memory
# under its target (issue 3: 600 MB for a 5-minute pair; 128 MB of stems took it to 691 MB).
STEMS_MAX_BYTES = 48 << 20


def to_float32(track: np.ndarray | None) -> np.ndarray | None:
    """A playback buffer as float32 in [-1, 1] (int16 is scaled; float32 is returned as is)."""
    if track is None:
        return None
    if track.dtype == np.int16:
        return track.astype(np.float32) / np.float32(INT16_SCALE)
    return np.asarray(track, dtype=np.float32)


def decode_recording(path, sr: int, cancel=None) -> np.ndarray:
    """The recording at ``sr`` Hz, mono int16, filled a block at a time from
    :func:`engine.media.audio_blocks` (decoded, mixed down and resampled block by block): no
    float copy of the whole recording is ever made.

    Raises
    ------
    AudioError
        Naming the file, when it cannot be read or decoded.
    InterruptedError
        When ``cancel()`` returns True (checked between blocks).
    """
    from engine import media

    # the header's length (mp3's can be a little off): a second of slack, trimmed at the end
    out = np.zeros(int(np.ceil(media.audio_duration(path) * sr)) + sr, dtype=np.int16)
    n = 0
    for block in media.audio_blocks(path, sr=sr):
        if cancel is not None and cancel():
            raise InterruptedError("decoding cancelled")
        if n + len(block) > len(out):
            out = np.concatenate([out, np.zeros(max(len(block), sr), dtype=np.int16)])
        out[n:n + len(block)] = to_int16(block)
        n += len(block)
    out.resize(n, refcheck=False)  # gives the slack back (the array owns its buffer, no views)
    return out


def time_stretch(y: np.ndarray, speed: float, progress=None, cancel=None) -> np.ndarray:
    """``y`` played ``speed`` times as fast, same pitch (phase vocoder; ``speed`` = 1 returns ``y``).

    Parameters
    ----------
    y : np.ndarray
        Mono samples, int16 or float.
    speed : float
        In [0.5, 1.5].
    progress, cancel : callables, optional
        See :func:`engine.stretch.time_stretch`.

    Returns
    -------
    np.ndarray, ``y``'s dtype, ``round(len(y) / speed)`` samples.
    """
    from engine.stretch import time_stretch as stretch

    if not MIN_SPEED - 1e-9 <= speed <= MAX_SPEED + 1e-9:
        raise ValueError(f"speed must be within {MIN_SPEED}-{MAX_SPEED}, not {speed}")
    return stretch(np.asarray(y), float(speed), progress=progress, cancel=cancel)


def midi_track_samples(midi, sr: int) -> int:
    """Length of the synthesized MIDI track, the same whichever instruments are heard."""
    return int(np.ceil((midi.get_end_time() + SYNTH_TAIL_S) * sr))


def synthesize_instruments(midi, sr: int, instruments=None, soundfont=None, cancel=None) -> np.ndarray | None:
    """The chosen instruments of ``midi`` synthesized together (one FluidSynth pass), int16 mono.

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI
        E.g. ``Alignment.warped_midi()`` (notes in the recording's time).
    sr : int
    instruments : iterable of int, optional
        Indices into ``midi.instruments`` (default: all). Instruments without notes are skipped.
    soundfont : str or Path, optional
    cancel : callable() -> bool, optional
        Polled during synthesis; when True, ``InterruptedError`` is raised.

    Returns
    -------
    np.ndarray, int16, :func:`midi_track_samples` long; None when no chosen instrument has notes.
    """
    from engine.media import StemRenderer

    indices = range(len(midi.instruments)) if instruments is None else sorted(set(instruments))
    chosen = [midi.instruments[i] for i in indices if 0 <= i < len(midi.instruments) and midi.instruments[i].notes]
    if not chosen:
        return None
    subset = copy.copy(midi)
    subset.instruments = chosen
    renderer = StemRenderer(subset, sr, soundfont, tail_s=SYNTH_TAIL_S, cancel=cancel, split=False)
    return _render_int16(renderer, midi_track_samples(midi, sr))[0]


def _render_int16(renderer, n_samples: int) -> np.ndarray:
    """A :class:`engine.media.StemRenderer`'s stems as int16, shape (n_stems, n_samples): its float
    blocks (between events) converted as they come, never held whole."""
    out = np.zeros((renderer.n_stems, n_samples), dtype=np.int16)
    pos = 0
    for block in renderer.blocks():
        m = max(min(block.shape[1], n_samples - pos), 0)
        out[:, pos:pos + m] = to_int16(block[:, :m])
        pos += m
    return out


@dataclass(frozen=True)
class InstrumentStems:
    """Each instrument of a MIDI on its own int16 track (:func:`synthesize_stems`).

    Attributes
    ----------
    tracks : np.ndarray, int16, shape (n_stems, n_samples)
    stem_of : list of int
        Instrument ``k`` sounds on ``tracks[stem_of[k]]``; instruments sharing a stem (more than
        15 pitched parts share MIDI channels) cannot be heard apart.
    has_notes : list of bool
    """

    tracks: np.ndarray
    stem_of: list
    has_notes: list

    def can_mix(self, instruments) -> bool:
        """Whether these instruments can be heard without the others (no stem is shared across the line)."""
        from engine.synth import stems_separate

        return stems_separate(self.stem_of, instruments)

    def mix(self, instruments) -> np.ndarray | None:
        """The tracks of ``instruments`` summed into one int16 track (None when none of them has
        notes, as :func:`synthesize_instruments`)."""
        stems = sorted({self.stem_of[k] for k in instruments if 0 <= k < len(self.stem_of) and self.has_notes[k]})
        if not stems:
            return None
        if len(stems) == 1:
            return self.tracks[stems[0]].copy()
        out = np.empty(self.tracks.shape[1], dtype=np.int16)
        for a in range(0, len(out), 1 << 20):  # summed in int32 a block at a time: no full-length temporary
            block = self.tracks[stems, a:a + (1 << 20)].sum(axis=0, dtype=np.int32)
            out[a:a + len(block)] = np.clip(block, -32768, 32767, out=block)  # int bounds: no float copy
        return out


def synthesize_stems(midi, sr: int, soundfont=None, cancel=None, max_bytes: int | None = None) -> InstrumentStems | None:
    """Every instrument of ``midi`` on its own int16 track, in one FluidSynth pass.

    Returns None (nothing rendered) when there are fewer than two stems (nothing to mute apart)
    or the tracks would take more than ``max_bytes`` (default :data:`STEMS_MAX_BYTES`); mute/solo
    then synthesizes the heard instruments together each time (:func:`synthesize_instruments`).
    The sum of the tracks is the whole performance, as :func:`synthesize_instruments` renders it
    (up to 16-bit rounding per track).
    """
    from engine.media import StemRenderer

    n = midi_track_samples(midi, sr)
    renderer = StemRenderer(midi, sr, soundfont, tail_s=SYNTH_TAIL_S, cancel=cancel, split=True)
    if renderer.n_stems < 2 or renderer.n_stems * n * 2 > (STEMS_MAX_BYTES if max_bytes is None else max_bytes):
        return None
    return InstrumentStems(_render_int16(renderer, n), list(renderer.stem_of), [bool(inst.notes) for inst in midi.instruments])


def stem_gains(n_stems: int, muted=(), soloed=()) -> np.ndarray:
    """Gain (0 or 1) of each instrument: soloed ones only if any are soloed, minus the muted ones."""
    gains = np.ones(n_stems, dtype=np.float32)
    if soloed:
        gains[:] = 0.0
        gains[[i for i in soloed if 0 <= i < n_stems]] = 1.0
    gains[[i for i in muted if 0 <= i < n_stems]] = 0.0
    return gains


def active_instruments(n_instruments: int, muted=(), soloed=()) -> tuple[int, ...]:
    """Indices of the instruments heard under the mute/solo choice (see :func:`stem_gains`)."""
    return tuple(int(i) for i in np.flatnonzero(stem_gains(n_instruments, muted, soloed)))


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

    Cheap enough for the audio callback: slicing, two scaled adds per channel (int16 tracks are
    scaled to [-1, 1] by the same multiply). Either track may be None or shorter than the block
    (the rest is silence).
    """
    n = out.shape[0]
    out[:] = 0.0
    for track, (g_left, g_right) in ((recording, gains[0]), (midi, gains[1])):
        if track is None or (g_left == 0.0 and g_right == 0.0) or start >= len(track):
            continue
        seg = track[start:start + n]
        m = len(seg)
        unit = np.float32(1.0 / INT16_SCALE if seg.dtype == np.int16 else 1.0)
        if g_left:
            out[:m, 0] += seg * (np.float32(g_left) * unit)
        if g_right:
            out[:m, 1] += seg * (np.float32(g_right) * unit)
    np.clip(out, -1.0, 1.0, out=out)
