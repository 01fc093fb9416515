"""What a background worker runs to turn a (MIDI, audio) pair into what the views draw.

Task
----
Call the engine — :func:`engine.align.align` with ``display=True`` (alignment, cost preview and
the display spectrogram, all cached by file content) — and repackage its results as flat arrays
for drawing: a :class:`gui.session.NoteTable` with every note in MIDI time and in audio time, the
local tempo ratio, and the level-of-detail arrays of :mod:`gui.lod`. No features are computed
here; this module only calls the engine and reshapes its output. It runs on a worker thread and
never touches Qt.

Two pictures per pair when the alignment is not cached: as soon as the recording is analysed and
the MIDI read, a *preview* (``LoadedPair.aligned`` False: the spectrogram and the notes in MIDI
time) is handed to ``publish``; the aligned pair follows when the MIDI side and the DTW are done.
:func:`warm_up` loads the engine's libraries ahead of the first open.

Conventions
-----------
Times in seconds; ``progress(fraction, message)`` and ``cancel()`` as in :mod:`gui.workers`.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from engine.media import instrument_label
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
        names.append(instrument_label(inst))
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


def preview_pair(midi_path, audio_path, midi, audio_duration_s: float, spectrogram,
                 pyramid: SpectrogramPyramid | None = None) -> LoadedPair:
    """The pair as it can be drawn before the alignment is done: the recording's spectrogram and
    the notes in their own (MIDI) time, through an identity map; ``aligned`` is False."""
    from engine.align import Alignment

    end_s = max(float(midi.get_end_time()), float(audio_duration_s), 1.0)
    identity = Alignment(path_midi_s=np.array([0.0, end_s]), path_audio_s=np.array([0.0, end_s]),
                         confidence=float("nan"), midi_duration_s=float(midi.get_end_time()),
                         audio_duration_s=float(audio_duration_s), midi=midi, midi_path=str(midi_path),
                         audio_path=str(audio_path), spectrogram=spectrogram)
    display = _display_spectrogram(spectrogram)
    return LoadedPair(str(midi_path), str(audio_path), identity, display, note_table(identity), np.zeros(0),
                      np.zeros(0), {}, pyramid=pyramid or SpectrogramPyramid(display), aligned=False)


def _display_spectrogram(spectrogram) -> DisplaySpectrogram:
    S_db, pitches, times = spectrogram
    return DisplaySpectrogram(np.asarray(S_db, dtype=np.float32), np.asarray(pitches, dtype=float),
                              np.asarray(times, dtype=float))


def load_pair(midi_path, audio_path, params=None, progress=None, cancel=None, publish=None) -> LoadedPair:
    """Align ``midi_path`` to ``audio_path`` and gather everything the views draw.

    Parameters
    ----------
    publish : callable(LoadedPair), optional
        Given the preview (:func:`preview_pair`) while the alignment still runs; not called when
        the alignment comes from the cache (the aligned pair follows at once then).

    Raises
    ------
    engine.errors.EarwormError
        For bad input (naming the file); ``engine.align.Cancelled`` when cancelled.
    """
    from engine.align import align

    t0, cpu0 = time.perf_counter(), time.thread_time()
    report = progress or (lambda fraction, message: None)
    shown = {}

    def preview(midi, audio_duration_s, spectrogram) -> None:
        pair = preview_pair(midi_path, audio_path, midi, audio_duration_s, spectrogram)
        shown.update(pair=pair, s=time.perf_counter() - t0, cpu_s=time.thread_time() - cpu0)
        publish(pair)

    alignment = align(str(midi_path), str(audio_path), params=params, progress=lambda f, m: report(0.95 * f, m),
                      cancel=cancel, display=True, preview=preview if publish is not None else None)
    report(0.96, "preparing the views")
    cpu = time.thread_time()
    if "pair" in shown:  # the same recording: its spectrogram and pyramid are already made
        spectrogram, pyramid = shown["pair"].spectrogram, shown["pair"].pyramid
    else:
        spectrogram = _display_spectrogram(alignment.spectrogram)
        pyramid = SpectrogramPyramid(spectrogram)  # level of detail, made here so the GUI thread never waits
    notes = note_table(alignment)
    tempo_times_s, tempo_ratio = alignment.local_tempo_ratio()
    brightness = cost_brightness(alignment.cost_preview) if alignment.cost_preview is not None else None
    timings = dict(alignment.timings, load_pair_s=time.perf_counter() - t0, views_cpu_s=time.thread_time() - cpu)
    if "s" in shown:
        # wall time, and this thread's CPU time, from the start to the preview handed over
        timings["preview_published_s"], timings["preview_published_cpu_s"] = shown["s"], shown["cpu_s"]
    report(1.0, "done")
    return LoadedPair(str(midi_path), str(audio_path), alignment, spectrogram, notes,
                      np.asarray(tempo_times_s, dtype=float), np.asarray(tempo_ratio, dtype=float), timings,
                      pyramid=pyramid, cost_brightness=brightness)


def warm_up() -> None:
    """Import the engine and its libraries, and load the compiled DTW kernels, ahead of the first
    open (1-3 s on a cold process, spent on a background thread while the window is idle)."""
    import pretty_midi  # noqa: F401
    import scipy.fft  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import soundfile  # noqa: F401

    from engine import align, dtw, features, media, refine  # noqa: F401

    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):
        pass  # reported when a synthesis needs it
    # numba loads each cached kernel (and initialises LLVM) on its first call: ~1 s.
    rng = np.random.default_rng(0)
    A = rng.random((40, features.N_CHROMA)).astype(np.float32)
    B = rng.random((50, features.N_CHROMA)).astype(np.float32)
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    B /= np.linalg.norm(B, axis=1, keepdims=True)
    dtw.sampled_costs(A, B, rng.integers(0, len(A), 10), rng.integers(0, len(B), 10), 1.0)
    path_i, path_j, _, _ = dtw.dtw_multiscale(A, B, features.BLOCK_SIZES, penalty=0.1, skip_cost=0.5)
    dtw.path_costs(A, B, path_i, path_j, 1.0)
