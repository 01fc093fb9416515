"""Render models/MODEL_CARD_pace.md from models/pace/metrics.json (+ ablations.json if present).

``python -m models.pace.card`` re-renders it without retraining.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[1]


def _pct(x):
    return f"{100 * x:.1f} %"


def _row(name, m):
    return (f"| {name} | {m['n_songs']} | {_pct(m['accuracy_candidates'])} ({m['n_candidates']}) | "
            f"{_pct(m['accuracy_metrical'])} ({m['n_metrical']}) | {m['set_precision']:.3f} | {m['set_recall']:.3f} | "
            f"{m['tempo_accuracy1']:.3f} | {m['tempo_accuracy2']:.3f} | "
            f"{m.get('tempogram_accuracy1', float('nan')):.3f} / {m.get('tempogram_accuracy2', float('nan')):.3f} |")


def _targets(m: dict) -> str:
    met = {"accuracy": m["accuracy_candidates"] >= 0.95, "Acc1": m["tempo_accuracy1"] >= 0.95,
           "Acc2": m["tempo_accuracy2"] >= 0.98}
    return ("Met: " + (", ".join(k for k, v in met.items() if v) or "none") + "; not met: "
            + (", ".join(k for k, v in met.items() if not v) or "none") + ".")


def _misses(info: dict) -> str:
    misses = info.get("test_tempo_misses")
    if not misses:
        return ""
    n = sum(misses["by_ratio"].values())
    parts = ", ".join(f"{k} {v}" for k, v in misses["by_ratio"].items())
    meters = ", ".join(f"{k} {v}" for k, v in list(misses["by_meter"].items())[:6])
    return (f"The {n} held-out Acc1 misses, by top candidate / notated beat: {parts} (most common by meter: "
            f"{meters}). Octave misses (×2, ×½) are mostly the same metrical levels read with another notated "
            "beat (see the label ceiling below); the ×3/2, ×3/4, ×2/3 misses (the Acc2 misses) group the same "
            "eighth notes in twos instead of threes or the reverse (6/8 heard as 3/4 or 3/2, 3/4 heard as 6/8).")


# The rankings models/pace/ranking.py compares: (row label in its table, what the engine then does).
RANKINGS = {
    "product": ("salience × P(beat) × P(compatible)", "tempogram salience × P(beat) × P(compatible)"),
    "product_prior_1oct": ("the same × log-normal prior (120 bpm, 1 octave)",
                           "tempogram salience × P(beat) × P(compatible) × a log-normal prior"),
    "fitted": ("conditional logit fitted on the training songs",
               "the conditional logit fitted on the training songs (ln salience, ln P(beat), "
               "ln P(compatible), log2 bpm and its square)"),
}


def _ranking_section(info: dict, doc: dict, chosen: str) -> str:
    """Choosing the top candidate: the rankings of models/pace/ranking.py and the label ceiling."""
    if not doc:
        return ""
    test = info.get("test_rankings", {})
    names = {key: label + (" (**shipped**)" if key == chosen else "") for key, (label, _) in RANKINGS.items()}
    lines = ["| ranking | classifier's training songs (in-sample) | validation songs (unseen) | held-out test |",
             "|---|---|---|---|"]
    for key, label in names.items():
        r = doc["rankings"][key]
        t = test.get(key)
        lines.append(f"| {label} | {r['classifier_training_songs']['accuracy1']:.3f} / "
                     f"{r['classifier_training_songs']['accuracy2']:.3f} | {r['validation_songs']['accuracy1']:.3f} / "
                     f"{r['validation_songs']['accuracy2']:.3f} | "
                     + (f"{t['accuracy1']:.3f} / {t['accuracy2']:.3f}" if t else "—") + " |")
    fitted = ""
    if "fitted_weights" in doc:
        w = doc["fitted_weights"]
        prior = doc.get("fitted_log_normal_prior")
        shape = (f"a log-normal prior centred at {prior[0]:.0f} bpm, {prior[1]:.2f} octaves wide" if prior else
                 "not a log-normal prior but a lean towards " + ("faster" if w[3] > 0 else "slower") + " tempi")
        fitted = (f"The fitted logit weighs ln salience {w[0]:.2f}, ln P(beat) {w[1]:.2f}, ln P(compatible) {w[2]:.2f}, "
                  f"log2(bpm / 120) {w[3]:.2f} and its square {w[4]:.2f} ({shape}).")
    ceiling = doc["label_ceiling_accuracy1"]
    test_ceiling = info["test"].get("label_ceiling_accuracy1")
    return f"""
