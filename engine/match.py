"""Library matching: which MIDI file is which recording, for whole folders (``earworm match``).

Task
----
Given a folder of MIDIs and a folder of recordings, score every (MIDI, recording) pair, give each
pair a calibrated confidence (P(match)), and decide for each MIDI its recording *or none* (open
set: some MIDIs have no recording, some recordings no MIDI). Brute-force alignment of every pair
costs far too much, so a cascade (:mod:`engine.match_stages`) does it:

1. features of every file once (chroma via :mod:`engine.align`'s content-addressed cache, so the
   confirming alignments and the window reuse them), reduced to a summary vector and a pooled
   chroma sequence; bad files are reported with the reason and skipped;
   (0.) with ``embedding_k``: each MIDI's top ``embedding_k`` recordings by a whole-file score of
   the cross-modal embeddings (:mod:`engine.match_embedding`); the prune chooses among those;
2. prune: z-scored summary scores of all pairs, top ``k_prune`` recordings per MIDI;
3. coarse DTW on pooled chroma for those (+ ``n_null`` random pairs per MIDI), z-scored by row
   and column; 4. confirm: :func:`engine.align.align` on each MIDI's top ``k_confirm``, leaving
   out the MIDI's parts the recording lacks (``find_instruments``: a recording that lost voices
   is scored against the voices it has, as its own alignment would be).

A MIDI's decision is its best confirmed recording when that pair's calibrated confidence is at
least ``threshold`` (0.5: the calibration was fitted on a separate synthetic set, so the
threshold never sees the labels of the set being matched); otherwise none.

Conventions
-----------
- File names are paths relative to the given folders (POSIX separators), sorted.
- ``scores[m, a]``: the calibrated confidence of the deepest stage the pair reached; within a
  MIDI's row the cascade's order is kept (a confirmed pair scores above every unconfirmed one of
  that MIDI, a coarse-DTW pair above every pruned one, a pair the embedding stage kept above every
  one it dropped: those are at stage 0).
- ``gap``: the MIDI's best confidence minus its runner-up's.
- Batch work runs on local processes or a Dask cluster (:mod:`engine.distributed`). Results are
  stored as they arrive in a run directory (``features/<hash>.npz``, ``confirmed.jsonl``) and, with
  a project, as results of kind ``alignment_confidence`` / ``match_score``; a rerun resumes
  (:mod:`engine.match_store`).
- ``MatchResult.timings``: per stage (``features``, ``prune``, ``embedding``, ``coarse``,
  ``confirm``, ``decide``, ``total``) the wall seconds ``<stage>_s`` and ``<stage>_cpu_s``, the
  CPU seconds of this process and its local workers (:func:`engine.distributed.local_cpu_seconds`):
  the work, whatever the machine's load.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine import match_stages as stages
from engine.errors import EarwormError
from engine.match_store import MatchError, ProjectSink, RunDir, default_run_dir  # noqa: F401 (re-exported)

RUN_VERSION = 1


@dataclass(frozen=True)
class MatchParams:
    """Parameters of the cascade; all of them are part of a run directory's identity."""

    n_segments: int = 12          # summary: chroma averaged over this many parts of each file
    smooth_segments: float = 0.4  # summary: Gaussian smoothing across parts (tolerates tempo changes)
    midi_crops: int = 2           # summary: a MIDI's sub-spans cut 0, 1, … crop_step off each end (2 × 2)
    crop_step: float = 0.08       # summary: (recordings that start or end inside the score)
    k_prune: int = 48             # recordings kept per MIDI after the summary scores
    n_null: int = 16              # random extra recordings per MIDI: the coarse DTW's row statistics
    pool_frames: int = 5          # coarse DTW frames = this many 46 ms chroma frames (0.23 s)
    gully: float = 0.35           # fraction either file may leave out at each end (coarse DTW and align)
    penalty_scale: float = 1.0    # coarse DTW: non-diagonal step cost × the pair's mean cost
    k_confirm: int = 3            # pairs per MIDI confirmed by the full alignment
    find_instruments: bool = True  # confirm: align again without the MIDI's parts the recording lacks
    threshold: float = 0.5        # calibrated confidence needed to claim a match
    seed: int = 0                 # for the random null pairs
    embedding_k: int = 0          # recordings kept per MIDI by the embedding stage in front (0: no such stage)
    embedding_score: str = "summary"  # its file-level score: "summary" or "set" (engine.match_embedding)

    def align_params(self):
        from engine.align import AlignParams

        return AlignParams(midi_features="pianoroll", gully=self.gully, refine_onsets=False,
                           find_instruments=self.find_instruments)

    def identity(self) -> dict:
        """The parameters as a dict; the embedding stage's only when it is on (older runs stay valid)."""
        d = asdict(self)
        if not self.embedding_k:
            del d["embedding_k"], d["embedding_score"]
        return d

    def tag(self) -> str:
        """A short string naming these parameters (run directories, project results)."""
        digest = hashlib.sha1(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:10]
        return f"match/v{RUN_VERSION}/{digest}"


