"""What each step of the aligner is worth: ours/synth on the alignment set with steps turned off.

``python -m tests.benchmarks.ablate_align [--set data/bench/align] [--n N]``

Every variant is an :class:`engine.align.AlignParams` setting; all share one feature cache (so
each pair's features are computed once), and each variant's parameters key its own cached
alignments. Scored as :mod:`tests.benchmarks.bench_align` scores accuracy and confidence (onset
error clipped at 0.5 s, pooled over notes; ROC AUC of the true pairs against recording i with
MIDI i+1). Writes ``tests/benchmarks/out/align_ablation.json`` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.benchmarks import make_alignment_set as bench_set
from tests.benchmarks.bench_align import OUT_DIR, TIMGM6MB

VARIANTS = {
    "chroma DTW only (no note-level pass)": dict(refine_onsets=False),
    "note-level pass, every instrument kept": dict(presence_threshold=0.0),
    "one fine DTW pass": dict(fine_passes=1),
    "no final one-frame snap": dict(snap_frames=0),
    "gully 0.1 (was the default)": dict(gully=0.1),
    "all steps (the defaults)": dict(),
}


def run(set_dir: Path = bench_set.DEFAULT_OUT, n: int | None = None, log=print) -> dict:
    from engine import media, synthetic
    from engine.align import AlignParams, align
    from sklearn.metrics import roc_auc_score

    pairs = bench_set.load_set(set_dir)[:n]
    os.environ["EARWORM_CACHE_DIR"] = tempfile.mkdtemp(prefix="earworm-ablation-")
    out = {}
    for name, overrides in VARIANTS.items():
        params = AlignParams(soundfont=TIMGM6MB, **overrides)
        t0, errors, good, bad = time.perf_counter(), [], [], []
        for k, meta in enumerate(pairs):
            result = align(meta["midi_path"], meta["audio_path"], params)
            warp_midi_s, warp_audio_s = bench_set.load_truth(meta)
            score = synthetic.onset_errors(media.load_midi(meta["midi_path"]), warp_midi_s, warp_audio_s,
                                           result.midi_to_audio, meta["audio_duration_s"])
            errors.append(score["errors_s"])
            good.append(result.confidence)
            other = pairs[(k + 1) % len(pairs)]
            bad.append(align(other["midi_path"], meta["audio_path"], params).confidence)
        e = np.concatenate(errors)
        out[name] = {"params": overrides, "mean_error_ms": 1000 * float(e.mean()),
                     "median_error_ms": 1000 * float(np.median(e)), "within_50ms": float(np.mean(e <= 0.05)),
                     "within_100ms": float(np.mean(e <= 0.1)),
                     "roc_auc": float(roc_auc_score(np.r_[np.ones(len(good)), np.zeros(len(bad))], np.r_[good, bad])),
                     "seconds": time.perf_counter() - t0}
        r = out[name]
        log(f"{name:40s} mean {r['mean_error_ms']:5.1f} ms, median {r['median_error_ms']:4.1f} ms, "
            f"≤ 50 ms {100 * r['within_50ms']:.1f} %, ≤ 100 ms {100 * r['within_100ms']:.1f} %, AUC {r['roc_auc']:.3f}")
    return {"n_pairs": len(pairs), "variants": out, "load_avg": os.getloadavg()[0]}


def markdown(results: dict) -> str:
    lines = ["| variant | mean error (ms) | median (ms) | ≤ 50 ms | ≤ 100 ms | ROC AUC |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in results["variants"].items():
        lines.append(f"| {name} | {r['mean_error_ms']:.1f} | {r['median_error_ms']:.1f} | {100 * r['within_50ms']:.1f} % | "
                     f"{100 * r['within_100ms']:.1f} % | {r['roc_auc']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Ablation of the aligner's steps on the alignment set.")
    parser.add_argument("--set", type=Path, default=bench_set.DEFAULT_OUT)
    parser.add_argument("--n", type=int, default=None, help="only the first N pairs")
    args = parser.parse_args(argv)
    results = run(args.set, args.n)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "align_ablation.json").write_text(json.dumps(results, indent=1))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
