"""The large library-matching set: 1 000 MIDIs × 1 000 recordings, for the end-to-end timing.

Made by ``nice -n 19 python -m tests.benchmarks.make_match_set --large [--workers 2]`` into
``<out>/large`` (default ``data/bench/match/large``): 830 MIDIs with a recording, 170 MIDIs with
none (17 %), 170 recordings with no MIDI.

Same recipe as the benchmark set (:mod:`tests.benchmarks.make_match_set`): a music21 corpus work
converted to MIDI (varied GM programs, tempo changes with p = 0.3), cut at 60 s, lyrics and tails
stripped; its recording corrupted as the alignment benchmark's (Raffel & Ellis 2016: tempo curve,
crops, dropped instruments, programs ±1, velocities), rendered with MuseScore General Lite (2/3)
or FluidR3 GM (1/3), pink noise at 20–40 dB SNR, mp3. The MIDIs are at most 60 s long; a
recording up to 75 s (played up to 1.25 times slower), about 40 s on average, like the bench set's.

The pool is wider: every Bach chorale, Monteverdi madrigal and trecento piece, Palestrina mass
movements, and single tunes out of the folk collections that hold many per file (Essen folk songs,
O'Neill's 1850, Aird's airs, the fife tunes; a tune is parsed alone by its ``X:`` number) and Ryan's
Mammoth fiddle tunes. One work per tune, as in the bench set: a work whose melody opening is
within 0.3 semitone of an accepted one (:func:`make_match_set.same_tune_as`) is left out, and so
are the calibration set's works and tunes (the matcher's calibration never saw the large set).
Bench-set works may appear (their renderings in ``pairs/`` are reused).

Two passes, each on ``workers`` processes: the candidates are converted (MIDI + melody opening,
cached in ``large/candidates/`` with the random generator's state), the roles given in the pool's
seeded order, then the chosen works rendered into the shared ``pairs/`` folder. Incremental and
seeded like the other sets. Writes ``large/midi``, ``large/audio``, ``large/gold.csv`` and
``large/manifest.json``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from tests.benchmarks import make_alignment_set as align_set
from tests.benchmarks import make_match_set as match_set

# (corpus folder, file suffixes, how many at most, kind, tunes per file?) — the pool's share of each.
SOURCES = (
    ("bach/bwv", (".mxl",), 410, "chorale", False),
    ("monteverdi/", (".mxl",), 100, "madrigal", False),
    ("palestrina/", (".krn",), 330, "mass", False),
    ("trecento/", (".xml",), 110, "trecento", False),
    ("ryansMammoth/", (".abc",), 300, "fiddle tune", False),
    ("essenFolksong/", (".abc",), 220, "folk song", True),
    ("oneills1850/", (".abc",), 160, "Irish tune", True),
    ("airdsAirs/", (".abc",), 90, "Scottish air", True),
    ("miscFolk/", (".abc",), 40, "fife tune", True),
)
EXCLUDE = ("_old", "_rpt")


def _tune_numbers(path: Path) -> list[int]:
    """The ``X:`` reference numbers of the tunes in an ABC file."""
    text = path.read_text(errors="ignore")
    return sorted({int(x) for x in re.findall(r"^X:\s*(\d+)", text, re.M)})


def large_work_pool(seed: int = 0) -> list[dict]:
    """Candidate works (``{"id", "work", "bars", "number", "kind"}``) in a seeded order mixing the kinds."""
    from music21 import corpus

    full = {str(p).split("/corpus/")[-1]: Path(p) for p in corpus.getPaths()}
    rng = np.random.default_rng(seed + 10)
    pool = [{"work": w, "bars": b, "number": None, "kind": k} for w, b, k in align_set.CURATED]
    for prefix, suffixes, n, kind, many in SOURCES:
        files = sorted(p for p in full if p.startswith(prefix) and p.endswith(suffixes)
                       and not any(x in p for x in EXCLUDE))
        if many:
            items = [(f, x) for f in files for x in _tune_numbers(full[f])]
        else:
            items = [(f, None) for f in files]
        picked = rng.permutation(len(items))[:n]
        pool += [{"work": items[i][0], "bars": None, "number": items[i][1], "kind": kind} for i in picked]
    out, seen = [], set()
    for i in rng.permutation(len(pool)):
        spec = pool[i]
        spec_id = align_set._slug(spec["work"], spec["bars"]) + (f"_x{spec['number']}" if spec["number"] else "")
        if spec_id not in seen:
            seen.add(spec_id)
            out.append(dict(spec, id=spec_id))
    return out


def recipe_for(spec: dict, seed: int, max_duration_s: float, snr_db_range=(20.0, 40.0)) -> dict:
    """The bench set's recipe for a work (plus the tune number of a tune out of a collection)."""
    work_seed = int.from_bytes(hashlib.sha256(f"{seed}:{spec['id']}".encode()).digest()[:4], "little")
    recipe = {"version": match_set.RECIPE_VERSION, "work": spec["work"], "bars": spec["bars"], "seed": work_seed,
              "soundfont": align_set.RECORDING_SOUNDFONTS[1 if work_seed % 3 == 2 else 0],
              "max_duration_s": max_duration_s, "snr_db_range": list(snr_db_range)}
    if spec.get("number") is not None:
        recipe["number"] = spec["number"]
    return recipe


