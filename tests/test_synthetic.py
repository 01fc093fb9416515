"""engine.synthetic: the Raffel & Ellis corruption keeps a true warp that agrees with the notes;
and the bundled demo pair exists and loads."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from engine import media, synthetic
from engine.synthetic import CorruptionParams

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo"
RECORDING_SF = "/usr/share/sounds/sf2/TimGM6mb.sf2"  # the small one: fast to load in tests


def _midi(n_instruments=4, seconds=20.0, seed=0, tempo=100.0):
    """A small multi-instrument MIDI with notes, control changes and pitch bends."""
    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    for k in range(n_instruments):
        inst = pretty_midi.Instrument(program=[0, 40, 73, 127][k % 4], name=f"part {k}")
        t = 0.0
        while t < seconds:
            dur = float(rng.choice([0.25, 0.5, 0.75]))
            inst.notes.append(pretty_midi.Note(int(rng.integers(50, 100)), int(48 + 7 * k + rng.integers(0, 12)),
                                               t, t + dur))
            t += dur
        inst.control_changes.append(pretty_midi.ControlChange(7, 100, seconds / 2))
        inst.pitch_bends.append(pretty_midi.PitchBend(512, seconds / 3))
        midi.instruments.append(inst)
    return midi


def _onsets(midi):
    return [np.array([n.start for n in inst.notes]) for inst in midi.instruments]


def test_warp_is_strictly_monotone_and_within_tempo_bounds():
    params = CorruptionParams()
    for seed in range(20):
        x, y, factor = synthetic.random_tempo_warp(60.0, np.random.default_rng(seed), params)
        assert x[0] == 0.0 and y[0] == 0.0 and x[-1] >= 60.0
        assert np.all(np.diff(x) > 0) and np.all(np.diff(y) > 0)
        assert params.tempo_factor_range[0] <= factor <= params.tempo_factor_range[1]
        # Local slope (rendered s per original s) = 1 / (factor * (1 ± 10 %)).
        slope = np.diff(y) / np.diff(x)
        assert slope.min() >= 1 / (factor * 1.1) - 1e-9 and slope.max() <= 1 / (factor * 0.9) + 1e-9


def test_corrupted_notes_sit_where_the_warp_says():
    midi = _midi()
    c = synthetic.corrupt_midi(midi, np.random.default_rng(7), CorruptionParams(drop_instrument_prob=0.0))
    assert len(c.midi.instruments) == len(midi.instruments)
    for original, moved in zip(midi.instruments, c.midi.instruments):
        starts = np.array([n.start for n in original.notes])
        ends = np.array([n.end for n in original.notes])
        # Rendered time = audio time + crop offset.
        np.testing.assert_allclose([n.start for n in moved.notes], c.midi_to_audio(starts) + c.crop_start_s, atol=1e-9)
        np.testing.assert_allclose([n.end for n in moved.notes], c.midi_to_audio(ends) + c.crop_start_s, atol=1e-9)
        assert moved.control_changes[0].time == pytest.approx(c.midi_to_audio(10.0) + c.crop_start_s)
        assert moved.pitch_bends[0].time == pytest.approx(c.midi_to_audio(20.0 / 3) + c.crop_start_s)
    # The input is untouched (pure function).
    assert [n.start for n in midi.instruments[0].notes] == [n.start for n in _midi().instruments[0].notes]
    # audio_to_midi inverts midi_to_audio.
    t = np.linspace(0, 19, 50)
    np.testing.assert_allclose(c.audio_to_midi(c.midi_to_audio(t)), t, atol=1e-9)


def test_crop_offsets_shift_the_warp_by_the_cut():
    midi = _midi(n_instruments=2)
    always = CorruptionParams(crop_start_prob=1.0, crop_end_prob=1.0, drop_instrument_prob=0.0)
    never = CorruptionParams(crop_start_prob=0.0, crop_end_prob=0.0, drop_instrument_prob=0.0)
    cropped = synthetic.corrupt_midi(midi, np.random.default_rng(3), always)
    full = synthetic.corrupt_midi(midi, np.random.default_rng(3), never)
    end = cropped.info["rendered_end_s"]
    assert cropped.crop_start_s == pytest.approx(0.1 * end)
    assert cropped.crop_end_s == pytest.approx(0.9 * end)
    assert full.crop_start_s == 0.0 and full.crop_end_s is None
    # Same draws for the warp: the cropped warp is the full one minus the start cut.
    np.testing.assert_allclose(cropped.warp_audio_s, full.warp_audio_s - cropped.crop_start_s)
    # A note at the cut point maps to audio time 0.
    t_cut = synthetic.warp_times(cropped.crop_start_s, full.warp_audio_s, full.warp_midi_s)
    assert cropped.midi_to_audio(t_cut) == pytest.approx(0.0, abs=1e-9)


def test_rendered_recording_matches_the_crop(tmp_path):
    midi = _midi(n_instruments=2, seconds=8.0)
    params = CorruptionParams(crop_start_prob=1.0, crop_end_prob=1.0, drop_instrument_prob=0.0)
    c = synthetic.corrupt_midi(midi, np.random.default_rng(1), params)
    path = tmp_path / "rec.mp3"
    y = synthetic.render_recording(c, path, soundfont=RECORDING_SF, sr=22050, snr_db=30.0, rng=np.random.default_rng(2))
    assert len(y) == pytest.approx((c.crop_end_s - c.crop_start_s) * 22050, abs=2)
    decoded = media.load_audio(path, sr=22050)
    assert abs(len(decoded) - len(y)) <= 1  # mp3 round trip keeps the length (gapless)
    assert np.max(np.abs(decoded)) < 1.0
    # The first note of the uncut rendering is gone: the recording starts mid-music, not in silence.
    assert np.sqrt(np.mean(decoded[:2205] ** 2)) > 0.01


def test_noise_has_the_requested_snr():
    y = np.sin(np.arange(44100) * 0.05).astype(np.float32)
    for color in ("white", "pink"):
        noisy = synthetic.add_noise(y, 20.0, np.random.default_rng(0), color)
        noise = noisy - y
        snr = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
        assert snr == pytest.approx(20.0, abs=0.05)


def test_instruments_dropped_but_never_all():
    midi = _midi(n_instruments=4)
    counts = []
    for seed in range(40):
        c = synthetic.corrupt_midi(midi, np.random.default_rng(seed), CorruptionParams(drop_instrument_prob=0.3))
        assert 1 <= len(c.midi.instruments) <= 4
        assert len(c.midi.instruments) + len(c.info["dropped_instruments"]) == 4
        counts.append(len(c.midi.instruments))
    assert min(counts) < 4 and max(counts) == 4  # some drops happen, not always
    # Even when everything is "dropped", one instrument stays.
    c = synthetic.corrupt_midi(midi, np.random.default_rng(0), CorruptionParams(drop_instrument_prob=1.0))
    assert len(c.midi.instruments) == 1 and c.midi.instruments[0].notes


def test_programs_shift_by_one_and_velocities_stay_valid():
    midi = _midi(n_instruments=4)  # programs 0, 40, 73, 127: both ends of the range
    c = synthetic.corrupt_midi(midi, np.random.default_rng(5), CorruptionParams(drop_instrument_prob=0.0))
    for original, moved in zip(midi.instruments, c.midi.instruments):
        assert abs(moved.program - original.program) == 1
        assert 0 <= moved.program <= 127
        v = np.array([n.velocity for n in moved.notes])
        assert v.min() >= 1 and v.max() <= 127
    assert c.midi.instruments[0].program == 1 and c.midi.instruments[3].program == 126  # ends step inwards


def test_deterministic_for_a_seed():
    midi = _midi()
    a = synthetic.corrupt_midi(midi, np.random.default_rng(42))
    b = synthetic.corrupt_midi(midi, np.random.default_rng(42))
    other = synthetic.corrupt_midi(midi, np.random.default_rng(43))
    np.testing.assert_array_equal(a.warp_audio_s, b.warp_audio_s)
    assert a.info == b.info
    assert [(n.start, n.velocity) for i in a.midi.instruments for n in i.notes] == \
           [(n.start, n.velocity) for i in b.midi.instruments for n in i.notes]
    assert not np.array_equal(a.warp_audio_s, other.warp_audio_s)


def test_onset_errors_score_the_true_map_as_perfect_and_clip():
    midi = _midi(n_instruments=2)
    c = synthetic.corrupt_midi(midi, np.random.default_rng(0), CorruptionParams(crop_start_prob=1.0))
    duration = c.info["rendered_end_s"] - c.crop_start_s
    perfect = synthetic.onset_errors(midi, c.warp_midi_s, c.warp_audio_s, c.midi_to_audio, duration)
    assert perfect["mean_error_s"] == 0.0 and perfect["within_50ms"] == 1.0
    n_all = sum(len(i.notes) for i in midi.instruments)
    assert 0 < perfect["n_notes"] < n_all  # notes cut off by the crop are not scored
    late = synthetic.onset_errors(midi, c.warp_midi_s, c.warp_audio_s, lambda t: c.midi_to_audio(t) + 0.07, duration)
    assert late["mean_error_s"] == pytest.approx(0.07) and late["within_50ms"] == 0.0 and late["within_100ms"] == 1.0
    lost = synthetic.onset_errors(midi, c.warp_midi_s, c.warp_audio_s, lambda t: c.midi_to_audio(t) + 3.0, duration)
    assert lost["mean_error_s"] == pytest.approx(0.5)  # clipped


def test_tempo_changes_keep_the_music_and_change_the_seconds():
    midi = _midi(n_instruments=2, seconds=30.0)
    changed = synthetic.with_tempo_changes(midi, np.random.default_rng(1), n_changes=2)
    times, tempi = changed.get_tempo_changes()
    assert len(times) == 3 and not np.allclose(tempi, tempi[0])
    for a, b in zip(midi.instruments, changed.instruments):
        assert [n.pitch for n in a.notes] == [n.pitch for n in b.notes]
        assert a.notes[0].start == pytest.approx(b.notes[0].start)  # before the first change: same
    assert changed.get_end_time() != pytest.approx(midi.get_end_time(), abs=0.01)


def test_music21_conversion_varies_programs_per_part():
    midi = synthetic.music21_to_pretty_midi("bach/bwv66.6", rng=np.random.default_rng(0))
    assert [i.name for i in midi.instruments] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert sum(len(i.notes) for i in midi.instruments) > 100
    seen = {tuple(synthetic.gm_programs_for_parts(["Soprano", "Alto", "Tenor", "Bass"], np.random.default_rng(s)))
            for s in range(12)}
    assert len(seen) > 2  # varied timbres, not all piano
    assert synthetic.gm_programs_for_parts(["Violin I", "Viola", "Violoncello"]) == [40, 41, 42]


def test_demo_files_exist_and_load():
    midi = media.load_midi(DEMO / "demo.mid")
    assert 55 < midi.get_end_time() < 95
    y = media.load_audio(DEMO / "demo.mp3", sr=22050)
    assert 55 < len(y) / 22050 < 100
    assert (DEMO / "demo.mp3").stat().st_size <= 1.5 * 1024 * 1024
    assert "licen" in (DEMO / "README.md").read_text().lower()
    truth = json.loads((DEMO / "demo_truth.json").read_text())
    audio_s = np.array(truth["audio_s"])
    assert np.all(np.diff(audio_s) > 0)
    # The recording differs in tempo: the truth is not the identity.
    assert abs(truth["tempo_factor"] - 1.0) > 0.05