## Choosing the top candidate (tempo Accuracy1 / Accuracy2)

`python -m models.pace.ranking` (results in `models/pace/ranking.json`) compares rankings of a
song's candidates by Acc1 / Acc2. The weights are fitted on the {doc['n_classifier_training_songs']} songs the
classifier was trained on ({doc['n_folds']}-fold cross-validated there) and the rule is *chosen* on the
{doc['n_validation_songs']} validation songs, which the classifier never trained on; the held-out test songs were
used for neither, their column is reported after the choice. The engine uses the ranking with the
highest Acc1 + Acc2 on the validation songs (ties: the simplest), here **{RANKINGS[chosen][0]}**.
(To be exact: on the first, 780-song data set a first version of the fitted logit, on logit
P(beat), was scored once on the test songs, 0.881 / 0.947, before the validation comparison
existed.)

{chr(10).join(lines)}

{fitted} The tempogram salience already holds a log-normal prior (120 bpm, one octave, as
librosa's beat tracker). Differences of a few songs between the rankings are within the noise
of {doc['n_validation_songs']} validation songs.

**Label ceiling.** The notated beat is partly a convention the audio cannot reveal: a reel in 2/2
at half = 80 has the same metrical levels in 40–320 bpm as one in 4/4 at quarter = 160 (or 2/4 at
quarter = 160 felt in one). An oracle that knows each song's exact levels in range and its source,
and picks the (meter, beat) reading the training data's meter frequencies and tempo ranges make
likeliest, reaches Acc1 {ceiling['classifier_training_songs']:.3f} on the classifier's training songs,
{ceiling['validation_songs']:.3f} on the validation songs{'' if test_ceiling is None else f' and {test_ceiling:.3f} on the test songs'}
(computed from labels only). The Acc1 target of 0.95 is above that on this data: what remains
is notation, not hearing (a method can pass the oracle only by hearing more than the levels, e.g. a
style that goes with a meter). Acc2 has no such ceiling; its misses are meter errors of the classifier.
"""


def _best_epoch(history: list[dict]) -> dict:
    return max(history, key=lambda h: 0.5 * (h["accuracy_candidates"] + h["accuracy_metrical"]))


def _members_text(info: dict, cfg: dict) -> str:
    """The recipe's last lines: the members (seeds, kept epochs, validation scores), the ensemble's
    validation score and what training took. Older metrics (one model, ``history``) read as one member."""
    members = info.get("members") or [{"seed": cfg.get("seed", 0), "history": info["history"],
                                       "threads": cfg.get("threads")}]
    best = [_best_epoch(m["history"]) for m in members]
    scores = ", ".join(f"seed {m['seed']} {0.5 * (b['accuracy_candidates'] + b['accuracy_metrical']):.4f} "
                       f"(epoch {b['epoch']})" for m, b in zip(members, best))
    val = info.get("validation")
    ensemble = "" if val is None else (
        f" The ensemble on the validation songs: {val['score']:.4f} (accuracy {_pct(val['accuracy_candidates'])} "
        f"candidates, {_pct(val['accuracy_metrical'])} metrical set).")
    threads = sorted({m.get("threads") or cfg["threads"] for m in members})
    how = (f"{len(members)} members trained alike from seeds {', '.join(str(m['seed']) for m in members)}, "
           "their logits averaged in one ONNX graph (`PaceEnsemble`); each keeps") if len(members) > 1 else (
        f"Seed {members[0]['seed']}; the model keeps")
    return (f"{how} the epoch with the best validation score (mean of the two accuracies on the "
            f"validation songs, 10 % of the training songs): {scores}.{ensemble} Training took "
            f"{info['train_seconds'] / 60:.1f} min wall clock in all ({info['train_cpu_seconds'] / 60:.1f} min CPU, "
            f"torch with {'/'.join(map(str, threads))} thread(s) per member) on a 2-core machine shared with "
            "other jobs.")


def _reused(data: dict) -> str:
    n = data.get("n_reused") or 0
    return f"; {n} of the songs were made by an earlier, smaller build and only read" if n else ""


def _choice_text(path: Path = MODELS_DIR / "pace" / "choice.json") -> str:
    """Step 8 of the history: the finished models compared on the model-choice songs
    (models.pace.choice), when that comparison has been run."""
    if not path.exists():
        return ""
    doc = json.loads(path.read_text())
    (first, a), (second, b) = list(doc["models"].items())[:2]
    sources = ", ".join(f"{n} {s}" for s, n in doc["by_source"].items())
    pair = doc.get("paired_tempo", {}).get("accuracy1", {})

    def figures(m):
        return (f"{_pct(m['accuracy_candidates'])} (candidates), Acc1 / Acc2 {m['tempo_accuracy1']:.3f} / "
                f"{m['tempo_accuracy2']:.3f} with its {m['ranking']} ranking")

    others = "; ".join(f"{name} with its {r}: {v['accuracy1']:.3f} / {v['accuracy2']:.3f}"
                       for name, m in ((first, a), (second, b)) for r, v in m["rankings"].items() if r != m["ranking"])
    verdict = "**taken**" if doc.get("second_replaces_first") else "**not taken**: this model stays"
    text = (f"8. The {second} of step 7 compared again, on {doc['n_songs']} songs made only to choose between "
            f"finished models (`python -m models.pace.data --choice`: the songs each source's draw yields after "
            f"the data set's, never trained on, validated on or tested; {sources}; label ceiling of Acc1 "
            f"{doc['label_ceiling_accuracy1']:.3f}), by a rule written down before they were built "
            f"(`models.pace.choice.replaces`: its candidate accuracy no more than 0.2 points lower, and a higher "
            f"Acc1 + Acc2, each model with the ranking its own validation songs chose). `python -m "
            f"models.pace.choice --model {first} … --model {second} …` → models/pace/choice.json. This model "
            f"({first}): {figures(a)}; the {second}: {figures(b)}. The Acc1 verdicts differ on "
            f"{pair.get('only_first', 0) + pair.get('only_second', 0)} songs ({pair.get('only_first', 0)} only "
            f"{first}, {pair.get('only_second', 0)} only {second}). Verdict: {verdict}. For the record, the other "
            f"rankings: {others}; the rankings trade Acc1 for Acc2 on these songs as on the test songs.")
    return "\n" + textwrap.indent(textwrap.fill(text, width=97, break_on_hyphens=False), "   ")[3:] + "\n"


def write_card(info: dict, ranking_doc: dict | None = None, path: Path = MODELS_DIR / "MODEL_CARD_pace.md") -> Path:
    """Write the card for the metrics ``info`` (as written by models.pace.train.main) and the
    rankings ``ranking_doc`` (models/pace/ranking.json; read when not given)."""
    m, cfg, data = info["test"], info["config"], info["data"]
    counts = data.get("by_source") or data.get("counts") or {}  # songs made per source (older runs: asked for)
    rows = [_row("**all**", m)] + [_row(src, s) for src, s in info["test_by_source"].items()]
    ablation_path = MODELS_DIR / "pace" / "ablations.json"
    ablation = ""
    if ablation_path.exists():
        ab = json.loads(ablation_path.read_text())
        lines = ["| variant | accuracy (candidates) | accuracy (metrical set) | set P | set R |", "|---|---|---|---|---|"]
        for name, r in ab["variants"].items():
            lines.append(f"| {name} | {_pct(r['accuracy_candidates'])} | {_pct(r['accuracy_metrical'])} | "
                         f"{r['set_precision']:.3f} | {r['set_recall']:.3f} |")
        ablation = ("\n## Against the seed recipe (ablation)\n\n" + ab.get("note", "") + " Every row includes the "
                    "consistency step.\n\n" + "\n".join(lines) + "\n")
    recipe_end = textwrap.fill(_members_text(info, cfg), width=100, break_on_hyphens=False)
    from models.pace import ranking

    ranking_doc = ranking.load() if ranking_doc is None else ranking_doc
    chosen = ranking_doc.get("chosen", "product")
    ranking_section = _ranking_section(info, ranking_doc, chosen)
    shipped_ranking = RANKINGS[chosen][1]
    plain = info.get("test_without_consistency")
    consistency = "" if plain is None else (
        f"\nWithout the consistency step (raw model probabilities): accuracy {_pct(plain['accuracy_candidates'])} "
        f"(candidates), {_pct(plain['accuracy_metrical'])} (metrical set), set P/R {plain['set_precision']:.3f} / "
        f"{plain['set_recall']:.3f}, Acc1/Acc2 {plain['tempo_accuracy1']:.3f} / {plain['tempo_accuracy2']:.3f}. "
        "The step and its weight were chosen on the validation songs (+0.5 % there), not on the test songs.\n")
    text = f"""# Model card: pace-compatibility CNN (`models/pace.onnx`)

Given a recording and a candidate tempo, the probability that the song is *compatible* with that
pace, i.e. that the tempo is one of the song's metrical levels (bar, half bar, beat, or the beat's
first three subdivisions) within 5 %. A second output scores whether the candidate is the notated
beat. Used by `engine.pace.classify_paces` (and so `earworm tempo` and the tempo strip); run with
onnxruntime on the CPU.

