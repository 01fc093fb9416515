"""Cross-modal audio ↔ MIDI embeddings: snippet retrieval, piece identification, open set.

Task
----
Two small CNNs (``models/embed_audio.onnx``, ``models/embed_midi.onnx``; recipe and metrics in
``models/MODEL_CARD_embed.md``) map a ~2 s excerpt of a recording and a ~2 s excerpt of a MIDI
piano roll to unit vectors in one 32-d space, where an excerpt and its score lie close together.
On top of that this module gives:

- :func:`retrieve` — exact nearest neighbours on the unit vectors (one matrix product; at
  library sizes of 10⁵–10⁶ snippets an approximate index buys nothing measurable), ranked by
  hubness-corrected similarity (:func:`hubness_corrected`, CSLS);
- :func:`identify` — which library piece a clip is: every snippet of the clip scores every
  piece by its best-matching snippet there; the best pieces by the mean of those scores are then
  verified by matching the clip in order, snippet by snippet and chroma frame by chroma frame,
  and the clip is called *unknown* when the best piece does not stand out from the rest;
- :func:`file_summary` — one vector per file (library matching's first pruning stage).

Conventions
-----------
- Vectors are float32 rows of unit length; similarity is the dot product (cosine).
- A :class:`Library` keeps its pieces' snippet vectors contiguous, piece by piece.
- Features (frames, snippets) come from :mod:`engine.embed_features`; models run through
  :mod:`engine.models` (onnxruntime), which refuses a missing or mismatched file with a
  :class:`~engine.errors.ModelError` naming it.
- Per-file vectors are cached by content hash and model file (:mod:`engine.cache`).

Metrics
-------
Snippet retrieval is scored by R@k (share of queries whose own counterpart is among the k most
similar candidates), MRR and median rank; identification by top-1 accuracy; the open-set decision
by ROC AUC of :attr:`Identification.known_score` for known vs unknown clips (``models/embed``).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from numba import njit

from engine import cache, models
from engine import embed_features as ef
from engine.errors import AudioError, EarwormError

AUDIO_MODEL, MIDI_MODEL = "embed_audio", "embed_midi"
EMBED_DIM = 32
QUERY_HOP_FRAMES = 4  # a query snippet every 0.37 s
LIBRARY_HOP_FRAMES = 4  # the same hop, so a path of slope 1 means "same tempo"
RERANK_PIECES = 20  # pieces whose order is decided by sequence alignment of the embeddings alone
# With chroma: pieces verified (a 30 s clip costs ~1 ms per piece; the embeddings rank the right
# piece below 20 for ~7 % of held-out clips and below 100 for ~1 %).
VERIFY_PIECES = 100
OFF_TEMPO_PENALTY = 0.02  # per path step that is not slope 1 (similarities are ~0.5–1)
CHROMA_OFF_TEMPO_PENALTY = 0.2  # the same for chroma frames (mean-free cosines, ~-1–1)
CHROMA_VERSION = "chroma-v1"  # engine.embed_features.audio_chroma / roll_chroma (part of cache keys)
EMBEDDING_WEIGHT = 0.25  # weight of the embeddings' sequence z-score next to the chroma's
BATCH = 512
# Used when the model file carries no calibrated threshold (it always should).
DEFAULT_UNKNOWN_THRESHOLD = 4.0
Progress = Callable[[int, int, str], None]


@dataclass
class SnippetVectors:
    """Embeddings of a file's snippets and where each snippet starts (seconds of that file)."""

    vectors: np.ndarray
    starts_s: np.ndarray
    chroma: np.ndarray | None = None  # (n_frames, 12) on the feature frames, for identification

    def __len__(self) -> int:
        return len(self.vectors)


# --------------------------------------------------------------------------------------------
# Embedding
# --------------------------------------------------------------------------------------------


def _run(name: str, snippets: np.ndarray) -> np.ndarray:
    out = np.empty((len(snippets), EMBED_DIM), dtype=np.float32)
    for i in range(0, len(snippets), BATCH):
        out[i:i + BATCH] = models.run(name, {"snippets": snippets[i:i + BATCH]})[0]
    return out


def embed_audio_snippets(snippets: np.ndarray) -> np.ndarray:
    """Unit vectors (n, 32) of model-ready audio snippets (n, 1, 100, 24)."""
    return _run(AUDIO_MODEL, np.ascontiguousarray(snippets, dtype=np.float32))


