"""Build the embedding models' data: pieces as MIDI, performed renditions, and their true warps.

``python -m models.embed.data`` (which makes ``data/bench/match`` first if it is missing) writes
``data/embed/``:

- ``midi/<piece>.mid``: the piece as the library holds it;
- ``features/<piece>.npz``: ``roll`` (the MIDI's piano-roll frames, :func:`engine.embed_features.midi_frames`)
  and, per rendition ``k``, ``audio_k`` (:func:`engine.embed_features.audio_frames` of the
  rendered recording, float16), ``warp_midi_s_k`` / ``warp_audio_s_k`` (the true warp's knots,
  MIDI seconds → recording seconds);
- ``index.json``: one record per piece (id, work, kind, composer, split, durations).

Splits are by piece. **Test** = every work of the library-matching benchmark (its
``bench`` and ``calib`` sets, the same MIDI files), so the matching cascade is measured on
pieces the embeddings never saw. **Train** = other music21 corpus works — Bach chorales,
Palestrina mass movements, Monteverdi madrigals, trecento pieces, fiddle tunes, quartet movements —
minus every work in the matching benchmark's candidate pool and every work whose melody opens like
a test piece's (the corpus holds many harmonisations of one chorale tune).

Renditions are made the way the alignment benchmark makes recordings (Raffel & Ellis
corruption: tempo curve, here 0.7–1.4× globally; crops; dropped instruments; programs ±1;
velocities), after drawing fresh GM programs for the parts, rendered through one of three
soundfonts, with pink noise at 15–40 dB SNR. Seeded: the same command makes the same data.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
import zlib
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from engine import embed_features as ef

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "data" / "embed"
MATCH_DIR = ROOT / "data" / "bench" / "match"
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2",
              "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
N_RENDITIONS = 2
TRAIN_MAX_S = 90.0
SEED = 11
# Training works per corpus folder (drawn with SEED from what the test pool leaves).
# New folders go at the end: each folder's draw is then the same as before, so a larger count
# keeps the earlier pieces and adds to them.
TRAIN_COUNTS = {"bach/bwv": 250, "palestrina/": 350, "monteverdi/": 50, "trecento/": 70,
                "ryansMammoth/": 150, "beethoven/": 6, "mozart/": 10, "haydn/": 4, "oneills1850/": 20}


def _seed_of(text: str) -> int:
    return zlib.crc32(f"{SEED}:{text}".encode())


def composer_of(work: str) -> str:
    """The composer (or collection) of a music21 corpus path: its first folder."""
    return work.split("/", 1)[0]


def test_pieces(match_dir: Path = MATCH_DIR) -> list[dict]:
    """The matching benchmark's works with a MIDI file (bench and calib sets)."""
    manifest_path = match_dir / "manifest.json"
    if not manifest_path.exists():
        from tests.benchmarks import make_match_set

        print(f"{manifest_path}: missing; making the matching benchmark first (its MIDIs are the test pieces)")
        make_match_set.make_match_set(match_dir)
    manifest = json.loads(manifest_path.read_text())
    out = []
    for set_name, info in manifest["sets"].items():
        for work_id in info["works"]:
            meta = json.loads((match_dir / "pairs" / f"{work_id}.json").read_text())
            if not meta.get("midi"):
                continue  # a recording-only work has no MIDI in the library
            out.append({"id": work_id, "work": meta["recipe"]["work"], "bars": meta["recipe"]["bars"],
                        "kind": meta.get("kind", ""), "split": "test", "match_set": set_name,
                        "midi_source": str(match_dir / "pairs" / meta["midi"]), "melody": meta.get("melody", [])})
    return out


def train_works(exclude_works: set) -> list[dict]:
    """Training work specs from the corpus, none of them in ``exclude_works``."""
    from music21 import corpus

    from tests.benchmarks import make_alignment_set as align_set

    paths = sorted(str(p).split("/corpus/")[-1] for p in corpus.getPaths())
    rng = np.random.default_rng(SEED)
    out = []
    for prefix, n in TRAIN_COUNTS.items():
        found = [p for p in paths if p.startswith(prefix) and p not in exclude_works
                 and not any(x in p for x in ("_old", "_rpt"))]
        for p in rng.permutation(found)[:n]:
            out.append({"id": align_set._slug(p, None), "work": str(p), "bars": None,
                        "kind": prefix.strip("/"), "split": "train"})
    return [out[i] for i in rng.permutation(len(out))]  # corpora mixed: a partial build is still varied