- Input `clips`: float32 (N, 16, 16, 24) — 8 band energies + 8 band spectral fluxes (from a
  64-band log-mel at 22050 Hz, hop 512), resampled by exact area averaging to 24 steps per beat
  over 16 beats at the candidate tempo, laid out beats × time-within-beat, each channel
  standardised per clip.
- Input `periodicity`: float32 (N, 9, 13) — the song's normalised autocorrelation (onset envelope
  and the 8 band fluxes) at 1/4, 1/3, 1/2, 2/3, 3/4, 1, 4/3, 3/2, 2, 3, 4, 6, 8 × the candidate
  period (max within ±4 %).
- Output `logits`: (N, 2) = [compatible, is the notated beat]. The engine averages the logits of
  4 clips per candidate (fixed placements over the song), makes the song's pace probabilities
  consistent with one metrical hierarchy (`engine.pace.make_consistent`: 0.7 × model + 0.3 ×
  membership in the likeliest hierarchy, which only moves verdicts between 0.29 and 0.71), then
  re-ranks the candidates by {shipped_ranking}: the rule chosen on validation songs, see
  "Choosing the top candidate".
- Architecture (`models/pace/net.py`): narrow convolutions (1×5, 3×1, 1×3, 3×1, 3×3; widths
  {tuple(cfg['widths'])}) with batch norm, dropout between blocks, global mean+max pooling; the
  periodicity vector through a {cfg.get('periodicity_width', 48)}-unit layer; both into a linear
  output. Size {info['onnx_bytes'] / 1024:.0f} KB. Metadata `feature_version = {cfg.get('feature_version', 'pace-v2')}`
  (engine.models refuses a model without it).

