"""The library and labelling panels, driven with the keyboard as a user would (pytest-qt, offscreen)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMainWindow

from engine.store import ALIGNMENT_CONFIDENCE, MATCH_SCORE, TEMPO_CANDIDATES, Project
from gui.panels.label_models import LabelSession, LibraryModel, MatchLabelModel, PaceModel, TapTempo
from gui.panels.labels import MatchLabelPanel, PaceLabelPanel
from gui.panels.library import LibraryPanel
from gui.workers import JobRunner
from tests.store_fixtures import make_library


@pytest.fixture
def project(tmp_path):
    lib = make_library(tmp_path / "lib", n_midi=2, n_audio=4)
    p = Project(tmp_path / "p.earworm", who="tester")
    p.add_folder(lib)
    yield p
    p.close()


@pytest.fixture
def session(project):
    return LabelSession(project)


def _key(qtbot, widget, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(widget, key, modifier)


@pytest.fixture
def match_panel(qtbot, session, project):
    midi = project.files("midi")[0]
    audio = {f.name: f.id for f in project.files("audio")}
    # a ranking: take2 best, then take0, take3; take1 has none yet
    project.put_results(ALIGNMENT_CONFIDENCE, [(midi.id, audio["take2.wav"], 0.9, None),
                                               (midi.id, audio["take0.wav"], 0.7, None),
                                               (midi.id, audio["take3.wav"], 0.2, None)])
    panel = MatchLabelPanel(MatchLabelModel(session), compute_confidence=False)
    qtbot.addWidget(panel)
    panel.show()
    panel.select_midi(midi.id)
    panel.candidate_table.setFocus()
    return panel


def _names(panel):
    return [c.audio.name for c in panel.model.candidates]


def test_keyboard_labelling_commits_each_label_and_moves_on(qtbot, match_panel, project):
    panel, midi_id = match_panel, match_panel.model.midi_id
    assert _names(panel) == ["take2.wav", "take0.wav", "take3.wav", "take1.wav"]
    assert panel.model.current_candidate.audio.name == "take2.wav"
    assert panel.candidate_table.currentIndex().row() == 0
    table = panel.candidate_table

    _key(qtbot, table, Qt.Key.Key_Y)
    with Project(project.path) as other:  # committed: another connection sees it at once
        assert other.match_label(midi_id, project.file_by_path(panel.model.candidates[0].audio.path).id).label == "match"
    assert panel.model.current == 1 and table.currentIndex().row() == 1
    _key(qtbot, table, Qt.Key.Key_N)
    _key(qtbot, table, Qt.Key.Key_U)
    assert [c.label.label if c.label else None for c in panel.model.candidates] == ["match", "no_match", "unsure", None]
    assert panel.model.current == 3 and panel.count_label.text() == "3 / 4 labelled"
    assert panel.table_model.data(panel.table_model.index(1, 4)) == "✗ no match"

    _key(qtbot, table, Qt.Key.Key_Up)  # arrow keys still move the table
    assert panel.model.current == 2
    _key(qtbot, table, Qt.Key.Key_J)  # next unlabelled
    assert panel.model.current == 3

    _key(qtbot, table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the "unsure"
    assert project.match_label(midi_id, panel.model.candidates[2].audio.id) is None
    assert panel.model.current == 2  # back on the pair that was undone, ready to relabel
    _key(qtbot, table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert project.match_label(midi_id, panel.model.candidates[2].audio.id).label == "unsure"
    assert "unsure" in panel.history_label.text() and panel.undo_button.isEnabled()
    assert panel.model.current == 2  # the redone pair is shown

    with qtbot.waitSignal(panel.pair_opened) as opened:
        _key(qtbot, table, Qt.Key.Key_Return)
    assert opened.args == [project.file(midi_id).path, panel.model.candidates[2].audio.path]


def test_panel_keys_win_over_window_shortcuts_and_notes_keep_their_letters(qtbot, match_panel, project):
    from PySide6.QtGui import QAction, QKeySequence

    window = QMainWindow()
    qtbot.addWidget(window)
    fired = []
    for key in ("Y", "Ctrl+Z"):
        action = QAction(key, window)
        action.setShortcut(QKeySequence(key))
        action.triggered.connect(lambda _=False, k=key: fired.append(k))
        window.addAction(action)
    window.setCentralWidget(match_panel)
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    match_panel.candidate_table.setFocus()
    assert QApplication.focusWidget() is match_panel.candidate_table  # so window shortcuts are live
    _key(qtbot, match_panel.candidate_table, Qt.Key.Key_Y)
    _key(qtbot, match_panel.candidate_table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert fired == [] and project.match_labels() == []  # labelled, then undone, by the panel

    _key(qtbot, match_panel.candidate_table, Qt.Key.Key_N)
    labelled = match_panel.model.candidates[0]
    match_panel.model.set_current(0)
    qtbot.keyClicks(match_panel.note_edit, "yes, an unusual take")
    _key(qtbot, match_panel.note_edit, Qt.Key.Key_Return)
    saved = project.match_label(match_panel.model.midi_id, labelled.audio.id)
    assert (saved.label, saved.note) == ("no_match", "yes, an unusual take")
    window.takeCentralWidget()  # the panel belongs to its own fixture
    match_panel.setParent(None)


def test_background_ranking_by_alignment_confidence(qtbot, tmp_path):
    import pretty_midi
    import soundfile as sf

    from engine.media import load_midi, synthesize

    folder = tmp_path / "real"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        pm, inst, t = pretty_midi.PrettyMIDI(), pretty_midi.Instrument(0), 0.0
        for _ in range(14):
            step = float(rng.choice([0.25, 0.5]))
            inst.notes.append(pretty_midi.Note(90, int(rng.integers(55, 80)), t, t + 0.9 * step))
            t += step
        pm.instruments.append(inst)
        pm.write(str(folder / f"piece{i}.mid"))
        sf.write(folder / f"rec{i}.wav", synthesize(load_midi(folder / f"piece{i}.mid")), 22050)
    with Project(tmp_path / "r.earworm") as project:
        project.add_folder(folder)
        midi = project.file_by_path(folder / "piece1.mid")
        runner = JobRunner(max_threads=1)
        panel = MatchLabelPanel(MatchLabelModel(project), runner=runner)
        qtbot.addWidget(panel)
        with qtbot.waitSignal(runner.job_finished, timeout=120_000):
            panel.select_midi(midi.id)
        assert panel.confidence_job is None and panel.job_row.isHidden()
        ranked = panel.model.candidates
        assert [c.audio.name for c in ranked][0] == "rec1.wav"  # its own rendering ranks first
        assert all(c.confidence is not None for c in ranked) and ranked[0].confidence > ranked[1].confidence + 0.2
        assert project.result(ALIGNMENT_CONFIDENCE, midi.id, ranked[0].audio.id).value == ranked[0].confidence
        panel.close()
        runner.wait()


def test_a_failed_save_shows_a_dialog_and_the_screen_does_not_claim_it(qtbot, match_panel, project):
    shown = []
    match_panel.error_shown.connect(shown.append)
    blocker = sqlite3.connect(project.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    project.busy_timeout_s = 0.1
    project._conn.execute("PRAGMA busy_timeout = 100")  # only the test shortens the wait
    _key(qtbot, match_panel.candidate_table, Qt.Key.Key_Y)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert len(shown) == 1 and "locked by another process" in shown[0]
    assert match_panel.model.candidates[0].label is None and match_panel.model.current == 0
    _key(qtbot, match_panel.candidate_table, Qt.Key.Key_Y)  # once free, the same key works
    assert project.match_label(match_panel.model.midi_id, match_panel.model.candidates[0].audio.id).label == "match"


def test_labels_from_another_window_appear_after_a_poll(qtbot, match_panel, project):
    target = match_panel.model.candidates[1]
    with Project(project.path, who="other window") as other:
        other.set_match(match_panel.model.midi_id, target.audio.id, "no_match")
    assert match_panel.model.candidates[1].label is None
    assert match_panel.model.session.poll()
    assert match_panel.model.candidates[1].label.who == "other window"
    assert not match_panel.model.session.poll()
    files_events = []
    match_panel.model.session.files_changed.connect(files_events.append)
    with Project(project.path, who="other window") as other:
        other.set_match(match_panel.model.midi_id, target.audio.id, "match")
    assert match_panel.model.session.poll() and files_events == []  # a label: no list refill
    extra = Path(project.files("audio")[0].path).with_name("late.wav")
    extra.write_bytes(Path(project.files("audio")[0].path).read_bytes())
    with Project(project.path) as other:
        other.add_file(extra)
    assert match_panel.model.session.poll() and len(files_events) == 1
    assert "late.wav" in [c.audio.name for c in match_panel.model.candidates]
    assert match_panel.midi_combo.count() == 2


def test_tap_tempo_estimates_bpm_and_restarts_after_a_pause():
    tapper = TapTempo()
    assert tapper.tap(10.0) is None
    for k in range(1, 6):
        bpm = tapper.tap(10.0 + 0.5 * k + (0.01 if k == 3 else 0.0))
    assert bpm == pytest.approx(120.0, abs=0.01)  # the median ignores one sloppy tap
    assert tapper.tap(20.0) is None  # a long pause starts again


def test_pace_panel_keyboard_workflow(qtbot, session, project):
    audio = project.files("audio")[0]
    project.put_result(TEMPO_CANDIDATES, audio.id, data=[{"bpm": 96.0}, {"bpm": 500.0}])
    panel = PaceLabelPanel(PaceModel(session))
    qtbot.addWidget(panel)
    panel.show()
    panel.select_file(audio.id)
    shown = []
    panel.error_shown.connect(shown.append)
    clock = iter([1.0, 1.5, 2.0, 2.5])
    panel.clock = lambda: next(clock)
    lst = panel.pace_list
    lst.setFocus()
    for _ in range(4):
        _key(qtbot, lst, Qt.Key.Key_T)
    assert panel.bpm_label.text() == "120.0 bpm"
    _key(qtbot, lst, Qt.Key.Key_A)
    _key(qtbot, lst, Qt.Key.Key_H)  # half of the selected (just added) pace
    assert project.paces(audio.id) == [60.0, 120.0]
    lst.setCurrentRow(1)  # select 120
    _key(qtbot, lst, Qt.Key.Key_D)
    assert project.paces(audio.id) == [60.0, 120.0, 240.0]
    _key(qtbot, lst, Qt.Key.Key_D)  # 480 bpm is out of range: a dialog, nothing stored
    assert len(shown) == 1 and "outside 40–320" in shown[0] and project.paces(audio.id) == [60.0, 120.0, 240.0]
    lst.setCurrentRow(0)
    _key(qtbot, lst, Qt.Key.Key_Delete)
    assert project.paces(audio.id) == [120.0, 240.0] and lst.count() == 2
    _key(qtbot, lst, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.paces(audio.id) == [60.0, 120.0, 240.0] and lst.count() == 3
    suggestion = [panel.suggestion_row.itemAt(i).widget() for i in range(panel.suggestion_row.count())
                  if panel.suggestion_row.itemAt(i).widget() is not None and
                  panel.suggestion_row.itemAt(i).widget().text() == "96.0"]
    assert len(suggestion) == 1 and not any(panel.suggestion_row.itemAt(i).widget() is not None and
                                            panel.suggestion_row.itemAt(i).widget().text() == "500.0"
                                            for i in range(panel.suggestion_row.count()))
    qtbot.mouseClick(suggestion[0], Qt.MouseButton.LeftButton)
    assert 96.0 in project.paces(audio.id)


def test_library_panel_adds_a_folder_in_the_background_and_searches_sorts(qtbot, tmp_path, session, project):
    extra = make_library(tmp_path / "extra", n_midi=1, n_audio=2)
    (extra / "midi" / "corrupt.mid").write_bytes(b"MThd\x00\x00")
    runner = JobRunner(max_threads=1)
    model = LibraryModel(session)
    panel = LibraryPanel(model, runner=runner)
    qtbot.addWidget(panel)
    panel.show()
    assert panel.table_model.rowCount() == 6
    job = panel.add_folder(str(extra))
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    assert panel.table_model.rowCount() == 9 and panel.last_report.unreadable
    assert panel.unreadable_tree.topLevelItemCount() == 1
    item = panel.unreadable_tree.topLevelItem(0)
    assert item.text(0).endswith("corrupt.mid") and item.text(1)
    assert "Unreadable files (1)" == panel.unreadable_label.text()

    panel.search_edit.setText("more")
    qtbot.waitUntil(lambda: panel.table_model.rowCount() == 3)  # take1, take3 and extra's take1
    panel.search_edit.clear()
    qtbot.waitUntil(lambda: panel.table_model.rowCount() == 9)
    panel.kind_combo.setCurrentIndex(panel.kind_combo.findData("midi"))
    assert {r.file.kind for r in panel.table_model.rows} == {"midi"}
    panel.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)  # by duration
    durations = [r.file.duration_s for r in panel.table_model.rows]
    assert durations == sorted(durations, reverse=True)

    midi, audio = project.files("midi")[0], project.files("audio")[0]
    project.set_match(midi.id, audio.id, "match")  # as the match panel would, through the session
    project.put_result(MATCH_SCORE, midi.id, other_id=audio.id, value=2.5)
    session.changed(None)
    qtbot.waitUntil(lambda: not model.stale)
    row = next(r for r in panel.table_model.rows if r.file.id == midi.id)
    column = {"labels": 3, "score": 6}
    assert panel.table_model.data(panel.table_model.index(panel.table_model.rows.index(row), column["labels"])) == "1/0/0"
    assert panel.table_model.data(panel.table_model.index(panel.table_model.rows.index(row), column["score"])) == "2.5"
    with qtbot.waitSignal(panel.midi_activated) as activated:
        panel.table.activated.emit(panel.table_model.index(panel.table_model.rows.index(row), 0))
    assert activated.args == [midi.id]
    runner.wait()


def test_library_panel_relinks_moved_files(qtbot, tmp_path, session, project):
    lib = Path(project.files("midi")[0].path).parents[1]
    moved = tmp_path / "moved"
    (lib / "audio").rename(moved)
    session.files_changed.emit(None)
    runner = JobRunner(max_threads=1)
    panel = LibraryPanel(LibraryModel(session), runner=runner)
    qtbot.addWidget(panel)
    job = panel.relink(str(moved))
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    assert len(panel.last_report.relinked) == 4 and not panel.last_report.still_missing
    assert all(r.file.path.startswith(str(moved)) for r in panel.table_model.rows if r.file.kind == "audio")
    runner.wait()


def test_library_panel_import_reports_every_bad_row_and_export_works(qtbot, tmp_path, session, project):
    runner = JobRunner(max_threads=1)
    panel = LibraryPanel(LibraryModel(session), runner=runner)
    qtbot.addWidget(panel)
    shown = []
    panel.error_shown.connect(shown.append)
    bad = tmp_path / "bad.csv"
    bad.write_text("midi,audio,label\nsong0.mid,take0.wav,match\nsong0.mid,nope.wav,match\nsong1.mid,take1.wav,?\n")
    job = panel.import_labels("csv", str(bad))
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    assert len(shown) == 1 and f"{bad}:3: 'nope.wav'" in shown[0] and f"{bad}:4: label '?'" in shown[0]
    assert project.match_labels() == []  # all or nothing
    good = tmp_path / "good.csv"
    good.write_text("midi,audio,label,note\nsong0.mid,take0.wav,match,from a spreadsheet\n")
    match_model = MatchLabelModel(session)
    match_model.select_midi(project.files("midi")[0].id)
    job = panel.import_labels("csv", str(good))
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    assert [c.label.note for c in match_model.candidates if c.label] == ["from a spreadsheet"]  # panels reloaded
    out = tmp_path / "out" / "matrix.csv"
    job = panel.export_labels("matrix", str(out))
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    assert "take0.wav,1," in out.read_text()
    runner.wait()


def test_project_panels_dock_into_the_main_window(qtbot, tmp_path, project):
    from PySide6.QtCore import QSettings

    from gui.main_window import MainWindow
    from gui.panels.project_panels import install_project_panels

    project.close()
    window = MainWindow(settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat), dialogs=False)
    qtbot.addWidget(window)
    panels = install_project_panels(window, project.path)
    assert {"Library", "Match labels", "Paces"} <= set(window.panels)
    midi = next(r for r in panels.library.table_model.rows if r.file.kind == "midi")
    panels.library.midi_activated.emit(midi.file.id)
    assert panels.match.model.midi_id == midi.file.id and len(panels.match.model.candidates) == 4
    panels.match.confidence_job and panels.match.confidence_job.cancel()
    audio = next(r for r in panels.library.table_model.rows if r.file.kind == "audio")
    panels.library.audio_activated.emit(audio.file.id)
    assert panels.paces.model.file_id == audio.file.id
    window.runner.cancel_all()
    window.runner.wait()
    locked = sqlite3.connect(project.path, isolation_level=None)
    locked.execute("PRAGMA user_version = 99")  # a project from a newer Earworm: a dialog, no panels
    locked.close()
    other = MainWindow(settings=QSettings(str(tmp_path / "gui2.ini"), QSettings.Format.IniFormat), dialogs=False)
    qtbot.addWidget(other)
    assert install_project_panels(other, project.path) is None and "Library" not in other.panels
