"""The library panel: a project's MIDI files and recordings, with search, sort, labels and scores.

Task
----
Show every file of the project with its kind, duration, label counts (match ✓ / no match ✗ /
unsure ?), paces and best scores; filter by text and kind; sort by any column; add a folder
(recursively, in the background, with a progress bar and Cancel); relink moved files; list the
files that could not be read, with the reason.

Conventions
-----------
The panel observes a :class:`gui.panels.label_models.LibraryModel` and never touches the project
itself; folder scans run as :mod:`gui.workers` jobs on their own project connection. Signals:
``midi_activated(file_id)`` / ``audio_activated(file_id)`` on double-click or Enter (the window
opens it in the labelling panel or the views), ``error_shown(text)`` after an error dialog.
"""
from __future__ import annotations

import os

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHeaderView, QLabel, QLineEdit, QMenu, QPushButton, QSplitter,
                               QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from gui.panels.label_models import (LibraryModel, export_labels_job, import_labels_job, relink_job,
                                     scan_folder_job)
from gui.panels.panel_common import FlowLayout, JobRow, RowsTableModel, rows_table, show_error
from gui.workers import JobRunner

LABEL_FORMATS = (  # (format, menu text, file filter; None: a folder)
    ("csv", "Labels CSV (midi, audio, label, note, who, when)…", "CSV files (*.csv)"),
    ("matrix", "Match matrix CSV (rows audio, columns MIDI, 1/0)…", "CSV files (*.csv)"),
    ("scores", "Score matrix CSV (floats)…", "CSV files (*.csv)"),
    ("lmd", "Lakh MIDI match_scores.json…", "JSON files (*.json)"),
    ("jams", "Paces as JAMS (a folder of .jams files)…", None),
    ("paces", "Paces CSV (file, bpm…)…", "CSV files (*.csv)"),
)
MAX_BAD_ROWS_SHOWN = 40

COLUMNS = (  # (header, sort key)
    ("Name", "name"), ("Kind", "kind"), ("Duration", "duration"), ("Labels ✓/✗/?", "labels"),
    ("Paces (bpm)", "paces"), ("Confidence", "confidence"), ("Match score", "score"), ("Folder", "path"),
)


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


