"""Playback in the window (gui/transport.py, gui/transport_bar.py, gui/live_follow.py), offscreen,
over a fake sound card — the one fake allowed; the sound itself is prepared by the real engine
(decoding, FluidSynth stems, time-stretching) on the window's background jobs.

The pair: a short two-instrument MIDI and a "recording" of it 1.25× slower after 0.5 s of
silence; its alignment is built from that known warp (audio = 0.5 + 1.25 × MIDI time), so no
aligner runs here.
"""
from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest

from engine.align import Alignment
from engine.features import spectrogram_for_display
from engine.media import synthesize
from engine.playback_mix import to_float32
from gui.main_window import MainWindow
from gui.pipeline import note_table
from gui.playback import PAUSED, PLAYING, Player
from gui.session import DisplaySpectrogram, LoadedPair
from gui.transport_bar import install_playback
from tests.fake_sound_card import FakeMicrophone, FakeSoundCard, room_tone

OFFSET_S, STRETCH, SR = 0.5, 1.25, 22050


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("transport")
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano, strings = pretty_midi.Instrument(0, name="Piano"), pretty_midi.Instrument(48, name="Strings")
    for k in range(16):
        piano.notes.append(pretty_midi.Note(100, 60 + (k * 5) % 12, 0.5 * k, 0.5 * k + 0.4))
        if k % 4 == 0:
            strings.notes.append(pretty_midi.Note(80, 48 + k % 7, 0.5 * k, 0.5 * k + 1.8))
    pm.instruments += [piano, strings]
    midi_path = d / "piece.mid"
    pm.write(str(midi_path))
    played = pretty_midi.PrettyMIDI(str(midi_path))
    for inst in played.instruments:
        for n in inst.notes:
            n.start, n.end = OFFSET_S + STRETCH * n.start, OFFSET_S + STRETCH * n.end
    wav = d / "piece.wav"
    sf.write(str(wav), synthesize(played, sr=SR, soundfont="/usr/share/sounds/sf2/TimGM6mb.sf2"), SR)
    return str(midi_path), str(wav)


def make_pair(midi_path, audio_path) -> LoadedPair:
    midi = pretty_midi.PrettyMIDI(midi_path)
    y, sr = sf.read(audio_path, dtype="float32")
    midi_s = np.linspace(0, midi.get_end_time(), 200)
    preview_midi_s, preview_audio_s = np.linspace(0, midi.get_end_time(), 40), np.linspace(0, len(y) / sr, 50)
    preview = np.abs(preview_midi_s[:, None] * STRETCH + OFFSET_S - preview_audio_s[None, :]).astype(np.float32)
    alignment = Alignment(midi_s, OFFSET_S + STRETCH * midi_s, 1.0, midi.get_end_time(), len(y) / sr, midi,
                          midi_path=midi_path, audio_path=audio_path, cost_preview=preview,
                          cost_preview_midi_s=preview_midi_s, cost_preview_audio_s=preview_audio_s)
    S_db, pitches, times = spectrogram_for_display(y, sr)
    return LoadedPair(midi_path, audio_path, alignment, DisplaySpectrogram(S_db, pitches, times), note_table(alignment),
                      np.array([0.0, 1.0]), np.array([0.8, 0.8]))


@pytest.fixture
def setup(qtbot, tmp_path, files):
    card = FakeSoundCard(latency_s=0.05)
    window = MainWindow(settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat), dialogs=False)
    qtbot.addWidget(window)
    controller = install_playback(window, player=Player(stream_factory=card.output_stream, blocksize=512))
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    window.session.set_pair(make_pair(*files))
    # The recording is decoded and the MIDI synthesized (one track, mute/solo applied) in the background.
    qtbot.waitUntil(lambda: controller.player.program.midi is not None and not controller._jobs, timeout=60000)
    yield window, controller, card
    window.close()


def test_sound_is_prepared_in_the_background(setup):
    window, controller, _ = setup
    program = controller.player.program
    assert program.recording is not None and program.midi is not None
    assert program.duration_s == pytest.approx(window.session.pair.audio_duration_s, abs=0.05)
    # The warped MIDI sounds where the recording does: energy onsets line up (both start ~0.5 s in).
    rec_on = np.argmax(np.abs(to_float32(program.recording)) > 0.02) / program.sr
    midi_on = np.argmax(np.abs(to_float32(program.midi)) > 0.02) / program.sr
    assert rec_on == pytest.approx(OFFSET_S, abs=0.06) and midi_on == pytest.approx(OFFSET_S, abs=0.06)
    assert controller.sound.instrument_names == ["Piano", "Strings"]
    assert window.transport_bar.instruments_button.isEnabled()


