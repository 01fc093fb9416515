"""Make the library-matching benchmark: folders of MIDIs and recordings with the gold pairs.

``nice -n 5 python -m tests.benchmarks.make_match_set [--out data/bench/match] [--seed 0]``

``nice -n 19 python -m tests.benchmarks.make_match_set --large [--workers 2]`` makes the third set,
``large/`` (1 000 MIDIs × 1 000 recordings, for the end-to-end timing; the recipe is the same,
the work pool much wider: see :mod:`tests.benchmarks.make_match_large`).

Two disjoint sets of music21 corpus works (no work, and no melody, is in both):

- ``bench/``: the evaluated set — 150 MIDIs with a recording, 30 MIDIs with none (16.7 %), and
  35 recordings with no MIDI: 180 MIDIs, 185 recordings;
- ``calib/``: a small separate set (40 + 10 MIDIs, 10 extra recordings) on which the matcher's
  calibration was fitted, so that the open-set threshold never sees the evaluated set's labels.

Every recording is made the way the alignment benchmark makes its pairs
(:func:`tests.benchmarks.make_alignment_set.make_pair`): the MIDI corrupted as Raffel & Ellis
(2016) did (tempo curve, crops, dropped instruments, programs ±1, velocities), rendered with
another soundfont (MuseScore General Lite or FluidR3 GM), pink noise at 20–40 dB SNR, mp3.

Works come from many corpora (the alignment benchmark's curated list, Bach chorales, Monteverdi
madrigals, Palestrina mass movements, trecento pieces, fiddle and folk tunes), each cut at
``max_duration_s``. Two works whose melodies open alike (the top voice's first 24 pitches, minus
their median, within 0.3 semitone on average along a DTW path) are taken to be the same tune —
the corpus holds many harmonisations and instrumental versions of one chorale — and only the
first is used. Lyrics and other meta events after the last note are removed (music21 keeps lyrics of the
cut bars, and tempo changes past the cut, which would give the MIDI a long silent tail).

Layout of ``<out>``:

- ``pairs/<id>.mid|.mp3|.truth.npz|.json``: what ``make_pair`` writes (MIDI-only works: .mid + .json);
- ``<set>/midi/<id>.mid`` and ``<set>/audio/rec_<hash>.mp3``: hard links (the recordings'
  names say nothing about their MIDI);
- ``<set>/gold.csv``: ``midi,audio`` (audio empty for a MIDI with no recording);
- ``manifest.json``.

Incremental and seeded: a work whose files exist with the same recipe is not made again, so an
interrupted run continues, and the same command makes the same set.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

from tests.benchmarks import make_alignment_set as align_set

DEFAULT_OUT = align_set.ROOT / "data" / "bench" / "match"
RECIPE_VERSION = 3
# (paired, MIDI only, recording only) per set.
ROLES = {"bench": (150, 30, 35), "calib": (40, 10, 10)}
# The large set (``--large``): 1 000 MIDIs (170 = 17 % with no recording) × 1 000 recordings (170 with no MIDI).
LARGE_ROLES = (830, 170, 170)


def work_pool(seed: int = 0) -> list[dict]:
    """Candidate works from many corpora, in a seeded order that mixes the kinds."""
    from music21 import corpus

    paths = [str(p).split("/corpus/")[-1] for p in corpus.getPaths()]
    rng = np.random.default_rng(seed)

    def pick(prefix, suffixes, n, kind, exclude=()):
        found = sorted(p for p in paths if p.startswith(prefix) and p.endswith(suffixes)
                       and not any(x in p for x in exclude))
        return [{"work": p, "bars": None, "kind": kind} for p in rng.permutation(found)[:n]]

    pool = [{"work": w, "bars": b, "kind": k} for w, b, k in align_set.CURATED]
    pool += pick("bach/bwv", (".mxl",), 200, "chorale")
    pool += pick("monteverdi/", (".mxl",), 60, "madrigal", exclude=("_old",))
    pool += pick("palestrina/", (".krn",), 90, "mass", exclude=("_rpt",))
    pool += pick("trecento/", (".xml",), 40, "trecento")
    pool += pick("ryansMammoth/", (".abc",), 25, "fiddle tune")
    pool += pick("essenFolksong/", (".abc",), 10, "folk song")
    order = rng.permutation(len(pool))
    return [dict(pool[i], id=align_set._slug(pool[i]["work"], pool[i]["bars"])) for i in order]


def role_sequence(seed: int = 0) -> list[tuple[str, str]]:
    """``(set, role)`` for the k-th accepted work; role is "paired", "midi_only" or "audio_only"."""
    roles = [(s, r) for s, counts in ROLES.items() for r, n in zip(("paired", "midi_only", "audio_only"), counts)
             for _ in range(n)]
    order = np.random.default_rng(seed + 1).permutation(len(roles))
    return [roles[i] for i in order]


def melody_lines(midi, n_notes: int = 24) -> list[list[float]]:
    """The opening of the top voice (and of a part named soprano/cantus): pitches minus their median.

    Repeated pitches are merged, so ornaments and rhythm matter little.
    """
    parts = [inst for inst in midi.instruments if len(inst.notes) >= 12]
    if not parts:
        return []
    chosen = [max(parts, key=lambda inst: np.mean([n.pitch for n in inst.notes]))]
    chosen += [inst for inst in parts if inst is not chosen[0]
               and any(w in (inst.name or "").lower() for w in ("soprano", "cantus", "superius", "canto"))]
    lines = []
    for inst in chosen:
        seq = []
        for n in sorted(inst.notes, key=lambda n: (n.start, -n.pitch)):
            if not seq or n.pitch != seq[-1]:
                seq.append(n.pitch)
            if len(seq) == n_notes:
                break
        lines.append((np.array(seq, float) - np.median(seq)).tolist())
    return lines


def melody_distance(a, b) -> float:
    """Mean |pitch difference| (semitones) along the best DTW path between two melody openings."""
    return float(_melody_dtw(np.asarray(a, np.float64), np.asarray(b, np.float64)))


@njit(cache=True)
def _melody_dtw(a, b):
    n, m = len(a), len(b)
    D = np.full((n + 1, m + 1), np.inf)
    steps = np.zeros((n + 1, m + 1))
    D[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best, length = D[i - 1, j - 1], steps[i - 1, j - 1]
            if D[i - 1, j] < best:
                best, length = D[i - 1, j], steps[i - 1, j]
            if D[i, j - 1] < best:
                best, length = D[i, j - 1], steps[i, j - 1]
            D[i, j] = abs(a[i - 1] - b[j - 1]) + best
            steps[i, j] = length + 1
    return D[n, m] / steps[n, m]


def same_tune_as(lines, accepted: dict, max_distance: float = 0.3) -> str | None:
    """The id of an accepted work whose melody opening is within ``max_distance`` of ``lines``."""
    for work_id, other in accepted.items():
        if any(melody_distance(a, b) <= max_distance for a in lines for b in other):
            return work_id
    return None


def strip_tail(midi):
    """Remove lyrics, text, signature and tempo events after the last note's end (in place)."""
    end = max(n.end for inst in midi.instruments for n in inst.notes)
    last_tick = midi.time_to_tick(end)
    midi._tick_scales = [(tick, scale) for tick, scale in midi._tick_scales if tick <= last_tick]
    midi._update_tick_to_time(last_tick + 1)
    midi.lyrics = [e for e in midi.lyrics if e.time <= end]
    if hasattr(midi, "text_events"):
        midi.text_events = [e for e in midi.text_events if e.time <= end]
    midi.time_signature_changes = [e for e in midi.time_signature_changes if e.time <= end]
    midi.key_signature_changes = [e for e in midi.key_signature_changes if e.time <= end]
    return midi


