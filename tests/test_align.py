"""engine.align end to end on generated pairs rendered with another soundfont."""
from __future__ import annotations

import copy
from dataclasses import replace

import mido
import numpy as np
import pretty_midi
import pytest

from engine import media, synth
from engine.align import AlignParams, Cancelled, align
from engine.errors import AudioError, MidiError
from tests.midi_fixtures import TIMGM, render_warped, write_rich_midi


def true_warp(t):
    t = np.asarray(t, dtype=float)
    return 1.12 * t + 0.25 * np.sin(t / 2.5) + 0.4


PARAMS = AlignParams(soundfont=TIMGM)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    midi_path = write_rich_midi(d / "piece.mid", seed=3)
    midi = media.load_midi(midi_path)
    audio_path = render_warped(midi, true_warp, d / "recording.wav")
    return midi_path, audio_path, midi


def onset_errors(result, midi, warp=true_warp, offset=0.0):
    onsets = np.array([n.start for inst in midi.instruments for n in inst.notes if not inst.is_drum])
    return np.abs(result.midi_to_audio(onsets) - (warp(onsets) - offset))


def test_alignment_lands_notes_on_the_recording(pair):
    midi_path, audio_path, midi = pair
    result = align(midi_path, audio_path, PARAMS)
    err = onset_errors(result, midi)
    assert np.mean(np.minimum(err, 0.5)) < 0.03, np.percentile(err, [50, 90, 99])
    assert np.mean(err < 0.05) > 0.9
    assert 0.3 < result.confidence <= 1.0
    # the maps are each other's inverse along the piece
    t = np.linspace(1, midi.get_end_time() - 1, 50)
    assert np.max(np.abs(result.audio_to_midi(result.midi_to_audio(t)) - t)) < 0.05
    # the local tempo ratio reflects the warp's slope (MIDI time per audio time ≈ 1 / 1.12 ± 10 %)
    _, ratio = result.local_tempo_ratio()
    assert 0.75 < np.median(ratio) < 1.0


def test_mismatched_pair_scores_lower(pair, tmp_path):
    midi_path, audio_path, _ = pair
    other = write_rich_midi(tmp_path / "other.mid", seed=11)
    good = align(midi_path, audio_path, PARAMS).confidence
    bad = align(other, audio_path, PARAMS).confidence
    assert good - bad > 0.25


def test_cropped_recording_aligns_inside_the_gully(pair, tmp_path):
    midi_path, _, midi = pair
    crop = 0.08 * true_warp(midi.get_end_time())
    cropped = render_warped(midi, true_warp, tmp_path / "cropped.wav", crop_start_s=crop)
    result = align(midi_path, cropped, PARAMS)
    onsets = np.array([n.start for inst in midi.instruments for n in inst.notes if not inst.is_drum])
    inside = true_warp(onsets) - crop > 0.5
    err = np.abs(result.midi_to_audio(onsets[inside]) - (true_warp(onsets[inside]) - crop))
    assert np.median(err) < 0.03 and np.mean(np.minimum(err, 0.5)) < 0.06


def test_second_alignment_uses_the_cache_and_parses_the_midi_only_when_used(pair, monkeypatch):
    midi_path, audio_path, midi = pair
    first = align(midi_path, audio_path, PARAMS)
    parsed = []
    real_load_midi = media.load_midi
    monkeypatch.setattr(media, "load_midi", lambda path: parsed.append(str(path)) or real_load_midi(path))
    again = align(midi_path, audio_path, PARAMS)
    assert again.cache_hits == {"alignment": True} and parsed == []  # no feature read, no MIDI parsed
    assert again.confidence == first.confidence
    assert np.array_equal(again.anchor_audio_s, first.anchor_audio_s)
    assert again.params == first.params and again.midi_duration_s == first.midi_duration_s
    assert again.audio_duration_s == first.audio_duration_s
    warped = again.warped_midi()  # needs the notes: parsed now, once
    assert parsed == [str(midi_path)] and again.midi is again.midi
    assert sum(len(i.notes) for i in warped.instruments) == sum(len(i.notes) for i in midi.instruments)