class LibraryTableModel(RowsTableModel):
    """Qt table over :attr:`LibraryModel.rows`; sorting asks the model to re-sort."""

    headers = tuple(header for header, _ in COLUMNS)

    def __init__(self, model: LibraryModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.rows = list(model.rows)
        model.rows_changed.connect(self.set_rows)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        row = self.rows[index.row()]
        f, column = row.file, index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (f.name + (" (missing)" if f.missing else ""), f.kind, _fmt(f.duration_s, ".1f"),
                    f"{row.n_match}/{row.n_no_match}/{row.n_unsure}" if row.n_labels else "",
                    ", ".join(f"{b:g}" for b in row.paces_bpm), _fmt(row.best_confidence, ".3f"),
                    _fmt(row.best_match_score, ".3g"), os.path.dirname(f.path))[column]
        if role == Qt.ItemDataRole.ToolTipRole:
            return f.path + ("\nmissing: not found at this path (use Relink…)" if f.missing else "")
        if role == Qt.ItemDataRole.ForegroundRole and f.missing:
            return QColor("gray")
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (2, 5, 6):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return f.id
        return None

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        self.model.set_sort(COLUMNS[column][1], descending=order == Qt.SortOrder.DescendingOrder)


class LibraryPanel(QWidget):
    """See the module docstring. ``runner`` is the window's JobRunner (one is made if None)."""

    midi_activated = Signal(int)
    audio_activated = Signal(int)
    error_shown = Signal(str)

    def __init__(self, model: LibraryModel, runner: JobRunner | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.runner = runner or JobRunner(self)
        self.last_report = None

        self.search_edit = QLineEdit(self)
        self.search_edit.setPlaceholderText("Search files…")
        self.search_edit.setClearButtonEnabled(True)
        self.kind_combo = QComboBox(self)
        for text, kind in (("All files", None), ("MIDI", "midi"), ("Recordings", "audio")):
            self.kind_combo.addItem(text, kind)
        self.add_button = QPushButton("Add Folder…", self)
        self.relink_button = QPushButton("Relink…", self)
        self.relink_button.setToolTip("Find files that moved, by their content, under a folder you choose")
        self.labels_button = QToolButton(self)
        self.labels_button.setText("Labels")
        self.labels_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.labels_button)
        for verb, slot in (("Import", self._choose_import), ("Export", self._choose_export)):
            sub = menu.addMenu(verb)
            for fmt, text, file_filter in LABEL_FORMATS:
                sub.addAction(text, lambda f=fmt, ff=file_filter, s=slot: s(f, ff))
        self.labels_button.setMenu(menu)
        self.count_label = QLabel(self)
        self.job_row = JobRow(self)

        self.table_model = LibraryTableModel(model, self)
        self.table = rows_table(self.table_model, self)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 220)

        self.unreadable_label = QLabel(self)
        self.unreadable_tree = QTreeWidget(self)
        self.unreadable_tree.setHeaderLabels(["Unreadable file", "Reason"])
        self.unreadable_tree.setRootIsDecorated(False)
        unreadable_box = QWidget(self)
        box_layout = QVBoxLayout(unreadable_box)
        box_layout.setContentsMargins(0, 0, 0, 0)
        box_layout.addWidget(self.unreadable_label)
        box_layout.addWidget(self.unreadable_tree)

        top = FlowLayout()  # wraps in a narrow dock rather than widening it
        self.search_edit.setMinimumWidth(160)
        top.addWidget(self.search_edit)
        top.addWidget(self.kind_combo)
        top.addWidget(self.add_button)
        top.addWidget(self.relink_button)
        top.addWidget(self.labels_button)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.table)
        splitter.addWidget(unreadable_box)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.job_row)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.count_label)

        # Typing filters after a short pause, and label changes refresh after one: never per key.
        self._search_timer = QTimer(self, singleShot=True, interval=200)
        self._search_timer.timeout.connect(lambda: self._guard(lambda: model.set_search(self.search_edit.text())))
        self._stale_timer = QTimer(self, singleShot=True, interval=400)
        self._stale_timer.timeout.connect(lambda: self._guard(model.refresh))
        self.search_edit.textChanged.connect(lambda _: self._search_timer.start())
        self.kind_combo.currentIndexChanged.connect(
            lambda _: self._guard(lambda: model.set_kind(self.kind_combo.currentData())))
        self.add_button.clicked.connect(self._choose_folder)
        self.relink_button.clicked.connect(self._choose_relink_folder)
        self.table.activated.connect(self._on_activated)
        model.rows_changed.connect(self._on_rows)
        model.unreadable_changed.connect(self._on_unreadable)
        model.became_stale.connect(lambda _: self._stale_timer.start())
        self._on_rows(model.rows)
        self._on_unreadable(model.project.unreadable())

    # -- actions -----------------------------------------------------------------------------------
    def add_folder(self, folder: str):
        """Add ``folder`` (recursively) in the background; returns the Job."""
        job = self.runner.submit(scan_folder_job, str(self.model.project.path), str(folder), name="add folder")
        self._follow(job, "Could not add the folder")
        job.succeeded.connect(self._on_scan_done)
        return job

    def relink(self, folder: str):
        """Look for moved files under ``folder`` in the background; returns the Job."""
        job = self.runner.submit(relink_job, str(self.model.project.path), [str(folder)], name="relink")
        self._follow(job, "Could not relink")
        job.succeeded.connect(self._on_relink_done)
        return job

    def import_labels(self, fmt: str, path: str):
        """Validate and import a labels file in the background (nothing is written if a row is bad)."""
        job = self.runner.submit(import_labels_job, str(self.model.project.path), fmt, str(path), name="import labels")
        self._follow(job, "Nothing was imported")
        job.succeeded.connect(self._on_import_done)
        return job

    def export_labels(self, fmt: str, path: str):
        """Export labels or scores in the background."""
        job = self.runner.submit(export_labels_job, str(self.model.project.path), fmt, str(path), name="export labels")
        self._follow(job, "Could not export")
        job.succeeded.connect(lambda n: setattr(self, "last_report", n))
        return job

    def selected_file_id(self) -> int | None:
        index = self.table.currentIndex()
        return None if not index.isValid() else self.table_model.data(index, Qt.ItemDataRole.UserRole)

    def _follow(self, job, title: str) -> None:
        self.add_button.setEnabled(False)
        self.relink_button.setEnabled(False)
        self.job_row.follow(job)
        job.failed.connect(lambda exc: self._error(exc, title))
        job.finished.connect(self._on_job_finished)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of MIDI files and recordings")
        if folder:
            self.add_folder(folder)

    def _choose_import(self, fmt: str, file_filter: str | None) -> None:
        path = (QFileDialog.getExistingDirectory(self, "Import JAMS files from") if file_filter is None else
                QFileDialog.getOpenFileName(self, "Import labels", "", file_filter)[0])
        if path:
            self.import_labels(fmt, path)

    def _choose_export(self, fmt: str, file_filter: str | None) -> None:
        path = (QFileDialog.getExistingDirectory(self, "Export JAMS files to") if file_filter is None else
                QFileDialog.getSaveFileName(self, "Export labels", "", file_filter)[0])
        if path:
            self.export_labels(fmt, path)

    def _choose_relink_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Where did the missing files go?")
        if folder:
            self.relink(folder)

    # -- model → view ---------------------------------------------------------------------------
    def _on_rows(self, rows) -> None:
        n_midi = sum(r.file.kind == "midi" for r in rows)
        n_missing = sum(r.file.missing for r in rows)
        text = f"{len(rows)} files: {n_midi} MIDI, {len(rows) - n_midi} recordings"
        self.count_label.setText(text + (f"; {n_missing} missing" if n_missing else ""))

    def _on_unreadable(self, unreadable) -> None:
        self.unreadable_tree.clear()
        self.unreadable_tree.addTopLevelItems([QTreeWidgetItem([path, reason]) for path, reason in unreadable])
        self.unreadable_label.setText(f"Unreadable files ({len(unreadable)})" if unreadable else "No unreadable files")

    def _on_scan_done(self, report) -> None:
        self.last_report = report
        self.model.scan_finished(report)

    def _on_import_done(self, report) -> None:
        self.last_report = report
        self.model.session.changed(None)  # labels and scores came from elsewhere: every panel reloads
        self.model.refresh()

    def _on_relink_done(self, report) -> None:
        self.last_report = report
        self.model.scan_finished(report)

    def _on_job_finished(self) -> None:
        self.add_button.setEnabled(True)
        self.relink_button.setEnabled(True)

    def _on_activated(self, index) -> None:
        row = self.table_model.rows[index.row()]
        (self.midi_activated if row.file.kind == "midi" else self.audio_activated).emit(row.file.id)

    def _guard(self, fn) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a dialog, never a traceback
            self._error(exc, "Library")

    def _error(self, exc: BaseException, title: str) -> None:
        bad_rows = getattr(exc, "bad_rows", None)
        if bad_rows:  # every bad row of an import, so the file can be fixed in one go
            lines = [str(b) for b in bad_rows[:MAX_BAD_ROWS_SHOWN]]
            if len(bad_rows) > MAX_BAD_ROWS_SHOWN:
                lines.append(f"… and {len(bad_rows) - MAX_BAD_ROWS_SHOWN} more")
            self.error_shown.emit(show_error(self, exc, title, details="\n".join(lines)))
            return
        self.error_shown.emit(show_error(self, exc, title))
