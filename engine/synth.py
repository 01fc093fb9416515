"""Synthesizing MIDI with FluidSynth: a whole performance, or block by block with one stem per instrument.

Task
----
:func:`synthesize` renders a MIDI to mono audio in one pass (16-bit FluidSynth output, as heard:
playback, test and benchmark recordings). :class:`StemRenderer` renders it block by block, each
instrument to its own FluidSynth output group (float output), so that the aligner can analyse the
MIDI without holding the signal and re-mix any subset of its instruments without rendering again.

Conventions
-----------
- Times come from pretty_midi (tempo and time-signature changes honoured); ``sr`` in Hz.
- One loaded FluidSynth synth per (soundfont, sr, output groups) per thread; a performance starts
  and ends on one of FluidSynth's 64-sample blocks, so the same MIDI renders the same way again
  in one process (a brand-new synth differs in a few samples).
- Soundfont discovery is :func:`engine.media.find_soundfont`'s.
"""
from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np

from engine.errors import EarwormError, SoundfontError
from engine.media import DEFAULT_SR, _short, find_soundfont

FLUID_BLOCK_SAMPLES = 64  # FluidSynth renders (and applies events) in blocks of this many samples

# FluidSynth takes ~0.1-1 s to parse a large soundfont; keep one loaded synth per (soundfont, sr,
# output groups) per thread so repeated synthesis (batch jobs, tests) does not pay that again.
_synth_local = threading.local()


def _get_synth(soundfont: Path, sr: int, groups: int = 1):
    try:
        import fluidsynth
    except (ImportError, OSError) as exc:
        raise EarwormError(None, f"FluidSynth is not available ({_short(exc)}); install libfluidsynth3") from None
    cache = getattr(_synth_local, "synths", None)
    if cache is None:
        cache = _synth_local.synths = {}
    key = (str(soundfont), int(sr), int(groups))
    if key not in cache:
        # With several groups, MIDI channel c sounds only in output pair c % groups (stems).
        extra = {"synth.audio-channels": groups, "synth.audio-groups": groups} if groups > 1 else {}
        synth = fluidsynth.Synth(gain=0.25, samplerate=float(sr), channels=16, **extra)
        synth.setting("synth.reverb.active", 0)
        synth.setting("synth.chorus.active", 0)
        synth.setting("synth.polyphony", 512)
        # Load a preset's samples only when a channel selects it: a GM soundfont is 30-150 MB of
        # samples, a piece uses a few presets. The sound is the same (same samples).
        synth.setting("synth.dynamic-sample-loading", 1)
        sfid = synth.sfload(str(soundfont))
        if sfid == -1:
            synth.delete()
            raise SoundfontError(soundfont, "FluidSynth could not load this soundfont (corrupt or unsupported)")
        cache[key] = (synth, sfid)
    return cache[key]


def _assign_channels(instruments) -> list[int]:
    """MIDI channel per instrument: drums on 9, others on 0-8,10-15 (shared by program when more
    than 15 need one)."""
    melodic = [c for c in range(16) if c != 9]
    channels, by_program = [], {}
    for inst in instruments:
        if inst.is_drum:
            channels.append(9)
            continue
        if inst.program not in by_program:
            by_program[inst.program] = melodic[len(by_program) % len(melodic)]
        channels.append(by_program[inst.program])
    return channels


INTERP_LINEAR, INTERP_4TH_ORDER = 1, 4  # FluidSynth's sample interpolation (4th order is its default)


