"""The online score follower (engine/follow.py, engine/oltw.py, engine/follow_features.py) and
`earworm follow`.

The performance is the generated rich MIDI rendered with another soundfont through a known,
wobbling tempo warp (tests/midi_fixtures.py); the follower must track it chunk by chunk. The
only fake is the sound card (a stand-in input stream for the microphone follower).
"""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

from engine import media
from engine.cli import main
from engine.errors import DeviceError
from engine.follow import (FollowParams, MicrophoneFollower, ScoreFollower, follow_file, follow_reference,
                          follow_samples, least_squares_slope, path_carried_forward, path_slope)
from engine.follow_features import SoundStart, StreamFeatureParams, StreamingFeatures, stream_features
from engine.follow_microphone import StreamResampler
from engine.follow_parts import PartPresence, ReferenceParts
from engine.oltw import OnlineTimeWarping
from tests.fake_sound_card import FakeInputStream, FakeMicrophone, room_tone
from tests.midi_fixtures import render_warped, write_rich_midi

SLOW_FACTOR = 1.12


def perf_warp(t):
    """MIDI seconds → performance seconds: 12 % slower with a ±0.4 s wobble."""
    return SLOW_FACTOR * np.asarray(t) + 0.4 * np.sin(np.asarray(t) / 3.0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("follow")
    midi_path = write_rich_midi(d / "piece.mid", seed=3, bars=10)
    midi = media.load_midi(midi_path)
    audio_path = render_warped(midi, perf_warp, d / "performance.wav")
    return str(midi_path), str(audio_path), midi


def position_errors_s(midi, audio_time_s, midi_time_s):
    """|true audio time of the reported MIDI position − the audio time it was reported at|."""
    inside = audio_time_s <= perf_warp(midi.get_end_time())
    return np.abs(perf_warp(midi_time_s) - audio_time_s)[inside]


def test_follower_tracks_a_warped_performance(pair):
    midi_path, audio_path, midi = pair
    trace = follow_file(midi_path, audio_path, chunk_s=0.02)
    n_expected = int(np.ceil(media.audio_duration(audio_path) / 0.02))
    assert len(trace.audio_time_s) == n_expected
    assert np.allclose(np.diff(trace.audio_time_s)[:-1], 0.02, atol=1e-6)
    err = position_errors_s(midi, trace.audio_time_s, trace.midi_time_s)
    assert np.median(err) < 0.05
    assert np.mean(err <= 0.1) > 0.85
    # The tempo model found the performance's pace (the MIDI runs 1/1.12 as fast).
    steps = np.diff(trace.midi_time_s[len(trace.midi_time_s) // 4:])
    assert np.mean(steps) == pytest.approx(0.02 / SLOW_FACTOR, rel=0.1)
    # The reported position does not jitter backwards: small doubts are held, only lasting
    # corrections move it back.
    assert np.mean(np.diff(trace.midi_time_s) < -1e-9) < 0.01


def test_positions_do_not_depend_on_the_chunk_size(pair):
    midi_path, audio_path, midi = pair
    follower = ScoreFollower(midi_path)
    y = media.load_audio(audio_path, sr=follower.sr)[: follower.sr * 8]
    small = follow_samples(follower, y, chunk_s=0.02)
    large = follow_samples(follower, y, chunk_s=0.04)
    common = np.intersect1d(np.round(small.audio_time_s, 4), np.round(large.audio_time_s, 4))
    assert len(common) > 100
    at_small = np.interp(common, small.audio_time_s, small.midi_time_s)
    at_large = np.interp(common, large.audio_time_s, large.midi_time_s)
    # Same frames, same path: only the extrapolation past the last frame may differ (< 1 hop).
    assert np.max(np.abs(at_small - at_large)) < follower.frame_s + 1e-6


def test_streaming_features_equal_the_whole_signal_features():
    rng = np.random.default_rng(1)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(22050 * 2) / 22050)
    y = (tone + 0.01 * rng.standard_normal(44100)).astype(np.float32)
    whole = stream_features(y)
    extractor = StreamingFeatures()
    parts, pos = [], 0
    while pos < len(y):
        n = int(rng.integers(1, 1500))
        parts.append(extractor.push(y[pos:pos + n]))
        pos += n
    chunked = np.concatenate(parts)
    assert chunked.shape == whole.shape == (len(y) // StreamFeatureParams().hop_length, 25)
    assert np.allclose(chunked, whole, atol=1e-5)
    # The A4 tone shows up in chroma class A (9), and both blocks are unit-norm times their weight.
    assert np.argmax(whole[50:, :12].mean(axis=0)) == 9
    params = StreamFeatureParams()
    assert np.allclose(np.linalg.norm(whole[:, :12], axis=1), np.sqrt(params.chroma_weight), atol=1e-4)
    assert np.allclose(np.linalg.norm(whole[:, 12:], axis=1), np.sqrt(params.onset_weight), atol=1e-4)


def _block_normalised(rng, n):
    X = rng.random((n, 25)).astype(np.float32) ** 4  # peaky, like real chroma
    X[:, :12] /= np.linalg.norm(X[:, :12], axis=1, keepdims=True)
    X[:, 12:] /= np.linalg.norm(X[:, 12:], axis=1, keepdims=True)
    return X


def test_oltw_follows_tempo_changes_with_bounded_work():
    rng = np.random.default_rng(0)
    X = _block_normalised(rng, 600)
    # The live sequence plays the reference at 0.8× for 200 frames, then at 1.25×.
    ref_pos = np.concatenate([np.arange(0, 160, 0.8), 160 + np.arange(0, 430, 1.25)])
    Y = X[np.round(ref_pos).astype(int)] + 0.05 * rng.random((len(ref_pos), 25)).astype(np.float32)
    oltw = OnlineTimeWarping(X, weight_sum=2.0, window_frames=60, max_run=3, penalty=0.1, open_start_frames=1)
    found = np.array([oltw.push(y) for y in Y])
    cells = []
    errors = np.abs(found - ref_pos)
    assert np.median(errors) <= 1.0
    assert np.mean(errors <= 3) > 0.95
    # Work per frame is bounded by the band: a row and at most max_run + 1 columns of c cells.
    oltw2 = OnlineTimeWarping(X, weight_sum=2.0, window_frames=60, max_run=3, penalty=0.1, open_start_frames=1)
    for y in Y:
        oltw2.push(y)
        cells.append(oltw2.last_cells)
    assert max(cells[1:]) <= 60 * (3 + 2)


def test_the_path_traced_back_lies_on_the_performance_one_position_per_live_frame():
    """After a tempo change the path to the newest best cell, traced back (what the tempo model
    reads), lies on the performance at least as closely as the best cells reported frame by
    frame; it has one position per live frame since the (re)start (at most the band's rows), ends
    at the reported position and never runs backwards."""
    rng = np.random.default_rng(0)
    X = _block_normalised(rng, 150)[np.repeat(np.arange(150), 6)]  # sustained: each chord 6 frames
    truth = np.concatenate([np.arange(200.0), 200.0 + 1.3 * np.arange(1, 301)])  # 30 % faster from frame 200
    Y = X[np.round(truth).astype(int)] + 0.1 * rng.random((len(truth), 25)).astype(np.float32)
    oltw = OnlineTimeWarping(X, weight_sum=2.0, window_frames=150, max_run=3, penalty=0.3, open_start_frames=1)
    reported = np.array([oltw.push(y) for y in Y])  # rate stays 1: the path must step to keep up
    traced = oltw.path_positions(400)
    assert len(traced) == 151  # the band's rows: what the ring holds
    assert traced[-1] == oltw.position and np.all(np.diff(traced) >= 0)
    span = slice(len(truth) - len(traced), len(truth))
    hindsight_error = np.mean(np.abs(traced - truth[span]))
    assert hindsight_error < 1.0 and hindsight_error <= np.mean(np.abs(reported[span] - truth[span]))
    assert least_squares_slope(traced[-100:]) == pytest.approx(1.3, abs=0.01)
    oltw.restart(float(truth[-1]), open_frames=5)
    for y in Y[-3:]:
        oltw.push(y)
    assert len(oltw.path_positions(400)) == 3  # a restarted path begins at its restart


def test_path_slope_is_robust_to_a_jump_and_says_nothing_on_a_stall():
    positions = list(1.1 * np.arange(400.0))
    assert path_slope(positions, 344, spread=0.5) == pytest.approx(1.1)
    assert path_slope(positions[:100], 344, spread=0.5) == pytest.approx(1.1)  # early on: the path so far
    assert path_slope(positions[:8], 344, spread=0.5) is None  # too short to cut into pieces
    jumped = np.array(positions)
    jumped[350:] += 60.0  # one piece leaps (a correction): the median ignores it
    assert path_slope(list(jumped), 344, spread=0.5) == pytest.approx(1.1)
    half_stalled = np.concatenate([1.1 * np.arange(200.0), np.full(200, 219.0)])
    assert path_slope(list(half_stalled), 344, spread=0.5) is None


def test_a_path_carried_forward_is_its_newest_position_with_single_cells_noise_averaged_out():
    straight = 40.0 + 1.1 * np.arange(26.0)
    assert path_carried_forward(straight, 1.1) == pytest.approx(straight[-1])
    jittered = straight.copy()
    jittered[-1] += 2.0  # the newest cell two frames off: a 26th of it is left
    assert path_carried_forward(jittered, 1.1) == pytest.approx(straight[-1] + 2.0 / 26)
    noisy = straight + np.random.default_rng(0).normal(0.0, 1.0, 26)
    assert abs(path_carried_forward(noisy, 1.1) - straight[-1]) < 0.5


def test_the_reported_position_is_smoothed_by_the_path_behind_it(pair):
    midi_path, audio_path, midi = pair
    traces = {s: follow_file(midi_path, audio_path, FollowParams(report_smooth_s=s), chunk_s=0.02) for s in (0.0, 0.3)}
    median_error_s = {s: np.median(position_errors_s(midi, t.audio_time_s, t.midi_time_s)) for s, t in traces.items()}
    quarter = len(traces[0.0].midi_time_s) // 4
    jitter_s = {s: np.std(np.diff(t.midi_time_s[quarter:-quarter], 2)) for s, t in traces.items()}
    assert median_error_s[0.3] < median_error_s[0.0]
    assert jitter_s[0.3] < 0.85 * jitter_s[0.0]
    with pytest.raises(ValueError):
        FollowParams(report_smooth_s=-0.1)


def _follower_fed_paths(pair, max_change, seed, lead_s=0.0):
    """A follower whose tempo model is fed made-up paths (``max_change=None``: no anchor; the
    model's own ratio unless ``lead_s`` carries it ahead)."""
    params = FollowParams(tempo_max_change=10.0 if max_change is None else max_change, tempo_lead_s=lead_s)
    reference = _block_normalised(np.random.default_rng(seed), 4000)
    return ScoreFollower(pair[2], params, reference=reference), params


@pytest.mark.parametrize("max_change", [0.15, None])
def test_the_tempo_model_follows_a_change_but_a_stall_does_not_drag_it_down(pair, max_change):
    follower, params = _follower_fed_paths(pair, max_change, seed=6)
    frames_per_s = 1.0 / follower.frame_s

    path = []
    longest = max(follower._tempo_frames, follower._anchor_frames) + 1

    def feed_path(slope, seconds, position):
        for _ in range(int(round(seconds * frames_per_s))):
            position += slope
            path.append(position)
            follower._update_tempo(path[-longest:])
        return position

    position = feed_path(0.9, 12.0, 0.0)
    assert follower.tempo_ratio == pytest.approx(0.9)
    position = feed_path(0.99, 4.0, position)  # 10 % faster: followed within 4 s (an 8 s model is halfway)
    assert follower.tempo_ratio == pytest.approx(0.99, abs=0.005)
    position = feed_path(0.0, 6.0, position)  # the path stalls for longer than the window
    if max_change is None:  # without the anchor the stall reads as the slowest tempo allowed
        assert follower.tempo_ratio == pytest.approx(params.tempo_range[0])
        return
    # Held within 15 % of the slope over the 12 s before the stall (0.9 to 0.99) ...
    assert 0.85 * 0.9 - 1e-9 <= follower.tempo_ratio <= 0.85 * 0.99 + 1e-9
    held = follower.tempo_ratio
    feed_path(0.0, 10.0, position)  # ... even once the stall fills most of the anchor's 12 s
    assert follower.tempo_ratio == pytest.approx(held)


def test_the_tempo_lead_catches_up_with_a_gradual_change_and_adds_nothing_to_a_steady_tempo(pair):
    # 6 s steady, then an accelerando of 1 % per second for 8 s: the model's slope over 3 s lags
    # it by ~1.5 s (1.5 %); carried 1.5 s ahead along its own trend it is on time. Then a sudden
    # change of 10 %, whose steep trend the cap must hold.
    def tempo_now(t_s):
        return 1.0 + 0.01 * min(max(0.0, t_s - 6.0), 8.0) + (0.1 if t_s >= 14.0 else 0.0)

    def ratios(lead_s):
        follower, params = _follower_fed_paths(pair, 0.15, seed=8, lead_s=lead_s)
        longest = max(follower._tempo_frames, follower._anchor_frames) + 1
        path, position, out, truth = [], 0.0, [], []
        for k in range(int(round(18.0 / follower.frame_s))):
            slope = tempo_now(k * follower.frame_s)
            position += slope
            path.append(position)
            follower._update_tempo(path[-longest:])
            out.append(follower.tempo_ratio)
            truth.append(slope)
        return np.array(out), np.array(truth), follower, params

    assert FollowParams().tempo_lead_s > 0
    led, truth, follower, params = ratios(FollowParams().tempo_lead_s)
    plain, _, _, _ = ratios(0.0)

    def at(t_s):
        return int(round(t_s / follower.frame_s))

    steady = slice(at(5.0), at(6.0))
    assert led[steady] == pytest.approx(1.0) and plain[steady] == pytest.approx(1.0)
    ramp = slice(at(10.0), at(14.0))
    plain_error, led_error = (np.mean(np.abs(r[ramp] / truth[ramp] - 1)) for r in (plain, led))
    assert plain_error > 0.01 and led_error < 0.3 * plain_error
    # Never more than tempo_lead_max from the model's own ratio (the same model, fed the same
    # path), and the sudden change does reach that bound.
    change = np.abs(led / plain - 1)
    assert np.all(change <= params.tempo_lead_max + 1e-9)
    assert change[at(14.0):].max() == pytest.approx(params.tempo_lead_max)


def test_in_a_held_note_the_report_coasts_at_the_tempo_until_the_path_crosses_the_next_onset(tmp_path):
    """Far enough past the last onset of the parts followed, the path's moves within a held note do
    not move the report: it goes on at the tempo model's rate until the path crosses the next
    onset. Near an onset, across one, or with coasting off, the path is followed as before; the
    onsets of a part left out do not count."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano, strings = pretty_midi.Instrument(0, name="piano"), pretty_midi.Instrument(48, name="strings")
    piano.notes += [pretty_midi.Note(90, 60 + k, 0.5 * k, 0.5 * k + 0.4) for k in range(3)]
    piano.notes += [pretty_midi.Note(90, p, 1.5, 4.5) for p in (60, 64, 67)]  # held 3 s
    piano.notes.append(pretty_midi.Note(90, 72, 4.5, 5.0))
    strings.notes.append(pretty_midi.Note(80, 55, 3.0, 4.5))  # the one onset inside the held chord
    midi.instruments += [piano, strings]
    path = tmp_path / "held.mid"
    midi.write(str(path))
    follower = ScoreFollower(str(path))
    assert follower.parts is not None and follower.params.coast_after_s == 0.4
    follower._oltw.rate = 0.9
    frame_s = follower.frame_s
    onset_s = lambda t: t + frame_s  # noqa: E731 (an onset as a reported position)

    def advance(position_s, raw_s):
        follower._frame_position_s = position_s
        follower._advance_reported(raw_s)
        return follower._frame_position_s

    held = onset_s(1.5) + 0.5
    assert advance(held, held + 0.2) == pytest.approx(held + 0.9 * frame_s)  # the path's move: not followed
    assert advance(held, held - 0.1) == pytest.approx(held + 0.9 * frame_s)  # nor a small step back
    before = onset_s(3.0) - 0.2
    assert advance(before, onset_s(3.0) + 0.05) == pytest.approx(onset_s(3.0) + 0.05)  # across the strings' onset
    assert advance(onset_s(1.5) + 0.1, onset_s(1.5) + 0.2) == pytest.approx(onset_s(1.5) + 0.2)  # near an onset
    waiting = onset_s(3.0) - 0.3 * frame_s  # carried on, it would cross an onset the path has not reached
    assert advance(waiting, waiting - 0.05) == pytest.approx(waiting)  # it waits before it
    follower.playing = np.array([True, False])  # the strings left out: their onset is no evidence
    late = onset_s(3.0) - 0.1
    assert advance(late, onset_s(3.0) + 0.2) == pytest.approx(late + 0.9 * frame_s)
    follower.params = dataclasses.replace(follower.params, coast_after_s=0.0)
    assert advance(held, held + 0.2) == pytest.approx(held + 0.2)
    with pytest.raises(ValueError):
        FollowParams(coast_after_s=-1.0)


def test_tempo_parameters_are_checked():
    with pytest.raises(ValueError):
        FollowParams(tempo_max_change=-0.1)
    with pytest.raises(ValueError):
        FollowParams(tempo_anchor_s=-1.0)
    with pytest.raises(ValueError):  # the path is traced back at most window_s
        FollowParams(tempo_anchor_s=20.0, window_s=16.0)
    with pytest.raises(ValueError, match="tempo_lead_s"):
        FollowParams(tempo_lead_s=-1.0)
    with pytest.raises(ValueError, match="tempo_trend_s"):
        FollowParams(tempo_trend_s=0.0)
    with pytest.raises(ValueError, match="parts_chroma_gamma"):
        FollowParams(parts_chroma_gamma=0.0)
    assert FollowParams(parts_chroma_gamma=None).parts_chroma_gamma is None


@pytest.mark.parametrize("max_change", [0.15, None])
def test_a_leap_of_the_path_inside_the_window_moves_the_tempo_only_as_far_as_the_anchor_allows(pair, max_change):
    # A leap within one of the pieces passes their spread test; the least-squares slope takes it
    # in, and the anchor (the pieces' median over 12 s) bounds it.
    follower, params = _follower_fed_paths(pair, max_change, seed=7)
    n_steady = int(round(12.0 / follower.frame_s))
    path = list(1.1 * np.arange(n_steady + 50.0))
    path += list(path[-1] + 60.0 + 1.1 * np.arange(1, 51))  # 60 frames ahead, then on at 1.1
    longest = max(follower._tempo_frames, follower._anchor_frames) + 1
    follower._update_tempo(path[-longest:])
    assert path_slope(path[-longest:], follower._tempo_frames, params.tempo_spread) == pytest.approx(1.1)
    if max_change is None:
        assert follower.tempo_ratio > 1.2  # the leap pulls the fitted slope up
    else:
        assert 1.1 < follower.tempo_ratio <= 1.1 * 1.15 + 1e-9


def test_open_start_finds_a_performance_that_begins_late():
    rng = np.random.default_rng(2)
    X = _block_normalised(rng, 500)
    start = 70
    Y = X[start:start + 200] + 0.05 * rng.random((200, 25)).astype(np.float32)
    oltw = OnlineTimeWarping(X, weight_sum=2.0, window_frames=100, penalty=0.1, start_cost=0.001)
    found = np.array([oltw.push(y) for y in Y])
    assert np.all(np.abs(found[20:] - (start + np.arange(20, 200))) <= 1)


def test_the_open_start_is_laid_at_the_rate_and_path_costs_tell_the_tempo():
    """A path started at the performer's tempo is diagonal from its first frame (the open start's
    columns step by ``rate`` too) and costs less than one laid at the MIDI's own tempo."""
    rng = np.random.default_rng(7)
    X = _block_normalised(rng, 800)
    start, pace = 90, 2.0  # begins beyond the open start's 60 columns at rate 1, played twice as fast
    ref_pos = start + pace * np.arange(300)
    Y = X[np.round(ref_pos).astype(int)] + 0.05 * rng.random((300, 25)).astype(np.float32)
    paths = {}
    for rate in (1.0, pace):
        oltw = OnlineTimeWarping(X, weight_sum=2.0, window_frames=200, max_run=3, penalty=0.3,
                                 open_start_frames=60, start_cost=0.001)
        oltw.rate = rate
        assert oltw.best_cost == np.inf  # nothing matched yet
        paths[rate] = (oltw, np.array([oltw.push(y) for y in Y]))
    at_pace, at_one = paths[pace], paths[1.0]
    assert abs(at_pace[1][0] - start) <= 1   # 90 lies within 60 columns of 2 frames
    assert at_one[1][0] < 60                 # but not within 60 columns of 1 frame
    assert np.all(np.abs(at_pace[1] - ref_pos) <= pace + 0.5)  # within a column (and rounding)
    assert at_pace[0].best_cost < at_one[0].best_cost - 0.05


def test_a_restart_opens_only_a_narrow_span_at_the_proposed_position():
    rng = np.random.default_rng(5)
    X = _block_normalised(rng, 800)
    Y = X[400:600] + 0.05 * rng.random((200, 25)).astype(np.float32)
    oltw = OnlineTimeWarping(X, weight_sum=2.0, window_frames=200, penalty=0.1, start_cost=0.001)
    oltw.restart(300.0, open_frames=40)  # a proposal 100 frames off: the truth is outside the span
    first = oltw.push(Y[0])
    assert 300 <= first < 340
    oltw.restart(390.0, open_frames=40)  # the truth (400) is inside: found at once, then followed
    found = np.array([oltw.push(y) for y in Y])
    assert abs(found[0] - 400) <= 1 and np.all(np.abs(found[10:] - (400 + np.arange(10, 200))) <= 1)


def test_relocator_finds_a_performance_the_band_has_lost():
    from engine.follow_relocate import Relocator

    rng = np.random.default_rng(4)
    X = _block_normalised(rng, 2000)
    rel = Relocator(X, weight_sum=2.0, window_frames=200, factor=4, min_jump_frames=100, max_ahead_frames=1600,
                    max_back_frames=400)
    truth = 1300 + np.arange(200)
    for k in truth:
        rel.add(X[k] + 0.05 * rng.random(25).astype(np.float32))
    proposal = rel.propose(current_frame=300.0)  # the tracker thinks it is 1000 frames behind
    assert proposal is not None and abs(proposal - truth[-1]) <= 4
    assert rel.propose(current_frame=float(truth[-1] - 20)) is None  # close enough: its band will fix it
    assert rel.propose(current_frame=float(truth[-1] + 600)) is None  # the truth lies further back than searched
    rel.from_start = True  # (the follower's first seconds: its open start may have placed it far too late)
    proposal = rel.propose(current_frame=float(truth[-1] + 600))
    assert proposal is not None and abs(proposal - truth[-1]) <= 4


def test_the_window_lag_is_corrected_at_the_followed_tempo(tmp_path):
    """Played 25 % slower than the MIDI, the uncorrected position runs ahead by the features'
    window lag × (1 − 1/1.25) (~17 ms of MIDI); corrected, the signed error is centred."""
    midi_path = write_rich_midi(tmp_path / "slow.mid", seed=8, bars=10)
    midi = media.load_midi(midi_path)
    factor = 1.25
    audio_path = render_warped(midi, lambda t: factor * np.asarray(t), tmp_path / "slow.wav")

    def signed_median_s(lag_correction):
        trace = follow_file(midi_path, audio_path, FollowParams(lag_correction=lag_correction), chunk_s=0.02)
        inside = (trace.audio_time_s > 5.0) & (trace.audio_time_s <= factor * midi.get_end_time())
        return float(np.median(factor * trace.midi_time_s[inside] - trace.audio_time_s[inside]))

    uncorrected, corrected = signed_median_s(False), signed_median_s(True)
    expected_shift_s = factor * StreamFeatureParams().window_lag_s * (1 - 1 / factor)  # in performance seconds
    assert uncorrected - corrected == pytest.approx(expected_shift_s, abs=0.008)
    assert abs(corrected) < abs(uncorrected)


def test_a_tempo_hypothesis_takes_over_a_performance_far_from_the_midis_tempo(tmp_path):
    """Played 25 % slower than the MIDI, the path laid at the MIDI's tempo lags and leaps until
    the tempo model has a right path to learn from; the hypothesis at 0.85 takes over early."""
    midi_path = write_rich_midi(tmp_path / "slow.mid", seed=3, bars=10)
    midi = media.load_midi(midi_path)
    factor = 1.25
    audio_path = render_warped(midi, lambda t: factor * np.asarray(t), tmp_path / "slow.wav")

    def first_seconds(hypotheses):
        follower = ScoreFollower(midi_path, FollowParams(tempo_hypotheses=hypotheses))
        trace = follow_samples(follower, media.load_audio(audio_path, sr=follower.sr), 0.02)
        early = trace.audio_time_s <= 8.0
        err = np.abs(factor * trace.midi_time_s[early] - trace.audio_time_s[early])
        return float(np.median(err)), follower.tempo_switches

    single, no_switch = first_seconds(())
    raced, switches = first_seconds(FollowParams().tempo_hypotheses)
    assert no_switch == 0 and switches >= 1
    assert raced < 0.03 and raced < 0.6 * single


def test_near_silent_chroma_fades_into_flat_without_a_jump():
    """Silence gives a flat chroma; a faint note just above or just below where the old hard
    switch to "flat" sat (a compressed mass of 1e-3) gives nearly the same frame."""
    params = StreamFeatureParams()

    def chroma_after_a_loud_frame(energies):
        extractor = StreamingFeatures(params)
        onsets = np.zeros((2, 72), dtype=np.float32)
        frames = extractor.finish_energies(np.vstack([np.ones(12), energies]).astype(np.float32), onsets)
        return frames[1, :12] / np.sqrt(params.chroma_weight)

    silent = chroma_after_a_loud_frame(np.zeros(12))
    assert np.allclose(silent, 1 / np.sqrt(12), atol=1e-6)
    below, above = (chroma_after_a_loud_frame(np.eye(12)[3] * x) for x in (0.9e-3, 1.1e-3))
    assert np.abs(below - above).max() < 0.05
    assert below[3] > 0.9 and above[3] > 0.9  # the faint note still shows


def sound_start_frame(y, chunk: int = 441, **kwargs):
    """Feed ``y`` to a SoundStart (the follower's settings) in chunks; the frame it says the sound starts at."""
    detector = SoundStart(**dict(dict(hop_length=256, window_length=1102, rise_db=10.0, level_dbfs=-35.0,
                                      memory_frames=172), **kwargs))
    for k in range(0, len(y), chunk):
        detector.push(y[k:k + chunk])
    return detector.start_frame


def test_the_sound_start_is_the_first_frame_clearly_above_the_room():
    sr, hop = 22050, 256
    t = np.arange(int(1.0 * sr)) / sr
    for note_dbfs in (-20.0, -42.0):  # loud, and quiet but 13 dB above the room
        note = (np.sqrt(2.0) * 10.0 ** (note_dbfs / 20.0) * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        frame = sound_start_frame(np.concatenate([room_tone(1.5, -55.0), note]))
        assert frame is not None and abs((frame + 1) * hop / sr - 1.5) < 0.03
    # The room alone, however long, is no start; nor is a DC offset; nor the noise after digital
    # silence (a driver opening the input): it is the room, not a rise.
    assert sound_start_frame(room_tone(6.0, -55.0)) is None
    assert sound_start_frame(np.full(sr, 0.2, dtype=np.float32)) is None
    assert sound_start_frame(np.concatenate([np.zeros(sr // 2, np.float32), room_tone(2.0, -55.0)])) is None
    # Loud from the first samples: the first frame.
    assert sound_start_frame(room_tone(0.5, -20.0)) == 0


def test_the_follower_waits_for_the_performance_through_the_rooms_noise(pair):
    """1.5 s of room noise before the performance: the follower stays at the start until the
    first notes, then follows as if the recording began there. Without waiting, the noise is
    matched somewhere in the score and the first seconds are lost."""
    midi_path, audio_path, midi = pair
    lead_s = 1.5

    def follow_after_the_room(params):
        follower = ScoreFollower(midi_path, params)
        y = np.concatenate([room_tone(lead_s, -60.0, follower.sr), media.load_audio(audio_path, sr=follower.sr)])
        trace = follow_samples(follower, y, chunk_s=0.02)
        audio_s, midi_s = trace.after(lead_s)
        err = position_errors_s(midi, audio_s, midi_s)
        in_room = trace.midi_time_s[: len(trace.midi_time_s) - len(midi_s)]  # the chunks before the recording's
        return follower, in_room, err, audio_s[: len(err)]

    follower, in_room, err, t = follow_after_the_room(FollowParams())
    assert follower.performance_start_s == pytest.approx(lead_s, abs=0.03)
    assert np.all(in_room == 0.0)
    assert np.mean(err[t < 4.0] <= 0.1) > 0.9
    assert np.mean(err <= 0.1) > 0.9
    unwaiting, in_room, err_unwaiting, t = follow_after_the_room(FollowParams(start_rise_db=None))
    assert unwaiting.performance_start_s == 0.0
    assert in_room.max() > 0.3  # the noise moved it
    assert np.mean(err_unwaiting[t < 4.0] <= 0.1) < np.mean(err[t < 4.0] <= 0.1) - 0.1
    # Told where the player starts, it waits there.
    told = ScoreFollower(midi_path, FollowParams(), start_s=5.0)
    assert [told.push(chunk) for chunk in np.split(room_tone(1.0, -60.0, told.sr), 50)] == [told.position_s] * 50
    assert told.position_s == pytest.approx(5.0, abs=told.frame_s) and told.performance_start_s is None


def test_pianoroll_reference_follows_too(pair):
    midi_path, audio_path, midi = pair
    trace = follow_file(midi_path, audio_path, FollowParams(reference="pianoroll"), chunk_s=0.04)
    err = position_errors_s(midi, trace.audio_time_s, trace.midi_time_s)
    assert np.median(err) < 0.1


def test_cli_writes_one_position_per_chunk(pair, tmp_path, capsys):
    midi_path, audio_path, _ = pair
    out = tmp_path / "positions.json"
    assert main(["follow", midi_path, audio_path, "--simulate", "--json", str(out), "--chunk-ms", "40"]) == 0
    data = json.loads(out.read_text())
    positions = data["positions"]
    assert len(positions) == int(np.ceil(media.audio_duration(audio_path) / 0.04))
    assert set(positions[0]) == {"audio_time", "midi_time", "compute_ms"}
    audio_t = np.array([p["audio_time"] for p in positions])
    assert np.allclose(audio_t[:10], 0.04 * np.arange(1, 11), atol=1e-4)
    assert all(p["compute_ms"] >= 0 for p in positions)
    assert "positions over" in capsys.readouterr().out


def test_cli_says_when_the_performance_starts_and_can_follow_from_the_first_sample(pair, tmp_path, capsys):
    import soundfile as sf

    midi_path, audio_path, _ = pair
    y = media.load_audio(audio_path, sr=22050)
    recording = tmp_path / "after_the_room.wav"
    sf.write(recording, np.concatenate([room_tone(1.0, -60.0), y]), 22050)
    out = tmp_path / "positions.json"
    assert main(["follow", midi_path, str(recording), "--simulate", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["performance_start"] == pytest.approx(1.0, abs=0.03)
    assert "the performance starts 1.0" in capsys.readouterr().out
    assert main(["follow", midi_path, str(recording), "--simulate", "--json", str(out), "--no-wait"]) == 0
    assert json.loads(out.read_text())["performance_start"] == 0.0
    sf.write(recording, room_tone(2.0, -60.0), 22050)  # nothing but the room
    assert main(["follow", midi_path, str(recording), "--simulate", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["performance_start"] is None and {p["midi_time"] for p in data["positions"]} == {0.0}
    assert "no performance heard" in capsys.readouterr().out


def test_cli_reports_bad_input(tmp_path, capsys):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"not a midi")
    assert main(["follow", str(bad), str(tmp_path / "x.wav"), "--simulate"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "broken.mid" in err and "\n" == err[-1] and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        main(["follow"])
    assert exc.value.code == 2


# ---- the microphone follower over a fake sound card --------------------------------------------
# (FakeInputStream lives with the other sound card stand-ins; tests/test_gui_identify.py imports it from here.)


def test_stream_resampler_is_block_size_free_and_keeps_pitch_and_timing():
    sr_in, sr_out = 48000, 22050
    x = np.sin(2 * np.pi * 440.0 * np.arange(sr_in) / sr_in)
    whole = StreamResampler(sr_in, sr_out).process(x)
    resampler, parts, pos = StreamResampler(sr_in, sr_out), [], 0
    rng = np.random.default_rng(3)
    while pos < len(x):
        n = int(rng.integers(1, 3000))
        parts.append(resampler.process(x[pos:pos + n]))
        pos += n
    chunked = np.concatenate(parts)
    assert len(whole) == len(chunked) == sr_out  # one second in, one second out
    assert np.allclose(whole, chunked, atol=1e-6)
    # Same tone at the same time: the anti-aliasing filter delays 440 Hz by well under a millisecond.
    reference = np.sin(2 * np.pi * 440.0 * np.arange(sr_out) / sr_out)
    lags = [np.mean((whole[2000:-2000] - np.roll(reference, d)[2000:-2000]) ** 2) for d in range(-20, 21)]
    assert abs(int(np.argmin(lags)) - 20) <= 5 and min(lags) < 0.01
    # Above the output's Nyquist frequency, a tone is filtered out instead of folding down.
    high = StreamResampler(sr_in, sr_out).process(np.sin(2 * np.pi * 15000.0 * np.arange(sr_in) / sr_in))
    assert np.sqrt(np.mean(high[2000:] ** 2)) < 0.02
    # Upsampling and the same rate work too.
    assert len(StreamResampler(16000, sr_out).process(np.zeros(16000))) == pytest.approx(sr_out, abs=1)
    assert np.array_equal(StreamResampler(sr_out, sr_out).process(x[:100]), x[:100].astype(np.float32))


def test_microphone_opens_at_the_devices_own_rate(pair):
    import librosa

    midi_path, audio_path, midi = pair
    follower = ScoreFollower(midi_path)
    y = media.load_audio(audio_path, sr=follower.sr)[: follower.sr * 10]
    microphone = FakeMicrophone(librosa.resample(y, orig_sr=follower.sr, target_sr=48000), native_sr=48000)
    reported = []
    mic = MicrophoneFollower(follower, lambda a, m: reported.append((a, m)), stream_factory=microphone.input_stream,
                             query_devices=microphone.query_devices)
    mic.start()
    deadline = time.monotonic() + 30
    while len(reported) < len(microphone.samples) // mic.blocksize and time.monotonic() < deadline:
        time.sleep(0.05)
    mic.stop()
    assert microphone.refused == [] and microphone.streams[0].samplerate == mic.samplerate == 48000
    assert mic.blocksize == 960 and mic.error is None  # 20 ms at 48 kHz
    audio_t, midi_t = np.array(reported).T
    # The follower counts its own (resampled) samples: the audio clock is right.
    assert audio_t[-1] == pytest.approx(len(reported) * 0.02, abs=0.002)
    err = position_errors_s(midi, audio_t, midi_t)
    assert np.median(err) < 0.05
    # Asking for the follower's rate on this device is refused, with a readable reason.
    with pytest.raises(DeviceError) as exc:
        MicrophoneFollower(follower, lambda a, m: None, stream_factory=microphone.input_stream,
                           samplerate=follower.sr).start()
    assert "does not support this sample rate" in str(exc.value)


def test_microphone_without_an_input_device_is_a_device_error(pair):
    import sounddevice as sd

    def no_input(device, kind):
        raise sd.PortAudioError("Error querying device -1")

    mic = MicrophoneFollower(ScoreFollower(pair[0]), lambda a, m: None, stream_factory=lambda **kw: None,
                             query_devices=no_input)
    with pytest.raises(DeviceError) as exc:
        mic.start()
    assert "no sound device found" in str(exc.value) and not mic.running


def test_microphone_follower_follows_the_fake_input(pair):
    midi_path, audio_path, midi = pair
    follower = ScoreFollower(midi_path)
    y = media.load_audio(audio_path, sr=follower.sr)[: follower.sr * 10]
    reported = []
    streams = []

    def factory(**kwargs):
        streams.append(FakeInputStream(y, **kwargs))
        return streams[-1]

    mic = MicrophoneFollower(follower, lambda a, m: reported.append((a, m)), stream_factory=factory)
    mic.start()
    deadline = time.monotonic() + 30
    while len(reported) < len(y) // mic.blocksize and time.monotonic() < deadline:
        time.sleep(0.05)
    mic.stop()
    assert streams[0].closed and not mic.running and mic.error is None
    audio_t, midi_t = np.array(reported).T
    assert len(audio_t) == len(y) // mic.blocksize
    err = position_errors_s(midi, audio_t, midi_t)
    assert np.median(err) < 0.05


def test_microphone_errors_become_device_errors(pair):
    import sounddevice as sd

    follower = ScoreFollower(pair[0])

    def no_device(**kwargs):
        raise sd.PortAudioError("Error querying device -1")

    mic = MicrophoneFollower(follower, lambda a, m: None, stream_factory=no_device)
    with pytest.raises(DeviceError) as exc:
        mic.start()
    assert "no sound device found" in str(exc.value)
    assert not mic.running
    mic.stop()  # safe after a failed start


def test_part_presence_finds_the_parts_a_performance_leaves_out():
    """Live chroma energies made of parts 0 and 2 (at their own gains, plus a little noise): part 1
    is found missing, once every part has been heard long enough to judge; a part the path has not
    reached yet is never called missing."""
    rng = np.random.default_rng(4)
    n_frames = 600
    energies = rng.random((4, n_frames, 12)) ** 4
    energies[3, :400] = 0.0  # a late entry
    parts = ReferenceParts.from_energies(energies, rng.random((4, n_frames, 72)), part_of=[0, 1, 2, 3])
    presence = PartPresence(parts, threshold=0.1, min_heard_frames=50)
    assert presence.playing() is None and not presence.heard_playing().any()  # no evidence yet
    for i in range(300):
        live = 1.3 * energies[0, i] + 0.7 * energies[2, i] + 0.01 * rng.random(12)
        presence.add(live, i)
    assert presence.playing().tolist() == [True, False, True, True]
    assert presence.heard_playing().tolist() == [True, False, True, False]  # part 3: not heard yet
    presence.reset()
    assert presence.playing() is None and not presence.heard_playing().any()


def test_the_parts_make_the_whole_pianoroll_reference():
    """The piano-roll reference is linear in the notes, so the features of every part's energies
    summed are the whole MIDI's (up to the float16 the parts are kept in), and leaving a part out
    changes them."""
    import copy

    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    for program, pitches in ((0, (60, 64, 67)), (40, (72, 76)), (32, (36, 43))):
        inst = pretty_midi.Instrument(program)
        for k in range(12):
            inst.notes.append(pretty_midi.Note(90, pitches[k % len(pitches)], 0.5 * k, 0.5 * k + 0.45))
        midi.instruments.append(inst)
    params = FollowParams(reference="pianoroll")
    whole, parts = follow_reference(midi, params)
    assert parts is not None and parts.n_parts == 3 and parts.n_frames == len(whole)
    assert np.abs(parts.features([True, True, True], params.features) - whole).max() < 0.02
    without_strings = parts.features([True, False, True], params.features)
    sub = copy.copy(midi)
    sub.instruments = [midi.instruments[0], midi.instruments[2]]
    assert np.abs(without_strings - follow_reference(sub, params)[0]).max() < 0.02
    assert np.abs(without_strings - whole).max() > 0.3


@pytest.mark.parametrize("lead_s", [0.0, 1.0])
def test_follower_leaves_out_a_part_the_performance_lacks(tmp_path, lead_s):
    """A performance of the rich MIDI without its bass: the follower finds the bass missing, follows
    with piano and drums only, and tracks at least as well as with every part. After ``lead_s`` of
    room noise the change is reported in the stream's time (the performance started later)."""
    import copy

    midi_path = write_rich_midi(tmp_path / "band.mid", seed=5, bars=14)
    midi = media.load_midi(midi_path)
    no_bass = copy.deepcopy(midi)
    no_bass.instruments[1].notes = []
    audio_path = render_warped(no_bass, perf_warp, tmp_path / "no_bass.wav")
    follower = ScoreFollower(midi_path)
    y = media.load_audio(audio_path, sr=follower.sr)
    if lead_s:
        y = np.concatenate([room_tone(lead_s, -60.0, follower.sr), y])
    trace = follow_samples(follower, y, chunk_s=0.02)
    assert [inst.program for inst in midi.instruments][:2] == [0, 33]
    assert follower.instruments_playing.tolist() == [True, False, True]
    assert follower.part_switches >= 1
    # Without the bass, the path reads chroma compressed harder (parts_chroma_gamma), live and
    # reference alike; the global search keeps the shipped features.
    fp = follower.params.features
    harder = dataclasses.replace(fp, chroma_gamma=follower.params.parts_chroma_gamma)
    assert follower.params.parts_chroma_gamma > fp.chroma_gamma
    path_reference = follower.parts.features(follower.playing, harder)
    np.testing.assert_allclose(follower._oltw.reference, path_reference, atol=1e-6)
    searched = follower._relocator.pool(follower.parts.features(follower.playing, fp))
    np.testing.assert_allclose(follower._relocator.reference, searched, atol=1e-6)
    newest, newest_harder = follower._newest_frames
    assert np.abs(newest - newest_harder).max() > 0.01 and follower._path_frame is newest_harder
    np.testing.assert_array_equal(follower._relocator._recent[-1], newest)
    # `earworm follow --simulate --json` says when and which (the instruments by name).
    change = trace.to_json()["part_changes"][-1]
    assert change["left_out"] == ["bass"] and 3.0 + lead_s < change["audio_time"] < 0.9 * trace.audio_time_s[-1]
    err = position_errors_s(midi, *trace.after(lead_s))
    everything = follow_samples(ScoreFollower(midi_path, FollowParams(follow_parts=False)), y, 0.02)
    err_everything = position_errors_s(midi, *everything.after(lead_s))
    assert np.mean(err <= 0.1) >= np.mean(err_everything <= 0.1) - 0.01
    assert np.median(err) < 0.05


@pytest.mark.parametrize("chunk_s", [0.02, 0.05])
def test_a_performance_that_starts_far_into_the_piece_is_found_within_seconds(pair, chunk_s):
    """A recording cut in at 40 % of the piece, beyond the open start: the relocation search runs
    every ``relocate_every_s`` of performance (whatever the chunk size) from the first
    ``relocate_min_window_s``; the search at 4 s finds it and the one at 6 s confirms it, so the
    follower is on the performance within ~6 s."""
    midi_path, audio_path, midi = pair
    params = FollowParams(open_start_s=0.5, relocate_min_window_s=3.0, relocate_every_s=2.0)
    follower = ScoreFollower(midi_path, params)
    y = media.load_audio(audio_path, sr=follower.sr)
    cut_s = float(perf_warp(0.4 * midi.get_end_time()))
    performance = y[int(cut_s * follower.sr):]
    trace = follow_samples(follower, performance, chunk_s=chunk_s)
    err = position_errors_s(midi, trace.audio_time_s + cut_s, trace.midi_time_s)
    t = trace.audio_time_s[: len(err)]
    # One search per 2 s of performance once 3 s have arrived, however the chunks cut the frames.
    every = round(2.0 / follower.frame_s)
    assert follower.relocation_searches == len(performance) // follower.hop_length // every - 1
    assert follower.relocations >= 1
    assert np.median(err[t < 2.0]) > 1.0  # lost at first: the band starts at the MIDI's beginning
    assert np.median(err[(t > 4.5) & (t < 5.9)]) > 1.0  # found at 4 s, not yet confirmed
    assert np.mean(err[(t > 6.5) & (t < 10.0)] <= 0.1) > 0.8


def test_told_where_the_performance_starts_the_follower_is_on_it_from_the_first_seconds(pair, tmp_path, capsys):
    """The same cut-in performance, with the player saying where it starts (``start_s``, the CLI's
    ``--start``): no search has to find it; and a start outside the MIDI is a clear error."""
    midi_path, audio_path, midi = pair
    params = FollowParams(open_start_s=0.5)
    start_s = 0.4 * midi.get_end_time()
    follower = ScoreFollower(midi_path, params, start_s=start_s)
    assert follower.position_s == pytest.approx(start_s, abs=follower.frame_s)
    y = media.load_audio(audio_path, sr=follower.sr)
    cut_s = float(perf_warp(start_s))
    trace = follow_samples(follower, y[int(cut_s * follower.sr):], chunk_s=0.02)
    err = position_errors_s(midi, trace.audio_time_s + cut_s, trace.midi_time_s)
    t = trace.audio_time_s[: len(err)]
    assert np.mean(err[t < 4.5] <= 0.1) > 0.8  # (untold, the follower is lost here: the test above)
    assert follower.relocations == 0
    follower.start_s = 0.0  # from the beginning again, with the open start: the same as a new follower
    assert np.array_equal(follow_samples(follower, y, 0.02).midi_time_s,
                          follow_samples(ScoreFollower(midi_path, params), y, 0.02).midi_time_s)
    from engine.errors import MidiError
    with pytest.raises(MidiError, match="cannot start following at 999 s"):
        ScoreFollower(midi_path, params, start_s=999.0)
    assert main(["follow", midi_path, audio_path, "--simulate", "--start", "999"]) == 1
    assert "piece.mid" in capsys.readouterr().err


def test_the_relocator_searches_a_partial_window_at_the_start():
    from engine.follow_relocate import Relocator

    rng = np.random.default_rng(6)
    X = _block_normalised(rng, 2000)
    rel = Relocator(X, weight_sum=2.0, window_frames=400, min_window_frames=200, factor=4, max_ahead_frames=1600)
    truth = 1100 + np.arange(200)
    for k in truth[:150]:
        rel.add(X[k] + 0.05 * rng.random(25).astype(np.float32))
    assert not rel.ready and rel.propose(current_frame=50.0) is None
    for k in truth[150:]:
        rel.add(X[k] + 0.05 * rng.random(25).astype(np.float32))
    proposal = rel.propose(current_frame=50.0)
    assert rel.ready and proposal is not None and abs(proposal - truth[-1]) <= 4


def test_the_relocator_moves_only_when_a_second_search_confirms_the_first():
    """With ``confirm_rates``, a far match found once (a passage that happens to sound like
    another) is only remembered; the move is proposed when the next search finds the performance
    where that match would have got to by then at a tempo in range; a passage that sounded like
    the far place once and then goes on where it was is never a move."""
    from engine.follow_relocate import Relocator

    rng = np.random.default_rng(8)
    X = _block_normalised(rng, 3000)

    def relocator():
        return Relocator(X, weight_sum=2.0, window_frames=200, factor=4, min_jump_frames=100,
                         max_ahead_frames=2400, confirm_rates=(0.5, 2.0))

    def play(rel, frames):
        for k in frames:
            rel.add(X[k] + 0.05 * rng.random(25).astype(np.float32))

    rel = relocator()
    play(rel, 1100 + np.arange(200))
    assert rel.propose(current_frame=300.0) is None  # found once: not yet a move
    play(rel, 1300 + np.arange(100))
    proposal = rel.propose(current_frame=400.0)
    assert proposal is not None and abs(proposal - 1399) <= 4

    rel = relocator()
    play(rel, 1100 + np.arange(200))
    assert rel.propose(current_frame=300.0) is None
    play(rel, 2200 + np.arange(200))  # far again, but beyond where the first match could have got to
    assert rel.propose(current_frame=300.0) is None
    play(rel, 2400 + np.arange(100))  # the second far match is confirmed
    proposal = rel.propose(current_frame=300.0)
    assert proposal is not None and abs(proposal - 2499) <= 4

    rel = relocator()
    play(rel, 1100 + np.arange(200))
    assert rel.propose(current_frame=300.0) is None
    play(rel, 400 + np.arange(200))  # the performance goes on where the follower stands
    assert rel.propose(current_frame=599.0) is None
    play(rel, 1500 + np.arange(200))  # where the first match would be by now: forgotten, not confirmed
    assert rel.propose(current_frame=799.0) is None

    rel = relocator()
    rel.from_start = True  # the follower's first seconds: no confirmation
    play(rel, 1100 + np.arange(200))
    assert rel.propose(current_frame=300.0) is not None


def test_the_relocators_match_says_where_the_best_and_the_near_matches_end():
    """Frames are the last frame of a pooled block (factor 4): a query ending at frame 1299 ends
    at 1299 exactly; near a follower at frame 500 the best match ends within the near reach."""
    from engine.follow_relocate import Relocator

    rng = np.random.default_rng(7)
    X = _block_normalised(rng, 2000)
    rel = Relocator(X, weight_sum=2.0, window_frames=200, factor=4, min_jump_frames=100, max_ahead_frames=1600)
    for k in range(1100, 1300):
        rel.add(X[k])
    far = rel.search(rel.reference, current_frame=500.0)
    assert far.best_frame == 1299.0 and not far.is_near
    assert abs(far.near_frame - 500.0) <= 100 + 4 and far.near_cost > 2 * far.best_cost
    here = rel.search(rel.reference, current_frame=1290.0)
    assert here.is_near and here.near_frame == here.best_frame == 1299.0 and here.near_cost == here.best_cost


def test_the_parts_search_moves_or_switches_a_follower_that_missing_parts_misled():
    """Three parts; the performance plays parts 1 and 2 of reference frames 500-700. With the
    follower at frame 100, the search against the MIDI without part 0 proposes to follow parts 1
    and 2 from frame ~700 (a move); with the follower at frame ~700, to follow them from there (a
    switch), unless the presence fit has heard part 0 played. A performance of every part gives no
    verdict: the whole reference explains it best."""
    from engine.follow_parts import PartsSearch, part_subsets
    from engine.follow_relocate import Relocator

    assert [len(list(part_subsets(n))) for n in (2, 3, 5, 6, 8)] == [2, 6, 15, 6, 8]
    assert all(0 < s.sum() < len(s) for n in (2, 3, 5, 8) for s in part_subsets(n))
    rng = np.random.default_rng(9)
    energies = rng.random((3, 1200, 12)) ** 6
    parts = ReferenceParts.from_energies(energies, rng.random((3, 1200, 72)) ** 6, part_of=[0, 1, 2])
    fp = StreamFeatureParams()
    whole = parts.features([True, True, True], fp)

    def verdict(live, here, switch_margin=0.4, heard_playing=None, playing_now=(True, True, True)):
        relocator = Relocator(whole, weight_sum=fp.weight_sum, window_frames=200, max_ahead_frames=800)
        for frame in live:
            relocator.add(frame)
        search = PartsSearch(parts, fp, relocator, margin=0.1, switch_margin=switch_margin)
        relocator.set_reference(parts.features(playing_now, fp))
        search.start(here, playing_now, relocator.search(relocator.reference, here), heard_playing)
        verdicts = [search.step(here=here) for _ in range(6 if all(playing_now) else 5)]
        assert verdicts[:-1] == [None] * (len(verdicts) - 1) and not search.busy  # one set per step
        return verdicts[-1]

    without_0 = parts.features([False, True, True], fp)
    playing, target = verdict(without_0[500:700], here=100.0)
    assert playing.tolist() == [False, True, True] and abs(target - 699) <= 4
    assert verdict(whole[500:700], here=100.0) is None
    playing, target = verdict(without_0[500:700], here=690.0)
    assert playing.tolist() == [False, True, True] and abs(target - 699) <= 4
    assert verdict(without_0[500:700], here=690.0, switch_margin=None) is None
    assert verdict(without_0[500:700], here=690.0, heard_playing=[True, False, False]) is None
    assert verdict(whole[500:700], here=690.0) is None
    # Following parts 0 and 2 where parts 1 and 2 play: the switch is to "without 0", bringing
    # part 1 back (a part the fit left out along a path that may have been wrong).
    playing, target = verdict(without_0[500:700], here=690.0, playing_now=(True, False, True))
    assert playing.tolist() == [False, True, True] and abs(target - 699) <= 4


def test_the_follower_runs_the_parts_search_after_each_global_search(pair, monkeypatch):
    """With every part played: one parts search after each global search (every 2 s from 4 s on),
    each run to its end, and nothing left out; none when it is off."""
    from engine.follow_parts import PartsSearch

    midi_path, audio_path, _ = pair
    starts = []
    start = PartsSearch.start
    monkeypatch.setattr(PartsSearch, "start", lambda self, here, *a: (starts.append(here), start(self, here, *a))[1])
    y = media.load_audio(audio_path, sr=22050)
    follower = ScoreFollower(midi_path)
    trace = follow_samples(follower, y, chunk_s=0.02)
    assert follower.parts is not None and follower.parts.n_parts >= 2
    n_searches = int((len(y) / 22050 - 4.0) // 2.0) + 1
    assert follower.relocations == 0 and follower.relocation_searches == len(starts) == n_searches
    assert not follower._parts_search.busy
    assert np.allclose(np.diff(starts), 2.0 / follower.frame_s, atol=0.5 / follower.frame_s)  # the follower moves on
    assert trace.to_json()["part_changes"] == []
    off = ScoreFollower(midi_path, FollowParams(parts_search=False))
    assert off._parts_search is None