def embed_midi_snippets(snippets: np.ndarray) -> np.ndarray:
    """Unit vectors (n, 32) of model-ready piano-roll snippets (n, 1, 88, 24)."""
    return _run(MIDI_MODEL, np.ascontiguousarray(snippets, dtype=np.float32))


def audio_vectors(y: np.ndarray, sr: int = ef.SR, hop_frames: int = QUERY_HOP_FRAMES) -> SnippetVectors:
    """Embeddings of the non-silent snippets of a recording (mono samples at ``sr`` = 22050 Hz)."""
    frames = ef.audio_frames(y, sr)
    starts = ef.snippet_starts(len(frames), hop_frames)
    raw = ef.cut_snippets(frames, starts)
    keep = ~ef.is_silent(raw, raw=True)
    if not keep.any():  # a silent recording: nothing to embed (callers say so, naming the file)
        return SnippetVectors(np.zeros((0, EMBED_DIM), dtype=np.float32), np.zeros(0), ef.audio_chroma(frames))
    vectors = embed_audio_snippets(ef.compress_audio_snippets(raw[keep]))
    return SnippetVectors(vectors, starts[keep] / ef.frames_per_second(), ef.audio_chroma(frames))


def midi_vectors(midi, hop_frames: int = LIBRARY_HOP_FRAMES) -> SnippetVectors:
    """Embeddings of the non-empty piano-roll snippets of a PrettyMIDI (MIDI seconds)."""
    roll = ef.midi_frames(midi)
    starts = ef.snippet_starts(len(roll), hop_frames)
    snippets = ef.midi_snippets(roll, starts)
    keep = ~ef.is_silent(snippets)
    return SnippetVectors(embed_midi_snippets(snippets[keep]), starts[keep] / ef.frames_per_second(),
                          ef.roll_chroma(roll))


def model_identity() -> str:
    """Changes whenever either model file changes (part of every cache key)."""
    parts = []
    for name in (AUDIO_MODEL, MIDI_MODEL):
        p = models.model_path(name)
        parts.append(cache.file_hash(p) if p.is_file() else "missing")
    return ":".join(parts)


def recording_vectors(path, hop_frames: int = QUERY_HOP_FRAMES) -> SnippetVectors:
    """:func:`audio_vectors` of an audio file, cached by its content and the models."""
    from engine.media import load_audio

    models.session(AUDIO_MODEL)  # a missing model is reported before any decoding
    params = {"v": ef.FEATURE_VERSION, "chroma": CHROMA_VERSION, "hop": hop_frames, "model": model_identity()}

    def compute():
        sv = audio_vectors(load_audio(path, sr=ef.SR), ef.SR, hop_frames)
        return {"vectors": sv.vectors, "starts_s": sv.starts_s, "chroma": sv.chroma}

    arrays, _ = cache.cached("embed/audio", cache.file_hash(path), params, compute)
    return SnippetVectors(arrays["vectors"], arrays["starts_s"], arrays["chroma"])


def midi_file_vectors(path, hop_frames: int = LIBRARY_HOP_FRAMES) -> SnippetVectors:
    """:func:`midi_vectors` of a MIDI file, cached by its content and the models."""
    from engine.media import load_midi

    models.session(MIDI_MODEL)
    params = {"v": ef.FEATURE_VERSION, "chroma": CHROMA_VERSION, "hop": hop_frames, "model": model_identity()}

    def compute():
        sv = midi_vectors(load_midi(path), hop_frames)
        return {"vectors": sv.vectors, "starts_s": sv.starts_s, "chroma": sv.chroma}

    arrays, _ = cache.cached("embed/midi", cache.file_hash(path), params, compute)
    return SnippetVectors(arrays["vectors"], arrays["starts_s"], arrays["chroma"])


def file_summary(vectors: np.ndarray) -> np.ndarray:
    """One unit vector for a whole file: the normalised mean of its snippet vectors."""
    if len(vectors) == 0:
        return np.zeros(EMBED_DIM, dtype=np.float32)
    m = np.asarray(vectors, dtype=np.float32).mean(axis=0)
    return m / max(float(np.linalg.norm(m)), 1e-9)


# --------------------------------------------------------------------------------------------
# Retrieval and identification
# --------------------------------------------------------------------------------------------