@dataclass
class MatchResult:
    """Everything a match produced; see the module docstring for the conventions."""

    midi_dir: Path
    audio_dir: Path
    midi_names: list
    audio_names: list
    scores: np.ndarray            # (n_midi, n_audio) calibrated confidence
    stage: np.ndarray             # (n_midi, n_audio) deepest stage: 0 embedding, 1 prune, 2 coarse, 3 confirm
    predicted: np.ndarray         # per MIDI: audio index or -1
    best: np.ndarray              # per MIDI: best confirmed audio index (-1 if none could be)
    confidence: np.ndarray        # per MIDI: confidence of ``best``
    gap: np.ndarray               # per MIDI: best minus runner-up confidence
    bad_files: list = field(default_factory=list)   # (path, reason)
    timings: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)    # per stage: pair indices and raw features
    params: MatchParams = field(default_factory=MatchParams)

    def rows(self) -> list[tuple[str, str, float, float]]:
        """``(midi, audio or "", confidence, gap)`` per MIDI, as matches.csv holds them."""
        return [(m, self.audio_names[p] if p >= 0 else "", float(c), float(g))
                for m, p, c, g in zip(self.midi_names, self.predicted, self.confidence, self.gap)]

    def write_matches_csv(self, path) -> None:
        _write_csv(path, [("midi", "audio", "confidence", "gap")] +
                   [(m, a, f"{c:.6f}", f"{g:.6f}") for m, a, c, g in self.rows()])

    def write_matrix_csv(self, path) -> None:
        """The seed study's layout: a header ``audio,<midi>…``, one row per recording."""
        rows = [["audio"] + list(self.midi_names)]
        rows += [[a] + [f"{v:.6g}" for v in self.scores[:, j]] for j, a in enumerate(self.audio_names)]
        _write_csv(path, rows)

    def stage_recall(self, gold: np.ndarray) -> dict:
        """Fraction of gold pairs still in the running after each stage (and ranked first at the end)."""
        rows, cols = np.nonzero(gold)
        if not len(rows):
            return {}
        at = self.stage[rows, cols]
        return {**({"embedding": float(np.mean(at >= 1))} if self.params.embedding_k else {}),
                "prune": float(np.mean(at >= 2)), "coarse": float(np.mean(at >= 3)),
                "confirm_rank1": float(np.mean(self.best[rows] == cols))}