def _work_to_midi(spec: dict, rng, max_duration_s: float):
    """:func:`make_alignment_set.work_to_midi`, parsing one tune of a collection by its number."""
    if spec.get("number") is None:
        return align_set.work_to_midi(spec, rng, max_duration_s, tempo_change_prob=0.3)[0]
    from music21 import corpus

    from engine import synthetic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = corpus.parse(spec["work"], number=spec["number"])
        if hasattr(score, "scores"):
            score = score.scores[0]
        midi = synthetic.music21_to_pretty_midi(score, rng=rng)
    if rng.random() < 0.3:
        midi = synthetic.with_tempo_changes(midi, rng, n_changes=int(rng.integers(1, 4)))
    return synthetic.truncate_midi(midi, max_duration_s)


def _existing(pairs_dir: Path, spec: dict, recipe: dict) -> dict | None:
    return align_set.pair_is_current(pairs_dir, spec["id"], recipe) or match_set._midi_only_current(
        pairs_dir, spec["id"], recipe)


def prepare(spec: dict, recipe: dict, pairs_dir: Path, cand_dir: Path) -> dict:
    """Convert one candidate (cached): ``{"ok", "reason", "melody"}``; its MIDI in ``cand_dir``.

    A work already made for another set with this recipe is not converted again.
    """
    meta = _existing(pairs_dir, spec, recipe)
    if meta is not None and "melody" in meta:
        return {"ok": True, "melody": meta["melody"], "made": True}
    info_path = cand_dir / f"{spec['id']}.json"
    try:
        info = json.loads(info_path.read_text())
        if info.get("recipe") == json.loads(json.dumps(recipe)):
            return info
    except (OSError, ValueError):
        pass
    from engine import media

    rng = np.random.default_rng(recipe["seed"])
    info = {"recipe": recipe, "ok": False}
    try:
        midi = _work_to_midi(spec, rng, recipe["max_duration_s"])
        if sum(len(i.notes) for i in midi.instruments) < 20 or midi.get_end_time() < 10.0:
            raise ValueError(f"too little music ({midi.get_end_time():.1f} s)")
        match_set.strip_tail(midi)
        midi.write(str(cand_dir / f"{spec['id']}.mid"))
        info.update(ok=True, melody=match_set.melody_lines(midi), rng_state=rng.bit_generator.state,
                    midi_duration_s=round(media.load_midi(cand_dir / f"{spec['id']}.mid").get_end_time(), 4))
    except Exception as exc:  # unconvertible or too short: the next candidate
        info["reason"] = f"{type(exc).__name__}: {str(exc)[:100]}"
    info_path.write_text(json.dumps(info, default=align_set._jsonable) + "\n")
    return info


def make_files(spec: dict, recipe: dict, role: str, pairs_dir: Path, cand_dir: Path) -> dict:
    """Make a chosen work's files in ``pairs_dir`` (the rendering unless MIDI only); return its metadata."""
    meta = align_set.pair_is_current(pairs_dir, spec["id"], recipe)
    if meta is None and role == "midi_only":
        meta = match_set._midi_only_current(pairs_dir, spec["id"], recipe)
    if meta is not None:
        return meta
    info = prepare(spec, recipe, pairs_dir, cand_dir)
    if not info.get("rng_state"):  # made for another set as MIDI only, and now wanted with a recording
        (cand_dir / f"{spec['id']}.json").unlink(missing_ok=True)
        info = prepare(spec, recipe, Path("/nonexistent"), cand_dir)
    from engine import media

    src = cand_dir / f"{spec['id']}.mid"
    if role == "midi_only":
        (pairs_dir / f"{spec['id']}.mid").unlink(missing_ok=True)  # not through another set's hard link
        shutil.copyfile(src, pairs_dir / f"{spec['id']}.mid")
        meta = {"id": spec["id"], "midi": f"{spec['id']}.mid", "recipe": recipe,
                "midi_duration_s": info["midi_duration_s"]}
    else:
        rng = np.random.default_rng()
        rng.bit_generator.state = info["rng_state"]
        snr_db = float(rng.uniform(*recipe["snr_db_range"]))
        # A MIDI-only work of another set has its .mid hard-linked there: write a new file, not through the link.
        (pairs_dir / f"{spec['id']}.mid").unlink(missing_ok=True)
        meta = align_set.make_pair(media.load_midi(src), spec["id"], pairs_dir, rng, recipe["soundfont"], snr_db,
                                   recipe=recipe)
    meta.update(kind=spec["kind"], melody=info["melody"])
    (pairs_dir / f"{spec['id']}.json").write_text(json.dumps(meta, indent=1, default=align_set._jsonable) + "\n")
    return meta


