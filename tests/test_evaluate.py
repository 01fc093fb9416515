"""Evaluation metrics against hand computations on tiny inputs; gold files; figures."""
from __future__ import annotations

import numpy as np
import pytest

from engine.evaluate import GoldLabelsError, evaluate, gold_ranks, read_gold, save_figures, write_report

# 3 MIDIs × 4 recordings. Gold: m0 ↔ a0, m1 ↔ a2, m2 has none (a3 has no MIDI).
SCORES = np.array([
    [0.90, 0.10, 0.20, 0.05],
    [0.30, 0.60, 0.50, 0.15],
    [0.40, 0.35, 0.25, 0.55],
])
GOLD = np.zeros((3, 4), bool)
GOLD[0, 0] = GOLD[1, 2] = True
PREDICTED = np.array([0, 1, -1])  # right, wrong recording, rightly none


def test_confusion_precision_recall_f1_by_hand():
    ev = evaluate(SCORES, PREDICTED, GOLD)
    # Pairs: TP (m0,a0); FP (m1,a1); FN (m1,a2); the other 9 are TN.
    assert ev.confusion.tolist() == [[9, 1], [1, 1]]
    assert ev.precision == pytest.approx(1 / 2) and ev.recall == pytest.approx(1 / 2) and ev.f1 == pytest.approx(1 / 2)
    assert ev.accuracy == pytest.approx(10 / 12)
    assert ev.decision_accuracy == pytest.approx(2 / 3)  # m0 right, m1 wrong, m2 rightly none
    assert ev.n_gold_pairs == 2 and ev.n_midi == 3 and ev.n_audio == 4


def test_ranks_rank1_top5_mrr_by_hand():
    ev = evaluate(SCORES, PREDICTED, GOLD)
    assert ev.ranks.tolist() == [1, 2]  # m1's a2 (0.50) is behind a1 (0.60)
    assert ev.rank1 == pytest.approx(0.5) and ev.top5 == pytest.approx(1.0)
    assert ev.mrr == pytest.approx((1 + 1 / 2) / 2)
    # Ties count against the gold pair.
    tied = np.array([[0.5, 0.5, 0.1]])
    assert gold_ranks(tied, np.array([[True, False, False]])).tolist() == [2]


def test_roc_auc_by_hand():
    ev = evaluate(SCORES, PREDICTED, GOLD)
    positives = SCORES[GOLD]
    negatives = SCORES[~GOLD]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    assert ev.roc_auc == pytest.approx(wins / (len(positives) * len(negatives)))
    # 0.90 beats all 10 negatives; 0.50 beats the 8 below it (all but 0.60 and 0.55)
    assert wins == 10 + 8
    assert ev.roc_fpr[0] == 0 and ev.roc_tpr[-1] == 1
    assert sorted(ev.match_scores.tolist()) == [0.5, 0.9] and len(ev.non_match_scores) == 10


def test_perfect_match_scores_one_everywhere():
    gold = np.eye(4, dtype=bool)
    scores = np.eye(4) * 0.9 + 0.05
    ev = evaluate(scores, np.arange(4), gold)
    assert (ev.precision, ev.recall, ev.f1, ev.roc_auc, ev.rank1, ev.mrr, ev.decision_accuracy) == (1, 1, 1, 1, 1, 1, 1)


def test_bad_shapes_and_two_gold_recordings_are_refused():
    with pytest.raises(ValueError):
        evaluate(SCORES, np.array([0, 1]), GOLD)
    two = GOLD.copy()
    two[0, 1] = True
    with pytest.raises(ValueError, match="more than one"):
        evaluate(SCORES, PREDICTED, two)


MIDIS = ["a/one.mid", "two.mid", "three.mid"]
AUDIOS = ["r1.mp3", "sub/r2.mp3", "r3.mp3", "r4.mp3"]


def test_read_gold_long_and_matrix_layouts(tmp_path):
    long = tmp_path / "gold.csv"
    long.write_text("midi,audio\none.mid,r1.mp3\ntwo.mid,sub/r2.mp3\nthree.mid,\n")
    gold = read_gold(long, MIDIS, AUDIOS)
    assert np.argwhere(gold).tolist() == [[0, 0], [1, 1]]
    matrix = tmp_path / "matrix.csv"
    matrix.write_text("audio,a/one.mid,two.mid,three.mid\nr1.mp3,1,0,\nr2.mp3,0,1,0\nr3.mp3,,,\n")
    np.testing.assert_array_equal(read_gold(matrix, MIDIS, AUDIOS), gold)
    labelled = tmp_path / "labels.csv"
    labelled.write_text("midi,audio,label\none.mid,r1.mp3,match\ntwo.mid,r3.mp3,no_match\n")
    assert np.argwhere(read_gold(labelled, MIDIS, AUDIOS)).tolist() == [[0, 0]]


@pytest.mark.parametrize("text, reason", [
    ("midi,audio\nfour.mid,r1.mp3\n", "MIDI 'four.mid' is not one of"),
    ("midi,audio\none.mid,r1.mp3\none.mid,r3.mp3\n", "two recordings"),
    ("audio,one.mid\nr1.mp3,yes\n", "is not 1, 0 or empty"),
    ("name,file\nx,y\n", "expected a header"),
    ("", "empty file"),
])
def test_read_gold_errors_name_the_file_and_line(tmp_path, text, reason):
    path = tmp_path / "gold.csv"
    path.write_text(text)
    with pytest.raises(GoldLabelsError, match=reason) as info:
        read_gold(path, MIDIS, AUDIOS)
    assert info.value.path == str(path)


def test_figures_and_report_are_written(tmp_path):
    ev = evaluate(SCORES, PREDICTED, GOLD)
    paths = save_figures(ev, tmp_path, threshold=0.5, prefix="x_")
    assert [p.name for p in paths] == ["x_densities.png", "x_roc.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    write_report(ev, tmp_path / "r.json", {"note": 1})
    write_report(ev, tmp_path / "r.txt")
    import json

    data = json.loads((tmp_path / "r.json").read_text())
    assert data["confusion"] == {"tn": 9, "fp": 1, "fn": 1, "tp": 1} and data["note"] == 1
    assert "F1 0.5000" in (tmp_path / "r.txt").read_text()
