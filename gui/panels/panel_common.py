"""Pieces the library and labelling panels share: error dialogs, panel keys, a job progress row.

Conventions
-----------
- Errors a user can act on (:class:`engine.errors.EarwormError`) become a window-modal, non-
  blocking message box (``QMessageBox.open``), never a traceback; the panel also emits
  ``error_shown(text)`` so tests and the main window can see it.
- Panel keys (Y/N/U, Ctrl+Z, …) are caught by an event filter on the panel's widgets, before a
  table's type-ahead search eats letters, and they win over window-wide shortcuts while the focus
  is inside the panel (the filter accepts their ShortcutOverride). Text fields keep their keys.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QMessageBox, QProgressBar, QPushButton, QWidget

from engine.errors import EarwormError


def show_error(parent: QWidget, exc: BaseException, title: str, details: str = "") -> str:
    """Show ``exc`` in a non-blocking dialog over ``parent``; returns the text shown (with details)."""
    text = str(exc) if isinstance(exc, EarwormError) else f"Unexpected error: {type(exc).__name__}: {exc}"
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
    if details:
        box.setDetailedText(details)
        text = f"{text}\n{details}"
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return text


def key_name(event) -> str:
    """A key event as a QKeySequence string ("Y", "Ctrl+Z", "Ctrl+Shift+Z"), keypad ignored."""
    modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    return QKeySequence(event.key() | modifiers.value).toString()


class PanelKeys(QObject):
    """Routes key presses on watched widgets to handlers by key name (see the module docstring)."""

    def __init__(self, parent: QObject, handlers: dict[str, Callable[[], object]]):
        super().__init__(parent)
        self.handlers = handlers

    def watch(self, *widgets: QWidget) -> None:
        for w in widgets:
            w.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        kind = event.type()
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride) or isinstance(obj, QLineEdit):
            return False
        handler = self.handlers.get(key_name(event))
        if handler is None:
            return False
        if kind == QEvent.Type.ShortcutOverride:
            event.accept()  # deliver it to us as a key press instead of a window shortcut
            return False
        handler()
        return True


class JobRow(QWidget):
    """A progress bar with a Cancel button, shown while a background job runs."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel", self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.cancel_button)
        self.job = None
        self.cancel_button.clicked.connect(self.cancel)
        self.hide()

    def follow(self, job) -> None:
        """Show the progress of a :class:`gui.workers.Job` until it finishes."""
        self.job = job
        self.bar.setValue(0)
        self.bar.setFormat("starting…")
        job.progressed.connect(self._on_progress)
        job.finished.connect(self._on_finished)
        self.show()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.bar.setFormat("cancelling…")

    def _on_progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(int(fraction * 1000))
        self.bar.setFormat(f"{message}  %p%" if message else "%p%")

    def _on_finished(self) -> None:
        self.job = None
        self.hide()
