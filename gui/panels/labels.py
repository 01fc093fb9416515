"""The labelling panels: which recording matches a MIDI file (Y/N/U), and which paces a song fits.

Task
----
:class:`MatchLabelPanel`: pick a MIDI file; its candidate recordings are listed best first by
alignment confidence (computed in the background for those that lack one); press **Y** (match),
**N** (no match) or **U** (unsure) to label the current candidate — committed at once — and move
to the next unlabelled one; **J** jumps to the next unlabelled; **Enter** opens the pair in the
main views; **Ctrl+Z** / **Ctrl+Shift+Z** undo / redo any label action of the project.

:class:`PaceLabelPanel`: pick a file; tap **T** to the beat while it plays (live bpm), **A** adds
the tapped tempo as a pace, **H** / **D** add half / double of the selected pace, **Del** removes
it; type a bpm and Add; suggestions from the tempo analysis (the stored whole-song candidates the
song fits: computed by the tempo strip for the open recording, or by ``earworm tempo --project``)
are one click away. With no file chosen, a pace goes to the recording on screen (the window adds it
to the project then; ``PaceModel.default_file``), the empty file box names it, and the strip's
candidates of it are the suggestions (``PaceModel.default_candidates``).

Conventions
-----------
Both panels observe Qt-free models (:mod:`gui.panels.label_models`) that own every store call, and
share one :class:`LabelSession` (one undo history). Errors become a dialog (``error_shown``), never
a traceback; nothing the screen shows as saved is lost, because it is committed before it is shown.
"""
from __future__ import annotations

import os
import time

from PySide6.QtCore import QAbstractTableModel, QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPushButton, QVBoxLayout, QWidget)

from engine.errors import EarwormError
from gui.panels.label_models import MatchLabelModel, PaceModel, confidence_job
from gui.panels.panel_common import FlowLayout, JobRow, PanelKeys, rows_table, show_error
from gui.workers import JobRunner

LABEL_TEXT = {"match": "✓ match", "no_match": "✗ no match", "unsure": "? unsure"}
LABEL_COLOUR = {"match": QColor(200, 240, 200), "no_match": QColor(245, 205, 205), "unsure": QColor(250, 240, 190)}
CANDIDATE_COLUMNS = ("#", "Recording", "Confidence", "Match score", "Label", "Note", "Folder")
UNDO_KEYS, REDO_KEYS = ("Ctrl+Z",), ("Ctrl+Shift+Z", "Ctrl+Y")
# What the panels' keys do, as Help → Keys and Mouse lists them.
UNDO_DESCRIPTIONS = {k: "undo the last label change" for k in UNDO_KEYS} | \
    {k: "redo the label change undone" for k in REDO_KEYS}
MATCH_KEY_DESCRIPTIONS = {"Y": "label the current candidate: match", "N": "label it: no match",
                          "U": "label it: unsure", "J": "go to the next unlabelled candidate",
                          "Return": "open the MIDI and the candidate in the main views",
                          "Enter": "open the MIDI and the candidate in the main views"} | UNDO_DESCRIPTIONS
PACE_KEY_DESCRIPTIONS = {"T": "tap the beat (while the song plays)", "A": "add the tapped tempo as a pace",
                         "H": "add half the selected pace", "D": "add double the selected pace",
                         "Del": "remove the selected pace", "Backspace": "remove the selected pace"} | UNDO_DESCRIPTIONS


