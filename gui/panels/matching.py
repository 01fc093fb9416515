"""The matching panel: match a folder of MIDIs against a folder of recordings, see which is which.

Task
----
Choose the two folders, run :func:`engine.match.run_match` in the background (progress bar and
Cancel; an interrupted run resumes from its run directory next time), and list for every MIDI the
recording it was matched to — or none — with the calibrated confidence and the gap to the
runner-up. Double-click (or Enter) on a row asks the window to open that pair in the main views.

Conventions
-----------
The panel never computes anything itself: the job is a plain function run by
:class:`gui.workers.JobRunner`. Signals: ``open_pair(midi_path, audio_path)`` (absolute paths; a
MIDI matched to none opens with its best confirmed candidate, if any), ``result_ready(result)``
with the :class:`engine.match.MatchResult` (the evaluation panel takes it), ``error_shown(text)``.

Integration (main window): ``panel = MatchingPanel(window.jobs)``;
``window.add_panel(panel, "Matching")``; ``panel.open_pair.connect(window.open_pair)``;
``panel.result_ready.connect(evaluation_panel.set_result)``.
"""
from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QFileDialog, QGridLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QVBoxLayout,
                               QWidget)

from gui.panels.panel_common import JobRow, RowsTableModel, rows_table, show_error
from gui.workers import JobRunner

COLUMNS = ("MIDI", "Recording", "Confidence", "Gap")
NONE_TEXT = "— none —"


def match_job(midi_dir, audio_dir, *, n_workers=None, project=None, run_dir=None, progress=None, cancel=None):
    """The background job: :func:`engine.match.run_match` with the worker's progress and cancel."""
    from engine.match import run_match

    return run_match(midi_dir, audio_dir, n_workers=n_workers, project=project, run_dir=run_dir,
                     progress=progress, cancel=cancel)


class MatchTableModel(RowsTableModel):
    """One row per MIDI of a :class:`engine.match.MatchResult`."""

    headers = COLUMNS

    def __init__(self, parent=None):
        super().__init__(parent)
        self.result = None

    def set_result(self, result) -> None:
        self.result = result
        self.set_rows(result.rows() if result is not None else [])

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        midi, audio, confidence, gap = self.rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (midi, audio or NONE_TEXT, f"{confidence:.3f}", f"{gap:.3f}")[column]
        if role == Qt.ItemDataRole.ForegroundRole and column == 1 and not audio:
            return QColor("gray")
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return (midi, audio, confidence, gap)
        return None

    def pair_paths(self, row: int) -> tuple[str, str] | None:
        """Absolute (MIDI, recording) of a row: the match, or the best confirmed candidate."""
        r = self.result
        j = int(r.predicted[row]) if r.predicted[row] >= 0 else int(r.best[row])
        if j < 0:
            return None
        return (os.path.abspath(r.midi_dir / r.midi_names[row]), os.path.abspath(r.audio_dir / r.audio_names[j]))


class MatchingPanel(QWidget):
    """Folders, Run/Cancel with progress, and the results table (see the module docstring)."""

    open_pair = Signal(str, str)
    result_ready = Signal(object)
    error_shown = Signal(str)

    def __init__(self, runner: JobRunner | None = None, n_workers: int | None = None, project=None, parent=None):
        super().__init__(parent)
        self.runner = runner or JobRunner(self)
        self.n_workers, self.project = n_workers, project
        self.job = None
        self.result = None
        self.midi_edit, self.audio_edit = QLineEdit(self), QLineEdit(self)
        self.midi_edit.setPlaceholderText("folder of MIDI files")
        self.audio_edit.setPlaceholderText("folder of recordings")
        grid = QGridLayout()
        for row, (label, edit) in enumerate((("MIDI", self.midi_edit), ("Audio", self.audio_edit))):
            browse = QPushButton("…", self)
            browse.setFixedWidth(32)
            browse.clicked.connect(lambda _=False, e=edit: self._browse(e))
            grid.addWidget(QLabel(label, self), row, 0)
            grid.addWidget(edit, row, 1)
            grid.addWidget(browse, row, 2)
        self.run_button = QPushButton("Match", self)
        self.run_button.clicked.connect(self.start)
        grid.addWidget(self.run_button, 2, 1, 1, 2, Qt.AlignmentFlag.AlignRight)
        self.job_row = JobRow(self)
        self.summary = QLabel("", self)
        self.summary.setWordWrap(True)
        self.model = MatchTableModel(self)
        self.table = rows_table(self.model, self)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.activated.connect(lambda index: self.open_row(index.row()))  # double-click or Enter
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(self.job_row)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

    # -- actions ------------------------------------------------------------------------------------
    def set_folders(self, midi_dir, audio_dir) -> None:
        self.midi_edit.setText(os.fspath(midi_dir))
        self.audio_edit.setText(os.fspath(audio_dir))

    def start(self):
        """Run the match in the background; returns the :class:`gui.workers.Job` (None if busy)."""
        if self.job is not None:
            return None
        midi_dir, audio_dir = self.midi_edit.text().strip(), self.audio_edit.text().strip()
        self.job = self.runner.submit(match_job, midi_dir, audio_dir, n_workers=self.n_workers, project=self.project,
                                      name="match")
        self.job.succeeded.connect(self.show_result)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(lambda: self.summary.setText("cancelled; a new run resumes from what was computed"))
        self.job.finished.connect(self._on_finished)
        self.job_row.follow(self.job)
        self.run_button.setEnabled(False)
        self.summary.setText("matching…")
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def show_result(self, result) -> None:
        self.result = result
        self.model.set_result(result)
        n_matched = int((result.predicted >= 0).sum())
        bad = f"; {len(result.bad_files)} unreadable files skipped" if result.bad_files else ""
        self.summary.setText(f"{len(result.midi_names)} MIDIs × {len(result.audio_names)} recordings: {n_matched} "
                             f"matched, {len(result.midi_names) - n_matched} with none ({result.timings['total_s']:.1f} s){bad}")
        self.result_ready.emit(result)

    def open_row(self, row: int) -> None:
        paths = self.model.pair_paths(row) if self.result is not None else None
        if paths is not None:
            self.open_pair.emit(*paths)

    # -- internals ------------------------------------------------------------------------------------
    def _browse(self, edit: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        if folder:
            edit.setText(folder)

    def _on_failed(self, exc) -> None:
        self.summary.setText("failed")
        self.error_shown.emit(show_error(self, exc, "Matching failed"))

    def _on_finished(self) -> None:
        self.job = None
        self.run_button.setEnabled(True)
