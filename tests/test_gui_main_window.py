"""The main window, offscreen: open real pairs, check what is drawn, interact, export, fail well.

Fixtures are made here: a short MIDI (piano, bass, drums) written with pretty_midi, and a
"recording" of it played 1.25× slower after 0.5 s of silence, rendered by FluidSynth with a
different soundfont than the default one — so the true warp is audio = 0.5 + 1.25 × MIDI time.
"""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QLabel
from PySide6.QtTest import QTest

from engine.media import synthesize
from gui.main_window import MainWindow
from gui.views.base import TimeView, format_time_s

REPO = Path(__file__).resolve().parent.parent
STRETCH, OFFSET_S, SR = 1.25, 0.5, 22050
ALT_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
LOAD_TIMEOUT_MS = 90000


def _true_audio_time(midi_s):
    return OFFSET_S + STRETCH * np.asarray(midi_s)


def _make_midi(path: Path, seed: int, duration_s: float = 10.0) -> pretty_midi.PrettyMIDI:
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(0, name="Piano")
    bass = pretty_midi.Instrument(33, name="Bass")
    drums = pretty_midi.Instrument(0, is_drum=True, name="Drums")
    t = 0.0
    while t < duration_s:
        step = float(rng.choice([0.25, 0.5, 0.5, 1.0]))
        pitch = int(rng.integers(60, 79))
        piano.notes.append(pretty_midi.Note(int(rng.integers(60, 120)), pitch, t, t + 0.9 * step))
        if rng.random() < 0.35:
            bass.notes.append(pretty_midi.Note(90, pitch - 24, t, t + step))
        t += step
    for k in np.arange(0.0, duration_s, 0.5):
        drums.notes.append(pretty_midi.Note(100, 36 if int(k * 2) % 2 == 0 else 38, float(k), float(k) + 0.1))
    pm.instruments += [piano, bass, drums]
    pm.write(str(path))
    return pm


def _render_recording(midi_path: Path, wav_path: Path) -> None:
    played = pretty_midi.PrettyMIDI(str(midi_path))
    for inst in played.instruments:
        for n in inst.notes:
            n.start, n.end = _true_audio_time(n.start), _true_audio_time(n.end)
    y = synthesize(played, sr=SR, soundfont=ALT_SOUNDFONT)
    sf.write(str(wav_path), y, SR)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("gui-pair")
    midi, wav = d / "piece.mid", d / "piece.wav"
    _make_midi(midi, seed=3)
    _render_recording(midi, wav)
    return str(midi), str(wav)


@pytest.fixture(scope="module")
def second_pair(tmp_path_factory):
    """Another pair that nothing has aligned (nor cached) before."""
    d = tmp_path_factory.mktemp("gui-pair2")
    midi, wav = d / "other.mid", d / "other.wav"
    _make_midi(midi, seed=11, duration_s=8.0)
    _render_recording(midi, wav)
    return str(midi), str(wav)


@pytest.fixture
def window(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1300, 860)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.runner.cancel_all()
    w.runner.wait(30)


def _load(qtbot, window, midi, audio):
    with qtbot.waitSignal(window.pair_drawn, timeout=LOAD_TIMEOUT_MS):
        window.open_pair(midi, audio)
    QApplication.processEvents()
    return window.session.pair


def _widget_point(view: TimeView, x: float, y: float) -> QPoint:
    scene = view.viewbox.mapViewToScene(QPointF(x, y))
    return view.mapFromScene(scene)


def _drag(view: TimeView, start: QPoint, end: QPoint, button=Qt.MouseButton.LeftButton,
          modifiers=Qt.KeyboardModifier.NoModifier, steps: int = 10) -> None:
    viewport = view.viewport()
    QTest.mousePress(viewport, button, modifiers, start)
    for i in range(1, steps + 1):
        pos = QPointF(start + (end - start) * (i / steps))
        ev = QMouseEvent(QEvent.Type.MouseMove, pos, QPointF(viewport.mapToGlobal(pos.toPoint())),
                         Qt.MouseButton.NoButton, button, modifiers)
        QApplication.sendEvent(viewport, ev)
    QTest.mouseRelease(viewport, button, modifiers, end)


