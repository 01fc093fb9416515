"""Held-out evaluation of tempo candidates and pace classification (numpy only).

Metrics
-------
- **Pace classification accuracy**: over (song, candidate) pairs, the fraction whose
  ``probability >= 0.5`` equals the label (within 5 % of a pace implied by tempo and meter).
  Reported on two candidate sets: the tempogram candidates of :func:`engine.tempo.tempo_candidates`
  (what ``earworm tempo`` classifies) and a *metrical* set: every implied pace in 40–320 bpm plus
  the confusable neighbours ×2/3, ×3/4, ×4/3, ×3/2 of each (those not within 8 % of a pace).
- **Compatible-pace set, per song**: predicted set = candidates with probability ≥ 0.5;
  precision = the fraction of it within 5 % of an implied pace; recall = the fraction of the
  implied paces in 40–320 bpm matched (5 %) by a predicted candidate. Means over songs (a song
  with an empty predicted set has precision 1 by convention, and counts in the recall mean).
  ``candidate_coverage`` is the recall of all candidates: the ceiling the classifier works under.
- **Tempo Accuracy1 / Accuracy2** of the top (most salient) candidate against the notated beat
  tempo, mir_eval.tempo's relative-error convention ``|est - ref| <= tol * ref``, tol = 0.04;
  Accuracy2 also accepts ref × {2, 3, 1/2, 1/3}. Reported for the final ranking (after the
  classifier re-ranks, ``ranked``) and for the tempogram alone (``candidates`` order).
"""
from __future__ import annotations

import numpy as np

from engine.tempo import MAX_BPM, MIN_BPM, PACE_TOLERANCE, compatible_mask

CONFUSABLE_RATIOS = (2 / 3, 3 / 4, 4 / 3, 3 / 2)
TEMPO_TOLERANCE = 0.04


def paces_in_range(paces) -> np.ndarray:
    paces = np.asarray(paces, dtype=float)
    return paces[(paces >= MIN_BPM * (1 - PACE_TOLERANCE)) & (paces <= MAX_BPM * (1 + PACE_TOLERANCE))]


def metrical_candidate_set(paces, margin: float = 0.08) -> np.ndarray:
    """The implied paces in range plus their confusable neighbours (≥ ``margin`` from any pace)."""
    inside = paces_in_range(paces)
    near = np.concatenate([inside * r for r in CONFUSABLE_RATIOS]) if inside.size else np.zeros(0)
    near = near[(near >= MIN_BPM) & (near <= MAX_BPM) & ~compatible_mask(near, paces, margin)]
    return np.concatenate([np.clip(inside, MIN_BPM, MAX_BPM), np.unique(np.round(near, 3))])


def tempo_accuracy(estimate_bpm: float, reference_bpm: float, tolerance: float = TEMPO_TOLERANCE) -> tuple[bool, bool]:
    """(Accuracy1, Accuracy2) of one estimate, mir_eval.tempo's ``|est - ref| <= tol * ref``."""
    def hit(ref):
        return abs(estimate_bpm - ref) <= tolerance * ref
    acc1 = hit(reference_bpm)
    acc2 = acc1 or any(hit(reference_bpm * f) for f in (2.0, 3.0, 0.5, 1.0 / 3.0))
    return bool(acc1), bool(acc2)


def set_precision_recall(candidate_bpm, probability, paces, threshold: float = 0.5) -> tuple[float, float]:
    """Precision and recall of one song's predicted compatible-pace set (module docstring)."""
    candidate_bpm = np.asarray(candidate_bpm, dtype=float)
    predicted = candidate_bpm[np.asarray(probability) >= threshold]
    truth = paces_in_range(paces)
    precision = float(compatible_mask(predicted, paces).mean()) if predicted.size else 1.0
    recall = float(compatible_mask(truth, predicted).mean()) if truth.size else 1.0
    return precision, recall


def summarize(songs: list[dict]) -> dict:
    """Aggregate per-song results into the model card's metrics.

    Each song dict has: ``paces``, ``beat_bpm``, ``candidates`` (bpm, in tempogram-salience
    order), ``candidate_prob``, ``ranked`` (the candidates in the final order), ``metrical`` (bpm)
    and ``metrical_prob`` (probabilities).
    """
    correct_c, correct_m, precisions, recalls, acc1, acc2, tg_acc1, tg_acc2 = [], [], [], [], [], [], [], []
    coverage = []
    pos_c = []
    for s in songs:
        lab_c = compatible_mask(s["candidates"], s["paces"])
        correct_c.extend((np.asarray(s["candidate_prob"]) >= 0.5) == lab_c)
        pos_c.extend(lab_c)
        lab_m = compatible_mask(s["metrical"], s["paces"])
        correct_m.extend((np.asarray(s["metrical_prob"]) >= 0.5) == lab_m)
        p, r = set_precision_recall(s["candidates"], s["candidate_prob"], s["paces"])
        precisions.append(p)
        recalls.append(r)
        coverage.append(set_precision_recall(s["candidates"], np.ones(len(s["candidates"])), s["paces"])[1])
        for order, out1, out2 in ((s.get("ranked", s["candidates"]), acc1, acc2), (s["candidates"], tg_acc1, tg_acc2)):
            a1, a2 = tempo_accuracy(order[0], s["beat_bpm"]) if len(order) else (False, False)
            out1.append(a1)
            out2.append(a2)
    return {
        "n_songs": len(songs),
        "n_candidates": len(correct_c),
        "candidate_positive_fraction": float(np.mean(pos_c)) if pos_c else 0.0,
        "accuracy_candidates": float(np.mean(correct_c)) if correct_c else 0.0,
        "n_metrical": len(correct_m),
        "accuracy_metrical": float(np.mean(correct_m)) if correct_m else 0.0,
        "set_precision": float(np.mean(precisions)),
        "set_recall": float(np.mean(recalls)),
        "candidate_coverage": float(np.mean(coverage)),  # recall if every candidate were called compatible
        "tempo_accuracy1": float(np.mean(acc1)),
        "tempo_accuracy2": float(np.mean(acc2)),
        "tempogram_accuracy1": float(np.mean(tg_acc1)),
        "tempogram_accuracy2": float(np.mean(tg_acc2)),
    }