def test_playhead_follows_the_stream_clock_and_the_views_follow_it(setup, qtbot):
    window, controller, card = setup
    session = window.session
    session.set_view_range(0.0, 4.0)
    controller.set_follow_mode("page")
    window.actions["play_pause"].trigger()
    assert controller.player.state == PLAYING
    card.advance(3.0)
    controller.tick()
    assert session.playhead_s == pytest.approx(3.0 - card.latency_s, abs=0.02)
    assert session.view_range_s == (0.0, 4.0)  # still on the first page
    card.advance(1.5)
    controller.tick()
    start, end = session.view_range_s
    assert start <= session.playhead_s <= end and start > 3.0  # turned the page
    controller.set_follow_mode("continuous")
    card.advance(0.5)
    controller.tick()
    start, end = session.view_range_s
    assert (session.playhead_s - start) / (end - start) == pytest.approx(0.3, abs=0.01)
    # Every view draws the playhead line there.
    for view in window.views.views.values():
        assert view.playhead_line.isVisible() and view.playhead_line.value() == pytest.approx(session.playhead_s)
    assert "0:0" in window.transport_bar.time_label.text()


def test_space_toggles_and_a_click_in_a_view_seeks(setup, qtbot):
    window, controller, card = setup
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_Space)
    assert controller.player.state == PLAYING
    card.advance(1.0)
    QTest.keyClick(window, Qt.Key.Key_Space)
    assert controller.player.state == PAUSED
    window.session.set_view_range(0.0, 10.0)
    view = window.piano_roll_view
    qtbot.wait(50)
    scene_point = view.viewbox.mapViewToScene(QPointF(6.0, sum(window.session.pitch_range) / 2))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.mapFromScene(scene_point))
    assert controller.player.position_s() == pytest.approx(6.0, abs=0.05)
    assert window.session.playhead_s == pytest.approx(6.0, abs=0.05)
    # A view added later (e.g. a tempo strip) seeks too.
    from gui.views.base import TimeView

    extra = window.views.add_view("extra", TimeView(window.session, title="extra"))
    extra.finish_init()
    qtbot.wait(50)
    scene_point = extra.viewbox.mapViewToScene(QPointF(3.0, 0.5))
    QTest.mouseClick(extra.viewport(), Qt.MouseButton.LeftButton, pos=extra.mapFromScene(scene_point))
    assert controller.player.position_s() == pytest.approx(3.0, abs=0.05)


def test_speed_loop_source_and_mute(setup, qtbot):
    window, controller, card = setup
    bar = window.transport_bar
    before = to_float32(controller.player.program.midi)
    bar.speed_box.setCurrentIndex(bar.speed_box.findData(1.5))
    qtbot.waitUntil(lambda: controller.player.program.speed == 1.5, timeout=60000)
    assert controller.player.program.duration_s == pytest.approx(window.session.pair.audio_duration_s, abs=0.1)
    # Loop the selection.
    window.session.set_selection(2.0, 3.0)
    bar.loop_action.setChecked(True)
    assert controller.player.loop == (2.0, 3.0)
    controller.seek(2.0)
    controller.play()
    for _ in range(30):
        card.advance(0.1)
        controller.tick()
        assert 2.0 - 1e-6 <= window.session.playhead_s < 3.0 + 1e-6
    # Both sources, then mute the strings: the MIDI track changes, the recording does not.
    bar.source_box.setCurrentIndex(bar.source_box.findData("both"))
    assert bar.balance.isEnabled() and controller.player.source == "both"
    bar.speed_box.setCurrentIndex(bar.speed_box.findData(1.0))
    qtbot.waitUntil(lambda: controller.player.program.speed == 1.0 and not controller._jobs, timeout=60000)
    controller.set_instrument(1, muted=True)
    qtbot.waitUntil(lambda: not controller._jobs, timeout=60000)
    after = to_float32(controller.player.program.midi)
    assert len(after) == len(before) and not np.allclose(after, before, atol=1e-3)
    assert np.abs(after).sum() < np.abs(before).sum()
    assert controller.sound.active == (0,)  # one track of what is heard, not a stem per instrument
    # At 1.5×, un-muting re-stretches only the MIDI: the stretched recording is kept and reused.
    bar.speed_box.setCurrentIndex(bar.speed_box.findData(1.5))
    qtbot.waitUntil(lambda: controller.player.program.speed == 1.5 and not controller._jobs, timeout=60000)
    stretched_recording, muted_midi = controller.player.program.recording, controller.player.program.midi
    controller.set_instrument(1, muted=False)
    qtbot.waitUntil(lambda: controller.player.program.midi is not muted_midi and not controller._jobs, timeout=60000)
    assert controller.player.program.speed == 1.5 and controller.player.program.recording is stretched_recording
    assert np.abs(to_float32(controller.player.program.midi)).sum() > np.abs(to_float32(muted_midi)).sum()


