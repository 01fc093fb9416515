"""The stack of linked views: every view on the shared time axis, one above the other.

Task: hold the time views in a vertical splitter (the user can resize them), keep them in order,
and take further views later (a tempo strip, an annotation lane) with :meth:`LinkedViews.add_view`.
The views link through the session, not through each other, so adding one needs no rewiring.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from gui.views.base import TimeView


class LinkedViews(QWidget):
    """A vertical stack of :class:`TimeView` objects sharing a session."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setHandleWidth(4)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self.views: dict[str, TimeView] = {}

    def add_view(self, name: str, view: TimeView, stretch: int = 1, index: int | None = None) -> TimeView:
        """Add ``view`` under ``name`` at ``index`` (default: the bottom), with a height weight."""
        if name in self.views:
            raise ValueError(f"a view named {name!r} is already in the stack")
        if index is None:
            self.splitter.addWidget(view)
        else:
            self.splitter.insertWidget(index, view)
        self.splitter.setStretchFactor(self.splitter.indexOf(view), stretch)
        self.views[name] = view
        return view

    def view(self, name: str) -> TimeView:
        return self.views[name]

    def set_heights(self, heights_px: dict[str, int]) -> None:
        """Set the heights of named views (others keep theirs)."""
        sizes = self.splitter.sizes()
        for name, height in heights_px.items():
            sizes[self.splitter.indexOf(self.views[name])] = int(height)
        self.splitter.setSizes(sizes)
