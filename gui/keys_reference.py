"""Help → Keys and Mouse: every keyboard shortcut and mouse gesture of the window, in one list.

Task
----
A reference a user can keep open beside the window while working (Sonic Visualiser's "Key and
Mouse Reference"). It is read from the window at the moment it opens, so it cannot drift from the
code: the window's actions and their shortcuts (``window.actions``), each docked panel's keys
(:attr:`gui.panels.panel_common.PanelKeys.descriptions`) and each view's gestures
(:attr:`gui.views.base.TimeView.mouse_reference`).

Conventions
-----------
Rows are ``(section, keys, what)``. Sections: "Window" (shortcuts that work anywhere in the
window), one per panel ("Panel: Match labels" — its keys work while the focus is in it), "Mouse,
in every view", and "Mouse, in the <view>" for a view's own gestures (``reference_name``). Keys are shown in the
platform's own notation (``QKeySequence.NativeText``); keys that do the same are joined.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTreeWidget, QTreeWidgetItem, QVBoxLayout

from gui.panels.panel_common import PanelKeys
from gui.views.base import MOUSE_REFERENCE

WINDOW_SECTION = "Window"
MOUSE_SECTION = "Mouse, in every view"


def _native(key: str | QKeySequence) -> str:
    return QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText)


def _action_text(text: str) -> str:
    """A menu text without its mnemonic and ellipsis ("Open &Pair…" → "Open Pair")."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…").rstrip(".").strip()


def _joined(pairs) -> list[tuple[str, str]]:
    """(key, what) pairs → (keys, what) rows, keys that do the same joined, in first-seen order."""
    keys_by_what: dict[str, list[str]] = {}
    for key, what in pairs:
        keys_by_what.setdefault(what, []).append(key)
    return [(", ".join(keys), what) for what, keys in keys_by_what.items()]


def reference_rows(window) -> list[tuple[str, str, str]]:
    """The window's keys and mouse gestures as ``(section, keys, what)`` rows (see the module docstring)."""
    rows = []
    for action in getattr(window, "actions", {}).values():
        shortcuts = [_native(s) for s in action.shortcuts()]
        if shortcuts:
            rows.append((WINDOW_SECTION, ", ".join(shortcuts), _action_text(action.text())))
    for title, dock in getattr(window, "panels", {}).items():
        panel = dock.widget()
        described = [(_native(key), what) for keys in panel.findChildren(PanelKeys)
                     for key, what in keys.descriptions.items()]
        rows += [(f"Panel: {title}", keys, what) for keys, what in _joined(described)]
    rows += [(MOUSE_SECTION, gesture, what) for gesture, what in MOUSE_REFERENCE]
    views = getattr(getattr(window, "views", None), "views", {})
    for key, view in views.items():
        own = [row for row in getattr(view, "mouse_reference", ()) if row not in MOUSE_REFERENCE]
        name = getattr(view, "reference_name", key)
        rows += [(f"Mouse, in the {name}", gesture, what) for gesture, what in own]
    return rows


class KeysReferenceDialog(QDialog):
    """A non-modal window listing :func:`reference_rows` of ``window``, grouped by section."""

    def __init__(self, window):
        super().__init__(window)
        self.setWindowTitle("Keys and Mouse")
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Keys / mouse", "What it does"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)
        self.resize(640, 780)
        self.refresh(window)

    def refresh(self, window) -> None:
        """Read the window again (panels and views come and go)."""
        self.tree.clear()
        sections: dict[str, QTreeWidgetItem] = {}
        for section, keys, what in reference_rows(window):
            parent = sections.get(section)
            if parent is None:
                parent = sections[section] = QTreeWidgetItem(self.tree, [section])
                parent.setFirstColumnSpanned(True)
                font = parent.font(0)
                font.setBold(True)
                parent.setFont(0, font)
                parent.setFlags(Qt.ItemFlag.ItemIsEnabled)
            QTreeWidgetItem(parent, [keys, what])
        self.tree.expandAll()
        self.tree.resizeColumnToContents(0)


def show_keys_reference(window) -> KeysReferenceDialog:
    """Open (or raise) the window's Keys and Mouse reference, read afresh."""
    dialog = getattr(window, "keys_reference_dialog", None)
    if dialog is None:
        dialog = window.keys_reference_dialog = KeysReferenceDialog(window)
    else:
        dialog.refresh(window)
    dialog.show()
    dialog.raise_()
    return dialog