def _wheel(view: TimeView, at: QPoint, notches: float, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    viewport = view.viewport()
    ev = QWheelEvent(QPointF(at), QPointF(viewport.mapToGlobal(at)), QPoint(0, 0), QPoint(0, int(120 * notches)),
                     Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, ev)


def _time_views(window):
    return [window.spectrogram_view, window.piano_roll_view, window.drum_view, window.path_view]


# -- what is drawn ---------------------------------------------------------------------------

def test_notes_are_drawn_at_their_aligned_times_and_pitches(qtbot, window, pair):
    midi_path, audio_path = pair
    loaded = _load(qtbot, window, midi_path, audio_path)
    truth = pretty_midi.PrettyMIDI(midi_path)
    piano_roll = window.piano_roll_view
    pitched = [n for inst in truth.instruments if not inst.is_drum for n in inst.notes]
    drawn = piano_roll.notes_item
    assert len(drawn) == len(pitched)
    # every note lands where the recording plays it (true warp), within the aligner's accuracy
    errors = np.abs(np.sort(drawn.start_s) - np.sort(_true_audio_time([n.start for n in pitched])))
    assert np.median(errors) < 0.05 and np.mean(errors < 0.15) > 0.9
    bounds = drawn.boundingRect()
    assert bounds.left() == pytest.approx(drawn.start_s.min())
    assert abs(bounds.left() - _true_audio_time(0.0)) < 0.15
    assert abs(bounds.right() - _true_audio_time(max(n.end for n in pitched))) < 0.3
    assert bounds.top() == pytest.approx(min(n.pitch for n in pitched) - 0.42)
    assert bounds.bottom() == pytest.approx(max(n.pitch for n in pitched) + 0.42)
    # and the pixels are there: sample long notes in the rendered view
    image = piano_roll.grab().toImage()
    long_notes = np.nonzero(drawn.end_s - drawn.start_s > 0.5)[0][:6]
    assert len(long_notes) >= 3
    for i in long_notes:
        pt = _widget_point(piano_roll, 0.5 * (drawn.start_s[i] + drawn.end_s[i]), drawn.rows[i])
        colour = image.pixelColor(pt.x(), pt.y())
        expected = drawn.palette[drawn.colour_index[i]]
        assert abs(colour.red() - int(expected[0])) < 40 and abs(colour.blue() - int(expected[2])) < 40
    # the drum lane shows the drum hits apart from the piano roll, one row per sound
    assert window.drum_view.isVisible() and len(window.drum_view.notes_item) == len(truth.instruments[2].notes)
    assert sorted(window.drum_view.keys.tolist()) == [36, 38]
    assert loaded.notes.is_drum.sum() == len(truth.instruments[2].notes)


def test_spectrogram_rows_line_up_with_the_piano_roll(qtbot, window, pair):
    _load(qtbot, window, *pair)
    spec, roll = window.spectrogram_view, window.piano_roll_view
    assert spec.viewbox.viewRange()[1] == pytest.approx(roll.viewbox.viewRange()[1])
    # the spectrogram image covers the visible keys, its rows on the piano's 1/3-semitone grid
    rect = spec.image_item.mapRectToParent(spec.image_item.boundingRect())
    y0, y1 = spec.viewbox.viewRange()[1]
    assert rect.top() <= y0 and rect.bottom() >= y1
    rows_below = (rect.top() - spec.pyramid.pitch_lo) * 3
    assert spec.pyramid.pitch_lo == pytest.approx(20.5) and rows_below == pytest.approx(round(rows_below), abs=1e-6)
    assert spec.image_item.cells.shape[0] == round(rect.height() * 3)
    # pitch zoom (Ctrl+wheel) on the spectrogram moves the piano roll's pitch axis too
    before = roll.viewbox.viewRange()[1]
    _wheel(spec, spec.viewport().rect().center(), 2, Qt.KeyboardModifier.ControlModifier)
    after = roll.viewbox.viewRange()[1]
    assert after[1] - after[0] < before[1] - before[0]
    assert spec.viewbox.viewRange()[1] == pytest.approx(after)


def test_path_item_covers_the_whole_alignment(qtbot, window, pair):
    loaded = _load(qtbot, window, *pair)
    alignment = loaded.alignment
    x, y = window.path_view.path_curve.getOriginalDataset()
    np.testing.assert_allclose(x, alignment.path_audio_s)
    np.testing.assert_allclose(y, alignment.path_midi_s)
    a0, a1, m0, m1 = window.path_view.path_extent()
    assert a0 == alignment.path_audio_s[0] and a1 == alignment.path_audio_s[-1]
    # the path spans the music: from the first note to the last, on both axes
    assert a0 < _true_audio_time(0.0) + 0.3 and a1 > _true_audio_time(alignment.midi_duration_s) - 1.0
    assert m0 < 0.3 and m1 > alignment.midi_duration_s - 1.0
    cost_rect = window.path_view.cost_image.mapRectToParent(window.path_view.cost_image.boundingRect())
    assert cost_rect.left() <= a0 + 0.05 and cost_rect.right() >= a1 - 0.05
    assert cost_rect.top() <= m0 + 0.05 and cost_rect.bottom() >= m1 - 0.05
    # the tempo curve says "1.25x slower" in the middle of the piece
    t_mid = 0.5 * (a0 + a1)
    assert loaded.tempo_ratio_at(t_mid) == pytest.approx(1 / STRETCH, rel=0.1)


def test_a_preview_shows_the_recording_and_the_notes_in_midi_time_while_aligning(qtbot, window, tmp_path):
    midi_path, wav_path = tmp_path / "fresh.mid", tmp_path / "fresh.wav"
    _make_midi(midi_path, seed=21, duration_s=8.0)  # a pair nothing has aligned (nor cached) before
    _render_recording(midi_path, wav_path)
    truth = pretty_midi.PrettyMIDI(str(midi_path))
    pitched_starts = np.sort([n.start for i in truth.instruments if not i.is_drum for n in i.notes])
    seen = []
    window.pair_previewed.connect(lambda p: seen.append(("preview", window.piano_roll_view.notes_item.start_s.copy(),
                                                         window.path_view.path_extent(),
                                                         window.actions["export_midi"].isEnabled(),
                                                         window.status_line.text(),
                                                         window.spectrogram_view.pyramid is not None,
                                                         window.spectrogram_view.overlay.isVisible())))
    with qtbot.waitSignal(window.pair_drawn, timeout=LOAD_TIMEOUT_MS):
        window.open_pair(str(midi_path), str(wav_path))
    assert len(seen) == 1, "an uncached alignment is previewed once"
    _, starts, path_extent, export_enabled, status, has_spectrogram, overlay_shown = seen[0]
    # the preview: spectrogram drawn, notes at their MIDI times, no path, no overlay, no export yet
    assert has_spectrogram and np.allclose(np.sort(starts), pitched_starts)
    assert np.all(np.isnan(path_extent)) and not export_enabled and not overlay_shown
    assert "aligning" in status
    # then the aligned pair: notes where the recording plays them, the path, the overlay
    pair = window.session.pair
    assert pair.aligned and window.actions["export_midi"].isEnabled()
    drawn = np.sort(window.piano_roll_view.notes_item.start_s)
    assert np.median(np.abs(drawn - _true_audio_time(pitched_starts))) < 0.05
    assert not np.isnan(window.path_view.path_extent()[0]) and window.spectrogram_view.overlay.isVisible()
    # opened again, the alignment comes from the cache: straight to the aligned pair, no preview
    seen.clear()
    with qtbot.waitSignal(window.pair_drawn, timeout=LOAD_TIMEOUT_MS):
        window.open_pair(str(midi_path), str(wav_path))
    assert seen == [] and window.session.pair.aligned


def test_a_failure_after_the_preview_brings_back_the_previous_pair(qtbot, window, pair, tmp_path):
    from engine.align import AlignParams

    loaded = _load(qtbot, window, *pair)
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00sfbk" + b"\x00" * 64)
    window.align_params = AlignParams(soundfont=str(broken))  # the MIDI side fails, after the recording
    shown = []
    window.session.events.pair_changed.connect(lambda p: shown.append(None if p is None else p.aligned))
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_TIMEOUT_MS) as blocker:
        window.open_pair(*pair)
    assert "broken.sf2" in str(blocker.args[0])
    assert shown == [False, True], "the preview, then the previous pair again"
    assert window.session.pair is loaded and window.path_view.pair is loaded
    assert window.actions["export_midi"].isEnabled()


