"""Aligning a MIDI file to a recording of it.

Task
----
``align(midi, audio)`` finds, for every moment of the MIDI, the moment of the recording where it is
played, and returns an :class:`Alignment`: the warping path, time maps both ways, a confidence,
and the MIDI warped into the recording's timeline.

Pipeline: features of both sides (:mod:`engine.features`; cached by file content) → cosine cost
→ multiscale chroma DTW with additive penalty and gully (:mod:`engine.dtw`) → note-level pass
(:mod:`engine.refine`: instruments the recording lacks are left out of the MIDI's features and the
DTW is run again; fine DTW at 11.6 ms on chroma + onsets around that path; note-onset anchors) →
time maps in seconds. See docs/BENCHMARKS.md for what each step is worth on the benchmark.

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

import concurrent.futures
import copy
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine import cache, dtw, features, media
from engine.errors import AlignmentError, MidiError


class Cancelled(Exception):
    """Raised by :func:`align` when its ``cancel`` callback returns True."""


@dataclass
class AlignParams:
    """Parameters of the alignment; every field is part of the cache key of what it affects."""

    sr: int = 22050
    hop_length: int = 1024                # DTW (chroma) frames: 46 ms at 22 050 Hz
    onset_hop_length: int = 256           # note-level pass (fine chroma, onsets) frames: 11.6 ms
    midi_features: str = "synth"          # "synth" (FluidSynth, most accurate) or "pianoroll" (no synthesis, fast)
    soundfont: str | None = None          # for midi_features="synth"
    penalty_scale: float = 1.0            # non-diagonal step penalty = scale × median cost
    gully: float = 0.2                    # fraction that may be left out at either end
    radius_frames: int = 24               # band half-width at each finer level of the multiscale DTW
    max_coarse_frames: int = 1500
    refine_onsets: bool = True            # the note-level pass after the DTW (engine.refine)
    presence_threshold: float = 0.1       # instruments with a gain below this (vs the loudest) count as absent
    fine_onset_weight: float = 0.3        # onsets' weight in the fine DTW's cost (chroma: the rest)
    fine_radius_s: float = 0.4            # fine DTW band half-width around the smoothed DTW path
    fine_passes: int = 2                  # each further fine pass: around the last, half the band
    snap_frames: int = 1                  # last snap of each onset group to the sharp onsets, in frames

    def feature_params(self) -> dict:
        keys = ("sr", "hop_length", "onset_hop_length")
        return {k: getattr(self, k) for k in keys}


@dataclass
class Alignment:
    """The result of aligning a MIDI to a recording (see docs/ARCHITECTURE.md)."""

    path_midi_s: np.ndarray
    path_audio_s: np.ndarray
    confidence: float
    midi_duration_s: float
    audio_duration_s: float
    midi: object                                   # pretty_midi.PrettyMIDI, the original
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


# ---- features with caching -------------------------------------------------------------------

DISPLAY_HOP_LENGTH = 512


def recording_features(audio_path, params: AlignParams, want_display: bool = False, on_display=None):
    """Chroma, the note-level features (with ``params.refine_onsets``) and the display spectrogram
    (if wanted) of a recording, cached by content.

    The file is validated first, so a missing or undecodable recording is an AudioError naming it
    (and never reaches the cache's hashing). Returns (arrays, cache_hit). When they are computed
    (not cached), ``on_display((S_db, bin_midi_pitches, times_s), duration_s)`` is called as soon
    as the display spectrogram is made, before the slower features.
    """
    media.audio_duration(audio_path)

    def compute():
        y = media.load_audio(audio_path, sr=params.sr)
        shown = None if on_display is None else (lambda *display: on_display(display, len(y) / params.sr))
        arrays = features.analyse_recording(y, params.sr, params.hop_length, params.onset_hop_length,
                                            display_hop_length=DISPLAY_HOP_LENGTH if want_display else None,
                                            on_display=shown, fine=params.refine_onsets)
        arrays["duration_s"] = np.array(len(y) / params.sr)
        return arrays

    key_params = dict(params.feature_params(), display=want_display, fine=params.refine_onsets)
    arrays, hit = cache.cached("recording/v4", cache.file_hash(audio_path), key_params, compute)
    return arrays, hit


def midi_chroma_features(midi, midi_path, params: AlignParams, cancel=None):
    """Chroma of the MIDI (synthesized or from the piano roll), cached by content. Returns (chroma, cache_hit).

    ``cancel()`` returning True stops a synthesis early (``InterruptedError``; nothing is cached).
    """
    if params.midi_features not in ("pianoroll", "synth"):
        raise ValueError(f"unknown midi_features {params.midi_features!r}")
    key_params = dict(sr=params.sr, hop_length=params.hop_length, mode=params.midi_features)
    if params.midi_features == "synth":
        key_params["soundfont"] = str(media.find_soundfont(params.soundfont))

    def compute():
        if params.midi_features == "synth":
            y = media.synthesize(midi, sr=params.sr, soundfont=params.soundfont, cancel=cancel)
            return {"chroma": features.audio_chroma(y, params.sr, params.hop_length)}
        return {"chroma": features.midi_chroma(midi, params.sr, params.hop_length)}

    if midi_path is None:
        return compute()["chroma"], False
    arrays, hit = cache.cached("midi_chroma/v3", cache.file_hash(midi_path), key_params, compute)
    return arrays["chroma"], hit


def midi_features(midi, midi_path, params: AlignParams, instruments=None, cancel=None):
    """Everything the alignment compares of the MIDI, cached by content. Returns (arrays, cache_hit).

    ``arrays``: ``chroma`` at ``hop_length`` and, with ``params.refine_onsets``, ``fine_chroma``
    and ``onset_strength`` at ``onset_hop_length`` (:func:`engine.features.fine_features`), of the
    synthesized MIDI or straight from its piano roll. ``instruments``: indices of the instruments
    to keep (``midi`` is then expected to hold only those, in order; part of the cache key).
    ``cancel()`` returning True stops a synthesis early (``InterruptedError``; nothing is cached).
    """
    if params.midi_features not in ("pianoroll", "synth"):
        raise ValueError(f"unknown midi_features {params.midi_features!r}")
    key_params = dict(params.feature_params(), mode=params.midi_features, fine=params.refine_onsets,
                      instruments=None if instruments is None else [int(k) for k in instruments])
    if params.midi_features == "synth":
        key_params["soundfont"] = str(media.find_soundfont(params.soundfont))

    def compute():
        if params.midi_features == "synth":
            y = media.synthesize(midi, sr=params.sr, soundfont=params.soundfont, cancel=cancel)
            arrays = {"chroma": features.audio_chroma(y, params.sr, params.hop_length)}
            if params.refine_onsets:
                fine = features.fine_features(y, params.sr, params.onset_hop_length)
                arrays.update(fine_chroma=fine["fine_chroma"], onset_strength=fine["onset_strength"])
            return arrays
        arrays = {"chroma": features.midi_chroma(midi, params.sr, params.hop_length)}
        if params.refine_onsets:
            arrays.update(features.midi_fine_features(midi, params.sr, params.onset_hop_length))
        return arrays

    if midi_path is None:
        return compute(), False
    return cache.cached("midi/v4", cache.file_hash(midi_path), key_params, compute)


def cost_preview(A, B, weight_sum, max_frames=600):
    """A downsampled cost matrix for display, and the frame index each row/column starts at."""
    fa = max(1, int(np.ceil(len(A) / max_frames)))
    fb = max(1, int(np.ceil(len(B) / max_frames)))
    a = dtw.pool_features(A, fa, features.BLOCK_SIZES) if fa > 1 else A
    b = dtw.pool_features(B, fb, features.BLOCK_SIZES) if fb > 1 else B
    return (weight_sum - a @ b.T).astype(np.float32), np.arange(len(a)) * fa, np.arange(len(b)) * fb


# ---- the aligner ------------------------------------------------------------------------------

_midi_side_lock = threading.Lock()
_midi_side_pool = None


def _midi_side_executor() -> concurrent.futures.ThreadPoolExecutor:
    """One long-lived helper thread for the MIDI side of :func:`align`; long-lived so that its
    FluidSynth synth (cached per thread by :mod:`engine.media`) is loaded once per process."""
    global _midi_side_pool
    with _midi_side_lock:
        if _midi_side_pool is None:
            _midi_side_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="earworm-midi-side")
        return _midi_side_pool


def _timed(fn, *args, **kwargs):
    """``fn``'s result, its wall time and its thread's CPU time (s)."""
    t, cpu = time.perf_counter(), time.thread_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t, time.thread_time() - cpu


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
        display spectrogram made — before the recording's other features, the MIDI side and the
        DTW — so a window can draw the recording and the unaligned notes meanwhile.
        ``spectrogram`` is ``(S_db, bin_midi_pitches, times_s)`` or None without ``display``. Not
        called when the alignment comes from the cache.

    Returns
    -------
    Alignment

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
    midi_path = None
    t, cpu = time.perf_counter(), time.thread_time()
    if isinstance(midi, (str, Path)):
        midi_path = str(midi)
        midi = media.load_midi(midi_path)
    timings["read_midi_s"], timings["read_midi_cpu_s"] = time.perf_counter() - t, time.thread_time() - cpu
    audio_path = str(audio)
    # The whole result is cached too, keyed by both files' content and every parameter; looked up
    # first, so that a cached alignment neither waits for the MIDI side nor shows a preview.
    solved, solved_key = None, None
    if midi_path is not None:
        media.audio_duration(audio_path)  # a missing or unreadable recording: AudioError naming it
        key_params = dict(asdict(params), midi=cache.file_hash(midi_path), version=SOLVER_VERSION)
        solved_key = cache.cache_key("alignment/v1", cache.file_hash(audio_path), key_params)
        solved = cache.load(solved_key)
    hits["alignment"] = solved is not None

    checkpoint(0.05, "analysing the recording")
    # The MIDI side (FluidSynth, which runs without the GIL) works on a helper thread while this
    # thread analyses the recording (numpy/scipy, also without the GIL): two cores, both busy.
    stop_midi_side = threading.Event()
    midi_side = _midi_side_executor().submit(
        _timed, midi_features, midi, midi_path, params,
        cancel=lambda: stop_midi_side.is_set() or (cancel is not None and cancel()))
    try:
        t, cpu = time.perf_counter(), time.thread_time()
        previewed = []

        def early_preview(spectrogram, duration_s):  # the recording decoded, its display made
            previewed.append(True)
            preview(midi, duration_s, spectrogram)

        wants_preview = preview is not None and solved is None
        recording, hits["audio"] = recording_features(audio_path, params, display,
                                                      on_display=early_preview if wants_preview else None)
        B, audio_dur = recording["chroma"], float(recording["duration_s"])
        spectrogram = ((recording["display_db"], recording["display_pitches"], recording["display_times_s"])
                       if display else None)
        timings["audio_features_s"] = time.perf_counter() - t
        timings["audio_features_cpu_s"] = time.thread_time() - cpu  # the work, whatever the machine's load
        if wants_preview and not previewed:  # the recording's features came from the cache
            preview(midi, audio_dur, spectrogram)
        checkpoint(0.45, "analysing the MIDI" + (" (synthesizing)" if params.midi_features == "synth" else ""))
        t = time.perf_counter()
        while True:  # wait for the MIDI side, still answering cancel
            try:
                (midi_arrays, hits["midi"]), timings["midi_features_s"], timings["midi_features_cpu_s"] = \
                    midi_side.result(timeout=0.1)
                A = midi_arrays["chroma"]
                break
            except concurrent.futures.TimeoutError:
                checkpoint(0.45, "analysing the MIDI" + (" (synthesizing)" if params.midi_features == "synth" else ""))
            except InterruptedError:
                raise Cancelled() from None
        timings["midi_wait_s"] = time.perf_counter() - t
    finally:
        stop_midi_side.set()  # on an error or cancel here, the MIDI side stops too
    if len(A) < 2 or len(B) < 2:
        raise AlignmentError(audio_path if len(B) < 2 else midi_path, "too short to align")

    checkpoint(0.6, "aligning")
    t, cpu = time.perf_counter(), time.thread_time()
    if solved is None:
        solved = _solve(midi_arrays, recording, midi, midi_path, audio_dur, params, cancel, checkpoint)
        if solved_key is not None:
            cache.store(solved_key, solved)
    timings["align_s"] = time.perf_counter() - t
    timings["align_cpu_s"] = time.thread_time() - cpu
    frame_s = params.hop_length / params.sr
    anchors = (solved["anchor_midi_s"], solved["anchor_audio_s"]) if len(solved["anchor_midi_s"]) >= 2 else (None, None)
    timings["total_s"] = time.perf_counter() - t0
    report(1.0, "done")
    pi, pj = solved["path_i"], solved["path_j"]
    return Alignment(
        path_midi_s=pi * frame_s, path_audio_s=pj * frame_s, confidence=float(solved["confidence"]),
        midi_duration_s=float(midi.get_end_time()), audio_duration_s=audio_dur, midi=midi,
        midi_path=midi_path, audio_path=audio_path,
        params=dict(asdict(params), median_cost=float(solved["median_cost"]), band_cells=int(solved["band_cells"]),
                    frames=[len(A), len(B)],
                    instruments_present=[bool(x) for x in solved.get("instruments_present", ())]),
        timings=timings, cache_hits=hits, cost_preview=solved["preview"],
        cost_preview_midi_s=solved["preview_rows"] * frame_s, cost_preview_audio_s=solved["preview_cols"] * frame_s,
        spectrogram=spectrogram, anchor_midi_s=anchors[0], anchor_audio_s=anchors[1],
    )


SOLVER_VERSION = 2  # bump when _solve's results change, so cached alignments are recomputed


def _chroma_dtw(A, B, params: AlignParams, cancel):
    """Multiscale chroma DTW; returns (path_i, path_j, median_cost, band_cells)."""
    rng = np.random.default_rng(0)
    median_cost = float(np.median(dtw.sampled_costs(A, B, rng.integers(0, len(A), 20000),
                                                    rng.integers(0, len(B), 20000), 1.0)))
    try:
        pi, pj, _, band_cells = dtw.dtw_multiscale(
            A, B, features.BLOCK_SIZES, penalty=params.penalty_scale * median_cost, skip_cost=median_cost,
            gully=params.gully, radius=params.radius_frames, max_coarse_frames=params.max_coarse_frames,
            cancel=cancel)
    except InterruptedError:
        raise Cancelled() from None
    return pi, pj, median_cost, band_cells


def _solve(midi_arrays, recording, midi, midi_path, audio_dur, params: AlignParams, cancel, checkpoint) -> dict:
    """DTW, the note-level pass and confidence for the MIDI's and the recording's features."""
    weight_sum = 1.0  # cosine distance of unit chroma vectors
    A, B = midi_arrays["chroma"], recording["chroma"]
    pi, pj, median_cost, band_cells = _chroma_dtw(A, B, params, cancel)
    anchors = (np.zeros(0), np.zeros(0))
    present = np.ones(len(midi.instruments), dtype=bool)
    if params.refine_onsets:
        from engine import refine

        checkpoint(0.7, "finding the instruments")
        share = refine.instrument_presence(midi, pi, pj, recording["chroma_energy"], params.sr, params.hop_length)
        present = share >= params.presence_threshold
        if present.any() and not present.all():
            # Parts the recording lacks pull the DTW off: align again without them.
            kept = np.nonzero(present)[0]
            sub = copy.copy(midi)
            sub.instruments = [midi.instruments[k] for k in kept]
            stop = lambda: cancel is not None and cancel()  # noqa: E731
            try:  # on the MIDI side's thread: its synth is loaded
                midi_arrays, _ = _midi_side_executor().submit(midi_features, sub, midi_path, params, kept, stop).result()
            except InterruptedError:
                raise Cancelled() from None
            A = midi_arrays["chroma"]
            pi, pj, median_cost, band_cells = _chroma_dtw(A, B, params, cancel)
        else:
            sub, present = midi, np.ones(len(midi.instruments), dtype=bool)
        checkpoint(0.8, "placing notes")
        fps = params.sr / params.onset_hop_length
        frame_s = params.hop_length / params.sr
        try:
            fine_midi_s, fine_audio_s = refine.fine_path(
                midi_arrays["fine_chroma"], midi_arrays["onset_strength"], recording["fine_chroma"],
                recording["onset_strength"], fps, pj * frame_s, pi * frame_s, params.fine_onset_weight,
                params.fine_radius_s, params.penalty_scale, params.gully, passes=params.fine_passes, cancel=cancel)
        except InterruptedError:
            raise Cancelled() from None
        anchors = refine.note_anchors(sub, fine_midi_s, fine_audio_s, recording["snap_onset_strength"], fps, audio_dur,
                                      snap_frames=params.snap_frames)

    checkpoint(0.9, "scoring")
    rng = np.random.default_rng(1)
    on_path = dtw.path_costs(A, B, pi, pj, weight_sum)
    rows = rng.integers(pi[0], pi[-1] + 1, 20000)
    cols = rng.integers(pj[0], pj[-1] + 1, 20000)
    sub_mean = float(np.mean(dtw.sampled_costs(A, B, rows, cols, weight_sum)))
    preview, prev_rows, prev_cols = cost_preview(A, B, weight_sum)
    return {
        "path_i": pi, "path_j": pj, "anchor_midi_s": anchors[0], "anchor_audio_s": anchors[1],
        "confidence": np.array(np.clip(1.0 - on_path.mean() / max(sub_mean, 1e-9), 0.0, 1.0)),
        "median_cost": np.array(median_cost), "band_cells": np.array(band_cells),
        "instruments_present": present,
        "preview": preview, "preview_rows": prev_rows, "preview_cols": prev_cols,
    }
