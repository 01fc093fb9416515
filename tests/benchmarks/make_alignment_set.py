"""Make the synthetic alignment benchmark: MIDI/recording pairs with their true alignment.

``python -m tests.benchmarks.make_alignment_set [--out data/bench/align] [--n 64] [--seed 0]``

Each pair comes from a music21 corpus work converted to MIDI (varied GM programs per part, some
with extra tempo changes written into the tempo map), truncated to ``max_duration_s``. The
recording is that MIDI corrupted the way Raffel & Ellis (ICASSP 2016) did
(:func:`engine.synthetic.corrupt_midi`: smooth tempo curve, crops, dropped instruments, programs
±1, velocities), rendered with a different soundfont than the aligner's synthesis
(MuseScore General Lite or FluidR3 GM; the aligner's synth mode and the pretty_midi recipe use
TimGM6mb), with pink noise at 20–40 dB SNR, encoded as mp3.

Files per pair ``<id>`` in the output folder:

- ``<id>.mid``: the original MIDI (what the aligner is given);
- ``<id>.mp3``: the recording;
- ``<id>.truth.npz``: ``warp_midi_s``, ``warp_audio_s`` (the true warp's knots), ``crop_start_s``,
  ``crop_end_s`` (NaN if the end was kept);
- ``<id>.json``: the recipe (work, bars, seed, soundfont, SNR), what the corruption drew,
  durations, note and instrument counts;

and ``manifest.json`` listing the pairs and what they were made with (``made_with``: the
FluidSynth, libsndfile, numpy and numba versions and the soundfonts' digests). Idempotent: a pair
whose files exist with the same recipe is not made again. Everything is seeded, so the same
command makes the same *pairs*, but their sound depends on those unpinned components: a set made
on another machine may sound different (the follower scored 87.3 → 86.2 % within 100 ms on the
same pairs made again). It also depends on what was rendered before it in the same process:
:mod:`engine.synth` keeps one FluidSynth per thread, and its state carries from one rendering to
the next (the same MIDI rendered twice in one process differs by up to ~0.003 in amplitude with
the recordings' soundfonts, ~0.02 with TimGM6mb, even after a ``system_reset``). A set made from
scratch in one run is the same bytes on the same machine (checked: the whole set made again gave
the same :func:`set_digest`); a set completed over several runs is not. :func:`set_identity`
tells whether a set is the one docs/BENCHMARKS.md's follower figures were measured on (its
digest, :func:`set_digest`, against ``align_set.sha256`` here); the benchmarks write it into
their JSON, and the follower's prints it.

The functions are reusable (the matching benchmark makes ≥150 pairs with them):
:func:`candidate_works` lists works, :func:`make_pair` makes one pair from any PrettyMIDI.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from engine import media, synthetic

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "data" / "bench" / "align"
RECORDING_SOUNDFONTS = (
    "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
)
RECIPE_VERSION = 1
# The digest (set_digest) of the set docs/BENCHMARKS.md's follower figures were measured on.
MEASURED_SET_DIGEST = Path(__file__).with_name("align_set.sha256")

# Curated works, beyond the Bach chorales: (corpus path, bars or None, kind). Bars limit long
# movements before conversion (conversion time grows with the score); the MIDI is then cut at
# max_duration_s anyway.
CURATED = (
    ("joplin/maple_leaf_rag", (50, 84), "piano"),
    ("chopin/mazurka06-2.krn", None, "piano"),
    ("mozart/k545/movement1_exposition", None, "piano"),
    ("schumann_clara/polonaise_op1n1", None, "piano"),
    ("schumann_clara/polonaise_op1n3", None, "piano"),
    ("schumann_clara/opus17/movement3.xml", (1, 60), "trio"),
    ("schoenberg/opus19/movement2", None, "piano"),
    ("schoenberg/opus19/movement6", None, "piano"),
    ("cpebach/h186", (1, 60), "keyboard"),
    ("mozart/k155/movement1", (1, 50), "quartet"),
    ("mozart/k155/movement2", (1, 40), "quartet"),
    ("mozart/k156/movement1", (1, 60), "quartet"),
    ("mozart/k156/movement3", (1, 40), "quartet"),
    ("mozart/k458/movement1", (1, 60), "quartet"),
    ("mozart/k458/movement3", (1, 40), "quartet"),
    ("mozart/k80/movement1", (1, 40), "quartet"),
    ("mozart/k80/movement4", (1, 60), "quartet"),
    ("haydn/opus1no1/movement1", (1, 50), "quartet"),
    ("haydn/opus1no1/movement3", (1, 40), "quartet"),
    ("haydn/opus74no1/movement1", (1, 50), "quartet"),
    ("haydn/opus74no1/movement2", (1, 40), "quartet"),
    ("beethoven/opus18no1/movement2.mxl", (1, 30), "quartet"),
    ("beethoven/opus18no1/movement3.mxl", (1, 50), "quartet"),
    ("beethoven/opus59no1/movement1", (1, 40), "quartet"),
    ("beethoven/opus59no3/movement4", (1, 60), "quartet"),
    ("beethoven/opus74", (1, 40), "quartet"),
    ("schumann_robert/opus41no1/movement1", (1, 50), "quartet"),
    ("schumann_robert/opus41no1/movement3", (1, 40), "quartet"),
    ("corelli/opus3no1/1grave.xml", None, "trio sonata"),
    ("schubert/Lindenbaum.xml", (1, 40), "song"),
    ("schumann_robert/dichterliebe_no2.xml", None, "song"),
    # (schumann_robert/opus48no2 is Dichterliebe no. 2 again: a duplicate, so not used)
    ("mozart/k458/movement4", (1, 60), "quartet"),
    ("handel/rinaldo/Lascia_chio_pianga", None, "aria"),
    ("verdi/laDonnaEMobile", None, "aria"),
    ("weber/concertino_clarinet", (1, 60), "concertante"),
    ("beach/prayer_of_a_tired_child.musicxml", None, "song"),
    ("johnson_j_r/lift_every_voice", None, "song"),
    ("liliuokalani/aloha_oe", None, "song"),
    ("bach/bwv248.42-4", None, "cantata (12 parts)"),
    ("bach/bwv1.6", None, "chorale + horn"),
    ("monteverdi/madrigal.3.1.mxl", None, "madrigal"),
    ("monteverdi/madrigal.3.5.mxl", None, "madrigal"),
    ("monteverdi/madrigal.4.3.mxl", None, "madrigal"),
    ("monteverdi/madrigal.4.10.mxl", None, "madrigal"),
    ("monteverdi/madrigal.5.2.mxl", None, "madrigal"),
    ("luca/gloria", None, "mass"),
    ("lusitano/allor_che_ignuda", None, "madrigal"),
    ("ciconia/quod_jactatur", None, "motet"),
    ("josquin/milleRegrets.abc", None, "chanson"),
    ("josquin/adieuMesAmours.abc", None, "chanson"),
    ("palestrina/Agnus_01.krn", None, "mass"),
    ("palestrina/Kyrie_02.krn", None, "mass"),
    ("webern/webern_dormi_jesu_op_16_no_2", None, "canon"),
    ("essenFolksong/han1", None, "monophonic"),
    ("leadSheet/fosterBrownHair", None, "lead sheet"),
)


def candidate_works(n: int, seed: int = 0) -> list[dict]:
    """``n`` works: the curated list, then Bach chorales (and Monteverdi) drawn with ``seed``.

    Returns
    -------
    list of dict
        ``{"id", "work", "bars", "kind"}``; ids are stable slugs of the corpus path.
    """
    from music21 import corpus

    works = [{"work": w, "bars": b, "kind": k} for w, b, k in CURATED]
    paths = [str(p).split("/corpus/")[-1] for p in corpus.getPaths()]
    chorales = sorted(p for p in paths if p.startswith("bach/bwv") and p.endswith(".mxl"))
    madrigals = sorted(p for p in paths if p.startswith("monteverdi/") and p.endswith(".mxl") and "_old" not in p)
    used = {w["work"] for w in works}
    rng = np.random.default_rng(seed)
    # Chorales first (a quarter of the set), then alternate chorales and madrigals.
    pool = [p for p in rng.permutation(chorales) if p not in used]
    extra_madrigals = [p for p in rng.permutation(madrigals) if p not in used]
    n_chorales = max(16, n // 4)
    fill = [{"work": p, "bars": None, "kind": "chorale"} for p in pool[:n_chorales]]
    rest = [x for pair in zip(pool[n_chorales:], extra_madrigals) for x in pair] + pool[n_chorales + len(extra_madrigals):]
    fill += [{"work": p, "bars": None, "kind": "chorale" if p.startswith("bach") else "madrigal"} for p in rest]
    out = []
    for w in works + fill:
        w = dict(w, id=_slug(w["work"], w["bars"]))
        out.append(w)
    return out[:n] if n <= len(out) else out


def _slug(work: str, bars) -> str:
    base = work.rsplit(".", 1)[0] if work.endswith((".mxl", ".xml", ".krn", ".abc", ".musicxml")) else work
    slug = base.replace("/", "_").replace(".", "-").replace(" ", "")
    return slug + (f"_b{bars[0]}-{bars[1]}" if bars else "")


def work_to_midi(spec: dict, rng: np.random.Generator, max_duration_s: float, tempo_change_prob: float):
    """The MIDI for a work spec: converted, varied timbre, maybe tempo changes, truncated."""
    from music21 import corpus

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = corpus.parse(spec["work"])
        if hasattr(score, "scores"):  # an opus: its first piece
            score = score.scores[0]
        if spec.get("bars"):
            score = score.measures(*spec["bars"])
        midi = synthetic.music21_to_pretty_midi(score, rng=rng)
    tempo_changed = bool(rng.random() < tempo_change_prob)
    if tempo_changed:
        midi = synthetic.with_tempo_changes(midi, rng, n_changes=int(rng.integers(1, 4)))
    return synthetic.truncate_midi(midi, max_duration_s), tempo_changed


def make_pair(midi, pair_id: str, out_dir: Path, rng: np.random.Generator, soundfont: str, snr_db: float,
              params: synthetic.CorruptionParams = synthetic.CorruptionParams(), recipe: dict | None = None,
              sr: int = 22050) -> dict:
    """Write ``<pair_id>.mid/.mp3/.truth.npz/.json`` for one MIDI; return its metadata.

    The MIDI is written first and read back, so the truth refers to the file's own (tick-rounded)
    times. ``recipe`` is stored in the JSON for idempotency checks.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    midi_path = out_dir / f"{pair_id}.mid"
    midi.write(str(midi_path))
    midi = media.load_midi(midi_path)
    corrupted = synthetic.corrupt_midi(midi, rng, params)
    audio_path = out_dir / f"{pair_id}.mp3"
    y = synthetic.render_recording(corrupted, audio_path, soundfont=soundfont, sr=sr, snr_db=snr_db, rng=rng)
    np.savez(out_dir / f"{pair_id}.truth.npz", **corrupted.ground_truth())
    tempo_times, _ = midi.get_tempo_changes()
    meta = {
        "id": pair_id,
        "midi": midi_path.name,
        "audio": audio_path.name,
        "truth": f"{pair_id}.truth.npz",
        "recipe": recipe or {},
        "midi_duration_s": round(midi.get_end_time(), 4),
        "audio_duration_s": round(len(y) / sr, 4),
        "n_notes": sum(len(i.notes) for i in midi.instruments),
        "n_instruments": len(midi.instruments),
        "programs": [int(i.program) for i in midi.instruments],
        "n_tempo_changes": int(len(tempo_times) - 1),
        "soundfont": Path(soundfont).name,
        "snr_db": round(snr_db, 2),
        "corruption": {k: v for k, v in corrupted.info.items() if k != "params"},
        "corruption_params": corrupted.info["params"],
    }
    (out_dir / f"{pair_id}.json").write_text(json.dumps(meta, indent=1, default=_jsonable) + "\n")
    return meta


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(type(x))