HUBNESS_NEIGHBOURS = 10  # CSLS's k, Conneau et al.'s value (not tuned here)


def hubness_corrected(S: np.ndarray, neighbours: int = HUBNESS_NEIGHBOURS) -> np.ndarray:
    """Cross-domain similarity local scaling (CSLS; Conneau et al., ICLR 2018) of a similarity matrix.

    ``2 S[q, c] - r_q - r_c``, where ``r_q`` is the mean similarity of query ``q`` to its
    ``neighbours`` most similar candidates and ``r_c`` that of candidate ``c`` to its most similar
    queries. A "hub" — a snippet close to everything of the other modality (a held chord, a
    texture) — is marked down, so it stops crowding the top of every query's list. No labels are
    used: only the two sets of vectors.

    Parameters
    ----------
    S : np.ndarray, shape (n_queries, n_candidates)
        Cosine similarities.
    neighbours : int
        ``k`` of the local means (clipped to the sizes of ``S``).
    """
    S = np.asarray(S, np.float32)
    k_q, k_c = min(neighbours, S.shape[1]), min(neighbours, S.shape[0])
    r_q = -np.partition(-S, k_q - 1, axis=1)[:, :k_q].mean(axis=1)
    r_c = -np.partition(-S, k_c - 1, axis=0)[:k_c].mean(axis=0)
    return 2.0 * S - r_q[:, None] - r_c[None, :]


