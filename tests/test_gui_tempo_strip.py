"""The tempo strip: computed off the GUI thread, coalesced, drawn around the playhead."""
from __future__ import annotations

import threading

import numpy as np
import pyqtgraph as pg
import pytest
import soundfile as sf

from engine import tempo
from gui.session import Session
from gui.views import tempo_strip as ts
from tests.test_tempo import click_track


@pytest.fixture(scope="module")
def features():
    return tempo.analyze(click_track(100.0, 40.0))


@pytest.fixture
def strip(qtbot):
    session = Session()
    view = ts.TempoStrip(session)
    qtbot.addWidget(view)
    view.resize(800, 160)
    yield view
    view.shutdown()


def test_strip_draws_the_tempogram_and_candidates_around_the_playhead(qtbot, strip, features):
    with qtbot.waitSignal(strip.snapshot_drawn, timeout=20000):
        strip.set_features(features)
    with qtbot.waitSignal(strip.snapshot_drawn, timeout=20000) as blocker:
        strip.session.playhead_s = 20.0
    snap = blocker.args[0]
    assert snap.time_s == 20.0
    assert abs(snap.times_s.mean() - 20.0) < 1.0 and snap.tempogram.shape == (snap.bpm.size, snap.times_s.size)
    cells = strip._raster.cells
    assert cells is not None and cells.shape == snap.tempogram.shape and cells.max() > 200
    rect = strip._raster.boundingRect()
    assert rect.left() < 20.0 < rect.right()
    bpms = [c.bpm for c in strip.current_candidates]
    assert any(abs(b / 100.0 - 1) < 0.04 for b in bpms), bpms
    assert len(strip._candidate_lines) == len(bpms)
    assert all(c.compatible is not None for c in strip.current_candidates)  # classified by the model
    assert np.isclose(strip._candidate_lines[0].value(), np.log2(strip.current_candidates[0].bpm))


def test_work_runs_off_the_gui_thread_and_requests_coalesce(qtbot, strip, features, monkeypatch):
    threads, times = [], []
    real = ts.snapshot_at

    def spy(feats, time_s, *args, **kwargs):
        threads.append(threading.get_ident())
        times.append(time_s)
        return real(feats, time_s, *args, **kwargs)

    monkeypatch.setattr(ts, "snapshot_at", spy)
    with qtbot.waitSignal(strip.snapshot_drawn, timeout=20000):
        strip.set_features(features)
    drawn = []
    strip.snapshot_drawn.connect(lambda s: drawn.append(s.time_s))
    for t in np.linspace(5.0, 30.0, 40):
        strip.session.playhead_s = float(t)
    qtbot.waitUntil(lambda: bool(drawn) and drawn[-1] == 30.0, timeout=20000)
    assert threading.get_ident() not in threads
    assert len(times) < 40 // 2  # stale requests were dropped, not queued
    assert times[-1] == 30.0


def test_clicking_a_candidate_asks_for_a_pace_label_and_labels_draw(qtbot, strip, features):
    with qtbot.waitSignal(strip.snapshot_drawn, timeout=20000):
        strip.set_features(features)
    line = strip._candidate_lines[0]
    with qtbot.waitSignal(strip.pace_clicked, timeout=2000) as blocker:
        line.sigClicked.emit(line, None)
    assert blocker.args[0] == pytest.approx(strip.current_candidates[0].bpm)
    strip.set_labelled_paces([50.0, 100.0])
    assert [round(2 ** line.value()) for line in strip._labelled_lines] == [50, 100]


def test_strip_analyses_an_audio_file_in_the_background(qtbot, strip, tmp_path):
    wav = tmp_path / "click.wav"
    sf.write(wav, click_track(120.0, 20.0), tempo.SR)
    with qtbot.waitSignal(strip.snapshot_drawn, timeout=30000):
        strip.set_audio(wav)
    assert strip.features is not None and any(abs(c.bpm / 120 - 1) < 0.04 for c in strip.current_candidates)


