"""Aligning a MIDI file to a recording of it.

Task
----
``align(midi, audio)`` finds, for every moment of the MIDI, the moment of the recording where it is
played, and returns an :class:`Alignment`: the warping path, time maps both ways, a confidence,
and the MIDI warped into the recording's timeline.

Pipeline: features of both sides, computed block by block and cached by file content
(:mod:`engine.align_features`: the recording decoded in blocks, the MIDI rendered by FluidSynth
in blocks on a helper thread, one stem per instrument) → :mod:`engine.align_solve`: cosine cost
→ multiscale chroma DTW with additive penalty and gully (:mod:`engine.dtw`) → note-level pass
(:mod:`engine.refine`: instruments the recording lacks are left out of the MIDI's features — its
stems re-mixed — and the DTW is run again; fine DTW at 11.6 ms on chroma + onsets around that
path; note-onset anchors) → time maps in seconds. The solved alignment is cached too, and a cached
one is read without parsing the MIDI. See docs/BENCHMARKS.md for what each step is worth.

Conventions
-----------
- All times are seconds. "MIDI time" is the time of the original MIDI as pretty_midi computes it
  from its tempo map; "audio time" is the time in the recording.
- Confidence (Raffel & Ellis 2016; the Lakh MIDI dataset's score): ``1 - mean cost on the path /
  mean cost of the distance submatrix the path spans``, clipped to [0, 1]. Unrelated pairs score
  near 0, a good alignment near 1. The submatrix mean is estimated from random cells, so no full
  matrix is ever built.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine import align_features, align_solve, cache, media
from engine.align_features import midi_chroma_features, recording_features  # noqa: F401  (public API)
from engine.align_midi_side import MidiSide
from engine.errors import AlignmentError, AudioError, MidiError
from engine.streaming import release_memory


class Cancelled(Exception):
    """Raised by :func:`align` when its ``cancel`` callback returns True."""


@dataclass
class AlignParams:
    """Parameters of the alignment; every field is part of the cache key of what it affects."""

    # Analysis rate: every feature lies below C8 (4.2 kHz), so 11 025 Hz loses nothing and halves
    # decoding, synthesis and STFT work against 22 050 Hz (windows keep their length in seconds).
    sr: int = 11025
    hop_length: int = 512                 # DTW (chroma) frames: 46 ms at 11 025 Hz
    onset_hop_length: int = 128           # note-level pass (fine chroma, onsets) frames: 11.6 ms
    midi_features: str = "synth"          # "synth" (FluidSynth, most accurate) or "pianoroll" (no synthesis, fast)
    soundfont: str | None = None          # for midi_features="synth"
    penalty_scale: float = 1.0            # non-diagonal step penalty = scale × median cost
    gully: float = 0.2                    # fraction that may be left out at either end
    radius_frames: int = 24               # band half-width at each finer level of the multiscale DTW
    max_coarse_frames: int = 1500
    refine_onsets: bool = True            # the note-level pass after the DTW (engine.refine)
    presence_threshold: float = 0.1       # instruments with a gain below this (vs the loudest) count as absent
    # Without the note-level pass, still align again without the MIDI's instruments the recording
    # lacks (library matching: a recording that lost voices then scores as the rest of the score).
    find_instruments: bool = False
    fine_onset_weight: float = 0.3        # onsets' weight in the fine DTW's cost (chroma: the rest)
    fine_radius_s: float = 0.4            # fine DTW band half-width around the smoothed DTW path
    fine_passes: int = 2                  # each further fine pass: around the last, half the band
    snap_frames: int = 1                  # last snap of each onset group to the sharp onsets, in frames

    def feature_params(self) -> dict:
        keys = ("sr", "hop_length", "onset_hop_length")
        return {k: getattr(self, k) for k in keys}


class _LazyMidi:
    """``Alignment.midi``: the PrettyMIDI given, or else parsed from ``midi_path`` when first used
    (a cached alignment is read without it: parsing costs more than the rest)."""

    def __get__(self, obj, objtype=None):
        if obj is None:
            return None  # the dataclass field's default
        midi = obj.__dict__.get("_midi")
        if midi is None and obj.__dict__.get("midi_path") is not None:
            midi = obj.__dict__["_midi"] = media.load_midi(obj.midi_path)
        return midi

    def __set__(self, obj, value):
        obj.__dict__["_midi"] = value


@dataclass
class Alignment:
    """The result of aligning a MIDI to a recording (see docs/ARCHITECTURE.md)."""

    path_midi_s: np.ndarray
    path_audio_s: np.ndarray
    confidence: float
    midi_duration_s: float
    audio_duration_s: float
    midi: object = _LazyMidi()                     # pretty_midi.PrettyMIDI, the original (parsed when first used)
    midi_path: str | None = None
    audio_path: str | None = None
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    cache_hits: dict = field(default_factory=dict)
    cost_preview: np.ndarray | None = None         # (n_midi, n_audio) downsampled cost matrix
    cost_preview_midi_s: np.ndarray | None = None
    cost_preview_audio_s: np.ndarray | None = None
    spectrogram: tuple | None = None               # (S_db, bin_midi_pitches, times_s) if asked for
    anchor_midi_s: np.ndarray | None = None        # note-onset anchors from the note-level pass
    anchor_audio_s: np.ndarray | None = None

    def __post_init__(self):
        if self.anchor_midi_s is not None and len(self.anchor_midi_s) >= 2:
            # The note-level anchors rule the map; between them it is linear, and past the first and
            # last it goes on at their mean tempo (where no note of the recording says otherwise, a
            # guess as good as the DTW path's, which runs at slope 1 through silence).
            x, y = _monotone_knots(self.anchor_midi_s, self.anchor_audio_s)
        else:
            x, y = _monotone_knots(self.path_midi_s, self.path_audio_s)
        self._m2a = (x, y)
        self._a2m = _monotone_knots(y, x)

    # -- time maps ----------------------------------------------------------------------------
    def midi_to_audio(self, t_midi_s):
        """Audio time of MIDI time(s) ``t_midi_s`` (linear extrapolation past the path's ends)."""
        return _interp_extrap(t_midi_s, *self._m2a)

    def audio_to_midi(self, t_audio_s):
        """MIDI time of audio time(s) ``t_audio_s``."""
        return _interp_extrap(t_audio_s, *self._a2m)

    def local_tempo_ratio(self, smooth_s: float = 1.0):
        """Local slope d(MIDI time)/d(audio time) along the path, smoothed over ``smooth_s``.

        Returns
        -------
        audio_times_s, ratio : np.ndarray
            > 1 means the recording plays faster than the MIDI's own tempo.
        """
        step = max(smooth_s / 4, 0.05)
        t = np.arange(self.path_audio_s[0], self.path_audio_s[-1] + step, step)
        m = self.audio_to_midi(t)
        half = max(1, int(round(smooth_s / step / 2)))
        k = np.arange(len(t))
        a, b = np.maximum(k - half, 0), np.minimum(k + half, len(t) - 1)
        return t, (m[b] - m[a]) / np.maximum(t[b] - t[a], 1e-9)

    # -- warped MIDI --------------------------------------------------------------------------
    def warped_midi(self):
        """A copy of the MIDI with every note, control change and pitch bend in audio time."""
        warped = copy.deepcopy(self.midi)
        for inst in warped.instruments:
            if inst.notes:
                starts = self.midi_to_audio(np.array([n.start for n in inst.notes]))
                ends = self.midi_to_audio(np.array([n.end for n in inst.notes]))
                for n, s, e in zip(inst.notes, starts, ends):
                    n.start, n.end = max(0.0, float(s)), max(float(e), max(0.0, float(s)) + 1e-3)
            for ev in inst.control_changes + inst.pitch_bends:
                ev.time = max(0.0, float(self.midi_to_audio(ev.time)))
        return warped

    def tempo_map_knots(self, max_error_s: float = 0.01):
        """The warp simplified to a few linear pieces (within ``max_error_s`` of the full map)."""
        x, y = self._m2a
        keep = _simplify_polyline(x, y, max_error_s)
        return x[keep], y[keep]

    def write_warped_midi(self, path, max_error_s: float = 0.01) -> int:
        """Write the MIDI in audio time: the original ticks, a new simplified tempo map.

        Every event keeps its tick (bars and beats stay musical); only the tempo events change,
        so that tick time lands on audio time. Returns the number of tempo events written.
        """
        from engine.midi_tempo import write_with_warp

        if self.midi_path is None:
            raise MidiError(None, "the warped MIDI can only be written when the alignment was made from a file")
        knots = self.tempo_map_knots(max_error_s)
        return write_with_warp(self.midi_path, path, knots, self.midi_to_audio)

    # -- export -------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "midi": self.midi_path,
            "audio": self.audio_path,
            "confidence": round(float(self.confidence), 6),
            "midi_duration_s": round(self.midi_duration_s, 4),
            "audio_duration_s": round(self.audio_duration_s, 4),
            "path": [[round(float(m), 4), round(float(a), 4)] for m, a in zip(self.path_midi_s, self.path_audio_s)],
            "params": self.params,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def path_csv(self) -> str:
        """The path as CSV text: ``midi_s,audio_s`` per row."""
        rows = ["midi_s,audio_s"] + [f"{m:.4f},{a:.4f}" for m, a in zip(self.path_midi_s, self.path_audio_s)]
        return "\n".join(rows) + "\n"


def _monotone_knots(x, y):
    """Knots (x strictly increasing, y non-decreasing) through a warping path: mean y per x."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ux, inv = np.unique(x, return_inverse=True)
    uy = np.bincount(inv, weights=y) / np.bincount(inv)
    uy = np.maximum.accumulate(uy)
    if len(ux) == 1:
        ux, uy = np.array([ux[0], ux[0] + 1.0]), np.array([uy[0], uy[0] + 1.0])
    return ux, uy


def _interp_extrap(t, xp, fp):
    scalar = np.ndim(t) == 0
    t = np.asarray(t, dtype=np.float64)
    slope = (fp[-1] - fp[0]) / max(xp[-1] - xp[0], 1e-9)
    out = np.interp(t, xp, fp)
    out = np.where(t < xp[0], fp[0] + (t - xp[0]) * slope, out)
    out = np.where(t > xp[-1], fp[-1] + (t - xp[-1]) * slope, out)
    return float(out) if scalar else out


def _simplify_polyline(x, y, tol):
    """Indices of the points Douglas–Peucker keeps (vertical error ≤ tol), iteratively."""
    keep = np.zeros(len(x), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(x) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        seg = y[a] + (y[b] - y[a]) * (x[a + 1:b] - x[a]) / max(x[b] - x[a], 1e-12)
        err = np.abs(y[a + 1:b] - seg)
        k = int(np.argmax(err))
        if err[k] > tol:
            mid = a + 1 + k
            keep[mid] = True
            stack += [(a, mid), (mid, b)]
    return np.nonzero(keep)[0]


# ---- the aligner ------------------------------------------------------------------------------

def align(midi, audio, params: AlignParams | None = None, progress=None, cancel=None, display: bool = False,
          preview=None) -> Alignment:
    """Align a MIDI file to a recording.

    Parameters
    ----------
    midi : str or Path or pretty_midi.PrettyMIDI
        The MIDI (a path enables caching and :meth:`Alignment.write_warped_midi`).
    audio : str or Path
        The recording (wav, flac, ogg, mp3).
    params : AlignParams, optional
    progress : callable(fraction, message), optional
        Called at each stage (from the calling thread).
    cancel : callable() -> bool, optional
        Polled between stages; when it returns True, :class:`Cancelled` is raised.
    display : bool
        Also compute the display spectrogram (``Alignment.spectrogram``).
    preview : callable(midi, audio_duration_s, spectrogram), optional
        Called once (from the calling thread) as soon as the MIDI is read and the recording's
        display spectrogram made — before the recording's onset features, the MIDI side and the
        DTW — so a window can draw the recording and the unaligned notes meanwhile.
        ``spectrogram`` is ``(S_db, bin_midi_pitches, times_s)`` or None without ``display``. Not
        called when the alignment comes from the cache.

    Returns
    -------
    Alignment
        When the alignment is cached (keyed by both files' content and every parameter), it is
        read without parsing the MIDI (``Alignment.midi`` parses it when first used).

    Raises
    ------
    MidiError, AudioError, SoundfontError
        For bad input, naming the file.
    Cancelled
    """
    params = params or AlignParams()
    report = progress or (lambda fraction, message: None)
    t0 = time.perf_counter()
    timings, hits = {}, {}

    def checkpoint(fraction, message):
        if cancel is not None and cancel():
            raise Cancelled()
        report(fraction, message)

    checkpoint(0.0, "reading MIDI")
    audio_path = str(audio)
    midi_path = str(midi) if isinstance(midi, (str, Path)) else None
    # The whole result is cached, keyed by both files' content and every parameter; looked up
    # first, so that a cached alignment needs neither the MIDI parsed nor any feature read.
    solved_key = None
    if midi_path is not None:
        midi_hash = align_features.content_hash(midi_path, MidiError)
        try:
            audio_hash = align_features.content_hash(audio_path, AudioError)
        except AudioError:
            media.load_midi(midi_path)  # with both files bad, the MIDI's error comes first
            raise
        key_params = dict(asdict(params), midi=midi_hash, version=align_solve.SOLVER_VERSION)
        solved_key = cache.cache_key("alignment/v2", audio_hash, key_params)
        solved = cache.load(solved_key)
        spectrogram = None
        if solved is not None and display:
            shown = align_features.cached_display(audio_hash, params)
            if shown is None:
                # Solved before without the display (e.g. by `earworm align`): only the display is
                # computed, not the recording's features, the MIDI's or the alignment.
                checkpoint(0.05, "analysing the recording")
                shown = align_features.display_features(
                    audio_path, params, between_blocks=lambda: checkpoint(0.05, "analysing the recording"))
            spectrogram = tuple(shown[k] for k in align_features.DISPLAY_KEYS[:3])
        if solved is not None:
            hits["alignment"] = True
            timings["total_s"] = time.perf_counter() - t0
            report(1.0, "done")
            return _alignment(solved, None, midi_path, audio_path, params, spectrogram, timings, hits)
    hits["alignment"] = False

    checkpoint(0.05, "analysing the recording")
    # The MIDI side: parsed and rendered by FluidSynth (without the GIL) on a helper thread; its
    # stems come over in blocks and this thread computes their features in between the blocks of
    # the recording it decodes and analyses (numpy/scipy, also without the GIL): two cores, both
    # busy (engine.align_midi_side).
    cancelled = lambda: cancel is not None and cancel()  # noqa: E731
    midi_side = MidiSide(None if midi_path is not None else midi, midi_path, params,
                         keep_stems=params.refine_onsets and params.midi_features == "synth", cancel=cancelled)
    try:
        t, cpu = time.perf_counter(), time.thread_time()
        previewed = []

        def early_preview(spectrogram, duration_s):  # the recording decoded, its display made
            previewed.append(True)
            midi_side.wait_for_midi(lambda: checkpoint(0.4, "reading MIDI"))
            preview(midi_side.midi, duration_s, spectrogram)

        recording, hits["audio"] = align_features.recording_features(
            audio_path, params, display, on_display=early_preview if preview is not None else None,
            between_blocks=midi_side.poll)
        audio_dur = float(recording["duration_s"])
        spectrogram = ((recording["display_db"], recording["display_pitches"], recording["display_times_s"])
                       if display else None)
        timings["audio_features_s"] = time.perf_counter() - t
        timings["audio_features_cpu_s"] = time.thread_time() - cpu  # the work, whatever the machine's load
        if preview is not None and not previewed:  # the recording's features came from the cache
            midi_side.wait_for_midi(lambda: checkpoint(0.4, "reading MIDI"))
            preview(midi_side.midi, audio_dur, spectrogram)
        message = "analysing the MIDI" + (" (synthesizing)" if params.midi_features == "synth" else "")
        t = time.perf_counter()
        midi_side.wait(lambda: checkpoint(0.45, message))
        timings["midi_wait_s"] = time.perf_counter() - t
        timings.update(midi_side.timings)
    except InterruptedError:
        raise Cancelled() from None
    except AudioError:
        midi_side.wait_for_midi(lambda: None)  # with both files bad, the MIDI's error comes first
        raise
    finally:
        midi_side.stop()  # on an error or cancel here, the MIDI side stops too
    midi, midi_arrays, hits["midi"], stems = midi_side.midi, midi_side.arrays, midi_side.hit, midi_side.stems
    midi_side.arrays = midi_side.stems = None  # ours now: the solver lets them go when done
    release_memory(int(audio_dur * params.sr / params.onset_hop_length))  # the two streams' temporaries
    try:
        if len(midi_arrays["chroma"]) < 2 or len(recording["chroma"]) < 2:
            raise AlignmentError(audio_path if len(recording["chroma"]) < 2 else midi_path, "too short to align")

        def subset_features(sub, kept, chroma):  # on the MIDI side's thread: its synths are loaded
            return align_features.midi_side_executor().submit(
                align_features.midi_side_features, sub, midi_path, params, kept, cancelled, stems,
                chroma=chroma).result()[0]

        checkpoint(0.6, "aligning")
        t, cpu = time.perf_counter(), time.thread_time()
        # Handed over, so that the solver can let each array go when it is done with it.
        sides = {"midi": midi_arrays, "recording": recording}
        del midi_arrays, recording
        try:
            solved = align_solve.solve(sides, midi, audio_dur, params, subset_features, cancelled, checkpoint)
        except InterruptedError:
            raise Cancelled() from None
    finally:
        if stems is not None:
            stems.close()
    solved["midi_duration_s"] = np.array(float(midi.get_end_time()))
    solved["audio_duration_s"] = np.array(audio_dur)
    if solved_key is not None:
        cache.store(solved_key, solved)
    timings["align_s"] = time.perf_counter() - t
    timings["align_cpu_s"] = time.thread_time() - cpu
    timings["total_s"] = time.perf_counter() - t0
    report(1.0, "done")
    return _alignment(solved, midi, midi_path, audio_path, params, spectrogram, timings, hits)


def _alignment(solved, midi, midi_path, audio_path, params, spectrogram, timings, hits) -> Alignment:
    """The :class:`Alignment` of a solved (or cached) alignment."""
    frame_s = params.hop_length / params.sr
    has_anchors = len(solved["anchor_midi_s"]) >= 2
    return Alignment(
        path_midi_s=solved["path_i"] * frame_s, path_audio_s=solved["path_j"] * frame_s,
        confidence=float(solved["confidence"]), midi_duration_s=float(solved["midi_duration_s"]),
        audio_duration_s=float(solved["audio_duration_s"]), midi=midi, midi_path=midi_path, audio_path=audio_path,
        params=dict(asdict(params), median_cost=float(solved["median_cost"]), band_cells=int(solved["band_cells"]),
                    frames=[int(x) for x in solved["frames"]],
                    instruments_present=[bool(x) for x in solved["instruments_present"]]),
        timings=timings, cache_hits=hits, cost_preview=solved["preview"],
        cost_preview_midi_s=solved["preview_rows"] * frame_s, cost_preview_audio_s=solved["preview_cols"] * frame_s,
        spectrogram=spectrogram, anchor_midi_s=solved["anchor_midi_s"] if has_anchors else None,
        anchor_audio_s=solved["anchor_audio_s"] if has_anchors else None,
    )
