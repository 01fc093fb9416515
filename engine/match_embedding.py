"""Library matching's first stage: whole-file scores from the cross-modal snippet embeddings.

Task
----
Before the chroma cascade of :mod:`engine.match_stages` runs, each MIDI keeps only its top
``embedding_k`` recordings by an embedding score (:mod:`engine.embed`: ~2 s snippets of a MIDI's
piano roll and of a recording mapped into one 32-d space). Two file-level scores:

- ``"summary"`` — the dot product of the files' :func:`engine.embed.file_summary` vectors (the
  normalised mean of their snippet vectors): one matrix product of 32-d rows for all pairs, as
  cheap as the chroma prune;
- ``"set"`` — set to set: for each snippet of the recording its best similarity among the MIDI's
  snippets, averaged over the recording (how :func:`engine.embed.identify` ranks pieces for a
  clip), plus the same from the MIDI's side, halved. Matrix products of all snippets in blocks:
  ~10⁴ times the summary's cost.

Either score matrix is z-scored by row and by column like the chroma prune
(:func:`engine.match_stages.loo_z`), so no file is favoured by its texture; then each MIDI keeps
its ``embedding_k`` best recordings, and the chroma prune chooses its ``k_prune`` among those.

Conventions
-----------
- Per-file arrays come from :func:`embedding_features` (run inside
  :func:`engine.match.features_task`, so on the Dask workers too; the snippet vectors are cached
  by content and model in :mod:`engine.cache`, and the run directory keeps them with the other
  features): ``emb_summary`` (32,), ``emb_vectors`` (n_snippets, 32), unit rows.
- Score matrices are ``[midi, audio]`` float32. A pair the embedding stage drops is at stage 0 of
  :class:`engine.match.MatchResult` and scores below every pair of its MIDI that it kept.

Metrics
-------
Recall at K (share of gold pairs whose recording is among the MIDI's K best) of the stage alone,
and the cascade's precision/recall/F1 with and without it:
``python -m tests.benchmarks.bench_embed_match`` (docs/BENCHMARKS.md).
"""
from __future__ import annotations

import numpy as np

from engine import match_stages as stages
from engine.errors import EarwormError, ModelError

SCORES = ("summary", "set")
BLOCK_CELLS = 1 << 24  # snippet-similarity cells per matrix product (64 MiB of float32)


def embedding_features(kind: str, path: str) -> dict:
    """``emb_summary`` and ``emb_vectors`` of one file, or ``{"error": reason}``."""
    from engine import embed

    try:
        sv = embed.midi_file_vectors(path) if kind == "midi" else embed.recording_vectors(path)
    except ModelError as exc:
        return {"error": f"embedding model: {exc.reason}"}
    except EarwormError as exc:
        return {"error": exc.reason}
    if len(sv) == 0:
        return {"error": "nothing to embed (no notes or only silence)"}
    vectors = np.ascontiguousarray(sv.vectors, np.float32)
    return {"emb_summary": embed.file_summary(vectors).astype(np.float32), "emb_vectors": vectors}


def check_models() -> None:
    """Raise :class:`engine.errors.ModelError` now when either embedding model is missing or wrong."""
    from engine import embed, models

    models.session(embed.AUDIO_MODEL)
    models.session(embed.MIDI_MODEL)


# ---- file-level scores ---------------------------------------------------------------------

def summary_scores(midi_summaries: np.ndarray, audio_summaries: np.ndarray) -> np.ndarray:
    """Cosine of the files' summary vectors, (n_midi, n_audio)."""
    return np.asarray(midi_summaries, np.float32) @ np.asarray(audio_summaries, np.float32).T


