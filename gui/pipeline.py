"""What a background worker runs to turn a (MIDI, audio) pair into what the views draw.

Task
----
Call the engine — :func:`engine.align.align` with ``display=True`` (alignment, cost preview and
the display spectrogram, all cached by file content) — and repackage its results as flat arrays
for drawing: a :class:`gui.session.NoteTable` with every note in MIDI time and in audio time, the
local tempo ratio, and the level-of-detail arrays of :mod:`gui.lod`. No features are computed here; this module only calls the engine and
reshapes its output. It runs on a worker thread and never touches Qt.

Conventions
-----------
Times in seconds; ``progress(fraction, message)`` and ``cancel()`` as in :mod:`gui.workers`.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gui.lod import SpectrogramPyramid, cost_brightness
from gui.session import DisplaySpectrogram, LoadedPair, NoteTable

MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".smf")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")


def classify_paths(paths) -> tuple[str | None, str | None, list[str]]:
    """Sort dropped/opened files into (midi_path, audio_path, unrecognised) by their suffix.

    The last MIDI and the last audio file win when several are given.
    """
    midi_path = audio_path = None
    unknown = []
    for p in paths:
        suffix = Path(p).suffix.lower()
        if suffix in MIDI_SUFFIXES:
            midi_path = str(p)
        elif suffix in AUDIO_SUFFIXES:
            audio_path = str(p)
        else:
            unknown.append(str(p))
    return midi_path, audio_path, unknown


def note_table(alignment) -> NoteTable:
    """Every note of ``alignment.midi`` as flat arrays, in MIDI and in audio time."""
    midi = alignment.midi
    names, programs = [], []
    columns = {k: [] for k in ("start", "end", "pitch", "velocity", "instrument", "is_drum")}
    for index, inst in enumerate(midi.instruments):
        names.append(inst.name.strip() or _program_name(inst.program, inst.is_drum))
        programs.append(int(inst.program))
        n = len(inst.notes)
        if n == 0:
            continue
        columns["start"].append(np.fromiter((note.start for note in inst.notes), float, n))
        columns["end"].append(np.fromiter((note.end for note in inst.notes), float, n))
        columns["pitch"].append(np.fromiter((note.pitch for note in inst.notes), np.int16, n))
        columns["velocity"].append(np.fromiter((note.velocity for note in inst.notes), np.int16, n))
        columns["instrument"].append(np.full(n, index, np.int16))
        columns["is_drum"].append(np.full(n, bool(inst.is_drum)))
    if not columns["start"]:
        empty = np.zeros(0)
        return NoteTable(empty, empty, empty, empty, empty.astype(np.int16), empty.astype(np.int16),
                         empty.astype(np.int16), empty.astype(bool), names, programs)
    cols = {k: np.concatenate(v) for k, v in columns.items()}
    order = np.argsort(cols["start"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    start_audio = np.asarray(alignment.midi_to_audio(cols["start"]), dtype=float)
    end_audio = np.asarray(alignment.midi_to_audio(cols["end"]), dtype=float)
    end_audio = np.maximum(end_audio, start_audio + 1e-3)
    return NoteTable(cols["start"], cols["end"], start_audio, end_audio, cols["pitch"], cols["velocity"],
                     cols["instrument"], cols["is_drum"], names, programs)


def load_pair(midi_path, audio_path, params=None, progress=None, cancel=None) -> LoadedPair:
    """Align ``midi_path`` to ``audio_path`` and gather everything the views draw.

    Raises
    ------
    engine.errors.EarwormError
        For bad input (naming the file); ``engine.align.Cancelled`` when cancelled.
    """
    from engine.align import align

    t0 = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    alignment = align(str(midi_path), str(audio_path), params=params, progress=lambda f, m: report(0.95 * f, m),
                      cancel=cancel, display=True)
    report(0.96, "preparing the views")
    S_db, pitches, times = alignment.spectrogram
    spectrogram = DisplaySpectrogram(np.asarray(S_db, dtype=np.float32), np.asarray(pitches, dtype=float),
                                     np.asarray(times, dtype=float))
    notes = note_table(alignment)
    tempo_times_s, tempo_ratio = alignment.local_tempo_ratio()
    pyramid = SpectrogramPyramid(spectrogram)  # level of detail, made here so the GUI thread never waits
    brightness = cost_brightness(alignment.cost_preview) if alignment.cost_preview is not None else None
    timings = dict(alignment.timings, load_pair_s=time.perf_counter() - t0)
    report(1.0, "done")
    return LoadedPair(str(midi_path), str(audio_path), alignment, spectrogram, notes,
                      np.asarray(tempo_times_s, dtype=float), np.asarray(tempo_ratio, dtype=float), timings,
                      pyramid=pyramid, cost_brightness=brightness)


# General MIDI families, for naming unnamed instruments ("Piano", "Strings", ...).
_GM_FAMILIES = ("Piano", "Chromatic percussion", "Organ", "Guitar", "Bass", "Strings", "Ensemble", "Brass",
                "Reed", "Pipe", "Synth lead", "Synth pad", "Synth effects", "Ethnic", "Percussive",
                "Sound effects")


def _program_name(program: int, is_drum: bool) -> str:
    if is_drum:
        return "Drums"
    return f"{_GM_FAMILIES[int(program) // 8 % 16]} (program {int(program) + 1})"
