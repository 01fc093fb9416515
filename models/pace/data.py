"""Build the pace classifier's data set: songs with known tempo and meter → audio → features.

``python -m models.pace.data`` writes ``data/pace/features/<song_id>.npz`` (log-mel dB as
float16 and the onset envelope, exactly what :func:`engine.tempo.analyze` computes at run time)
and ``data/pace/index.json`` (one record per song: source, meter, beat tempo, implied paces,
soundfont, split, the tempogram candidates). Everything is offline and seeded: the same command
makes the same data. A song is seeded by its id and each source's draw keeps its order, so raising
``COUNTS`` keeps every earlier song (and its split) and adds new ones; songs already in the index
with their features on disk are read back, not rendered again (``n_reused`` in the index), as
long as the earlier index has the same ``DATA_VERSION`` and ``SEED``.

Splits are by song (a tune, chorale or generated groove is in exactly one split), drawn per
source so that every source is represented in the held-out test split.

``python -m models.pace.data --choice`` makes a second, separate group in ``data/pace/choice/``:
the songs each source's draw yields *after* ``COUNTS`` (``CHOICE_COUNTS`` more of each, as many
as the corpus has), all in split ``"choice"``. They are never trained on, never used to pick an
epoch or a ranking and never in the test split: they exist to choose between finished models
(:mod:`models.pace.choice`) with more songs than the validation split holds.
"""
from __future__ import annotations

import json
import os
import time
import zlib
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "data" / "pace"
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2",
              "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
# How many songs of each source; the test split is TEST_FRACTION of each.
COUNTS = {"ryans": 900, "oneills": 200, "essen": 150, "bach": 250, "groove": 900}
GROOVE_METERS = {"4/4": 0.3, "3/4": 0.2, "2/4": 0.1, "2/2": 0.05, "6/8": 0.15, "12/8": 0.12, "9/8": 0.08}
TEST_FRACTION = 0.2
# The model-choice group: how many songs of each source after COUNTS (the corpus may hold fewer;
# O'Neill's first three books are used up by COUNTS).
CHOICE_COUNTS = {"ryans": 200, "oneills": 0, "essen": 150, "bach": 200, "groove": 300}
CHOICE_DIR = DATA_DIR / "choice"
SEED = 7
# Bump when the songs, their rendering or the stored analysis change: a build reuses an earlier
# build's songs only when its index carries the same DATA_VERSION and SEED.
DATA_VERSION = "pace-data-3"


def _seed_of(text: str) -> int:
    return zlib.crc32(f"{SEED}:{text}".encode())


def is_validation(song_id: str, fraction: float) -> bool:
    """Whether a training-split song is one of the validation songs (kept out of training)."""
    return (_seed_of(song_id + ":val") % 1000) / 1000 < fraction


def corpus_songs(counts=COUNTS, after=None):
    """Yield (Song, split) from the music21 corpus, then generated grooves (seeded).

    With ``after`` (songs per source, e.g. ``COUNTS``): skip that many songs of each source's
    draw, then yield the next ``counts`` of them, all with split ``"choice"``.
    """
    from music21 import corpus

    from models.pace.songs import Meter, groove, score_to_song

    paths = [str(p) for p in corpus.getCorePaths()]
    rng = np.random.default_rng(SEED)

    after = after or {}

    def split_of(song_id):
        if after:
            return "choice"
        return "test" if (_seed_of(song_id) % 1000) / 1000 < TEST_FRACTION else "train"

    def take(source, scores, n):
        skip, made, seen = after.get(source, 0), 0, set()
        if n <= 0:
            return
        for song_id, get_score in scores:
            if made >= skip + n:
                return
            if made >= skip and song_id in seen:
                continue  # the same piece in another file (bwv281.krn and .mxl): not a new song
            try:
                song = score_to_song(get_score(), song_id, source)
            except Exception:  # a tune music21 cannot read: skip it, the corpus is large
                continue
            if song is not None:
                made += 1
                seen.add(song_id)
                if made > skip:
                    yield song, split_of(song_id)

    ryans = sorted(p for p in paths if "/ryansMammoth/" in p)
    rng.shuffle(ryans)
    yield from take("ryans", ((f"ryans-{Path(p).stem}", lambda p=p: corpus.parse(p)) for p in ryans), counts["ryans"])
    bach = sorted(p for p in paths if "/bach/bwv" in p)
    rng.shuffle(bach)
    yield from take("bach", ((f"bach-{Path(p).stem}", lambda p=p: corpus.parse(p)) for p in bach), counts["bach"])
    for source, files in (("oneills", sorted(p for p in paths if "/oneills1850/" in p)[:3]),
                          ("essen", sorted(p for p in paths if p.endswith("essenFolksong/kinder0.abc")))):
        def scores(files=files, source=source):
            for f in files:
                opus = corpus.parse(f)
                for i, score in enumerate(opus.scores):
                    yield f"{source}-{Path(f).stem}-{i}", (lambda s=score: s)
        yield from take(source, scores(), counts[source])
    meters = list(GROOVE_METERS)
    first_groove = after.get("groove", 0)
    for i in range(first_groove, first_groove + counts["groove"]):
        song_id = f"groove-{i:04d}"
        g_rng = np.random.default_rng(_seed_of(song_id))
        meter = Meter(str(g_rng.choice(meters, p=list(GROOVE_METERS.values()))))
        yield groove(song_id, meter, g_rng), split_of(song_id)