## Data (offline, `python -m models.pace.data`)

{data['n_songs']} songs ({data['n_train']} train, {data['n_test']} held-out test; split **by song**,
per source): music21 corpus tunes (Ryan's Mammoth Collection {counts.get('ryans')}, O'Neill's 1850
{counts.get('oneills')}, Essen children's songs {counts.get('essen')}: monophonic, 65 % given a generated
bass/chord/drum accompaniment that follows the bar; Bach chorales {counts.get('bach')}) and
{counts.get('groove')} generated grooves (drums, bass, chords, melody on the metrical grid of 4/4, 3/4,
2/4, 2/2, 6/8, 12/8, 9/8; 15 % with flat accents that hide the meter). Each song is played at a
random beat tempo (log-uniform: 60–180 bpm quarter beats, 50–120 half-note beats, 40–125 dotted
quarters) with ≤ 2 % slow tempo drift and ≤ 12 ms onset jitter, looped to 45–75 s in whole bars; corpus
tunes are played with metrical accents as a player gives them (velocity + depth × (metrical
weight / 4 − 1/4), depth 4–16 velocity steps, none for a fifth of the tunes),
rendered with FluidSynth through one of FluidR3_GM, TimGM6mb, MuseScore_General_Lite, and
30 % get pink-ish noise at 20–35 dB SNR. Labels: the paces implied by tempo and meter
(`engine.tempo.metrical_paces`) within 5 %. Building it took {data.get('build_seconds') or 0:.0f} s
(2 worker processes on a shared 2-core machine{_reused(data)}).