def test_bad_audio_reports_an_error(qtbot, strip, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with qtbot.waitSignal(strip.analysis_failed, timeout=20000) as blocker:
        strip.set_audio(bad)
    assert str(bad) in str(blocker.args[0])
    assert strip.features is None and strip.current_candidates == []


def test_place_labels_keeps_close_labels_apart():
    rows = [(50.0, 14.0, [120.0, 40.0]), (56.0, 14.0, [120.0, 40.0]), (60.0, 14.0, [120.0, 40.0]),
            (200.0, 14.0, [120.0])]
    spots = ts.place_labels(rows, width_px=400.0, x0_px=20.0, obstacles=[(0, 45, 30, 60)])
    assert spots[0] == (30 + ts.LABEL_GAP_PX, 0)            # moved right of the obstacle
    assert spots[1][0] >= spots[0][0] + 120 and spots[1][1] == 0  # next column, full text
    assert spots[2][1] == 1                                   # no room for the full text: short form
    assert spots[3] == (20.0, 0)                              # far away: untouched
    assert ts.place_labels([(0.0, 14.0, [500.0])], 400.0, 20.0) == [None]  # nothing fits: hidden


def test_candidate_labels_do_not_overlap_when_candidates_are_close(qtbot, strip):
    strip.show()
    qtbot.waitExposed(strip)
    qtbot.wait(100)  # the plot's layout gives the view box its size
    close = [tempo.TempoCandidate(b, s, p, p >= 0.5) for b, s, p in
             [(102.0, 0.5, 0.9), (98.0, 0.2, 0.8), (96.0, 0.1, 0.3), (82.0, 0.08, 0.2), (68.0, 0.04, 0.1),
              (64.0, 0.03, 0.7), (58.0, 0.03, 0.2), (204.0, 0.02, 0.9)]]
    strip.set_labelled_paces([100.0])
    strip._show_candidates(close)
    labels = [line.label for line in strip._candidate_lines]
    shown = [label for label in labels if label.isVisible()]
    assert len(shown) >= 6  # close candidates are moved, not hidden, while there is room
    rects = [label.sceneBoundingRect() for label in shown] + [strip._labelled_lines[0].label.sceneBoundingRect()]
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not a.intersects(b), (a, b)
    for label, line in zip(labels, strip._candidate_lines):  # each label stays on its own line
        if label.isVisible():
            y = strip.viewbox.mapViewToScene(pg.Point(0, line.value())).y()
            assert label.sceneBoundingRect().top() - 1 <= y <= label.sceneBoundingRect().bottom() + 1
    strip.resize(500, 120)  # a smaller strip: laid out again
    qtbot.wait(50)
    shown = [label.sceneBoundingRect() for label in labels if label.isVisible()]
    assert all(not a.intersects(b) for i, a in enumerate(shown) for b in shown[i + 1:])


def test_strip_candidates_become_one_click_pace_suggestions(qtbot, tmp_path):
    """The window's strip computes a recording's candidates → stored in the project → the pace
    panel offers them → one click stores a pace label."""
    from PySide6.QtCore import Qt

    from engine.store import Project

    wav = tmp_path / "click.wav"
    sf.write(wav, click_track(120.0, 30.0), tempo.SR)
    with Project(tmp_path / "p.earworm") as project:
        audio_id = project.add_file(wav).id
    window, panels = _window_with_project_panels(qtbot, tmp_path)
    panels.paces.select_file(audio_id)
    assert panels.paces.model.suggestions() == []  # nothing computed yet
    strip = window.findChild(ts.TempoStrip)
    stored = []
    panels.paces.model.suggestions_changed.connect(stored.append)
    with qtbot.waitSignal(strip.song_candidates_ready, timeout=60000) as ready:
        strip.set_audio(wav)
    assert ready.args[0] == str(wav)
    qtbot.waitUntil(lambda: stored == [audio_id], timeout=20000)
    fits = [c.bpm for c in ready.args[1] if c.compatible]
    assert any(abs(b / 120 - 1) < 0.04 for b in fits), ready.args[1]
    buttons = {b.text(): b for b in _suggestion_buttons(panels.paces)}
    assert list(buttons) == [f"{b:.1f}" for b in panels.paces.model.suggestions()]
    # the candidates the song fits (stored to 0.01 bpm), none of those it does not fit
    np.testing.assert_allclose(sorted(float(text) for text in buttons), sorted(fits), atol=0.06)
    beat = next(text for text in buttons if abs(float(text) / 120 - 1) < 0.04)
    qtbot.mouseClick(buttons[beat], Qt.MouseButton.LeftButton)
    with Project(tmp_path / "p.earworm") as project:
        labelled = project.paces(audio_id)
    assert len(labelled) == 1 and abs(labelled[0] / 120 - 1) < 0.04
    assert beat not in {b.text() for b in _suggestion_buttons(panels.paces)}  # labelled: no longer offered
    strip.shutdown()
    window.runner.wait()


def test_pace_panel_follows_the_recording_on_screen(qtbot, tmp_path):
    """Opening a pair whose recording is in the project selects it in the pace panel (its paces,
    its suggestions); a recording the project lacks leaves the panel's choice alone."""
    import dataclasses

    from engine.store import Project
    from tests.test_gui_session import _pair

    paths = [tmp_path / "first.wav", tmp_path / "second.wav"]
    for path, bpm in zip(paths, (100.0, 130.0)):
        sf.write(path, click_track(bpm, 8.0), tempo.SR)
    with Project(tmp_path / "p.earworm") as project:
        first, second = (project.add_file(path).id for path in paths)
        project.add_pace(second, 130.0)
    window, panels = _window_with_project_panels(qtbot, tmp_path)
    panels.paces.select_file(first)
    # (a preview pair, aligned=False: the views wait for the alignment; the panels follow the pair)
    window.session.set_pair(dataclasses.replace(_pair(), audio_path=str(paths[1]), aligned=False))
    assert panels.paces.model.file_id == second
    assert panels.paces.file_combo.currentData() == second
    assert [panels.paces.pace_list.item(i).text() for i in range(panels.paces.pace_list.count())] == ["130 bpm"]
    elsewhere = tmp_path / "elsewhere.wav"
    sf.write(elsewhere, click_track(96.0, 8.0), tempo.SR)
    window.session.set_pair(dataclasses.replace(_pair(), audio_path=str(elsewhere), aligned=False))
    assert panels.paces.model.file_id == second  # not in the project: the panel keeps its file
    # A click on a strip candidate adds that recording to the project and labels it; the panel's
    # box shows the new file, also after the box is filled again.
    window.findChild(ts.TempoStrip).pace_clicked.emit(96.0)
    new_id = panels.paces.model.file_id
    assert new_id not in (first, second) and panels.paces.model.paces == [96.0]
    assert panels.paces.file_combo.currentData() == new_id
    panels.paces.refresh_files()
    assert panels.paces.file_combo.currentData() == new_id
    window.findChild(ts.TempoStrip).shutdown()
    window.runner.wait()


def test_a_pace_with_no_file_chosen_labels_the_recording_on_screen(qtbot, tmp_path):
    """An empty pace panel names the recording on screen; a pace typed (or tapped) then adds that
    recording to the project and labels it. With nothing on screen the panel asks for a file."""
    import dataclasses

    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QPushButton

    from engine.store import Project
    from tests.test_gui_session import _pair

    window, panels = _window_with_project_panels(qtbot, tmp_path)
    paces = panels.paces
    errors = []
    paces.error_shown.connect(errors.append)
    add = next(b for b in paces.findChildren(QPushButton) if b.text() == "Add")
    qtbot.mouseClick(add, Qt.MouseButton.LeftButton)  # nothing on screen, no file chosen
    assert errors and "choose a file" in errors[-1]
    recording = tmp_path / "take 1.wav"
    sf.write(recording, click_track(90.0, 8.0), tempo.SR)
    window.session.set_pair(dataclasses.replace(_pair(), audio_path=str(recording), aligned=False))
    assert paces.file_combo.currentIndex() == -1 and "take 1.wav" in paces.file_combo.placeholderText()
    paces.bpm_spin.setValue(90.0)
    qtbot.mouseClick(add, Qt.MouseButton.LeftButton)
    with Project(tmp_path / "p.earworm") as project:
        record = project.file_by_path(recording)
        assert record is not None and project.paces(record.id) == [90.0]
    assert paces.model.file_id == record.id and paces.file_combo.currentData() == record.id
    assert [paces.pace_list.item(i).text() for i in range(paces.pace_list.count())] == ["90 bpm"]
    for t in (0.0, 0.5, 1.0, 1.5):  # tapped at 120 bpm, then H: half of the new pace goes to the same file
        paces.model.tap(t)
    paces.model.add_tapped()
    paces.model.add_scaled(0.5)
    with Project(tmp_path / "p.earworm") as project:
        assert project.paces(record.id) == [60.0, 90.0, 120.0]
        assert len(project.files()) == 1  # added once
    window.findChild(ts.TempoStrip).shutdown()
    window.runner.wait()


def test_the_strip_candidates_of_a_recording_outside_the_project_are_offered_and_a_click_adds_it(qtbot, tmp_path):
    """Before the recording on screen is in the project, the pace panel (no file chosen) offers the
    strip's candidates it fits; one click adds the recording, labels the pace and stores them."""
    import dataclasses

    from PySide6.QtCore import Qt

    from engine.store import Project
    from engine.tempo import stored_candidates
    from tests.test_gui_session import _pair

    wav = tmp_path / "click.wav"
    sf.write(wav, click_track(120.0, 30.0), tempo.SR)
    window, panels = _window_with_project_panels(qtbot, tmp_path)
    window.session.set_pair(dataclasses.replace(_pair(), audio_path=str(wav), aligned=False))
    assert _suggestion_buttons(panels.paces) == []
    strip = window.findChild(ts.TempoStrip)
    with qtbot.waitSignal(strip.song_candidates_ready, timeout=60000) as ready:
        strip.set_audio(wav)  # (the aligned pair's recording, as the window gives it to the strip)
    fits = [c.bpm for c in ready.args[1] if c.compatible]
    buttons = {b.text(): b for b in _suggestion_buttons(panels.paces)}
    np.testing.assert_allclose(sorted(float(text) for text in buttons), sorted(fits), atol=0.06)
    with Project(tmp_path / "p.earworm") as project:
        assert project.file_by_path(wav) is None  # offered, not yet added
    beat = next(text for text in buttons if abs(float(text) / 120 - 1) < 0.04)
    qtbot.mouseClick(buttons[beat], Qt.MouseButton.LeftButton)
    window.runner.wait()
    with Project(tmp_path / "p.earworm") as project:
        record = project.file_by_path(wav)
        assert record is not None and len(project.paces(record.id)) == 1
        assert project.paces(record.id)[0] == pytest.approx(float(beat), abs=0.06)  # the button shows 0.1 bpm
        assert len(stored_candidates(project, record.id)) == len(ready.args[1])
    qtbot.waitUntil(lambda: beat not in {b.text() for b in _suggestion_buttons(panels.paces)}, timeout=5000)
    strip.shutdown()
    window.runner.wait()


def _window_with_project_panels(qtbot, tmp_path):
    """A main window (settings in tmp_path) with the project panels over ``tmp_path / "p.earworm"``."""
    from PySide6.QtCore import QSettings

    from gui.main_window import MainWindow
    from gui.panels.project_panels import install_project_panels

    window = MainWindow(settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat), dialogs=False)
    qtbot.addWidget(window)
    return window, install_project_panels(window, tmp_path / "p.earworm")


