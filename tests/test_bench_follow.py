"""The follower benchmark's scoring and its options for trying a change (tests/benchmarks/bench_follow.py)."""
import json
import zipfile

import numpy as np
import pytest

from engine import media
from engine.follow import FollowParams
from tests.benchmarks.bench_follow import (PREROLL_S, accuracy_targets_met, chunk_errors_s, note_onset_errors_s,
                                           param_overrides, pick_pairs, with_overrides, with_preroll)


def test_param_overrides_read_python_literals_of_followparams_fields():
    overrides = param_overrides(["open_start_cost=0.02", "tempo_hypotheses=(0.9, 1.1)", "report=frontier"])
    assert overrides == {"open_start_cost": 0.02, "tempo_hypotheses": (0.9, 1.1), "report": "frontier"}
    params = FollowParams(**overrides)
    assert params.open_start_cost == 0.02 and params.tempo_hypotheses == (0.9, 1.1)
    with pytest.raises(ValueError, match="no_such_field"):
        param_overrides(["no_such_field=1"])
    with pytest.raises(ValueError, match="NAME=VALUE"):
        param_overrides(["open_start_cost"])
    assert param_overrides(["window_s=12", "tempo_range=[0.6, 1.8]", "parts_switch_margin=None"]) == {
        "window_s": 12.0, "tempo_range": (0.6, 1.8), "parts_switch_margin": None}
    assert isinstance(param_overrides(["window_s=12"])["window_s"], float)
    with pytest.raises(ValueError, match="takes a float"):
        param_overrides(["open_start_cost=abc"])
    with pytest.raises(ValueError, match="takes a bool"):
        param_overrides(["follow_parts=1"])


def test_param_overrides_reach_the_features_and_stay_json():
    overrides = param_overrides(["features.chroma_gamma=10", "step_penalty=0.3", "features.onset_weight=0.5"])
    assert overrides == {"features": {"chroma_gamma": 10.0, "onset_weight": 0.5}, "step_penalty": 0.3}
    assert json.loads(json.dumps(overrides)) == overrides
    params = with_overrides(FollowParams(), overrides)
    defaults = FollowParams()
    assert (params.features.chroma_gamma, params.features.onset_weight, params.step_penalty) == (10.0, 0.5, 0.3)
    assert params.features.hop_length == defaults.features.hop_length  # the rest as it was
    assert defaults.features.chroma_gamma == 1.0  # the defaults untouched
    assert with_overrides(defaults, {}) == defaults == with_overrides(defaults, None)
    with pytest.raises(ValueError, match="StreamFeatureParams"):
        param_overrides(["features.no_such_field=1"])
    with pytest.raises(ValueError, match="StreamFeatureParams"):
        param_overrides(["tempo.window_s=1"])
    with pytest.raises(ValueError, match="takes a int"):
        param_overrides(["features.hop_length=256.5"])


def test_pick_pairs_takes_every_other_pair_or_the_named_ones():
    pairs = [{"id": f"p{k}"} for k in range(5)]
    assert [p["id"] for p in pick_pairs(pairs, half=0)] == ["p0", "p2", "p4"]
    assert [p["id"] for p in pick_pairs(pairs, half=1)] == ["p1", "p3"]
    assert [p["id"] for p in pick_pairs(pairs, ids=["p3", "p1"])] == ["p1", "p3"]
    assert pick_pairs(pairs) == pairs
    with pytest.raises(ValueError, match="p9"):
        pick_pairs(pairs, ids=["p9"])
    with pytest.raises(ValueError, match="p1"):  # p1 is not in half 0
        pick_pairs(pairs, half=0, ids=["p1"])


