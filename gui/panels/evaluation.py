"""The evaluation panel: how good is a match, against gold labels.

Task
----
Given a :class:`engine.match.MatchResult` (from the matching panel) and a gold-label file (the
long ``midi,audio`` CSV or the seed study's matrix), compute :func:`engine.evaluate.evaluate` in
the background and show the metrics (confusion, precision, recall, F1, ROC AUC, rank-1, top-5,
MRR), the score densities of matches vs non-matches with the decision threshold, and the ROC
curve, drawn with pyqtgraph.

Conventions
-----------
No metric is computed here: the job calls :mod:`engine.evaluate`, the panel draws what it returns.
Signals: ``evaluated(evaluation)``, ``error_shown(text)``.

Integration (main window): ``panel = EvaluationPanel(window.jobs)``;
``window.add_panel(panel, "Evaluation")``; ``matching_panel.result_ready.connect(panel.set_result)``.
"""
from __future__ import annotations

import os

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSplitter, QVBoxLayout, QWidget

from gui.panels.panel_common import JobRow, show_error
from gui.workers import JobRunner


def evaluation_job(result, gold_path, *, progress=None, cancel=None):
    """The background job: read the gold labels and evaluate; returns (evaluation, densities)."""
    from engine.evaluate import evaluate, read_gold, score_densities

    if progress:
        progress(0.1, "reading the gold labels")
    gold = read_gold(gold_path, result.midi_names, result.audio_names)
    evaluation = evaluate(result.scores, result.predicted, gold)
    if progress:
        progress(0.9, "drawing")
    return evaluation, score_densities(evaluation)


class EvaluationPanel(QWidget):
    """Gold file, metrics, density and ROC plots (see the module docstring)."""

    evaluated = Signal(object)
    error_shown = Signal(str)

    def __init__(self, runner: JobRunner | None = None, parent=None):
        super().__init__(parent)
        self.runner = runner or JobRunner(self)
        self.result = None
        self.evaluation = None
        self.job = None
        self.gold_edit = QLineEdit(self)
        self.gold_edit.setPlaceholderText("gold labels: midi,audio CSV or the seed's matrix")
        browse = QPushButton("…", self)
        browse.setFixedWidth(32)
        browse.clicked.connect(self._browse)
        self.evaluate_button = QPushButton("Evaluate", self)
        self.evaluate_button.clicked.connect(self.start)
        self.evaluate_button.setEnabled(False)
        top = QHBoxLayout()
        top.addWidget(QLabel("Gold", self))
        top.addWidget(self.gold_edit, 1)
        top.addWidget(browse)
        top.addWidget(self.evaluate_button)
        self.job_row = JobRow(self)
        self.metrics = QLabel("no match to evaluate yet", self)
        self.metrics.setFont(QFont("monospace"))
        self.metrics.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.density_plot = pg.PlotWidget(self, title="Scores: matches vs non-matches")
        self.density_plot.setLabel("bottom", "confidence")
        self.density_plot.setLabel("left", "density")
        self.density_plot.addLegend(offset=(-10, 10))
        self.match_curve = self.density_plot.plot([0, 1], [0], stepMode="center", fillLevel=0, name="matches",
                                                  pen=pg.mkPen("#e08020", width=2), brush=(224, 128, 32, 90))
        self.non_match_curve = self.density_plot.plot([0, 1], [0], stepMode="center", fillLevel=0, name="non-matches",
                                                      pen=pg.mkPen("#909090", width=2), brush=(144, 144, 144, 70))
        self.threshold_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#d0d040", width=1, style=Qt.PenStyle.DashLine))
        self.density_plot.addItem(self.threshold_line)
        self.roc_plot = pg.PlotWidget(self, title="ROC")
        self.roc_plot.setLabel("bottom", "false positive rate")
        self.roc_plot.setLabel("left", "true positive rate")
        self.roc_plot.setXRange(0, 1)
        self.roc_plot.setYRange(0, 1.02)
        self.roc_plot.plot([0, 1], [0, 1], pen=pg.mkPen("#b0b0b0", style=Qt.PenStyle.DotLine))
        self.roc_curve = self.roc_plot.plot([], [], pen=pg.mkPen("#2060c0", width=2))
        plots = QSplitter(Qt.Orientation.Horizontal, self)
        plots.addWidget(self.density_plot)
        plots.addWidget(self.roc_plot)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.job_row)
        layout.addWidget(self.metrics)
        layout.addWidget(plots, 1)

    def set_result(self, result) -> None:
        """Take a new match (clears the previous evaluation); evaluates at once if a gold file is set."""
        self.result = result
        self.evaluation = None
        self.metrics.setText("match ready; choose the gold labels and Evaluate")
        self.threshold_line.setValue(result.params.threshold)
        self.evaluate_button.setEnabled(True)
        if self.gold_edit.text().strip():
            self.start()

    def set_gold(self, path) -> None:
        self.gold_edit.setText(os.fspath(path))

    def start(self):
        """Evaluate in the background; returns the :class:`gui.workers.Job` (None if nothing to do)."""
        if self.result is None or self.job is not None:
            return None
        self.job = self.runner.submit(evaluation_job, self.result, self.gold_edit.text().strip(), name="evaluate")
        self.job.succeeded.connect(self.show_evaluation)
        self.job.failed.connect(lambda exc: self.error_shown.emit(show_error(self, exc, "Evaluation failed")))
        self.job.finished.connect(self._on_finished)
        self.job_row.follow(self.job)
        return self.job

    def show_evaluation(self, payload) -> None:
        evaluation, (edges, match_density, non_match_density) = payload
        self.evaluation = evaluation
        self.metrics.setText(evaluation.report())
        self.match_curve.setData(edges, match_density)
        self.non_match_curve.setData(edges, non_match_density)
        self.roc_curve.setData(evaluation.roc_fpr, evaluation.roc_tpr)
        self.roc_plot.setTitle(f"ROC (AUC {evaluation.roc_auc:.4f})")
        self.evaluated.emit(evaluation)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Gold labels", self.gold_edit.text(), "CSV files (*.csv)")
        if path:
            self.gold_edit.setText(path)

    def _on_finished(self) -> None:
        self.job = None