class CandidateTableModel(QAbstractTableModel):
    """Qt table over :attr:`MatchLabelModel.candidates`; one row changes per label."""

    def __init__(self, model: MatchLabelModel, parent=None):
        super().__init__(parent)
        self.model = model
        model.candidates_changed.connect(lambda _: (self.beginResetModel(), self.endResetModel()))
        model.candidate_updated.connect(
            lambda i: self.dataChanged.emit(self.index(i, 0), self.index(i, len(CANDIDATE_COLUMNS) - 1)))

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.model.candidates)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return len(CANDIDATE_COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return CANDIDATE_COLUMNS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        c = self.model.candidates[index.row()]
        label = c.label.label if c.label else None
        if role == Qt.ItemDataRole.DisplayRole:
            return (str(index.row() + 1), c.audio.name + (" (missing)" if c.audio.missing else ""),
                    "…" if c.confidence is None else f"{c.confidence:.3f}",
                    "" if c.match_score is None else f"{c.match_score:.3g}",
                    LABEL_TEXT.get(label, ""), c.label.note if c.label else "",
                    os.path.dirname(c.audio.path))[index.column()]
        if role == Qt.ItemDataRole.BackgroundRole and label:
            return LABEL_COLOUR[label]
        if role == Qt.ItemDataRole.ToolTipRole:
            who = f"\nlabelled {LABEL_TEXT[label]} by {c.label.who} at {c.label.at}" if label else ""
            return c.audio.path + who
        return None


def _button(parent, text: str, tip: str, slot) -> QPushButton:
    b = QPushButton(text, parent)
    b.setToolTip(tip)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys keep going to the list, where they label
    b.clicked.connect(slot)
    return b


class _UndoMixin:
    """Undo/redo buttons and the "last action" line, shared by both panels."""

    def _build_undo(self):
        self.undo_button = _button(self, "Undo", "Undo the last label action (Ctrl+Z)", lambda: self._guard(self.undo))
        self.redo_button = _button(self, "Redo", "Redo (Ctrl+Shift+Z)", lambda: self._guard(self.redo))
        self.history_label = QLabel(self)
        self.history_label.setWordWrap(True)
        self.model.session.history_changed.connect(lambda _: self._update_history())
        self._update_history()

    def undo(self):
        return self.model.session.undo()

    def redo(self):
        return self.model.session.redo()

    def _update_history(self) -> None:
        project = self.model.project
        self.undo_button.setEnabled(project.can_undo())
        self.redo_button.setEnabled(project.can_redo())
        last = project.history(limit=1)
        self.history_label.setText(f"Last: {last[0].summary} — {last[0].who}, {last[0].at[:19].replace('T', ' ')} UTC"
                                   if last else "No label actions yet")

    def _guard(self, fn):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - a dialog, never a traceback
            self.error_shown.emit(show_error(self, exc, "Labelling"))
            return None


class MatchLabelPanel(_UndoMixin, QWidget):
    """See the module docstring. ``compute_confidence`` starts alignments for unranked candidates."""

    pair_opened = Signal(str, str)  # MIDI path, recording path
    error_shown = Signal(str)

    def __init__(self, model: MatchLabelModel, runner: JobRunner | None = None, compute_confidence: bool = True,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.runner = runner or JobRunner(self)
        self.compute_confidence = compute_confidence
        self.confidence_job = None

        self.midi_combo = QComboBox(self)
        self.midi_combo.setMinimumContentsLength(24)
        self.count_label = QLabel(self)
        self.job_row = JobRow(self)
        self.table_model = CandidateTableModel(model, self)
        self.candidate_table = rows_table(self.table_model, self)
        self.candidate_table.verticalHeader().setVisible(False)
        self.candidate_table.verticalHeader().setDefaultSectionSize(20)
        self.candidate_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.candidate_table.horizontalHeader().setStretchLastSection(True)
        self.candidate_table.setColumnWidth(0, 36)
        self.candidate_table.setColumnWidth(1, 200)
        self.note_edit = QLineEdit(self)
        self.note_edit.setPlaceholderText("Note for this pair (Enter to save)")
        self._build_undo()
        buttons = [
            _button(self, "Match (Y)", "Label: this recording is the MIDI's piece", lambda: self.label("match")),
            _button(self, "No match (N)", "Label: a different piece", lambda: self.label("no_match")),
            _button(self, "Unsure (U)", "Label: cannot tell", lambda: self.label("unsure")),
            _button(self, "Next unlabelled (J)", "Jump to the next candidate without a label", self.next_unlabelled),
            _button(self, "Open (Enter)", "Open this pair in the main views", self.open_current),
        ]
        row = FlowLayout()  # wraps in a narrow dock rather than widening it
        for b in buttons + [self.undo_button, self.redo_button]:
            row.addWidget(b)
        top = QHBoxLayout()
        top.addWidget(QLabel("MIDI:", self))
        top.addWidget(self.midi_combo, 1)
        top.addWidget(self.count_label)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.job_row)
        layout.addWidget(self.candidate_table, 1)
        layout.addWidget(self.note_edit)
        layout.addLayout(row)
        layout.addWidget(self.history_label)

        keys = {"Y": lambda: self.label("match"), "N": lambda: self.label("no_match"),
                "U": lambda: self.label("unsure"), "J": self.next_unlabelled,
                "Return": self.open_current, "Enter": self.open_current}
        keys |= {k: lambda: self._guard(self.undo) for k in UNDO_KEYS}
        keys |= {k: lambda: self._guard(self.redo) for k in REDO_KEYS}
        self.keys = PanelKeys(self, keys, MATCH_KEY_DESCRIPTIONS)
        self.keys.watch(self, self.candidate_table, self.midi_combo)

        self._syncing = False
        self._reload_timer = QTimer(self, interval=1000)  # re-rank while confidences come in
        self._reload_timer.timeout.connect(lambda: self._guard(self.model.reload))
        self.midi_combo.currentIndexChanged.connect(self._on_combo)
        self.candidate_table.selectionModel().currentRowChanged.connect(self._on_table_row)
        self.note_edit.returnPressed.connect(self._save_note)
        model.current_changed.connect(self._on_current)
        model.candidate_updated.connect(lambda i: self._update_count())
        model.candidates_changed.connect(lambda _: self._update_count())
        model.session.files_changed.connect(lambda _: self.refresh_midis())
        self.refresh_midis()

    # -- intents -----------------------------------------------------------------------------------
    def select_midi(self, midi_id: int) -> None:
        """Show one MIDI's candidates (and start ranking those without a confidence)."""
        index = self.midi_combo.findData(midi_id)
        if index >= 0 and index != self.midi_combo.currentIndex():
            self.midi_combo.setCurrentIndex(index)  # → _on_combo
        else:
            self._show_midi(midi_id)

    def label(self, label: str) -> None:
        self._guard(lambda: self.model.label_current(label))

    def next_unlabelled(self) -> None:
        self._guard(self.model.go_next_unlabelled)

    def open_current(self) -> None:
        c = self.model.current_candidate
        if c is not None and self.model.midi_id is not None:
            self.pair_opened.emit(self.model.project.file(self.model.midi_id).path, c.audio.path)

    def compute_confidences(self):
        """Align the current MIDI with every candidate lacking a confidence, in the background."""
        missing = self.model.missing_confidences()
        if self.confidence_job is not None:
            self.confidence_job.cancel()
        if not missing or self.model.midi_id is None:
            return None
        job = self.runner.submit(confidence_job, str(self.model.project.path), self.model.midi_id, missing,
                                 name="rank candidates")
        self.confidence_job = job
        self.job_row.follow(job)
        job.succeeded.connect(self._on_confidences_done)
        job.failed.connect(lambda exc: self.error_shown.emit(show_error(self, exc, "Could not rank candidates")))
        job.finished.connect(lambda j=job: self._on_job_finished(j))
        self._reload_timer.start()
        return job

    def refresh_midis(self) -> None:
        current = self.midi_combo.currentData()
        self.midi_combo.blockSignals(True)
        self.midi_combo.clear()
        for f in self.model.midi_files():
            self.midi_combo.addItem(f.name, f.id)
            self.midi_combo.setItemData(self.midi_combo.count() - 1, f.path, Qt.ItemDataRole.ToolTipRole)
        index = self.midi_combo.findData(current if current is not None else self.model.midi_id)
        self.midi_combo.setCurrentIndex(index)
        self.midi_combo.blockSignals(False)

    # -- model → view ---------------------------------------------------------------------------
    def _show_midi(self, midi_id) -> None:
        self._guard(lambda: self.model.select_midi(midi_id))
        if self.compute_confidence:
            self._guard(self.compute_confidences)

    def _on_combo(self, index: int) -> None:
        if index >= 0:
            self._show_midi(self.midi_combo.itemData(index))

    def _on_current(self, index) -> None:
        self._syncing = True
        try:
            if index is None:
                self.candidate_table.clearSelection()
            else:
                qindex = self.table_model.index(index, 0)
                self.candidate_table.selectionModel().setCurrentIndex(
                    qindex, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
                self.candidate_table.scrollTo(qindex)
        finally:
            self._syncing = False
        c = self.model.current_candidate
        self.note_edit.setText(c.label.note if c is not None and c.label else "")
        self.note_edit.setEnabled(c is not None)

    def _on_table_row(self, current, previous) -> None:
        if not self._syncing and current.isValid():
            self.model.set_current(current.row())

    def _update_count(self) -> None:
        done, total = self.model.progress_counts()
        self.count_label.setText(f"{done} / {total} labelled")

    def _save_note(self) -> None:
        c = self.model.current_candidate
        if c is not None and (c.label.note if c.label else "") != self.note_edit.text():
            self._guard(lambda: self.model.set_note(self.note_edit.text()))
        self.candidate_table.setFocus()

    def _on_confidences_done(self, summary: dict) -> None:
        self._guard(self.model.reload)
        if summary.get("failed"):
            lines = [f"{path}: {reason}" for path, reason in summary["failed"]]
            problem = EarwormError(None, f"{len(lines)} recording(s) could not be aligned; they stay unranked")
            self.error_shown.emit(show_error(self, problem, "Ranking candidates", details="\n".join(lines)))

    def _on_job_finished(self, job) -> None:
        if job is self.confidence_job:
            self.confidence_job = None
            self._reload_timer.stop()


class PaceLabelPanel(_UndoMixin, QWidget):
    """See the module docstring. ``clock`` (seconds) times the taps; tests may replace it."""

    file_opened = Signal(str)
    error_shown = Signal(str)

    def __init__(self, model: PaceModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.clock = time.monotonic
        self.file_combo = QComboBox(self)
        self.bpm_label = QLabel("— bpm", self)
        font = QFont(self.bpm_label.font())
        font.setPointSizeF(font.pointSizeF() * 2)
        font.setBold(True)
        self.bpm_label.setFont(font)
        self.pace_list = QListWidget(self)
        self.bpm_spin = QDoubleSpinBox(self)
        self.bpm_spin.setRange(40.0, 320.0)
        self.bpm_spin.setDecimals(1)
        self.bpm_spin.setValue(120.0)
        self.bpm_spin.setSuffix(" bpm")
        self.suggestion_row = FlowLayout()
        self._build_undo()
        add = _button(self, "Add", "Add the typed bpm as a pace", lambda: self._guard(
            lambda: model.add(self.bpm_spin.value())))
        buttons = [
            _button(self, "Tap (T)", "Tap to the beat while the song plays", self.tap),
            _button(self, "Add tapped (A)", "Add the tapped tempo as a pace", lambda: self._guard(model.add_tapped)),
            _button(self, "Half (H)", "Add half the selected pace", lambda: self._guard(lambda: model.add_scaled(0.5))),
            _button(self, "Double (D)", "Add double the selected pace", lambda: self._guard(lambda: model.add_scaled(2))),
            _button(self, "Remove (Del)", "Remove the selected pace", lambda: self._guard(model.remove)),
            _button(self, "Open", "Open this file in the main views (to play it while tapping)", self.open_current),
        ]
        top = QHBoxLayout()
        top.addWidget(QLabel("File:", self))
        top.addWidget(self.file_combo, 1)
        tap_row = QHBoxLayout()
        tap_row.addWidget(self.bpm_label, 1)
        tap_row.addWidget(self.bpm_spin)
        tap_row.addWidget(add)
        button_row = FlowLayout()
        for b in buttons + [self.undo_button, self.redo_button]:
            button_row.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(tap_row)
        layout.addWidget(QLabel("Paces:", self))
        layout.addWidget(self.pace_list, 1)
        layout.addLayout(self.suggestion_row)
        layout.addLayout(button_row)
        layout.addWidget(self.history_label)

        keys = {"T": self.tap, "A": lambda: self._guard(model.add_tapped),
                "H": lambda: self._guard(lambda: model.add_scaled(0.5)),
                "D": lambda: self._guard(lambda: model.add_scaled(2)),
                "Del": lambda: self._guard(model.remove), "Backspace": lambda: self._guard(model.remove)}
        keys |= {k: lambda: self._guard(self.undo) for k in UNDO_KEYS}
        keys |= {k: lambda: self._guard(self.redo) for k in REDO_KEYS}
        self.keys = PanelKeys(self, keys, PACE_KEY_DESCRIPTIONS)
        self.keys.watch(self, self.pace_list, self.file_combo)

        self.file_combo.currentIndexChanged.connect(
            lambda i: i >= 0 and self._guard(lambda: model.select_file(self.file_combo.itemData(i))))
        self.pace_list.currentItemChanged.connect(self._on_list_current)
        model.paces_changed.connect(self._on_paces)
        model.tap_changed.connect(self._on_tap)
        model.file_changed.connect(self._show_file)
        # Suggestions: the file's stored tempo candidates not labelled yet (after every pace change).
        model.paces_changed.connect(lambda _: self._update_suggestions())
        model.suggestions_changed.connect(lambda file_id: file_id == model.file_id and self._update_suggestions())
        model.session.files_changed.connect(lambda _: self.refresh_files())
        self.refresh_files()

    def select_file(self, file_id: int) -> None:
        index = self.file_combo.findData(file_id)
        if index >= 0 and index != self.file_combo.currentIndex():
            self.file_combo.setCurrentIndex(index)
        else:  # (a file added since the box was filled is shown by _show_file)
            self._guard(lambda: self.model.select_file(file_id))

    def tap(self) -> None:
        self.model.tap(self.clock())

    def open_current(self) -> None:
        if self.model.file_id is not None:
            self.file_opened.emit(self.model.project.file(self.model.file_id).path)

    def refresh_files(self) -> None:
        current = self.file_combo.currentData()
        files = sorted(self.model.project.files(), key=lambda f: (f.kind != "audio", f.name.lower()))
        self.file_combo.blockSignals(True)
        self.file_combo.clear()
        for f in files:
            self.file_combo.addItem(f"{f.name}  ({'MIDI' if f.kind == 'midi' else 'recording'})", f.id)
        # The model's file is the one being labelled; the box shows it (else keeps its choice).
        shown = self.model.file_id if self.model.file_id is not None else current
        self.file_combo.setCurrentIndex(self.file_combo.findData(shown))
        self.file_combo.blockSignals(False)

    def _show_file(self, file_id) -> None:
        """The box shows the model's file, also one the model chose itself (the recording on screen,
        added to the project by its first pace)."""
        index = self.file_combo.findData(file_id)
        if index < 0 and file_id is not None:
            self.refresh_files()  # added since the box was filled
        elif index != self.file_combo.currentIndex():
            self.file_combo.blockSignals(True)
            self.file_combo.setCurrentIndex(index)
            self.file_combo.blockSignals(False)

    def _on_paces(self, paces) -> None:
        self.pace_list.blockSignals(True)
        self.pace_list.clear()
        for bpm in paces:
            item = QListWidgetItem(f"{bpm:g} bpm")
            item.setData(Qt.ItemDataRole.UserRole, bpm)
            self.pace_list.addItem(item)
            if bpm == self.model.selected:
                self.pace_list.setCurrentItem(item)
        self.pace_list.blockSignals(False)

    def _on_list_current(self, item, previous) -> None:
        self.model.select(None if item is None else item.data(Qt.ItemDataRole.UserRole))

    def _on_tap(self, bpm) -> None:
        self.bpm_label.setText("— bpm" if bpm is None else f"{bpm:.1f} bpm")
        if bpm is not None and 40.0 <= bpm <= 320.0:
            self.bpm_spin.setValue(bpm)

    def _update_suggestions(self) -> None:
        while self.suggestion_row.count():
            widget = self.suggestion_row.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        suggestions = self._guard(self.model.suggestions) or []
        if suggestions:
            self.suggestion_row.addWidget(QLabel("Suggested:", self))
        for bpm in suggestions:
            self.suggestion_row.addWidget(_button(self, f"{bpm:.1f}", "Add this candidate tempo as a pace",
                                                  lambda _=False, b=bpm: self._guard(lambda: self.model.add(b))))