def test_set_identity_tells_a_set_made_again_with_another_sound(tmp_path, monkeypatch):
    from tests.benchmarks import make_alignment_set as bench_set

    for pid in ("a", "b"):
        for suffix, data in ((".mid", b"MThd"), (".mp3", b"ID3" + pid.encode())):
            (tmp_path / f"{pid}{suffix}").write_bytes(data)
        np.savez(tmp_path / f"{pid}.truth.npz", warp_midi_s=np.arange(3.0), warp_audio_s=1.1 * np.arange(3.0))
        (tmp_path / f"{pid}.json").write_text(json.dumps(
            {"id": pid, "midi": f"{pid}.mid", "audio": f"{pid}.mp3", "truth": f"{pid}.truth.npz"}))
    (tmp_path / "manifest.json").write_text(json.dumps({"pairs": ["a", "b", "a"]}))  # a pair listed twice
    digest = bench_set.set_digest(tmp_path)
    measured = tmp_path / "align_set.sha256"
    measured.write_text(digest + "  the set of the figures\n")
    monkeypatch.setattr(bench_set, "MEASURED_SET_DIGEST", measured)
    same = bench_set.set_identity(tmp_path)
    assert same == {"digest": digest, "measured_in_docs": True, "made_with": None}
    assert "NOT" not in bench_set.describe_identity(same)

    # The same truth written again: an .npz is a zip whose entries carry the time they were written.
    with zipfile.ZipFile(tmp_path / "a.truth.npz") as old:
        entries = [(info.filename, old.read(info)) for info in old.infolist()]
    with zipfile.ZipFile(tmp_path / "a.truth.npz", "w") as again:
        for name, data in entries:
            again.writestr(zipfile.ZipInfo(name, date_time=(2001, 2, 3, 4, 5, 6)), data)
    assert bench_set.set_digest(tmp_path) == digest

    (tmp_path / "b.mp3").write_bytes(b"ID3 encoded by another lame")  # the same pairs, another sound
    other = bench_set.set_identity(tmp_path)
    assert other["digest"] != digest and other["measured_in_docs"] is False
    assert "NOT the set" in bench_set.describe_identity(other)
    monkeypatch.setattr(bench_set, "MEASURED_SET_DIGEST", tmp_path / "missing.sha256")
    assert bench_set.set_identity(tmp_path)["measured_in_docs"] is None


def test_tool_versions_name_what_the_sound_depends_on(tmp_path):
    from tests.benchmarks.make_alignment_set import tool_versions

    font = tmp_path / "font.sf2"
    font.write_bytes(b"RIFF")
    versions = tool_versions([font, tmp_path / "gone.sf2"])
    assert {"fluidsynth", "libsndfile", "numpy", "numba"} <= set(versions)
    assert versions["fluidsynth"].count(".") == 2  # FluidSynth's own version string, e.g. 2.3.1
    assert versions["soundfonts"]["font.sf2"] == "a40ff3d5900fb769"  # sha256(b"RIFF"), first 16 digits
    assert versions["soundfonts"]["gone.sf2"].startswith("unreadable")


def test_the_true_tempo_diagnostic_reads_the_warp_counting_live_frames_across_restarts(tmp_path):
    from tests.benchmarks.bench_follow import TrueTempoFollower
    from tests.midi_fixtures import write_rich_midi

    midi = media.load_midi(write_rich_midi(tmp_path / "piece.mid", seed=1, bars=4))
    reference = np.random.default_rng(0).random((2000, 25)).astype(np.float32)
    # The performance plays the MIDI 1.25 times slower, then (from 6 s) at the MIDI's pace.
    warp_audio_s = np.array([0.0, 6.0, 60.0])
    warp_midi_s = np.array([0.0, 6.0 / 1.25, 6.0 / 1.25 + 54.0])
    follower = TrueTempoFollower(midi, FollowParams(), (warp_midi_s, warp_audio_s), reference=reference)
    frames_per_s = 1.0 / follower.frame_s
    for _ in range(int(0.4 * frames_per_s)):
        follower._update_tempo()
    assert follower.tempo_ratio == 1.0  # not yet half a second heard
    for _ in range(int(2.6 * frames_per_s)):
        follower._update_tempo()
    assert follower.tempo_ratio == pytest.approx(0.8)
    follower._newest_frames = (reference[0], reference[0])
    follower._restart_at(500.0)  # a relocation starts a new path, not a new performance
    for _ in range(int(4 * frames_per_s)):
        follower._update_tempo()
    assert follower.tempo_ratio == pytest.approx(1.0)  # 7 s in: the warp's second piece


def test_a_pair_whose_id_a_later_candidate_shares_is_not_made_again(tmp_path):
    from tests.benchmarks.make_alignment_set import _made_by_a_later_candidate

    for name in ("x.mid", "x.mp3", "x.truth.npz"):
        (tmp_path / name).write_bytes(b"made")
    stored = {"id": "x", "midi": "x.mid", "audio": "x.mp3", "truth": "x.truth.npz", "recipe": {"work": "b/x.mxl"}}
    (tmp_path / "x.json").write_text(json.dumps(stored))
    cantata, chorale = {"id": "x", "work": "b/x"}, {"id": "x", "work": "b/x.mxl"}
    assert _made_by_a_later_candidate(tmp_path, cantata, [chorale]) == stored  # the chorale's files stand
    assert _made_by_a_later_candidate(tmp_path, cantata, []) is None  # nothing later makes them: make it
    assert _made_by_a_later_candidate(tmp_path, chorale, []) is None  # its own recipe decides (pair_is_current)
    (tmp_path / "x.mp3").unlink()
    assert _made_by_a_later_candidate(tmp_path, cantata, [chorale]) is None  # files missing: make it


