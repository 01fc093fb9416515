"""Train the pace-compatibility CNN, export it to ONNX, evaluate it on held-out songs.

``python -m models.pace.train`` (builds the data with models.pace.data if missing) writes

- ``models/pace.onnx`` — the classifier, with ``metadata_props`` feature_version (engine.pace.FEATURE_VERSION);
- ``models/pace.weights.npz`` — the PyTorch state as arrays (tests rebuild the torch model);
- ``models/pace.fixture.npz`` — fixed inputs and the PyTorch outputs on them (a torch-free test
  checks onnxruntime reproduces them);
- ``models/pace/ranking.json`` — the re-rankings of the candidates compared on the validation
  songs (:mod:`models.pace.ranking`, which picks the engine's rule);
- ``models/pace/metrics.json`` — held-out metrics (:mod:`models.pace.evaluate`) and timings;
- ``models/MODEL_CARD_pace.md`` — rendered from the metrics by :mod:`models.pace.card`.

``python -m models.pace.train --evaluate-only`` re-runs the held-out evaluation of the exported
model (after a change to the engine's inference, e.g. the consistency step) without training.

Recipe: every epoch draws, per training song, its tempogram candidates plus its implied paces
(jittered ±3 %), confusable neighbours (×2/3, ×3/4, ×4/3, ×3/2 of a pace, ≥ 8 % from any pace)
and two random tempi (≥ 8 % from any pace), each as one clip at a random start (so a random
beat phase), with the song's periodicity vector (30 % of the time the vector of a random 25 s
segment instead, as the live strip computes it). Loss: binary cross-entropy on
[compatible, is-the-beat] (the second weighted 0.5), AdamW, one-cycle learning rate.
Validation (10 % of the training songs) picks the epoch.

One model per seed in ``CONFIG["seeds"]`` (the shipped model: seed 0 alone); with several seeds
(``--seeds 0,1,2``) the exported model averages their logits (:class:`models.pace.net.PaceEnsemble`;
tried in sessions 25 and 26 and not taken, see the model card; :mod:`models.pace.choice`
compares finished models on songs kept for that). Each member is kept in
``data/pace/members/`` once trained, so members can be trained in parallel first
(``python -m models.pace.train --member 1 --threads 1``, one process per seed) and the full run only
assembles them.
"""
from __future__ import annotations

import json
import os
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from engine import pace as engine_pace
from engine import tempo
from models.pace import data as pace_data
from models.pace.evaluate import CONFUSABLE_RATIOS, metrical_candidate_set, paces_in_range, summarize

MODELS_DIR = Path(__file__).resolve().parents[1]
MEMBERS_DIR = pace_data.DATA_DIR / "members"
CONFIG = {"widths": (16, 24, 32), "periodicity_width": 48, "feature_version": engine_pace.FEATURE_VERSION,
          "dropout": 0.1, "head_dropout": 0.3, "epochs": 30, "batch_size": 128, "lr": 3e-3, "weight_decay": 1e-3,
          "beat_loss_weight": 0.5, "seed": 0, "seeds": (0,), "threads": 2,
          "inputs": ("energy", "flux", "periodicity"), "local_profile_fraction": 0.3, "val_fraction": 0.1}


def select_inputs(clips: np.ndarray, periodicity: np.ndarray, inputs) -> tuple[np.ndarray, np.ndarray]:
    """Ablations zero the inputs a variant does without (same shapes, so the same network and
    export): ``energy`` = band-energy channels (the seed recipe's mel view), ``flux`` = band-flux
    channels, ``periodicity`` = the autocorrelation vector."""
    if "energy" not in inputs or "flux" not in inputs:
        clips = clips.copy()
        if "energy" not in inputs:
            clips[:, : engine_pace.N_BANDS] = 0
        if "flux" not in inputs:
            clips[:, engine_pace.N_BANDS:] = 0
    if "periodicity" not in inputs:
        periodicity = np.zeros_like(periodicity)
    return clips, periodicity


class Songs:
    """The data set in memory: per song, frame features, duration, paces and candidates."""

    def __init__(self, records, data_dir=None):
        self.records = records
        self.frames, self.durations, self.candidates, self.profiles, self.features = [], [], [], [], []
        self.saliences = []
        for r in records:
            f = pace_data.load_features(r["song_id"], data_dir)
            self.features.append(f)
            self.frames.append(engine_pace.pace_frame_features(f.log_mel_db))
            self.profiles.append(engine_pace.autocorrelation_profile(f))
            self.durations.append(f.duration_s)
            bpm, salience = tempo.candidates_from_onsets(f.onset_envelope, f.frame_rate)
            self.candidates.append(bpm)
            self.saliences.append(salience)

    def __len__(self):
        return len(self.records)


