"""Qt-free view-models of the library and labelling panels, over an :class:`engine.store.Project`.

Task
----
Hold what the library, match-labelling and pace-labelling panels show — rows, the chosen MIDI,
its ranked candidates, the current candidate, a file's paces, the tap-tempo state — and turn user
intents (label this Y/N/U and move on, undo, tap, add half) into store calls. Qt widgets observe
these models through :class:`gui.session.Event` s and redraw; they never touch the project.

Conventions
-----------
- Every label action goes straight to the store (committed when the call returns), then the model
  updates its in-memory copy of the one row that changed, so a key press costs one transaction,
  not a reload. Undo/redo and changes made by another window (seen by polling
  :meth:`LabelSession.poll`) reload.
- A :class:`LabelSession` is shared by the panels of one window: one project, one undo history,
  one ``labels_changed`` event so every panel stays in step.
- Background work is plain functions (``scan_folder_job``, ``confidence_job``) that open their own
  ``Project`` on the same file (sqlite3 objects belong to one thread) and take
  ``progress(fraction, message)`` and ``cancel()`` as :mod:`gui.workers` passes them.
- Times are seconds (``*_s``), tempi bpm.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from engine.errors import StoreError
from engine.store import ALIGNMENT_CONFIDENCE, Candidate, HistoryEntry, LibraryRow, Project
from engine.store_schema import MAX_BPM, MIN_BPM
from gui.session import Event

LABEL_KEYS = {"y": "match", "n": "no_match", "u": "unsure"}
SUGGESTION_TOLERANCE = 0.02  # a suggested tempo this close to a labelled pace is not offered again


class LabelSession:
    """The project shared by the panels of one window, with project-wide undo/redo and events.

    Events: ``labels_changed(origin)`` after any label change (``origin`` is the model that made
    it, or None for undo/redo/another window), ``files_changed(None)`` after the library changed,
    ``history_changed(None)`` whenever undo/redo availability may have changed.
    """

    def __init__(self, project: Project):
        self.project = project
        self.labels_changed = Event("labels_changed")
        self.files_changed = Event("files_changed")
        self.history_changed = Event("history_changed")
        self._data_version = project.data_version()
        self._library_version = project.library_version()

    @classmethod
    def of(cls, project_or_session) -> "LabelSession":
        return project_or_session if isinstance(project_or_session, LabelSession) else cls(project_or_session)

    def changed(self, origin=None) -> None:
        """Announce a label change made through this session."""
        self.labels_changed.emit(origin)
        self.history_changed.emit(None)

    def undo(self):
        """Undo the project's latest label action; ``labels_changed`` carries the HistoryEntry."""
        entry = self.project.undo()
        if entry is not None:
            self.changed(entry)
        return entry

    def redo(self):
        entry = self.project.redo()
        if entry is not None:
            self.changed(entry)
        return entry

    def poll(self) -> bool:
        """Reload if another process (window, batch job) committed since the last poll."""
        version = self.project.data_version()
        if version == self._data_version:
            return False
        self._data_version = version
        library_version = self.project.library_version()
        if library_version != self._library_version:  # refilling 10 000-item lists only when needed
            self._library_version = library_version
            self.files_changed.emit(None)
        self.changed(None)
        return True


# ---------------------------------------------------------------------------- library
SORT_KEYS = {
    "name": lambda r: r.file.name.lower(),
    "kind": lambda r: (r.file.kind, r.file.name.lower()),
    "duration": lambda r: (r.file.duration_s is None, r.file.duration_s or 0.0),
    "labels": lambda r: (r.n_labels, r.n_match),
    "paces": lambda r: (len(r.paces_bpm), r.paces_bpm),
    "confidence": lambda r: (r.best_confidence is None, r.best_confidence or 0.0),
    "score": lambda r: (r.best_match_score is None, r.best_match_score or 0.0),
    "path": lambda r: r.file.path,
}


