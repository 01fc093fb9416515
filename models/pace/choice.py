"""Choose between finished pace models on songs kept for that alone.

The validation split (182 songs) picks each model's epoch and ranking; it is too small to tell two
finished models apart (one song is 0.0055 of Accuracy1), and the test split must not choose. The
model-choice group (``python -m models.pace.data --choice``: the songs each source's draw yields
after the data set's, never trained on, validated on or tested) is where finished models are
compared:

    python -m models.pace.choice --model shipped models/pace.onnx models/pace/ranking.json \\
                                 --model ensemble OTHER/pace.onnx OTHER/ranking.json

Each model is scored with the ranking its own ranking.json chose (nothing is fitted here). The
figures are :func:`models.pace.evaluate.summarize`'s; the rule is :func:`replaces`. Writes
``models/pace/choice.json``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from models.pace import data as pace_data
from models.pace.evaluate import summarize

OUT = Path(__file__).resolve().parent / "choice.json"
# The rule (written down in session 26 before the group was built or scored): the candidate must
# not classify worse by more than this, and must find the tempo on more songs (Acc1 + Acc2).
ACCURACY_SLACK = 0.002


def replaces(candidate: dict, current: dict) -> bool:
    """Whether ``candidate`` should replace ``current`` (both :func:`summarize` dicts on the
    choice songs): its candidate classification is no worse than ``current``'s less
    ``ACCURACY_SLACK``, and its Accuracy1 + Accuracy2 is strictly higher."""
    classifies = candidate["accuracy_candidates"] >= current["accuracy_candidates"] - ACCURACY_SLACK
    tempo = candidate["tempo_accuracy1"] + candidate["tempo_accuracy2"]
    return classifies and tempo > current["tempo_accuracy1"] + current["tempo_accuracy2"]


def choice_records(data_set_records: list[dict], data_dir: Path = pace_data.CHOICE_DIR) -> list[dict]:
    """The choice group's records, checked to share no song with the data set's splits."""
    records = pace_data.load_index(data_dir)["records"]
    overlap = {r["song_id"] for r in records} & {r["song_id"] for r in data_set_records}
    if overlap:
        raise ValueError(f"{data_dir}: {len(overlap)} choice songs are also in the data set, e.g. {sorted(overlap)[0]}")
    return records


def paired_tempo(results_a: list[dict], results_b: list[dict]) -> dict:
    """Songs whose top candidate only one model gets right (Accuracy1 and Accuracy2)."""
    from models.pace.ranking import tempo_hits

    def hits(results):
        return tempo_hits([r["ranked"][0] if len(r["ranked"]) else None for r in results],
                          [r["beat_bpm"] for r in results])

    hits_a, hits_b = hits(results_a), hits(results_b)
    out = {}
    for k, name in enumerate(("accuracy1", "accuracy2")):
        a, b = hits_a[:, k], hits_b[:, k]
        out[name] = {"only_first": int((a & ~b).sum()), "only_second": int((b & ~a).sum())}
    return out


def _describe(path: Path) -> str:
    """A model file as the record names it: its path in the repository, or (a file kept elsewhere,
    e.g. a candidate not committed) its name and the start of its SHA-256."""
    path = path.resolve()
    try:
        return str(path.relative_to(pace_data.ROOT))
    except ValueError:
        return f"{path.name} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:12]}, not in the repository)"


def main(models: list[tuple[str, Path, Path]]) -> dict:
    from models.pace import ranking
    from models.pace.train import CONFIG, Songs, onnx_fn, predict

    data_set = pace_data.load_index()["records"]
    records = choice_records(data_set)
    songs = Songs(records, pace_data.CHOICE_DIR)
    train_records = [r for r in data_set if r["split"] == "train"]
    doc = {"n_songs": len(records), "by_source": {s: sum(r["source"] == s for r in records)
                                                 for s in sorted({r["source"] for r in records})},
           "label_ceiling_accuracy1": ranking.label_ceiling(records, train_records), "models": {}}
    results = {}
    for name, onnx_path, ranking_path in models:
        chosen = json.loads(Path(ranking_path).read_text())
        results[name] = predict(onnx_fn(Path(onnx_path)), songs, CONFIG["inputs"],
                                rank_weights=chosen["chosen_engine_form"])
        doc["models"][name] = {"onnx": _describe(Path(onnx_path)), "ranking": chosen["chosen"],
                               **summarize(results[name]),
                               # every ranking its ranking.json compared, for the record (not the rule's)
                               "rankings": ranking.held_out_accuracies(results[name], chosen)}
    names = [m[0] for m in models]
    if len(names) == 2:
        first, second = names
        doc["paired_tempo"] = paired_tempo(results[first], results[second])
        doc["second_replaces_first"] = replaces(doc["models"][second], doc["models"][first])
    OUT.write_text(json.dumps(doc, indent=1))
    print(json.dumps(doc, indent=1))
    return doc


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs=3, action="append", required=True, metavar=("NAME", "ONNX", "RANKING_JSON"),
                    help="a model to score (twice: whether the second replaces the first)")
    main([(n, Path(o), Path(r)) for n, o, r in ap.parse_args().model])
