"""The project: a SQLite database of files, hand labels, results and an undo/redo history.

Task
----
A :class:`Project` records the MIDI and audio files of a library (path, content hash, duration,
metadata), the labels a person gives them — match labels ``(midi, audio) → match / no_match /
unsure`` with a note, and pace labels ``file → {bpm, ...}`` — the results the engine computed
for them (alignment confidence, match scores, tempo candidates, ...), and a history of every label
action with who made it and when, on which undo and redo operate. The history lives in the
database, so undo works across a restart.

Conventions
-----------
- One file per project, WAL journal, ``synchronous=FULL``, foreign keys on, schema versioned by
  ``PRAGMA user_version`` and upgraded by :mod:`engine.store_schema` on open.
- Every label action is one ``BEGIN IMMEDIATE … COMMIT`` transaction: when a method returns, the
  label is on disk; a crash (even ``kill -9``) afterwards cannot lose it.
- Several processes may open one project (two windows, a batch job): SQLite's locks serialise the
  writers. A writer that waits longer than ``busy_timeout_s`` gets a :class:`StoreError` saying the
  project is locked, never a corrupt file.
- A :class:`Project` object belongs to the thread that made it (sqlite3's rule); a background
  worker opens its own ``Project(path)`` on the same file.
- Pair results and labels store the MIDI file first, the recording second. Paces are bpm in
  [40, 320], rounded to 0.01 bpm so that a pace set is a set. Times are ISO 8601 UTC.
- The user's media files are only ever read (hashing, validation), never written, moved or deleted.
"""
from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

from engine.errors import StoreError
from engine.store_records import (  # noqa: F401  (re-exported: the records are part of this API)
    ALIGNMENT_CONFIDENCE, MATCH_SCORE, TEMPO_CANDIDATES, Candidate, FileRecord, HistoryEntry, LibraryRow,
    MatchLabel, PaceLabel, RelinkReport, Result, ScanReport, _FILE_COLUMNS, _LIBRARY_SQL, _NEXT_UNLABELLED_SQL,
    _candidate, _file_from_row, default_project_path, default_user, normalise_bpm, now_iso)
from engine.store_schema import APPLICATION_ID, LABELS, MAX_BPM, MIGRATIONS, MIN_BPM, SCHEMA_VERSION

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]