class LibraryModel:
    """The library's rows with search, kind filter and sort.

    Events: ``rows_changed(rows)``, ``unreadable_changed([(path, reason), ...])``, and
    ``became_stale(None)`` when labels changed: re-reading 10 000 rows on every key press would
    slow labelling down, so a view calls :meth:`refresh` when it suits it (after a short pause).
    """

    def __init__(self, session):
        self.session = LabelSession.of(session)
        self.rows: list[LibraryRow] = []
        self.search, self.kind, self.sort_key, self.descending = "", None, "name", False
        self.stale = False
        self.rows_changed = Event("rows_changed")
        self.unreadable_changed = Event("unreadable_changed")
        self.became_stale = Event("became_stale")
        self.session.labels_changed.connect(self._on_labels_changed)
        self.session.files_changed.connect(lambda _: self.refresh(with_unreadable=True))
        self.refresh(with_unreadable=True)

    def _on_labels_changed(self, origin) -> None:
        self.stale = True
        self.became_stale.emit(None)

    @property
    def project(self) -> Project:
        return self.session.project

    def refresh(self, with_unreadable: bool = False) -> None:
        rows = self.project.library_rows(kind=self.kind, search=self.search or None)
        self.rows, self.stale = self._sorted(rows), False
        self.rows_changed.emit(self.rows)
        if with_unreadable:
            self.unreadable_changed.emit(self.project.unreadable())

    def set_search(self, text: str) -> None:
        if text != self.search:
            self.search = text
            self.refresh()

    def set_kind(self, kind: str | None) -> None:
        if kind != self.kind:
            self.kind = kind
            self.refresh()

    def set_sort(self, key: str, descending: bool = False) -> None:
        if key not in SORT_KEYS:
            raise ValueError(f"unknown sort key {key!r}")
        self.sort_key, self.descending = key, descending
        self.rows = self._sorted(self.rows)
        self.rows_changed.emit(self.rows)

    def _sorted(self, rows: list[LibraryRow]) -> list[LibraryRow]:
        return sorted(rows, key=SORT_KEYS[self.sort_key], reverse=self.descending)

    def scan_finished(self, report) -> None:
        """Call on the GUI thread when a background :func:`scan_folder_job` finished."""
        self.session.files_changed.emit(report)


def scan_folder_job(project_path, folder, progress=None, cancel=None):
    """Background job: add ``folder`` to the project at ``project_path`` (own connection)."""
    with Project(project_path) as project:
        return project.add_folder(folder, progress=progress, cancel=cancel)


def relink_job(project_path, search_dirs, progress=None, cancel=None):
    """Background job: find the project's moved files under ``search_dirs`` (own connection)."""
    with Project(project_path) as project:
        return project.relink(search_dirs, progress=progress, cancel=cancel)


def import_labels_job(project_path, fmt: str, src, progress=None, cancel=None):
    """Background job: validate and import a labels file (all or nothing); returns an ImportReport."""
    from engine.labels_io import import_labels

    with Project(project_path) as project:
        return import_labels(project, fmt, src)


def export_labels_job(project_path, fmt: str, out, progress=None, cancel=None) -> int:
    """Background job: export labels or scores; returns how many rows (files for JAMS) were written."""
    from engine.labels_io import export_labels

    with Project(project_path) as project:
        return export_labels(project, fmt, out)