def render_song(job):
    """Worker: perform, synthesize, add noise, analyze; write the npz; return (index record, reused)."""
    from engine import tempo
    from engine.media import synthesize
    from models.pace.songs import arrange, perform, sample_beat_bpm

    song, split, out_dir, earlier = job
    if (earlier is not None and (earlier["split"], earlier["source"], earlier["meter"]) == (split, song.source, song.meter.ratio)
            and (out_dir / f"{song.song_id}.npz").exists()):
        return earlier, True  # made by an earlier (smaller) build: the render is seeded by the song id
    rng = np.random.default_rng(_seed_of(song.song_id + ":render"))
    if song.source != "groove":
        arrange(song, rng)
    beat_bpm = sample_beat_bpm(song.meter, rng)
    pm = perform(song, beat_bpm, rng)
    soundfont = SOUNDFONTS[int(rng.integers(len(SOUNDFONTS)))]
    y = synthesize(pm, sr=tempo.SR, soundfont=soundfont)
    peak = float(np.abs(y).max())
    if peak <= 0:
        return None, False
    y = y / peak * 0.5
    if rng.random() < 0.3:  # a little pink-ish noise: room tone, tape
        noise = np.cumsum(rng.normal(size=y.shape)).astype(np.float32)
        noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
        snr_db = rng.uniform(20, 35)
        noise *= np.sqrt(np.mean(y ** 2) / max(np.mean(noise ** 2), 1e-12)) * 10 ** (-snr_db / 20)
        y = (y + noise).astype(np.float32)
    features = tempo.analyze(y)
    candidates = tempo.tempo_candidates(features)
    paces = tempo.metrical_paces(beat_bpm, song.meter.beats_per_bar, song.meter.beat_division)
    np.savez(out_dir / f"{song.song_id}.npz", log_mel_db=features.log_mel_db.astype(np.float16),
             onset_envelope=features.onset_envelope)
    return {"song_id": song.song_id, "source": song.source, "split": split, "meter": song.meter.ratio,
            "beats_per_bar": song.meter.beats_per_bar, "beat_division": song.meter.beat_division,
            "beat_bpm": beat_bpm, "paces": paces.tolist(), "soundfont": Path(soundfont).name,
            "duration_s": features.duration_s,
            "candidates": [[c.bpm, c.salience] for c in candidates]}, False


def build(out_dir: Path = DATA_DIR, workers: int = 2, counts=COUNTS, after=None) -> list[dict]:
    """Make the whole data set (see the module docstring); returns the index records. With
    ``after``, the songs after those (the model-choice group: ``build(CHOICE_DIR, counts=CHOICE_COUNTS,
    after=COUNTS)``)."""
    feature_dir = out_dir / "features"
    feature_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    index_path = out_dir / "index.json"
    earlier = {}
    if index_path.exists():
        old = load_index(out_dir)
        if (old.get("data_version"), old.get("seed")) == (DATA_VERSION, SEED):
            earlier = {r["song_id"]: r for r in old["records"]}
    records, n_reused = [], 0
    jobs = ((song, split, feature_dir, earlier.get(song.song_id)) for song, split in corpus_songs(counts, after))
    with get_context("fork").Pool(workers) as pool:
        for i, (rec, reused) in enumerate(pool.imap(render_song, jobs, chunksize=2)):
            if rec is not None:
                records.append(rec)
                n_reused += reused
            if (i + 1) % 50 == 0:
                print(f"  {i + 1} songs ({time.time() - t0:.0f} s)", flush=True)
    # seconds: this run's; songs an earlier build made (n_reused) cost it only their reading.
    info = {"records": records, "seconds": time.time() - t0, "n_reused": n_reused, "counts": counts, "seed": SEED,
            "data_version": DATA_VERSION, "after": after}
    index_path.write_text(json.dumps(info, indent=0))
    print(f"{len(records)} songs in {info['seconds']:.0f} s → {out_dir}")
    return records


def load_index(out_dir: Path | None = None) -> dict:
    """The index written by :func:`build`."""
    return json.loads(((out_dir or DATA_DIR) / "index.json").read_text())


def load_features(song_id: str, out_dir: Path | None = None):
    """A song's :class:`engine.tempo.TempoFeatures` from the data set."""
    from engine.tempo import TempoFeatures

    with np.load((out_dir or DATA_DIR) / "features" / f"{song_id}.npz", allow_pickle=False) as z:
        return TempoFeatures(log_mel_db=z["log_mel_db"].astype(np.float32), onset_envelope=z["onset_envelope"])


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--choice", action="store_true",
                    help=f"make the model-choice group in {CHOICE_DIR.relative_to(ROOT)}")
    args = ap.parse_args()
    workers = int(os.environ.get("EARWORM_WORKERS", "2"))
    if args.choice:
        build(CHOICE_DIR, workers, counts=CHOICE_COUNTS, after=COUNTS)
    else:
        build(workers=workers)
