"""Library matching with the embedding stage in front: recall at each K, the cascade with/without, speed.

Needs the matching set (``python -m tests.benchmarks.make_match_set``) and the embedding models
in ``models/`` (or ``$EARWORM_MODELS_DIR``). Issue 8: "Library matching uses whole-file embedding
summaries as its first pruning stage"; must show the cascade's recall at each K with the
embedding stage in front, and its speed.

``python -m tests.benchmarks.bench_embed_match recall``
    Features of every file of ``data/bench/match/bench`` (cached in a run directory per model
    pair), then the rank of each gold pair's recording in its MIDI's row under each first-stage
    score: the chroma prune alone (the cascade's existing first stage), the embedding scores
    alone (``summary``: cosine of mean snippet vectors; ``set``: best-snippet similarities,
    averaged both ways; raw and z-scored by row and column), their sums with the chroma z; and
    the recall after the embedding stage at K followed by the chroma prune's ``k_prune``. Also
    the stage's pairs per second on this set. ``out/embed_match/recall.json``.
``python -m tests.benchmarks.bench_embed_match cascade [--k 10 20] [--score summary set]``
    ``run_match`` on the set with an empty cache, without and with the embedding stage at each
    K: precision, recall, F1, ROC AUC, rank-1, stage recall, wall time. ``cascade.json``.
``python -m tests.benchmarks.bench_embed_match speed``
    Seconds per file to embed (cold cache, this process; ONNX threads as configured), and the
    summary stage's pairs per second on synthetic 32-d vectors at 1 000² and 10 000². ``speed.json``.
``python -m tests.benchmarks.bench_embed_match doc``
    Writes the section of docs/BENCHMARKS.md from those JSON files.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from engine import embed
from engine import match_embedding as me
from engine import match_stages as stages
from engine.cache import file_hash
from engine.distributed import local_cores, make_runner
from engine.evaluate import gold_ranks, read_gold
from engine.match import MatchParams, RunDir, features_task
from tests.benchmarks.make_match_set import DEFAULT_OUT as SET_DIR
from tests.benchmarks.doc_sections import replace_section, run_dates

OUT_DIR = Path(__file__).resolve().parent / "out" / "embed_match"
KS = (1, 2, 5, 10, 20, 50)
DOC = Path(__file__).resolve().parents[2] / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- embed-matching:begin -->", "<!-- embed-matching:end -->"


def _load(name):
    return json.loads((OUT_DIR / name).read_text())


def _save(name, data):
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / name).write_text(json.dumps(data, indent=1, default=float) + "\n")
    print("wrote", OUT_DIR / name)


def _uptime() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_features(set_dir: Path) -> tuple[list, list, dict, dict]:
    """Names, per-file features (chroma + embedding) of the set; cached in a run directory per model pair."""
    params = MatchParams(embedding_k=1)
    models = embed.model_identity()
    store = RunDir(SET_DIR / "runs" / ("embed-features-" + hashlib.sha1(models.encode()).hexdigest()[:10]),
                   {"bench": "embed_match", "params": params.identity(), "models": models})
    names = {kind: sorted(p.name for p in (set_dir / kind).iterdir() if p.is_file()) for kind in ("midi", "audio")}
    feats, todo = {}, []
    for kind in ("midi", "audio"):
        for name in names[kind]:
            path = str(set_dir / kind / name)
            got = store.features(file_hash(path))
            if got is not None:
                feats[path] = got
            else:
                todo.append((kind, path, asdict(params)))
    if todo:
        print(f"computing features of {len(todo)} files on {local_cores()} cores…")
        with make_runner() as runner:
            for index, out in runner.run(features_task, todo):
                path = todo[index][1]
                if "error" in out:
                    print("bad:", path, out["error"])
                    continue
                feats[path] = out
                store.save_features(file_hash(path), out)
    midi = [n for n in names["midi"] if str(set_dir / "midi" / n) in feats]
    audio = [n for n in names["audio"] if str(set_dir / "audio" / n) in feats]
    return midi, audio, [feats[str(set_dir / "midi" / n)] for n in midi], [feats[str(set_dir / "audio" / n)] for n in audio]


def _recall_row(ranks) -> dict:
    ranks = np.asarray(ranks)
    return {**{f"R@{k}": float(np.mean(ranks <= k)) for k in KS}, "mrr": float(np.mean(1.0 / ranks)),
            "median_rank": float(np.median(ranks)), "worst_rank": int(ranks.max())}


def recall(args) -> int:
    set_dir = SET_DIR / "bench"
    params = MatchParams()
    midi, audio, fm, fa = bench_features(set_dir)
    gold = read_gold(set_dir / "gold.csv", midi, audio)
    n_pairs = len(midi) * len(audio)
    load = _uptime()
    U = np.ascontiguousarray(np.stack([f["summary"] for f in fm], axis=1), np.float32)
    V = np.stack([f["summary"] for f in fa]).astype(np.float32)
    Z1 = np.empty((len(fm), len(fa)), np.float32)
    stages.prune(U, V, params.k_prune, z_out=Z1)
    t = time.perf_counter()
    S_sum = me.summary_scores(np.stack([f["emb_summary"] for f in fm]), np.stack([f["emb_summary"] for f in fa]))
    summary_s = time.perf_counter() - t
    t = time.perf_counter()
    S_set = me.set_scores([f["emb_vectors"] for f in fm], [f["emb_vectors"] for f in fa])
    set_s = time.perf_counter() - t
    Z_sum, Z_set = me.zscored(S_sum), me.zscored(S_set)
    # Every 3rd snippet (hop 1.1 s instead of 0.37 s: a third of the embedding cost per file).
    from engine.embed import file_summary

    thin_m, thin_a = [f["emb_vectors"][::3] for f in fm], [f["emb_vectors"][::3] for f in fa]
    Z_sum3 = me.zscored(me.summary_scores(np.stack([file_summary(v) for v in thin_m]),
                                          np.stack([file_summary(v) for v in thin_a])))
    t = time.perf_counter()
    Z_set3 = me.zscored(me.set_scores(thin_m, thin_a))
    set3_s = time.perf_counter() - t
    scores = {"chroma prune (existing)": Z1, "embedding summary, raw cosine": S_sum, "embedding summary, z-scored": Z_sum,
              "embedding set, raw": S_set, "embedding set, z-scored": Z_set,
              "embedding summary, z-scored, every 3rd snippet": Z_sum3,
              "embedding set, z-scored, every 3rd snippet": Z_set3,
              "chroma z + summary z": Z1 + Z_sum, "chroma z + set z": Z1 + Z_set}
    table = {name: _recall_row(gold_ranks(Z, gold)) for name, Z in scores.items()}
    # The cascade's front as run_match runs it: embedding top K, then the chroma prune's k_prune among them.
    rows, cols = np.nonzero(gold)
    front = {}
    for score, Z in (("summary", Z_sum), ("set", Z_set)):
        for k in KS:
            top = me.restrict_top(Z1, me.top_k(Z, k), params.k_prune)
            front[f"{score} K={k}"] = float(np.mean([c in top[r] for r, c in zip(rows, cols)]))
    chroma_front = float(np.mean([c in me.top_k(Z1, params.k_prune)[r] for r, c in zip(rows, cols)]))
    worst = []
    r_chroma, r_sum, r_set = gold_ranks(Z1, gold), gold_ranks(Z_sum, gold), gold_ranks(Z_set, gold)
    for t in np.argsort(-np.maximum(r_sum, r_set), kind="stable")[:6]:
        recipe = SET_DIR / "pairs" / midi[rows[t]].replace(".mid", ".json")
        corruption = json.loads(recipe.read_text()).get("corruption", {}) if recipe.exists() else {}
        worst.append({"midi": midi[rows[t]], "audio": audio[cols[t]], "chroma_rank": int(r_chroma[t]),
                      "summary_rank": int(r_sum[t]), "set_rank": int(r_set[t]),
                      "voices": corruption.get("n_instruments"),
                      "dropped_voices": len(corruption.get("dropped_instruments", []))})
    snippets = {"midi_mean": float(np.mean([len(f["emb_vectors"]) for f in fm])),
                "audio_mean": float(np.mean([len(f["emb_vectors"]) for f in fa]))}
    report = {"n_midi": len(midi), "n_audio": len(audio), "n_gold": int(gold.sum()), "models": embed.model_identity(),
              "table": table, "front_recall": front, "worst_pairs": worst, "chroma_front_recall_k_prune": chroma_front,
              "k_prune": params.k_prune, "snippets_per_file": snippets, "load_average": load, "cores": local_cores(),
              "stage_speed": {"summary_s": summary_s, "summary_pairs_per_s": n_pairs / max(summary_s, 1e-9),
                              "set_s": set_s, "set_pairs_per_s": n_pairs / max(set_s, 1e-9),
                              "set_every3_s": set3_s, "set_every3_pairs_per_s": n_pairs / max(set3_s, 1e-9)}}
    print(f"{len(midi)} MIDIs × {len(audio)} recordings, {int(gold.sum())} gold pairs; load {load}")
    print(f"{'first-stage score':48s}" + "".join(f"{'R@' + str(k):>7s}" for k in KS) + "    MRR  median  worst")
    for name, row in table.items():
        print(f"{name:48s}" + "".join(f"{row['R@' + str(k)]:7.3f}" for k in KS) +
              f"  {row['mrr']:.3f}  {row['median_rank']:6.1f}  {row['worst_rank']:5d}")
    print(f"after the embedding stage at K and the chroma prune's {params.k_prune}: "
          + ", ".join(f"{k} {v:.3f}" for k, v in front.items()) + f" (chroma prune alone: {chroma_front:.3f})")
    print(f"stage speed: summary {n_pairs / summary_s:.3g} pairs/s, set {n_pairs / set_s:.3g} pairs/s "
          f"({snippets['audio_mean']:.0f} / {snippets['midi_mean']:.0f} snippets per recording / MIDI)")
    _save("recall.json", report)
    return 0


def cascade(args) -> int:
    from engine.evaluate import evaluate_match
    from engine.match import run_match

    set_dir = SET_DIR / "bench"
    runs = {}
    for score, k in [("summary", 0)] + [(score, k) for score in args.score for k in args.k]:
        params = MatchParams(embedding_k=k, embedding_score=score)
        name = "without" if k == 0 else f"{score} K={k}"
        with tempfile.TemporaryDirectory(prefix="earworm-bench-embmatch-") as cold:
            os.environ["EARWORM_CACHE_DIR"] = cold  # every feature computed in this run
            load_before = _uptime()
            t0 = time.perf_counter()
            result = run_match(set_dir / "midi", set_dir / "audio", params, run_dir=Path(cold) / "run",
                               log=lambda line: print("bad:", line))
            wall_s = time.perf_counter() - t0
        evaluation, _ = evaluate_match(result, set_dir / "gold.csv", OUT_DIR / "figures",
                                       prefix=f"{name.replace(' ', '_').replace('=', '')}_")
        gold = read_gold(set_dir / "gold.csv", result.midi_names, result.audio_names)
        runs[name] = {k2: v for k2, v in evaluation.to_dict().items() if k2 not in ("n_midi", "n_audio")}
        runs[name].update(stage_recall=result.stage_recall(gold), counts=result.counts, wall_s=wall_s,
                          timings_s={k2: round(v, 2) for k2, v in result.timings.items()},
                          load_average=f"{load_before} → {_uptime()}", params=asdict(params))
        r = runs[name]
        print(f"{name}: P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f} AUC {r['roc_auc']:.4f} "
              f"rank-1 {r['rank1']:.3f}; stage recall {r['stage_recall']}; wall {wall_s:.1f} s "
              f"{r['timings_s']}; load {r['load_average']}")
    _save("cascade.json", {"runs": runs, "cores": local_cores(), "models": embed.model_identity()})
    return 0


def speed(args) -> int:
    set_dir = SET_DIR / "bench"
    report = {"cores": local_cores(), "onnx_threads": os.environ.get("EARWORM_ONNX_THREADS", "default (≤ 2)"),
              "load_average_before": _uptime()}
    files = {kind: sorted((set_dir / kind).iterdir())[:args.files] for kind in ("midi", "audio")}
    with tempfile.TemporaryDirectory(prefix="earworm-bench-embspeed-") as cold:
        os.environ["EARWORM_CACHE_DIR"] = cold
        me.embedding_features("midi", str(files["midi"][0]))  # load the models outside the timing
        me.embedding_features("audio", str(files["audio"][0]))
        for kind in ("midi", "audio"):
            t = time.perf_counter()
            out = [me.embedding_features(kind, str(p)) for p in files[kind][1:]]
            report[f"{kind}_s_per_file"] = (time.perf_counter() - t) / (len(files[kind]) - 1)
            report[f"{kind}_snippets_per_file"] = float(np.mean([len(o["emb_vectors"]) for o in out if "error" not in o]))
            print(f"embedding {kind}: {report[f'{kind}_s_per_file']:.3f} s per file "
                  f"({report[f'{kind}_snippets_per_file']:.0f} snippets), cold cache, 1 process")
    rng = np.random.default_rng(0)
    for size in (1000, 10000):
        U, V = (rng.standard_normal((size, 32)).astype(np.float32) for _ in range(2))
        U /= np.linalg.norm(U, axis=1, keepdims=True)
        V /= np.linalg.norm(V, axis=1, keepdims=True)
        stages.prune(U[:10], V[:10], 5)  # compile / load
        t = time.perf_counter()
        stages.prune(U, V, 50)
        seconds = time.perf_counter() - t
        report[f"summary_stage_{size}"] = {"seconds": seconds, "pairs_per_s": size * size / seconds}
        print(f"summary stage {size} × {size} (z-scored, top 50): {seconds:.3f} s, {size * size / seconds / 1e6:.1f} M pairs/s")
    report["load_average_after"] = _uptime()
    _save("speed.json", report)
    return 0


def doc(args) -> int:
    rec, cas, spd = _load("recall.json"), _load("cascade.json"), _load("speed.json")
    lines = [BEGIN, "## Library matching with the embedding stage in front (issue 8)", "",
             f"Commands: `python -m tests.benchmarks.bench_embed_match recall`, `… cascade --k …`, `… speed`, `… doc` "
             f"— {run_dates(OUT_DIR / n for n in ('recall.json', 'cascade.json', 'speed.json'))}, {rec['cores']} CPU cores shared with other jobs (load average noted "
             f"per measurement). Set `data/bench/match/bench` ({rec['n_midi']} MIDIs × {rec['n_audio']} recordings, "
             f"{rec['n_gold']} gold pairs; its MIDIs are the held-out test pieces of the embedding models' training). Models: "
             f"`{rec['models'][:12]}…` (content hashes of embed_audio.onnx : embed_midi.onnx).", "",
             "### Recall of the gold pair at K, first stage alone", "",
             f"Load average {rec['load_average']}.", "",
             "| first-stage score | " + " | ".join(f"R@{k}" for k in KS) + " | MRR | median rank | worst rank |",
             "|---|" + "---:|" * (len(KS) + 3)]
    for name, row in rec["table"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[f'R@{k}']:.3f}" for k in KS) +
                     f" | {row['mrr']:.3f} | {row['median_rank']:.0f} | {row['worst_rank']} |")
    lines += ["", f"Recall after the embedding stage at K and then the chroma prune's top {rec['k_prune']} among those "
                  f"(what reaches the coarse DTW); the chroma prune alone keeps {rec['chroma_front_recall_k_prune']:.3f}:", "",
              "| score | " + " | ".join(f"K={k}" for k in KS) + " |", "|---|" + "---:|" * len(KS)]
    for score in ("summary", "set"):
        lines.append(f"| {score} | " + " | ".join(f"{rec['front_recall'][f'{score} K={k}']:.3f}" for k in KS) + " |")
    lines += ["", "The gold pairs the embedding ranks worst (rank among the MIDI's recordings; voices: the MIDI's "
                  "instruments, dropped: how many of them the recording leaves out, a corruption of the set):", "",
              "| MIDI | chroma rank | summary rank | set rank | voices | dropped |", "|---|---:|---:|---:|---:|---:|"]
    for w in rec["worst_pairs"]:
        lines.append(f"| {w['midi']} | {w['chroma_rank']} | {w['summary_rank']} | {w['set_rank']} | {w['voices']} | "
                     f"{w['dropped_voices']} |")
    lines += ["", "### The whole cascade, without and with the embedding stage", "",
              "Cold feature cache, all local cores, `run_match` end to end (features included).", "",
              "| run | precision | recall | F1 | ROC AUC | rank-1 | stage recall | coarse pairs | wall | features | load average |",
              "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for name, r in cas["runs"].items():
        sr = ", ".join(f"{k} {v:.3f}" for k, v in r["stage_recall"].items())
        lines.append(f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['roc_auc']:.4f} | "
                     f"{r['rank1']:.3f} | {sr} | {r['counts']['coarse_pairs']} | {r['wall_s']:.0f} s | "
                     f"{r['timings_s']['features_s']:.0f} s | {r['load_average']} |")
    base = cas["runs"]["without"]
    with_stage = {k: v for k, v in cas["runs"].items() if k != "without"}
    best = max(with_stage, key=lambda k: (with_stage[k]["f1"], -with_stage[k]["wall_s"]))
    b = with_stage[best]
    verdict = "helps" if b["f1"] > base["f1"] + 1e-9 else "hurts" if b["f1"] < base["f1"] - 1e-9 else "changes nothing"
    lines += ["", f"Verdict on this set: the embedding stage in front **{verdict}**. Its best run ({best}) reaches "
                  f"F1 {b['f1']:.3f} / ROC AUC {b['roc_auc']:.4f} against {base['f1']:.3f} / {base['roc_auc']:.4f} "
                  f"without it, in {b['wall_s']:.0f} s against {base['wall_s']:.0f} s (embedding every file costs "
                  f"more than the chroma features, and the stage saves only coarse-DTW pairs, a small share of the "
                  f"time). As a hard filter it drops gold pairs that the chroma prune keeps (R@50 of the stage "
                  f"alone: summary {rec['table']['embedding summary, z-scored']['R@50']:.3f}, set "
                  f"{rec['table']['embedding set, z-scored']['R@50']:.3f}; chroma prune R@20 "
                  f"{rec['table']['chroma prune (existing)']['R@20']:.3f}): mostly recordings that leave out "
                  f"voices of the MIDI (the set's instrument-dropping corruption), where a snippet of one sounding "
                  f"voice looks little like the four-voice piano roll while the chroma summary still matches. "
                  f"At small K the set score ranks best (R@1 {rec['table']['embedding set, z-scored']['R@1']:.3f} "
                  f"against the chroma prune's {rec['table']['chroma prune (existing)']['R@1']:.3f}), and summed "
                  f"with the chroma z it gives the best R@1–R@10 of all, but not the chroma prune's full recall at 20. "
                  f"The stage stays off by default (`embedding_k = 0`)."]
    ss = rec["stage_speed"]
    lines += ["", "### Speed", "", f"Load average {spd['load_average_before']} → {spd['load_average_after']}.", "",
              "| what | figure |", "|---|---:|",
              f"| embed a recording (cold, 1 process, {spd['audio_snippets_per_file']:.0f} snippets) | "
              f"{spd['audio_s_per_file']:.3f} s |",
              f"| embed a MIDI (cold, 1 process, {spd['midi_snippets_per_file']:.0f} snippets) | {spd['midi_s_per_file']:.3f} s |",
              f"| summary score on this set ({rec['n_midi']} × {rec['n_audio']}, raw cosine) | "
              f"{ss['summary_pairs_per_s'] / 1e6:.1f} M pairs/s |",
              f"| summary stage, z-scored + top 50, 1 000 × 1 000 | "
              f"{spd['summary_stage_1000']['pairs_per_s'] / 1e6:.1f} M pairs/s |",
              f"| summary stage, z-scored + top 50, 10 000 × 10 000 | "
              f"{spd['summary_stage_10000']['pairs_per_s'] / 1e6:.1f} M pairs/s |",
              f"| set score on this set (all snippets, both ways) | {ss['set_pairs_per_s']:.0f} pairs/s |",
              f"| set score on this set (every 3rd snippet) | {ss['set_every3_pairs_per_s']:.0f} pairs/s |", "",
              END]
    replace_section("\n".join(lines), BEGIN, END, DOC)
    print(f"wrote the embedding-matching section of {DOC}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("recall", help="recall at K of each first-stage score on the benchmark set")
    c = sub.add_parser("cascade", help="the whole cascade without and with the embedding stage")
    c.add_argument("--k", type=int, nargs="+", default=[20])
    c.add_argument("--score", choices=me.SCORES, nargs="+", default=["summary"])
    s = sub.add_parser("speed", help="seconds per file to embed; the summary stage's pairs/s")
    s.add_argument("--files", type=int, default=21)
    sub.add_parser("doc", help="write the section of docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    return {"recall": recall, "cascade": cascade, "speed": speed, "doc": doc}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