def _clock() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its local workers) now."""
    from engine.distributed import local_cpu_seconds

    return time.perf_counter(), local_cpu_seconds()


def _lap(timings: dict, stage: str, since: tuple[float, float]) -> None:
    """Record ``<stage>_s`` (wall) and ``<stage>_cpu_s`` (local CPU) since ``since`` (a :func:`_clock`)."""
    wall, cpu = _clock()
    timings[f"{stage}_s"] = wall - since[0]
    timings[f"{stage}_cpu_s"] = cpu - since[1]


def _write_csv(path, rows) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    os.replace(tmp, path)


# ---- worker tasks: paths and plain values in, arrays and plain values out -----------------------

def features_task(kind: str, path: str, params: dict) -> dict:
    """Summary vector and pooled chroma of one file, or ``{"error": reason}``."""
    from engine import align, media

    p = MatchParams(**params)
    ap = p.align_params()
    try:
        if kind == "midi":
            midi = media.load_midi(path)
            chroma, _ = align.midi_chroma_features(midi, path, ap)
        else:
            arrays, _ = align.recording_features(path, ap)
            chroma = arrays["chroma"]
    except EarwormError as exc:
        return {"error": exc.reason}
    chroma = stages.trim_silence(np.asarray(chroma, np.float32))
    frame_s = ap.hop_length / ap.sr
    if len(chroma) < max(p.n_segments, 4 * p.pool_frames):
        return {"error": f"too little music to match ({len(chroma) * frame_s:.1f} s)"}
    summary = (stages.summary_variants(chroma, p.n_segments, p.smooth_segments, stages.crop_spans(p.crop_step, p.midi_crops))
               if kind == "midi" else stages.summary_vector(chroma, p.n_segments, p.smooth_segments))
    out = {"summary": summary,
           "pooled": stages.pooled_chroma(chroma, p.pool_frames),
           "duration_s": np.float64(len(chroma) * frame_s)}
    if p.embedding_k:
        from engine.match_embedding import embedding_features

        embedded = embedding_features(kind, path)
        if "error" in embedded:
            return embedded
        out.update(embedded)
    return out


def confirm_task(midi_path: str, audio_paths: list, params: dict) -> list:
    """Alignment confidence of one MIDI with each recording (``{"error": reason}`` entries for bad pairs)."""
    from engine import media
    from engine.align import align

    ap = MatchParams(**params).align_params()
    try:
        midi = media.load_midi(midi_path)  # once for all its pairs: parsing costs more than its chroma
    except EarwormError as exc:
        return [{"error": exc.reason}] * len(audio_paths)
    out = []
    for audio_path in audio_paths:
        try:
            out.append(float(align(midi, audio_path, ap).confidence))
        except EarwormError as exc:
            out.append({"error": exc.reason})
    return out


# ---- the job ---------------------------------------------------------------------------------------

def run_match(midi_dir, audio_dir, params: MatchParams | None = None, *, run_dir=None, project=None,
              scheduler=None, n_workers: int | None = None, calibration: dict | None = None,
              progress=None, cancel=None, log=None) -> MatchResult:
    """Match a folder of MIDIs against a folder of recordings.

    Parameters
    ----------
    midi_dir, audio_dir : str or Path
        Searched recursively for MIDI files / recordings.
    params : MatchParams, optional
    run_dir : str or Path, optional
        Where to keep what is computed (resume). Default: a folder in the feature cache.
    project : str or Path, optional
        A project file: the folders are added to it, confirmed alignments and match scores are
        stored in it as they come, and a rerun resumes from them.
    scheduler : str or distributed.Client, optional
        A Dask scheduler address (``tcp://host:port``) or client; default: local processes.
    n_workers : int, optional
        Local processes (default: all cores; 1 = in this process).
    calibration : dict, optional
        Override :data:`engine.match_stages.CALIBRATION` (used when fitting it).
    progress : callable(fraction, message), optional
    cancel : callable() -> bool, optional
        Polled between results; True stops the job with :class:`engine.distributed.JobCancelled`.
    log : callable(str), optional
        Receives one line per bad file (``<path>: <reason>``).

    Returns
    -------
    MatchResult
    """
    from engine.cache import file_hash
    from engine.distributed import make_runner
    from engine.store_scan import list_media_files, media_kind

    params = params or MatchParams()
    say = progress or (lambda fraction, message: None)
    log = log or (lambda line: None)
    t_start = _clock()
    timings = {}
    midi_dir, audio_dir = Path(midi_dir), Path(audio_dir)
    files = {}
    for kind, folder in (("midi", midi_dir), ("audio", audio_dir)):
        try:
            found = [p for p in list_media_files(folder) if media_kind(p) == kind]
        except EarwormError as exc:
            raise MatchError(folder, exc.reason) from None
        files[kind] = sorted(Path(p).relative_to(os.path.abspath(folder)).as_posix() for p in found)
    identity = {"version": RUN_VERSION, "params": params.identity(), "midi_dir": os.path.abspath(midi_dir),
                "audio_dir": os.path.abspath(audio_dir)}
    if params.embedding_k:
        from engine import embed, match_embedding

        if params.embedding_score not in match_embedding.SCORES:
            raise MatchError(midi_dir, f"unknown embedding score {params.embedding_score!r} "
                                       f"(one of {', '.join(match_embedding.SCORES)})")
        match_embedding.check_models()  # a missing model is one clear error, not one per file
        identity["embedding_models"] = embed.model_identity()
    run_dir = run_dir if run_dir is not None else default_run_dir(midi_dir, audio_dir, params,
                                                                 identity.get("embedding_models", ""))
    store = RunDir(run_dir, identity) if run_dir is not None else None
    sink = ProjectSink(project, midi_dir, audio_dir, params.tag(), say) if project is not None else None

    runner = make_runner(scheduler, n_workers)
    try:
        # 1. features of every file (from the run directory when already computed)
        say(0.01, f"hashing {len(files['midi'])} MIDIs and {len(files['audio'])} recordings")
        folder_of = {"midi": midi_dir, "audio": audio_dir}
        entries = [(kind, name, str(folder_of[kind] / name)) for kind in ("midi", "audio") for name in files[kind]]
        hashes, feats, bad = {}, {}, []
        todo = []
        t = _clock()
        for kind, name, path in entries:
            try:
                hashes[path] = file_hash(path)
            except OSError as exc:
                bad.append((path, f"cannot read ({exc.strerror})"))
                continue
            got = store.features(hashes[path]) if store else None
            if got is not None:
                feats[path] = got
            else:
                todo.append((kind, path, asdict(params)))
        for done, (index, out) in enumerate(runner.run(features_task, todo, cancel), start=1):
            path = todo[index][1]
            if "error" in out:
                bad.append((path, out["error"]))
            else:
                feats[path] = out
                if store:
                    store.save_features(hashes[path], out)
            say(0.02 + 0.5 * done / len(todo), f"features {done}/{len(todo)}")
        for path, reason in bad:
            log(f"{path}: {reason}")
        _lap(timings, "features", t)
        midi_names = [n for n in files["midi"] if str(midi_dir / n) in feats]
        audio_names = [n for n in files["audio"] if str(audio_dir / n) in feats]
        midi_paths = [str(midi_dir / n) for n in midi_names]
        audio_paths = [str(audio_dir / n) for n in audio_names]
        n_midi, n_audio = len(midi_names), len(audio_names)
        if n_midi == 0 or n_audio == 0:
            raise MatchError(midi_dir if n_midi == 0 else audio_dir,
                             f"no readable {'MIDI files' if n_midi == 0 else 'recordings'} to match")

        # 2. prune
        say(0.53, "pruning")
        t = _clock()
        # (variants, MIDIs, d): each MIDI's sub-span summaries
        U = np.ascontiguousarray(np.stack([feats[p]["summary"] for p in midi_paths], axis=1), np.float32)
        V = np.stack([feats[p]["summary"] for p in audio_paths]).astype(np.float32)
        Z1 = np.empty((n_midi, n_audio), np.float32)
        top, _ = stages.prune(U, V, params.k_prune, z_out=Z1)
        _lap(timings, "prune", t)
        filtering = 0 < params.embedding_k < n_audio  # a stage keeping every recording changes nothing
        if filtering:  # 0. the embedding stage's candidates; the prune chooses among them
            t = _clock()
            candidates = match_embedding.stage_candidates([feats[p] for p in midi_paths], [feats[p] for p in audio_paths],
                                                          params.embedding_k, params.embedding_score)
            top = match_embedding.restrict_top(Z1, candidates, params.k_prune)
            _lap(timings, "embedding", t)

        # 3. coarse DTW on the kept pairs and a few random ones per MIDI
        say(0.56, "coarse alignment")
        t = _clock()
        kept = np.zeros((n_midi, n_audio), bool)
        kept[np.repeat(np.arange(n_midi), top.shape[1]), top.ravel()] = True
        # Pairs grouped by MIDI, each group its kept recordings (best first) then its null pairs.
        groups = [np.concatenate([top[i], stages.null_candidates(n_audio, top[i], params.n_null, params.seed, i)])
                  for i in range(n_midi)]
        pm = np.repeat(np.arange(n_midi), [len(g) for g in groups])
        pa = np.concatenate(groups).astype(np.int64)
        group_start = np.concatenate([[0], np.cumsum([len(g) for g in groups])[:-1]])
        s2 = stages.coarse_scores(stages.pack([feats[p]["pooled"] for p in midi_paths]),
                                  stages.pack([feats[p]["pooled"] for p in audio_paths]),
                                  pm, pa, params.gully, params.penalty_scale)
        z2 = stages.sparse_zscores(pm, pa, s2, row_reference=~kept[pm, pa])
        _lap(timings, "coarse", t)

        # 4. confirm each MIDI's best pairs by the full alignment
        in_top = kept[pm, pa]
        confirm_idx = []
        for i in range(n_midi):
            rows_i = group_start[i] + np.arange(top.shape[1])
            confirm_idx += list(rows_i[np.argsort(-z2[rows_i], kind="stable")[:params.k_confirm]])
        confirm_idx = np.array(confirm_idx, np.int64)
        done_before = store.confirmed() if store else {}
        if sink:
            done_before.update(sink.confirmed(hashes))
        c3 = np.full(len(confirm_idx), np.nan)
        jobs = {}
        for t_idx, k in enumerate(confirm_idx):
            key = (hashes[midi_paths[pm[k]]], hashes[audio_paths[pa[k]]])
            if key in done_before:
                value = done_before[key]
                c3[t_idx] = value if isinstance(value, (int, float)) else np.nan
            else:
                jobs.setdefault(int(pm[k]), []).append(t_idx)
        tasks = [(midi_paths[i], [audio_paths[pa[confirm_idx[t_idx]]] for t_idx in idx], asdict(params))
                 for i, idx in jobs.items()]
        task_rows = list(jobs.values())
        say(0.65, f"confirming {sum(map(len, task_rows))} pairs ({len(confirm_idx) - sum(map(len, task_rows))} done before)")
        t = _clock()
        for done, (index, values) in enumerate(runner.run(confirm_task, tasks, cancel), start=1):
            for t_idx, value in zip(task_rows[index], values):
                k = confirm_idx[t_idx]
                key = (hashes[midi_paths[pm[k]]], hashes[audio_paths[pa[k]]])
                if isinstance(value, dict):
                    log(f"{midi_paths[pm[k]]} ↔ {audio_paths[pa[k]]}: {value['error']}")
                    value = value["error"]
                else:
                    c3[t_idx] = value
                if store:
                    store.add_confirmed(*key, value)
                if sink:
                    sink.add_confirmed(midi_paths[pm[k]], audio_paths[pa[k]], value)
            say(0.65 + 0.33 * done / max(len(tasks), 1), f"confirmed {done}/{len(tasks)} MIDIs")
        _lap(timings, "confirm", t)
    finally:
        runner.close()

    # 5. calibrated confidences, cascade order kept within each row, decisions
    t = _clock()
    decided = stages.decide(Z1, pm, pa, z2, in_top, confirm_idx, c3, params.threshold, calibration)
    if filtering:
        match_embedding.mark_dropped(decided, candidates)
    _lap(timings, "decide", t)
    result = MatchResult(midi_dir, audio_dir, midi_names, audio_names, params=params, **decided)
    result.bad_files = bad
    result.counts = {"midi": n_midi, "audio": n_audio, "bad_files": len(bad), "prune_pairs": n_midi * n_audio,
                     "coarse_pairs": len(pm), "confirm_pairs": len(confirm_idx),
                     "confirm_pairs_computed": sum(map(len, task_rows)), "features_computed": len(todo),
                     **({"embedding_pairs": n_midi * n_audio} if params.embedding_k else {})}
    _lap(timings, "total", t_start)
    result.timings = timings
    if sink:
        sink.finish(result)
    say(1.0, f"matched {n_midi} MIDIs: {int(np.sum(result.predicted >= 0))} with a recording")
    return result
