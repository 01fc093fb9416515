"""The project database's schema, as an ordered list of migration steps.

Task
----
A project file records a library of MIDI and audio files, hand labels (matches and paces), an
undo/redo history and computed results. Its layout changes as Earworm grows; this module holds
every layout change ever made, in order, so that any older project can be brought up to date.

Conventions
-----------
- ``PRAGMA user_version`` is the number of migration steps applied (0 = empty database).
  ``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``.
- Steps are append-only: never edit a released step; add a new one.
- ``PRAGMA application_id`` marks the file as an Earworm project, so that a foreign SQLite file
  is refused instead of being "upgraded".
- Times are ISO 8601 UTC strings with milliseconds; durations are seconds (``*_s``); tempi are
  beats per minute (``bpm``). Pair tables keep the MIDI file first, the recording second.
- JSON columns (``metadata``, ``changes``, ``data``) hold plain JSON, never pickles.
"""
from __future__ import annotations

APPLICATION_ID = 0x45617277  # "Earw"

LABELS = ("match", "no_match", "unsure")
MIN_BPM, MAX_BPM = 40.0, 320.0

# Version 1: the library, the two kinds of label, and the history.
_V1 = """
CREATE TABLE files (
    id            INTEGER PRIMARY KEY,
    path          TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL CHECK (kind IN ('midi', 'audio')),
    content_hash  TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    mtime_ns      INTEGER NOT NULL,
    duration_s    REAL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    added_at      TEXT NOT NULL
);
CREATE INDEX files_content_hash ON files (content_hash);

CREATE TABLE match_labels (
    midi_id   INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    audio_id  INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    label     TEXT NOT NULL CHECK (label IN ('match', 'no_match', 'unsure')),
    note      TEXT NOT NULL DEFAULT '',
    who       TEXT NOT NULL,
    at        TEXT NOT NULL,
    PRIMARY KEY (midi_id, audio_id)
) WITHOUT ROWID;

CREATE TABLE pace_labels (
    file_id  INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    bpm      REAL NOT NULL CHECK (bpm >= 40 AND bpm <= 320),
    who      TEXT NOT NULL,
    at       TEXT NOT NULL,
    PRIMARY KEY (file_id, bpm)
) WITHOUT ROWID;

CREATE TABLE history (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    action   TEXT NOT NULL,
    summary  TEXT NOT NULL,
    changes  TEXT NOT NULL,
    who      TEXT NOT NULL,
    at       TEXT NOT NULL,
    state    TEXT NOT NULL CHECK (state IN ('done', 'undone', 'dropped', 'log'))
);
"""

# Version 2: computed results, a record of unreadable files, a "missing" flag for files that moved,
# the undo/redo log's link to the action it acted on, and the indices a 10 000-file library needs.
_V2 = """
ALTER TABLE files ADD COLUMN missing INTEGER NOT NULL DEFAULT 0;
CREATE INDEX files_kind_path ON files (kind, path);
CREATE INDEX match_labels_audio ON match_labels (audio_id);
ALTER TABLE history ADD COLUMN target_id INTEGER;
CREATE INDEX history_state ON history (state, id);

CREATE TABLE results (
    id        INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL,
    file_id   INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    other_id  INTEGER REFERENCES files (id) ON DELETE CASCADE,
    value     REAL,
    data      TEXT,
    params    TEXT NOT NULL DEFAULT '',
    at        TEXT NOT NULL
);
CREATE UNIQUE INDEX results_key ON results (kind, file_id, IFNULL(other_id, 0), params);
CREATE INDEX results_pair ON results (kind, file_id, other_id, params, value);
CREATE INDEX results_other ON results (kind, other_id, value);

CREATE TABLE unreadable_files (
    path    TEXT PRIMARY KEY,
    reason  TEXT NOT NULL,
    at      TEXT NOT NULL
);
"""

MIGRATIONS: list[str] = [_V1, _V2]
SCHEMA_VERSION = len(MIGRATIONS)
