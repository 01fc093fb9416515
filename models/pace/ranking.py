"""Which tempo candidate is the notated beat? Compare re-rankings on songs the classifier never saw.

``python -m models.pace.ranking`` runs the exported classifier (``models/pace.onnx``, through
onnxruntime, with the engine's clip placement and consistency step) on every song of the
*training* split and compares, by Accuracy1/Accuracy2 of the top candidate (mir_eval
convention, 4 %), these rankings of a song's candidates:

- ``product`` — tempogram salience × P(beat) × P(compatible) (:func:`engine.pace.beat_scores`
  with unit weights and no prior);
- ``product_prior_1oct`` — the same × an extra log-normal tempo prior (120 bpm, one octave);
- ``fitted`` — a conditional logit (softmax over the song's candidates) of the notated beat on
  ln salience, ln P(beat), ln P(compatible), log2(bpm/120) and its square (a tempo prior, log-normal
  when the square's weight is negative), maximum likelihood with a small L2 penalty.

They are scored on two groups: the songs the classifier was trained on (``fitted`` is
fitted there, 5-fold cross-validated) and the *validation* songs (10 % of the training split,
held out of training and used only to pick the epoch): only the second tells how a ranking does
on unseen audio, because the classifier's P(beat) is overconfident on its own training songs.
Choice (:func:`choose`): the ranking with the highest Accuracy1 + Accuracy2 on the validation
songs (ties: the simplest, in the order above); engine.pace's constants implement it. Results:
``models/pace/ranking.json`` (``chosen``, ``chosen_engine_form``). The held-out test songs are
never read here.

Label ceiling (:func:`label_ceiling`): the notated beat is a convention the audio cannot always
reveal (a reel in 2/2 at half = 80 sounds like one in 4/4 at quarter = 160: the same metrical
levels in 40–320 bpm). It is the Accuracy1 of an oracle that knows a song's exact metrical levels
in range and its source, and picks the (meter, beat) reading that the training data's meter
frequencies and tempo ranges make likeliest: roughly what notation costs a method that hears the
meter perfectly (a method may still beat it by hearing more than the levels, e.g. a style).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from engine.pace import RANK_FEATURES, RANK_REFERENCE_BPM, rank_features
from engine.tempo import metrical_paces
from models.pace.evaluate import paces_in_range, summarize, tempo_accuracy

OUT = Path(__file__).resolve().parent / "ranking.json"
N_FOLDS = 5
L2_PENALTY = 1e-3
# The fixed rules compared with the fitted one, as weights on engine.pace.RANK_FEATURES.
RULES = {"product": (1.0, 1.0, 1.0, 0.0, 0.0), "product_prior_1oct": (1.0, 1.0, 1.0, 0.0, -0.5)}
MISS_RATIOS = {"×2": 2.0, "×½": 0.5, "×3": 3.0, "×⅓": 1 / 3, "×4": 4.0, "×¼": 0.25, "×3/2": 1.5, "×2/3": 2 / 3,
               "×3/4": 0.75, "×4/3": 4 / 3}


def negative_log_likelihood(w: np.ndarray, songs: list[tuple[np.ndarray, np.ndarray]], penalty: float = L2_PENALTY):
    """Mean −ln P(a correct candidate) under softmax(features @ w), + penalty·|w|²; with gradient."""
    total, grad = 0.0, np.zeros_like(w)
    for x, y in songs:
        s = x @ w
        p = np.exp(s - s.max())
        p /= p.sum()
        q = p * y
        total -= np.log(q.sum() + 1e-300)
        grad -= (q / max(q.sum(), 1e-300) - p) @ x
    n = max(len(songs), 1)
    return total / n + penalty * w @ w, grad / n + 2 * penalty * w


def fit(songs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Weights (RANK_FEATURES order) maximising the likelihood of the notated beat."""
    import scipy.optimize

    usable = [(x, y) for x, y in songs if y.any()]  # a song whose beat is not a candidate teaches nothing
    start = np.array(RULES["product_prior_1oct"])
    result = scipy.optimize.minimize(negative_log_likelihood, start, args=(usable,), jac=True, method="L-BFGS-B")
    return result.x


def engine_form(w: np.ndarray) -> dict:
    """Weights (RANK_FEATURES order) as engine.pace.RANK_WEIGHTS holds them."""
    return dict(zip(RANK_FEATURES, map(float, w)))