# ---------------------------------------------------------------------------- match labelling
class MatchLabelModel:
    """One MIDI file and its candidate recordings, ranked; Y/N/U labels the current one and moves on.

    Events: ``candidates_changed(candidates)`` (a new list), ``candidate_updated(index)`` (one row
    changed), ``current_changed(index or None)``, ``midi_changed(midi_id or None)``.
    """

    def __init__(self, session):
        self.session = LabelSession.of(session)
        self.midi_id: int | None = None
        self.candidates: list[Candidate] = []
        self.current: int | None = None
        self.candidates_changed = Event("candidates_changed")
        self.candidate_updated = Event("candidate_updated")
        self.current_changed = Event("current_changed")
        self.midi_changed = Event("midi_changed")
        self.session.labels_changed.connect(self._on_labels_changed)

    @property
    def project(self) -> Project:
        return self.session.project

    @property
    def current_candidate(self) -> Candidate | None:
        return None if self.current is None else self.candidates[self.current]

    @property
    def current_audio_id(self) -> int | None:
        c = self.current_candidate
        return None if c is None else c.audio.id

    def midi_files(self):
        return self.project.files("midi")

    def select_midi(self, midi_id: int | None) -> None:
        """Show the candidates of one MIDI, with the best-ranked unlabelled one current."""
        self.midi_id = midi_id
        self.midi_changed.emit(midi_id)
        self.reload(keep_current=False)
        if self.go_next_unlabelled(from_start=True) is None and self.candidates:
            self._set_current(0)  # all labelled: start at the top

    def reload(self, keep_current: bool = True) -> None:
        """Read the candidates again (after undo, new confidences, another window's labels)."""
        keep = self.current_audio_id if keep_current else None
        self.candidates = self.project.candidates(self.midi_id) if self.midi_id is not None else []
        self.candidates_changed.emit(self.candidates)
        index = self.index_of(keep) if keep is not None else None
        self._set_current(index if index is not None else (0 if self.candidates and keep_current else None),
                          force=True)

    def index_of(self, audio_id: int) -> int | None:
        return next((i for i, c in enumerate(self.candidates) if c.audio.id == audio_id), None)

    def set_current(self, index: int | None) -> None:
        self._set_current(index)

    def _set_current(self, index: int | None, force: bool = False) -> None:
        if index is not None and not 0 <= index < len(self.candidates):
            index = None
        if index != self.current or force:
            self.current = index
            self.current_changed.emit(index)

    def label_current(self, label: str, note: str | None = None) -> Candidate | None:
        """Label the current candidate (committed on return) and move to the next unlabelled one."""
        c = self.current_candidate
        if c is None or self.midi_id is None:
            return None
        keep_note = c.label.note if (note is None and c.label is not None) else (note or "")
        saved = self.project.set_match(self.midi_id, c.audio.id, label, keep_note)
        self.candidates[self.current] = c._replace(label=saved)
        self.candidate_updated.emit(self.current)
        self.session.changed(self)
        self.go_next_unlabelled()
        return self.current_candidate

    def label_key(self, key: str) -> Candidate | None:
        """Y / N / U as typed on the keyboard."""
        return self.label_current(LABEL_KEYS[key.lower()])

    def set_note(self, note: str) -> None:
        """Set the current pair's note, keeping its label (a pair needs a label before a note)."""
        c = self.current_candidate
        if c is None or c.label is None:
            raise StoreError(self.project.path, "label the pair (Y/N/U) before adding a note")
        saved = self.project.set_match(self.midi_id, c.audio.id, c.label.label, note)
        self.candidates[self.current] = c._replace(label=saved)
        self.candidate_updated.emit(self.current)
        self.session.changed(self)

    def go_next_unlabelled(self, from_start: bool = False) -> int | None:
        """Make the next unlabelled candidate (after the current one, wrapping) current."""
        n = len(self.candidates)
        start = 0 if (from_start or self.current is None) else self.current + 1
        for k in range(n):
            i = (start + k) % n
            if self.candidates[i].label is None:
                self._set_current(i)
                return i
        return None

    def move(self, step: int) -> None:
        if self.candidates:
            base = -1 if self.current is None else self.current
            self._set_current(min(max(base + step, 0), len(self.candidates) - 1))

    def progress_counts(self) -> tuple[int, int]:
        """(labelled, total) candidates of the current MIDI."""
        return sum(c.label is not None for c in self.candidates), len(self.candidates)

    def missing_confidences(self) -> list[int]:
        """Audio ids whose alignment confidence with the current MIDI is not computed yet."""
        return [c.audio.id for c in self.candidates if c.confidence is None and not c.audio.missing]

    def _on_labels_changed(self, origin) -> None:
        if origin is self or isinstance(origin, PaceModel):  # paces do not change candidates
            return
        self.reload()
        if isinstance(origin, HistoryEntry):  # after undo/redo, show the pair it touched
            touched = [k[2] for k in origin.keys if k[0] == "match" and k[1] == self.midi_id]
            if touched and self.index_of(touched[-1]) is not None:
                self._set_current(self.index_of(touched[-1]))


