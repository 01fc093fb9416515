"""The main window's menus, toolbar, keyboard shortcuts and display controls.

Task: build every QAction of the window in one place (so the main window stays about behaviour),
each wired to a session method or a window method. Keyboard: ``+``/``-`` zoom, ``←``/``→`` pan
(Shift: a whole screen), ``Home`` fit all, ``Z`` zoom to selection, ``Esc`` clear selection,
``W`` warped/unwarped, ``O`` note overlay, ``Ctrl+O`` open pair, ``F1`` the keys and mouse reference
(:mod:`gui.keys_reference`, read from these actions).
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QSpinBox, QStyle, QToolBar

from gui.keys_reference import show_keys_reference
from gui.pipeline import AUDIO_SUFFIXES, MIDI_SUFFIXES
from gui.views import theme

ZOOM_STEP = 1.5
PAN_STEP_FRACTION = 0.2

MIDI_FILTER = "MIDI files (" + " ".join(f"*{s}" for s in MIDI_SUFFIXES) + ")"
AUDIO_FILTER = "Audio files (" + " ".join(f"*{s}" for s in AUDIO_SUFFIXES) + ")"
PAIR_FILTER = "MIDI and audio (" + " ".join(f"*{s}" for s in MIDI_SUFFIXES + AUDIO_SUFFIXES) + ")"


def _action(window, key: str, text: str, slot, shortcuts=(), tip: str = "", icon=None, checkable=False) -> QAction:
    action = QAction(text, window)
    if shortcuts:
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    if icon is not None:
        action.setIcon(window.style().standardIcon(icon))
    action.setCheckable(checkable)
    action.triggered.connect(slot)
    window.addAction(action)  # shortcuts work even when the action sits in no visible menu
    window.actions[key] = action
    return action


def _open_midi(window):
    for path in window.choose_files("Open MIDI", MIDI_FILTER):
        window.open_midi(path)


def _open_audio(window):
    for path in window.choose_files("Open audio", AUDIO_FILTER):
        window.open_audio(path)


def _open_pair(window):
    paths = window.choose_files("Open a MIDI file and a recording (select both)", PAIR_FILTER, multiple=True)
    if paths:
        window.open_files(paths)


def build_menus_and_toolbar(window) -> None:
    """Create the File/View/Help menus, the toolbar and the shortcuts of ``window``."""
    s = window.session
    sp = QStyle.StandardPixmap
    _action(window, "open_pair", "Open &Pair…", lambda: _open_pair(window), ["Ctrl+O"],
            "Open a MIDI file and a recording together", sp.SP_DialogOpenButton)
    _action(window, "open_midi", "Open &MIDI…", lambda: _open_midi(window), ["Ctrl+M"],
            "Open a MIDI file (aligned with the current recording)", sp.SP_FileIcon)
    _action(window, "open_audio", "Open &Audio…", lambda: _open_audio(window), ["Ctrl+Shift+O"],
            "Open a recording (aligned with the current MIDI)", sp.SP_MediaVolume)
    _action(window, "export_midi", "Export Aligned &MIDI…", lambda: window.export_aligned_midi(), ["Ctrl+E"],
            "Write the MIDI warped into the recording's timeline", sp.SP_DialogSaveButton)
    _action(window, "export_csv", "Export Path &CSV…", lambda: window.export_path_csv(), [],
            "Write the warping path as CSV (midi_s, audio_s)")
    _action(window, "export_png", "Export View &PNG…", lambda: window.export_view_png(), ["Ctrl+Shift+S"],
            "Save the views as an image")
    _action(window, "quit", "&Quit", window.close, ["Ctrl+Q"])

    _action(window, "zoom_in", "Zoom &In", lambda: s.zoom(ZOOM_STEP), ["+", "=", "Ctrl++"],
            "Zoom in (mouse wheel over a view zooms about the pointer)", sp.SP_ArrowUp)
    _action(window, "zoom_out", "Zoom &Out", lambda: s.zoom(1 / ZOOM_STEP), ["-", "Ctrl+-"], "Zoom out",
            sp.SP_ArrowDown)
    _action(window, "pan_left", "Pan Left", lambda: s.pan(-PAN_STEP_FRACTION), ["Left"])
    _action(window, "pan_right", "Pan Right", lambda: s.pan(PAN_STEP_FRACTION), ["Right"])
    _action(window, "page_left", "Page Left", lambda: s.pan(-0.9), ["Shift+Left", "PgUp"])
    _action(window, "page_right", "Page Right", lambda: s.pan(0.9), ["Shift+Right", "PgDown"])
    _action(window, "fit_all", "&Fit All", lambda: (s.fit_all(), s.fit_pitch()), ["Home"],
            "Show the whole piece", sp.SP_TitleBarMaxButton)
    _action(window, "zoom_selection", "Zoom to &Selection", s.zoom_to_selection, ["Z"],
            "Zoom to the selected time range (Shift+drag or right-drag to select)")
    _action(window, "clear_selection", "Clear Selection", lambda: s.set_selection(None), ["Esc"])
    window.actions["zoom_selection"].setEnabled(False)
    _action(window, "warped", "&Warped MIDI (audio time)", lambda on: s.set_display(show_warped=on), ["W"],
            "On: the MIDI in the recording's time. Off: the MIDI's own, unwarped time", checkable=True)
    _action(window, "overlay", "Note &Overlay on Spectrogram", lambda on: s.set_display(show_overlay=on), ["O"],
            "Draw the aligned notes as outlines over the spectrogram", checkable=True)
    window.actions["warped"].setChecked(s.display.show_warped)
    window.actions["overlay"].setChecked(s.display.show_overlay)
    _action(window, "keys", "&Keys and Mouse…", lambda: show_keys_reference(window), ["F1"],
            "Every keyboard shortcut and mouse gesture of the window")
    _action(window, "about", "&About Earworm Studio", lambda: _about(window))

    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    for key in ("open_pair", "open_midi", "open_audio"):
        file_menu.addAction(window.actions[key])
    window.recent_menu = file_menu.addMenu("Open &Recent")
    file_menu.addSeparator()
    for key in ("export_midi", "export_csv", "export_png"):
        file_menu.addAction(window.actions[key])
    file_menu.addSeparator()
    file_menu.addAction(window.actions["quit"])

    view_menu = bar.addMenu("&View")
    for key in ("zoom_in", "zoom_out", "fit_all", "zoom_selection", "clear_selection", None,
                "pan_left", "pan_right", "page_left", "page_right", None, "warped", "overlay"):
        if key is None:
            view_menu.addSeparator()
        else:
            view_menu.addAction(window.actions[key])
    view_menu.addSeparator()
    window.panels_menu = view_menu.addMenu("&Panels")
    window.panels_menu.menuAction().setVisible(False)
    help_menu = bar.addMenu("&Help")
    help_menu.addAction(window.actions["keys"])
    help_menu.addAction(window.actions["about"])

    toolbar = QToolBar("Main", window)
    toolbar.setObjectName("mainToolbar")
    toolbar.setIconSize(QSize(18, 18))
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.setMovable(False)
    window.addToolBar(toolbar)
    for key in ("open_pair", "open_midi", "open_audio", None, "zoom_in", "zoom_out", "fit_all", "zoom_selection",
                None, "warped", "overlay"):
        if key is None:
            toolbar.addSeparator()
        else:
            toolbar.addAction(window.actions[key])
    toolbar.addSeparator()
    _add_display_controls(window, toolbar)
    toolbar.addSeparator()
    toolbar.addAction(window.actions["export_midi"])
    window.toolbar = toolbar


def _add_display_controls(window, toolbar: QToolBar) -> None:
    s = window.session
    toolbar.addWidget(QLabel(" Colour "))
    colour = QComboBox()
    colour.addItem("by instrument", "instrument")
    colour.addItem("by velocity", "velocity")
    colour.setToolTip("Colour of the piano-roll notes")
    colour.currentIndexChanged.connect(lambda i: s.set_display(note_colour=colour.itemData(i)))
    toolbar.addWidget(colour)
    toolbar.addWidget(QLabel(" Range "))
    dynamic = QSpinBox()
    dynamic.setRange(20, 80)
    dynamic.setSingleStep(5)
    dynamic.setSuffix(" dB")
    dynamic.setValue(int(s.display.dynamic_range_db))
    dynamic.setToolTip("Spectrogram dynamic range: quieter cells are drawn black")
    dynamic.valueChanged.connect(lambda v: s.set_display(dynamic_range_db=float(v)))
    toolbar.addWidget(dynamic)
    toolbar.addWidget(QLabel(" Colours "))
    cmap = QComboBox()
    for name in theme.SPECTROGRAM_COLORMAPS:
        cmap.addItem(name, name)
    cmap.setCurrentIndex(theme.SPECTROGRAM_COLORMAPS.index(s.display.colormap))
    cmap.setToolTip("Spectrogram colour map")
    cmap.currentIndexChanged.connect(lambda i: s.set_display(colormap=cmap.itemData(i)))
    toolbar.addWidget(cmap)
    window.display_controls = {"note_colour": colour, "dynamic_range": dynamic, "colormap": cmap}


def _about(window) -> None:
    from PySide6.QtWidgets import QMessageBox

    from engine import __version__

    QMessageBox.about(window, "About Earworm Studio",
                      f"<b>Earworm Studio {__version__}</b><br>MIDI and audio side by side.<br><br>"
                      "Wheel: zoom · drag: pan · Shift+drag: select · click: seek<br>"
                      "Help → Keys and Mouse (F1) lists every shortcut.")