# -- linked interaction ----------------------------------------------------------------------

def test_wheel_zoom_in_one_view_moves_all_the_others(qtbot, window, pair):
    _load(qtbot, window, *pair)
    roll = window.piano_roll_view
    x0, x1 = roll.visible_x_range()
    at = _widget_point(roll, x0 + 0.3 * (x1 - x0), roll.viewbox.viewRange()[1][0] + 5)
    anchor_before = roll.viewbox.mapSceneToView(roll.mapToScene(at)).x()
    _wheel(roll, at, 3)
    n0, n1 = roll.visible_x_range()
    assert (n1 - n0) == pytest.approx((x1 - x0) / 1.25 ** 3, rel=0.02)
    assert roll.viewbox.mapSceneToView(roll.mapToScene(at)).x() == pytest.approx(anchor_before, abs=0.05)
    for view in _time_views(window):
        assert view.visible_x_range() == pytest.approx((n0, n1))
    # zooming out over the path view (under its tempo-ratio overlay) works the same way
    path = window.path_view
    _wheel(path, path.viewport().rect().center(), -1)
    z0, z1 = window.session.view_range_s
    assert z1 - z0 == pytest.approx((n1 - n0) * 1.25, rel=0.02)
    window.session.set_view_range(n0, n1)
    # the path view's MIDI axis followed the zoom: the path is still a diagonal across it
    m0, m1 = window.path_view.viewbox.viewRange()[1]
    pair_ = window.session.pair
    assert m0 <= pair_.audio_to_midi(n0) <= m0 + 0.1 * (m1 - m0)
    assert m1 - 0.1 * (m1 - m0) <= pair_.audio_to_midi(n1) <= m1