def sample_tempi(rec, candidates, rng) -> np.ndarray:
    """One epoch's training tempi for a song (see the module docstring)."""
    paces = np.asarray(rec["paces"])
    inside = paces_in_range(paces)
    positives = np.clip(inside * np.exp(rng.uniform(-0.03, 0.03, inside.size)), tempo.MIN_BPM, tempo.MAX_BPM)
    near = np.concatenate([inside * r for r in CONFUSABLE_RATIOS])
    near = near[(near >= tempo.MIN_BPM) & (near <= tempo.MAX_BPM) & ~tempo.compatible_mask(near, paces, 0.08)]
    near = rng.choice(near, size=min(3, near.size), replace=False) if near.size else near
    rand = np.exp(rng.uniform(np.log(tempo.MIN_BPM), np.log(tempo.MAX_BPM), 12))
    rand = rand[~tempo.compatible_mask(rand, paces, 0.08)][:2]
    return np.concatenate([candidates, positives, near, rand])


FRAME_RATE = tempo.SR / tempo.HOP_LENGTH


def make_batch(songs: Songs, index: list[int], rng, inputs, local_profile_fraction: float = 0.0):
    """Clips, periodicity vectors and labels [compatible, beat] for the given songs (one clip
    per sampled tempo). A fraction of songs use the profile of a random segment instead of the
    whole song's, as the live strip does."""
    xs, ps, ys = [], [], []
    for i in index:
        rec = songs.records[i]
        bpm = sample_tempi(rec, songs.candidates[i], rng)
        clip_s = engine_pace.N_BEATS * 60.0 / bpm
        room = songs.durations[i] - clip_s
        starts = np.where(room > 0, rng.uniform(0, 1, bpm.size) * np.maximum(room, 0), room * rng.uniform(0, 1, bpm.size))
        xs.append(engine_pace.beat_clips(songs.frames[i], FRAME_RATE, bpm, starts))
        profile = songs.profiles[i]
        n_frames = songs.frames[i].shape[1]
        window = int(tempo.SEGMENT_S * FRAME_RATE)
        if rng.random() < local_profile_fraction and n_frames > window:
            start = int(rng.integers(0, n_frames - window))
            profile = engine_pace.autocorrelation_profile(songs.features[i], start, start + window)
        ps.append(engine_pace.periodicity_features(profile, FRAME_RATE, bpm))
        ys.append(np.stack([tempo.compatible_mask(bpm, rec["paces"]),
                            np.abs(bpm / rec["beat_bpm"] - 1) <= 0.04], axis=1))
    clips, periodicity = select_inputs(np.concatenate(xs), np.concatenate(ps), inputs)
    return clips, periodicity, np.concatenate(ys).astype(np.float32)


def song_probabilities(model_fn, songs: Songs, inputs, n_clips: int = engine_pace.N_CLIPS) -> list[np.ndarray]:
    """Per song, the model's raw probabilities (rows: the tempogram candidates, then the metrical
    set; columns: compatible, beat) with the engine's fixed clip placement (``model_fn``:
    (clips, periodicity) → logits, torch or onnxruntime)."""
    out = []
    for i, rec in enumerate(songs.records):
        bpm = np.concatenate([songs.candidates[i], metrical_candidate_set(rec["paces"])])
        starts = np.concatenate([engine_pace.clip_starts(songs.durations[i], b, n_clips) for b in bpm])
        clips = engine_pace.beat_clips(songs.frames[i], FRAME_RATE, np.repeat(bpm, n_clips), starts)
        periodicity = np.repeat(engine_pace.periodicity_features(songs.profiles[i], FRAME_RATE, bpm), n_clips, axis=0)
        logits = model_fn(*select_inputs(clips, periodicity, inputs)).reshape(bpm.size, n_clips, -1).mean(axis=1)
        out.append(1 / (1 + np.exp(-logits)))
    return out