def test_a_pair_opened_at_another_speed_stretches_its_recording_once(qtbot, tmp_path, files, monkeypatch):
    """At 0.75× the recording is stretched while the MIDI is synthesized; when the MIDI arrives
    first, the recording's stretch is finished and reused, not started over with the MIDI."""
    import time

    from engine import playback_mix

    stretch, recording_stretches, midi_arrived_meanwhile = playback_mix.time_stretch, [], []

    def slow_recording_stretch(y, speed, progress=None, cancel=None):
        if controller.sound is not None and y is controller.sound.recording:
            recording_stretches.append(speed)
            deadline = time.monotonic() + 30.0  # hold this stretch until the MIDI has arrived
            while controller.sound.midi is None and time.monotonic() < deadline:
                time.sleep(0.01)
            midi_arrived_meanwhile.append(controller.sound.midi is not None)
        return stretch(y, speed, progress=progress, cancel=cancel)

    monkeypatch.setattr(playback_mix, "time_stretch", slow_recording_stretch)
    card = FakeSoundCard(latency_s=0.05)
    window = MainWindow(settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat), dialogs=False)
    qtbot.addWidget(window)
    controller = install_playback(window, player=Player(stream_factory=card.output_stream, blocksize=512))
    controller.set_speed(0.75)
    pair = make_pair(*files)
    window.session.set_pair(pair)
    qtbot.waitUntil(lambda: controller.player.program.midi is not None and not controller._jobs, timeout=60000)
    program = controller.player.program
    assert midi_arrived_meanwhile[0]  # the case under test did happen
    assert program.speed == 0.75 and recording_stretches == [0.75]
    assert program.duration_s == pytest.approx(pair.audio_duration_s, abs=0.1)
    assert len(program.midi) == pytest.approx(len(controller.sound.midi) / 0.75, rel=0.01)


def test_loop_without_selection_and_device_errors_are_messages(qtbot, tmp_path, files):
    card = FakeSoundCard(fail_with=RuntimeError("Error querying device -1"))
    window = MainWindow(settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat), dialogs=False)
    qtbot.addWidget(window)
    controller = install_playback(window, player=Player(stream_factory=card.output_stream))
    window.session.set_pair(make_pair(*files))
    qtbot.waitUntil(lambda: controller.player.program.recording is not None, timeout=60000)
    bar = window.transport_bar
    bar.loop_action.setChecked(True)
    assert not bar.loop_action.isChecked() and "Select a time range" in bar.last_message
    bar.play_action.trigger()
    assert controller.player.state != PLAYING
    assert "no sound device found" in bar.status.text()
    window.close()


def test_a_long_message_stays_in_view_in_a_narrow_window(setup, qtbot):
    """At 1200 px the transport's buttons fill most of the bar; a long message is shortened with
    "…" in the bar (whole in its tooltip) instead of vanishing into the toolbar's overflow menu."""
    window, _, _ = setup
    bar = window.transport_bar
    text = ("Following the microphone (USB Audio, 48 kHz) from the start of the MIDI; "
            "waiting for the first notes. Play when ready.")
    bar.show_message(text)
    qtbot.waitUntil(lambda: bar.status.isVisible() and bar.status.width() >= bar.status.MIN_WIDTH_PX, timeout=5000)
    shown = bar.status.shown_text()
    assert shown.endswith("…") and len(shown.strip()) > 10 and text.startswith(shown.strip()[:-1])
    assert bar.status.toolTip() == text
    assert bar.status.geometry().right() <= bar.width()
    window.resize(2400, 800)  # wide enough: the whole text
    qtbot.waitUntil(lambda: bar.status.shown_text() == bar.status.text(), timeout=5000)


