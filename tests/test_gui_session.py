"""The session model on its own (no Qt): ranges, clamping, events, selection, playhead, display."""
from __future__ import annotations

import numpy as np
import pytest

from engine.align import Alignment
from gui.session import MIN_SPAN_S, DisplaySpectrogram, LoadedPair, NoteTable, Session


def _pair(midi_s=40.0, audio_s=50.0, pitches=(60, 64, 67), drum=False) -> LoadedPair:
    n = len(pitches) + int(drum)
    start_midi = np.linspace(0, midi_s - 2, n)
    start_audio = start_midi * audio_s / midi_s
    notes = NoteTable(start_midi, start_midi + 1, start_audio, start_audio + 1.25,
                      np.array(list(pitches) + ([36] if drum else []), dtype=np.int16), np.full(n, 80, np.int16),
                      np.zeros(n, np.int16), np.array([False] * len(pitches) + ([True] if drum else [])),
                      ["Piano"], [0])
    spec = DisplaySpectrogram(np.zeros((3, 4), np.float32), np.array([60.0, 61.0, 62.0]), np.arange(4) * 0.1)
    alignment = Alignment(path_midi_s=np.linspace(0, midi_s, 50), path_audio_s=np.linspace(0, audio_s, 50),
                          confidence=0.9, midi_duration_s=midi_s, audio_duration_s=audio_s, midi=None)
    return LoadedPair("a.mid", "a.wav", alignment, spec, notes,
                      np.array([0.0, audio_s]), np.array([midi_s / audio_s] * 2))


def _recorder(event):
    seen = []
    event.connect(seen.append)
    return seen


def test_set_pair_fits_the_whole_piece_and_the_pitch_range():
    s = Session()
    ranges = _recorder(s.events.view_range_changed)
    pitches = _recorder(s.events.pitch_range_changed)
    s.set_pair(_pair(audio_s=50.0, pitches=(50, 80)))
    assert s.view_range_s[0] <= 0.0 and s.view_range_s[1] >= 50.0
    assert ranges and ranges[-1] == s.view_range_s
    low, high = s.pitch_range
    assert low <= 49.5 and high >= 80.5 and high - low < 40
    assert pitches[-1] == s.pitch_range


def test_zoom_keeps_the_anchor_in_place_and_clamps():
    s = Session()
    s.set_pair(_pair(audio_s=100.0))
    s.set_view_range(10.0, 30.0)
    s.zoom(2.0, anchor_s=15.0)
    start, end = s.view_range_s
    assert end - start == pytest.approx(10.0)
    assert (15.0 - start) / (end - start) == pytest.approx(0.25)  # 15 s was a quarter in; still is
    for _ in range(40):
        s.zoom(4.0)
    assert s.view_range_s[1] - s.view_range_s[0] == pytest.approx(MIN_SPAN_S)
    for _ in range(40):
        s.zoom(0.25)
    lo, hi = s.time_extent_s
    assert s.view_range_s[0] >= lo - 0.03 * hi and s.view_range_s[1] <= hi * 1.03


def test_pan_stops_at_the_ends_and_events_fire_only_on_change():
    s = Session()
    s.set_pair(_pair(audio_s=100.0))
    s.set_view_range(0.0, 10.0)
    seen = _recorder(s.events.view_range_changed)
    s.pan(0.5)
    assert s.view_range_s == pytest.approx((5.0, 15.0))
    for _ in range(100):
        s.pan(1.0)
    assert s.view_range_s[1] <= 100.0 * 1.021
    n_events = len(seen)
    s.pan(1.0)  # already at the end: nothing changes, nothing fires
    assert len(seen) == n_events


def test_cursor_playhead_and_selection_events():
    s = Session()
    s.set_pair(_pair())
    cursor = _recorder(s.events.cursor_moved)
    playhead = _recorder(s.events.playhead_moved)
    selection = _recorder(s.events.selection_changed)
    s.set_cursor(3.0)
    s.set_cursor(3.0)
    s.set_cursor(None)
    assert cursor == [3.0, None]
    s.playhead_s = 7.5
    assert s.playhead_s == 7.5 and playhead == [7.5]
    s.set_selection(12.0, 4.0)
    assert s.selection_s == (4.0, 12.0) and selection == [(4.0, 12.0)]
    assert s.zoom_to_selection()
    assert s.view_range_s == pytest.approx((4.0, 12.0))
    s.set_selection(None)
    assert s.selection_s is None and not s.zoom_to_selection()


def test_display_options_and_unwarped_extent():
    s = Session()
    s.set_pair(_pair(midi_s=80.0, audio_s=50.0))
    options = _recorder(s.events.display_changed)
    assert s.time_extent_s[1] == pytest.approx(50.0, abs=0.5)
    s.set_display(show_warped=False)
    assert options[-1].show_warped is False
    assert s.time_extent_s[1] >= 80.0  # the unwarped MIDI is longer than the recording
    s.set_display(show_warped=False)
    assert len(options) == 1
    with pytest.raises(ValueError):
        s.set_display(note_colour="rainbow")


def test_pitch_zoom_is_clamped_to_the_piano():
    s = Session()
    s.set_pair(_pair())
    for _ in range(30):
        s.zoom_pitch(0.5)
    low, high = s.pitch_range
    assert low >= 20.5 and high <= 108.5
    for _ in range(30):
        s.zoom_pitch(2.0, anchor=64.0)
    assert s.pitch_range[1] - s.pitch_range[0] == pytest.approx(6.0)


def test_the_aligned_pair_keeps_the_view_chosen_during_its_preview():
    from dataclasses import replace

    s = Session()
    preview = replace(_pair(midi_s=40.0, audio_s=40.0), aligned=False)
    s.set_pair(preview)
    assert s.view_range_s[1] >= 40.0
    # untouched since the preview's fit: the aligned pair is fitted anew (it is longer)
    s.set_pair(_pair(midi_s=40.0, audio_s=60.0), keep_view=True)
    assert s.view_range_s[1] >= 60.0
    # zoomed in while aligning: the aligned pair keeps that range (and the pitch range)
    s.set_pair(preview)
    s.set_view_range(10.0, 20.0)
    s.set_pitch_range(60.0, 72.0)
    s.set_pair(_pair(midi_s=40.0, audio_s=60.0), keep_view=True)
    assert s.view_range_s == pytest.approx((10.0, 20.0)) and s.pitch_range == pytest.approx((60.0, 72.0))
    # without keep_view (another pair), everything is fitted
    s.set_pair(_pair(midi_s=40.0, audio_s=60.0))
    assert s.view_range_s[1] >= 60.0
