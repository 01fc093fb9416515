"""Plain records the project hands out, and the read-only queries behind the panels' views.

Task
----
Everything :mod:`engine.store` returns is one of these frozen dataclasses (no sqlite3 rows leak
out), so the GUI and the CLI never touch SQL. The two view queries — the candidate recordings of
one MIDI file, and the library's summary rows — live here beside the records they build.

Conventions
-----------
Records are immutable NamedTuples (cheap to build by the ten thousand: a library listing makes one
per file); change one with ``record._replace(field=value)``. Times are ISO 8601 UTC strings with milliseconds; durations are seconds (``*_s``); paces are bpm.
Pairs keep the MIDI file first and the recording second.
"""
from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass, field
from typing import NamedTuple
from datetime import datetime, timezone
from pathlib import Path

# Result kinds the engine writes; other issues may add their own strings.
ALIGNMENT_CONFIDENCE = "alignment_confidence"
MATCH_SCORE = "match_score"
TEMPO_CANDIDATES = "tempo_candidates"


def now_iso() -> str:
    """The current time as an ISO 8601 UTC string with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def default_user() -> str:
    """Who labels: ``$EARWORM_USER``, else the login name."""
    try:
        return os.environ.get("EARWORM_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def default_project_path() -> Path:
    """The default project: ``default.earworm`` in ``$EARWORM_DATA_DIR`` or the user data dir."""
    env = os.environ.get("EARWORM_DATA_DIR")
    if env:
        return Path(env) / "default.earworm"
    from platformdirs import user_data_dir

    return Path(user_data_dir("earworm")) / "default.earworm"


def normalise_bpm(bpm: float) -> float:
    """A pace rounded to 0.01 bpm, the key under which it is stored."""
    return round(float(bpm), 2)


class FileRecord(NamedTuple):
    """One file of the library. ``metadata`` is parsed from JSON on first use."""

    id: int
    path: str
    kind: str  # "midi" or "audio"
    content_hash: str
    size_bytes: int
    duration_s: float | None
    missing: bool
    added_at: str
    metadata_json: str = "{}"

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def metadata(self) -> dict:
        return json.loads(self.metadata_json or "{}")


class MatchLabel(NamedTuple):
    midi_id: int
    audio_id: int
    label: str  # one of LABELS
    note: str
    who: str
    at: str


class PaceLabel(NamedTuple):
    file_id: int
    bpm: float
    who: str
    at: str


class Result(NamedTuple):
    kind: str
    file_id: int
    other_id: int | None
    value: float | None
    data: object  # parsed JSON or None
    params: str
    at: str


class HistoryEntry(NamedTuple):
    """One row of the history: a label action (state done/undone/dropped) or an undo/redo (log)."""

    id: int
    action: str
    summary: str
    who: str
    at: str
    state: str
    target_id: int | None
    keys: tuple = ()  # what an undo/redo touched: ("match", midi_id, audio_id) / ("pace", file_id, bpm)


class Candidate(NamedTuple):
    """A recording considered for one MIDI file, with what is known about the pair."""

    audio: FileRecord
    confidence: float | None  # alignment confidence, None until computed
    match_score: float | None
    label: MatchLabel | None


class LibraryRow(NamedTuple):
    """A file with the summary the library panel shows: label counts, paces, best scores."""

    file: FileRecord
    n_match: int
    n_no_match: int
    n_unsure: int
    paces_bpm: tuple[float, ...]
    best_confidence: float | None
    best_match_score: float | None

    @property
    def n_labels(self) -> int:
        return self.n_match + self.n_no_match + self.n_unsure


@dataclass
class ScanReport:
    """What adding a folder did. ``unreadable`` is a list of ``(path, reason)``."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False


@dataclass
class RelinkReport:
    """What relinking did: ``relinked`` is a list of ``(old_path, new_path)``."""

    relinked: list[tuple[str, str]] = field(default_factory=list)
    still_missing: list[str] = field(default_factory=list)
    cancelled: bool = False


_FILE_COLUMNS = "f.id, f.path, f.kind, f.content_hash, f.size_bytes, f.duration_s, f.missing, f.added_at, f.metadata"


def _file_from_row(r) -> FileRecord:
    return FileRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6] == 1, r[7], r[8])



_NEXT_UNLABELLED_SQL = f"""
SELECT {_FILE_COLUMNS}, ac.value, ms.value, m.label, m.note, m.who, m.at
FROM files f
LEFT JOIN results ac ON ac.kind = '{ALIGNMENT_CONFIDENCE}' AND ac.file_id = :midi AND ac.other_id = f.id AND ac.params = ''
LEFT JOIN results ms ON ms.kind = '{MATCH_SCORE}' AND ms.file_id = :midi AND ms.other_id = f.id AND ms.params = ''
LEFT JOIN match_labels m ON m.midi_id = :midi AND m.audio_id = f.id
WHERE f.kind = 'audio' AND m.label IS NULL
ORDER BY ac.value IS NULL, ac.value DESC, ms.value IS NULL, ms.value DESC, f.path LIMIT 1"""

# Best scores per file, from covering indices: a MIDI's are grouped by file_id, a recording's by other_id.
_BEST = "SELECT {side} AS fid, MAX(value) AS v FROM results WHERE kind = '{kind}' AND other_id IS NOT NULL GROUP BY {side}"

_LIBRARY_SQL = f"""
WITH ends AS (SELECT midi_id AS fid, label FROM match_labels UNION ALL SELECT audio_id, label FROM match_labels),
counts AS (SELECT fid, SUM(label = 'match') AS n_match, SUM(label = 'no_match') AS n_no,
                  SUM(label = 'unsure') AS n_unsure FROM ends GROUP BY fid),
paces AS (SELECT file_id AS fid, group_concat(bpm) AS bpms FROM pace_labels GROUP BY file_id),
conf_m AS ({_BEST.format(side="file_id", kind=ALIGNMENT_CONFIDENCE)}),
conf_a AS ({_BEST.format(side="other_id", kind=ALIGNMENT_CONFIDENCE)}),
score_m AS ({_BEST.format(side="file_id", kind=MATCH_SCORE)}),
score_a AS ({_BEST.format(side="other_id", kind=MATCH_SCORE)})
SELECT {_FILE_COLUMNS}, counts.n_match, counts.n_no, counts.n_unsure, paces.bpms,
       CASE f.kind WHEN 'midi' THEN conf_m.v ELSE conf_a.v END,
       CASE f.kind WHEN 'midi' THEN score_m.v ELSE score_a.v END
FROM files f LEFT JOIN counts ON counts.fid = f.id LEFT JOIN paces ON paces.fid = f.id
LEFT JOIN conf_m ON conf_m.fid = f.id LEFT JOIN conf_a ON conf_a.fid = f.id
LEFT JOIN score_m ON score_m.fid = f.id LEFT JOIN score_a ON score_a.fid = f.id
WHERE (:kind IS NULL OR f.kind = :kind) AND (:search IS NULL OR f.path LIKE :search ESCAPE '\\')
ORDER BY f.path"""


def _candidate(r, midi_id: int) -> Candidate:
    label = MatchLabel(midi_id, r[0], r[11], r[12], r[13], r[14]) if r[11] else None
    return Candidate(_file_from_row(r[:9]), r[9], r[10], label)
