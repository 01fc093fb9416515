"""The tempo strip: computed off the GUI thread, coalesced, drawn around the playhead."""
from __future__ import annotations

import threading

import numpy as np
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