def test_drag_pans_and_shift_drag_selects_then_zoom_to_selection(qtbot, window, pair):
    _load(qtbot, window, *pair)
    window.session.set_view_range(2.0, 6.0)
    spec = window.spectrogram_view
    y_mid = sum(spec.viewbox.viewRange()[1]) / 2
    start, end = _widget_point(spec, 5.0, y_mid), _widget_point(spec, 4.0, y_mid)
    _drag(spec, start, end)
    s0, s1 = window.session.view_range_s
    assert s0 == pytest.approx(3.0, abs=0.1) and s1 - s0 == pytest.approx(4.0, abs=1e-6)
    assert window.path_view.visible_x_range() == pytest.approx((s0, s1))
    # Shift+drag in the path view selects a time range, shown in every view; Z zooms to it
    path = window.path_view
    y = sum(path.viewbox.viewRange()[1]) / 2
    _drag(path, _widget_point(path, 4.0, y), _widget_point(path, 5.5, y), modifiers=Qt.KeyboardModifier.ShiftModifier)
    sel = window.session.selection_s
    assert sel is not None and sel[0] == pytest.approx(4.0, abs=0.05) and sel[1] == pytest.approx(5.5, abs=0.05)
    assert all(v.selection_region.isVisible() for v in _time_views(window))
    assert window.actions["zoom_selection"].isEnabled()
    QTest.keyClick(window, Qt.Key.Key_Z)
    assert window.session.view_range_s == pytest.approx(sel)


def test_keyboard_zoom_pan_and_fit_all(qtbot, window, pair):
    _load(qtbot, window, *pair)
    full = window.session.view_range_s
    window.piano_roll_view.setFocus()
    QTest.keyClick(window.piano_roll_view, Qt.Key.Key_Plus)
    zoomed = window.session.view_range_s
    assert zoomed[1] - zoomed[0] == pytest.approx((full[1] - full[0]) / 1.5, rel=1e-6)
    QTest.keyClick(window.piano_roll_view, Qt.Key.Key_Right)
    panned = window.session.view_range_s
    assert panned[0] > zoomed[0]
    assert window.spectrogram_view.visible_x_range() == pytest.approx(panned)
    QTest.keyClick(window.piano_roll_view, Qt.Key.Key_Minus)
    QTest.keyClick(window.piano_roll_view, Qt.Key.Key_Home)
    assert window.session.view_range_s == pytest.approx(full)


