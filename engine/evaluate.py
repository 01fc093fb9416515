"""Evaluating a library match against gold labels: metrics, ranks, ROC, and the report figures.

Task
----
Given a score for every (MIDI, recording) pair, the matcher's decision for every MIDI (a
recording, or none) and the gold pairs, say how good the match is — as the seed study did
(confusion matrix, accuracy, precision, recall, F1, ROC AUC), plus the retrieval view (rank-1 and
top-5 accuracy, mean reciprocal rank), the score densities of matches vs non-matches, and the ROC
curve.

Conventions
-----------
- Arrays are indexed ``[midi, audio]``: ``scores`` has shape (n_midi, n_audio), higher = more
  likely the same piece; ``gold`` is a boolean array of the same shape (at most one True per
  MIDI); ``predicted`` holds, per MIDI, the index of the chosen recording or -1 for none.
- Open set: a MIDI may have no recording (a row of ``gold`` without True) and a recording may have
  no MIDI (a column without True).

Metrics
-------
- Pair level, every pair counted once (sklearn.metrics): a pair is *predicted* when it is a MIDI's
  decision and *positive* when it is gold. ``confusion = [[TN, FP], [FN, TP]]``; precision = right
  decisions / decisions made; recall = right decisions / gold pairs; F1 their harmonic mean
  (open-set F1: a wrong recording for a MIDI counts as a false positive and a false negative, a
  recording for a MIDI that has none as a false positive). ``accuracy`` is sklearn's over all
  pairs (dominated by the true negatives, as in the seed study); ``decision_accuracy`` is the
  fraction of MIDIs whose decision is right (the right recording, or none when none exists).
- ROC AUC and the ROC curve: ``roc_auc_score`` / ``roc_curve`` of ``scores`` against ``gold``
  over all pairs.
- Ranks, over the MIDIs that have a gold recording: the gold recording's rank among all
  recordings by score (1 = best; ties count against it). rank-1 and top-5 accuracy are the
  fractions with rank ≤ 1 and ≤ 5; MRR is the mean of 1 / rank.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import EarwormError


class GoldLabelsError(EarwormError):
    """A gold-label file that cannot be read or names files that are not in the match."""


@dataclass
class Evaluation:
    """Every metric of one match against its gold labels (see the module docstring)."""

    n_midi: int
    n_audio: int
    n_gold_pairs: int
    confusion: np.ndarray            # [[TN, FP], [FN, TP]] over all pairs
    accuracy: float
    decision_accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float
    rank1: float
    top5: float
    mrr: float
    ranks: np.ndarray                # rank of each gold pair (MIDIs with a recording, in MIDI order)
    roc_fpr: np.ndarray = field(repr=False, default=None)
    roc_tpr: np.ndarray = field(repr=False, default=None)
    match_scores: np.ndarray = field(repr=False, default=None)
    non_match_scores: np.ndarray = field(repr=False, default=None)

    def to_dict(self) -> dict:
        """Plain values for JSON: counts, the confusion matrix and the metrics."""
        keys = ("n_midi", "n_audio", "n_gold_pairs", "accuracy", "decision_accuracy", "precision", "recall",
                "f1", "roc_auc", "rank1", "top5", "mrr")
        out = {k: (round(float(getattr(self, k)), 6) if isinstance(getattr(self, k), float) else getattr(self, k))
               for k in keys}
        out["confusion"] = {"tn": int(self.confusion[0, 0]), "fp": int(self.confusion[0, 1]),
                            "fn": int(self.confusion[1, 0]), "tp": int(self.confusion[1, 1])}
        return out

    def report(self) -> str:
        """A short human-readable report."""
        c = self.to_dict()["confusion"]
        return "\n".join([
            f"MIDIs {self.n_midi}, recordings {self.n_audio}, gold pairs {self.n_gold_pairs} "
            f"({self.n_midi - self.n_gold_pairs} MIDIs with no recording)",
            f"confusion (pairs): TP {c['tp']}  FP {c['fp']}  FN {c['fn']}  TN {c['tn']}",
            f"precision {self.precision:.4f}  recall {self.recall:.4f}  F1 {self.f1:.4f}",
            f"accuracy (pairs) {self.accuracy:.5f}  decision accuracy (MIDIs) {self.decision_accuracy:.4f}",
            f"ROC AUC {self.roc_auc:.4f}",
            f"rank-1 {self.rank1:.4f}  top-5 {self.top5:.4f}  MRR {self.mrr:.4f}",
        ])


def gold_ranks(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Rank (1 = best) of each gold pair among its MIDI's recordings; ties count against it.

    Parameters
    ----------
    scores : np.ndarray, shape (n_midi, n_audio)
    gold : np.ndarray of bool, shape (n_midi, n_audio)

    Returns
    -------
    np.ndarray of int, one rank per gold pair, in MIDI order.
    """
    scores = np.asarray(scores, dtype=np.float64)
    rows, cols = np.nonzero(gold)
    true = scores[rows, cols][:, None]
    return (1 + np.sum(scores[rows] > true, axis=1) + np.sum(scores[rows] == true, axis=1) - 1).astype(int)