def _performance(midi, synth, sfid, channels, sr, tail_s, cancel, render, max_chunk=None, interpolation=None):
    """Play ``midi`` on ``synth``: yields ``render(synth, n)`` for each stretch of ``n`` samples
    between events (at most ``max_chunk`` long), in order, up to ``tail_s`` after the last event.

    Events: notes, control changes, pitch bends, and program changes at 0, on the channel of each
    instrument (drums: bank 128); note-offs before note-ons at equal times. ``cancel()`` is polled
    about every 10 s of rendered audio (``InterruptedError``; the synth is reset and stays usable).
    ``interpolation``: FluidSynth's sample interpolation for this performance (its default if None).
    """
    synth.system_reset()
    fl = _fluid_lib()
    fl.fluid_synth_set_interp_method(synth.synth, -1, INTERP_4TH_ORDER if interpolation is None else interpolation)
    events = []  # (time, order, kind, channel, a, b)
    for inst, ch in zip(midi.instruments, channels):
        events.append((0.0, 0, "program", ch, 128 if inst.is_drum else 0, inst.program))
        for cc in inst.control_changes:
            events.append((cc.time, 2, "cc", ch, cc.number, cc.value))
        for pb in inst.pitch_bends:
            events.append((pb.time, 2, "bend", ch, pb.pitch, 0))
        for n in inst.notes:
            events.append((n.start, 3, "on", ch, n.pitch, n.velocity))
            events.append((n.end, 1, "off", ch, n.pitch, 0))
    events.sort(key=lambda e: (e[0], e[1]))
    end_time = max(e[0] for e in events) + tail_s
    n_total = int(np.ceil(end_time * sr))
    pos, next_check = 0, 0

    def advance(target):
        nonlocal pos, next_check
        while target > pos:
            n = target - pos if max_chunk is None else min(target - pos, max_chunk)
            yield render(synth, n)
            pos += n
            if cancel is not None and pos >= next_check:
                next_check = pos + 10 * sr
                if cancel():
                    synth.system_reset()
                    render(synth, sr // 2)  # a reset releases the voices: let them fade out, unheard
                    _end_on_block(synth, pos + sr // 2, render)
                    raise InterruptedError("synthesis cancelled")

    # Thousands of notes: FluidSynth's functions called directly (pitches and velocities come
    # from pretty_midi, always in 0..127: pyfluidsynth's checks have nothing to catch).
    handle, noteon, noteoff = synth.synth, fl.fluid_synth_noteon, fl.fluid_synth_noteoff
    for t, _, kind, ch, a, b in events:
        target = min(int(round(t * sr)), n_total)
        if target > pos:
            yield from advance(target)
        if kind == "on":
            noteon(handle, ch, a, b)
        elif kind == "off":
            noteoff(handle, ch, a)
        elif kind == "cc":
            synth.cc(ch, a, b)
        elif kind == "bend":
            synth.pitch_bend(ch, a)
        elif kind == "program":
            if synth.program_select(ch, sfid, a, b) == -1:
                synth.program_select(ch, sfid, a, 0)  # no such preset: fall back to the bank's first
    yield from advance(n_total)
    synth.system_reset()
    _end_on_block(synth, n_total, render)


def synthesize(midi, sr: int = DEFAULT_SR, soundfont=None, tail_s: float = 1.0, cancel=None) -> np.ndarray:
    """Render a MIDI to mono audio with FluidSynth, all instruments in one pass.

    Notes, control changes, pitch bends and program changes are played on the channel assigned
    to each instrument (drums on channel 10, bank 128). Times come from pretty_midi, so tempo and
    time-signature changes are honoured.

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI
    sr : int
        Output sample rate in Hz.
    soundfont : str or Path, optional
        A .sf2/.sf3 file; see :func:`find_soundfont` for the default.
    tail_s : float
        Seconds rendered after the last event, for release tails.
    cancel : callable() -> bool, optional
        Polled about every 10 s of rendered audio; when it returns True, ``InterruptedError`` is
        raised (the synth is reset and stays usable).

    Returns
    -------
    y : np.ndarray, float32, shape (n_samples,)
    """
    synth, sfid = _get_synth(find_soundfont(soundfont), sr)
    chunks = list(_performance(midi, synth, sfid, _assign_channels(midi.instruments), sr, tail_s, cancel, _render))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


class StemRenderer:
    """A MIDI rendered by FluidSynth block by block, optionally each instrument on its own stem.

    Every pitched instrument gets its own MIDI channel when at most 15 need one (else channels are
    shared by program, as :func:`synthesize` does) and drums share channel 10. With ``split``,
    each channel sounds in its own FluidSynth output group: ``blocks()`` yields arrays
    (n_stems, n) whose sum over stems is the whole performance (float, before any 16-bit
    rounding); ``stem_of[k]`` is instrument ``k``'s stem (instruments sharing one cannot be told
    apart). Without ``split``, one stem. The signal is never held whole. ``interpolation``:
    FluidSynth's sample interpolation; for analysis :data:`INTERP_LINEAR` does (a quarter less
    work than the default 4th order; the samples differ by ~2 %).
    """

    def __init__(self, midi, sr: int = DEFAULT_SR, soundfont=None, tail_s: float = 1.0, cancel=None,
                 block_samples: int = 1 << 15, split: bool = True, interpolation: int = INTERP_4TH_ORDER):
        self.midi, self.sr, self.tail_s, self.cancel = midi, int(sr), tail_s, cancel
        self.interpolation = interpolation
        self.soundfont = find_soundfont(soundfont)
        self.block_samples = int(block_samples)
        self.split = split
        self.channels, self.groups = _stem_layout(midi.instruments)
        used = sorted({c % self.groups for c in self.channels})
        self.stem_of = [used.index(c % self.groups) if split else 0 for c in self.channels]
        self._used = np.asarray(used)

    @property
    def n_stems(self) -> int:
        return len(self._used) if self.split else 1

    def blocks(self):
        synth, sfid = _get_synth(self.soundfont, self.sr, self.groups)
        used = self._used
        buffers = np.zeros((2 * self.groups, self.block_samples), dtype=np.float32)
        pointers = (ctypes.c_void_p * len(buffers))(*[buffers[k].ctypes.data for k in range(len(buffers))])
        process = _fluid_synth_process()

        def render(synth, n):
            buffers[:, :n] = 0.0
            process(synth.synth, n, 0, None, len(buffers), pointers)
            stems = (buffers[2 * used, :n] + buffers[2 * used + 1, :n]) * np.float32(0.5)
            return stems if self.split else stems.sum(axis=0, keepdims=True)

        # FluidSynth renders the stretches between events (often a few ms); hand them on in blocks.
        block, filled = np.empty((self.n_stems, self.block_samples), dtype=np.float32), 0
        for chunk in _performance(self.midi, synth, sfid, self.channels, self.sr, self.tail_s, self.cancel, render,
                                  max_chunk=self.block_samples, interpolation=self.interpolation):
            n = chunk.shape[1]
            if filled + n > self.block_samples:
                yield block[:, :filled].copy()
                filled = 0
            block[:, filled:filled + n] = chunk
            filled += n
        if filled:
            yield block[:, :filled].copy()


def stems_separate(stem_of, instruments) -> bool:
    """Whether exactly ``instruments`` (indices) make up whole stems of a :class:`StemRenderer`
    (``stem_of[k]``: instrument ``k``'s stem): no stem holds one of them and one of the others."""
    wanted = {int(k) for k in instruments}
    kept = {stem_of[k] for k in wanted}
    return all((stem_of[k] in kept) == (k in wanted) for k in range(len(stem_of)))


def _stem_layout(instruments) -> tuple[list[int], int]:
    """(channel per instrument, number of output groups) for rendering stems.

    Channel c sounds in group c % groups. The groups are as few as hold one instrument each, but
    at least 4 (a power of two: FluidSynth's cost grows with them, 16 cost ~70 % more than 4, 4 no
    more than 1; and most pieces need one synth, with one copy of the soundfont), drums on channel
    9 and the pitched instruments on channels whose groups differ from it and from each other.
    """
    pitched = [k for k, inst in enumerate(instruments) if not inst.is_drum]
    has_drums = len(pitched) < len(instruments)
    groups = 4
    while groups < len(pitched) + has_drums:
        groups *= 2
    if groups > 16:  # more than 15 pitched instruments: channels shared by program, one stem each
        return _assign_channels(instruments), 16
    drum_group = 9 % groups if has_drums else -1
    free = [c for c in range(16) if c != 9 and c % groups != drum_group][:len(pitched)]
    own = dict(zip(pitched, free))
    return [9 if inst.is_drum else own[k] for k, inst in enumerate(instruments)], groups


def _fluid_synth_process():
    """FluidSynth's ``fluid_synth_process`` (planar float output per group; pyfluidsynth has no wrapper)."""
    return _fluid_lib().fluid_synth_process


_fluid = None


def _fluid_lib():
    """libfluidsynth (as pyfluidsynth loaded it) with the prototypes of the functions called directly."""
    global _fluid
    if _fluid is None:
        import fluidsynth

        lib = ctypes.CDLL(fluidsynth._fl._name)  # own function objects: their prototypes set here only
        ptr, c_int = ctypes.c_void_p, ctypes.c_int
        for name, args in (("fluid_synth_process", [ptr, c_int, c_int, ctypes.POINTER(ptr), c_int, ctypes.POINTER(ptr)]),
                           ("fluid_synth_set_interp_method", [ptr, c_int, c_int]),
                           ("fluid_synth_noteon", [ptr, c_int, c_int, c_int]),
                           ("fluid_synth_noteoff", [ptr, c_int, c_int])):
            getattr(lib, name).argtypes = args
            getattr(lib, name).restype = c_int
        lib.fluid_version_str.argtypes, lib.fluid_version_str.restype = [], ctypes.c_char_p
        _fluid = lib
    return _fluid


def fluidsynth_version() -> str:
    """libfluidsynth's version, e.g. "2.3.1" (what a rendering sounds like depends on it)."""
    return _fluid_lib().fluid_version_str().decode()


def _end_on_block(synth, n_rendered: int, render) -> None:
    """Render (and drop) silence up to FluidSynth's next 64-sample block boundary.

    FluidSynth applies events at its internal block boundaries; a synth left mid-block would
    shift every event of the next rendering by up to 64 samples, so the same MIDI would not
    sound the same twice in one process. ``render``: the same rendering call as the
    performance's (FluidSynth keeps the position inside a block per output call).
    """
    rest = (-n_rendered) % FLUID_BLOCK_SAMPLES
    if rest:
        render(synth, rest)


def _render(synth, n_samples: int) -> np.ndarray:
    stereo = synth.get_samples(n_samples).astype(np.float32)
    return (stereo[0::2] + stereo[1::2]) * (0.5 / 32768.0)