def _calibration_tunes(out_dir: Path) -> dict:
    """The calibration set's works and their melody openings (kept out of the large set)."""
    try:
        works = json.loads((out_dir / "manifest.json").read_text())["sets"]["calib"]["works"]
    except (OSError, ValueError, KeyError):
        return {}
    tunes = {}
    for work_id in works:
        try:
            tunes[work_id] = json.loads((out_dir / "pairs" / f"{work_id}.json").read_text()).get("melody", [])
        except (OSError, ValueError):
            tunes[work_id] = []
    return tunes


def _role_sequence(seed: int) -> list[str]:
    roles = [r for r, n in zip(("paired", "midi_only", "audio_only"), match_set.LARGE_ROLES) for _ in range(n)]
    return [roles[i] for i in np.random.default_rng(seed + 11).permutation(len(roles))]


def make_large_set(out_dir: Path = match_set.DEFAULT_OUT, seed: int = 0, max_duration_s: float = 60.0,
                   workers: int = 2, batch: int = 64, log=print) -> dict:
    """Make (or complete) ``<out_dir>/large``; return the counts of each role."""
    out_dir = Path(out_dir)
    pairs_dir, set_dir = out_dir / "pairs", out_dir / "large"
    cand_dir = set_dir / "candidates"
    for d in (pairs_dir, cand_dir):
        d.mkdir(parents=True, exist_ok=True)
    roles = _role_sequence(seed)
    blocked = _calibration_tunes(out_dir)
    pool = [s for s in large_work_pool(seed) if s["id"] not in blocked]
    accepted: dict[str, list] = {}
    chosen, skipped = [], []
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as executor:
        # Pass 1: convert candidates a batch at a time, give roles in the pool's order.
        start = 0
        while len(chosen) < len(roles) and start < len(pool):
            specs = pool[start:start + batch]
            start += batch
            recipes = [recipe_for(s, seed, max_duration_s) for s in specs]
            infos = executor.map(prepare, specs, recipes, [pairs_dir] * len(specs), [cand_dir] * len(specs))
            for spec, recipe, info in zip(specs, recipes, infos):
                if len(chosen) >= len(roles):
                    break
                if not info.get("ok"):
                    skipped.append(f"{spec['id']}: {info.get('reason')}")
                    continue
                lines = info.get("melody", [])
                twin = match_set.same_tune_as(lines, blocked) or match_set.same_tune_as(lines, accepted)
                if twin:
                    skipped.append(f"{spec['id']}: same tune as {twin}")
                    continue
                accepted[spec["id"]] = lines
                chosen.append((spec, recipe, roles[len(chosen)]))
            log(f"converted {start}/{len(pool)} candidates, {len(chosen)}/{len(roles)} chosen, "
                f"{time.perf_counter() - t0:.0f} s")
        # Pass 2: render the chosen works.
        metas = []
        futures = [executor.submit(make_files, spec, recipe, role, pairs_dir, cand_dir)
                   for spec, recipe, role in chosen]
        for k, ((spec, _, role), future) in enumerate(zip(chosen, futures)):
            metas.append(future.result())
            if k % 25 == 0 or k == len(chosen) - 1:
                log(f"[{k + 1:4d}/{len(chosen)}] {role:10s} {spec['id']:45s} {time.perf_counter() - t0:6.0f} s")
    for sub in ("midi", "audio"):
        if (set_dir / sub).is_dir():
            for old in (set_dir / sub).iterdir():
                old.unlink()
    gold = [("midi", "audio")]
    for (spec, _, role), meta in zip(chosen, metas):
        rec = match_set._recording_name(seed, spec["id"])
        if role != "audio_only":
            match_set._link(pairs_dir / meta["midi"], set_dir / "midi" / meta["midi"])
            gold.append((meta["midi"], rec if role == "paired" else ""))
        if role != "midi_only":
            match_set._link(pairs_dir / meta["audio"], set_dir / "audio" / rec)
    with open(set_dir / "gold.csv", "w", newline="") as f:
        csv.writer(f).writerows(gold)
    counts = {r: sum(1 for _, _, role in chosen if role == r) for r in ("paired", "midi_only", "audio_only")}
    kinds = {}
    for spec, _, _ in chosen:
        kinds[spec["kind"]] = kinds.get(spec["kind"], 0) + 1
    durations = [m.get("audio_duration_s") for m in metas if m.get("audio_duration_s")]
    manifest = dict(counts, seed=seed, max_duration_s=max_duration_s, kinds=kinds,
                    audio_duration_s={"mean": round(float(np.mean(durations)), 1),
                                      "max": round(float(np.max(durations)), 1)} if durations else {},
                    works=[s["id"] for s, _, _ in chosen], roles=[r for _, _, r in chosen], skipped=skipped)
    (set_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"kinds: {kinds}; recordings {manifest['audio_duration_s']} s; {len(skipped)} candidates skipped")
    return counts
