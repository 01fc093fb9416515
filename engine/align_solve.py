"""Solving an alignment from the features of both sides: DTW, the note-level pass, the confidence.

Task
----
:func:`solve` takes the MIDI's and the recording's features (:mod:`engine.align_features`) and
returns everything :class:`engine.align.Alignment` is made of, as arrays (what the cache stores):
multiscale chroma DTW with additive penalty and gully (:mod:`engine.dtw`) → instruments the
recording lacks left out and the DTW redone (with the note-level pass, or ``find_instruments``) →
fine DTW at the onset hop and note-onset anchors (:mod:`engine.refine`; ``refine_onsets``) →
confidence and a cost preview for display.

Conventions
-----------
Frames at ``params.hop_length`` (the DTW) and ``params.onset_hop_length`` (the note-level pass);
the MIDI is rows (``i``), the recording columns (``j``). Confidence as in the Lakh MIDI dataset:
``1 - mean cost on the path / mean cost of the distance submatrix the path spans`` (estimated from
random cells), clipped to [0, 1]. ``cancel()`` returning True raises ``InterruptedError``.
"""
from __future__ import annotations

import copy

import numpy as np

from engine import dtw, features, refine
from engine.streaming import release_memory

SOLVER_VERSION = 4  # bump when solve's results change, so cached alignments are recomputed


def cost_preview(A, B, weight_sum, max_frames=600):
    """A downsampled cost matrix for display, and the frame index each row/column starts at."""
    fa = max(1, int(np.ceil(len(A) / max_frames)))
    fb = max(1, int(np.ceil(len(B) / max_frames)))
    a = dtw.pool_features(A, fa, features.BLOCK_SIZES) if fa > 1 else A
    b = dtw.pool_features(B, fb, features.BLOCK_SIZES) if fb > 1 else B
    a, b = np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32)
    return dtw.cost_matrix(a, b, np.float32(weight_sum)), np.arange(len(a)) * fa, np.arange(len(b)) * fb


def chroma_dtw(A, B, params, cancel=None):
    """Multiscale chroma DTW; returns (path_i, path_j, median_cost, band_cells)."""
    rng = np.random.default_rng(0)
    median_cost = float(np.median(dtw.sampled_costs(A, B, rng.integers(0, len(A), 20000),
                                                    rng.integers(0, len(B), 20000), 1.0)))
    pi, pj, _, band_cells = dtw.dtw_multiscale(
        A, B, features.BLOCK_SIZES, penalty=params.penalty_scale * median_cost, skip_cost=median_cost,
        gully=params.gully, radius=params.radius_frames, max_coarse_frames=params.max_coarse_frames, cancel=cancel)
    return pi, pj, median_cost, band_cells


def solve(sides, midi, audio_dur, params, subset_features, cancel=None, checkpoint=None) -> dict:
    """DTW, the note-level pass and confidence for the MIDI's and the recording's features.

    Parameters
    ----------
    sides : dict
        ``{"midi": arrays, "recording": arrays}``: the features of the MIDI (all instruments) and
        of the recording. Consumed: each array is let go as soon as it is no longer needed (the
        fine features of a 20-minute pair are tens of MB).
    midi : pretty_midi.PrettyMIDI
    audio_dur : float
        The recording's duration (s).
    params : engine.align.AlignParams
    subset_features : callable(sub_midi, kept_indices or None, chroma) -> dict
        The MIDI's features with only some instruments (those the recording contains), or with
        all of them (None; ``chroma``: the whole MIDI's) when ``sides["midi"]`` holds the chroma
        only (the note-level features wait to be made once, of the instruments that count).
    checkpoint : callable(fraction, message), optional

    Returns
    -------
    dict of arrays: ``path_i``, ``path_j``, ``anchor_midi_s``, ``anchor_audio_s``, ``confidence``,
    ``median_cost``, ``band_cells``, ``instruments_present``, ``preview``, ``preview_rows``,
    ``preview_cols``, ``frames`` (n_midi, n_audio).
    """
    report = checkpoint or (lambda fraction, message: None)
    weight_sum = 1.0  # cosine distance of unit chroma vectors
    midi_arrays, recording = sides.pop("midi"), sides.pop("recording")
    A, B = midi_arrays["chroma"], recording["chroma"]
    n_midi_frames = len(A)
    pi, pj, median_cost, band_cells = chroma_dtw(A, B, params, cancel)
    anchors = (np.zeros(0), np.zeros(0))
    present = np.ones(len(midi.instruments), dtype=bool)
    sub = midi
    if params.refine_onsets or params.find_instruments:
        report(0.7, "finding the instruments")
        share = refine.instrument_presence(midi, pi, pj, recording.pop("chroma_energy"), params.sr, params.hop_length)
        present = share >= params.presence_threshold
        if present.any() and not present.all():
            # Parts the recording lacks pull the DTW off: align again without them.
            kept = np.nonzero(present)[0]
            sub = copy.copy(midi)
            sub.instruments = [midi.instruments[k] for k in kept]
            midi_arrays = None  # the whole MIDI's features: no longer needed
            release_memory(len(recording.get("fine_chroma", recording["chroma"])))
            midi_arrays = subset_features(sub, kept, None)
            A = midi_arrays["chroma"]
            pi, pj, median_cost, band_cells = chroma_dtw(A, B, params, cancel)
        else:
            present = np.ones(len(midi.instruments), dtype=bool)
    if params.refine_onsets:
        if "fine_chroma" not in midi_arrays:
            midi_arrays = subset_features(midi, None, midi_arrays["chroma"])
        report(0.8, "placing notes")
        fps = params.sr / params.onset_hop_length
        frame_s = params.hop_length / params.sr
        release_memory(len(recording["fine_chroma"]))
        fine_B = refine.fine_recording_block(recording.pop("fine_chroma"), recording.pop("onset_strength"),
                                             params.fine_onset_weight)
        midi_onset_block = refine.onset_block(midi_arrays.pop("onset_strength"))
        fine_midi_s, fine_audio_s = refine.fine_path_from_blocks(
            midi_arrays.pop("fine_chroma"), midi_onset_block, fine_B, fps, pj * frame_s, pi * frame_s,
            params.fine_onset_weight, params.fine_radius_s, params.penalty_scale, params.gully,
            passes=params.fine_passes, cancel=cancel)
        n_fine = len(fine_B)
        del fine_B, midi_onset_block
        release_memory(n_fine)
        anchors = refine.note_anchors(sub, fine_midi_s, fine_audio_s, recording.pop("snap_onset_strength"), fps,
                                      audio_dur, snap_frames=params.snap_frames)

    report(0.9, "scoring")
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
        "frames": np.array([n_midi_frames, len(B)]),
    }
