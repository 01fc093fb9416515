"""The main window: menus, toolbar, linked views, status bar, drag and drop, docks.

Task
----
Open a MIDI and a recording (File menu, toolbar, drag and drop, recent pairs, command line),
align them on a background worker with a progress bar and Cancel in the status bar, and show the
result in the stack of linked views. Export the aligned MIDI, the path as CSV and the view as
PNG. A bad file gives a dialog naming the file and the reason, and the previous session stays on
screen untouched (the session only changes when a new alignment succeeded).

Extension points for later issues: :meth:`MainWindow.add_panel` (dock panels: library, labels,
matching, evaluation, identify), :meth:`MainWindow.add_view` (another linked view, e.g. the tempo
strip), ``window.session.playhead_s`` (playback), ``window.runner`` (background jobs).

While an alignment that is not cached runs, the window first shows a preview — the recording's
spectrogram and the notes in MIDI time (``LoadedPair.aligned`` False) — and then the aligned pair;
if the alignment fails or is cancelled after the preview, the previous pair comes back.

Conventions: the window owns no state of its own beyond Qt objects — what is shown lives in
``self.session``; signals ``pair_previewed(LoadedPair)`` (the preview is on screen),
``pair_drawn(LoadedPair)`` (the aligned pair is) and ``load_failed(exception)`` report the stages
of every load (used by ``--screenshot``, tests and benchmarks).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QMainWindow, QMessageBox, QProgressBar, QPushButton,
                               QTabBar, QWidget)

from engine.errors import EarwormError
from gui import window_actions
from gui.pipeline import classify_paths, load_pair, warm_up
from gui.session import LoadedPair, Session
from gui.views.container import LinkedViews
from gui.views.path_view import PathView
from gui.views.piano_roll_view import DrumLaneView, PianoRollView
from gui.views.spectrogram_view import SpectrogramView
from gui.views.status_line import StatusLine
from gui.workers import Job, JobRunner

MAX_RECENT = 10
WINDOW_TITLE = "Earworm Studio"
# A side panel opens at this share of the window's width (within these bounds): the views keep
# most of it, and the panels' rows of buttons wrap (gui.panels.panel_common.FlowLayout).
PANEL_WIDTH_FRACTION, PANEL_WIDTH_MIN_PX, PANEL_WIDTH_MAX_PX = 0.3, 320, 520


def default_settings() -> QSettings:
    """The user's GUI settings (recent files, geometry) as an ini file in the config dir."""
    from platformdirs import user_config_dir

    directory = Path(os.environ.get("EARWORM_CONFIG_DIR") or user_config_dir("earworm"))
    return QSettings(str(directory / "gui.ini"), QSettings.Format.IniFormat)