def log_normal_prior(w: np.ndarray) -> tuple[float, float] | None:
    """The tempo prior of weights ``w`` as (centre bpm, width in octaves), if it is log-normal."""
    a, b = float(w[3]), float(w[4])
    if b >= 0:
        return None
    return RANK_REFERENCE_BPM * 2 ** (-a / (2 * b)), (-2 * b) ** -0.5


def tempo_hits(choices_bpm, references_bpm) -> np.ndarray:
    """Per song, (Accuracy1, Accuracy2) of the chosen tempo (None: no candidate, both False)."""
    return np.array([tempo_accuracy(c, r) if c is not None else (False, False)
                     for c, r in zip(choices_bpm, references_bpm)], dtype=bool).reshape(-1, 2)


def accuracies(choices_bpm, references_bpm) -> tuple[float, float]:
    hits = tempo_hits(choices_bpm, references_bpm)
    return float(np.mean(hits[:, 0])), float(np.mean(hits[:, 1]))


def label_ceiling(records: list[dict], prior_records: list[dict]) -> float:
    """Accuracy1 of the metrical-level oracle (module docstring) on ``records``, with meter
    frequencies (per source) and tempo ranges taken from ``prior_records``."""
    from models.pace.songs import Meter

    def tempo_range(meter):
        return (40.0, 125.0) if meter.compound else (50.0, 120.0) if meter.beat_ql == 2.0 else (60.0, 180.0)

    counts = Counter((r["source"], r["meter"]) for r in prior_records)
    ratios = (1, 2, 1 / 2, 3, 1 / 3, 3 / 2, 2 / 3, 4, 1 / 4, 6, 1 / 6, 3 / 4, 4 / 3)
    hits = []
    for r in records:
        heard = np.sort(paces_in_range(metrical_paces(r["beat_bpm"], r["beats_per_bar"], r["beat_division"])))
        best, best_p = r["beat_bpm"], -1.0
        for (source, ratio_text), n in counts.items():
            if source != r["source"]:
                continue
            meter = Meter(ratio_text)
            lo, hi = tempo_range(meter)
            for f in ratios:
                beat = r["beat_bpm"] * f
                levels = np.sort(paces_in_range(metrical_paces(beat, meter.beats_per_bar, meter.beat_division)))
                same = levels.size == heard.size and np.all(np.abs(levels / heard - 1) < 0.03)
                density = n / np.log(hi / lo)  # log-uniform beat tempo per meter, as the data draws it
                if lo <= beat <= hi and same and density > best_p:
                    best, best_p = beat, density
        hits.append(tempo_accuracy(best, r["beat_bpm"])[0])
    return float(np.mean(hits))