def score_songs(songs: Songs, probabilities: list[np.ndarray], consistent: bool = True,
                rank_weights: dict | None = None) -> list[dict]:
    """Per-song results from :func:`song_probabilities`: ``consistent`` applies the engine's
    consistency step within each candidate set; ``ranked`` orders the candidates by
    engine.pace.beat_scores with ``rank_weights`` (default: the engine's)."""
    out = []
    for i, rec in enumerate(songs.records):
        cand = songs.candidates[i]
        metrical = metrical_candidate_set(rec["paces"])
        prob = probabilities[i].copy()
        if consistent:  # as engine.pace.classify_paces does, within each candidate set
            prob[: cand.size, 0] = engine_pace.make_consistent(cand, prob[: cand.size, 0])
            prob[cand.size:, 0] = engine_pace.make_consistent(metrical, prob[cand.size:, 0])
        # The engine's final ranking (engine.pace.classify_paces → beat_scores; models.pace.ranking chose it).
        scores = engine_pace.beat_scores(cand, songs.saliences[i], prob[: cand.size, 1], prob[: cand.size, 0],
                                         weights=rank_weights)
        ranked = cand[np.argsort(-scores, kind="stable")]
        out.append({"song_id": rec["song_id"], "paces": rec["paces"], "beat_bpm": rec["beat_bpm"], "ranked": ranked,
                    "candidates": cand, "candidate_salience": songs.saliences[i],
                    "candidate_prob": prob[: cand.size, 0], "candidate_beat_prob": prob[: cand.size, 1],
                    "metrical": metrical, "metrical_prob": prob[cand.size:, 0]})
    return out


def predict(model_fn, songs: Songs, inputs, n_clips: int = engine_pace.N_CLIPS, consistent: bool = True,
            rank_weights: dict | None = None) -> list[dict]:
    """Per-song probabilities on the tempogram candidates and the metrical set, and the engine's
    ranking (:func:`song_probabilities` then :func:`score_songs`)."""
    return score_songs(songs, song_probabilities(model_fn, songs, inputs, n_clips), consistent, rank_weights)