def confidence_job(project_path, midi_id: int, audio_ids: list[int], progress=None, cancel=None) -> dict:
    """Background job: align one MIDI with each recording and store the confidences.

    Bad files do not stop the job: their reason is collected and returned. Returns
    ``{"done": n, "failed": [(path, reason), ...]}``.
    """
    from engine.align import align
    from engine.errors import EarwormError

    failed, done = [], 0
    with Project(project_path) as project:
        midi = project.file(midi_id)
        for i, audio_id in enumerate(audio_ids):
            if cancel is not None and cancel():
                break
            audio = project.file(audio_id)
            if progress is not None:
                progress(i / max(len(audio_ids), 1), f"aligning with {audio.name}")
            try:
                result = align(midi.path, audio.path, cancel=cancel)
            except EarwormError as exc:
                failed.append((exc.path or audio.path, exc.reason))
                continue
            project.put_result(ALIGNMENT_CONFIDENCE, midi_id, other_id=audio_id, value=float(result.confidence))
            done += 1
            if progress is not None:
                progress((i + 1) / len(audio_ids), f"{audio.name}: confidence {result.confidence:.2f}")
    return {"done": done, "failed": failed}


# ---------------------------------------------------------------------------- paces
class TapTempo:
    """Tempo from taps: 60 / median inter-tap interval of the last ``window`` taps.

    A pause longer than ``reset_after_s`` starts a new measurement. Times are seconds on any
    monotonic clock.
    """

    def __init__(self, window: int = 8, reset_after_s: float = 2.0):
        self.window, self.reset_after_s = window, reset_after_s
        self.taps_s: list[float] = []

    def tap(self, t_s: float | None = None) -> float | None:
        t_s = time.monotonic() if t_s is None else float(t_s)
        if self.taps_s and t_s - self.taps_s[-1] > self.reset_after_s:
            self.taps_s = []
        self.taps_s = (self.taps_s + [t_s])[-self.window:]
        return self.bpm

    @property
    def bpm(self) -> float | None:
        if len(self.taps_s) < 2:
            return None
        return 60.0 / float(np.median(np.diff(self.taps_s)))

    def reset(self) -> None:
        self.taps_s = []


def store_tempo_candidates_job(project_path, audio_path, candidates, progress=None, cancel=None) -> int | None:
    """Background job: store a recording's whole-song tempo candidates in the project at
    ``project_path`` (own connection; ``engine.tempo.store_candidates``) if the recording is in
    it. Returns its file id, or None when it is not in the project (nothing stored)."""
    from engine.tempo import store_candidates

    with Project(project_path) as project:
        record = project.file_by_path(audio_path)
        if record is None:
            return None
        store_candidates(project, record.id, candidates)
        return record.id


