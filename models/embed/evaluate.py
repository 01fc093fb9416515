"""Held-out evaluation of the embedding models and the open-set calibration.

``python -m models.embed.evaluate`` re-evaluates the exported ONNX models (run through
onnxruntime by :mod:`engine.embed`) on the test pieces (never seen in training) and writes
``models/embed/metrics.json`` and ``models/MODEL_CARD_embed.md``.

Protocols (test pieces = the library-matching benchmark's MIDIs, see :mod:`models.embed.data`):

- **Snippet retrieval**: non-overlapping 2.2 s audio snippets of each piece's first rendition and
  the MIDI snippets the true warp maps them to; every audio snippet queries all MIDI snippets and
  back. Reported on the whole pool and on random pools of 2000 pairs (Dorfer et al.'s size), ranked
  by cosine and by hubness-corrected similarity (CSLS, k = 10: :func:`engine.embed.hubness_corrected`,
  what :func:`engine.embed.retrieve` ranks by).
- **Piece identification**: the library holds every test piece's MIDI; queries are 30 s (and
  10 s) clips at random places of each piece's *second* rendition (other soundfont, tempo,
  dropped parts); top-1 / top-5.
- **Open set**: the library holds only the matching benchmark's ``bench`` pieces; clips of its
  ``calib`` pieces are "unknown". ROC AUC of :func:`engine.embed.known_score`, and accuracy at the
  threshold calibrated on the validation pieces (training data, not test).
- **Composer**: each test piece is left out of the library in turn and its clip is attributed to
  the composer whose pieces score best (the folder of its corpus path: bach, palestrina, …).
"""
from __future__ import annotations

import json

import numpy as np

from engine import embed as E
from engine import embed_features as ef
from models.embed import data as embed_data
from models.embed.train import MODELS_DIR, Pieces, evaluation_pairs, retrieval_metrics

CLIP_SECONDS = (30.0, 10.0)
CLIPS_PER_PIECE = 2
SEED = 5


