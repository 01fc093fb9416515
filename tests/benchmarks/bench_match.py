"""Library-matching benchmark: accuracy on the offline benchmark set, and throughput per stage.

Make the set first (once, incremental; ~200 renderings): ``nice -n 5 python -m tests.benchmarks.make_match_set``.

``python -m tests.benchmarks.bench_match calibrate``
    Runs the match on ``data/bench/match/calib`` (works disjoint from the evaluated set), fits the
    per-stage logistic calibration on its labels and prints it (to paste into
    ``engine.match_stages.CALIBRATION``); writes ``out/match/calibration.json``.
``python -m tests.benchmarks.bench_match run``
    ``earworm match`` on ``data/bench/match/bench`` with an empty feature cache and all local cores:
    rank-1, open-set F1, ROC AUC (+ the rest of :mod:`engine.evaluate`), the recall each stage
    keeps, end-to-end time; report, figures and JSON in ``out/match/``.
``python -m tests.benchmarks.bench_match throughput [--n 1000]``
    Pairs per second of each stage on this machine. Stages 1 and 2 run on *synthetic* feature
    matrices of n × n files (summary vectors: random unit vectors, 9 per MIDI; pooled chroma: the benchmark's
    real sequences, rolled by a random number of semitones and time-stretched so that no two are
    alike); stage 3 is timed on real benchmark pairs (warm feature cache) with all local cores;
    features per file are timed cold (empty cache; after one warm-up file for the imports and
    compiled kernels) on real benchmark files. Its end-to-end estimate for n × n is the sum of the
    measured stages at that size (features: measured seconds per file × 2n / cores), scaled
    linearly to 10 000 × 10 000 but for stage 1, measured at that size; ``large`` measures the
    real run.

``python -m tests.benchmarks.bench_match large [--keep-cache]``
    The real end-to-end run: ``earworm match … --gold`` on the 1 000 × 1 000 set
    (``data/bench/match/large``, ``make_match_set --large``) from an empty cache, timed (wall and
    CPU, per stage), with its peak memory, load average, accuracy and the projection to
    10 000 × 10 000 from its stage times (:mod:`tests.benchmarks.bench_match_large`).
``python -m tests.benchmarks.bench_match doc``
    Writes the matching section of docs/BENCHMARKS.md from the JSON of ``run``, ``throughput`` and
    (when made) ``large``: the measured run replaces the sum of the stages.

Targets (issue 6): rank-1 ≥ 0.95, open-set F1 ≥ 0.95, ROC AUC ≥ 0.99, pruning ≥ 10 M pairs/s,
1 000 × 1 000 end-to-end < 10 min.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from engine import match_stages as stages
from engine.distributed import local_cores, make_runner, run_all
from engine.match import MatchParams, confirm_task, features_task, run_match
from tests.benchmarks.make_match_set import DEFAULT_OUT as SET_DIR
from tests.benchmarks.doc_sections import replace_section, run_dates

OUT_DIR = Path(__file__).resolve().parent / "out" / "match"
TARGETS = {"rank1": 0.95, "f1": 0.95, "roc_auc": 0.99, "prune_pairs_per_s": 10e6, "end_to_end_1000_s": 600.0}


def _labels(result, gold):
    """Gold label of each pair in each stage's evidence."""
    return {stage: gold[ev["midi"], ev["audio"]] for stage, ev in result.evidence.items()}


def calibrate(args) -> int:
    from engine.evaluate import read_gold

    set_dir = SET_DIR / "calib"
    run_dir = SET_DIR / "runs" / ("calib-" + MatchParams().tag().rsplit("/", 1)[-1])
    result = run_match(set_dir / "midi", set_dir / "audio", run_dir=run_dir, log=lambda line: print("bad:", line))
    gold = read_gold(set_dir / "gold.csv", result.midi_names, result.audio_names)
    labels = _labels(result, gold)
    feats = {stage: {k: v for k, v in ev.items() if k not in ("midi", "audio")} for stage, ev in result.evidence.items()}
    calibration, chosen = {}, {}
    for stage in feats:  # each stage's regularisation chosen by cross-validated log-loss on this set
        chosen[stage] = _choose_regularisation(result.evidence[stage], labels[stage])
        calibration.update(stages.fit_calibration({stage: feats[stage]}, {stage: labels[stage]}, C=chosen[stage]))
    _cross_validate(result.evidence["confirm"], labels["confirm"], gold, C=chosen["confirm"])
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "calibration.json").write_text(json.dumps(calibration, indent=1) + "\n")
    for stage, lab in labels.items():
        print(f"{stage}: {len(lab)} pairs, {int(np.sum(lab))} matches")
    print("CALIBRATION = " + json.dumps(calibration, indent=1))
    again = run_match(set_dir / "midi", set_dir / "audio", run_dir=run_dir, calibration=calibration)
    from engine.evaluate import evaluate

    print("on the calibration set itself (optimistic):\n" + evaluate(again.scores, again.predicted, gold).report())
    return 0


