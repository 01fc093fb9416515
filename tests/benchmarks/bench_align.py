"""Alignment benchmark: accuracy, confidence, speed and memory, ours against two peers.

``python -m tests.benchmarks.bench_align [--set data/bench/align] [--n N] [--no-long]``
(``python -m tests.benchmarks.run_all`` makes the set first and writes docs/BENCHMARKS.md.)

Methods, all on the same pairs in the same run:

- ``ours/pianoroll``: ``engine.align.align`` with ``AlignParams(midi_features="pianoroll")``;
- ``ours/synth``: ``AlignParams(midi_features="synth", soundfont=TimGM6mb)``;
- ``pretty_midi``: the pretty_midi align_midi recipe (:mod:`tests.benchmarks.peers`);
- ``synctoolbox``: Sync Toolbox's chroma + DLNCO MrMsDTW (:mod:`tests.benchmarks.peers`).

Metrics
-------
- Accuracy (:func:`engine.synthetic.onset_errors`): per note whose true onset lies inside the
  recording, |predicted − true| clipped at 0.5 s; reported pooled over all notes (mean, % within
  50 ms and 100 ms) and as the mean of per-pair means.
- Confidence: ROC AUC (``sklearn.metrics.roc_auc_score``) of the confidence of the true pairs
  against mismatched pairs of the same set (recording i with MIDI i+1).
- Speed: per pair, *cold* = first alignment with an empty cache (decoding, synthesis,
  features, DTW), *warm* = the same alignment again (features from the on-disk cache). Each
  method has its own cache folder, so one method's cache never warms another's. JIT compilation,
  imports and soundfont loading are paid once before timing (a warm-up pair).
- A 3-minute pair, warm; peak memory of aligning a 20-minute pair, in a fresh process (cold,
  warm, and cold after a short pair has paid the libraries' first-use memory), two ways: peak RSS
  (VmHWM: everything resident, the shared libraries' read-only pages mapped from disk included)
  and peak private memory (RssAnon: the process's own heap and arrays, what a desktop task
  manager calls its memory; polled by this process every 2 ms, so a spike shorter than that
  can be missed).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.benchmarks import make_alignment_set as bench_set
from tests.benchmarks import peers

TIMGM6MB = "/usr/share/sounds/sf2/TimGM6mb.sf2"
OUT_DIR = Path(__file__).resolve().parent / "out"
LONG_DIR = bench_set.ROOT / "data" / "bench" / "align_long"


def _ours(mode: str):
    from engine.align import AlignParams, align

    params = AlignParams(midi_features=mode, soundfont=TIMGM6MB if mode == "synth" else None)

    def run(midi_path, audio_path, cache_dir):
        os.environ["EARWORM_CACHE_DIR"] = str(cache_dir)
        return align(midi_path, audio_path, params=params)

    return run


def _peer(name: str):
    fn = peers.PEERS[name]
    return lambda midi_path, audio_path, cache_dir: fn(midi_path, audio_path, cache_dir)


METHODS = {
    "ours/pianoroll": lambda: _ours("pianoroll"),
    "ours/synth": lambda: _ours("synth"),
    "pretty_midi": lambda: _peer("pretty_midi"),
    "synctoolbox": lambda: _peer("synctoolbox"),
}


def _timed(run, *args):
    t = time.perf_counter()
    result = run(*args)
    return result, time.perf_counter() - t


def bench_pairs(pairs, methods, work_dir: Path, log=print) -> list[dict]:
    """Cold and warm alignment of every pair with every method; accuracy of each."""
    from engine import media, synthetic

    runners = {name: METHODS[name]() for name in methods}
    # Warm-up: JIT, imports, soundfont loading; on the first pair, in a throwaway cache.
    for name, run in runners.items():
        run(pairs[0]["midi_path"], pairs[0]["audio_path"], work_dir / "warmup" / name.replace("/", "_"))
    records = []
    for k, meta in enumerate(pairs):
        midi = media.load_midi(meta["midi_path"])
        warp_midi_s, warp_audio_s = bench_set.load_truth(meta)
        line = []
        for name, run in runners.items():
            cache = work_dir / "cache" / name.replace("/", "_")
            cold_result, cold_s = _timed(run, meta["midi_path"], meta["audio_path"], cache)
            result, warm_s = _timed(run, meta["midi_path"], meta["audio_path"], cache)
            score = synthetic.onset_errors(midi, warp_midi_s, warp_audio_s, result.midi_to_audio,
                                           meta["audio_duration_s"])
            records.append({
                "pair": meta["id"], "method": name, "cold_s": cold_s, "warm_s": warm_s,
                "confidence": float(result.confidence), "mean_error_s": score["mean_error_s"],
                "within_50ms": score["within_50ms"], "within_100ms": score["within_100ms"],
                "n_notes": score["n_notes"], "errors_s": score["errors_s"].tolist(),
                "median_offset_ms": 1000 * float(np.median(score["offsets_s"])) if score["n_notes"] else float("nan"),
                "timings": {k2: float(v) for k2, v in getattr(result, "timings", {}).items()},
                "cold_timings": {k2: float(v) for k2, v in getattr(cold_result, "timings", {}).items()},
                # What the warm run found in the cache (ours: audio/midi features, maybe the alignment).
                "warm_cache_hits": {k2: bool(v) for k2, v in (getattr(result, "cache_hits", None) or {}).items()},
            })
            line.append(f"{name} {score['mean_error_s'] * 1000:6.1f} ms {cold_s:5.2f}/{warm_s:5.3f} s")
        log(f"[{k + 1:3d}/{len(pairs)}] {meta['id'][:38]:38s} " + " | ".join(line))
    return records


def bench_mismatch(pairs, methods, work_dir: Path) -> list[dict]:
    """Confidence of mismatched pairs: recording i with MIDI i+1 (features already cached)."""
    runners = {name: METHODS[name]() for name in methods}
    out = []
    for k, meta in enumerate(pairs):
        other = pairs[(k + 1) % len(pairs)]
        for name, run in runners.items():
            cache = work_dir / "cache" / name.replace("/", "_")
            result = run(other["midi_path"], meta["audio_path"], cache)
            out.append({"audio_pair": meta["id"], "midi_pair": other["id"], "method": name,
                        "confidence": float(result.confidence)})
    return out


def roc_auc(records, mismatched, method) -> float:
    """ROC AUC of true pairs (positives) vs mismatched pairs (negatives) for one method."""
    from sklearn.metrics import roc_auc_score

    pos = [r["confidence"] for r in records if r["method"] == method]
    neg = [r["confidence"] for r in mismatched if r["method"] == method]
    scores = np.array(pos + neg)
    if not len(neg) or not np.all(np.isfinite(scores)):
        return float("nan")
    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], scores))


def bench_three_minutes(meta, methods, work_dir: Path, repeats: int = 3) -> dict:
    """Warm time (best of ``repeats``) of each method on one ~3-minute pair."""
    out = {}
    for name in methods:
        run = METHODS[name]()
        cache = work_dir / "cache3min" / name.replace("/", "_")
        _, cold_s = _timed(run, meta["midi_path"], meta["audio_path"], cache)
        warm = [_timed(run, meta["midi_path"], meta["audio_path"], cache)[1] for _ in range(repeats)]
        out[name] = {"cold_s": cold_s, "warm_s": min(warm)}
    return out


_MEMORY_CHILD = r"""
import json, os, sys, time
# VmHWM, not getrusage's ru_maxrss: Linux carries the forked parent's peak across exec into
# ru_maxrss, so a child of a big process would report the parent's size.
def status_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
midi, audio, mode, cache, soundfont = sys.argv[1:6]
warm_up = sys.argv[6:8]  # a short pair aligned first (its own cache): the libraries' first use paid
os.environ["EARWORM_CACHE_DIR"] = cache
from engine.align import AlignParams, align
import engine.dtw, engine.features, engine.media, librosa  # noqa: F401  (import cost is baseline)
params = AlignParams(midi_features=mode, soundfont=soundfont if mode == "synth" else None)
baseline = status_mb("VmRSS")
out = {"baseline_rss_mb": baseline}
if warm_up:
    os.environ["EARWORM_CACHE_DIR"] = os.path.join(cache, "warm-up")
    align(warm_up[0], warm_up[1], params=params)
    os.environ["EARWORM_CACHE_DIR"] = cache
    out["after_warm_up_rss_mb"] = status_mb("VmRSS")
