"""Where a library match keeps what it computed, so that a rerun resumes (see :mod:`engine.match`).

- :class:`RunDir`: a run directory (``run.json`` naming the folders and parameters,
  ``features/<content hash>.npz``, ``confirmed.jsonl`` with one line per aligned pair, appended as
  each result arrives: a kill loses at most the line being written);
- :class:`ProjectSink`: the same in a project (:mod:`engine.store`): the folders' files, results of
  kind ``alignment_confidence`` as they come (flushed in batches) and ``match_score`` at the end,
  all under the parameters' tag;
- :func:`default_run_dir`: a run directory in the feature cache named after the folders,
  parameters and models.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from engine.errors import EarwormError


class MatchError(EarwormError):
    """A matching job that cannot run (no files, a run directory made with other parameters…)."""


class RunDir:
    """What a run has computed so far, on disk (see the module docstring)."""

    def __init__(self, path, identity: dict):
        self.path = Path(path)
        (self.path / "features").mkdir(parents=True, exist_ok=True)
        meta = self.path / "run.json"
        if meta.exists():
            try:
                stored = json.loads(meta.read_text())
            except (OSError, ValueError):
                stored = None
            if stored != identity:
                raise MatchError(self.path, "this run directory belongs to another match (other folders or "
                                            "parameters); give another --run-dir")
        else:
            meta.write_text(json.dumps(identity, indent=1) + "\n")

    def features(self, content_hash: str) -> dict | None:
        try:
            with np.load(self.path / "features" / f"{content_hash}.npz", allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError):
            return None

    def save_features(self, content_hash: str, arrays: dict) -> None:
        target = self.path / "features" / f"{content_hash}.npz"
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, target)

    def confirmed(self) -> dict:
        """(midi_hash, audio_hash) → confidence (or an error string) of the pairs already aligned."""
        out = {}
        try:
            with open(self.path / "confirmed.jsonl") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        out[(row["midi"], row["audio"])] = row["value"]
                    except (ValueError, KeyError):
                        continue  # a line cut short by a kill: that pair is aligned again
        except FileNotFoundError:
            pass
        return out

    def add_confirmed(self, midi_hash: str, audio_hash: str, value) -> None:
        with open(self.path / "confirmed.jsonl", "a") as f:
            f.write(json.dumps({"midi": midi_hash, "audio": audio_hash, "value": value}) + "\n")


def default_run_dir(midi_dir, audio_dir, params, models: str = "") -> Path | None:
    """A run directory in the cache, named after the folders, parameters and models (None if no cache)."""
    from engine.cache import cache_dir

    root = cache_dir()
    if root is None:
        return None
    key = hashlib.sha1(f"{os.path.abspath(midi_dir)}\n{os.path.abspath(audio_dir)}\n{params.tag()}{models}".encode()).hexdigest()
    return root / "match-runs" / key[:16]


class ProjectSink:
    """Stores a match in a project: its files, confirmed alignments as they come, final scores."""

    def __init__(self, project_path, midi_dir, audio_dir, tag, say):
        from engine.store import Project

        self.project = Project(project_path)
        self.tag = tag
        for folder in (midi_dir, audio_dir):
            say(0.005, f"adding {folder} to the project")
            self.project.add_folder(folder)
        self.ids = {f.path: f for f in self.project.files()}
        self.pending = []
        self.last_flush = time.monotonic()

    def confirmed(self, hashes) -> dict:
        from engine.store import ALIGNMENT_CONFIDENCE

        by_id = {f.id: f for f in self.ids.values()}
        out = {}
        for r in self.project.results(ALIGNMENT_CONFIDENCE, params=self.tag):
            if r.file_id in by_id and r.other_id in by_id:
                value = r.value if r.value is not None else (r.data or {}).get("error", "error")
                out[(by_id[r.file_id].content_hash, by_id[r.other_id].content_hash)] = value
        return out

    def add_confirmed(self, midi_path, audio_path, value) -> None:
        m, a = self.ids.get(os.path.abspath(midi_path)), self.ids.get(os.path.abspath(audio_path))
        if m is None or a is None:
            return
        self.pending.append((m.id, a.id, value if not isinstance(value, str) else None,
                             {"error": value} if isinstance(value, str) else None))
        if len(self.pending) >= 256 or time.monotonic() - self.last_flush > 2.0:
            self.flush()

    def flush(self) -> None:
        from engine.store import ALIGNMENT_CONFIDENCE

        if self.pending:
            self.project.put_results(ALIGNMENT_CONFIDENCE, self.pending, params=self.tag)
            self.pending = []
        self.last_flush = time.monotonic()

    def finish(self, result) -> None:
        from engine.store import MATCH_SCORE

        self.flush()
        rows = []
        for i, j in zip(*np.nonzero(result.stage >= 2)):
            m = self.ids.get(os.path.abspath(result.midi_dir / result.midi_names[i]))
            a = self.ids.get(os.path.abspath(result.audio_dir / result.audio_names[j]))
            if m is not None and a is not None:
                rows.append((m.id, a.id, float(result.scores[i, j]), {"stage": int(result.stage[i, j])}))
        self.project.put_results(MATCH_SCORE, rows, params=self.tag)
        self.project.close()