def test_follow_microphone_drives_the_playhead_and_highlights_the_score(setup, qtbot, files):
    import librosa

    window, controller, _ = setup
    y, sr = sf.read(files[1], dtype="float32")
    # A microphone that only opens at 48 kHz, as many do: the follower must not ask for 22050 Hz.
    microphone = FakeMicrophone(librosa.resample(y, orig_sr=sr, target_sr=48000), native_sr=48000)
    live = window.live_follow
    live.stream_factory, live.query_devices = microphone.input_stream, microphone.query_devices
    window.transport_bar.mic_action.setChecked(True)
    qtbot.waitUntil(lambda: live.mic is not None and live.latest_midi_s is not None, timeout=60000)
    assert microphone.refused == [] and microphone.streams[0].samplerate == 48000
    assert "48 kHz" in window.transport_bar.last_message
    qtbot.waitUntil(lambda: (live.latest_midi_s or 0) > 4.0, timeout=30000)
    controller.tick()
    # The playhead marks the followed score position, mapped into the recording's time.
    assert window.session.playhead_s == pytest.approx(OFFSET_S + STRETCH * live.latest_midi_s, abs=0.2)
    assert not window.transport_bar.play_action.isEnabled()
    # The piano roll highlights the notes sounding at the followed position, under a score cursor.
    highlight = live.highlight
    qtbot.waitUntil(lambda: highlight.visible and highlight.midi_s is not None, timeout=5000)
    midi_s = highlight.midi_s
    notes = window.piano_roll_view.notes
    expected = np.flatnonzero((notes.start_midi_s <= midi_s) & (notes.end_midi_s > midi_s))
    assert np.array_equal(highlight.sounding, expected)
    assert highlight.cursor_s == pytest.approx(OFFSET_S + STRETCH * midi_s, abs=1e-6)
    window.transport_bar.mic_action.setChecked(False)
    assert live.mic is None and microphone.streams[0].closed
    assert window.transport_bar.play_action.isEnabled()
    assert not highlight.visible and len(highlight.fill_item) == 0


def test_follow_microphone_starts_where_the_playhead_stands(setup, qtbot, files):
    """Like playback from the cursor: the performer starts at the playhead's score position (here
    MIDI 4 s, 5.5 s into the recording), and the follower is there from the first chunks."""
    window, controller, _ = setup
    y, sr = sf.read(files[1], dtype="float32")
    controller.seek(OFFSET_S + STRETCH * 4.0)
    microphone = FakeMicrophone(y[int((OFFSET_S + STRETCH * 4.0) * sr):], native_sr=sr)
    live = window.live_follow
    live.stream_factory, live.query_devices = microphone.input_stream, microphone.query_devices
    window.transport_bar.mic_action.setChecked(True)
    qtbot.waitUntil(lambda: live.mic is not None and live.latest_midi_s is not None, timeout=60000)
    assert live.start_midi_s == pytest.approx(4.0, abs=0.01)
    assert live.mic.follower.start_s == live.start_midi_s
    assert "play from 0:04.0 of the MIDI" in window.transport_bar.last_message
    assert live.latest_midi_s >= 3.5  # (from the beginning the first positions would lie near 0)
    window.transport_bar.mic_action.setChecked(False)
    # Back at the start (or at the end), the follower starts from the beginning again.
    controller.seek(0.3)
    assert live.playhead_midi_s() == 0.0
    controller.seek(window.session.pair.audio_duration_s - 0.1)
    assert live.playhead_midi_s() == 0.0
    window.session.set_display(show_warped=False)
    controller.seek(4.0)  # the piano roll in the MIDI's own time: the axis is MIDI time
    assert live.playhead_midi_s() == pytest.approx(4.0, abs=0.01)