def _suggestion_buttons(panel):
    from PySide6.QtWidgets import QPushButton

    row = panel.suggestion_row
    widgets = [row.itemAt(i).widget() for i in range(row.count())]
    return [w for w in widgets if isinstance(w, QPushButton)]


def test_screenshot_waits_for_the_strip_without_blocking_the_gui_thread(qtbot, tmp_path):
    """``--screenshot`` grabs the window once the views' background work is done: the strip's
    tempogram and candidates are drawn by then; the wait polls on a timer, so events flow."""
    from PySide6.QtCore import QSettings, QTimer

    from gui.app import views_with_pending_work, when_views_settled
    from gui.main_window import MainWindow

    wav = tmp_path / "click.wav"
    sf.write(wav, click_track(120.0, 30.0), tempo.SR)
    window = MainWindow(settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat), dialogs=False)
    qtbot.addWidget(window)
    strip = ts.TempoStrip(window.session)
    window.add_view("tempo", strip, index=1)
    assert not strip.has_pending_work() and views_with_pending_work(window) == []
    strip.set_audio(wav)
    assert strip.has_pending_work() and views_with_pending_work(window) == ["tempo"]
    settled, ticks = [], []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    when_views_settled(window, settled.append, timeout_s=60.0)
    assert settled == []  # returned at once: the GUI thread goes on while the strip computes
    qtbot.waitUntil(lambda: settled != [], timeout=70000)
    timer.stop()
    # Events flowed during the wait (the timer fired; how often depends on how fast the strip was:
    # a warm machine computes it in a few tens of milliseconds).
    assert settled == [[]] and len(ticks) >= 1
    assert strip.snapshot is not None and strip.current_candidates  # the strip is drawn
    assert strip.song_candidates and not strip.has_pending_work()
    # Bounded: work still pending when the time is up is named, and the grab goes ahead.
    strip.set_audio(wav)
    when_views_settled(window, settled.append, timeout_s=0.0)
    assert settled[-1] == ["tempo"]
    strip.shutdown()