class PaceModel:
    """One file's pace set, tap tempo, and suggested tempi.

    Events: ``paces_changed(paces_bpm)``, ``tap_changed(bpm or None)``, ``file_changed(file_id)``,
    ``suggestions_changed(file_id)`` (new candidates were stored for that file).
    ``selected`` is the pace half/double acts on: the last one added or clicked.
    ``default_file`` (a callable returning a file id, or None) gives the file a pace goes to when
    none is chosen: the window sets it to the recording on screen, added to the project then;
    ``default_candidates`` (a callable returning tempo candidates) gives that recording's candidates
    meanwhile, so its suggestions are offered before it is in the project.
    """

    def __init__(self, session):
        self.session = LabelSession.of(session)
        self.file_id: int | None = None
        self.paces: list[float] = []
        self.selected: float | None = None
        self.tapper = TapTempo()
        self.paces_changed = Event("paces_changed")
        self.tap_changed = Event("tap_changed")
        self.file_changed = Event("file_changed")
        self.suggestions_changed = Event("suggestions_changed")
        self.default_file: Callable[[], int | None] | None = None
        self.default_candidates: Callable[[], list] | None = None
        self.session.labels_changed.connect(self._on_labels_changed)

    @property
    def project(self) -> Project:
        return self.session.project

    def select_file(self, file_id: int | None) -> None:
        self.file_id, self.selected = file_id, None
        self.tapper.reset()
        self.file_changed.emit(file_id)
        self.tap_changed.emit(None)
        self._reload()

    def _reload(self) -> None:
        self.paces = self.project.paces(self.file_id) if self.file_id is not None else []
        if self.selected not in self.paces:
            self.selected = self.paces[-1] if self.paces else None
        self.paces_changed.emit(self.paces)

    def _on_labels_changed(self, origin) -> None:
        if origin is not self and not isinstance(origin, MatchLabelModel):  # match labels leave paces alone
            self._reload()

    def suggestions(self) -> list[float]:
        """The file's stored tempo candidates (results ``tempo_candidates``) that it fits and that are
        not labelled yet (within SUGGESTION_TOLERANCE), in stored order (most salient first); with
        no file chosen, ``default_candidates``'. Candidates the classifier called incompatible are
        left out; unclassified ones are kept."""
        from engine.tempo import stored_candidates

        if self.file_id is not None:
            candidates = stored_candidates(self.project, self.file_id)
        else:  # no file chosen: the recording on screen's, if the window offers them
            candidates = self.default_candidates() if self.default_candidates is not None else []
        values = []
        for c in candidates:
            known = self.paces + values
            if c.compatible is False or not MIN_BPM <= c.bpm <= MAX_BPM:
                continue
            if not any(abs(c.bpm / k - 1) <= SUGGESTION_TOLERANCE for k in known):
                values.append(c.bpm)
        return values

    def default_candidates_changed(self) -> None:
        """Call when ``default_candidates`` has new ones (or lost them): they are the suggestions
        while no file is chosen."""
        if self.file_id is None:
            self.suggestions_changed.emit(None)

    def candidates_stored(self, file_id: int | None) -> None:
        """Call on the GUI thread after candidates were stored for ``file_id`` (by a job)."""
        if file_id is not None:
            self.suggestions_changed.emit(file_id)

    def tap(self, t_s: float | None = None) -> float | None:
        bpm = self.tapper.tap(t_s)
        self.tap_changed.emit(bpm)
        return bpm

    def add(self, bpm: float) -> float:
        """Add a pace (committed on return) and select it; with no file chosen, to ``default_file``'s."""
        if self.file_id is None and self.default_file is not None:
            file_id = self.default_file()
            if file_id is not None:
                self.select_file(file_id)
        if self.file_id is None:
            raise StoreError(self.project.path, "choose a file before adding a pace")
        value = self.project.add_pace(self.file_id, bpm)
        self.selected = value
        self._reload()
        self.session.changed(self)
        return value

    def add_tapped(self) -> float | None:
        bpm = self.tapper.bpm
        return None if bpm is None else self.add(bpm)

    def add_scaled(self, factor: float) -> float | None:
        """Add half (0.5) or double (2) of the selected pace (or of the tapped tempo)."""
        base = self.selected if self.selected is not None else self.tapper.bpm
        return None if base is None else self.add(base * factor)

    def remove(self, bpm: float | None = None) -> None:
        bpm = self.selected if bpm is None else bpm
        if bpm is None or self.file_id is None:
            return
        self.project.remove_pace(self.file_id, bpm)
        self.selected = None
        self._reload()
        self.session.changed(self)

    def select(self, bpm: float | None) -> None:
        self.selected = bpm
        self.paces_changed.emit(self.paces)