def roc_auc(scores_pos, scores_neg) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = np.asarray(scores_pos, float), np.asarray(scores_neg, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def library_of(pieces: Pieces, indices, embed_midi, composers: bool = True) -> E.Library:
    """A :class:`engine.embed.Library` of some pieces, embedded with ``embed_midi``."""
    lib = E.Library()
    blocks = []
    for i in indices:
        roll = pieces.rolls[i]
        snippets = ef.midi_snippets(roll, ef.snippet_starts(len(roll), E.LIBRARY_HOP_FRAMES))
        snippets = snippets[~ef.is_silent(snippets)]
        blocks.append(embed_midi(snippets))
        rec = pieces.records[i]
        lib.names.append(rec["id"])
        lib.paths.append(rec["id"])
        lib.composers.append(rec["composer"] if composers else None)
        lib.chroma.append(ef.roll_chroma(roll))
    lib.vectors = np.concatenate(blocks).astype(np.float32)
    lib.offsets = np.concatenate([[0], np.cumsum([len(b) for b in blocks])])
    return lib


def without_piece(lib: E.Library, i: int) -> E.Library:
    """A copy of ``lib`` without its ``i``-th piece."""
    off = lib.offsets
    keep = [j for j in range(len(lib)) if j != i]
    sizes = np.diff(off)[keep]
    return E.Library(names=[lib.names[j] for j in keep], paths=[lib.paths[j] for j in keep],
                     composers=[lib.composers[j] for j in keep], chroma=[lib.chroma[j] for j in keep],
                     vectors=np.concatenate([lib.vectors[:off[i]], lib.vectors[off[i + 1]:]]),
                     offsets=np.concatenate([[0], np.cumsum(sizes)]))


def clip_vectors(pieces: Pieces, piece: int, rendition: int, clip_s: float, rng, embed_audio) -> E.SnippetVectors:
    """Snippet vectors and chroma of a random ``clip_s`` clip of a rendition (whole rendition if shorter)."""
    frames = pieces.renditions[piece][rendition][0].astype(np.float32)
    n_clip = int(round(clip_s * ef.frames_per_second()))
    start = int(rng.integers(0, max(1, len(frames) - n_clip + 1)))
    clip = frames[start:start + n_clip]
    raw = ef.cut_snippets(clip, ef.snippet_starts(len(clip), E.QUERY_HOP_FRAMES))
    raw = raw[~ef.is_silent(raw, raw=True)]
    vectors = embed_audio(ef.compress_audio_snippets(raw)) if len(raw) else np.zeros((0, E.EMBED_DIM), np.float32)
    return E.SnippetVectors(vectors, np.zeros(len(vectors)), ef.audio_chroma(clip))


def identification_trials(pieces: Pieces, library_idx, query_idx, embed_audio, embed_midi, clip_s: float,
                          rng, clips_per_piece: int = CLIPS_PER_PIECE, rendition: int = 1):
    """(query piece, Identification) for clips of ``query_idx`` against a library of ``library_idx``."""
    lib = library_of(pieces, library_idx, embed_midi)
    out = []
    for q in query_idx:
        for _ in range(clips_per_piece):
            clip = clip_vectors(pieces, q, rendition, clip_s, rng, embed_audio)
            # the product's settings
            out.append((q, E.identify(clip.vectors, lib, threshold=np.inf, query_chroma=clip.chroma)))
    return out, lib


def rank_of(name: str, ident: E.Identification) -> int:
    """1-based rank of piece ``name`` in the listed pieces (one past the list if absent)."""
    names = [p.name for p in ident.pieces]
    return names.index(name) + 1 if name in names else len(names) + 1


def best_threshold(known_scores, unknown_scores) -> float:
    """The threshold maximising balanced accuracy (midpoint between neighbouring scores)."""
    values = np.sort(np.concatenate([known_scores, unknown_scores]))
    cuts = np.concatenate([[values[0] - 1], (values[1:] + values[:-1]) / 2, [values[-1] + 1]])
    acc = [0.5 * (np.mean(np.asarray(known_scores) >= c) + np.mean(np.asarray(unknown_scores) < c)) for c in cuts]
    return float(cuts[int(np.argmax(acc))])


def torch_embedder(net):
    """A numpy → numpy embedding function of a PyTorch pathway (eval mode, no gradients)."""
    import torch

    def run(x):
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
    return run


def unseen_records(info: dict) -> list:
    """Index records of non-test pieces the models never trained on: the validation pieces and any
    built after training (``info["train_ids"]`` lists the pieces trained on)."""
    trained = set(info.get("train_ids", ()))
    val = set(info.get("val_records", ()))
    return [r for r in embed_data.load_index()["records"]
            if r["split"] != "test" and (r["id"] in val or r["id"] not in trained)]


def calibrate_unknown(embed_audio, embed_midi, val_records) -> float:
    """Open-set threshold from unseen non-test pieces: half known (in the library), half unknown."""
    pieces = Pieces(val_records)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(pieces))
    known = sorted(order[: len(order) // 2])  # the other half stays out of the library: unknown
    trials, _ = identification_trials(pieces, known, range(len(pieces)), embed_audio, embed_midi,
                                      CLIP_SECONDS[0], rng, clips_per_piece=4)
    k = [ident.known_score for q, ident in trials if q in set(known)]
    u = [ident.known_score for q, ident in trials if q not in set(known)]
    return best_threshold(np.array(k), np.array(u))


def write_threshold(threshold: float) -> None:
    """Store the open-set threshold in both ONNX files' metadata (no retraining)."""
    from models.onnx_metadata import set_metadata

    for name in (E.AUDIO_MODEL, E.MIDI_MODEL):
        set_metadata(MODELS_DIR / f"{name}.onnx", {"unknown_threshold": round(threshold, 4)})
    from engine import models

    models.clear_cache()


def evaluate_test(embed_audio=E.embed_audio_snippets, embed_midi=E.embed_midi_snippets) -> dict:
    """Every held-out metric (see the module docstring)."""
    records = [r for r in embed_data.load_index()["records"] if r["split"] == "test"]
    pieces = Pieces(records)
    rng = np.random.default_rng(SEED)
    out = {"n_test_pieces": len(pieces)}

    a, m, owner, _ = evaluation_pairs(pieces)
    qa, qm = embed_audio(a), embed_midi(m)
    out["retrieval"] = {"audio_to_midi": retrieval_metrics(qa, qm), "midi_to_audio": retrieval_metrics(qm, qa)}
    pools = [rng.choice(len(qa), size=min(2000, len(qa)), replace=False) for _ in range(5)]
    for direction, (Q, C) in (("audio_to_midi_2000", (qa, qm)), ("midi_to_audio_2000", (qm, qa))):
        for suffix, neighbours in (("", 0), ("_csls", E.HUBNESS_NEIGHBOURS)):
            runs = [retrieval_metrics(Q[p], C[p], neighbours) for p in pools]
            out["retrieval"][direction + suffix] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}

    everything = range(len(pieces))
    out["identification"] = {}
    for clip_s in CLIP_SECONDS:
        trials, _ = identification_trials(pieces, everything, everything, embed_audio, embed_midi, clip_s, rng)
        ranks = [rank_of(pieces.records[q]["id"], ident) for q, ident in trials]
        out["identification"][f"{clip_s:.0f}s"] = {
            "n_clips": len(trials), "top1": float(np.mean(np.array(ranks) == 1)),
            "top5": float(np.mean(np.array(ranks) <= 5)), "library_pieces": len(pieces)}

    known = [i for i, r in enumerate(pieces.records) if r.get("match_set") == "bench"]
    known_set = set(known)
    trials, _ = identification_trials(pieces, known, everything, embed_audio, embed_midi, CLIP_SECONDS[0], rng)
    k_scores = np.array([ident.known_score for q, ident in trials if q in known_set])
    u_scores = np.array([ident.known_score for q, ident in trials if q not in known_set])
    threshold = E.unknown_threshold()
    top1_known = np.mean([ident.best.name == pieces.records[q]["id"] for q, ident in trials if q in known_set])
    out["open_set"] = {
        "library_pieces": len(known), "known_clips": int(len(k_scores)), "unknown_clips": int(len(u_scores)),
        "auroc": roc_auc(k_scores, u_scores), "threshold": threshold,
        "known_accepted": float(np.mean(k_scores >= threshold)), "unknown_rejected": float(np.mean(u_scores < threshold)),
        "top1_known": float(top1_known),
        "correct_decision": float((np.sum(k_scores >= threshold) + np.sum(u_scores < threshold)) / len(trials)),
    }

    correct, total = 0, 0
    lib_all = library_of(pieces, everything, embed_midi)
    composers = [r["composer"] for r in pieces.records]
    for q in everything:
        clip = clip_vectors(pieces, q, 1, CLIP_SECONDS[0], rng, embed_audio)
        ident = E.identify(clip.vectors, without_piece(lib_all, q), threshold=np.inf, query_chroma=clip.chroma)
        correct += bool(ident.composers) and ident.composers[0][0] == composers[q]
        total += 1
    counts = {c: composers.count(c) for c in sorted(set(composers))}
    out["composer"] = {"accuracy": correct / total, "n": total, "majority_baseline": max(counts.values()) / total,
                       "composers": counts}
    return out


def main(info: dict | None = None) -> dict:
    """Evaluate, write metrics.json and the model card; ``info`` carries the training record."""
    metrics_path = MODELS_DIR / "embed" / "metrics.json"
    if info is None:
        info = json.loads(metrics_path.read_text())
    info["test"] = evaluate_test()
    info["onnx_bytes"] = {n: (MODELS_DIR / f"{n}.onnx").stat().st_size for n in (E.AUDIO_MODEL, E.MIDI_MODEL)}
    metrics_path.write_text(json.dumps(info, indent=1))
    from models.embed.card import write_card

    write_card(info)
    print(json.dumps(info["test"], indent=1))
    return info


if __name__ == "__main__":
    import sys

    if "--info" in sys.argv[1:]:  # a candidate copied into models/: its training record (models.embed.train --out)
        main(json.loads(open(sys.argv[sys.argv.index("--info") + 1]).read()))
    elif "--recalibrate" in sys.argv[1:]:  # after a change of the identification rule: new threshold
        info = json.loads((MODELS_DIR / "embed" / "metrics.json").read_text())
        calibration = unseen_records(info)
        threshold = calibrate_unknown(E.embed_audio_snippets, E.embed_midi_snippets, calibration)
        write_threshold(threshold)
        info["unknown_threshold"] = threshold
        info["calibration_pieces"] = len(calibration)
        main(info)
    else:
        main()