def test_follow_microphone_waits_for_the_first_notes(setup, qtbot, files):
    """The microphone hears 1 s of the room, then the recording (its first note OFFSET_S in): the
    follower stays at the start meanwhile, and the window says it is waiting, then that it heard the
    performance start."""
    window, _, _ = setup
    y, sr = sf.read(files[1], dtype="float32")
    microphone = FakeMicrophone(np.concatenate([room_tone(1.0, -60.0, sr), y]), native_sr=sr)
    live = window.live_follow
    live.stream_factory, live.query_devices = microphone.input_stream, microphone.query_devices
    said = []
    live.message.connect(said.append)
    window.transport_bar.mic_action.setChecked(True)
    qtbot.waitUntil(lambda: live.mic is not None and (live.latest_midi_s or 0) > 2.0, timeout=60000)
    qtbot.waitUntil(lambda: any(text.startswith("Heard the performance start") for text in said), timeout=5000)
    assert "play from the beginning of the piece; waiting for the first notes." in said[0]
    assert f"Heard the performance start ({1.0 + OFFSET_S:.1f} s after following began); following." in said
    assert live.mic.follower.performance_start_s == pytest.approx(1.0 + OFFSET_S, abs=0.03)
    window.transport_bar.mic_action.setChecked(False)


def test_score_highlight_marks_the_sounding_notes_in_either_timeline(setup, qtbot):
    window, _, _ = setup
    view, highlight = window.piano_roll_view, window.live_follow.highlight
    session = window.session
    session.set_view_range(2.0, 5.0)
    # At MIDI 2.1 s the fifth piano note (pitch 68, 2.0-2.4 s) and the second string note (52, 2.0-3.8 s) sound.
    highlight.show(2.1)
    assert sorted(view.notes.pitch[highlight.sounding].tolist()) == [52, 68]
    assert highlight.cursor_s == pytest.approx(OFFSET_S + STRETCH * 2.1)
    assert np.allclose(highlight.fill_item.start_s, OFFSET_S + STRETCH * 2.0)
    # Drawn: the two notes lit up (white) on their key rows at the cursor.
    image = view.grab().toImage()
    vb = view.viewbox
    lit = 0
    for pitch in (52, 68):
        for dt in (0.05, 0.2, 0.4):
            p = vb.mapViewToScene(QPointF(OFFSET_S + STRETCH * 2.0 + dt, pitch))
            p = view.mapFromScene(p)
            r, g, b = QColor(image.pixel(int(p.x()), int(p.y()))).getRgb()[:3]
            lit += min(r, g, b) > 230
    assert lit >= 5
    # The cursor's "score" label can be read: it lies clear of the view's title and legend.
    label = highlight.cursor.label
    assert label.isVisible() and label.toPlainText() == "score"
    assert not label.sceneBoundingRect().intersects(view.title_item.sceneBoundingRect())
    assert view.viewbox.sceneBoundingRect().contains(label.sceneBoundingRect())
    # In the MIDI's own timeline the highlight moves with the notes.
    session.set_display(show_warped=False)
    highlight.show(2.1)
    assert highlight.cursor_s == pytest.approx(2.1) and np.allclose(highlight.fill_item.start_s, 2.0)
    highlight.show(None)
    assert not highlight.visible and highlight.sounding.size == 0


def test_follow_microphone_without_a_microphone_is_a_message(setup, qtbot):
    window, _, _ = setup

    def no_microphone(**kwargs):
        raise RuntimeError("Error querying device -1")

    window.live_follow.stream_factory = no_microphone
    window.transport_bar.mic_action.setChecked(True)
    qtbot.waitUntil(lambda: not window.live_follow.following, timeout=60000)
    assert "no sound device found" in window.transport_bar.last_message
    assert not window.transport_bar.mic_action.isChecked()


def test_following_a_performance_without_a_part_says_which(setup, qtbot, files):
    """The performer plays the piano part only: the follower leaves the strings out, and the
    window says so in a message (the player is not left wondering why the score drifts)."""
    window, _, _ = setup
    played = pretty_midi.PrettyMIDI(files[0])
    played.instruments = [inst for inst in played.instruments if inst.name == "Piano"]
    for inst in played.instruments:
        for n in inst.notes:
            n.start, n.end = OFFSET_S + STRETCH * n.start, OFFSET_S + STRETCH * n.end
    microphone = FakeMicrophone(synthesize(played, sr=SR, soundfont="/usr/share/sounds/sf2/TimGM6mb.sf2"), native_sr=SR)
    live = window.live_follow
    live.stream_factory, live.query_devices = microphone.input_stream, microphone.query_devices
    window.transport_bar.mic_action.setChecked(True)
    qtbot.waitUntil(lambda: "Following without Strings" in getattr(window.transport_bar, "last_message", ""),
                    timeout=60000)
    assert live.mic.follower.instruments_playing.tolist() == [True, False]
    window.transport_bar.mic_action.setChecked(False)
