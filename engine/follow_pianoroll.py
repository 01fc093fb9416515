"""Reference features for the score follower straight from the MIDI's notes (no synthesis).

Task
----
Model what the causal extractor of :mod:`engine.follow_features` would see if the MIDI were
played: per semitone, each note contributes its velocity with a slow decay from onset to offset
(plus a release), and weaker energy at its 2nd-5th harmonics; drums add a short broadband burst.
The semitone energies are smeared by the same Hann windows that *end* at each frame (the live
extractor's FFT windows), then folded and finished by exactly the live extractor's running-level
code (:meth:`engine.follow_features.StreamingFeatures.finish_energies`), so both sides share
compression, onset detection and normalisation.

Conventions as in :mod:`engine.follow_features`: frame ``k`` ends at ``(k + 1) * hop_length / sr``.
"""
from __future__ import annotations

import numpy as np

from engine.follow_features import CHROMA_MIDI_RANGE, ONSET_MIDI_RANGE, StreamFeatureParams, StreamingFeatures

HARMONICS = ((0, 1.0), (12, 0.5), (19, 0.3), (24, 0.2), (28, 0.12))  # semitone offset, relative level
RELEASE_S = 0.15
DECAY_S = 1.5


def semitone_energies(midi, sr: int, hop_length: int, n_frames: int | None = None) -> np.ndarray:
    """Modelled magnitude per MIDI pitch (0-127) and frame, before any analysis window.

    Returns
    -------
    E : np.ndarray, float32, shape (n_frames, 128)
    """
    fps = sr / hop_length
    if n_frames is None:
        n_frames = int(np.ceil((midi.get_end_time() + RELEASE_S + 1.0) * fps)) + 1
    E = np.zeros((n_frames, 128), dtype=np.float32)
    for inst in midi.instruments:
        for note in inst.notes:
            f0 = int(round(note.start * fps))
            if f0 >= n_frames:
                continue
            v = note.velocity / 127.0
            if inst.is_drum:
                f1 = min(n_frames, f0 + max(1, int(0.1 * fps)))
                E[f0:f1, 36:108] += 0.05 * v * np.exp(-np.arange(f1 - f0) / (0.03 * fps))[:, None]
                continue
            f1 = min(n_frames, max(f0 + 1, int(round((note.end + RELEASE_S) * fps))))
            envelope = v * np.maximum(np.exp(-np.arange(f1 - f0) / (DECAY_S * fps)), 0.3)
            for shift, gain in HARMONICS:
                p = note.pitch + shift
                if p < 128:
                    E[f0:f1, p] += gain * envelope
    return E


def _causal_window_smear(E: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """What a Hann window of ``n_fft`` samples ending at each frame sees of ``E`` (per column)."""
    width = max(1, int(round(n_fft / hop_length)))
    w = np.hanning(width + 2)[1:-1]
    w = (w / w.sum()).astype(np.float32)
    out = np.empty_like(E)
    for c in range(E.shape[1]):
        out[:, c] = np.convolve(E[:, c], w)[: E.shape[0]]  # causal: only the past frames
    return out


def pianoroll_energies(midi, params: StreamFeatureParams | None = None, n_frames: int | None = None):
    """What the live extractor's windows would see of the MIDI's notes, before its running-level part.

    Returns
    -------
    C : np.ndarray, float32, shape (n_frames, 12)
        Chroma energies.
    Eo : np.ndarray, float32, shape (n_frames, 72)
        Onset-window semitone magnitudes (as :meth:`StreamingFeatures.push_energies`).
    """
    p = params or StreamFeatureParams()
    E = semitone_energies(midi, p.sr, p.hop_length, n_frames)
    lo_c, hi_c = CHROMA_MIDI_RANGE
    lo_o, hi_o = ONSET_MIDI_RANGE
    chroma_energy = _causal_window_smear(E[:, lo_c:hi_c + 1], p.n_fft_chroma, p.hop_length)
    onset_energy = _causal_window_smear(E[:, lo_o:hi_o + 1], p.n_fft_onset, p.hop_length)
    return chroma_energy @ StreamingFeatures(p).chroma_fold, onset_energy


def pianoroll_stream_features(midi, params: StreamFeatureParams | None = None) -> np.ndarray:
    """Follower reference features of a MIDI without synthesis.

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI
    params : StreamFeatureParams, optional

    Returns
    -------
    F : np.ndarray, float32, shape (n_frames, 25)
        Laid out like :func:`engine.follow_features.stream_features`.
    """
    p = params or StreamFeatureParams()
    return StreamingFeatures(p).finish_energies(*pianoroll_energies(midi, p))
