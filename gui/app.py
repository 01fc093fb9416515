"""The window's entry point: ``earworm gui [MIDI] [AUDIO] [--screenshot PNG]`` and bare ``earworm``.

Task
----
Create the Qt application (dark Fusion style), open the main window on the given files — or on
the bundled demo pair (resources/demo/) when none are given — and run the event loop.

With ``screenshot``: render offscreen (``QT_QPA_PLATFORM=offscreen`` unless the caller set a
platform), wait until the alignment is drawn and the views' own background work is done (the
tempo strip's tempogram and candidates; at most ``SCREENSHOT_SETTLE_S``, polled on a timer),
save the window as a PNG and exit 0. Bad input in that mode prints ``error: <file>: <reason>``
to stderr and exits 1 (no dialog, no traceback); the user's recent-files list is left alone.
``panel`` (``--panel Identify``) brings that docked panel to the front; with ``screenshot`` it
also docks the project panels (over a throwaway project unless ``project`` is given), which the
screenshot otherwise leaves out. Without a display to open the window on (Linux, neither
``DISPLAY`` nor ``WAYLAND_DISPLAY``; :func:`missing_display`) it prints ``error: ...`` naming the
way to a screenshot and exits 1, where Qt alone would abort.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "resources" / "demo"
SCREENSHOT_SIZE = (1600, 1000)
SCREENSHOT_TIMEOUT_S = float(os.environ.get("EARWORM_SCREENSHOT_TIMEOUT_S", "600"))
SCREENSHOT_SETTLE_S = float(os.environ.get("EARWORM_SCREENSHOT_SETTLE_S", "10"))
SETTLE_POLL_MS = 50


def demo_pair() -> tuple[str, str] | None:
    """The bundled demo (MIDI, recording), or None if resources/demo/ is missing."""
    from gui.pipeline import classify_paths

    if not DEMO_DIR.is_dir():
        return None
    preferred = [DEMO_DIR / "demo.mid", DEMO_DIR / "demo.mp3"]
    if all(p.is_file() for p in preferred):
        return str(preferred[0]), str(preferred[1])
    midi, audio, _ = classify_paths(sorted(str(p) for p in DEMO_DIR.iterdir() if p.is_file()))
    return (midi, audio) if midi and audio else None


def apply_style(app) -> None:
    """Fusion with a dark palette, plus gui/style.qss when present."""
    from PySide6.QtGui import QColor, QPalette

    app.setStyle("Fusion")
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#25262b", QPalette.ColorRole.WindowText: "#e4e5ea",
        QPalette.ColorRole.Base: "#1b1c20", QPalette.ColorRole.AlternateBase: "#2b2c32",
        QPalette.ColorRole.Text: "#e4e5ea", QPalette.ColorRole.Button: "#2f3037",
        QPalette.ColorRole.ButtonText: "#e4e5ea", QPalette.ColorRole.Highlight: "#3d7bd9",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2f3037",
        QPalette.ColorRole.ToolTipText: "#e4e5ea", QPalette.ColorRole.PlaceholderText: "#8a8c96",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#6b6d76"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#6b6d76"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#6b6d76"))
    app.setPalette(palette)
    qss = Path(__file__).with_name("style.qss")
    if qss.is_file():
        app.setStyleSheet(qss.read_text())


def _glibc():
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # no libc.so.6 (musl…): nothing to tune
        return None


def return_freed_memory_promptly() -> bool:
    """Have glibc give large freed buffers back to the system at once (Linux; False elsewhere).

    glibc raises its mmap threshold each time a large buffer is freed, so later buffers of up to
    32 MB come from heaps that rarely shrink: a long-lived window that analyses recordings (tens
    of MB of numpy arrays per file, on several threads) would keep that memory. A fixed threshold
    of 8 MB keeps every larger buffer (whole-recording arrays) in its own mapping, unmapped when
    freed, while the many smaller block-sized temporaries still reuse heap memory (mapping each
    of those afresh costs more in page faults than it saves: measured 256 KB, 4 MB, 8 MB).
    """
    libc = _glibc()
    m_mmap_threshold = -3
    return libc is not None and bool(libc.mallopt(m_mmap_threshold, 8 * 1024 * 1024))


def release_free_heap() -> bool:
    """Give the free memory inside glibc's heaps back to the system now (Linux; False elsewhere).

    Buffers under the mmap threshold come from heaps, and a heap shrinks only from its top: after
    an alignment (thousands of block-sized temporaries on several threads, among long-lived
    allocations) ~70 MB of freed but still resident memory remains for a five-minute piece.
    ``malloc_trim`` returns the free pages wherever they are. Called before playback is prepared.
    """
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


def make_application(argv=None):
    """The QApplication (created once per process)."""
    os.environ.setdefault("QT_API", "pyside6")
    return_freed_memory_promptly()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv else [sys.argv[0] if sys.argv else "earworm"])
        app.setApplicationName("Earworm Studio")
        app.setOrganizationName("Earworm")
        apply_style(app)
    return app


def missing_display(environ=os.environ, platform: str = sys.platform) -> str | None:
    """Why no window can open here, or None: on Linux, Qt's default platform (xcb, or wayland)
    needs a display server, and a bare ``earworm`` over SSH or in a container has none (Qt alone
    would abort with "could not load the Qt platform plugin")."""
    qpa = environ.get("QT_QPA_PLATFORM", "")
    if not platform.startswith("linux") or (qpa and qpa.split(":")[0] not in ("xcb", "wayland")):
        return None
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return ("no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set). Run it in a desktop "
            "session (or over ssh -X), or render the window to an image: "
            "earworm gui MIDI AUDIO --screenshot out.png")


def _error(path, reason: str) -> int:
    print(f"error: {path}: {reason}" if path else f"error: {reason}", file=sys.stderr)
    return 1


def _show_panel(window, title) -> None:
    """Bring the docked panel called ``title`` (e.g. "Identify") to the front, if there is one."""
    dock = window.panels.get(title) if title else None
    if dock is not None:
        from PySide6.QtCore import QTimer

        dock.show()
        QTimer.singleShot(0, dock.raise_)  # once the docks are tabbed: a raise before that is lost
    elif title:
        print(f"warning: no panel called {title!r}; panels: {', '.join(window.panels) or 'none'}", file=sys.stderr)


def run_app(midi=None, audio=None, screenshot=None, project=None, panel=None) -> int:
    """Open the window; see the module docstring. Returns the process exit code."""
    if screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from gui.pipeline import classify_paths

    given = [str(p) for p in (midi, audio) if p]
    midi_path, audio_path, unknown = classify_paths(given)
    if not given:
        demo = demo_pair()
        if demo is not None:
            midi_path, audio_path = demo
        elif screenshot:
            return _error(DEMO_DIR, "the bundled demo pair is missing; give a MIDI and an audio file")
    if screenshot:
        if unknown:
            return _error(unknown[0], "not a MIDI or audio file (unknown file type)")
        if not midi_path or not audio_path:
            return _error(given[0] if given else None, "--screenshot needs both a MIDI and an audio file")
        return _run_screenshot(midi_path, audio_path, screenshot, project=project, panel=panel)
    no_display = missing_display()
    if no_display:
        return _error(None, no_display)

    app = make_application()
    from gui.main_window import MainWindow

    window = MainWindow()
    geometry = window.settings.value("geometry")
    if geometry is not None:
        window.restoreGeometry(geometry)
    window.show()
    # -- issue 5: the project panels (library, match labels, paces) over --project or the default project
    from gui.panels.project_panels import install_project_panels

    install_project_panels(window, project)
    _show_panel(window, panel)
    # -- end issue 5
    if given or midi_path:
        window.open_files([p for p in (midi_path, audio_path, *unknown) if p])
    return int(app.exec())


def views_with_pending_work(window) -> list[str]:
    """Names of the window's views still waiting for background results they will draw
    (:meth:`gui.views.base.TimeView.has_pending_work`)."""
    return [name for name, view in window.views.views.items() if view.has_pending_work()]


def when_views_settled(window, then, timeout_s: float = SCREENSHOT_SETTLE_S, poll_ms: int = SETTLE_POLL_MS) -> None:
    """Call ``then(pending)`` once no view has pending background work, or after ``timeout_s`` with
    the names of those still busy. Polls on a Qt timer: the GUI thread is never blocked."""
    import time

    from PySide6.QtCore import QTimer

    deadline = time.monotonic() + timeout_s

    def check() -> None:
        pending = views_with_pending_work(window)
        if pending and time.monotonic() < deadline:
            QTimer.singleShot(poll_ms, check)
        else:
            then(pending)

    check()


def _run_screenshot(midi_path: str, audio_path: str, png_path: str, project=None, panel=None) -> int:
    from PySide6.QtCore import QSettings, QTimer

    app = make_application()
    from gui.main_window import MainWindow

    with tempfile.TemporaryDirectory(prefix="earworm-screenshot-") as tmp:
        settings = QSettings(str(Path(tmp) / "gui.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings=settings, dialogs=False)
        window.resize(*SCREENSHOT_SIZE)
        window.show()
        if project or panel:  # the docked panels too (a throwaway project unless one was given)
            from gui.panels.project_panels import install_project_panels

            install_project_panels(window, project or Path(tmp) / "screenshot.earworm")
            _show_panel(window, panel)
        outcome = {"rc": 1}

        def save(pending) -> None:
            if pending:
                print(f"warning: screenshot taken while {', '.join(pending)} still computing "
                      f"(waited {SCREENSHOT_SETTLE_S:g} s)", file=sys.stderr)
            app.processEvents()
            out = Path(png_path)
            if not out.parent.is_dir():
                outcome["rc"] = _error(png_path, "folder does not exist")
            elif not window.grab().save(str(out), "PNG"):
                outcome["rc"] = _error(png_path, "could not write the image")
            else:
                outcome["rc"] = 0
            app.exit(outcome["rc"])

        def fail(exc) -> None:
            path, reason = getattr(exc, "path", None), getattr(exc, "reason", str(exc))
            outcome["rc"] = _error(path, reason)
            app.exit(1)

        def timeout() -> None:
            outcome["rc"] = _error(None, f"timed out after {SCREENSHOT_TIMEOUT_S:.0f} s waiting for the alignment")
            window.runner.cancel_all()
            app.exit(1)

        window.pair_drawn.connect(lambda pair: QTimer.singleShot(100, lambda: when_views_settled(window, save)))
        window.load_failed.connect(fail)
        QTimer.singleShot(int(SCREENSHOT_TIMEOUT_S * 1000), timeout)
        QTimer.singleShot(0, lambda: window.open_pair(midi_path, audio_path))
        app.exec()
        window.runner.cancel_all()
        window.runner.wait(10.0)
        window.close()
        return outcome["rc"]