def _piece_midi(spec: dict, rng):
    """The piece's library MIDI (test: the matching benchmark's file; train: converted here)."""
    from engine import media, synthetic
    from tests.benchmarks import make_match_set

    if spec.get("midi_source"):
        return media.load_midi(spec["midi_source"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from music21 import corpus

        score = corpus.parse(spec["work"])
        if hasattr(score, "scores"):
            score = score.scores[0]
        midi = synthetic.music21_to_pretty_midi(score, rng=rng)
    midi = synthetic.truncate_midi(midi, TRAIN_MAX_S)
    if sum(len(i.notes) for i in midi.instruments) < 20 or midi.get_end_time() < 10.0:
        raise ValueError(f"too little music ({midi.get_end_time():.1f} s)")
    return make_match_set.strip_tail(midi)


def _rendition(midi, rng):
    """One performed, rendered, noisy recording's audio frames and its true warp."""
    import copy

    from engine import synthetic

    varied = copy.deepcopy(midi)
    programs = synthetic.gm_programs_for_parts([inst.name for inst in varied.instruments], rng)
    for inst, program in zip(varied.instruments, programs):
        if not inst.is_drum:
            inst.program = int(program)
    params = synthetic.CorruptionParams(tempo_factor_range=(0.7, 1.4), drop_instrument_prob=0.2)
    corrupted = synthetic.corrupt_midi(varied, rng, params)
    from engine.media import synthesize

    y = synthesize(corrupted.midi, sr=ef.SR, soundfont=SOUNDFONTS[int(rng.integers(len(SOUNDFONTS)))])
    start = int(round(corrupted.crop_start_s * ef.SR))
    stop = len(y) if corrupted.crop_end_s is None else int(round(corrupted.crop_end_s * ef.SR))
    y = synthetic.add_noise(y[start:stop], float(rng.uniform(15, 40)), rng)
    y = y / max(float(np.abs(y).max()), 1e-9) * float(rng.uniform(0.1, 0.9))
    return ef.audio_frames(y), corrupted.warp_midi_s, corrupted.warp_audio_s


def make_piece(job):
    """Worker: one piece → its MIDI file, features and renditions; returns (record, error, reused)."""
    spec, out_dir = job
    rng = np.random.default_rng(_seed_of(spec["id"]))
    try:
        from engine import media

        midi_path = out_dir / "midi" / f"{spec['id']}.mid"
        feature_path = out_dir / "features" / f"{spec['id']}.npz"
        if midi_path.exists() and feature_path.exists():  # made by an earlier (interrupted or smaller) run
            return _record(spec, media.load_midi(midi_path)), None, True
        midi = _piece_midi(spec, rng)
        midi.write(str(midi_path))
        midi = media.load_midi(midi_path)  # the file's own (tick-rounded) times
        arrays = {"roll": ef.midi_frames(midi).astype(np.float16)}
        for k in range(N_RENDITIONS):
            frames, warp_midi_s, warp_audio_s = _rendition(midi, rng)
            arrays[f"audio_{k}"] = frames.astype(np.float16)
            arrays[f"warp_midi_s_{k}"] = warp_midi_s
            arrays[f"warp_audio_s_{k}"] = warp_audio_s
        np.savez(feature_path, **arrays)
    except Exception as exc:  # unconvertible or too short: the corpus is large, skip it
        return None, f"{spec['work']}: {type(exc).__name__}: {str(exc)[:100]}", False
    return _record(spec, midi), None, False


def _record(spec: dict, midi) -> dict:
    from tests.benchmarks import make_match_set

    record = {k: v for k, v in spec.items() if k not in ("melody", "midi_source")}
    record.update(composer=composer_of(spec["work"]), midi_duration_s=round(midi.get_end_time(), 3),
                  melody=spec.get("melody") or make_match_set.melody_lines(midi))
    return record


def build(out_dir: Path = DATA_DIR, workers: int = 2, limit: int | None = None) -> dict:
    """Make the data set (see the module docstring); returns the index."""
    from tests.benchmarks import make_match_set

    for sub in ("midi", "features"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tests = test_pieces()
    pool_works = {w["work"] for w in make_match_set.work_pool(0)}
    trains = train_works(pool_works | {t["work"] for t in tests})
    specs = (tests + trains)[:limit] if limit else tests + trains
    records, skipped, n_reused = [], [], 0
    with get_context("fork").Pool(workers) as pool:
        for i, (rec, err, reused) in enumerate(pool.imap(make_piece, ((s, out_dir) for s in specs), chunksize=1)):
            n_reused += reused
            if err:
                skipped.append(err)
            else:
                records.append(rec)
            if (i + 1) % 50 == 0:
                print(f"  {i + 1}/{len(specs)} pieces ({time.time() - t0:.0f} s)", flush=True)
    # A training piece whose melody opens like a test piece's would leak the test set into training.
    test_melodies = {r["id"]: r["melody"] for r in records if r["split"] == "test"}
    kept = []
    for rec in records:
        twin = rec["split"] == "train" and make_match_set.same_tune_as(rec["melody"], test_melodies)
        if twin:
            skipped.append(f"{rec['work']}: same tune as test piece {twin}")
            continue
        kept.append(rec)
    # seconds: this run's; pieces an earlier run made (n_reused) cost it only their reading.
    index = {"records": kept, "skipped": skipped, "seconds": round(time.time() - t0, 1), "n_reused": n_reused,
             "seed": SEED, "feature_version": ef.FEATURE_VERSION, "n_renditions": N_RENDITIONS}
    (out_dir / "index.json").write_text(json.dumps(index, indent=0))
    n_test = sum(r["split"] == "test" for r in kept)
    print(f"{len(kept)} pieces ({len(kept) - n_test} train, {n_test} test), {len(skipped)} skipped, "
          f"{index['seconds']:.0f} s → {out_dir}")
    return index


def load_index(out_dir: Path = DATA_DIR) -> dict:
    """The index written by :func:`build`."""
    path = Path(out_dir) / "index.json"
    if not path.exists():
        raise SystemExit(f"{path}: missing; build the data first: python -m models.embed.data")
    return json.loads(path.read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N pieces (smoke test)")
    args = parser.parse_args(argv)
    build(args.out, args.workers, args.limit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
