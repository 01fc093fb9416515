"""Inputs of the cross-modal embedding networks: log-frequency audio frames, piano-roll frames,
and the fixed-size snippets cut from them.

Task
----
The embedding models of :mod:`engine.embed` map a ~2 s excerpt of a recording and a ~2 s excerpt
of a MIDI file's piano roll into one 32-d space. This module turns files into the arrays those
models read. Training (``models/embed``) and inference use these same functions, so the features
can never drift apart; :data:`FEATURE_VERSION` names the recipe and is written into the ONNX
files' metadata (a model trained on other features is refused).

Conventions
-----------
- Frames: ``SR`` = 22050 Hz, ``HOP_LENGTH`` = 2048 samples (92.9 ms, 10.77 frames/s) for both
  modalities; audio frames are centred Hann STFT frames (``N_FFT`` = 4096), MIDI frame ``i``
  covers MIDI seconds ``[i, i + 1) * HOP_LENGTH / SR``.
- Audio: magnitude summed into semitone bins from MIDI pitch 21 (A0) to 120 (C9) — 100 bins, the
  piano's range plus an octave of harmonics — kept linear here and compressed per snippet.
- MIDI: 88 piano keys (21…108); a note's onset frame is 1.0, the frames it sustains 0.5; drum
  tracks are left out (pitch numbers there name instruments, not pitches).
- Snippets: ``SNIPPET_FRAMES`` = 24 frames (2.23 s), shape ``(n, 1, n_bins, 24)`` float32
  (pitch low → high, time left → right). Audio snippets are ``log1p(100 · E / max(E))`` over the
  snippet, scaled to [0, 1], so the recording's level does not matter.
"""
from __future__ import annotations

import numpy as np

from engine.features import _fold_chroma, pitch_energy

FEATURE_VERSION = "embed-v1"
SR = 22050
HOP_LENGTH = 2048
N_FFT = 4096
SNIPPET_FRAMES = 24
AUDIO_MIDI_LO, AUDIO_MIDI_HI = 21, 120
ROLL_MIDI_LO, ROLL_MIDI_HI = 21, 108
N_AUDIO_BINS = AUDIO_MIDI_HI - AUDIO_MIDI_LO + 1  # 100
N_ROLL_BINS = ROLL_MIDI_HI - ROLL_MIDI_LO + 1  # 88
# Below this summed magnitude a snippet counts as silence (a full-scale sine gives ~1000).
SILENCE_MAGNITUDE = 0.05


def frames_per_second() -> float:
    """Feature frames per second (both modalities)."""
    return SR / HOP_LENGTH


def audio_frames(y: np.ndarray, sr: int = SR) -> np.ndarray:
    """Linear magnitude per semitone bin, frame by frame.

    Parameters
    ----------
    y : np.ndarray
        Mono samples at ``sr`` (resample to :data:`SR` first; other rates are refused so that
        frames always mean the same duration).
    sr : int
        Sample rate in Hz.

    Returns
    -------
    np.ndarray, float32, shape (n_frames, N_AUDIO_BINS)
    """
    if sr != SR:
        raise ValueError(f"audio_frames expects {SR} Hz audio, got {sr} Hz")
    return pitch_energy(y, SR, HOP_LENGTH, N_FFT, AUDIO_MIDI_LO, AUDIO_MIDI_HI, 1)


def midi_frames(midi, n_frames: int | None = None) -> np.ndarray:
    """Piano roll of a PrettyMIDI on the feature frame grid (onsets 1.0, sustain 0.5).

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI
    n_frames : int, optional
        Length of the result; by default the MIDI's end time plus one frame.

    Returns
    -------
    np.ndarray, float32, shape (n_frames, N_ROLL_BINS)
    """
    fps = frames_per_second()
    if n_frames is None:
        n_frames = int(np.ceil(midi.get_end_time() * fps)) + 1
    roll = np.zeros((n_frames, N_ROLL_BINS), dtype=np.float32)
    starts, ends, pitches = [], [], []
    for inst in midi.instruments:
        if inst.is_drum:
            continue
        for n in inst.notes:
            starts.append(n.start)
            ends.append(n.end)
            pitches.append(n.pitch)
    if not starts:
        return roll
    pitch = np.asarray(pitches) - ROLL_MIDI_LO
    keep = (pitch >= 0) & (pitch < N_ROLL_BINS)
    first = np.floor(np.asarray(starts) * fps).astype(int)[keep]
    last = np.maximum(np.ceil(np.asarray(ends) * fps).astype(int)[keep], first + 1)
    pitch = pitch[keep]
    for a, b, p in zip(first, np.minimum(last, n_frames), pitch):
        if a < n_frames:
            roll[a:b, p] = np.maximum(roll[a:b, p], 0.5)
    inside = first < n_frames
    roll[first[inside], pitch[inside]] = 1.0
    return roll