## Recipe (`python -m models.pace.train`, PyTorch on CPU)

Per epoch and training song: its tempogram candidates, its implied paces (±3 % jitter), 3
confusable neighbours (×2/3, ×3/4, ×4/3, ×3/2 of a pace, ≥ 8 % from every pace) and 2 random
tempi, one clip each at a random start (random beat phase), with the song's periodicity vector
(or, {100 * cfg.get('local_profile_fraction', 0):.0f} % of the time, that of a random 25 s segment, as the
live strip computes it). BCE on both outputs (beat output
weight {cfg['beat_loss_weight']}), AdamW (lr {cfg['lr']}, weight decay {cfg['weight_decay']}), one-cycle
schedule, {cfg['epochs']} epochs, batch ≈ {cfg['batch_size']} clips, dropout {cfg['dropout']}/{cfg['head_dropout']}.
{recipe_end}

## Held-out evaluation (songs never used in training; run through onnxruntime)

Accuracy: over (song, candidate) pairs, threshold 0.5. "Candidates" = what `earworm tempo`
classifies (tempogram candidates; {_pct(m['candidate_positive_fraction'])} of them compatible);
"metrical set" = every implied pace in 40–320 bpm plus its confusable neighbours
(×2/3, ×3/4, ×4/3, ×3/2). Set P/R: per-song precision/recall of the predicted compatible-pace set
among the candidates vs the implied paces in 40–320 bpm (mean over songs; the candidates
themselves cover {m.get('candidate_coverage', float('nan')):.3f} of those paces, the ceiling of set R). Acc1/Acc2: top
(most salient) candidate vs the notated beat tempo, mir_eval.tempo convention
`|est − ref| ≤ 0.04·ref` (Acc2 also ×2, ×3, ×½, ×⅓), after the classifier re-ranks; the last
column is the same for the tempogram's own ranking (before classification).

| songs | n | accuracy (candidates) | accuracy (metrical set) | set P | set R | Acc1 | Acc2 | tempogram-only Acc1 / Acc2 |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Targets from the issue: accuracy ≥ 95 % (the seed reached 91 %), Acc1 ≥ 0.95, Acc2 ≥ 0.98.
{_targets(m)}
{consistency}
Where it fails: the classification errors concentrate on triple and compound meters — solo fiddle tunes in 6/8
read as 3/4 (running eighths grouped 2+2+2 instead of 3+3; both are valid for the notes), and
generated 3/4 grooves whose half-beat is taken for a pace. {_misses(info)}
{ranking_section}{ablation}
## How the recipe got here (development history, all numbers on held-out songs)

1. Seed-like recipe rebuilt here (clips only, band energies + flux, 4 clips), first data set
   (600 songs, no performance accents): 90.1 % (candidates) / 93.5 % (metrical set).
2. + the periodicity input: 92.3 % / 94.4 %; set precision 0.88 → 0.93.
3. Error analysis by meter and source (on the test split of that data set) showed most errors on
   unaccompanied 6/8 tunes played with flat dynamics, where the notes alone do not decide 6/8
   from 3/4. The data generator then gave corpus tunes the metrical accents players give them
   (a fifth still without), and the set grew to 780 songs (new songs, same split rule, the
   earlier test songs stay in test): 94.7 % / 96.5 %.
