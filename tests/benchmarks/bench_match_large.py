"""``python -m tests.benchmarks.bench_match large``: library matching end to end on 1 000 × 1 000.

Runs ``earworm match --midi … --audio … --out matches.csv --scores matrix.csv --gold gold.csv``
(the console script, in a child process, as a user runs it) on ``data/bench/match/large`` (made by
``nice -n 19 python -m tests.benchmarks.make_match_set --large``) with ``EARWORM_CACHE_DIR`` a
fresh empty folder, so every feature and alignment is computed. At normal priority and all local
cores (the command's defaults). Measures:

- wall time of the command and CPU time of its whole process tree (``RUSAGE_CHILDREN``), per stage
  from ``match_report.json`` (``<stage>_s`` wall and ``<stage>_cpu_s``: CPU of the matcher and its
  workers, see :func:`engine.distributed.local_cpu_seconds`): on a shared machine the wall time
  depends on the load, the CPU time much less;
- peak memory: the process tree's summed RSS (sampled every 0.5 s) and the largest process's;
- the load average before and after (``uptime``) and the 1-min load averaged over the run;
- accuracy as the bench reports it (rank-1, open-set F1, ROC AUC…) and the recall each stage keeps;
- the projection to 10 000 × 10 000 from the measured stage times (:func:`projection`).

Writes ``out/match/large_summary.json`` (``bench_match doc`` puts it in docs/BENCHMARKS.md) and
``out/match/large/`` (the command's CSVs, report, figures and log).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.distributed import local_cores
from tests.benchmarks.bench_match import OUT_DIR, SET_DIR, TARGETS


def _tree(pid):
    import psutil

    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


def _sample_tree(proc, samples: dict, every_s: float = 0.5) -> None:
    """Until ``proc`` ends: peak RSS of its process tree (sum and largest) and the 1-min load average."""
    import psutil

    while proc.poll() is None:
        rss = []
        for p in _tree(proc.pid):
            try:
                rss.append(p.memory_info().rss)
            except psutil.Error:
                continue
        if rss:
            samples["peak_tree_rss"] = max(samples.get("peak_tree_rss", 0), sum(rss))
            samples["processes"] = max(samples.get("processes", 0), len(rss))
        samples.setdefault("load1", []).append(os.getloadavg()[0])
        time.sleep(every_s)


def large(args) -> int:
    """``earworm match`` (the console script, as a user runs it) on the large set from an empty cache."""
    import resource
    import shutil
    import subprocess
    import threading

    set_dir = SET_DIR / args.set
    if not (set_dir / "gold.csv").is_file():
        print(f"{set_dir}: no large set; make it first: nice -n 19 python -m tests.benchmarks.make_match_set --large")
        return 1
    out = OUT_DIR / args.set
    summary_path = OUT_DIR / ("large_summary.json" if args.set == "large" else f"{args.set}_e2e_summary.json")
    out.mkdir(parents=True, exist_ok=True)
    earworm = Path(sys.executable).with_name("earworm")
    cmd = [str(earworm) if earworm.exists() else sys.executable, *([] if earworm.exists() else ["-m", "engine.cli"]),
           "match", "--midi", str(set_dir / "midi"), "--audio", str(set_dir / "audio"),
           "--out", str(out / "matches.csv"), "--scores", str(out / "matrix.csv"), "--gold", str(set_dir / "gold.csv")]
    cache = Path(tempfile.mkdtemp(prefix="earworm-large-cache-", dir=args.cache_parent))
    env = dict(os.environ, EARWORM_CACHE_DIR=str(cache))  # every feature and alignment computed in this run
    # The command's start-up (interpreter + the modules it imports), timed apart after the run: constant.
    startup = [sys.executable, "-c", "import engine.cli, engine.match, engine.evaluate, engine.distributed, sklearn.metrics"]
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    load_before = os.getloadavg()
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    samples: dict = {}
    print("running:", " ".join(cmd), f"(EARWORM_CACHE_DIR={cache})", flush=True)
    try:
        with open(out / "cli.log", "w") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            sampler = threading.Thread(target=_sample_tree, args=(proc, samples), daemon=True)
            sampler.start()
            rc = proc.wait()
            wall_s = time.perf_counter() - t0
            sampler.join()
    finally:
        if not args.keep_cache:
            shutil.rmtree(cache, ignore_errors=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_after = os.getloadavg()
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    t_startup = time.perf_counter()
    subprocess.run(startup, check=True)
    startup_s = time.perf_counter() - t_startup
    print((out / "cli.log").read_text()[-3000:])
    if rc != 0:
        print(f"earworm match failed (exit {rc}); see {out / 'cli.log'}")
        return 1
    report = json.loads((out / "match_report.json").read_text())
    cpu_s = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    t = report["timings_s"]
    stages_ = [s for s in ("features", "prune", "embedding", "coarse", "confirm", "decide") if f"{s}_s" in t]
    summary = {
        "command": " ".join(cmd), "cores": local_cores(), "date": time.strftime("%Y-%m-%d %H:%M"),
        "wall_s": round(wall_s, 1), "cpu_s": round(cpu_s, 1),
        "match_s": t["total_s"], "match_cpu_s": t.get("total_cpu_s"),
        "outside_match_s": round(wall_s - t["total_s"], 1),  # start-up, CSVs, evaluation and figures
        "startup_s": round(startup_s, 1),
        "stages": {s: {"wall_s": t[f"{s}_s"], "cpu_s": t.get(f"{s}_cpu_s")} for s in stages_},
        "peak_tree_rss_mb": round(samples.get("peak_tree_rss", 0) / 2**20), "processes": samples.get("processes"),
        "peak_process_rss_mb": round(usage.ru_maxrss / 1024),
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
        "load1_mean_during": round(float(np.mean(samples.get("load1", [np.nan]))), 2),
        "uptime_before": uptime_before, "uptime_after": uptime_after,
        "accuracy": {k: report[k] for k in ("n_midi", "n_audio", "n_gold_pairs", "rank1", "top5", "mrr", "precision",
                                            "recall", "f1", "roc_auc", "decision_accuracy", "confusion")},
        "stage_recall": report["stage_recall"], "counts": report["counts"],
        "manifest": {k: v for k, v in (json.loads((set_dir / "manifest.json").read_text())
                                       if (set_dir / "manifest.json").is_file() else {}).items()
                     if k not in ("works", "roles", "skipped")},
    }
    summary["projection_10000"] = projection(summary, n_target=10000)
    summary["cpu_over_cores_s"] = round(cpu_s / local_cores(), 1)  # the wall time if the cores were ours alone
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    a = summary["accuracy"]
    print(f"wall {wall_s:.0f} s ({wall_s / 60:.1f} min), CPU {cpu_s:.0f} s on {local_cores()} cores; "
          f"peak RSS {summary['peak_tree_rss_mb']} MB (tree), {summary['peak_process_rss_mb']} MB (largest process)")
    for s, v in summary["stages"].items():
        print(f"  {s:9s} wall {v['wall_s']:7.1f} s  CPU {v['cpu_s'] or float('nan'):7.1f} s")
    print(f"load: before {uptime_before}\n      after  {uptime_after}\n      mean 1-min during {summary['load1_mean_during']}")
    print(f"rank-1 {a['rank1']:.4f}, F1 {a['f1']:.4f} (P {a['precision']:.4f} / R {a['recall']:.4f}), "
          f"ROC AUC {a['roc_auc']:.4f}; stage recall {summary['stage_recall']}")
    p10 = summary["projection_10000"]
    for basis in ("wall", "idle"):
        print(f"projection 10 000 × 10 000 ({basis}): " + ", ".join(f"{k} {v:.0f} s" for k, v in p10[basis].items())
              + f" ({p10[basis]['total_s'] / 60:.0f} min); outputs and evaluation ≤ {p10['outside_s']:.0f} s")
    print(f"wrote {summary_path}")
    print(f"target 1 000 × 1 000 < 10 min: {'PASS' if wall_s < TARGETS['end_to_end_1000_s'] else 'FAIL'} ({wall_s:.0f} s)")
    return 0


def projection(summary: dict, n_target: int) -> dict:
    """Seconds per stage of ``run_match`` for ``n_target`` × ``n_target`` from the measured stage times.

    Features, coarse DTW and confirmation are linear in the number of files (a fixed number of
    pairs per MIDI); the prune is quadratic (its 10 000 × 10 000 time is the throughput
    benchmark's measurement at that size when there is one, else the measured time × the ratio
    of pairs); deciding (calibrating every pair) is quadratic; the rest of ``run_match`` (listing
    and hashing the files, starting and stopping the workers) linear. ``wall`` scales the measured wall times (this run's load included); ``idle`` the
    CPU times divided by the cores (the wall time with the cores to itself). The command's outputs
    and evaluation (``outside``: a matrix.csv of every pair, ROC over every pair) are projected
    apart: quadratically, less the start-up (timed apart: constant).
    """
    c = summary["counts"]
    n = (c["midi"] + c["audio"]) / 2
    lin, quad = n_target / n, (n_target / n) ** 2
    cores = summary["cores"]
    thr_path = OUT_DIR / "throughput.json"
    prune_big = json.loads(thr_path.read_text()).get(f"prune_{n_target}") if thr_path.is_file() else None
    out = {}
    for basis in ("wall", "idle"):
        st = {s: (v["wall_s"] if basis == "wall" else v["cpu_s"] / cores) for s, v in summary["stages"].items()}
        match_s = summary["match_s"] if basis == "wall" else summary["match_cpu_s"] / cores
        rest = max(match_s - sum(st.values()), 0.0)
        stages_ = {"features_s": st["features"] * lin, "prune_s": prune_big["seconds"] if prune_big else st["prune"] * quad,
                   "coarse_s": st["coarse"] * lin, "confirm_s": st["confirm"] * lin,
                   "decide_s": st.get("decide", 0.0) * quad, "rest_s": rest * lin}
        stages_["total_s"] = sum(stages_.values())
        out[basis] = {k: round(v, 1) for k, v in stages_.items()}
    startup = summary.get("startup_s", 0.0)
    out["outside_s"] = round(startup + max(summary["outside_match_s"] - startup, 0.0) * quad, 1)
    return out


def large_rows(big: dict, ok: dict) -> list:
    c = big["counts"]
    p10 = big["projection_10000"]
    return [f"| end-to-end {c['midi']} × {c['audio']}, measured: `earworm match … --gold` from an empty cache "
            f"(below) | {big['wall_s'] / 60:.1f} min wall ({big['wall_s']:.0f} s; CPU {big['cpu_s']:.0f} s; "
            f"load {big['load1_mean_during']:.1f} on average) | < 10 min | {ok[big['wall_s'] < 600]} |",
            f"| projection 10 000 × 10 000 of the match, from the measured run's stage times | "
            f"{p10['wall']['total_s'] / 60:.0f} min at this run's load "
            f"({', '.join(f'{k[:-2]} {v:.0f}' for k, v in p10['wall'].items() if k != 'total_s')} s); "
            f"{p10['idle']['total_s'] / 60:.0f} min from its CPU times on {big['cores']} idle cores; plus ≤ "
            f"{p10['outside_s'] / 60:.0f} min for a 10⁸-cell matrix.csv and the evaluation of every pair | | |"]


def large_section(big: dict) -> list:
    a, c, m = big["accuracy"], big["counts"], big["manifest"]
    conf = a["confusion"]
    sr = big["stage_recall"]
    dur = m.get("audio_duration_s", {})
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(m.get("kinds", {}).items(), key=lambda kv: -kv[1]))
    rows = [f"| {s} | {v['wall_s']:.1f} | {v['cpu_s']:.1f} | {v['cpu_s'] / max(v['wall_s'], 1e-9):.2f} |"
            for s, v in big["stages"].items()]
    return ["", "### End to end, 1 000 × 1 000 (`python -m tests.benchmarks.bench_match large`)", "",
            f"Set `data/bench/match/large` (`nice -n 19 python -m tests.benchmarks.make_match_set --large`): "
            f"{c['midi']} MIDIs ({m['paired']} with a recording, {m['midi_only']} = "
            f"{100 * m['midi_only'] / c['midi']:.0f} % with none) × {c['audio']} recordings ({m['audio_only']} with "
            f"no MIDI); the bench set's recipe (corruptions, MuseScore General Lite / FluidR3 GM, mp3) on a wider "
            f"pool, one work per tune, none of the calibration set's works or tunes; MIDIs cut at 60 s, so "
            f"recordings of {dur.get('mean', float('nan'))} s on average, {dur.get('max', float('nan'))} s at most "
            f"(tempo × 0.8–1.25, crops). Kinds: {kinds}.", "",
            f"Run {big['date']}: `{big['command'].replace(str(SET_DIR.parents[2]) + '/', '')}` with "
            f"`EARWORM_CACHE_DIR` a fresh empty folder, {big['cores']} cores, at normal priority on a machine shared "
            f"with other jobs — load before: {' '.join(map(str, big['load_before']))}; after: "
            f"{' '.join(map(str, big['load_after']))}; 1-min load averaged over the run: {big['load1_mean_during']}. "
            f"Peak memory: {big['peak_tree_rss_mb']} MB for the whole process tree ({big['processes']} processes), "
            f"{big['peak_process_rss_mb']} MB the largest process.", "",
            "| measure | value |", "|---|---|",
            f"| rank-1 / top-5 / MRR | {a['rank1']:.4f} / {a['top5']:.4f} / {a['mrr']:.4f} |",
            f"| open-set F1 (precision / recall) | {a['f1']:.4f} ({a['precision']:.4f} / {a['recall']:.4f}) |",
            f"| ROC AUC (all {a['n_midi'] * a['n_audio']} pairs) | {a['roc_auc']:.4f} |",
            f"| decision accuracy (MIDIs) | {a['decision_accuracy']:.4f} |",
            f"| confusion (pairs) | TP {conf['tp']}, FP {conf['fp']}, FN {conf['fn']}, TN {conf['tn']} |",
            f"| recall kept: prune / coarse DTW / rank 1 after confirming | {sr['prune']:.3f} / {sr['coarse']:.3f} / "
            f"{sr['confirm_rank1']:.3f} |",
            f"| pairs: prune / coarse DTW / confirmed | {c['prune_pairs']} / {c['coarse_pairs']} / "
            f"{c['confirm_pairs']} |", "",
            "| stage | wall (s) | CPU (s, all processes) | CPU / wall |", "|---|---:|---:|---:|", *rows,
            f"| whole `run_match` | {big['match_s']:.1f} | {big['match_cpu_s']:.1f} | "
            f"{big['match_cpu_s'] / big['match_s']:.2f} |",
            f"| the command (start-up, CSVs, evaluation and figures included) | {big['wall_s']:.1f} | "
            f"{big['cpu_s']:.1f} | {big['cpu_s'] / big['wall_s']:.2f} |"]