def test_time_cursor_is_shown_in_every_view_and_the_status_line(qtbot, window, pair):
    _load(qtbot, window, *pair)
    roll = window.piano_roll_view
    pos = _widget_point(roll, 3.0, sum(roll.viewbox.viewRange()[1]) / 2)
    QTest.mouseMove(roll.viewport(), pos)
    qtbot.waitUntil(lambda: window.session.cursor_s is not None, timeout=2000)
    t = window.session.cursor_s
    assert t == pytest.approx(3.0, abs=0.05)
    for view in _time_views(window):
        assert view.cursor_line.isVisible() and view.cursor_line.value() == pytest.approx(t)
    text = window.status_line.text()
    assert "cursor" in text and "confidence" in text and "tempo ratio" in text
    midi_t = window.session.pair.audio_to_midi(t)
    assert midi_t == pytest.approx((t - OFFSET_S) / STRETCH, abs=0.15)
    # hovering the path view shows both times there, and the path's MIDI time at that audio time
    path = window.path_view
    y_midi = sum(path.viewbox.viewRange()[1]) / 2
    QTest.mouseMove(path.viewport(), _widget_point(path, 5.0, y_midi))
    qtbot.waitUntil(lambda: path.hover_text.isVisible(), timeout=2000)
    hover = path.hover_text.textItem.toPlainText()
    shown = re.match(r"audio (\d+):(\d+\.\d+)\s+MIDI (\d+):(\d+\.\d+)", hover)
    assert shown, hover
    assert 60 * int(shown[1]) + float(shown[2]) == pytest.approx(5.0, abs=0.02)
    assert 60 * int(shown[3]) + float(shown[4]) == pytest.approx(y_midi, abs=0.05)
    assert f"MIDI {format_time_s(window.session.pair.audio_to_midi(window.session.cursor_s))}" in hover
    assert path.cursor_dot.data["x"][0] == pytest.approx(window.session.cursor_s)
    # playback (a later issue) only sets the playhead; every view draws it
    window.session.playhead_s = 4.0
    assert all(v.playhead_line.isVisible() and v.playhead_line.value() == 4.0 for v in _time_views(window))


def test_unwarped_toggle_and_colour_modes(qtbot, window, pair):
    loaded = _load(qtbot, window, *pair)
    drawn = window.piano_roll_view.notes_item
    warped_starts = drawn.start_s.copy()
    QTest.keyClick(window, Qt.Key.Key_W)
    assert window.session.display.show_warped is False
    np.testing.assert_allclose(drawn.start_s, np.sort(loaded.notes.start_midi_s[~loaded.notes.is_drum]))
    assert not np.allclose(drawn.start_s, warped_starts)
    assert "unwarped" in window.piano_roll_view.title_text
    QTest.keyClick(window, Qt.Key.Key_W)
    np.testing.assert_allclose(drawn.start_s, warped_starts)
    window.display_controls["note_colour"].setCurrentIndex(1)
    assert window.session.display.note_colour == "velocity"
    assert len(np.unique(drawn.colour_index)) > 2  # velocities spread over several colours
    QTest.keyClick(window, Qt.Key.Key_O)
    assert not window.spectrogram_view.overlay.isVisible()


# -- exports ---------------------------------------------------------------------------------

def test_exports_aligned_midi_path_csv_and_png(qtbot, window, pair, tmp_path):
    loaded = _load(qtbot, window, *pair)
    out_mid = window.export_aligned_midi(str(tmp_path / "aligned.mid"))
    aligned = pretty_midi.PrettyMIDI(out_mid)
    onsets = np.sort([n.start for inst in aligned.instruments if not inst.is_drum for n in inst.notes])
    np.testing.assert_allclose(onsets, np.sort(loaded.notes.start_audio_s[~loaded.notes.is_drum]), atol=0.03)
    out_csv = window.export_path_csv(str(tmp_path / "path.csv"))
    rows = list(csv.reader(open(out_csv)))
    assert rows[0] == ["midi_s", "audio_s"] and len(rows) == len(loaded.alignment.path_midi_s) + 1
    out_png = window.export_view_png(str(tmp_path / "view.png"))
    image = QImage(out_png)
    assert image.width() == window.views.width() and image.height() == window.views.height()
    assert window.export_view_png(str(tmp_path / "no-such-dir" / "v.png")) is None
    assert window.last_error_dialog is not None and "no-such-dir" in window.last_error_dialog.informativeText()


