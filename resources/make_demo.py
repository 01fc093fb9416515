"""Make the bundled demo pair: resources/demo/demo.mid and demo.mp3 (``python -m resources.make_demo``).

The MIDI is the first 50 bars of Scott Joplin's *Maple Leaf Rag* (1899, public domain) from
music21's corpus, converted with :func:`engine.synthetic.music21_to_pretty_midi` (acoustic grand
piano, program 0). The "recording" is the same music played differently, made with
:mod:`engine.synthetic`: a smooth random tempo curve (slower overall), piano program shifted by
one, velocities rescaled, rendered with another soundfont (MuseScore General Lite) than the
aligner's synthesis uses, with quiet pink noise, encoded as mp3. Nothing is cropped or dropped.
The true MIDI→recording warp is written to demo_truth.json so tests can check an alignment.

Deterministic: fixed seed, fixed inputs; running it again rewrites byte-identical MIDI and truth
files (the mp3 depends on the FluidSynth and LAME builds).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engine import media, synthetic

DEMO_DIR = Path(__file__).resolve().parent / "demo"
SEED = 20160320  # ICASSP 2016; any fixed number works
WORK = "joplin/maple_leaf_rag"
BARS = (0, 49)  # pickup + strains A, B and A again, without repeats: ~64 s at the marked tempo
RECORDING_SOUNDFONT = "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"
SR = 44100
SNR_DB = 35.0
TRUTH_STEP_S = 0.1
# The demo's corruption: a clearly slower, breathing tempo and another piano; nothing cut.
DEMO_PARAMS = synthetic.CorruptionParams(
    tempo_factor_range=(0.84, 0.90), crop_start_prob=0.0, crop_end_prob=0.0, drop_instrument_prob=0.0,
)


def make_demo(out_dir: Path = DEMO_DIR, soundfont: str = RECORDING_SOUNDFONT) -> dict:
    """Write demo.mid, demo.mp3 and demo_truth.json into ``out_dir``; return a summary."""
    from music21 import corpus

    out_dir.mkdir(parents=True, exist_ok=True)
    score = corpus.parse(WORK).measures(*BARS)
    midi = synthetic.music21_to_pretty_midi(score, programs=[0, 0])
    for inst, name in zip(midi.instruments, ("Piano (right hand)", "Piano (left hand)")):
        inst.name = name
    midi_path = out_dir / "demo.mid"
    midi.write(str(midi_path))
    midi = media.load_midi(midi_path)  # the truth must refer to the file's times (tick-rounded)

    rng = np.random.default_rng(SEED)
    corrupted = synthetic.corrupt_midi(midi, rng, DEMO_PARAMS)
    audio_path = out_dir / "demo.mp3"
    y = synthetic.render_recording(corrupted, audio_path, soundfont=soundfont, sr=SR, snr_db=SNR_DB, rng=rng,
                                   compression_level=0.4)
    # The truth, sampled every 0.1 s: the warp is smooth, so linear interpolation between these
    # samples is within 0.1 ms of the exact piecewise-linear warp.
    end_s = midi.get_end_time() + 1.0
    t = np.arange(0.0, end_s + TRUTH_STEP_S, TRUTH_STEP_S)
    truth = {
        "description": "True warp from demo.mid time to demo.mp3 time (seconds), piecewise linear.",
        "midi_s": [round(float(v), 5) for v in t],
        "audio_s": [round(float(v), 5) for v in corrupted.midi_to_audio(t)],
        "tempo_factor": round(corrupted.info["tempo_factor"], 5),
        "program_changes": corrupted.info["program_changes"],
        "seed": SEED,
        "soundfont": Path(soundfont).name,
        "sr": SR,
        "snr_db": SNR_DB,
    }
    lines = [f" {json.dumps(key)}: {json.dumps(value)}" for key, value in truth.items()]
    (out_dir / "demo_truth.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")
    return {
        "midi": str(midi_path), "midi_duration_s": round(midi.get_end_time(), 2),
        "audio": str(audio_path), "audio_duration_s": round(len(y) / SR, 2),
        "audio_bytes": audio_path.stat().st_size, "tempo_factor": truth["tempo_factor"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help="output folder (default: resources/demo)")
    parser.add_argument("--soundfont", default=RECORDING_SOUNDFONT, help="soundfont for the recording")
    args = parser.parse_args(argv)
    print(json.dumps(make_demo(args.out, args.soundfont), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