def _recording_name(seed: int, work_id: str) -> str:
    return "rec_" + hashlib.sha1(f"{seed}:{work_id}".encode()).hexdigest()[:10] + ".mp3"


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        import shutil

        shutil.copyfile(src, dst)


def _midi_only_current(pairs_dir: Path, work_id: str, recipe: dict) -> dict | None:
    meta_path = pairs_dir / f"{work_id}.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    ok = meta.get("recipe") == json.loads(json.dumps(recipe)) and (pairs_dir / meta.get("midi", "-")).is_file()
    return meta if ok else None


def make_match_set(out_dir: Path = DEFAULT_OUT, seed: int = 0, max_duration_s: float = 60.0,
                   snr_db_range=(20.0, 40.0), log=print) -> dict:
    """Make (or complete) both sets; return the manifest."""
    from engine import media

    out_dir = Path(out_dir)
    pairs_dir = out_dir / "pairs"
    pairs_dir.mkdir(parents=True, exist_ok=True)
    roles = role_sequence(seed)
    accepted_tunes: dict[str, list] = {}
    members: dict[str, list] = {name: [] for name in ROLES}
    skipped = []
    k = 0
    for spec in work_pool(seed):
        if k >= len(roles):
            break
        set_name, role = roles[k]
        work_seed = int.from_bytes(hashlib.sha256(f"{seed}:{spec['id']}".encode()).digest()[:4], "little")
        # The recipe does not depend on the role or the position, so a work's files are reused when
        # an earlier change moves it to another role.
        recipe = {"version": RECIPE_VERSION, "work": spec["work"], "bars": spec["bars"], "seed": work_seed,
                  "soundfont": align_set.RECORDING_SOUNDFONTS[1 if work_seed % 3 == 2 else 0],
                  "max_duration_s": max_duration_s, "snr_db_range": list(snr_db_range)}
        t0 = time.perf_counter()
        meta = align_set.pair_is_current(pairs_dir, spec["id"], recipe)
        if meta is None and role == "midi_only":
            meta = _midi_only_current(pairs_dir, spec["id"], recipe)
        if meta is None:
            rng = np.random.default_rng(work_seed)
            try:
                midi, _ = align_set.work_to_midi(spec, rng, max_duration_s, tempo_change_prob=0.3)
                if sum(len(i.notes) for i in midi.instruments) < 20 or midi.get_end_time() < 10.0:
                    raise ValueError(f"too little music ({midi.get_end_time():.1f} s)")
                strip_tail(midi)
                lines = melody_lines(midi)
                twin = same_tune_as(lines, accepted_tunes)
                if twin:
                    raise ValueError(f"same tune as {twin}")
                if role == "midi_only":
                    midi.write(str(pairs_dir / f"{spec['id']}.mid"))
                    meta = {"id": spec["id"], "midi": f"{spec['id']}.mid", "recipe": recipe,
                            "midi_duration_s": round(media.load_midi(pairs_dir / f"{spec['id']}.mid").get_end_time(), 4)}
                else:
                    snr_db = float(rng.uniform(*snr_db_range))
                    meta = align_set.make_pair(midi, spec["id"], pairs_dir, rng, recipe["soundfont"], snr_db,
                                               recipe=recipe)
                meta.update(kind=spec["kind"], melody=lines)
                (pairs_dir / f"{spec['id']}.json").write_text(json.dumps(meta, indent=1, default=align_set._jsonable) + "\n")
            except Exception as exc:  # unconvertible, too short, or a duplicate tune: next work
                skipped.append(f"{spec['work']}: {type(exc).__name__}: {str(exc)[:100]}")
                log(f"skip {skipped[-1]}")
                continue
            log(f"[{k + 1:3d}/{len(roles)}] {set_name} {role:10s} {spec['id']:45s} {time.perf_counter() - t0:5.1f} s")
        twin = same_tune_as(meta.get("melody", []), accepted_tunes)
        if twin:
            skipped.append(f"{spec['work']}: same tune as {twin}")
            continue
        accepted_tunes[spec["id"]] = meta.get("melody", [])
        members[set_name].append((spec["id"], role, meta))
        k += 1
    manifest = {"seed": seed, "max_duration_s": max_duration_s, "skipped": skipped, "sets": {}}
    for set_name, items in members.items():
        set_dir = out_dir / set_name
        for sub in ("midi", "audio"):
            if (set_dir / sub).is_dir():
                for old in (set_dir / sub).iterdir():
                    old.unlink()
        gold = [("midi", "audio")]
        for work_id, role, meta in items:
            rec = _recording_name(seed, work_id)
            if role != "audio_only":
                _link(pairs_dir / meta["midi"], set_dir / "midi" / meta["midi"])
            if role != "midi_only":
                _link(pairs_dir / meta["audio"], set_dir / "audio" / rec)
            if role != "audio_only":
                gold.append((meta["midi"], rec if role == "paired" else ""))
        with open(set_dir / "gold.csv", "w", newline="") as f:
            csv.writer(f).writerows(gold)
        counts = {r: sum(1 for _, role, _ in items if role == r) for r in ("paired", "midi_only", "audio_only")}
        manifest["sets"][set_name] = dict(counts, works=[w for w, _, _ in items],
                                          kinds=sorted({m.get("kind", "") for _, _, m in items}))
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Make the library-matching benchmark (bench + calib sets, "
                                                 "or with --large the 1 000 × 1 000 set).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-duration", type=float, default=60.0, help="seconds of MIDI per work at most")
    parser.add_argument("--large", action="store_true",
                        help=f"make <out>/large: {sum(LARGE_ROLES[:2])} MIDIs × {LARGE_ROLES[0] + LARGE_ROLES[2]} "
                             "recordings (tests.benchmarks.make_match_large)")
    parser.add_argument("--workers", type=int, default=2, help="processes for --large (default 2)")
    args = parser.parse_args(argv)
    if args.large:
        from tests.benchmarks.make_match_large import make_large_set

        counts = make_large_set(args.out, args.seed, args.max_duration, workers=args.workers)
        print(f"large: {counts['paired']} paired, {counts['midi_only']} MIDI only, "
              f"{counts['audio_only']} recordings only")
        return 0 if tuple(counts[r] for r in ("paired", "midi_only", "audio_only")) == LARGE_ROLES else 1
    manifest = make_match_set(args.out, args.seed, args.max_duration)
    for name, s in manifest["sets"].items():
        print(f"{name}: {s['paired']} paired, {s['midi_only']} MIDI only, {s['audio_only']} recordings only")
    complete = all(tuple(manifest["sets"][n][r] for r in ("paired", "midi_only", "audio_only")) == ROLES[n]
                   for n in ROLES)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