def set_scores(midi_vectors: list, audio_vectors: list, block_cells: int = BLOCK_CELLS) -> np.ndarray:
    """Set-to-set similarity of every (MIDI, recording) pair from their snippet vectors.

    ``S[m, a] = (mean_{q in a} max_{p in m} q·p + mean_{p in m} max_{q in a} q·p) / 2``, computed
    over blocks of whole recordings (one matrix product with all MIDI snippets per block, at most
    about ``block_cells`` cells).

    Parameters
    ----------
    midi_vectors, audio_vectors : list of np.ndarray, each (n_snippets, d), unit rows, non-empty

    Returns
    -------
    np.ndarray, float32, shape (n_midi, n_audio)
    """
    M = np.ascontiguousarray(np.concatenate(midi_vectors), np.float32)
    m_offsets = np.concatenate([[0], np.cumsum([len(v) for v in midi_vectors])])
    m_counts = np.diff(m_offsets).astype(np.float32)
    out = np.empty((len(midi_vectors), len(audio_vectors)), np.float32)
    rows_per_block = max(1, block_cells // max(len(M), 1))
    a = 0
    while a < len(audio_vectors):
        b, rows = a + 1, len(audio_vectors[a])
        while b < len(audio_vectors) and rows + len(audio_vectors[b]) <= rows_per_block:
            rows += len(audio_vectors[b])
            b += 1
        Q = np.ascontiguousarray(np.concatenate(audio_vectors[a:b]), np.float32)
        q_offsets = np.concatenate([[0], np.cumsum([len(v) for v in audio_vectors[a:b]])])
        S = Q @ M.T                                                   # (rows, all MIDI snippets)
        audio_side = np.maximum.reduceat(S, m_offsets[:-1], axis=1)   # each recording snippet's best per MIDI
        audio_side = np.add.reduceat(audio_side, q_offsets[:-1], axis=0) / np.diff(q_offsets)[:, None]
        midi_side = np.stack([S[q0:q1].max(axis=0) for q0, q1 in zip(q_offsets[:-1], q_offsets[1:])])
        # ^ each MIDI snippet's best per recording (slices: ~10× faster than reduceat along axis 0)
        midi_side = np.add.reduceat(midi_side, m_offsets[:-1], axis=1) / m_counts[None, :]
        out[:, a:b] = 0.5 * (audio_side + midi_side).T
        a = b
    return out


def zscored(S: np.ndarray) -> np.ndarray:
    """Leave-one-out row z + column z of a dense score matrix (as the chroma prune's)."""
    S = np.asarray(S, np.float64)
    n_rows, n_cols = S.shape
    z = stages.loo_z(S, S.sum(axis=1, keepdims=True), (S * S).sum(axis=1, keepdims=True), n_cols)
    z += stages.loo_z(S, S.sum(axis=0, keepdims=True), (S * S).sum(axis=0, keepdims=True), n_rows)
    return z.astype(np.float32)


def score_matrix(feats_midi: list, feats_audio: list, score: str = "summary") -> np.ndarray:
    """The z-scored embedding score of every pair from the per-file arrays of :func:`embedding_features`."""
    if score == "summary":
        S = summary_scores(np.stack([f["emb_summary"] for f in feats_midi]),
                           np.stack([f["emb_summary"] for f in feats_audio]))
    elif score == "set":
        S = set_scores([f["emb_vectors"] for f in feats_midi], [f["emb_vectors"] for f in feats_audio])
    else:
        raise ValueError(f"unknown embedding score {score!r} (one of {', '.join(SCORES)})")
    return zscored(S)


def stage_candidates(feats_midi: list, feats_audio: list, k: int, score: str = "summary") -> np.ndarray:
    """Each MIDI's ``k`` best recordings by the z-scored embedding score, best first, (n_midi, min(k, n_audio)).

    The summary score goes through :func:`engine.match_stages.prune` (blocked, parallel: the same
    z-scores as :func:`score_matrix` without the dense matrix, so it scales to 10 000 × 10 000).
    """
    if score == "summary":
        top, _ = stages.prune(np.stack([f["emb_summary"] for f in feats_midi]),
                                 np.stack([f["emb_summary"] for f in feats_audio]), k)
        return top
    return top_k(score_matrix(feats_midi, feats_audio, score), k)


def top_k(Z: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` best columns, best first (ties by column index), (n_rows, min(k, n_cols))."""
    k = min(int(k), Z.shape[1])
    part = np.argpartition(-Z, k - 1, axis=1)[:, :k] if k < Z.shape[1] else np.tile(np.arange(Z.shape[1]), (len(Z), 1))
    vals = np.take_along_axis(Z, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


# ---- the stage inside the cascade ----------------------------------------------------------

def restrict_top(Z1: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The chroma prune's top ``k`` per MIDI, chosen among the embedding stage's ``candidates``.

    Parameters
    ----------
    Z1 : np.ndarray, (n_midi, n_audio)
        Chroma prune z-scores.
    candidates : np.ndarray of int, (n_midi, embedding_k)
    k : int

    Returns
    -------
    np.ndarray of int, (n_midi, min(k, embedding_k)), best first by ``Z1``.
    """
    z = np.take_along_axis(Z1, candidates, axis=1)
    order = np.lexsort((candidates, -z), axis=1)[:, :min(k, candidates.shape[1])]
    return np.take_along_axis(candidates, order, axis=1)


def mark_dropped(decided: dict, candidates: np.ndarray) -> None:
    """Put the pairs the embedding stage dropped at stage 0, below every kept pair of their MIDI (in place)."""
    scores, stage = decided["scores"], decided["stage"]
    kept = np.zeros(stage.shape, bool)
    kept[np.repeat(np.arange(len(candidates)), candidates.shape[1]), candidates.ravel()] = True
    floor = np.where(kept, scores, np.inf).min(axis=1, keepdims=True)
    decided["scores"] = np.where(kept, scores, np.minimum(scores, floor * (1 - 1e-6)))
    stage[~kept] = 0
    gap = decided["gap"]
    for i in range(len(scores)):  # the runner-up may have moved
        row = np.sort(decided["scores"][i])[::-1]
        gap[i] = row[0] - (row[1] if len(row) > 1 else 0.0)
