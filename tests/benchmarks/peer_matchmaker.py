"""pymatchmaker's OLTW (Arzt) on the follower benchmark's streams — run in pymatchmaker's own venv.

``<pmm-venv>/bin/python tests/benchmarks/peer_matchmaker.py REQUEST.json RESULT.json``

pymatchmaker (pip ``pymatchmaker``, 0.3.0) pins numpy 1.26 and cannot share the project's venv
(numpy 2.x), so :mod:`tests.benchmarks.bench_follow` makes a separate venv under data/peers/ and
calls this script there. It imports nothing from the project.

What it runs, as pymatchmaker's ``Matchmaker`` class does for ``input_type="audio",
method="arzt"`` with its defaults (44.1 kHz, 30 frames/s, hop 1470, chroma from
``librosa.feature.chroma_stft`` with ``center=False``, n_fft = 2 hops, max-normalised; window
10 s, step size 3, start window 0.1 s, Manhattan distance): reference features from the MIDI
*synthesized by the benchmark* (the same reference audio our follower gets, instead of
partitura's score synthesis, so both see the same reference), live features frame by frame from
the recording (``center=False`` chroma is causal, so computing all frames at once equals
streaming them), then ``OnlineTimeWarpingArztFrame.step`` per live frame. Reported position:
the reference frame index ``_current_frame``, stamped, like ours, with its window's end time.

REQUEST.json: ``{"pairs": [{"id", "reference_wav", "recording"}, ...]}``. RESULT.json:
``{"pairs": {id: {"audio_time": [...], "midi_time": [...], "compute_ms": [...]}}, "config": ...}``
with one entry per live frame (every 1/30 s); ``compute_ms`` is the step time plus the frame's
share of the feature time.
"""
from __future__ import annotations

import json
import sys
import time

import librosa
import numpy as np
from matchmaker.dp.oltw_arzt import OnlineTimeWarpingArztFrame
from matchmaker.features.audio import ChromagramProcessor

SR = 44100
FRAME_RATE = 30
HOP = SR // FRAME_RATE
CONFIG = {"sample_rate": SR, "frame_rate": FRAME_RATE, "hop_length": HOP, "window_size_s": 10, "step_size": 3,
          "start_window_size_s": 0.1, "features": "ChromagramProcessor (librosa chroma_stft, center=False)",
          "distance": "Manhattan (default)"}


def features(y: np.ndarray) -> np.ndarray:
    processor = ChromagramProcessor(sample_rate=SR, hop_length=HOP)
    padded = np.pad(y.astype(np.float32), (HOP, 0))  # as matchmaker's compute_features_from_audio
    feats, _ = processor((padded, 0.0))
    return feats


def run_pair(reference_wav: str, recording: str) -> dict:
    ref_y, _ = librosa.load(reference_wav, sr=SR)
    live_y, _ = librosa.load(recording, sr=SR)
    X = features(ref_y)
    t0 = time.perf_counter()
    Y = features(live_y)
    feature_ms = (time.perf_counter() - t0) * 1000.0 / max(len(Y), 1)
    follower = OnlineTimeWarpingArztFrame(X, np.arange(len(X), dtype=np.float32), window_size=10, step_size=3,
                                          start_window_size=0.1, frame_rate=FRAME_RATE,
                                          ref_frame_to_beat=np.arange(len(X), dtype=np.float64))
    follower.reset()
    audio_t, midi_t, compute = [], [], []
    for k in range(len(Y)):
        t0 = time.perf_counter()
        follower.step(Y[k:k + 1])
        compute.append((time.perf_counter() - t0) * 1000.0 + feature_ms)
        audio_t.append((k + 1) * HOP / SR)
        midi_t.append((follower._current_frame + 1) * HOP / SR)
    return {"audio_time": audio_t, "midi_time": midi_t, "compute_ms": compute}


def main(argv) -> int:
    request = json.loads(open(argv[1]).read())
    out = {"config": CONFIG, "pairs": {}}
    for pair in request["pairs"]:
        try:
            out["pairs"][pair["id"]] = run_pair(pair["reference_wav"], pair["recording"])
        except Exception as exc:  # report and go on: one pair must not sink the comparison
            out["pairs"][pair["id"]] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"pymatchmaker: {pair['id']}", file=sys.stderr, flush=True)
    with open(argv[2], "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