def train(config=CONFIG, records=None, log=print):
    """Train one model; returns (model, history, validation songs)."""
    import torch

    torch.manual_seed(config["seed"])
    torch.set_num_threads(config["threads"])
    rng = np.random.default_rng(config["seed"])
    records = records if records is not None else [r for r in pace_data.load_index()["records"] if r["split"] == "train"]
    is_val = [pace_data.is_validation(r["song_id"], config["val_fraction"]) for r in records]
    train_songs = Songs([r for r, v in zip(records, is_val) if not v])
    val_songs = Songs([r for r, v in zip(records, is_val) if v])
    log(f"train songs {len(train_songs)}, validation songs {len(val_songs)}")
    model = build_model(config)
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    songs_per_batch = max(1, config["batch_size"] // 14)
    steps_per_epoch = int(np.ceil(len(train_songs) / songs_per_batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config["lr"], total_steps=config["epochs"] * steps_per_epoch)
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")
    history, best = [], (-1.0, None)

    def torch_fn(clips, periodicity):
        with torch.no_grad():
            return model(torch.from_numpy(clips), torch.from_numpy(periodicity)).numpy()

    for epoch in range(config["epochs"]):
        model.train()
        t0, losses = time.time(), []
        order = rng.permutation(len(train_songs))
        for b in range(steps_per_epoch):
            x, p, y = make_batch(train_songs, list(order[b * songs_per_batch:(b + 1) * songs_per_batch]), rng,
                                 config["inputs"], config["local_profile_fraction"])
            logits = model(torch.from_numpy(x), torch.from_numpy(p))
            target = torch.from_numpy(y)
            loss_each = bce(logits, target)
            loss = loss_each[:, 0].mean() + config["beat_loss_weight"] * loss_each[:, 1].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        model.eval()
        val = summarize(predict(torch_fn, val_songs, config["inputs"]))
        score = 0.5 * (val["accuracy_candidates"] + val["accuracy_metrical"])
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": time.time() - t0, **val})
        log(f"epoch {epoch + 1:2d} loss {np.mean(losses):.4f} val acc cand {val['accuracy_candidates']:.3f} "
            f"metrical {val['accuracy_metrical']:.3f} ({time.time() - t0:.0f} s)")
        if score >= best[0]:
            best = (score, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    model.eval()
    return model, history, val_songs


def build_model(config=CONFIG):
    from models.pace.net import PaceNet

    return PaceNet(in_channels=engine_pace.PACE_CHANNELS, widths=tuple(config["widths"]), dropout=config["dropout"],
                   head_dropout=config["head_dropout"],
                   periodicity_size=engine_pace.PERIODICITY_CHANNELS * len(engine_pace.PERIODICITY_RATIOS),
                   periodicity_width=config["periodicity_width"])


def export(model, path: Path, fixture_clips: np.ndarray, fixture_periodicity: np.ndarray) -> None:
    """Write the ONNX model (+ metadata), the weights npz and the fixture npz next to it."""
    import torch

    from models.onnx_metadata import set_metadata
    from models.pace.net import state_to_arrays

    dummy = (torch.zeros(2, engine_pace.PACE_CHANNELS, engine_pace.N_BEATS, engine_pace.STEPS_PER_BEAT),
             torch.zeros(2, engine_pace.PERIODICITY_CHANNELS, len(engine_pace.PERIODICITY_RATIOS)))
    torch.onnx.export(model, dummy, str(path), input_names=["clips", "periodicity"], output_names=["logits"],
                      dynamic_axes={"clips": {0: "n"}, "periodicity": {0: "n"}, "logits": {0: "n"}},
                      opset_version=17, dynamo=False)
    set_metadata(path, {"feature_version": engine_pace.FEATURE_VERSION, "n_beats": engine_pace.N_BEATS,
                        "steps_per_beat": engine_pace.STEPS_PER_BEAT,
                        "outputs": "logit(compatible), logit(is the notated beat)"},
                 "Earworm Studio pace-compatibility CNN; see models/MODEL_CARD_pace.md")
    np.savez_compressed(path.with_suffix(".weights.npz"), **state_to_arrays(model))
    with torch.no_grad():
        expected = model(torch.from_numpy(fixture_clips), torch.from_numpy(fixture_periodicity)).numpy()
    np.savez_compressed(path.with_suffix(".fixture.npz"), clips=fixture_clips, periodicity=fixture_periodicity,
                        logits=expected, widths=np.array(CONFIG["widths"]),
                        periodicity_width=np.array(CONFIG["periodicity_width"]),
                        n_members=np.array(len(getattr(model, "members", [model]))))


def onnx_fn(path: Path):
    """(clips, periodicity) → logits through engine.models (onnxruntime)."""
    from engine import models

    models.clear_cache()
    return lambda clips, periodicity: models.run("pace", {"clips": clips, "periodicity": periodicity}, path=path)[0]


def main(config=CONFIG, out_path: Path = MODELS_DIR / "pace.onnx") -> dict:
    t_start = time.time()
    index_path = pace_data.DATA_DIR / "index.json"
    if not index_path.exists():
        print("building the data set (models.pace.data) …")
        pace_data.build(workers=int(os.environ.get("EARWORM_WORKERS", "2")))
    index = pace_data.load_index()
    records = index["records"]
    train_records = [r for r in records if r["split"] == "train"]
    trained = [train_member(config, seed, train_records) for seed in config["seeds"]]
    from models.pace.net import PaceEnsemble

    model = trained[0][0] if len(trained) == 1 else PaceEnsemble([m for m, _ in trained]).eval()
    members = [{"seed": seed, **info} for seed, (_, info) in zip(config["seeds"], trained)]
    test_records = [r for r in records if r["split"] == "test"]
    # Fixed inputs for the equivalence test: clips of the first test song at its implied paces.
    songs = Songs(test_records[:1])
    bpm = np.concatenate([paces_in_range(test_records[0]["paces"])[:3], [test_records[0]["beat_bpm"] * 1.5]])
    fixture = engine_pace.beat_clips(songs.frames[0], FRAME_RATE, bpm, np.full(bpm.size, 5.0))
    fixture_periodicity = engine_pace.periodicity_features(songs.profiles[0], FRAME_RATE, bpm)
    export(model, out_path, fixture, fixture_periodicity)
    from models.pace import ranking

    # The rankings compared on this model's validation songs (models/pace/ranking.json), and its
    # classification there (the score that picks each member's epoch: the mean of the two accuracies).
    validation = ranking.main()["validation_classification"]
    info = {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}, "members": members,
            "validation": validation,
            "train_seconds": sum(m["train_seconds"] for m in members),
            "train_cpu_seconds": sum(m["train_cpu_seconds"] for m in members),
            "assemble_seconds": time.time() - t_start}
    return evaluate(info, out_path)


def member_recipe(config, records) -> str:
    """What makes a member besides its seed: the config (without the seeds and the thread count)
    and the training songs."""
    recipe = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()
              if k not in ("seed", "seeds", "threads")}
    recipe["songs"] = zlib.crc32(" ".join(sorted(r["song_id"] for r in records)).encode())
    return json.dumps(recipe, sort_keys=True)


def train_member(config, seed: int, records, log=print):
    """One member (the recipe with ``seed``): (eval-mode model, {history, seconds}), trained or read
    from ``MEMBERS_DIR`` when a member of the same recipe and seed is kept there."""
    from models.pace.net import load_arrays, state_to_arrays

    path = MEMBERS_DIR / f"seed{seed}.npz"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("recipe") == member_recipe(config, records):
            log(f"member seed {seed}: kept in {path}")
            with np.load(path) as arrays:
                model = load_arrays(build_model(config), arrays).eval()
            return model, {k: v for k, v in meta.items() if k != "recipe"}
    t0, cpu0 = time.time(), time.process_time()
    model, history, _ = train(dict(config, seed=seed), records, log=log)
    meta = {"history": history, "train_seconds": time.time() - t0, "train_cpu_seconds": time.process_time() - cpu0,
            "threads": config["threads"]}
    MEMBERS_DIR.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **state_to_arrays(model))
    meta_path.write_text(json.dumps({"recipe": member_recipe(config, records), **meta}, indent=1))
    return model, meta