def test_note_onsets_score_the_notes_the_recording_plays_once_per_onset():
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    kept, lost = pretty_midi.Instrument(0), pretty_midi.Instrument(41)
    for start in (1.0, 3.0, 5.0, 7.0):  # a chord at each: two notes, one onset
        kept.notes += [pretty_midi.Note(80, 60, start, start + 0.5), pretty_midi.Note(80, 64, start, start + 0.5)]
    lost.notes.append(pretty_midi.Note(80, 48, 6.0, 9.0))  # the recording lost this part: its note is no onset
    midi.instruments += [kept, lost]
    # The recording starts 2 s into the MIDI (a crop: the onset at 1 s is not in it) at 1.25x the MIDI's time.
    warp_midi_s, warp_audio_s = np.array([2.0, 10.0]), np.array([0.0, 10.0])
    audio_s = np.arange(1, 501) * 0.02
    reported_midi_s = 2.0 + audio_s / 1.25 + np.where(audio_s > 6.0, 0.4, 0.0)  # right, then 0.5 s ahead
    signed, scored_s = chunk_errors_s(audio_s, reported_midi_s, warp_midi_s, warp_audio_s, midi.get_end_time())
    at_onsets = note_onset_errors_s(signed, scored_s, midi, [1], warp_midi_s, warp_audio_s)
    # onsets 3, 5, 7 s of the MIDI sound at 1.25, 3.75 and 6.25 s of the recording
    np.testing.assert_allclose(at_onsets, [0.0, 0.0, 0.5], atol=1e-9)
    assert note_onset_errors_s(signed, scored_s, midi, [], warp_midi_s, warp_audio_s).size == 4  # 6 s counts now
    assert note_onset_errors_s(signed[:0], scored_s[:0], midi, [1], warp_midi_s, warp_audio_s).size == 0


def test_misses_are_placed_by_midi_time_since_the_last_onset_the_recording_plays():
    import pretty_midi

    from tests.benchmarks.bench_follow import misses_by, since_last_onset_s

    midi = pretty_midi.PrettyMIDI()
    kept, lost = pretty_midi.Instrument(0), pretty_midi.Instrument(41)
    kept.notes += [pretty_midi.Note(80, 60, 1.0, 1.5), pretty_midi.Note(80, 64, 3.0, 3.5)]
    lost.notes.append(pretty_midi.Note(80, 48, 2.0, 4.0))  # lost by the recording: not an onset it plays
    midi.instruments += [kept, lost]
    warp_midi_s, warp_audio_s = np.array([0.0, 4.0]), np.array([0.0, 8.0])  # played at half speed
    audio_s = np.array([1.0, 2.2, 4.0, 5.0, 6.1])  # MIDI 0.5 (before any onset), 1.1, 2.0, 2.5, 3.05
    since = since_last_onset_s(audio_s, midi, [1], warp_midi_s, warp_audio_s)
    np.testing.assert_allclose(since, [np.inf, 0.1, 1.0, 1.5, 0.05], atol=1e-9)
    np.testing.assert_allclose(since_last_onset_s(audio_s, midi, [], warp_midi_s, warp_audio_s)[2:4], [0.0, 0.5],
                               atol=1e-9)
    errors = [np.array([0.0, 0.3, -0.2, 0.05, 0.0])]
    spans = misses_by(errors, [since], (0.0, 0.2, 1.0, np.inf))
    assert [s["share_of_chunks"] for s in spans] == [0.4, 0.0, 0.6]
    assert [s["points"] for s in spans] == [20.0, 0.0, 20.0]  # the 0.3 s miss 0.1 s after an onset; the 0.2 s one
    assert spans[1]["miss_rate"] is None and spans[2]["to_s"] is None


def test_accuracy_targets_are_judged_on_median_mean_and_share_within_100ms():
    good = {"median_ms": 18.0, "mean_ms": 45.0, "within_100ms": 0.93}
    assert accuracy_targets_met(good)
    for key, worse in (("median_ms", 21.0), ("mean_ms", 137.0), ("within_100ms", 0.89)):
        assert not accuracy_targets_met(dict(good, **{key: worse}))


def test_the_preroll_is_room_tone_at_the_recordings_noise_level_before_it():
    sr = 8000
    y = np.sin(2 * np.pi * 220.0 * np.arange(3 * sr) / sr).astype(np.float32)
    streamed = with_preroll(y, sr, snr_db=30.0)
    lead = int(PREROLL_S * sr)
    assert len(streamed) == lead + len(y) and np.array_equal(streamed[lead:], y)
    room_db = 10 * np.log10(np.mean(streamed[:lead].astype(np.float64) ** 2))
    assert room_db == pytest.approx(10 * np.log10(np.mean(y.astype(np.float64) ** 2)) - 30.0, abs=0.1)
    assert lead % int(0.02 * sr) == 0  # whole chunks: the recording's chunks are the same as without it