class MainWindow(QMainWindow):
    """Earworm Studio's main window.

    Parameters
    ----------
    settings : QSettings, optional
        Where recent files are kept (default: :func:`default_settings`).
    dialogs : bool
        Show errors as message boxes (False in ``--screenshot`` mode: they go to ``load_failed``).
    warm_up : bool
        Load the engine's libraries on a background thread right away (``warm_up_thread``), so the
        first open does not wait for them.
    """

    pair_previewed = Signal(object)
    pair_drawn = Signal(object)
    load_failed = Signal(object)

    def __init__(self, settings: QSettings | None = None, dialogs: bool = True, parent: QWidget | None = None,
                 warm_up: bool = True):
        super().__init__(parent)
        self.warm_up_thread: threading.Thread | None = None
        if warm_up:
            self.warm_up_thread = threading.Thread(target=_warm_up_quietly, name="earworm-warm-up", daemon=True)
            self.warm_up_thread.start()
        self._pair_before_preview: LoadedPair | None = None
        self.settings = settings if settings is not None else default_settings()
        self.dialogs = dialogs
        self.session = Session()
        self.runner = JobRunner(self)
        self.current_job: Job | None = None
        self.align_params = None  # engine.align.AlignParams for new alignments; None: the engine's defaults
        self.last_error_dialog: QMessageBox | None = None
        self.last_error: BaseException | None = None
        self.panels: dict[str, QDockWidget] = {}
        self.setWindowTitle(WINDOW_TITLE)
        self.setAcceptDrops(True)
        self.resize(1440, 900)

        self.views = LinkedViews(self)
        self.spectrogram_view = self.views.add_view("spectrogram", SpectrogramView(self.session), stretch=4)
        self.piano_roll_view = self.views.add_view("piano_roll", PianoRollView(self.session), stretch=4)
        self.drum_view = self.views.add_view("drums", DrumLaneView(self.session), stretch=1)
        self.path_view = self.views.add_view("path", PathView(self.session), stretch=3)
        self.setCentralWidget(self.views)
        self.views.set_heights({"spectrogram": 290, "piano_roll": 290, "drums": 60, "path": 230})

        self.status_line = StatusLine(self.session)
        self.statusBar().addWidget(self.status_line, 1)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFixedWidth(220)
        self.progress_bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_alignment)
        self.statusBar().addPermanentWidget(self.progress_bar)
        self.statusBar().addPermanentWidget(self.cancel_button)
        self._set_busy(False)

        self.actions: dict[str, QAction] = {}
        window_actions.build_menus_and_toolbar(self)
        self.session.events.pair_changed.connect(self._on_pair_changed)
        self.session.events.display_changed.connect(self._on_display_changed)
        self.session.events.selection_changed.connect(
            lambda sel: self.actions["zoom_selection"].setEnabled(sel is not None))
        self._on_pair_changed(None)
        self._update_recent_menu()

        # -- issue 4: playback, the playhead clock, "Follow microphone" (gui/transport_bar.py) --
        from gui.transport_bar import install_playback

        self.playback = install_playback(self)

    # -- opening files --------------------------------------------------------------------------
    def open_pair(self, midi_path, audio_path) -> Job | None:
        """Align ``midi_path`` to ``audio_path`` in the background (the previous pair stays shown)."""
        return self.open_files([p for p in (midi_path, audio_path) if p])

    def open_midi(self, path) -> Job | None:
        return self.open_files([path])

    def open_audio(self, path) -> Job | None:
        return self.open_files([path])

    def open_files(self, paths) -> Job | None:
        """Open any mix of MIDI and audio files (menus, drops, command line).

        A new MIDI is aligned with the current recording and vice versa; with only one side known,
        it is remembered until the other is opened. Returns the alignment job, if one started.
        """
        midi, audio, unknown = classify_paths([str(p) for p in paths])
        if unknown and not (midi or audio):
            self.show_error(EarwormError(unknown[0], "not a MIDI or audio file (unknown file type); MIDI: "
                                         ".mid .midi, audio: .wav .flac .ogg .mp3 .aiff"))
            return None
        if unknown:
            self.statusBar().showMessage("Ignored (not MIDI or audio): " + ", ".join(Path(p).name for p in unknown), 8000)
        self.session.set_pending_files(midi, audio)
        midi = self.session.pending_midi_path
        audio = self.session.pending_audio_path
        if midi and audio:
            return self.start_alignment(midi, audio)
        return None

    def start_alignment(self, midi_path: str, audio_path: str) -> Job:
        """Start aligning in the background, cancelling any alignment still running."""
        if self.current_job is not None and not self.current_job.done:
            self.current_job.cancel()
        job = self.runner.submit(load_pair, midi_path, audio_path, params=self.align_params, name="align",
                                 publish=True)
        self.current_job = job
        job.progressed.connect(lambda fraction, message, j=job: self._on_progress(j, fraction, message))
        job.partial.connect(lambda pair, j=job: self._on_job_preview(j, pair))
        job.succeeded.connect(lambda pair, j=job: self._on_job_succeeded(j, pair))
        job.failed.connect(lambda exc, j=job: self._on_job_failed(j, exc, midi_path, audio_path))
        job.cancelled.connect(lambda j=job: self._on_job_cancelled(j))
        self._set_busy(True, f"Aligning {Path(midi_path).name} ↔ {Path(audio_path).name}…")
        return job

    def cancel_alignment(self) -> None:
        if self.current_job is not None:
            self.current_job.cancel()
            self.progress_bar.setFormat("cancelling…")

    def is_aligning(self) -> bool:
        return self.current_job is not None and not self.current_job.done

    def _on_progress(self, job: Job, fraction: float, message: str) -> None:
        if job is self.current_job:
            self.progress_bar.setValue(int(fraction * 1000))
            self.progress_bar.setFormat(f"{message} %p%")

    def _on_job_preview(self, job: Job, pair: LoadedPair) -> None:
        """The recording and the unaligned notes, while the alignment goes on."""
        if job is not self.current_job:
            return
        if self.session.pair is None or self.session.pair.aligned:
            self._pair_before_preview = self.session.pair
        self.session.set_pair(pair)
        QTimer.singleShot(0, lambda: self.pair_previewed.emit(pair))

    def _showing_preview(self) -> bool:
        return self.session.pair is not None and not self.session.pair.aligned

    def _drop_preview(self) -> None:
        """Put back what was on screen before a preview whose alignment did not finish."""
        if self._showing_preview():
            self.session.set_pair(self._pair_before_preview)
        self._pair_before_preview = None

    def _on_job_succeeded(self, job: Job, pair: LoadedPair) -> None:
        if job is not self.current_job:
            return  # a superseded job that finished anyway
        self.current_job = None
        self._set_busy(False)
        previewed = self._showing_preview() and self.session.pair.audio_path == pair.audio_path
        self._pair_before_preview = None
        self.session.set_pair(pair, keep_view=previewed)
        self._add_recent(pair.midi_path, pair.audio_path)
        QTimer.singleShot(0, lambda: self.pair_drawn.emit(pair))

    def _on_job_failed(self, job: Job, exc: BaseException, midi_path: str, audio_path: str) -> None:
        if job is not self.current_job:
            return
        self.current_job = None
        self._set_busy(False)
        self._drop_preview()
        # The shown session stays as it was; forget the file that failed so the next open works.
        pair = self.session.pair
        failed_path = getattr(exc, "path", None)
        if pair is not None:
            self.session.pending_midi_path, self.session.pending_audio_path = pair.midi_path, pair.audio_path
        else:
            if failed_path == midi_path:
                self.session.pending_midi_path = None
            if failed_path == audio_path:
                self.session.pending_audio_path = None
        self.session.events.pending_files_changed.emit(
            (self.session.pending_midi_path, self.session.pending_audio_path))
        if not isinstance(exc, EarwormError):
            exc = EarwormError(None, f"unexpected error while aligning {Path(midi_path).name} and "
                                     f"{Path(audio_path).name}: {type(exc).__name__}: {exc}")
        self.show_error(exc, title="Could not align")

    def _on_job_cancelled(self, job: Job) -> None:
        if job is not self.current_job:
            return
        self.current_job = None
        self._set_busy(False)
        self._drop_preview()
        pair = self.session.pair
        if pair is not None:
            self.session.pending_midi_path, self.session.pending_audio_path = pair.midi_path, pair.audio_path
        self.statusBar().showMessage("Alignment cancelled", 4000)

    def _set_busy(self, busy: bool, message: str = "") -> None:
        self.progress_bar.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress_bar.setValue(0)
            self.progress_bar.setFormat("starting… %p%")
            self.progress_bar.setToolTip(message)

    # -- errors ---------------------------------------------------------------------------------
    def show_error(self, exc: BaseException, title: str = "Could not open the file") -> None:
        """Tell the user what went wrong (file and reason), without blocking the event loop."""
        self.last_error = exc
        self.load_failed.emit(exc)
        if not self.dialogs:
            return
        path = getattr(exc, "path", None)
        reason = getattr(exc, "reason", str(exc))
        box = QMessageBox(QMessageBox.Icon.Critical, title, f"<b>{Path(path).name}</b>" if path else title,
                          QMessageBox.StandardButton.Ok, self)
        box.setInformativeText(f"{path}:\n{reason}" if path else reason)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.last_error_dialog = box
        box.open()

    # -- exports --------------------------------------------------------------------------------
    def _default_export_path(self, suffix: str) -> str:
        pair = self.session.pair
        if pair is None:
            return str(Path.home() / f"earworm{suffix}")
        midi = Path(pair.midi_path)
        return str(midi.with_name(midi.stem + suffix))

    def _ask_save_path(self, caption: str, suffix: str, file_filter: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, caption, self._default_export_path(suffix), file_filter)
        return path or None

    def _export(self, path, caption: str, suffix: str, file_filter: str, write, needs_alignment: bool = True):
        """Ask for a path (unless given), ``write(path)``, report; returns the path written or None."""
        if needs_alignment and (self.session.pair is None or not self.session.pair.aligned):
            return None
        path = path or self._ask_save_path(caption, suffix, file_filter)
        if not path:
            return None
        try:
            write(path)
        except (EarwormError, OSError) as exc:
            self.show_error(exc if isinstance(exc, EarwormError) else EarwormError(path, str(exc.strerror or exc)),
                            title="Could not export")
            return None
        self.statusBar().showMessage(f"Wrote {path}", 5000)
        return path

    def export_aligned_midi(self, path: str | None = None) -> str | None:
        """Write the MIDI warped into the recording's timeline; returns the path written."""
        return self._export(path, "Export aligned MIDI", ".aligned.mid", "MIDI (*.mid)",
                            lambda p: self.session.pair.alignment.write_warped_midi(p))

    def export_path_csv(self, path: str | None = None) -> str | None:
        """Write the warping path as CSV (``midi_s,audio_s``); returns the path written."""
        return self._export(path, "Export path CSV", ".path.csv", "CSV (*.csv)",
                            lambda p: Path(p).write_text(self.session.pair.alignment.path_csv()))

    def export_view_png(self, path: str | None = None) -> str | None:
        """Save the linked views as they are on screen; returns the path written."""
        def save(p):
            if not self.views.grab().save(p, "PNG"):
                raise EarwormError(p, "could not write the image (folder missing or not writable?)")
        return self._export(path, "Export view PNG", ".view.png", "PNG image (*.png)", save, needs_alignment=False)

    # -- recent files ---------------------------------------------------------------------------
    def recent_pairs(self) -> list[tuple[str, str]]:
        raw = self.settings.value("recent_pairs", [])
        if isinstance(raw, str):
            raw = [raw]
        pairs = []
        for item in raw or []:
            midi, _, audio = str(item).partition("\t")
            if midi and audio:
                pairs.append((midi, audio))
        return pairs

    def _add_recent(self, midi_path: str, audio_path: str) -> None:
        entry = (str(Path(midi_path).resolve()), str(Path(audio_path).resolve()))
        pairs = [entry] + [p for p in self.recent_pairs() if p != entry]
        # QSettings writes the file from the event loop shortly after (and on quit): no sync() here,
        # which would put a disk write between the alignment and its drawing.
        self.settings.setValue("recent_pairs", [f"{m}\t{a}" for m, a in pairs[:MAX_RECENT]])
        self._update_recent_menu()

    def _update_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        pairs = self.recent_pairs()
        for i, (midi, audio) in enumerate(pairs):
            action = menu.addAction(f"&{(i + 1) % 10}  {Path(midi).name}  ↔  {Path(audio).name}")
            action.setToolTip(f"{midi}\n{audio}")
            action.triggered.connect(lambda checked=False, m=midi, a=audio: self.open_pair(m, a))
        if not pairs:
            menu.addAction("(none yet)").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear list", self._clear_recent)

    def _clear_recent(self) -> None:
        self.settings.setValue("recent_pairs", [])
        self._update_recent_menu()

    # -- extension points -----------------------------------------------------------------------
    def add_panel(self, widget: QWidget, title: str,
                  area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Dock ``widget`` as a panel (library, labels, matching…); View ▸ Panels toggles it."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"panel:{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.panels[title] = dock
        self.panels_menu.addAction(dock.toggleViewAction())
        self.panels_menu.menuAction().setVisible(True)
        if area in (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea):
            QTimer.singleShot(0, lambda: self._give_panel_width(dock))  # once the window is laid out
        return dock

    def _give_panel_width(self, dock: QDockWidget) -> None:
        """Open a side panel at a sensible width, not at the width of its widest row of widgets."""
        if dock.isFloating() or not dock.isVisible():
            return
        width = min(max(int(PANEL_WIDTH_FRACTION * self.width()), PANEL_WIDTH_MIN_PX), PANEL_WIDTH_MAX_PX)
        self.resizeDocks([dock], [max(width, dock.minimumSizeHint().width())], Qt.Orientation.Horizontal)
        for bar in self.findChildren(QTabBar):  # tabbed panels: whole names, scrolled when too many
            if bar.parent() is self:
                bar.setElideMode(Qt.TextElideMode.ElideNone)
                bar.setUsesScrollButtons(True)

    def add_view(self, name: str, view, stretch: int = 1, index: int | None = None):
        """Add another linked view (built on :class:`gui.views.base.TimeView`) to the stack."""
        return self.views.add_view(name, view, stretch=stretch, index=index)

    # -- window events --------------------------------------------------------------------------
    def _on_pair_changed(self, pair: LoadedPair | None) -> None:
        has_pair = pair is not None
        for name in ("export_midi", "export_csv"):
            self.actions[name].setEnabled(has_pair and pair.aligned)
        self.actions["export_png"].setEnabled(has_pair)
        if has_pair:
            self.setWindowTitle(f"{Path(pair.midi_path).name} ↔ {Path(pair.audio_path).name} — {WINDOW_TITLE}")
            if self.drum_view.has_drums:
                self.views.set_heights({"drums": self.drum_view.preferred_height_px()})
        else:
            self.setWindowTitle(WINDOW_TITLE)

    def _on_display_changed(self, options) -> None:
        self.actions["warped"].setChecked(options.show_warped)
        self.actions["overlay"].setChecked(options.show_overlay)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_files(paths)

    def closeEvent(self, event) -> None:
        self.runner.cancel_all()
        self.runner.wait(10.0)
        if self.warm_up_thread is not None:
            self.warm_up_thread.join(10.0)  # never leave it importing while the interpreter shuts down
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.sync()
        super().closeEvent(event)

    def choose_files(self, caption: str, file_filter: str, multiple: bool = False) -> list[str]:
        start = str(Path(self.session.pending_midi_path or self.session.pending_audio_path or Path.home()).parent)
        if multiple:
            paths, _ = QFileDialog.getOpenFileNames(self, caption, start, file_filter)
            return paths
        path, _ = QFileDialog.getOpenFileName(self, caption, start, file_filter)
        return [path] if path else []


def _warm_up_quietly() -> None:
    try:
        warm_up()
    except Exception:  # noqa: BLE001 - only a head start; a real problem shows when a pair is opened
        import logging

        logging.getLogger(__name__).debug("warm-up failed", exc_info=True)


__all__ = ["MainWindow", "default_settings"]