def main() -> dict:
    from models.pace import data as pace_data
    from models.pace.train import CONFIG, MODELS_DIR, Songs, onnx_fn, predict

    records = [r for r in pace_data.load_index()["records"] if r["split"] == "train"]
    data = Songs(records)
    results = predict(onnx_fn(MODELS_DIR / "pace.onnx"), data, CONFIG["inputs"])
    is_val = np.array([pace_data.is_validation(r["song_id"], CONFIG["val_fraction"]) for r in records])
    songs = [(_features(res), np.abs(res["candidates"] / rec["beat_bpm"] - 1) <= 0.04)
             for rec, res in zip(records, results)]
    rules = {name: np.array(w) for name, w in RULES.items()}
    trained = np.where(~is_val)[0]
    folds = np.array([pace_data._seed_of(records[i]["song_id"] + ":ranking-fold") % N_FOLDS for i in trained])
    choices = {name: [None] * len(records) for name in (*rules, "fitted")}
    for k in range(N_FOLDS):  # on the classifier's training songs: fitted out of fold
        w = fit([songs[i] for i, f in zip(trained, folds) if f != k])
        for i in trained[folds == k]:
            choices["fitted"][i] = _top(results[i]["candidates"], songs[i][0] @ w)
    w_fitted = fit([songs[i] for i in trained])
    for i in np.where(is_val)[0]:  # on the validation songs: fitted on every classifier-training song
        choices["fitted"][i] = _top(results[i]["candidates"], songs[i][0] @ w_fitted)
    for name, w in rules.items():
        for i in range(len(records)):
            choices[name][i] = _top(results[i]["candidates"], songs[i][0] @ w)
    refs = np.array([r["beat_bpm"] for r in records])
    table = {}
    for name, picks in choices.items():
        picks = np.array(picks, dtype=object)
        table[name] = {group: dict(zip(("accuracy1", "accuracy2"), accuracies(picks[mask], refs[mask])))
                       for group, mask in (("classifier_training_songs", ~is_val), ("validation_songs", is_val))}
    ceiling = {group: label_ceiling([records[i] for i in np.where(mask)[0]], records)
               for group, mask in (("classifier_training_songs", ~is_val), ("validation_songs", is_val))}
    chosen = choose(table)
    validation = summarize([results[i] for i in np.where(is_val)[0]])  # the classifier's, on the same run
    validation["score"] = 0.5 * (validation["accuracy_candidates"] + validation["accuracy_metrical"])
    info = {"chosen": chosen, "chosen_engine_form": engine_form(w_fitted if chosen == "fitted" else rules[chosen]),
            "features": RANK_FEATURES, "fitted_weights": w_fitted.tolist(), "fitted_log_normal_prior": log_normal_prior(w_fitted),
            "n_classifier_training_songs": int((~is_val).sum()), "n_validation_songs": int(is_val.sum()),
            "l2_penalty": L2_PENALTY, "n_folds": N_FOLDS, "rankings": table,
            "beat_in_candidates": float(np.mean([y.any() for _, y in songs])), "label_ceiling_accuracy1": ceiling,
            "validation_classification": validation}
    OUT.write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))
    return info


def choose(table: dict) -> str:
    """The ranking with the highest Accuracy1 + Accuracy2 on the validation songs; ties go to the
    first in ``table``'s order (the simplest: the product rule, the same with a prior, fitted),
    as ``max`` keeps the first of equals."""
    def total(name):
        v = table[name]["validation_songs"]
        return round(v["accuracy1"] + v["accuracy2"], 9)

    return max(table, key=total)


def held_out_accuracies(results: list[dict], doc: dict) -> dict:
    """Accuracy1/2 on the held-out test songs of each ranking compared here, with the weights
    ranking.json holds (``doc``, fixed before the test songs were looked at): reported, never
    tuned on. ``results`` as models.pace.train.predict returns them."""
    weights = {name: np.array(w) for name, w in RULES.items()}
    if "fitted_weights" in doc:
        weights["fitted"] = np.array(doc["fitted_weights"])
    features = [_features(r) for r in results]
    references = [r["beat_bpm"] for r in results]
    return {name: dict(zip(("accuracy1", "accuracy2"),
                           accuracies([_top(r["candidates"], x @ w) for r, x in zip(results, features)], references)))
            for name, w in weights.items()}


def load() -> dict:
    """ranking.json as written by :func:`main` ({} before the rankings were compared)."""
    return json.loads(OUT.read_text()) if OUT.exists() else {}


def miss_breakdown(results: list[dict], records: list[dict]) -> dict:
    """Where the top candidate misses the notated beat (Accuracy1 misses): counts by the ratio
    top / beat (MISS_RATIOS within 4 %, else "other") and by meter. For the model card."""
    by_ratio, by_meter = Counter(), Counter()
    for res, rec in zip(results, records):
        ranked = res["ranked"]
        if len(ranked) and tempo_accuracy(ranked[0], rec["beat_bpm"])[0]:
            continue
        q = ranked[0] / rec["beat_bpm"] if len(ranked) else np.nan
        name = next((k for k, f in MISS_RATIOS.items() if abs(q / f - 1) <= 0.04), "other")
        by_ratio[name] += 1
        by_meter[f"{rec['meter']} {name}"] += 1
    return {"by_ratio": dict(by_ratio.most_common()), "by_meter": dict(by_meter.most_common())}


def _features(res: dict) -> np.ndarray:
    """The ranking features of one song's candidates (``res`` as models.pace.train.predict returns)."""
    return rank_features(res["candidates"], res["candidate_salience"], res["candidate_beat_prob"], res["candidate_prob"])


def _top(bpm: np.ndarray, scores: np.ndarray):
    return float(bpm[int(np.argmax(scores))]) if bpm.size else None


if __name__ == "__main__":
    main()