def retrieve(queries: np.ndarray, candidates: np.ndarray, k: int = 10,
             hubness_neighbours: int = HUBNESS_NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best candidates of each query, best first.

    Ranked by :func:`hubness_corrected` similarity when ``hubness_neighbours`` > 0 (and there is
    more than one query to tell hubs by), else by cosine similarity.

    Returns
    -------
    indices : np.ndarray, int, shape (n_queries, k)
    scores : np.ndarray, float32, shape (n_queries, k)
        The similarities they were ranked by.
    """
    S = np.asarray(queries, np.float32) @ np.asarray(candidates, np.float32).T
    if hubness_neighbours > 0 and S.shape[0] > 1:
        S = hubness_corrected(S, hubness_neighbours)
    k = min(k, S.shape[1])
    top = np.argpartition(-S, k - 1, axis=1)[:, :k]
    sims = np.take_along_axis(S, top, axis=1)
    order = np.argsort(-sims, axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(sims, order, axis=1)


@dataclass
class Library:
    """Snippet vectors of known pieces (MIDI files), contiguous piece by piece."""

    names: list = field(default_factory=list)
    paths: list = field(default_factory=list)
    composers: list = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, EMBED_DIM), np.float32))
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=int))  # piece i: offsets[i]:offsets[i+1]
    bad_files: list = field(default_factory=list)  # (path, reason): skipped
    chroma: list = field(default_factory=list)  # per piece (n_frames, 12), or empty: no verification

    def __len__(self) -> int:
        return len(self.names)

    @property
    def piece_of(self) -> np.ndarray:
        """The piece index of every snippet vector."""
        return np.repeat(np.arange(len(self.names)), np.diff(self.offsets))


def build_library(midi_paths, composers: dict | None = None, progress: Progress | None = None,
                  cancel: Callable[[], bool] | None = None) -> Library:
    """Embed MIDI files into a :class:`Library`; unreadable files are listed in ``bad_files``.

    ``composers`` maps a path (as given) to its composer, where known.
    """
    from engine.errors import ModelError

    lib = Library()
    blocks = []
    paths = [str(p) for p in midi_paths]
    for i, p in enumerate(paths):
        if cancel is not None and cancel():
            break
        if progress is not None:
            progress(i, len(paths), os.path.basename(p))
        try:
            sv = midi_file_vectors(p)
        except ModelError:
            raise  # not the file's fault: nothing else would work either
        except EarwormError as exc:
            lib.bad_files.append((p, exc.reason if hasattr(exc, "reason") else str(exc)))
            continue
        if len(sv) == 0:
            lib.bad_files.append((p, "no notes to embed"))
            continue
        lib.names.append(Path(p).stem)
        lib.paths.append(p)
        lib.composers.append((composers or {}).get(p))
        lib.chroma.append(sv.chroma)
        blocks.append(sv.vectors)
    if blocks:
        lib.vectors = np.concatenate(blocks).astype(np.float32)
        lib.offsets = np.concatenate([[0], np.cumsum([len(b) for b in blocks])])
    if progress is not None:
        progress(len(paths), len(paths), "")
    return lib


def piece_similarities(query_vectors: np.ndarray, library: Library) -> np.ndarray:
    """(n_queries, n_pieces): each query snippet's best similarity within each piece."""
    return _best_per_piece(np.asarray(query_vectors, np.float32) @ library.vectors.T, library)


def _best_per_piece(S: np.ndarray, library: Library) -> np.ndarray:
    return np.maximum.reduceat(S, library.offsets[:-1], axis=1)


@dataclass
class PieceScore:
    name: str
    path: str
    composer: str | None
    score: float  # the candidates' final score (see identify), else the mean best-snippet similarity
    votes: int  # clip snippets for which this piece is the best


@dataclass
class Identification:
    """Ranked pieces (best first), the open-set decision, and composers when known."""

    pieces: list
    known_score: float  # how far the best piece stands out (robust z-score); high = known
    threshold: float
    n_snippets: int
    composers: list = field(default_factory=list)  # (composer, score of its best piece), best first

    @property
    def open_set_tested(self) -> bool:
        """False when the library has too few pieces (< :data:`OPEN_SET_MIN_PIECES`) for the "unknown" test — the best
        piece is then the answer, untested (see :func:`known_score`) — or none at all."""
        return bool(np.isfinite(self.known_score))

    @property
    def unknown(self) -> bool:
        return self.known_score < self.threshold  # NaN (untested) compares False: not unknown

    @property
    def best(self) -> PieceScore | None:
        return self.pieces[0] if self.pieces else None

    def verdict(self) -> str:
        """The decision in words, as the CLI and the Identify panel say it: "Known: X (…)",
        "Unknown — not convincingly any piece … (score s < threshold t)", or "Best match: X (not
        tested …)" for a library too small for the unknown-piece test."""
        if not self.pieces:
            return "Unknown — the library has no pieces to compare with"
        if not self.open_set_tested:
            return (f"Best match: {self.best.name} (not tested for an unknown piece: "
                    f"the library needs at least {OPEN_SET_MIN_PIECES} pieces for that)")
        if self.unknown:
            return (f"Unknown — not convincingly any piece in the library "
                    f"(score {self.known_score:.2f} < threshold {self.threshold:.2f})")
        return f"Known: {self.best.name} (score {self.known_score:.2f} ≥ threshold {self.threshold:.2f})"

    def to_json(self) -> dict:
        """Plain JSON: the decision, the ranked pieces and composers."""
        # JSON has no inf or NaN: a score that is not a number is null (no pieces, or too few to test).
        score = self.known_score if self.open_set_tested else None
        return {"unknown": bool(self.unknown), "known_score": score, "open_set_tested": self.open_set_tested,
                "threshold": self.threshold,
                "n_snippets": self.n_snippets,
                "pieces": [{"name": p.name, "path": p.path, "composer": p.composer, "score": p.score, "votes": p.votes}
                           for p in self.pieces],
                "composers": [{"composer": c, "score": s} for c, s in self.composers]}


OPEN_SET_MIN_PIECES = 3  # the unknown-piece test needs the best piece and at least two others


def known_score(piece_scores: np.ndarray) -> float:
    """How far the best piece's score stands above the others' (in robust standard deviations).

    A clip of a known piece matches one piece far better than the rest; a clip of an unknown
    piece matches several pieces about equally. The median and MAD keep one or two near-duplicate
    pieces (another harmonisation of the same tune) from hiding the margin. With fewer than
    three pieces there is no "rest" to stand out from: NaN (not tested); with none, -inf.
    """
    s = np.sort(np.asarray(piece_scores, np.float64))[::-1]
    if len(s) < OPEN_SET_MIN_PIECES:
        return float("nan") if len(s) else float("-inf")
    rest = s[1:]
    spread = 1.4826 * np.median(np.abs(rest - np.median(rest)))
    return float((s[0] - np.median(rest)) / max(spread, 1e-3))


def unknown_threshold() -> float:
    """The open-set threshold calibrated with the models (``metadata_props``), or the default."""
    sess = models.session(AUDIO_MODEL)
    value = sess.get_modelmeta().custom_metadata_map.get("unknown_threshold")
    try:
        return float(value)
    except (TypeError, ValueError):
        return DEFAULT_UNKNOWN_THRESHOLD


@njit(cache=True, nogil=True)
def _sequence_similarity(S, penalty):
    """Best mean similarity of a monotone path through S (query rows × piece columns).

    Every query snippet is matched once, in order; between consecutive query snippets the piece
    advances 0, 1 or 2 snippets (the clip played slower, at the same tempo, or up to twice as
    fast), steps other than 1 cost ``penalty``. The path may start and end anywhere in the piece.
    """
    n, m = S.shape
    prev = S[0].copy()
    cur = np.empty(m)
    for i in range(1, n):
        for j in range(m):
            best = prev[j] - penalty
            if j >= 1 and prev[j - 1] > best:
                best = prev[j - 1]
            if j >= 2 and prev[j - 2] - penalty > best:
                best = prev[j - 2] - penalty
            cur[j] = best + S[i, j]
        prev, cur = cur, prev
    return prev.max() / n


def sequence_similarity(query_vectors: np.ndarray, piece_vectors: np.ndarray,
                        penalty: float = OFF_TEMPO_PENALTY) -> float:
    """Mean similarity along the best in-order match of a clip's snippets to one piece's.

    A clip of a piece matches it snippet after snippet at a steady offset; a clip of another
    piece finds good matches only here and there. See :func:`_sequence_similarity`.
    """
    S = np.asarray(query_vectors, np.float32) @ np.asarray(piece_vectors, np.float32).T
    return float(_sequence_similarity(S.astype(np.float64), float(penalty)))


def chroma_sequence_similarity(query_chroma: np.ndarray, piece_chroma: np.ndarray,
                               penalty: float = CHROMA_OFF_TEMPO_PENALTY) -> float:
    """:func:`sequence_similarity` on chroma frames (mean-free unit rows, :mod:`engine.embed_features`).

    The embeddings tell which pieces sound alike snippet by snippet; chroma frames in order check
    the harmony frame by frame (10.8 frames/s), which separates pieces in one style far better.
    """
    return sequence_similarity(query_chroma, piece_chroma, penalty)


def robust_z(values: np.ndarray) -> np.ndarray:
    """(values − median) / (1.4826 · MAD): scores of different scales made comparable."""
    v = np.asarray(values, np.float64)
    med = np.median(v)
    return (v - med) / max(1.4826 * float(np.median(np.abs(v - med))), 1e-9)


def identify(query_vectors: np.ndarray, library: Library, threshold: float | None = None,
             top_k: int = 10, rerank: int | None = None, query_chroma: np.ndarray | None = None) -> Identification:
    """Rank the library's pieces for a clip and decide known/unknown.

    Stages: (1) every piece is scored by the mean over the clip's snippets of their best embedding
    similarity in it (order ignored); (2) the ``rerank`` best are scored by
    :func:`sequence_similarity` of the embeddings (order kept); (3) when the clip's chroma and the
    library's are given, those pieces are also scored by the same in-order match of chroma frames
    (:func:`chroma_sequence_similarity`), and the final score adds the two sequence scores as robust
    z-scores among the candidates (:data:`EMBEDDING_WEIGHT` for the embeddings'; with fewer than
    :data:`OPEN_SET_MIN_PIECES` candidates, the similarities' weighted mean ``(chroma + w · embeddings) / (1 + w)``,
    ``w`` = :data:`EMBEDDING_WEIGHT`). Pieces past the
    candidates keep their stage-1 order. The open-set score is :func:`known_score` of the final
    scores of the candidates.

    Parameters
    ----------
    query_vectors : np.ndarray, shape (n, 32)
        Unit vectors of the clip's snippets in time order (e.g. ``recording_vectors(path).vectors``).
    library : Library
    threshold : float, optional
        Clips whose :func:`known_score` is below it are "unknown"; default: the models'
        calibrated threshold.
    top_k : int
        How many pieces to return.
    rerank : int, optional
        How many pieces the sequence stages score; default :data:`VERIFY_PIECES` with chroma,
        :data:`RERANK_PIECES` without.
    query_chroma : np.ndarray, shape (n_frames, 12), optional
        The clip's chroma (``recording_vectors(path).chroma``); without it, or when the library
        has no chroma, stage 3 is skipped.
    """
    if threshold is None:
        threshold = unknown_threshold()
    if len(library) == 0 or len(query_vectors) == 0:
        return Identification([], float("-inf"), threshold, len(query_vectors))
    S = np.asarray(query_vectors, np.float32) @ library.vectors.T  # once, for both stages
    B = _best_per_piece(S, library)
    scores = B.mean(axis=0).astype(np.float64)
    votes = np.bincount(B.argmax(axis=1), minlength=len(library))
    use_chroma = query_chroma is not None and len(query_chroma) > 0 and len(library.chroma) == len(library)
    if rerank is None:
        rerank = VERIFY_PIECES if use_chroma else RERANK_PIECES
    first = np.argsort(-scores)[:max(1, rerank, top_k)]  # every listed piece gets the sequence score
    off = library.offsets
    final = np.array([_sequence_similarity(S[:, off[i]:off[i + 1]].astype(np.float64), OFF_TEMPO_PENALTY)
                      for i in first])
    if use_chroma:
        chroma = np.array([chroma_sequence_similarity(query_chroma, library.chroma[i]) for i in first])
        if len(first) >= OPEN_SET_MIN_PIECES:
            final = robust_z(chroma) + EMBEDDING_WEIGHT * robust_z(final)
        else:  # a z-score among one or two pieces says nothing (one piece: always 0): the similarities' weighted mean
            final = (chroma + EMBEDDING_WEIGHT * final) / (1.0 + EMBEDDING_WEIGHT)
    ranked = list(first[np.argsort(-final, kind="stable")]) + list(np.argsort(-scores)[len(first):])
    listed = scores.copy()
    listed[first] = final
    pieces = [PieceScore(library.names[i], library.paths[i], library.composers[i], float(listed[i]), int(votes[i]))
              for i in ranked[:top_k]]
    composers = {}  # each composer at its best piece's rank (scores of the stages differ in scale)
    for i in ranked:
        c = library.composers[i]
        if c and c not in composers:
            composers[c] = float(listed[i])
    return Identification(pieces, known_score(final), threshold, len(query_vectors), list(composers.items()))


def identify_recording(audio_path, library: Library, threshold: float | None = None, top_k: int = 10,
                       query: SnippetVectors | None = None) -> Identification:
    """:func:`identify` for an audio file (validated; its vectors and chroma cached): what the
    command line and the Identify panel call. ``query``: its :func:`recording_vectors`, if the
    caller has them already.

    Raises
    ------
    AudioError
        The file is missing or undecodable, or silent (no snippet to embed).
    ModelError
        A missing or mismatched model.
    """
    query = require_snippets(recording_vectors(audio_path) if query is None else query, audio_path)
    return identify(query.vectors, library, threshold, top_k=top_k, query_chroma=query.chroma)


def require_snippets(query: SnippetVectors, audio_path) -> SnippetVectors:
    """``query`` when it has snippets to identify; an AudioError naming the file when the recording
    is silent (callers check before reading a library, which may take minutes)."""
    if len(query.vectors) == 0:
        raise AudioError(audio_path, "nothing to identify: the recording is silent")
    return query


# --------------------------------------------------------------------------------------------
# Libraries from folders and projects
# --------------------------------------------------------------------------------------------

MIDI_SUFFIXES = (".mid", ".midi")


def library_paths(source) -> tuple[list[str], dict]:
    """MIDI paths and known composers of a library given as a folder or a project database.

    A folder is searched recursively; an optional ``composers.csv`` in it (``file,composer``,
    file relative to the folder) names composers. A project gives its (present) MIDI files and the
    ``composer`` of their metadata where set.
    """
    from engine.errors import StoreError

    p = Path(source)
    if p.is_dir():
        paths = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in MIDI_SUFFIXES and f.is_file())
        composers = {}
        sheet = p / "composers.csv"
        if sheet.is_file():
            with open(sheet, newline="") as f:
                for row in csv.DictReader(f):
                    if row.get("file") and row.get("composer"):
                        composers[str(p / row["file"])] = row["composer"]
        return paths, composers
    if p.is_file():
        from engine.store import Project

        with Project(p, create=False) as project:
            files = [f for f in project.files("midi") if not f.missing]
        return [f.path for f in files], {f.path: f.metadata.get("composer") for f in files if f.metadata.get("composer")}
    raise StoreError(p, "no such folder or project file")