def _stored_pair(out_dir: Path, pair_id: str) -> dict | None:
    """The stored metadata of a pair whose files all exist, else None."""
    out_dir = Path(out_dir)
    try:
        meta = json.loads((out_dir / f"{pair_id}.json").read_text())
    except (OSError, ValueError):
        return None
    files = (meta.get("midi"), meta.get("audio"), meta.get("truth"))
    return meta if all(f and (out_dir / f).is_file() for f in files) else None


def pair_is_current(out_dir: Path, pair_id: str, recipe: dict) -> dict | None:
    """The stored metadata when the pair's files exist and were made with ``recipe``, else None."""
    meta = _stored_pair(out_dir, pair_id)
    if meta is None or meta.get("recipe") != json.loads(json.dumps(recipe, default=_jsonable)):
        return None
    return meta


def make_set(out_dir: Path = DEFAULT_OUT, n_pairs: int = 64, seed: int = 0, max_duration_s: float = 100.0,
             tempo_change_prob: float = 0.3, snr_db_range=(20.0, 40.0), soundfonts=RECORDING_SOUNDFONTS,
             params: synthetic.CorruptionParams = synthetic.CorruptionParams(), log=print) -> list[dict]:
    """Make (or complete) a benchmark set of ``n_pairs`` pairs; return their metadata.

    Works that fail to convert are reported and replaced by the next candidates.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    candidates = candidate_works(n_pairs + 40, seed)
    pairs = []
    for k, spec in enumerate(candidates):
        if len(pairs) >= n_pairs:
            break
        index = len(pairs)
        pair_seed = int.from_bytes(hashlib.sha256(f"{seed}:{spec['id']}".encode()).digest()[:4], "little")
        recipe = {
            "version": RECIPE_VERSION, "work": spec["work"], "bars": spec["bars"], "seed": pair_seed,
            "soundfont": soundfonts[1 if index % 3 == 2 and len(soundfonts) > 1 else 0],  # 2/3 first, 1/3 second
            "max_duration_s": max_duration_s, "tempo_change_prob": tempo_change_prob,
            "snr_db_range": list(snr_db_range), "params": asdict(params),
        }
        meta = pair_is_current(out_dir, spec["id"], recipe) or _made_by_a_later_candidate(
            out_dir, spec, candidates[k + 1:])
        if meta is None:
            t0 = time.perf_counter()
            rng = np.random.default_rng(pair_seed)
            try:
                midi, tempo_changed = work_to_midi(spec, rng, max_duration_s, tempo_change_prob)
                if sum(len(i.notes) for i in midi.instruments) < 20 or midi.get_end_time() < 10.0:
                    raise ValueError(f"too little music ({midi.get_end_time():.1f} s)")
                snr_db = float(rng.uniform(*snr_db_range))
                meta = make_pair(midi, spec["id"], out_dir, rng, recipe["soundfont"], snr_db, params, recipe)
            except Exception as exc:  # a corpus file music21 cannot convert: skip it, say so
                log(f"skip {spec['work']}: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            meta.update(kind=spec["kind"], tempo_changes_added=tempo_changed)
            (out_dir / f"{spec['id']}.json").write_text(json.dumps(meta, indent=1, default=_jsonable) + "\n")
            log(f"[{index + 1:3d}/{n_pairs}] {spec['id']:45s} {meta['audio_duration_s']:6.1f} s "
                f"{meta['n_instruments']:2d} inst  {time.perf_counter() - t0:5.1f} s")
        pairs.append(meta)
    manifest = {"seed": seed, "n_pairs": len(pairs), "pairs": [p["id"] for p in pairs],
                "max_duration_s": max_duration_s, "soundfonts": [Path(s).name for s in soundfonts],
                "made_with": tool_versions(soundfonts)}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return pairs


def make_long_pair(set_dir: Path, out_dir: Path, duration_s: float, pair_id: str, seed: int = 0,
                   soundfont: str = RECORDING_SOUNDFONTS[0]) -> dict:
    """A pair of about ``duration_s`` seconds of MIDI: the set's MIDIs played one after another.

    Idempotent like the set. Used for the 3-minute speed and 20-minute memory measurements, so
    the recording is kept as long as the MIDI: no crop, global tempo factor in [0.95, 1.0] (the
    slow ±10 % curve and the other corruptions as usual).
    """
    params = synthetic.CorruptionParams(tempo_factor_range=(0.95, 1.0), crop_start_prob=0.0, crop_end_prob=0.0)
    recipe = {"version": RECIPE_VERSION, "long_from": str(Path(set_dir).name), "duration_s": duration_s,
              "seed": seed, "soundfont": soundfont, "params": asdict(params)}
    meta = pair_is_current(out_dir, pair_id, recipe)
    if meta is not None:
        return dict(meta, midi_path=str(Path(out_dir) / meta["midi"]), audio_path=str(Path(out_dir) / meta["audio"]),
                    truth_path=str(Path(out_dir) / meta["truth"]))
    pieces, total = [], 0.0
    set_pairs = load_set(set_dir)
    k = 0
    while total < duration_s + 5.0:
        midi = media.load_midi(set_pairs[k % len(set_pairs)]["midi_path"])
        pieces.append(midi)
        total += midi.get_end_time() + 1.0
        k += 1
    long_midi = synthetic.truncate_midi(synthetic.concatenate_midis(pieces, gap_s=1.0), duration_s)
    rng = np.random.default_rng(seed)
    meta = make_pair(long_midi, pair_id, out_dir, rng, soundfont, 30.0, params=params, recipe=recipe)
    return dict(meta, midi_path=str(Path(out_dir) / meta["midi"]), audio_path=str(Path(out_dir) / meta["audio"]),
                truth_path=str(Path(out_dir) / meta["truth"]))


def tool_versions(soundfonts=RECORDING_SOUNDFONTS) -> dict:
    """The versions of what a set's sound depends on, and the soundfonts' SHA-256 (first 16 digits)."""
    import numba
    import soundfile

    from engine.synth import fluidsynth_version

    fonts = {}
    for path in soundfonts:
        try:
            fonts[Path(path).name] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        except OSError as exc:
            fonts[Path(path).name] = f"unreadable: {exc.strerror}"
    return {"fluidsynth": fluidsynth_version(), "libsndfile": soundfile.__libsndfile_version__,
            "numpy": np.__version__, "numba": numba.__version__, "soundfonts": fonts}


def set_digest(out_dir: Path = DEFAULT_OUT) -> str:
    """SHA-256 over every pair's MIDI, recording and truth, in the manifest's order (each pair once).

    The truth counts by its arrays, not its file: an ``.npz`` is a zip, which stamps each entry
    with the time it was written."""
    out_dir = Path(out_dir)
    h = hashlib.sha256()
    for meta in distinct_pairs(out_dir):
        h.update(Path(meta["midi_path"]).read_bytes())
        h.update(Path(meta["audio_path"]).read_bytes())
        with np.load(meta["truth_path"], allow_pickle=False) as truth:
            for name in sorted(truth.files):
                h.update(name.encode())
                h.update(np.ascontiguousarray(truth[name]).tobytes())
    return h.hexdigest()


def set_identity(out_dir: Path = DEFAULT_OUT) -> dict:
    """The set's digest, whether it is the set docs/BENCHMARKS.md's follower figures were measured on
    (``MEASURED_SET_DIGEST``; None when that file is missing) and what it was made with (None for a
    set made before the manifest recorded it)."""
    digest = set_digest(out_dir)
    measured = MEASURED_SET_DIGEST.read_text().split()[0] if MEASURED_SET_DIGEST.is_file() else None
    manifest = json.loads((Path(out_dir) / "manifest.json").read_text())
    return {"digest": digest, "measured_in_docs": None if measured is None else digest == measured,
            "made_with": manifest.get("made_with")}


def describe_identity(identity: dict) -> str:
    """One line for a benchmark's output."""
    same = {True: "the set of docs/BENCHMARKS.md's follower figures",
            False: "NOT the set of docs/BENCHMARKS.md's follower figures: compare only with runs on this set",
            None: f"no {MEASURED_SET_DIGEST.name} to compare with"}[identity["measured_in_docs"]]
    return f"set digest {identity['digest'][:16]}: {same}"