class Project:
    """An open project database.

    Parameters
    ----------
    path : str or Path, optional
        The project file; :func:`default_project_path` if None. Created (with its folder) when
        missing unless ``create`` is False.
    who : str, optional
        Recorded with every label action; :func:`default_user` if None.
    busy_timeout_s : float
        How long a write waits for another process holding the lock before :class:`StoreError`.
    create : bool
        Whether a missing project file may be created.

    Raises
    ------
    StoreError
        If the file is not an Earworm project, was written by a newer Earworm, cannot be
        created, or stays locked by another process.
    """

    def __init__(self, path=None, *, who: str | None = None, busy_timeout_s: float = 5.0, create: bool = True):
        self.path = Path(path) if path is not None else default_project_path()
        self.who = who or default_user()
        self.busy_timeout_s = float(busy_timeout_s)
        if not self.path.exists():
            if not create:
                raise StoreError(self.path, "no such project file")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(self.path, f"cannot create the project folder ({exc.strerror})") from None
        elif self.path.is_dir():
            raise StoreError(self.path, "is a folder, not a project file")
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot open the project ({exc})") from None
        try:
            self._setup()
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------------ connection and schema
    def _setup(self) -> None:
        c = self._conn
        try:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            app_id = c.execute("PRAGMA application_id").fetchone()[0]
            n_tables = c.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._error(exc, "not an Earworm project") from None
        if (version == 0 and n_tables) or (version and app_id != APPLICATION_ID):
            raise StoreError(self.path, "not an Earworm project (a SQLite database of something else)")
        if version > SCHEMA_VERSION:
            raise StoreError(self.path, f"made by a newer Earworm (schema {version}; this one knows up to "
                                        f"{SCHEMA_VERSION}); please upgrade")
        with self._sql("opening the project"):
            c.execute("PRAGMA foreign_keys = ON")
            if c.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise StoreError(self.path, "cannot switch the project to WAL mode (read-only folder?)")
            c.execute("PRAGMA synchronous = FULL")  # a committed label survives power loss, too
        if version < SCHEMA_VERSION:
            self._migrate()

    def _migrate(self) -> None:
        """Apply the missing migration steps in one transaction (another process may race us)."""
        with self._transaction() as c:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            for step in range(version, SCHEMA_VERSION):
                for statement in _split_sql(MIGRATIONS[step]):
                    c.execute(statement)
            c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        """Close the connection (everything is already committed)."""
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def data_version(self) -> int:
        """A number that changes when another connection commits: poll it to refresh views."""
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def library_version(self) -> tuple:
        """A cheap signature of the files table: changes when files are added, moved or go missing."""
        return tuple(self._query("SELECT count(*), max(id), total(missing), total(length(path)), max(mtime_ns) "
                                 "FROM files")[0])

    def integrity_check(self) -> list[str]:
        """SQLite's integrity check plus foreign keys: an empty list when the file is sound."""
        problems = [r[0] for r in self._conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key: {tuple(r)}" for r in self._conn.execute("PRAGMA foreign_key_check")]
        return problems

    def _error(self, exc: sqlite3.Error, context: str) -> StoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StoreError(self.path, f"project is locked by another process (waited {self.busy_timeout_s:g} s "
                                         f"while {context}); close the other window or try again")
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
            return StoreError(self.path, f"{context}: the file is not a database")
        return StoreError(self.path, f"{context}: {text}")

    @contextmanager
    def _sql(self, context: str):
        """Turn sqlite3 errors inside the block into a StoreError naming the project."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc, context) from None

    @contextmanager
    def _transaction(self, context: str = "writing"):
        """One write transaction: BEGIN IMMEDIATE (take the write lock now) … COMMIT."""
        c = self._conn
        with self._sql(context):
            c.execute("BEGIN IMMEDIATE")
        try:
            yield c
            with self._sql(context):
                c.execute("COMMIT")
        except BaseException as exc:
            if c.in_transaction:
                c.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc, context) from None
            raise

    def _query(self, sql: str, params=()) -> list:
        with self._sql("reading"):
            return self._conn.execute(sql, params).fetchall()

    # ------------------------------------------------------------------ files
    def file(self, file_id: int) -> FileRecord:
        rows = self._query(f"SELECT {_FILE_COLUMNS} FROM files f WHERE f.id = ?", (file_id,))
        if not rows:
            raise StoreError(self.path, f"no file with id {file_id} in this project")
        return _file_from_row(rows[0])

    def file_by_path(self, path) -> FileRecord | None:
        rows = self._query(f"SELECT {_FILE_COLUMNS} FROM files f WHERE f.path = ?", (_abs(path),))
        return _file_from_row(rows[0]) if rows else None

    def files(self, kind: str | None = None) -> list[FileRecord]:
        """Every file (of one kind), ordered by path."""
        where, params = ("WHERE f.kind = ?", (kind,)) if kind else ("", ())
        return [_file_from_row(r) for r in self._query(f"SELECT {_FILE_COLUMNS} FROM files f {where} ORDER BY f.path", params)]

    def count_files(self, kind: str | None = None) -> int:
        if kind:
            return self._query("SELECT count(*) FROM files WHERE kind = ?", (kind,))[0][0]
        return self._query("SELECT count(*) FROM files")[0][0]

    def add_file(self, path) -> FileRecord:
        """Add (or refresh) one media file. Raises the file's EarwormError if it is unreadable."""
        from engine.store_scan import probe_file

        probed = probe_file(path)
        self._upsert_files([probed])
        return self.file_by_path(probed.path)

    def add_folder(self, folder, progress: Progress | None = None, cancel: Cancel | None = None) -> ScanReport:
        """Add every MIDI and audio file under ``folder`` (recursively); see :mod:`engine.store_scan`."""
        from engine.store_scan import add_folder

        return add_folder(self, folder, progress=progress, cancel=cancel)

    def relink(self, search_dirs, progress: Progress | None = None, cancel: Cancel | None = None) -> RelinkReport:
        """Find files that moved by their content hash under ``search_dirs``; see :mod:`engine.store_scan`."""
        from engine.store_scan import relink

        return relink(self, search_dirs, progress=progress, cancel=cancel)

    def unreadable(self) -> list[tuple[str, str]]:
        """Files that adding a folder could not read: ``(path, reason)``, by path."""
        return [tuple(r) for r in self._query("SELECT path, reason FROM unreadable_files ORDER BY path")]

    def _upsert_files(self, probed: list, unreadable: Iterable[tuple[str, str]] = ()) -> None:
        """Insert or refresh probed files and note unreadable ones, in one transaction."""
        now = now_iso()
        with self._transaction("adding files") as c:
            for p in probed:
                c.execute(
                    "INSERT INTO files (path, kind, content_hash, size_bytes, mtime_ns, duration_s, metadata, added_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET kind = excluded.kind,"
                    " content_hash = excluded.content_hash, size_bytes = excluded.size_bytes,"
                    " mtime_ns = excluded.mtime_ns, duration_s = excluded.duration_s,"
                    " metadata = excluded.metadata, missing = 0",
                    (p.path, p.kind, p.content_hash, p.size_bytes, p.mtime_ns, p.duration_s,
                     json.dumps(p.metadata, sort_keys=True), now))
                c.execute("DELETE FROM unreadable_files WHERE path = ?", (p.path,))
            c.executemany("INSERT OR REPLACE INTO unreadable_files (path, reason, at) VALUES (?, ?, ?)",
                          [(path, reason, now) for path, reason in unreadable])

    def _file_stats(self) -> dict[str, tuple[int, int, int, int]]:
        """path → (id, size_bytes, mtime_ns, missing) of every file, for fast rescans."""
        return {r[0]: tuple(r[1:]) for r in self._query("SELECT path, id, size_bytes, mtime_ns, missing FROM files")}

    def _set_missing(self, missing_ids: set, present_ids: set) -> None:
        with self._transaction("marking missing files") as c:
            c.executemany("UPDATE files SET missing = 1 WHERE id = ?", [(i,) for i in missing_ids])
            c.executemany("UPDATE files SET missing = 0 WHERE id = ? AND missing", [(i,) for i in present_ids])

    def _move_files(self, moves: list[tuple[int, str, int]]) -> None:
        """Point files ``(id, new_path, mtime_ns)`` at their new place (relinking)."""
        with self._transaction("relinking files") as c:
            c.executemany("UPDATE files SET path = ?, mtime_ns = ?, missing = 0 WHERE id = ?",
                          [(path, mtime_ns, file_id) for file_id, path, mtime_ns in moves])

    # ------------------------------------------------------------------ match labels
    def set_match(self, midi_id: int, audio_id: int, label: str, note: str = "") -> MatchLabel:
        """Label the pair ``(midi_id, audio_id)``; committed (and undoable) when this returns."""
        if label not in LABELS:
            raise StoreError(self.path, f"unknown match label {label!r} (use one of {', '.join(LABELS)})")
        at = now_iso()
        with self._transaction("saving a label") as c:
            names = self._pair_names(c, midi_id, audio_id)
            before = self._match_state(c, midi_id, audio_id)
            if before and before["label"] == label and before["note"] == note:
                return MatchLabel(midi_id, audio_id, **before)
            after = {"label": label, "note": note, "who": self.who, "at": at}
            change = {"t": "match", "k": [midi_id, audio_id], "b": before, "a": after}
            _apply(c, change, "a")
            self._record(c, "match", f"{label}: {names[0]} ↔ {names[1]}", [change], at)
        return MatchLabel(midi_id, audio_id, label, note, self.who, at)

    def clear_match(self, midi_id: int, audio_id: int) -> None:
        """Remove the label of a pair (undoable); nothing happens when it has none."""
        at = now_iso()
        with self._transaction("clearing a label") as c:
            names = self._pair_names(c, midi_id, audio_id)
            before = self._match_state(c, midi_id, audio_id)
            if before is None:
                return
            change = {"t": "match", "k": [midi_id, audio_id], "b": before, "a": None}
            _apply(c, change, "a")
            self._record(c, "match", f"cleared: {names[0]} ↔ {names[1]}", [change], at)

    def match_label(self, midi_id: int, audio_id: int) -> MatchLabel | None:
        rows = self._query("SELECT midi_id, audio_id, label, note, who, at FROM match_labels "
                           "WHERE midi_id = ? AND audio_id = ?", (midi_id, audio_id))
        return MatchLabel(*rows[0]) if rows else None

    def match_labels(self, midi_id: int | None = None, audio_id: int | None = None) -> list[MatchLabel]:
        """All match labels, optionally of one MIDI and/or one recording."""
        sql = "SELECT midi_id, audio_id, label, note, who, at FROM match_labels WHERE 1"
        params = []
        if midi_id is not None:
            sql, params = sql + " AND midi_id = ?", params + [midi_id]
        if audio_id is not None:
            sql, params = sql + " AND audio_id = ?", params + [audio_id]
        return [MatchLabel(*r) for r in self._query(sql + " ORDER BY midi_id, audio_id", params)]

    def _pair_names(self, c, midi_id: int, audio_id: int) -> tuple[str, str]:
        kinds = {r[0]: (r[1], r[2]) for r in c.execute("SELECT id, kind, path FROM files WHERE id IN (?, ?)",
                                                        (midi_id, audio_id))}
        if kinds.get(midi_id, ("",))[0] != "midi":
            raise StoreError(self.path, f"file id {midi_id} is not a MIDI file of this project")
        if kinds.get(audio_id, ("",))[0] != "audio":
            raise StoreError(self.path, f"file id {audio_id} is not a recording of this project")
        return os.path.basename(kinds[midi_id][1]), os.path.basename(kinds[audio_id][1])

    @staticmethod
    def _match_state(c, midi_id: int, audio_id: int) -> dict | None:
        r = c.execute("SELECT label, note, who, at FROM match_labels WHERE midi_id = ? AND audio_id = ?",
                      (midi_id, audio_id)).fetchone()
        return None if r is None else {"label": r[0], "note": r[1], "who": r[2], "at": r[3]}

    # ------------------------------------------------------------------ pace labels
    def add_pace(self, file_id: int, bpm: float) -> float:
        """Add a pace (bpm) to a file's set; returns the stored value. Adding one twice is a no-op."""
        value = self._check_bpm(bpm)
        self._edit_paces(file_id, add={value}, remove=set(), summary=f"pace added {value:g} bpm")
        return value

    def remove_pace(self, file_id: int, bpm: float) -> None:
        """Remove a pace from a file's set (a no-op when it is not there)."""
        value = normalise_bpm(bpm)
        self._edit_paces(file_id, add=set(), remove={value}, summary=f"pace removed {value:g} bpm")

    def set_paces(self, file_id: int, bpms: Iterable[float]) -> None:
        """Make a file's pace set exactly ``bpms``, in one undoable action."""
        wanted = {self._check_bpm(b) for b in bpms}
        text = ", ".join(f"{b:g}" for b in sorted(wanted))
        self._edit_paces(file_id, add=wanted, remove=None, summary=f"paces set to {{{text}}}")

    def _edit_paces(self, file_id: int, add: set, remove: set | None, summary: str) -> None:
        """Add and remove paces of one file in one transaction; ``remove=None`` removes all not added."""
        at = now_iso()
        with self._transaction("saving paces") as c:
            row = c.execute("SELECT path FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is None:
                raise StoreError(self.path, f"no file with id {file_id} in this project")
            have = {r[0]: {"who": r[1], "at": r[2]} for r in
                    c.execute("SELECT bpm, who, at FROM pace_labels WHERE file_id = ?", (file_id,))}
            gone = (set(have) - add) if remove is None else (set(have) & remove)
            changes = [{"t": "pace", "k": [file_id, b], "b": have[b], "a": None} for b in sorted(gone)]
            changes += [{"t": "pace", "k": [file_id, b], "b": None, "a": {"who": self.who, "at": at}}
                        for b in sorted(add - set(have))]
            if changes:
                for ch in changes:
                    _apply(c, ch, "a")
                self._record(c, "pace", f"{summary}: {os.path.basename(row[0])}", changes, at)

    def paces(self, file_id: int) -> list[float]:
        """A file's paces in bpm, ascending."""
        return [r[0] for r in self._query("SELECT bpm FROM pace_labels WHERE file_id = ? ORDER BY bpm", (file_id,))]

    def pace_labels(self, file_id: int | None = None) -> list[PaceLabel]:
        sql, params = "SELECT file_id, bpm, who, at FROM pace_labels", ()
        if file_id is not None:
            sql, params = sql + " WHERE file_id = ?", (file_id,)
        return [PaceLabel(*r) for r in self._query(sql + " ORDER BY file_id, bpm", params)]

    def _check_bpm(self, bpm) -> float:
        try:
            value = normalise_bpm(bpm)
        except (TypeError, ValueError):
            raise StoreError(self.path, f"pace {bpm!r} is not a number") from None
        if not MIN_BPM <= value <= MAX_BPM:
            raise StoreError(self.path, f"pace {value:g} bpm is outside {MIN_BPM:g}–{MAX_BPM:g} bpm")
        return value

    # ------------------------------------------------------------------ history: undo / redo
    def _record(self, c, action: str, summary: str, changes: list, at: str) -> None:
        c.execute("UPDATE history SET state = 'dropped' WHERE state = 'undone'")  # a new action ends redo
        c.execute("INSERT INTO history (action, summary, changes, who, at, state) VALUES (?, ?, ?, ?, ?, 'done')",
                  (action, summary, json.dumps(changes), self.who, at))

    def _apply_batch(self, action: str, summary: str, changes: list) -> int:
        """Apply many label changes as one undoable action (imports). Returns how many changed."""
        at = now_iso()
        with self._transaction("importing labels") as c:
            real = []
            for ch in changes:
                t, k, after = ch["t"], ch["k"], ch["a"]
                before = self._match_state(c, *k) if t == "match" else _pace_state(c, *k)
                if t == "match":
                    same = before == after or (before is not None and after is not None and
                                               (before["label"], before["note"]) == (after["label"], after["note"]))
                else:
                    same = (before is None) == (after is None)
                if not same:
                    real.append({"t": t, "k": k, "b": before, "a": after})
            for ch in real:
                _apply(c, ch, "a")
            if real:
                self._record(c, action, f"{summary} ({len(real)} changes)", real, at)
        return len(real)

    def undo(self) -> HistoryEntry | None:
        """Undo the latest label action (of anyone, in any session). Returns it, or None."""
        return self._step("done", "undone", "undo", "DESC", "b")

    def redo(self) -> HistoryEntry | None:
        """Redo the most recently undone action. Returns it, or None."""
        return self._step("undone", "done", "redo", "ASC", "a")

    def _step(self, from_state: str, to_state: str, verb: str, order: str, side: str) -> HistoryEntry | None:
        at = now_iso()
        with self._transaction(f"{verb}ing") as c:
            row = c.execute(f"SELECT id, action, summary, changes, who, at FROM history WHERE state = ? "
                            f"ORDER BY id {order} LIMIT 1", (from_state,)).fetchone()
            if row is None:
                return None
            changes = json.loads(row[3])
            for ch in (reversed(changes) if side == "b" else changes):
                _apply(c, ch, side)
            c.execute("UPDATE history SET state = ? WHERE id = ?", (to_state, row[0]))
            c.execute("INSERT INTO history (action, summary, changes, who, at, state, target_id) "
                      "VALUES (?, ?, '[]', ?, ?, 'log', ?)", (verb, f"{verb}: {row[2]}", self.who, at, row[0]))
        keys = tuple((ch["t"], *ch["k"]) for ch in changes)
        return HistoryEntry(row[0], row[1], row[2], row[4], row[5], to_state, None, keys)

    def can_undo(self) -> bool:
        return bool(self._query("SELECT 1 FROM history WHERE state = 'done' LIMIT 1"))

    def can_redo(self) -> bool:
        return bool(self._query("SELECT 1 FROM history WHERE state = 'undone' LIMIT 1"))

    def history(self, limit: int = 100) -> list[HistoryEntry]:
        """The latest history rows, newest first (label actions and undo/redo log rows)."""
        return [HistoryEntry(*r) for r in self._query(
            "SELECT id, action, summary, who, at, state, target_id FROM history ORDER BY id DESC LIMIT ?", (limit,))]

    # ------------------------------------------------------------------ results
    def put_result(self, kind: str, file_id: int, *, other_id: int | None = None, value: float | None = None,
                   data=None, params: str = "") -> None:
        """Store (replace) one computed result; pair results keep the MIDI as ``file_id``."""
        self.put_results(kind, [(file_id, other_id, value, data)], params=params)

    def put_results(self, kind: str, rows: Iterable[tuple], params: str = "") -> int:
        """Store many ``(file_id, other_id, value, data)`` results of one kind in one transaction."""
        at = now_iso()
        rows = list(rows)
        with self._transaction("saving results") as c:
            c.executemany("INSERT OR REPLACE INTO results (kind, file_id, other_id, value, data, params, at) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)",
                          [(kind, f, o, None if v is None else float(v), None if d is None else json.dumps(d), params, at)
                           for f, o, v, d in rows])
        return len(rows)

    def results(self, kind: str, file_id: int | None = None, other_id: int | None = None,
                params: str | None = "") -> list[Result]:
        """Results of one kind, optionally of one file / pair / parameter string (None: any)."""
        sql, args = "SELECT kind, file_id, other_id, value, data, params, at FROM results WHERE kind = ?", [kind]
        for column, value in (("file_id", file_id), ("other_id", other_id), ("params", params)):
            if value is not None:
                sql, args = sql + f" AND {column} = ?", args + [value]
        return [Result(r[0], r[1], r[2], r[3], None if r[4] is None else json.loads(r[4]), r[5], r[6])
                for r in self._query(sql + " ORDER BY file_id, other_id", args)]

    def result(self, kind: str, file_id: int, other_id: int | None = None, params: str = "") -> Result | None:
        found = [r for r in self.results(kind, file_id, other_id, params) if r.other_id == other_id]
        return found[0] if found else None

    # ------------------------------------------------------------------ views for the panels
    def candidates(self, midi_id: int) -> list[Candidate]:
        """Every recording for one MIDI, best first: by alignment confidence, then match score, then path."""
        query = ("SELECT other_id, value FROM results WHERE kind = ? AND file_id = ? AND params = '' "
                 "AND other_id IS NOT NULL")
        confidence = dict(self._query(query, (ALIGNMENT_CONFIDENCE, midi_id)))
        score = dict(self._query(query, (MATCH_SCORE, midi_id)))
        labels = {lab.audio_id: lab for lab in self.match_labels(midi_id=midi_id)}
        found = [Candidate(f, confidence.get(f.id), score.get(f.id), labels.get(f.id)) for f in self.files("audio")]
        found.sort(key=lambda c: (c.confidence is None, -(c.confidence or 0.0), c.match_score is None,
                                  -(c.match_score or 0.0), c.audio.path))
        return found

    def next_unlabelled(self, midi_id: int) -> Candidate | None:
        """The best-ranked recording that has no label with this MIDI yet, or None (one query)."""
        rows = self._query(_NEXT_UNLABELLED_SQL, {"midi": midi_id})
        return _candidate(rows[0], midi_id) if rows else None

    def library_rows(self, kind: str | None = None, search: str | None = None) -> list[LibraryRow]:
        """Every file with its label counts, paces and best scores, by path (one query)."""
        sql, args = _LIBRARY_SQL, {"kind": kind, "search": None}
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args["search"] = f"%{escaped}%"
        out = []
        for r in self._query(sql, args):
            paces = tuple(sorted(float(b) for b in r[12].split(","))) if r[12] else ()
            out.append(LibraryRow(_file_from_row(r[:9]), r[9] or 0, r[10] or 0, r[11] or 0, paces, r[13], r[14]))
        return out


def _pace_state(c, file_id: int, bpm: float) -> dict | None:
    r = c.execute("SELECT who, at FROM pace_labels WHERE file_id = ? AND bpm = ?", (file_id, bpm)).fetchone()
    return None if r is None else {"who": r[0], "at": r[1]}


def _apply(c, change: dict, side: str) -> None:
    """Make one label's state what ``change[side]`` says (None: no label)."""
    state, (a, b) = change[side], change["k"]
    if change["t"] == "match":
        if state is None:
            c.execute("DELETE FROM match_labels WHERE midi_id = ? AND audio_id = ?", (a, b))
        else:
            c.execute("INSERT OR REPLACE INTO match_labels (midi_id, audio_id, label, note, who, at) "
                      "VALUES (?, ?, ?, ?, ?, ?)", (a, b, state["label"], state["note"], state["who"], state["at"]))
    elif state is None:
        c.execute("DELETE FROM pace_labels WHERE file_id = ? AND bpm = ?", (a, b))
    else:
        c.execute("INSERT OR REPLACE INTO pace_labels (file_id, bpm, who, at) VALUES (?, ?, ?, ?)",
                  (a, b, state["who"], state["at"]))


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (ours hold no ';' inside literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def _abs(path) -> str:
    return os.path.abspath(os.fspath(path))
