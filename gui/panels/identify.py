"""The Identify panel: which piece of a MIDI library is this recording — or none of them?

Task
----
Choose a library (the open project's MIDI files, or a folder of MIDI files), pick an audio file
("Choose audio…") or record one from the microphone ("Record"; a second click or ``record_limit_s``
stops it), and see the library's pieces ranked by :func:`engine.embed.identify`: rank, piece,
composer, score, votes; a verdict line ("Known: X" or "Unknown — …") and the composers' ranking
when the library names them. "Open aligned" (or a double-click / Enter on a row) asks the window
to open that MIDI with the query recording, which aligns them in the main views.

Conventions
-----------
- The panel computes nothing itself: building the library (:func:`library_job`, progress bar and
  Cancel) and embedding the query (:func:`identify_job`) are plain functions run by
  :class:`gui.workers.JobRunner`; a project is read by :func:`engine.embed.library_paths` on the
  worker's own connection. Per-file vectors are cached by the engine, so rebuilding is cheap.
- A recording is written as a WAV into ``recordings_dir`` (the project's ``recordings/`` folder
  or a temporary one) before it is identified: the alignment then opens it like any file.
- Bad input (unreadable audio, a missing model, no microphone) becomes a dialog naming the file
  and the reason (:func:`gui.panels.panel_common.show_error`), never a traceback.

Signals: ``open_pair(midi_path, audio_path)``, ``library_ready(Library)``,
``identified(QueryResult)``, ``recording_changed(bool)``, ``error_shown(text)``.
"""
from __future__ import annotations

import html
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QFileDialog, QGridLayout, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton,
                               QVBoxLayout, QWidget)

from engine.errors import EarwormError
from engine.text import count_noun
from gui.panels.panel_common import FlowLayout, JobRow, RowsTableModel, rows_table, show_error
from gui.workers import JobCancelled, JobRunner

COLUMNS = ("#", "Piece", "Composer", "Score", "Votes")
TOP_K = 10
DEFAULT_RECORD_LIMIT_S = 30.0
RECORD_TICK_MS = 100
KNOWN_COLOUR, UNKNOWN_COLOUR, UNTESTED_COLOUR = "#5cc98a", "#e6a23c", "#c8c8c8"
AUDIO_FILTER = "Audio (*.wav *.flac *.ogg *.mp3 *.aiff *.aif);;All files (*)"


# ---------------------------------------------------------------------------------------- jobs
def library_job(source, progress=None, cancel=None):
    """Background job: the :class:`engine.embed.Library` of a folder or project file."""
    from engine import embed

    paths, composers = embed.library_paths(source)
    if not paths:
        raise EarwormError(source, "no MIDI files in this library")

    def report(i: int, n: int, name: str) -> None:
        if progress is not None:
            progress(i / max(n, 1), f"{min(i + 1, n)}/{n} {name}" if name else "")

    library = embed.build_library(paths, composers, progress=report, cancel=cancel)
    if cancel is not None and cancel():
        raise JobCancelled()
    if len(library) == 0:
        path, reason = library.bad_files[0]
        raise EarwormError(source, f"none of its {len(paths)} MIDI files could be used (e.g. {path}: {reason})")
    return library


@dataclass
class QueryResult:
    """What one identification found: the query recording and the engine's ranking."""

    audio_path: str
    identification: object  # engine.embed.Identification
    recorded: bool = False


def identify_job(audio_path, library, top_k: int = TOP_K, recorded: bool = False, progress=None,
                 cancel=None) -> QueryResult:
    """Background job: embed the query recording and rank the library's pieces for it."""
    from engine import embed

    if progress is not None:
        progress(0.05, "embedding the query")
    identification = embed.identify_recording(audio_path, library, top_k=top_k)
    if cancel is not None and cancel():  # a few seconds of work at most: not interrupted, just not shown
        raise JobCancelled()
    return QueryResult(str(audio_path), identification, recorded)


def composers_text(identification, n: int = 5) -> str:
    """The composers' ranking, best first ("" when the library names no composers)."""
    ranked = identification.composers[:n]
    if not ranked:
        return ""
    head = "Composers" if not identification.unknown else "Closest composers (piece unknown)"
    return f"{head}: " + " · ".join(f"{c} {s:.3f}" for c, s in ranked)


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60.0)
    return f"{int(minutes)}:{secs:04.1f}"