t = time.perf_counter()
result = align(midi, audio, params=params)
elapsed = time.perf_counter() - t
out.update(peak_rss_mb=status_mb("VmHWM"), seconds=elapsed, timings=result.timings,
           band_cells=result.params.get("band_cells"), end_file_rss_mb=status_mb("RssFile"))
print(json.dumps(out))
"""


def bench_memory(meta, mode: str, cache_dir: Path, warm_up=None) -> dict:
    """Peak RSS of one alignment in a fresh interpreter: cold (empty cache), then warm (the same
    cache), and, given a short ``warm_up`` pair, cold again in a fresh interpreter that aligned
    that pair first (so the libraries' first-use memory — numba's compiler, scipy's FFT, FluidSynth
    and its soundfont — is in place before, and the rest is the work of this pair)."""
    runs = {"cold": (cache_dir, []), "warm": (cache_dir, [])}
    if warm_up is not None:
        runs["cold, libraries warmed up"] = (cache_dir / "after-warm-up", [warm_up["midi_path"], warm_up["audio_path"]])
    out = {}
    for label, (cache, extra) in runs.items():
        proc, peak_private_mb = _run_polling_private_memory(
            [sys.executable, "-c", _MEMORY_CHILD, meta["midi_path"], meta["audio_path"], mode, str(cache), TIMGM6MB,
             *extra])
        if proc.returncode != 0:
            out[label] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
        else:
            out[label] = {**json.loads(proc.stdout.strip().splitlines()[-1]), "peak_private_mb": peak_private_mb}
    return out


def _run_polling_private_memory(command, interval_s: float = 0.002):
    """Run ``command`` to its end; returns (CompletedProcess, peak RssAnon in MB, or None if never read).

    Polled from outside (this process), so the child's own threads and GIL do not delay it; the
    interval is at least ``interval_s`` (plus the read and, on a busy machine, scheduling).
    """
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True, cwd=bench_set.ROOT)
        peak_kb = None
        status = Path(f"/proc/{child.pid}/status")
        try:
            while child.poll() is None:
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("RssAnon:"):
                            peak_kb = max(peak_kb or 0, int(line.split()[1]))
                            break
                except (OSError, ValueError):  # exiting between poll() and the read
                    pass
                time.sleep(interval_s)
        finally:
            if child.poll() is None:  # interrupted: no orphan left aligning
                child.kill()
                child.wait()
        stdout.seek(0)
        stderr.seek(0)
        done = subprocess.CompletedProcess(command, child.returncode, stdout.read(), stderr.read())
    return done, None if peak_kb is None else peak_kb / 1024


def summarise(records, mismatched, methods) -> dict:
    """Per-method accuracy, confidence AUC and speed; per-pair speed ratios vs ours."""
    summary = {}
    for name in methods:
        rs = [r for r in records if r["method"] == name]
        errors = np.concatenate([np.asarray(r["errors_s"]) for r in rs]) if rs else np.zeros(0)
        summary[name] = {
            "pairs": len(rs), "notes": int(errors.size),
            "mean_error_ms": 1000 * float(errors.mean()) if errors.size else float("nan"),
            "median_error_ms": 1000 * float(np.median(errors)) if errors.size else float("nan"),
            "within_50ms": float(np.mean(errors <= 0.05)) if errors.size else float("nan"),
            "within_100ms": float(np.mean(errors <= 0.1)) if errors.size else float("nan"),
            "mean_of_pair_means_ms": 1000 * float(np.mean([r["mean_error_s"] for r in rs])),
            "pairs_over_50ms": int(sum(r["mean_error_s"] > 0.05 for r in rs)),
            "median_offset_ms": float(np.median([r["median_offset_ms"] for r in rs])),
            "roc_auc": roc_auc(records, mismatched, name),
            "cold_total_s": float(sum(r["cold_s"] for r in rs)),
            "warm_total_s": float(sum(r["warm_s"] for r in rs)),
            "cold_median_s": float(np.median([r["cold_s"] for r in rs])),
            "warm_median_s": float(np.median([r["warm_s"] for r in rs])),
        }
    for ours in [m for m in methods if m.startswith("ours")]:
        for peer in [m for m in methods if not m.startswith("ours")]:
            for kind in ("cold", "warm"):
                mine = {r["pair"]: r[f"{kind}_s"] for r in records if r["method"] == ours}
                theirs = {r["pair"]: r[f"{kind}_s"] for r in records if r["method"] == peer}
                ratios = [theirs[p] / mine[p] for p in mine if p in theirs and mine[p] > 0]
                summary[ours][f"{kind}_speedup_vs_{peer}"] = {
                    "total": summary[peer][f"{kind}_total_s"] / summary[ours][f"{kind}_total_s"],
                    "median_per_pair": float(np.median(ratios)) if ratios else float("nan"),
                    "min_per_pair": float(np.min(ratios)) if ratios else float("nan"),
                }
    return summary


def worst_pairs(records, pairs, method, k=10) -> list[dict]:
    """The ``k`` pairs with the largest mean error for ``method``, with what was done to them."""
    by_id = {p["id"]: p for p in pairs}
    rs = sorted((r for r in records if r["method"] == method), key=lambda r: -r["mean_error_s"])[:k]
    out = []
    for r in rs:
        m = by_id[r["pair"]]
        c = m["corruption"]
        out.append({
            "pair": r["pair"], "kind": m.get("kind", ""), "mean_error_ms": 1000 * r["mean_error_s"],
            "within_50ms": r["within_50ms"], "median_offset_ms": r["median_offset_ms"],
            "confidence": r["confidence"], "n_instruments": m["n_instruments"],
            "dropped": len(c["dropped_instruments"]), "crop_start": c["crop_start_s"] > 0,
            "crop_end": c["crop_end_s"] is not None, "tempo_factor": c["tempo_factor"],
            "tempo_changes": m["n_tempo_changes"], "soundfont": m["soundfont"], "snr_db": m["snr_db"],
            "audio_s": m["audio_duration_s"],
        })
    return out


def run(set_dir: Path = bench_set.DEFAULT_OUT, n: int | None = None, methods=tuple(METHODS), long: bool = True,
        log=print) -> dict:
    """The whole benchmark on an existing set; returns everything measured (JSON-able)."""
    pairs = bench_set.load_set(set_dir)[:n]
    work_dir = Path(tempfile.mkdtemp(prefix="earworm-bench-"))
    t0 = time.perf_counter()
    machine = _machine()  # the load average when the timing starts
    records = bench_pairs(pairs, methods, work_dir, log)
    log("mismatched pairs …")
    mismatched = bench_mismatch(pairs, [m for m in methods if m != "synctoolbox"], work_dir)
    results = {
        "set_identity": bench_set.set_identity(set_dir), "n_pairs": len(pairs),
        "audio_minutes": sum(p["audio_duration_s"] for p in pairs) / 60,
        "methods": list(methods), "summary": summarise(records, mismatched, methods),
        "worst": {m: worst_pairs(records, pairs, m) for m in methods if m.startswith("ours")},
        "records": records, "mismatched": mismatched, "machine": machine,
    }
    machine["load_avg_after_pairs"] = os.getloadavg()[0]
    if long:
        results.update(bench_long(set_dir, methods, work_dir, log))
    results["wall_s"] = time.perf_counter() - t0
    shutil.rmtree(work_dir, ignore_errors=True)
    return results


def bench_long(set_dir: Path, methods, work_dir: Path, log=print) -> dict:
    """The 3-minute pair (speed of every method) and the 20-minute pair (memory of ours)."""
    log("3-minute pair …")
    three = bench_set.make_long_pair(set_dir, LONG_DIR, 180.0, "long_3min", seed=3)
    out = {"three_minutes": {"pair": three["id"], "audio_s": three["audio_duration_s"],
                             **bench_three_minutes(three, methods, work_dir)}}
    log("20-minute pair (memory) …")
    twenty = bench_set.make_long_pair(set_dir, LONG_DIR, 1200.0, "long_20min", seed=20)
    out["twenty_minutes"] = {"pair": twenty["id"], "audio_s": twenty["audio_duration_s"]}
    shortest = min(bench_set.load_set(set_dir), key=lambda p: p["audio_duration_s"])
    for mode in ("pianoroll", "synth"):
        out["twenty_minutes"][f"ours/{mode}"] = bench_memory(twenty, mode, work_dir / f"mem_{mode}", warm_up=shortest)
    return out


DIGEST_MODULES = ("engine.align", "engine.dtw", "engine.features", "engine.align_features", "engine.align_solve",
                  "engine.align_midi_side", "engine.feature_stream", "engine.streaming", "engine.refine",
                  "engine.media", "engine.synth")


def _machine() -> dict:
    import hashlib
    import platform

    import importlib

    # Which engine was measured: a digest of its alignment modules as this process loaded them.
    h = hashlib.sha256()
    for name in DIGEST_MODULES:
        h.update(Path(importlib.import_module(name).__file__).read_bytes())
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_avg_at_start": os.getloadavg()[0], "engine_digest": h.hexdigest()[:12]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run the alignment benchmark on a made set.")
    parser.add_argument("--set", type=Path, default=bench_set.DEFAULT_OUT)
    parser.add_argument("--n", type=int, default=None, help="only the first N pairs")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--no-long", action="store_true", help="skip the 3- and 20-minute pairs")
    parser.add_argument("--json", type=Path, default=OUT_DIR / "align_results.json")
    args = parser.parse_args(argv)
    results = run(args.set, args.n, tuple(args.methods.split(",")), not args.no_long)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(json.dumps(results["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
