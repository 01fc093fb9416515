"""Pieces the library and labelling panels share: error dialogs, panel keys, a job progress row.

Conventions
-----------
- Errors a user can act on (:class:`engine.errors.EarwormError`) become a window-modal, non-
  blocking message box (``QMessageBox.open``), never a traceback; the panel also emits
  ``error_shown(text)`` so tests and the main window can see it.
- Panel keys (Y/N/U, Ctrl+Z, …) are caught by an event filter on the panel's widgets, before a
  table's type-ahead search eats letters, and they win over window-wide shortcuts while the focus
  is inside the panel (the filter accepts their ShortcutOverride). Text fields keep their keys.
- Rows of buttons are :class:`FlowLayout` s: they wrap onto a second line in a narrow dock instead
  of making the dock as wide as all the buttons side by side.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QObject, QRect, QSize, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QLayout, QLineEdit, QMessageBox, QProgressBar,
                               QPushButton, QSizePolicy, QTableView, QWidget)

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


class RowsTableModel(QAbstractTableModel):
    """A read-only Qt table over a list ``rows`` under fixed column ``headers``.

    Subclasses set ``headers`` and implement ``data``; ``set_rows`` replaces every row at once.
    """

    headers: tuple = ()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list = []

    def set_rows(self, rows) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return len(self.headers)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        return None


def rows_table(model, parent: QWidget) -> QTableView:
    """A read-only table of ``model`` where a click selects one whole row (every panel's results)."""
    table = QTableView(parent)
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    return table


def key_name(event) -> str:
    """A key event as a QKeySequence string ("Y", "Ctrl+Z", "Ctrl+Shift+Z"), keypad ignored."""
    modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    return QKeySequence(event.key() | modifiers.value).toString()


class PanelKeys(QObject):
    """Routes key presses on watched widgets to handlers by key name (see the module docstring).

    ``descriptions`` (key names → what they do, e.g. ``{"Y": "label: match"}``) is what Help →
    Keys and Mouse lists for the panel; a key may share a description with another ("Ctrl+Y")."""

    def __init__(self, parent: QObject, handlers: dict[str, Callable[[], object]],
                 descriptions: dict[str, str] | None = None):
        super().__init__(parent)
        self.handlers = handlers
        self.descriptions = dict(descriptions or {})

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

    def _replaced(self) -> bool:
        """True in a slot called by a job that a newer :meth:`follow` replaced (it must not touch the row)."""
        sender = self.sender()
        return sender is not None and sender is not self.job

    def _on_progress(self, fraction: float, message: str) -> None:
        if self._replaced():
            return
        self.bar.setValue(int(fraction * 1000))
        self.bar.setFormat(f"{message}  %p%" if message else "%p%")

    def _on_finished(self) -> None:
        if self._replaced():
            return
        self.job = None
        self.hide()


class FlowLayout(QLayout):
    """Widgets left to right at their preferred width, wrapping onto more lines when the width runs
    out; on each line, widgets that expand horizontally (a search field) share the width left.

    Its minimum width is that of its widest widget, so a panel of buttons docks narrow.
    """

    def __init__(self, parent: QWidget | None = None, h_spacing: int = 6, v_spacing: int = 4):
        super().__init__(parent)
        self._items = []
        self._h_spacing, self._v_spacing = h_spacing, v_spacing
        self.setContentsMargins(0, 0, 0, 0)

    # -- QLayout's interface ---------------------------------------------------------------------
    def addItem(self, item) -> None:  # noqa: N802 (Qt's name)
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int):  # noqa: N802
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int):  # noqa: N802
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return self._arrange(QRect(0, 0, width, 0), apply=False)

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802
        super().setGeometry(rect)
        self._arrange(rect, apply=True)

    def sizeHint(self) -> QSize:  # noqa: N802
        """Everything on one line."""
        items = self._visible()
        m = self.contentsMargins()
        width = sum(i.sizeHint().width() for i in items) + self._h_spacing * max(len(items) - 1, 0)
        height = max((i.sizeHint().height() for i in items), default=0)
        return QSize(width + m.left() + m.right(), height + m.top() + m.bottom())

    def minimumSize(self) -> QSize:  # noqa: N802
        """The widest single widget (the height follows from :meth:`heightForWidth`)."""
        m = self.contentsMargins()
        size = QSize()
        for item in self._visible():
            size = size.expandedTo(item.minimumSize())
        return size + QSize(m.left() + m.right(), m.top() + m.bottom())

    # -- the arrangement -------------------------------------------------------------------------
    def _visible(self) -> list:
        return [item for item in self._items if not item.isEmpty()]

    def _arrange(self, rect: QRect, apply: bool) -> int:
        """Place the items in ``rect`` (if ``apply``); return the height they need."""
        m = self.contentsMargins()
        area = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        width = max(area.width(), 1)
        lines, line, used = [], [], 0
        for item in self._visible():
            w = min(item.sizeHint().width(), width)
            if line and used + self._h_spacing + w > width:
                lines.append(line)
                line, used = [], 0
            used += (self._h_spacing if line else 0) + w
            line.append(item)
        if line:
            lines.append(line)
        y = area.y()
        for line in lines:
            widths = [min(item.sizeHint().width(), width) for item in line]
            spare = width - sum(widths) - self._h_spacing * (len(line) - 1)
            growing = [k for k, item in enumerate(line)
                       if item.widget() is not None
                       and item.widget().sizePolicy().horizontalPolicy().value
                       & QSizePolicy.PolicyFlag.ExpandFlag.value]
            for k in growing:
                widths[k] += spare // len(growing)
            height = max(item.sizeHint().height() for item in line)
            if apply:
                x = area.x()
                for item, w in zip(line, widths):
                    item.setGeometry(QRect(x, y, w, height))
                    x += w + self._h_spacing
            y += height + self._v_spacing
        return max(y - self._v_spacing - area.y(), 0) + m.top() + m.bottom()