def _made_by_a_later_candidate(out_dir: Path, spec: dict, later: list[dict]) -> dict | None:
    """The stored metadata when a later candidate with the same id made the pair's files.

    Two candidates can share an id (``bach_bwv248-42-4``: the curated cantata and the same file
    drawn as a chorale); made from scratch, the later one's files replace the earlier one's, and
    the manifest lists the id twice. Without this, every later run would make both again, and the
    pair would sound a little different each time (FluidSynth's state carries between renderings).
    """
    stored = _stored_pair(out_dir, spec["id"])
    if stored is None:
        return None
    work = stored.get("recipe", {}).get("work")
    if work == spec["work"] or not any(c["id"] == spec["id"] and c["work"] == work for c in later):
        return None
    return stored


def load_set(out_dir: Path = DEFAULT_OUT) -> list[dict]:
    """The pairs of a made set (metadata dicts with absolute ``midi_path``/``audio_path``/``truth_path``)."""
    out_dir = Path(out_dir)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    pairs = []
    for pid in manifest["pairs"]:
        meta = json.loads((out_dir / f"{pid}.json").read_text())
        meta.update(midi_path=str(out_dir / meta["midi"]), audio_path=str(out_dir / meta["audio"]),
                    truth_path=str(out_dir / meta["truth"]))
        pairs.append(meta)
    return pairs


def distinct_pairs(out_dir: Path = DEFAULT_OUT) -> list[dict]:
    """:func:`load_set`'s pairs, each once (the manifest may list an id twice: ``bach_bwv248-42-4``)."""
    return list({meta["id"]: meta for meta in load_set(out_dir)}.values())


def load_truth(meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """The true warp's knots of a pair (original MIDI seconds, recording seconds)."""
    with np.load(meta["truth_path"], allow_pickle=False) as z:
        return z["warp_midi_s"], z["warp_audio_s"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Make the synthetic alignment benchmark set.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--n", type=int, default=64, help="number of pairs (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-duration", type=float, default=100.0, help="seconds of MIDI per pair at most")
    args = parser.parse_args(argv)
    pairs = make_set(args.out, args.n, args.seed, args.max_duration)
    total = sum(p["audio_duration_s"] for p in pairs)
    print(f"{len(pairs)} pairs, {total / 60:.1f} min of audio in {args.out}")
    return 0 if len(pairs) >= args.n else 1


if __name__ == "__main__":
    sys.exit(main())