4. + the consistency step at inference (chosen on validation songs): 95.0 % / 96.9 %.
5. More songs, same recipe (2026-11-22; `COUNTS` in models/pace/data.py; every build keeps the
   earlier songs and their split, so each test set holds the previous one): 780 → 1458 → 2378
   songs. On the 500 test songs of the last, all with the product ranking: the 780-song model
   95.3 % (candidates), Acc1 / Acc2 0.836 / 0.966; the 1458-song model 96.1 %, 0.838 / 0.978; the
   2378-song model 96.4 %, 0.890 / 0.982. With that model the fitted ranking won on the validation
   songs (Acc1 + Acc2: 0.868 + 0.973 vs the product's 0.852 + 0.984) and replaced the product rule
   in the engine: test 0.908 / 0.978. The choice rule (highest Acc1 + Acc2 on validation) was set
   before, in tests/test_tempo.py, and is kept rather than changed after seeing the test songs.
   Tried on the same validation songs and dropped: ranking by the likelihood of the whole song's
   verdicts under each meter with a meter/tempo prior from the training songs (Acc1 0.846, Acc2
   0.978 with P(beat); 0.626 / 0.973 without).
6. Recipe variants on the 2378 songs, chosen by the validation score that also picks the epoch
   (mean of the two accuracies): 20 epochs 0.9730, widths (24, 32, 48) 0.9734, **30 epochs
   0.9747** (this card). On the test songs it gains in classification (96.4 → 96.7 %, set P/R
   0.954 / 0.935 → 0.957 / 0.938) and, with the ranking chosen again on validation (fitted),
   scores Acc1 0.910, Acc2 0.970 (the product rule: 0.892 / 0.978). Acc2 on 500 songs moves by a
   few songs between models of the same recipe: 0.970–0.982 here.
7. Tried in session 25 and **not taken**: three members of this recipe (seeds 0, 1, 2; trained on
   the data set built again on a fresh machine, seeds 0 and 1 with one torch thread each, 2 with
   two), their logits averaged (`python -m models.pace.train --seeds 0,1,2`; `PaceEnsemble` in
   models/pace/net.py; 226 KB). The rule, written down before any test song was scored: take it if,
   on the 182 validation songs, (a) its validation score is at least this model's 0.9747 and (b) the
   Acc1 + Acc2 of the ranking chosen for it is at least this model's 0.879 + 0.973. (a) held
   (0.9747; the members alone 0.9766, 0.9725, 0.9743), (b) did not: the product rule was chosen for
   it, 0.863 + 0.973 (the fitted one 0.868 + 0.967), three songs short. (The rule's figures for this
   model were those of its own run; on the rebuilt validation songs it scores 0.9725 on (a) and
   0.879 + 0.978 on (b), so the verdict is the same.) Scored once afterwards on the test songs, as
   rebuilt: accuracy 97.0 % (candidates), set P/R 0.963 / 0.939, Acc1 / Acc2 0.908 / 0.982 with its
   product rule (fitted: 0.918 / 0.976); this model on the same rebuilt songs: 96.7 %, 0.958 /
   0.937, 0.910 / 0.972 (product rule: 0.892 / 0.980). The ensemble looks better there, but taking
   it now would be choosing on the test songs; the validation songs are too few to tell the two
   apart (one song = 0.0055 of Acc1).
{_choice_text()}
Because step 3 was informed by test-split errors of the earlier data set, treat the final numbers
as slightly optimistic; the ablation above (same final data for every row) is the fair
comparison.

## Limits

- All audio is synthesized from MIDI (three GM soundfonts), metronomic up to ≤ 2 % drift: no
  recordings, no vocals, no rubato. Expect lower numbers on real recordings.
- Labels follow notation: 2/4 vs 4/4 and the notated beat of 2/2 (half note) are conventions the
  audio cannot always reveal; Acc1 measures agreement with the notated beat.
- Recall is bounded by the candidate generator: a metrical level that is not a tempogram peak
  cannot be predicted.
"""
    path.write_text(text)
    return path


if __name__ == "__main__":
    write_card(json.loads((MODELS_DIR / "pace" / "metrics.json").read_text()))
