"""Earworm Studio's window: PySide6 + pyqtgraph over the headless engine.

Presentation and interaction only: no DSP and no SQL here. Long work (alignment, feature
extraction) runs in engine functions on background workers (:mod:`gui.workers`).

Layout
------
- :mod:`gui.session` — the evented model (plain Python, no Qt widgets): what is open, the time
  range shown, the cursor, the playhead, display options. Views observe it.
- :mod:`gui.pipeline` — what a worker runs to turn a (MIDI, audio) pair into drawable data.
- :mod:`gui.workers` — background jobs with progress and cancel.
- :mod:`gui.views` — spectrogram, piano roll, drum lane, warping path, status line.
- :mod:`gui.main_window` — menus, toolbar, drag and drop, docks; :mod:`gui.app` — the entry.
"""
