"""Docked panels open at a sensible width: rows of buttons wrap instead of widening the dock."""
from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QLineEdit, QPushButton, QWidget

from gui.main_window import PANEL_WIDTH_MAX_PX, MainWindow
from gui.panels.panel_common import FlowLayout


def test_flow_layout_wraps_and_is_as_narrow_as_its_widest_widget(qtbot):
    host = QWidget()
    qtbot.addWidget(host)
    flow = FlowLayout(host)
    search = QLineEdit(host)
    search.setMinimumWidth(120)
    buttons = [QPushButton(text, host) for text in ("Add Folder…", "Relink…", "Labels", "Next unlabelled (J)")]
    flow.addWidget(search)
    for b in buttons:
        flow.addWidget(b)
    one_line = flow.sizeHint()
    widest = max(w.sizeHint().width() for w in [search, *buttons])
    assert flow.minimumSize().width() <= max(widest, search.minimumWidth()) < one_line.width()
    # wide enough: one line; narrow: several lines, each widget placed inside the width given
    assert flow.heightForWidth(one_line.width()) == one_line.height()
    narrow = widest + 10
    assert flow.heightForWidth(narrow) >= 3 * buttons[0].sizeHint().height()
    host.resize(narrow, flow.heightForWidth(narrow))
    host.show()
    qtbot.waitExposed(host)
    for w in [search, *buttons]:
        assert 0 <= w.geometry().left() and w.geometry().right() < narrow
    tops = sorted({b.geometry().top() for b in buttons})
    assert len(tops) >= 2
    # the expanding search field takes the rest of its line
    host.resize(one_line.width() + 200, one_line.height())
    qtbot.wait(10)
    assert search.width() > search.sizeHint().width() + 150


def test_project_panels_dock_at_a_sensible_width(qtbot, tmp_path):
    from gui.panels.project_panels import install_project_panels

    window = MainWindow(settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat), dialogs=False,
                        warm_up=False)
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    window.show()
    qtbot.waitExposed(window)
    panels = install_project_panels(window, tmp_path / "p.earworm")
    assert panels is not None
    library = window.panels["Library"]
    qtbot.waitUntil(lambda: 300 <= library.width() <= PANEL_WIDTH_MAX_PX, timeout=5000)  # once laid out
    assert 300 <= library.width() <= 0.35 * window.width()
    assert window.centralWidget().width() >= 0.6 * window.width()
    # every tabbed panel fits that width: none demands more than the dock was given
    for name in ("Library", "Match labels", "Paces"):
        assert window.panels[name].minimumSizeHint().width() <= library.width(), name
    window.close()