# -- bad input, cancel, drops, recent files --------------------------------------------------

def test_corrupt_files_give_a_dialog_and_keep_the_previous_session(qtbot, window, pair, tmp_path):
    loaded = _load(qtbot, window, *pair)
    title = window.windowTitle()
    bad_midi = tmp_path / "broken.mid"
    bad_midi.write_bytes(b"this is not a MIDI file at all")
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_TIMEOUT_MS) as blocker:
        window.open_pair(str(bad_midi), pair[1])
    assert "broken.mid" in str(blocker.args[0])
    box = window.last_error_dialog
    assert box.isVisible()
    assert "broken.mid" in box.text() and "MThd" in box.informativeText()
    box.close()
    assert window.session.pair is loaded and window.windowTitle() == title
    assert len(window.piano_roll_view.notes_item) > 0 and not window.progress_bar.isVisible()
    bad_audio = tmp_path / "noise.wav"
    bad_audio.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_TIMEOUT_MS):
        window.open_audio(str(bad_audio))
    assert "noise.wav" in window.last_error_dialog.text()
    assert window.session.pair is loaded
    # the next open after a failure uses the pair on screen, not the broken file
    assert window.session.pending_audio_path == loaded.audio_path
    with qtbot.waitSignal(window.load_failed, timeout=5000):
        window.open_files([str(tmp_path / "notes.txt")])
    assert "unknown file type" in window.last_error_dialog.informativeText()


def test_cancel_keeps_the_session_and_the_gui_runs_while_aligning(qtbot, window, pair, second_pair):
    loaded = _load(qtbot, window, *pair)
    ticks = []
    from PySide6.QtCore import QTimer

    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    job = window.open_pair(*second_pair)
    assert window.progress_bar.isVisible() and window.cancel_button.isVisible()
    with qtbot.waitSignal(job.cancelled, timeout=LOAD_TIMEOUT_MS):
        QTest.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    assert window.session.pair is loaded and not window.progress_bar.isVisible()
    # uncancelled, the same (uncached) pair aligns while the event loop keeps running
    ticks.clear()
    with qtbot.waitSignal(window.pair_drawn, timeout=LOAD_TIMEOUT_MS):
        window.open_pair(*second_pair)
    timer.stop()
    assert len(ticks) >= 3
    assert window.session.pair.midi_path == second_pair[0]


def test_dropped_files_are_opened_and_remembered(qtbot, window, pair, tmp_path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(p) for p in pair])
    drop = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.pair_drawn, timeout=LOAD_TIMEOUT_MS):
        window.dropEvent(drop)
    assert window.session.pair.midi_path == pair[0]
    recent = window.recent_pairs()
    assert recent and Path(recent[0][0]).name == "piece.mid"
    labels = [a.text() for a in window.recent_menu.actions()]
    assert any("piece.mid" in t and "piece.wav" in t for t in labels)
    again = MainWindow(settings=window.settings)
    qtbot.addWidget(again)
    assert again.recent_pairs() == recent


def test_panels_and_views_plug_in(qtbot, window, pair):
    _load(qtbot, window, *pair)
    dock = window.add_panel(QLabel("labels go here"), "Labels")
    assert window.panels["Labels"] is dock and dock.toggleViewAction() in window.panels_menu.actions()
    extra = window.add_view("extra", TimeView(window.session, title="Extra"))
    extra.finish_init()
    window.session.zoom(2.0)
    assert extra.visible_x_range() == pytest.approx(window.session.view_range_s)