def test_warped_midi_keeps_every_event_with_a_small_tempo_map(pair, tmp_path):
    midi_path, audio_path, midi = pair
    result = align(midi_path, audio_path, PARAMS)
    out = tmp_path / "aligned.mid"
    n_tempo = result.write_warped_midi(out)
    assert 1 <= n_tempo <= 60
    written = pretty_midi.PrettyMIDI(str(out))
    original_notes = sorted((n.pitch, n.start) for i in midi.instruments for n in i.notes)
    written_notes = sorted((n.pitch, n.start) for i in written.instruments for n in i.notes)
    assert len(written_notes) == len(original_notes)
    expected = {p: [] for p, _ in original_notes}
    for p, s in original_notes:
        expected[p].append(float(result.midi_to_audio(s)))
    got = {p: [] for p, _ in written_notes}
    for p, s in written_notes:
        got[p].append(s)
    worst = max(np.max(np.abs(np.sort(got[p]) - np.sort(expected[p]))) for p in expected)
    assert worst < 0.02  # within the tempo map's simplification tolerance
    src_msgs = [m.type for t in mido.MidiFile(midi_path).tracks for m in t if m.type in ("control_change", "pitchwheel", "program_change")]
    out_msgs = [m.type for t in mido.MidiFile(out).tracks for m in t if m.type in ("control_change", "pitchwheel", "program_change")]
    assert sorted(src_msgs) == sorted(out_msgs)
    # and the in-memory warped copy agrees with the map
    warped = result.warped_midi()
    first = min(n.start for i in warped.instruments for n in i.notes)
    assert first == pytest.approx(float(result.midi_to_audio(min(s for _, s in original_notes))), abs=1e-6)


