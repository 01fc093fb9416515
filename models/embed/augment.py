"""Training-time augmentation of (audio, MIDI) snippet pairs: transposition and time stretch.

Task
----
The embeddings are trained on ~300 pieces and overfit them (training loss near zero while the
validation MRR stalls). Both transformations below change an audio snippet and its MIDI snippet
*together*, so the pair still matches and the model still learns absolute pitch (a piece a fifth
higher remains another piece to a library), but each piece stands for many keys and tempi.

Conventions
-----------
- Frames are ``(n_frames, n_bins)`` as :mod:`engine.embed_features` makes them (audio: linear
  magnitude in semitone bins, MIDI 21–120; MIDI: piano-roll keys 21–108); snippets are
  ``(n, 1, n_bins, SNIPPET_FRAMES)``.
- Transposition moves the semitone bins up by ``semitones``; what leaves the range is lost. The
  bins it vacates take the edge bin's values for audio (the noise floor there: pink noise has
  equal energy per semitone) and 0 for the piano roll (no note).
- A time stretch by ``factor`` samples ``SNIPPET_FRAMES`` frames spaced ``factor`` apart about
  the snippet's centre: factor > 1 = faster music. Audio is interpolated linearly (magnitudes);
  the piano roll takes the nearest frame (its values, onset 1.0 / sustain 0.5, are labels).
"""
from __future__ import annotations

import numpy as np

from engine import embed_features as ef


def transpose(snippets: np.ndarray, semitones, fill_edge: bool) -> np.ndarray:
    """Shift each snippet's pitch bins by its number of ``semitones`` (a new array).

    Parameters
    ----------
    snippets : np.ndarray, shape (n, 1, n_bins, T)
    semitones : array of int, shape (n,)
        Positive = up.
    fill_edge : bool
        Vacated bins repeat the nearest remaining bin (audio) instead of 0 (piano roll).
    """
    out = np.array(snippets, dtype=np.float32, copy=True)
    for i, s in enumerate(np.asarray(semitones, dtype=int)):
        x = snippets[i, 0]
        if s > 0:
            out[i, 0, s:] = x[:-s]
            out[i, 0, :s] = x[0] if fill_edge else 0.0
        elif s < 0:
            out[i, 0, :s] = x[-s:]
            out[i, 0, s:] = x[-1] if fill_edge else 0.0
    return out


def stretched_snippets(frames: np.ndarray, starts, factors, interpolate: bool) -> np.ndarray:
    """Snippets of ``SNIPPET_FRAMES`` frames about the centres of ``starts``, ``factors`` frames apart.

    With factor 1 this is :func:`engine.embed_features.cut_snippets`. Frames past either end are zeros.

    Parameters
    ----------
    frames : np.ndarray, shape (n_frames, n_bins)
    starts : array of int, shape (n,)
        First frames of the unstretched snippets.
    factors : array of float, shape (n,)
        Frames of music per snippet frame.
    interpolate : bool
        Linear interpolation between frames (audio), else the nearest frame (piano roll).

    Returns
    -------
    np.ndarray, float32, shape (n, 1, n_bins, SNIPPET_FRAMES)
    """
    frames = np.asarray(frames, dtype=np.float32)
    factors = np.asarray(factors, dtype=float)
    T = ef.SNIPPET_FRAMES
    offsets = np.arange(T) - (T - 1) / 2
    pos = np.asarray(starts, float)[:, None] + (T - 1) / 2 + offsets[None, :] * factors[:, None]
    pad = int(np.ceil(T * max(1.0, float(factors.max(initial=1.0))))) + 2
    padded = np.concatenate([np.zeros((pad, frames.shape[1]), np.float32), frames,
                             np.zeros((pad, frames.shape[1]), np.float32)])
    pos = np.clip(pos + pad, 0, len(padded) - 1)
    if interpolate:
        lo = np.minimum(np.floor(pos).astype(int), len(padded) - 2)
        w = (pos - lo)[..., None].astype(np.float32)
        out = (1 - w) * padded[lo] + w * padded[lo + 1]
    else:
        out = padded[np.round(pos).astype(int)]
    return np.ascontiguousarray(out.transpose(0, 2, 1)[:, None])


def transposes(transpose_range) -> bool:
    """Whether ``transpose_range`` (semitones, inclusive) transposes anything: not None nor (0, 0)."""
    return bool(transpose_range) and tuple(transpose_range) != (0, 0)


def stretches(stretch_range) -> bool:
    """Whether ``stretch_range`` (factors) stretches anything: not None nor (1, 1)."""
    return bool(stretch_range) and tuple(stretch_range) != (1, 1)


def draw(rng, n: int, transpose_range, stretch_range) -> tuple[np.ndarray, np.ndarray]:
    """Random semitones (uniform integers, inclusive range) and stretch factors (log-uniform) for n pairs.

    A range of None (or (0, 0) / (1, 1)) leaves that transformation out; nothing is drawn from
    ``rng`` for it, so switching one off does not change the other's draws' meaning.
    """
    semitones = np.zeros(n, dtype=int)
    factors = np.ones(n)
    if transposes(transpose_range):
        semitones = rng.integers(int(transpose_range[0]), int(transpose_range[1]) + 1, size=n)
    if stretches(stretch_range):
        lo, hi = np.log(stretch_range[0]), np.log(stretch_range[1])
        factors = np.exp(rng.uniform(lo, hi, size=n))
    return semitones, factors