def snippet_starts(n_frames: int, hop_frames: int) -> np.ndarray:
    """First frames of the snippets cut every ``hop_frames`` frames (the last one flush with the end).

    A sequence shorter than one snippet still gives one snippet (padded with zeros).
    """
    if n_frames <= SNIPPET_FRAMES:
        return np.zeros(1, dtype=int)
    starts = np.arange(0, n_frames - SNIPPET_FRAMES + 1, max(1, int(hop_frames)))
    if starts[-1] != n_frames - SNIPPET_FRAMES:
        starts = np.append(starts, n_frames - SNIPPET_FRAMES)
    return starts


def cut_snippets(frames: np.ndarray, starts) -> np.ndarray:
    """Windows of ``SNIPPET_FRAMES`` frames starting at ``starts`` → (n, 1, n_bins, SNIPPET_FRAMES).

    Frames past either end are zeros.
    """
    frames = np.asarray(frames, dtype=np.float32)
    starts = np.asarray(starts, dtype=int)
    pad = SNIPPET_FRAMES
    padded = np.concatenate([np.zeros((pad, frames.shape[1]), np.float32), frames,
                             np.zeros((pad, frames.shape[1]), np.float32)])
    idx = starts[:, None] + pad + np.arange(SNIPPET_FRAMES)[None, :]
    idx = np.clip(idx, 0, len(padded) - 1)
    return np.ascontiguousarray(padded[idx].transpose(0, 2, 1)[:, None])


def compress_audio_snippets(snippets: np.ndarray) -> np.ndarray:
    """Per-snippet log compression to [0, 1] (see the module docstring); in place and returned."""
    peak = snippets.reshape(len(snippets), -1).max(axis=1)
    scale = 100.0 / np.maximum(peak, SILENCE_MAGNITUDE)
    snippets *= scale[:, None, None, None]
    np.log1p(snippets, out=snippets)
    snippets /= np.log1p(100.0)
    return snippets


def audio_snippets(frames: np.ndarray, starts) -> np.ndarray:
    """Model-ready audio snippets from :func:`audio_frames` output."""
    return compress_audio_snippets(cut_snippets(frames, starts))


def midi_snippets(roll: np.ndarray, starts) -> np.ndarray:
    """Model-ready piano-roll snippets from :func:`midi_frames` output."""
    return cut_snippets(roll, starts)


def is_silent(snippets: np.ndarray, raw: bool = False) -> np.ndarray:
    """Boolean per snippet: nothing sounds in it (for MIDI rolls, or raw audio magnitudes)."""
    flat = snippets.reshape(len(snippets), -1)
    return flat.max(axis=1) < (SILENCE_MAGNITUDE if raw else 1e-6)


# ---- chroma on the same frames (identification's verification stage, engine.embed) -----------

# Partials added to each piano-roll note before folding to pitch classes (semitones above the
# fundamental, relative weight), so MIDI chroma resembles the chroma of a sounding note.
ROLL_PARTIALS = ((0, 1.0), (12, 0.5), (19, 0.33), (24, 0.25), (28, 0.2))


def _mean_free_unit(chroma: np.ndarray) -> np.ndarray:
    """Remove each frame's mean and scale it to unit length.

    Without the mean every pair of frames that has some energy scores ~0.7 and pieces hardly
    differ; mean-free, the cosine compares the frames' profiles. Silent frames stay zero.
    """
    chroma = chroma - chroma.mean(axis=1, keepdims=True)
    return chroma / np.maximum(np.linalg.norm(chroma, axis=1, keepdims=True), 1e-6)


def audio_chroma(frames: np.ndarray) -> np.ndarray:
    """Mean-free unit chroma (n_frames, 12) of :func:`audio_frames` output (log-compressed first)."""
    X = np.asarray(frames, np.float32)
    X = np.log1p(100.0 * X / max(float(X.max(initial=0.0)), SILENCE_MAGNITUDE))
    return _mean_free_unit(_fold_chroma(X, AUDIO_MIDI_LO))


def roll_chroma(roll: np.ndarray) -> np.ndarray:
    """Mean-free unit chroma (n_frames, 12) of :func:`midi_frames` output, partials included."""
    roll = np.minimum(np.asarray(roll, np.float32), 1.0)
    X = np.zeros((len(roll), roll.shape[1] + max(s for s, _ in ROLL_PARTIALS)), np.float32)
    for semitones, weight in ROLL_PARTIALS:
        X[:, semitones:semitones + roll.shape[1]] += weight * roll
    return _mean_free_unit(np.log1p(3.0 * _fold_chroma(X, ROLL_MIDI_LO)))