def test_keys_reference_lists_the_shortcuts_panels_and_gestures_the_window_has(qtbot, window, tmp_path):
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QWidget

    from gui.keys_reference import MOUSE_SECTION, WINDOW_SECTION, reference_rows
    from gui.panels.panel_common import PanelKeys
    from gui.panels.project_panels import install_project_panels

    install_project_panels(window, tmp_path / "p.earworm")
    QTest.keyClick(window, Qt.Key.Key_F1)
    dialog = window.keys_reference_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=2000)
    rows = reference_rows(window)
    assert {(WINDOW_SECTION, "Space", "Play / Pause"), (WINDOW_SECTION, "Ctrl+O", "Open Pair"),
            (WINDOW_SECTION, "Home", "Fit All"), (WINDOW_SECTION, "F1", "Keys and Mouse")} <= set(rows)
    assert ("Panel: Match labels", "Y", "label the current candidate: match") in rows
    assert ("Panel: Paces", "Del, Backspace", "remove the selected pace") in rows  # same effect: one row
    assert ("Panel: Match labels", "Ctrl+Shift+Z, Ctrl+Y", "redo the label change undone") in rows
    assert (MOUSE_SECTION, "Wheel", "zoom time about the pointer") in rows
    assert ("Mouse, in the tempo strip", "Click a candidate line", "add that tempo as a pace of the recording") in rows
    shown = [dialog.tree.topLevelItem(i) for i in range(dialog.tree.topLevelItemCount())]
    assert [item.text(0) for item in shown] == list(dict.fromkeys(section for section, _, _ in rows))
    assert sum(item.childCount() for item in shown) == len(rows)

    # read from the window when it opens: what is added later shows up, nothing is a fixed list
    action = QAction("Snap to &Onset", window)
    action.setShortcut("Ctrl+Alt+K")
    window.actions["snap"] = action
    extra = QWidget()
    PanelKeys(extra, {"X": lambda: None}, {"X": "cross it out"})
    window.add_panel(extra, "Extra")
    QTest.keyClick(window, Qt.Key.Key_F1)
    rows = reference_rows(window)
    assert (WINDOW_SECTION, "Ctrl+Alt+K", "Snap to Onset") in rows and ("Panel: Extra", "X", "cross it out") in rows
    assert sum(dialog.tree.topLevelItem(i).childCount() for i in range(dialog.tree.topLevelItemCount())) == len(rows)
    assert window.keys_reference_dialog is dialog  # raised again, not a second window
    dialog.close()


# -- the demo and the command line -----------------------------------------------------------

def test_demo_pair_opens_with_every_note(qtbot, window):
    from gui.app import demo_pair

    demo = demo_pair()
    assert demo is not None, "resources/demo/ must hold the bundled demo pair"
    loaded = _load(qtbot, window, *demo)
    truth = pretty_midi.PrettyMIDI(demo[0])
    assert len(loaded.notes) == sum(len(i.notes) for i in truth.instruments)
    assert loaded.alignment.confidence > 0.5
    assert window.spectrogram_view.pyramid is not None


def _earworm(*args, timeout=240):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_screenshot_renders_and_exits(pair, tmp_path):
    out = tmp_path / "shot.png"
    result = _earworm("gui", *pair, "--screenshot", str(out))
    assert result.returncode == 0, result.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1600, 1000)
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"garbage")
    result = _earworm("gui", str(bad), pair[1], "--screenshot", str(tmp_path / "x.png"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: ")
    assert "Traceback" not in result.stderr and not (tmp_path / "x.png").exists()


def test_bare_earworm_without_a_display_says_so_instead_of_aborting_in_qt():
    """`make run` over ssh or in a container: Qt alone aborts ("could not load the Qt platform
    plugin"); the window's entry point names what is missing and the way to a screenshot."""
    from gui.app import missing_display

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-m", "engine.cli"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: no display to open the window on")
    assert "--screenshot" in result.stderr and "Traceback" not in result.stderr and "qt.qpa" not in result.stderr
    assert missing_display({"DISPLAY": ":0"}, "linux") is None
    assert missing_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert missing_display({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert missing_display({"QT_QPA_PLATFORM": "xcb"}, "linux") is not None
    assert missing_display({}, "darwin") is None