def _folds_by_midi(midi: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """A fold number per pair, every pair of one MIDI in the same fold."""
    midis = np.unique(midi)
    fold_of = {m: k % n_folds for k, m in enumerate(np.random.default_rng(seed).permutation(midis))}
    return np.array([fold_of[m] for m in midi])


def _held_out_probabilities(evidence, labels, folds: np.ndarray, C: float) -> np.ndarray:
    """P(match) of each pair from a calibration fitted on the other folds."""
    names = [k for k in evidence if k not in ("midi", "audio")]
    p = np.zeros(len(labels))
    for k in np.unique(folds):
        train = folds != k
        cal = stages.fit_calibration({"s": {n: evidence[n][train] for n in names}}, {"s": labels[train]}, C=C)
        p[~train] = stages.calibrated("s", {n: evidence[n][~train] for n in names}, cal)
    return p


def _choose_regularisation(evidence, labels, grid=(0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0), n_folds: int = 5,
                           repeats: int = 5) -> float:
    """The logistic model's ``C`` with the lowest log-loss on held-out MIDIs (folds by MIDI, repeated)."""
    labels = np.asarray(labels, bool)
    losses = {}
    for C in grid:
        total = 0.0
        for seed in range(repeats):
            p = _held_out_probabilities(evidence, labels, _folds_by_midi(evidence["midi"], n_folds, seed), C)
            p = np.clip(p, 1e-6, 1 - 1e-6)
            total += -np.mean(np.where(labels, np.log(p), np.log(1 - p)))
        losses[C] = total / repeats
    best = min(losses, key=losses.get)
    print("regularisation C → cross-validated log-loss: " + ", ".join(f"{C:g} {v:.4f}" for C, v in losses.items())
          + f"; chose {best:g}")
    return best


def _cross_validate(evidence, labels, gold, n_folds: int = 5, C: float = 1.0) -> None:
    """Open-set decisions of the confirm stage with the calibration fitted on the other folds (by MIDI)."""
    p = _held_out_probabilities(evidence, labels, _folds_by_midi(evidence["midi"], n_folds, seed=0), C)
    tp = fp = 0
    for m in np.unique(evidence["midi"]):
        rows = np.flatnonzero(evidence["midi"] == m)
        best = rows[np.argmax(p[rows])]
        if p[best] >= 0.5:
            tp, fp = tp + int(labels[best]), fp + int(not labels[best])
    n_gold = int(gold.any(axis=1).sum())
    precision, recall = tp / max(tp + fp, 1), tp / max(n_gold, 1)
    print(f"{n_folds}-fold cross-validated on the calibration set: precision {precision:.3f} recall {recall:.3f} "
          f"F1 {2 * precision * recall / max(precision + recall, 1e-9):.3f}")


def run(args) -> int:
    from engine.evaluate import evaluate_match

    set_dir = SET_DIR / "bench"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="earworm-bench-match-") as cold:
        os.environ["EARWORM_CACHE_DIR"] = cold  # every feature computed in this run
        t0 = time.perf_counter()
        result = run_match(set_dir / "midi", set_dir / "audio", run_dir=Path(cold) / "run",
                           log=lambda line: print("bad:", line))
        wall_s = time.perf_counter() - t0
    result.write_matches_csv(OUT_DIR / "matches.csv")
    result.write_matrix_csv(OUT_DIR / "matrix.csv")
    evaluation, written = evaluate_match(result, set_dir / "gold.csv", OUT_DIR, prefix="bench_")
    c, t = result.counts, result.timings
    stage_rates = {"prune_pairs_per_s": c["prune_pairs"] / max(t["prune_s"], 1e-9),
                   "coarse_pairs_per_s": c["coarse_pairs"] / max(t["coarse_s"], 1e-9),
                   "confirm_pairs_per_s": c["confirm_pairs_computed"] / max(t["confirm_s"], 1e-9),
                   "features_files_per_s": c["features_computed"] / max(t["features_s"], 1e-9)}
    summary = dict(evaluation.to_dict(), stage_recall=result.stage_recall(evaluation_gold(result, set_dir)),
                   counts=c, timings_s={k: round(v, 2) for k, v in t.items()}, wall_s=round(wall_s, 1),
                   stage_rates={k: round(v, 1) for k, v in stage_rates.items()}, cores=local_cores(),
                   params=asdict(result.params), bad_files=result.bad_files)
    (OUT_DIR / "bench_summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(evaluation.report())
    print("stage recall:", summary["stage_recall"])
    print("counts:", c)
    print("timings:", summary["timings_s"], f"wall {wall_s:.1f} s on {local_cores()} cores")
    print("rates:", summary["stage_rates"])
    for key in ("rank1", "f1", "roc_auc"):
        print(f"target {key} ≥ {TARGETS[key]}: {'PASS' if getattr(evaluation, key) >= TARGETS[key] else 'FAIL'} "
              f"({getattr(evaluation, key):.4f})")
    print("wrote", ", ".join(str(w) for w in written + [OUT_DIR / "bench_summary.json"]))
    return 0


def evaluation_gold(result, set_dir):
    from engine.evaluate import read_gold

    return read_gold(set_dir / "gold.csv", result.midi_names, result.audio_names)


# ---- throughput -------------------------------------------------------------------------------------

def _synthetic_pooled(real: list, n: int, rng) -> list:
    """``n`` pooled-chroma sequences made from real ones: rolled in pitch and time-stretched."""
    out = []
    for k in range(n):
        base = real[k % len(real)]
        stretch = rng.uniform(0.8, 1.25)
        idx = np.clip((np.arange(int(len(base) * stretch)) / stretch).astype(int), 0, len(base) - 1)
        out.append(np.ascontiguousarray(np.roll(base[idx], int(rng.integers(12)), axis=1)))
    return out


def _time(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def throughput(args) -> int:
    n = args.n
    params = MatchParams()
    rng = np.random.default_rng(0)
    cores = local_cores()
    set_dir = SET_DIR / "bench"
    midi_files = sorted((set_dir / "midi").glob("*.mid"))
    audio_files = sorted((set_dir / "audio").glob("*.mp3"))
    report = {"cores": cores, "n": n, "params": asdict(params)}

    # Features per file, cold, in this process (one core).
    with tempfile.TemporaryDirectory(prefix="earworm-bench-thr-") as cold:
        os.environ["EARWORM_CACHE_DIR"] = cold
        sample_a, sample_m = audio_files[:args.feature_files], midi_files[:args.feature_files]
        # Warm up first (imports, numba's compiled kernels) on files outside the sample: a worker
        # pays that once, not per file.
        features_task("audio", str(audio_files[-1]), asdict(params))
        features_task("midi", str(midi_files[-1]), asdict(params))
        t = time.perf_counter()
        audio_feats = [features_task("audio", str(p), asdict(params)) for p in sample_a]
        audio_s = (time.perf_counter() - t) / len(sample_a)
        t = time.perf_counter()
        [features_task("midi", str(p), asdict(params)) for p in sample_m]
        midi_s = (time.perf_counter() - t) / len(sample_m)
        audio_len_s = float(np.mean([f["duration_s"] for f in audio_feats if "error" not in f]))
        report["features"] = {"audio_s_per_file": audio_s, "midi_s_per_file": midi_s,
                              "mean_audio_duration_s": audio_len_s, "files_timed": len(sample_a)}
        print(f"features: {audio_s:.3f} s per recording ({audio_len_s:.0f} s long), {midi_s:.3f} s per MIDI (1 core)")

        # Stage 3: full alignment of real pairs, warm cache, all cores.
        pairs = [(str(set_dir / "midi" / m), [str(set_dir / "audio" / a)], asdict(params))
                 for m, a in _gold_pairs(set_dir)][:args.align_pairs]
        with make_runner(None, 1) as inline:
            run_all(inline, confirm_task, pairs[:2])  # warm: numba, caches
        run_all(make_runner(None, 1), features_task, [(kind, path, asdict(params)) for m, (a,), _ in pairs
                                                      for kind, path in (("midi", m), ("audio", a))])
        with make_runner() as runner:
            run_all(runner, confirm_task, pairs[:cores])  # start the workers
            t = time.perf_counter()
            run_all(runner, confirm_task, pairs)
            confirm_rate = len(pairs) / (time.perf_counter() - t)
        report["confirm_pairs_per_s"] = confirm_rate
        print(f"stage 3 (align, warm cache, {cores} processes): {confirm_rate:.1f} pairs/s over {len(pairs)} pairs")

    # Stage 1 on synthetic summary vectors.
    def unit(*shape):
        X = rng.standard_normal((*shape, 12 * params.n_segments)).astype(np.float32)
        return X / np.linalg.norm(X, axis=-1, keepdims=True)

    n_variants = len(stages.crop_spans(params.crop_step, params.midi_crops))
    for size in (n, 10000):
        U, V = unit(n_variants, size), unit(size)  # each MIDI with its sub-span variants
        Z = np.empty((size, size), np.float32)  # run_match keeps every pair's z for the decision
        seconds, _ = _time(lambda: stages.prune(U, V, params.k_prune, z_out=Z), repeat=3 if size <= n else 1)
        report[f"prune_{size}"] = {"seconds": seconds, "pairs_per_s": size * size / seconds}
        print(f"stage 1 (prune) {size} × {size}: {seconds:.3f} s, {size * size / seconds / 1e6:.1f} M pairs/s")

    # Stage 2 on synthetic pooled chroma made from the benchmark's real sequences.
    real = [np.asarray(features_task("midi", str(p), asdict(params))["pooled"]) for p in midi_files[:40]]
    A = stages.pack(_synthetic_pooled(real, n, rng))
    B = stages.pack(_synthetic_pooled(real, n, rng))
    per_midi = params.k_prune + params.n_null
    pm = np.repeat(np.arange(n), per_midi)
    pa = rng.integers(0, n, len(pm))
    stages.coarse_scores(A, B, pm[:10], pa[:10])  # compile / load
    seconds, _ = _time(lambda: stages.coarse_scores(A, B, pm, pa, params.gully, params.penalty_scale), repeat=1)
    report["coarse"] = {"pairs": len(pm), "seconds": seconds, "pairs_per_s": len(pm) / seconds,
                        "mean_frames": float(np.mean(np.diff(A[1])))}
    print(f"stage 2 (coarse DTW) {len(pm)} pairs: {seconds:.2f} s, {len(pm) / seconds:.0f} pairs/s "
          f"({report['coarse']['mean_frames']:.0f} frames per sequence)")

    def end_to_end(size):
        feats = size * (report["features"]["audio_s_per_file"] + report["features"]["midi_s_per_file"]) / cores
        prune = report[f"prune_{size}"]["seconds"] if f"prune_{size}" in report else size * size / report[f"prune_{n}"]["pairs_per_s"]
        coarse = size * per_midi / report["coarse"]["pairs_per_s"]
        confirm = size * params.k_confirm / confirm_rate
        return {"features_s": feats, "prune_s": prune, "coarse_s": coarse, "confirm_s": confirm,
                "total_s": feats + prune + coarse + confirm}

    report["end_to_end"] = {str(n): end_to_end(n), "10000": end_to_end(10000)}
    for size, e in report["end_to_end"].items():
        print(f"end-to-end {size} × {size}: " + ", ".join(f"{k} {v:.0f}" for k, v in e.items()) + f" s "
              f"({e['total_s'] / 60:.1f} min)")
    prune_rate = report[f"prune_{n}"]["pairs_per_s"]
    print(f"target pruning ≥ 10 M pairs/s: {'PASS' if prune_rate >= TARGETS['prune_pairs_per_s'] else 'FAIL'}")
    total = report["end_to_end"][str(n)]["total_s"]
    print(f"target {n} × {n} < 10 min: {'PASS' if total < TARGETS['end_to_end_1000_s'] else 'FAIL'} ({total:.0f} s)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "throughput.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


DOC = Path(__file__).resolve().parents[2] / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- matching:begin -->", "<!-- matching:end -->"


def _walls(timings: dict) -> str:
    """``features 46.0, prune 0.8, …`` (wall seconds per stage) from a timings dict."""
    return ", ".join(f"{k[:-2]} {v:.1f}" for k, v in timings.items() if k.endswith("_s") and not k.endswith("_cpu_s"))


def doc(args) -> int:
    """Write the matching section of docs/BENCHMARKS.md from out/match/*.json (run, throughput, large first)."""
    bench = json.loads((OUT_DIR / "bench_summary.json").read_text())
    thr = json.loads((OUT_DIR / "throughput.json").read_text())
    big_path = OUT_DIR / "large_summary.json"
    big = json.loads(big_path.read_text()) if big_path.is_file() else None
    ok = {True: "✅", False: "❌"}
    c, sr = bench["confusion"], bench["stage_recall"]
    n = thr["n"]
    e2e, e10 = thr["end_to_end"][str(n)], thr["end_to_end"]["10000"]
    feats = thr["features"]
    bench_cpu = bench["timings_s"].get("total_cpu_s")
    lines = [BEGIN, "## Library matching (issue 6)", "",
             f"Commands: `nice -n 5 python -m tests.benchmarks.make_match_set` (the set), `python -m "
             f"tests.benchmarks.bench_match run`, `… throughput`, `… large`, `… doc` — "
             f"{run_dates([OUT_DIR / 'bench_summary.json', OUT_DIR / 'throughput.json', big_path])}, "
             f"{bench['cores']} CPU cores (a shared machine: absolute times are noisy).", "",
             "Set `data/bench/match/bench`: 180 MIDIs (150 with a recording, 30 = 16.7 % with none) × 185 recordings "
             "(35 with no MIDI), music21 corpus works of 17 kinds (chorales, madrigals, mass movements, trecento, "
             "quartets, piano, songs, fiddle and folk tunes…, at most 60 s each, one work per tune), recordings "
             "corrupted as the alignment benchmark's (Raffel & Ellis 2016) and rendered with MuseScore General "
             "Lite or FluidR3 GM, mp3. The calibration was fitted on `data/bench/match/calib` (50 × 50, other works).",
             "", "| measure | value | target | |", "|---|---|---|---|",
             f"| rank-1 accuracy | {bench['rank1']:.4f} | ≥ 0.95 | {ok[bench['rank1'] >= 0.95]} |",
             f"| open-set F1 (precision / recall) | {bench['f1']:.4f} ({bench['precision']:.4f} / {bench['recall']:.4f}) "
             f"| ≥ 0.95 | {ok[bench['f1'] >= 0.95]} |",
             f"| ROC AUC (all {bench['n_midi'] * bench['n_audio']} pairs) | {bench['roc_auc']:.4f} | ≥ 0.99 | "
             f"{ok[bench['roc_auc'] >= 0.99]} |",
             f"| top-5 / MRR / decision accuracy | {bench['top5']:.4f} / {bench['mrr']:.4f} / "
             f"{bench['decision_accuracy']:.4f} | | |",
             f"| confusion (pairs) | TP {c['tp']}, FP {c['fp']}, FN {c['fn']}, TN {c['tn']} | | |",
             f"| recall kept: prune (top {bench['params']['k_prune']}) / coarse DTW (top "
             f"{bench['params']['k_confirm']}) / rank 1 after confirming | {sr['prune']:.3f} / {sr['coarse']:.3f} / "
             f"{sr['confirm_rank1']:.3f} | | |",
             f"| whole run, cold cache ({bench['counts']['features_computed']} files) | {bench['wall_s']:.0f} s "
             f"({_walls(bench['timings_s'])}{f'; CPU {bench_cpu:.0f} s' if bench_cpu else ''}) | | |", "",
             f"Throughput ({thr['cores']} cores; stages 1–2 on synthetic feature matrices, stage 3 on real pairs — see "
             "`tests/benchmarks/bench_match.py`):", "", "| stage | rate | target | |", "|---|---|---|---|",
             f"| features (1 core) | {feats['audio_s_per_file']:.3f} s per recording ({feats['mean_audio_duration_s']:.0f} s "
             f"long), {feats['midi_s_per_file']:.3f} s per MIDI | | |",
             f"| 1 prune, {n} × {n} | {thr[f'prune_{n}']['pairs_per_s'] / 1e6:.1f} M pairs/s | ≥ 10 M | "
             f"{ok[thr[f'prune_{n}']['pairs_per_s'] >= 1e7]} |",
             f"| 1 prune, 10 000 × 10 000 | {thr['prune_10000']['pairs_per_s'] / 1e6:.1f} M pairs/s | | |",
             f"| 2 coarse DTW ({thr['coarse']['mean_frames']:.0f} frames a side) | {thr['coarse']['pairs_per_s']:.0f} pairs/s | | |",
             f"| 3 full alignment (warm cache) | {thr['confirm_pairs_per_s']:.1f} pairs/s | | |"]
    if big is None:  # no measured end-to-end run yet: the sum of the stages
        lines += [f"| end-to-end {n} × {n}, sum of the stages | {e2e['total_s'] / 60:.1f} min "
                  f"({', '.join(f'{k} {v:.0f}' for k, v in e2e.items())}) | < 10 min | {ok[e2e['total_s'] < 600]} |",
                  f"| projection 10 000 × 10 000 | {e10['total_s'] / 60:.0f} min | | |"]
    else:
        from tests.benchmarks.bench_match_large import large_rows

        lines += large_rows(big, ok)
    lines += ["", "Times scale with the recordings' length (features and alignment about linearly, the coarse DTW "
              "quadratically): the sets' recordings are short (MIDIs ≤ 60 s; recordings ~40 s on average, ≤ 75 s)."]
    if big is not None:
        from tests.benchmarks.bench_match_large import large_section

        lines += large_section(big)
        a, r = big["accuracy"], big["stage_recall"]
        lines += ["", f"With 1 000 recordings: rank-1 {a['rank1']:.3f} {ok[a['rank1'] >= 0.95]} (bench "
                  f"{bench['rank1']:.3f}), F1 {a['f1']:.3f} {ok[a['f1'] >= 0.95]} ({bench['f1']:.3f}), ROC AUC "
                  f"{a['roc_auc']:.4f} {ok[a['roc_auc'] >= 0.99]} ({bench['roc_auc']:.4f}). Recall kept: the prune's "
                  f"top {bench['params']['k_prune']} {r['prune']:.3f} (bench {sr['prune']:.3f}), the coarse DTW's top "
                  f"{bench['params']['k_confirm']} {r['coarse']:.3f}, rank 1 after confirming {r['confirm_rank1']:.3f}. "
                  "Before the confirming alignment left out the parts a recording lacks "
                  "(`AlignParams.find_instruments`), with the top 24 and 2 confirmed: 0.937 / 0.940 / 0.995 — a "
                  "recording that lost voices scored low against the whole score, so most true pairs it missed "
                  "were answered \"none\"."]
    lines.append(END)
    replace_section("\n".join(lines), BEGIN, END, DOC)
    print(f"wrote the matching section of {DOC}")
    return 0


def _gold_pairs(set_dir):
    import csv

    with open(set_dir / "gold.csv", newline="") as f:
        return [(r["midi"], r["audio"]) for r in csv.DictReader(f) if r["audio"]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("calibrate", help="fit the calibration on the calibration set")
    sub.add_parser("run", help="accuracy and end-to-end time on the benchmark set")
    sub.add_parser("doc", help="write the matching section of docs/BENCHMARKS.md")
    t = sub.add_parser("throughput", help="pairs per second of each stage; end-to-end n × n")
    t.add_argument("--n", type=int, default=1000)
    t.add_argument("--feature-files", type=int, default=30, help="files timed for the feature cost")
    t.add_argument("--align-pairs", type=int, default=60, help="real pairs timed for stage 3")
    g = sub.add_parser("large", help="earworm match end to end on the 1 000 × 1 000 set, cold cache")
    g.add_argument("--cache-parent", default=None, help="where the fresh cache folder goes (default: the temp dir)")
    g.add_argument("--keep-cache", action="store_true", help="keep the run's cache folder (to inspect or resume)")
    g.add_argument("--set", default="large", help="which set under data/bench/match (default large; bench for a quick check)")
    args = parser.parse_args(argv)
    if args.what == "large":
        from tests.benchmarks.bench_match_large import large

        return large(args)
    return {"calibrate": calibrate, "run": run, "throughput": throughput, "doc": doc}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