# ---------------------------------------------------------------------------------------- table
class RankingModel(RowsTableModel):
    """The ranked pieces of an :class:`engine.embed.Identification`, best first."""

    headers = COLUMNS

    def __init__(self, parent=None):
        super().__init__(parent)
        self.identification = None

    @property
    def pieces(self) -> list:
        return self.rows

    def set_identification(self, identification) -> None:
        self.identification = identification
        self.set_rows(identification.pieces if identification is not None else [])

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        row, column = index.row(), index.column()
        piece = self.pieces[row]
        if role == Qt.ItemDataRole.DisplayRole:
            return (str(row + 1), piece.name, piece.composer or "", f"{piece.score:.3f}", str(piece.votes))[column]
        if role == Qt.ItemDataRole.ToolTipRole:
            return piece.path
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (0, 3, 4):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and row == 0 and not self.identification.unknown:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.UserRole:
            return piece
        return None


# ---------------------------------------------------------------------------------------- panel
class IdentifyPanel(QWidget):
    """Library, query (file or microphone), ranking and "Open aligned" (see the module docstring).

    Parameters
    ----------
    runner : JobRunner, optional
        The window's job runner (a private one if None).
    project : str or Path, optional
        The open project's file: its MIDI files are the default library.
    recordings_dir : str or Path, optional
        Where recordings are written (default: ``recordings/`` next to the project, else a
        temporary folder).
    stream_factory : callable, optional
        For :class:`engine.recorder.MicrophoneRecorder` (tests pass a fake sound card).
    record_limit_s : float
        A recording stops by itself after this many seconds.
    """

    open_pair = Signal(str, str)
    library_ready = Signal(object)
    identified = Signal(object)
    recording_changed = Signal(bool)
    error_shown = Signal(str)

    def __init__(self, runner: JobRunner | None = None, project=None, recordings_dir=None, stream_factory=None,
                 record_limit_s: float = DEFAULT_RECORD_LIMIT_S, parent=None):
        super().__init__(parent)
        self.runner = runner or JobRunner(self)
        self.project = str(project) if project else None
        if recordings_dir is None:
            recordings_dir = (Path(self.project).parent / "recordings" if self.project
                              else Path(tempfile.gettempdir()) / "earworm-recordings")
        self.recordings_dir = Path(recordings_dir)
        self.stream_factory = stream_factory
        self.record_limit_s = float(record_limit_s)
        self.library = None  # engine.embed.Library
        self.library_source: str | None = None  # what self.library was built from
        self.library_stale = False
        self.query_path: str | None = None
        self.query_recorded = False
        self.result: QueryResult | None = None
        self.job = None
        self.recorder = None
        self._identify_after_library = False
        self._build_widgets()

    def _build_widgets(self) -> None:
        self.source_edit = QLineEdit(self)
        self.source_edit.setPlaceholderText("a folder of MIDI files, or a project")
        if self.project:
            self.source_edit.setText(self.project)
        self.source_edit.setToolTip("The library: every MIDI file under a folder (composers.csv: file,composer "
                                    "names composers), or a project's MIDI files")
        self.project_button = QPushButton("Project", self)
        self.project_button.setToolTip("Use the open project's MIDI files")
        self.project_button.setEnabled(self.project is not None)
        self.project_button.clicked.connect(lambda: self.set_library_source(self.project))
        self.folder_button = QPushButton("Folder…", self)
        self.folder_button.clicked.connect(self._browse_folder)
        self.build_button = QPushButton("Build", self)
        self.build_button.setToolTip("Read (or re-read) the library's MIDI files")
        self.build_button.clicked.connect(self.build_library)
        self.library_summary = QLabel("no library built yet", self)

        self.choose_button = QPushButton("Choose audio…", self)
        self.choose_button.clicked.connect(self._browse_audio)
        self.record_button = QPushButton("● Record", self)
        self.record_button.setCheckable(True)
        self.record_button.setToolTip(f"Record from the microphone; click again to stop "
                                      f"(stops by itself after {self.record_limit_s:.0f} s)")
        self.record_button.clicked.connect(self.toggle_recording)
        self.query_label = QLabel("no query yet", self)
        self.record_timer = QTimer(self, interval=RECORD_TICK_MS)
        self.record_timer.timeout.connect(self._tick_recording)

        self.job_row = JobRow(self)
        self.verdict = QLabel("", self)
        self.verdict.setWordWrap(True)
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.composers = QLabel("", self)
        self.composers.setWordWrap(True)
        self.model = RankingModel(self)
        self.table = rows_table(self.model, self)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.activated.connect(lambda index: self.open_row(index.row()))  # double-click or Enter
        self.open_button = QPushButton("Open aligned", self)
        self.open_button.setToolTip("Open the chosen piece with the query recording, aligned, in the main views")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(lambda: self.open_row(self.selected_row()))

        grid = QGridLayout()
        grid.addWidget(QLabel("Library", self), 0, 0)
        grid.addWidget(self.source_edit, 0, 1)
        library_row = FlowLayout()  # wraps in a narrow dock rather than widening it
        for w in (self.project_button, self.folder_button, self.build_button, self.library_summary):
            library_row.addWidget(w)
        grid.addLayout(library_row, 1, 1)
        grid.addWidget(QLabel("Query", self), 2, 0)
        query_row = FlowLayout()
        for w in (self.choose_button, self.record_button, self.query_label):
            query_row.addWidget(w)
        grid.addLayout(query_row, 2, 1)
        grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(self.job_row)
        layout.addWidget(self.verdict)
        layout.addWidget(self.composers)
        layout.addWidget(self.table, 1)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.open_button)
        layout.addLayout(bottom)

    # -- library ----------------------------------------------------------------------------------
    def current_source(self) -> str:
        return self.source_edit.text().strip()

    def set_library_source(self, source) -> None:
        """Use ``source`` (a folder or a project file) as the library; it is built when needed."""
        self.source_edit.setText(os.fspath(source) if source else "")

    def mark_library_stale(self) -> None:
        """The library's files changed (the project gained or lost MIDIs): rebuild before the next query."""
        self.library_stale = True

    def library_needed(self) -> bool:
        return self.library is None or self.library_stale or self.library_source != self.current_source()

    def build_library(self):
        """Build the library in the background; returns the job (None when there is no source)."""
        source = self.current_source()
        if not source:
            self._error(EarwormError(None, "choose a library first: a folder of MIDI files (Folder…) or the "
                                           "open project's MIDI files (Project)"), "No library")
            return None
        self._cancel_job()
        job = self.runner.submit(library_job, source, name="identify:library")
        job.succeeded.connect(lambda library, s=source: self._on_library(s, library))
        job.failed.connect(lambda exc: self._on_failed(exc, "Could not build the library"))
        job.cancelled.connect(lambda: self.library_summary.setText("building the library was cancelled"))
        self._follow(job, "reading the library…")
        self.library_summary.setText(f"reading {Path(source).name}…")
        return job

    def _on_library(self, source: str, library) -> None:
        self.library, self.library_source, self.library_stale = library, source, False
        composers = len({c for c in library.composers if c})
        text = count_noun(len(library), "piece") + (f" by {count_noun(composers, 'composer')}" if composers else "")
        if library.bad_files:
            text += f"; {count_noun(len(library.bad_files), 'unreadable file')} skipped"
            self.library_summary.setToolTip("\n".join(f"{p}: {r}" for p, r in library.bad_files[:40]))
        else:
            self.library_summary.setToolTip("")
        self.library_summary.setText(text)
        self.library_ready.emit(library)
        if self._identify_after_library:
            self._identify_after_library = False
            QTimer.singleShot(0, self.identify)  # after this job's finished() freed the panel

    # -- query ------------------------------------------------------------------------------------
    def set_query_file(self, path, recorded: bool = False):
        """Identify the recording at ``path``; returns the job started (library or identification)."""
        self.query_path, self.query_recorded = os.fspath(path), recorded
        self.query_label.setText(("recorded: " if recorded else "") + Path(self.query_path).name)
        self.query_label.setToolTip(self.query_path)
        return self.identify()

    def identify(self):
        """Rank the library's pieces for the current query (building the library first if needed)."""
        if self.query_path is None:
            return None
        if self.library_needed():
            job = self.build_library()
            self._identify_after_library = job is not None
            return job
        self._cancel_job()
        job = self.runner.submit(identify_job, self.query_path, self.library, recorded=self.query_recorded,
                                 name="identify")
        job.succeeded.connect(self.show_result)
        job.failed.connect(lambda exc: self._on_failed(exc, "Could not identify the recording"))
        job.cancelled.connect(lambda: self.verdict.setText("identification cancelled"))
        self._follow(job, "identifying…")
        self.verdict.setText("identifying…")
        self.composers.setText("")
        return job

    def show_result(self, result: QueryResult) -> None:
        self.result = result
        ident = result.identification
        self.model.set_identification(ident)
        colour = (UNKNOWN_COLOUR if ident.unknown  # no pieces at all: known_score -inf, so unknown
                  else KNOWN_COLOUR if ident.open_set_tested else UNTESTED_COLOUR)
        self.verdict.setText(f'<span style="color:{colour}; font-weight:600">{html.escape(ident.verdict())}</span>')
        self.verdict.setToolTip(f"{ident.n_snippets} snippets of {Path(result.audio_path).name} against "
                                f"{count_noun(len(self.library) if self.library is not None else 0, 'piece')}")
        self.composers.setText(composers_text(ident))
        self.composers.setVisible(bool(self.composers.text()))
        self.table.setColumnHidden(2, not any(p.composer for p in ident.pieces))
        if ident.pieces:
            self.table.selectRow(0)
        self.open_button.setEnabled(bool(ident.pieces))
        self.identified.emit(result)

    def selected_row(self) -> int:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else 0

    def open_row(self, row: int) -> None:
        """Ask the window to open piece ``row`` with the query recording (aligned)."""
        if self.result is None or not (0 <= row < len(self.model.pieces)):
            return
        self.open_pair.emit(os.path.abspath(self.model.pieces[row].path), os.path.abspath(self.result.audio_path))

    # -- microphone -------------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def toggle_recording(self) -> None:
        if self.recording:
            self.stop_recording()
        else:
            self.start_recording()

    def start_recording(self) -> bool:
        """Open the microphone; False (and a dialog) when there is none."""
        from engine.recorder import MicrophoneRecorder

        if self.recording:
            return True
        recorder = MicrophoneRecorder(max_s=self.record_limit_s, stream_factory=self.stream_factory)
        try:
            recorder.start()
        except EarwormError as exc:
            self.record_button.setChecked(False)
            self._error(exc, "Cannot record")
            return False
        self.recorder = recorder
        self.record_button.setChecked(True)
        self.choose_button.setEnabled(False)
        self.recording_changed.emit(True)
        self.record_timer.start()
        self._tick_recording()  # may already stop it: a device that delivered max_s at once
        return True

    def stop_recording(self):
        """Stop the microphone, save the clip as WAV and identify it; returns the job started."""
        from engine.recorder import write_recording

        recorder, self.recorder = self.recorder, None
        self.record_timer.stop()
        self.record_button.setChecked(False)
        self.record_button.setText("● Record")
        self.choose_button.setEnabled(True)
        if recorder is None:
            return None
        samples = recorder.stop()
        self.recording_changed.emit(False)
        try:
            path = write_recording(samples, recorder.sr, self.recordings_dir)
        except EarwormError as exc:
            self.query_label.setText("no query yet")
            self._error(exc, "Could not save the recording")
            return None
        return self.set_query_file(path, recorded=True)

    def _tick_recording(self) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        elapsed = recorder.elapsed_s
        self.record_button.setText(f"■ Stop  {format_elapsed(elapsed)}")
        self.query_label.setText(f"recording… {format_elapsed(elapsed)} of {format_elapsed(self.record_limit_s)}")
        if recorder.full:
            self.stop_recording()

    def shutdown(self) -> None:
        """Release the microphone and stop this panel's job (the window is closing)."""
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.stop()
        self._cancel_job()
        try:
            self.record_timer.stop()
        except RuntimeError:  # the window's children are already gone
            pass

    # -- internals --------------------------------------------------------------------------------
    def _follow(self, job, message: str) -> None:
        self.job = job
        job.finished.connect(lambda j=job: self._on_finished(j))
        self.job_row.follow(job)
        self.job_row.bar.setFormat(message)

    def _cancel_job(self) -> None:
        if self.job is not None and not self.job.done:
            self.job.cancel()
        self.job = None

    def _on_finished(self, job) -> None:
        if job is not self.job:
            return  # superseded (cancelled when a newer job started)
        self.job = None
        if job.state != "succeeded":
            self._identify_after_library = False

    def _on_failed(self, exc, title: str) -> None:
        self.verdict.setText("")
        self._error(exc, title)

    def _error(self, exc, title: str) -> None:
        self.error_shown.emit(show_error(self, exc, title))

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of MIDI files", self.current_source())
        if folder:
            self.set_library_source(folder)

    def _browse_audio(self) -> None:
        start = os.path.dirname(self.query_path) if self.query_path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Choose a recording to identify", start, AUDIO_FILTER)
        if path:
            self.set_query_file(path)