def evaluate(scores, predicted, gold) -> Evaluation:
    """All metrics of a match.

    Parameters
    ----------
    scores : array_like, shape (n_midi, n_audio)
        A score per pair, higher = more likely a match.
    predicted : array_like of int, shape (n_midi,)
        Per MIDI, the index of the chosen recording, or -1 for none.
    gold : array_like of bool, shape (n_midi, n_audio)
        The gold pairs (at most one per MIDI).

    Returns
    -------
    Evaluation
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score, roc_curve

    scores = np.asarray(scores, dtype=np.float64)
    gold = np.asarray(gold, dtype=bool)
    predicted = np.asarray(predicted, dtype=int)
    n_midi, n_audio = scores.shape
    if gold.shape != scores.shape or predicted.shape != (n_midi,):
        raise ValueError(f"shapes disagree: scores {scores.shape}, gold {gold.shape}, predicted {predicted.shape}")
    if np.any(gold.sum(axis=1) > 1):
        raise ValueError("gold has more than one recording for a MIDI")
    decided = np.zeros_like(gold)
    chosen = predicted >= 0
    decided[np.nonzero(chosen)[0], predicted[chosen]] = True
    y_true, y_pred = gold.ravel(), decided.ravel()
    confusion = confusion_matrix(y_true, y_pred, labels=[False, True])
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average="binary", zero_division=0)
    has_gold = gold.any(axis=1)
    right = np.where(has_gold, decided[np.arange(n_midi), gold.argmax(axis=1)] & chosen, ~chosen)
    both_classes = 0 < y_true.sum() < y_true.size
    auc = float(roc_auc_score(y_true, scores.ravel())) if both_classes else float("nan")
    fpr, tpr, _ = roc_curve(y_true, scores.ravel()) if both_classes else (np.array([0.0, 1.0]),) * 2 + (None,)
    ranks = gold_ranks(scores, gold)
    return Evaluation(
        n_midi=n_midi, n_audio=n_audio, n_gold_pairs=int(gold.sum()), confusion=confusion,
        accuracy=float(accuracy_score(y_true, y_pred)), decision_accuracy=float(np.mean(right)) if n_midi else float("nan"),
        precision=float(precision), recall=float(recall), f1=float(f1), roc_auc=auc,
        rank1=float(np.mean(ranks <= 1)) if len(ranks) else float("nan"),
        top5=float(np.mean(ranks <= 5)) if len(ranks) else float("nan"),
        mrr=float(np.mean(1.0 / ranks)) if len(ranks) else float("nan"),
        ranks=ranks, roc_fpr=fpr, roc_tpr=tpr, match_scores=scores[gold], non_match_scores=scores[~gold],
    )


# ---- gold labels ------------------------------------------------------------------------------

def read_gold(path, midi_names, audio_names) -> np.ndarray:
    """Read gold pairs for the given MIDIs and recordings.

    Two layouts are accepted:

    - long CSV with a header ``midi,audio``: one row per MIDI, ``audio`` empty when it has none
      (further columns are ignored; a ``label`` column, when present, keeps only ``match``/``1`` rows);
    - the seed study's matrix: header ``audio,<midi>,<midi>…``, one row per recording, cells
      ``1`` for a match and ``0`` or empty otherwise.

    Names are matched against ``midi_names`` / ``audio_names`` (paths relative to the match's
    folders) exactly, or by file name when that is unique. MIDIs not named in the file have no
    recording.

    Returns
    -------
    gold : np.ndarray of bool, shape (len(midi_names), len(audio_names))

    Raises
    ------
    GoldLabelsError
        For an unreadable file, an unknown name, or a MIDI given two recordings.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if any(cell.strip() for cell in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GoldLabelsError(path, f"cannot read the gold labels ({exc})") from None
    if not rows:
        raise GoldLabelsError(path, "empty file")
    midi_index, audio_index = _name_index(midi_names), _name_index(audio_names)
    gold = np.zeros((len(midi_names), len(audio_names)), dtype=bool)
    header = [h.strip().lower() for h in rows[0]]

    def resolve(index, name, what, line):
        key = name.strip()
        if key in index:
            return index[key]
        if Path(key).name in index:
            return index[Path(key).name]
        raise GoldLabelsError(path, f"line {line}: {what} {key!r} is not one of the matched files")

    pairs = []
    if header[:2] == ["midi", "audio"]:
        label_col = header.index("label") if "label" in header else None
        for line, row in enumerate(rows[1:], start=2):
            if label_col is not None and (len(row) <= label_col or row[label_col].strip() not in ("match", "1")):
                continue
            m = resolve(midi_index, row[0], "MIDI", line)
            if len(row) > 1 and row[1].strip():
                pairs.append((m, resolve(audio_index, row[1], "recording", line), line))
    elif header[0] == "audio":
        midis = [resolve(midi_index, name, "MIDI", 1) for name in rows[0][1:]]
        for line, row in enumerate(rows[1:], start=2):
            a = resolve(audio_index, row[0], "recording", line)
            for m, cell in zip(midis, row[1:]):
                if cell.strip() in ("1", "1.0"):
                    pairs.append((m, a, line))
                elif cell.strip() not in ("", "0", "0.0"):
                    raise GoldLabelsError(path, f"line {line}: cell {cell.strip()!r} is not 1, 0 or empty")
    else:
        raise GoldLabelsError(path, "expected a header 'midi,audio' (long) or 'audio,<midi>…' (matrix)")
    for m, a, line in pairs:
        if gold[m].any() and not gold[m, a]:
            raise GoldLabelsError(path, f"line {line}: MIDI {midi_names[m]!r} has two recordings")
        gold[m, a] = True
    return gold


def _name_index(names) -> dict:
    """name → index for exact names, plus unique file names."""
    index = {str(n): i for i, n in enumerate(names)}
    by_file: dict = {}
    for i, n in enumerate(names):
        by_file.setdefault(Path(str(n)).name, []).append(i)
    for name, idx in by_file.items():
        if len(idx) == 1:
            index.setdefault(name, idx[0])
    return index


# ---- figures and report -----------------------------------------------------------------------

def score_densities(evaluation: Evaluation, n_bins: int = 50):
    """Histogram densities of the match and non-match scores on shared bins (for plotting).

    Returns
    -------
    edges : np.ndarray, shape (n_bins + 1,)
    match_density, non_match_density : np.ndarray, shape (n_bins,)
        Each integrates to 1 over the bins (zeros when a class is empty).
    """
    everything = np.concatenate([evaluation.match_scores, evaluation.non_match_scores])
    lo, hi = (float(everything.min()), float(everything.max())) if everything.size else (0.0, 1.0)
    edges = np.linspace(lo, hi + 1e-9 if hi > lo else lo + 1.0, n_bins + 1)

    def density(x):
        return np.histogram(x, bins=edges, density=True)[0] if len(x) else np.zeros(n_bins)

    return edges, density(evaluation.match_scores), density(evaluation.non_match_scores)


def save_figures(evaluation: Evaluation, out_dir, threshold: float | None = None, prefix: str = "") -> list[Path]:
    """Draw the score densities (matches vs non-matches) and the ROC curve as PNG files.

    Returns the paths written: ``<prefix>densities.png`` and ``<prefix>roc.png`` in ``out_dir``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fig = Figure(figsize=(6.4, 4.0), dpi=110)
    ax = fig.add_subplot()
    everything = np.concatenate([evaluation.match_scores, evaluation.non_match_scores])
    bins = np.linspace(float(np.min(everything)), float(np.max(everything)) + 1e-9, 60) if everything.size else 10
    ax.hist(evaluation.non_match_scores, bins=bins, density=True, histtype="stepfilled", alpha=0.5,
            label=f"non-matches ({evaluation.non_match_scores.size})", color="tab:gray")
    ax.hist(evaluation.match_scores, bins=bins, density=True, histtype="stepfilled", alpha=0.6,
            label=f"matches ({evaluation.match_scores.size})", color="tab:orange")
    if threshold is not None:
        ax.axvline(threshold, color="k", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_yscale("log")
    ax.set_xlabel("match confidence")
    ax.set_ylabel("density")
    ax.set_title("Scores of matches and non-matches")
    ax.legend(loc="upper center")
    fig.tight_layout()
    written.append(out_dir / f"{prefix}densities.png")
    fig.savefig(written[-1])
    fig = Figure(figsize=(4.8, 4.8), dpi=110)
    ax = fig.add_subplot()
    ax.plot(evaluation.roc_fpr, evaluation.roc_tpr, color="tab:blue", label=f"AUC {evaluation.roc_auc:.4f}")
    ax.plot([0, 1], [0, 1], color="tab:gray", linestyle=":")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (symlog)")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC")
    ax.legend(loc="lower right")
    fig.tight_layout()
    written.append(out_dir / f"{prefix}roc.png")
    fig.savefig(written[-1])
    return written


def write_report(evaluation: Evaluation, path, extra: dict | None = None) -> None:
    """Write the report as text (``.txt``) or JSON (``.json``), chosen by the suffix."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(dict(evaluation.to_dict(), **(extra or {})), indent=1) + "\n")
    else:
        path.write_text(evaluation.report() + "\n")


def evaluate_match(result, gold_path, out_dir, prefix: str = "match_") -> tuple[Evaluation, list[Path]]:
    """Evaluate a :class:`engine.match.MatchResult` against a gold file; write report and figures.

    Writes ``<prefix>report.txt``, ``<prefix>report.json`` (metrics, stage recall, counts, timings)
    and the two PNG figures into ``out_dir``. Returns the evaluation and the paths written.
    """
    gold = read_gold(gold_path, result.midi_names, result.audio_names)
    evaluation = evaluate(result.scores, result.predicted, gold)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = save_figures(evaluation, out_dir, threshold=result.params.threshold, prefix=prefix)
    extra = {"stage_recall": result.stage_recall(gold), "counts": result.counts,
             "timings_s": {k: round(v, 3) for k, v in result.timings.items()}}
    write_report(evaluation, out_dir / f"{prefix}report.json", extra)
    text = evaluation.report() + "\nstage recall: " + ", ".join(f"{k} {v:.4f}" for k, v in extra["stage_recall"].items())
    (out_dir / f"{prefix}report.txt").write_text(text + "\n")
    written += [out_dir / f"{prefix}report.txt", out_dir / f"{prefix}report.json"]
    return evaluation, written