def data_summary(index: dict) -> dict:
    """What the card says about the data set: sizes, songs per source, what building it took."""
    records = index["records"]
    n_test = sum(r["split"] == "test" for r in records)
    by_source = dict(Counter(r["source"] for r in records))
    return {"n_songs": len(records), "n_train": len(records) - n_test, "n_test": n_test, "by_source": by_source,
            "build_seconds": index.get("seconds"), "n_reused": index.get("n_reused", 0), "counts": index.get("counts")}


def evaluate(info: dict, out_path: Path = MODELS_DIR / "pace.onnx") -> dict:
    """Held-out evaluation of the exported model into ``info``; writes metrics.json and the card."""
    index = pace_data.load_index()
    info["data"] = data_summary(index)
    test_records = [r for r in index["records"] if r["split"] == "test"]
    from models.pace import ranking

    # The ranking models.pace.ranking chose for this model (engine.pace.RANK_WEIGHTS must follow it:
    # tests/test_tempo.py checks), so a retrained model is scored as it will ship.
    ranking_doc = ranking.load()
    chosen = ranking_doc.get("chosen_engine_form")
    if chosen is not None and any(abs(engine_pace.RANK_WEIGHTS[k] - v) > 1e-3 for k, v in chosen.items()):
        print("note: engine.pace.RANK_WEIGHTS differ from models/pace/ranking.json's chosen ranking; "
              "the metrics use the chosen one — copy it into engine/pace.py")
    # Read and run once; scored with and without the consistency step.
    test_songs = Songs(test_records)
    probabilities = song_probabilities(onnx_fn(out_path), test_songs, info["config"]["inputs"])
    results = score_songs(test_songs, probabilities, rank_weights=chosen)
    metrics = summarize(results)
    by_source = {}
    for src in sorted({r["source"] for r in test_records}):
        by_source[src] = summarize([res for res, r in zip(results, test_records) if r["source"] == src])
    plain = summarize(score_songs(test_songs, probabilities, consistent=False, rank_weights=chosen))

    train_records = [r for r in index["records"] if r["split"] == "train"]
    metrics["label_ceiling_accuracy1"] = ranking.label_ceiling(test_records, train_records)
    info.update({"test": metrics, "test_by_source": by_source, "test_without_consistency": plain,
                 "test_rankings": ranking.held_out_accuracies(results, ranking_doc),
                 "test_tempo_misses": ranking.miss_breakdown(results, test_records), "onnx_bytes": out_path.stat().st_size})
    (MODELS_DIR / "pace" / "metrics.json").write_text(json.dumps(info, indent=1))
    from models.pace.card import write_card

    write_card(info, ranking_doc)
    print(json.dumps(metrics, indent=1))
    return info


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--evaluate-only", action="store_true", help="re-evaluate the exported model (no training)")
    ap.add_argument("--member", type=int, metavar="SEED", help="train one member into data/pace/members/ and stop")
    ap.add_argument("--threads", type=int, help=f"torch threads (default {CONFIG['threads']})")
    ap.add_argument("--seeds", help="comma-separated seeds of the members to average (default: "
                    + ",".join(map(str, CONFIG["seeds"])) + ")")
    args = ap.parse_args()
    config = dict(CONFIG)
    if args.threads is not None:
        config["threads"] = args.threads
    if args.seeds:
        config["seeds"] = tuple(int(v) for v in args.seeds.split(","))
    if args.evaluate_only:
        evaluate(json.loads((MODELS_DIR / "pace" / "metrics.json").read_text()))
    elif args.member is not None:
        records = [r for r in pace_data.load_index()["records"] if r["split"] == "train"]
        train_member(config, args.member, records)
    else:
        main(config)