def test_progress_and_cancel(pair):
    midi_path, audio_path, _ = pair
    seen = []
    align(midi_path, audio_path, PARAMS, progress=lambda f, msg: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    calls = []
    uncached = AlignParams(soundfont=TIMGM, penalty_scale=1.02)  # a cached alignment is done before any wait
    with pytest.raises(Cancelled):
        align(midi_path, audio_path, uncached, cancel=lambda: calls.append(1) or len(calls) > 2)


def test_pianoroll_mode_also_aligns(pair):
    midi_path, audio_path, midi = pair
    result = align(midi_path, audio_path, AlignParams(midi_features="pianoroll"))
    assert np.median(onset_errors(result, midi)) < 0.05


def test_bad_inputs_raise_named_errors(pair, tmp_path):
    midi_path, audio_path, _ = pair
    bad_audio = tmp_path / "bad.mp3"
    bad_audio.write_bytes(b"\x00" * 1000)
    with pytest.raises(AudioError, match="bad.mp3"):
        align(midi_path, bad_audio, PARAMS)
    with pytest.raises(AudioError, match="not found"):
        align(midi_path, tmp_path / "missing.wav", PARAMS)
    bad_midi = tmp_path / "bad.mid"
    bad_midi.write_text("hello")
    with pytest.raises(MidiError, match="bad.mid"):
        align(bad_midi, audio_path, PARAMS)


def test_preview_comes_before_the_midi_side_and_only_when_not_cached(pair, tmp_path):
    midi_path, audio_path, midi = pair
    params = AlignParams(soundfont=TIMGM, penalty_scale=1.01)  # a parameter set nothing has cached yet
    seen = []

    def preview(preview_midi, audio_duration_s, spectrogram):
        seen.append((preview_midi, audio_duration_s, spectrogram))

    result = align(midi_path, audio_path, params, display=True, preview=preview)
    assert len(seen) == 1 and not result.cache_hits["alignment"]
    preview_midi, duration_s, (S_db, pitches, times) = seen[0]
    assert sum(len(i.notes) for i in preview_midi.instruments) == sum(len(i.notes) for i in midi.instruments)
    assert duration_s == pytest.approx(result.audio_duration_s)
    assert S_db.shape == (len(pitches), len(times)) and np.array_equal(S_db, result.spectrogram[0])
    seen.clear()
    again = align(midi_path, audio_path, params, display=True, preview=preview)
    assert again.cache_hits["alignment"] and seen == []
    assert np.array_equal(again.path_audio_s, result.path_audio_s)


def test_a_cached_alignment_without_its_display_is_not_solved_again(pair):
    """`earworm align` (no display) then the window (display): only the recording is analysed again."""
    midi_path, audio_path, _ = pair
    params = AlignParams(soundfont=TIMGM, penalty_scale=1.02)  # a parameter set nothing has cached yet
    first = align(midi_path, audio_path, params)
    assert first.spectrogram is None and not first.cache_hits["alignment"]
    shown = align(midi_path, audio_path, params, display=True)
    assert shown.cache_hits["alignment"] and "align_s" not in shown.timings and "midi_wait_s" not in shown.timings
    S_db, pitches, times = shown.spectrogram
    assert S_db.shape == (len(pitches), len(times)) and times[-1] == pytest.approx(shown.audio_duration_s, abs=0.1)
    assert np.array_equal(shown.path_audio_s, first.path_audio_s)


def test_a_failing_midi_side_is_reported_after_the_recording(pair, tmp_path):
    """The MIDI side runs on a helper thread; its errors still reach the caller, naming the file."""
    from engine.errors import SoundfontError

    midi_path, audio_path, _ = pair
    fake = tmp_path / "broken.sf2"
    fake.write_bytes(b"RIFF\x10\x00\x00\x00sfbk" + b"\x00" * 64)
    with pytest.raises(SoundfontError, match="broken.sf2"):
        align(midi_path, audio_path, AlignParams(soundfont=str(fake)))


def test_a_part_missing_from_the_recording_is_left_out_and_its_notes_still_land(pair, tmp_path):
    midi_path, _, midi = pair
    without_bass = copy.deepcopy(midi)
    without_bass.instruments = [i for i in without_bass.instruments if i.name != "bass"]
    audio_path = render_warped(without_bass, true_warp, tmp_path / "no_bass.wav")
    result = align(midi_path, audio_path, PARAMS)
    names = [i.name for i in midi.instruments]
    assert result.params["instruments_present"] == [name != "bass" for name in names]
    err = onset_errors(result, midi)  # every pitched note, the bass's included (placed between anchors)
    assert np.mean(np.minimum(err, 0.5)) < 0.03 and np.mean(err < 0.05) > 0.9, np.percentile(err, [50, 90])


def test_without_the_note_level_pass_find_instruments_still_leaves_the_missing_part_out(pair, tmp_path):
    """Library matching's confirm step: no note-level pass, but a recording that lost a part is
    aligned against the parts it has, and scores higher for it."""
    midi_path, _, midi = pair
    without_bass = copy.deepcopy(midi)
    without_bass.instruments = [i for i in without_bass.instruments if i.name != "bass"]
    audio_path = render_warped(without_bass, true_warp, tmp_path / "no_bass.wav")
    plain = AlignParams(soundfont=TIMGM, refine_onsets=False)
    found = align(midi_path, audio_path, replace(plain, find_instruments=True))
    assert found.params["instruments_present"] == [i.name != "bass" for i in midi.instruments]
    kept_all = align(midi_path, audio_path, plain)
    assert all(kept_all.params["instruments_present"])
    assert found.confidence > kept_all.confidence + 0.02, (found.confidence, kept_all.confidence)


def test_features_of_some_instruments_come_from_the_kept_stems(pair, monkeypatch):
    """A part the recording lacks is left out by re-mixing the MIDI's stems, not by rendering again."""
    from engine import align_features

    _, _, midi = pair
    params = AlignParams(soundfont=TIMGM)
    align_features.midi_side_features(midi, None, params, keep_stems=True)  # a brand-new synth differs a little
    _, _, stems = align_features.midi_side_features(midi, None, params, keep_stems=True)
    kept = [k for k, inst in enumerate(midi.instruments) if inst.name != "bass"]
    sub = copy.copy(midi)
    sub.instruments = [midi.instruments[k] for k in kept]
    rendered, _, _ = align_features.midi_side_features(sub, None, params, kept)
    monkeypatch.setattr(synth, "StemRenderer", None)  # no rendering from here on
    mixed, _, _ = align_features.midi_side_features(sub, None, params, kept, stems=stems)
    assert stems.can_mix(kept) and stems.can_mix([0])
    shared = align_features.MidiStems([0, 0, 1])  # two instruments on one stem cannot be told apart
    assert shared.can_mix([0, 1]) and shared.can_mix([2]) and not shared.can_mix([0]) and not shared.can_mix([1, 2])
    last = int(max(n.end for i in sub.instruments for n in i.notes) * params.sr / params.hop_length)
    for key, fine in (("chroma", 1), ("fine_chroma", 4), ("onset_strength", 4)):
        assert mixed[key].shape == rendered[key].shape
        assert np.abs(mixed[key][:last * fine] - rendered[key][:last * fine]).max() < 0.02, key  # int16 stems
    stems.close()
