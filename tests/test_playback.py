"""The player and its playhead clock (gui/playback.py) and the playback buffers
(engine/playback_mix.py), over a fake sound card (tests/fake_sound_card.py) — the one fake allowed.

The recording used by most tests is a ramp whose value encodes its sample index, so what the
card plays at any clock time says exactly which audio time is being heard.
"""
from __future__ import annotations

import numpy as np
import pytest

from engine import playback_mix
from gui.playback import PAUSED, PLAYING, STOPPED, PlaybackProgram, Player
from tests.fake_sound_card import FakeSoundCard

SR = 8000


def ramp(seconds: float) -> np.ndarray:
    n = int(seconds * SR)
    return (np.arange(n, dtype=np.float64) / n).astype(np.float32)


def heard_audio_time(card: FakeSoundCard, program: PlaybackProgram, at_s: float) -> float:
    """Ground truth: the audio time of the ramp sample at the DAC at clock time ``at_s``."""
    index = card.heard_frame_index(at_s)
    value = float(card.output()[index, 0])
    return value * len(program.recording) * program.speed / program.sr


def make_player(card, seconds=20.0, blocksize=256):
    player = Player(stream_factory=card.output_stream, blocksize=blocksize)
    program = PlaybackProgram(ramp(seconds), None, 1.0, SR)
    player.set_program(program, keep_position=False)
    return player, program


def test_playhead_follows_the_stream_clock_without_drift_over_five_minutes():
    # The card runs 0.5 % fast and hears each block 80 ms after its callback: a wall-clock playhead
    # would be 1.5 s off after five minutes; the stream-clock playhead re-anchors on every block.
    card = FakeSoundCard(latency_s=0.08, rate_error=0.005)
    player, program = make_player(card, seconds=300.0, blocksize=512)
    assert player.play() and player.state == PLAYING
    rng = np.random.default_rng(0)
    errors, wall_clock_errors = [], []
    start_clock = card.clock
    while card.clock - start_clock < 290.0:
        card.advance(float(rng.uniform(0.5, 4.0)))
        truth = heard_audio_time(card, program, card.clock)
        errors.append(abs(player.position_s() - truth))
        wall_clock_errors.append(abs((card.clock - start_clock - card.latency_s) - truth))
    assert max(errors) <= 0.020
    assert max(wall_clock_errors) > 1.0  # what a timer-based playhead would have done


def test_what_the_card_plays_is_the_recording_from_the_playhead_on():
    card = FakeSoundCard(latency_s=0.05)
    player, program = make_player(card)
    player.play()
    card.advance(1.0)
    out = card.output()
    assert np.allclose(out[:, 0], program.recording[: len(out)])  # left = right = recording
    assert np.allclose(out[:, 1], out[:, 0])
    # Before the first block reaches the DAC, the playhead stands at the start.
    assert player.position_s() == pytest.approx(1.0 - card.latency_s, abs=0.01)


def test_pause_holds_the_position_and_play_resumes_there():
    card = FakeSoundCard()
    player, program = make_player(card)
    player.play()
    card.advance(3.0)
    player.pause()
    held = player.position_s()
    assert player.state == PAUSED and held == pytest.approx(3.0 - card.latency_s, abs=0.01)
    card.advance(5.0)
    assert player.position_s() == held and not card.streams[-1].active
    player.play()
    card.advance(2.0)
    assert player.position_s() == pytest.approx(held + 2.0 - card.latency_s, abs=0.01)
    assert heard_audio_time(card, program, card.clock) == pytest.approx(player.position_s(), abs=0.005)


def test_stop_returns_to_the_start_and_releases_the_device():
    card = FakeSoundCard()
    player, _ = make_player(card)
    states = []
    player.events.state_changed.connect(states.append)
    player.play()
    card.advance(2.0)
    player.stop()
    assert player.state == STOPPED and player.position_s() == 0.0
    assert card.streams[-1].closed
    assert states == [PLAYING, STOPPED]


def test_seek_while_playing_jumps_at_once_and_plays_from_there():
    card = FakeSoundCard(latency_s=0.05)
    player, program = make_player(card)
    player.play()
    card.advance(2.0)
    player.seek(12.5)
    assert player.position_s() == pytest.approx(12.5, abs=1e-6)  # shown at once, before it is heard
    card.advance(1.0)
    assert player.position_s() == pytest.approx(12.5 + 1.0 - 0.05, abs=0.04)
    assert heard_audio_time(card, program, card.clock) == pytest.approx(player.position_s(), abs=0.005)
    player.seek(-3.0)
    assert player.position_s() == 0.0  # clamped to the piece


def test_loop_repeats_the_selection():
    card = FakeSoundCard(latency_s=0.05)
    player, program = make_player(card)
    player.set_loop(4.0, 5.0)
    player.seek(4.0)
    player.play()
    positions = []
    for _ in range(80):
        card.advance(0.05)
        positions.append(player.position_s())
    positions = np.array(positions[4:])  # once the first block is heard
    assert positions.min() >= 4.0 - 1e-6 and positions.max() < 5.0 + 1e-6
    assert np.sum(np.diff(positions) < -0.5) >= 2  # wrapped around at least twice in 4 s
    heard = card.output()[:, 0] * len(program.recording) / SR
    assert heard.min() >= 4.0 - 1e-3 and heard.max() < 5.0
    # Playing from outside the loop starts at the loop.
    player.pause()
    player.seek(10.0)
    player.play()
    card.advance(0.5)
    assert 4.0 <= player.position_s() < 5.0
    player.set_loop(None)
    assert player.loop is None


def test_speed_change_keeps_the_audio_time_and_runs_faster():
    card = FakeSoundCard(latency_s=0.05)
    player, program = make_player(card, seconds=30.0)
    player.play()
    card.advance(4.0)
    before = player.position_s()
    fast = PlaybackProgram(playback_mix.time_stretch(program.recording, 1.5), None, 1.5, SR)
    assert len(fast.recording) == pytest.approx(len(program.recording) / 1.5, rel=0.01)
    player.set_program(fast)
    assert player.position_s() == pytest.approx(before, abs=0.01)
    card.advance(2.0)
    assert player.position_s() == pytest.approx(before + 1.5 * (2.0 - 0.05), abs=0.06)


def test_end_of_the_piece_stops():
    card = FakeSoundCard(latency_s=0.05)
    player, program = make_player(card, seconds=2.0)
    player.play()
    card.advance(1.0)
    player.tick()
    assert player.state == PLAYING
    card.advance(1.5)
    player.tick()
    assert player.state == STOPPED
    assert player.position_s() == pytest.approx(program.duration_s, abs=1e-6)
    assert player.play()  # from the end: starts over
    card.advance(0.5)
    assert player.position_s() < 0.5


def test_both_sources_recording_left_midi_right_with_balance():
    card = FakeSoundCard(latency_s=0.01)
    player = Player(stream_factory=card.output_stream, blocksize=128)
    rec = np.full(SR, 0.5, dtype=np.float32)
    midi = np.full(SR // 2, 0.25, dtype=np.float32)  # shorter: silence after its end
    player.set_program(PlaybackProgram(rec, midi, 1.0, SR), keep_position=False)
    player.set_source("both", balance=0.5)
    player.play()
    card.advance(0.9)
    out = card.output()
    assert np.allclose(out[:, 0], 0.25)  # recording at half level (balance towards the MIDI)
    assert np.allclose(out[: SR // 2, 1], 0.25) and np.allclose(out[SR // 2:, 1], 0.0)
    player.set_source("midi")
    card.blocks.clear()
    player.seek(0.0)
    card.advance(0.2)
    out = card.output()
    assert np.allclose(out[:, 0], 0.25) and np.allclose(out[:, 1], 0.25)


@pytest.mark.parametrize("error, words", [
    (OSError("PortAudio library not found"), "PortAudio library is not installed"),
    (RuntimeError("Error querying device -1"), "no sound device found"),
    (RuntimeError("Error opening OutputStream: Device unavailable [PaErrorCode -9985]"), "busy"),
])
def test_device_errors_become_messages(error, words):
    card = FakeSoundCard(fail_with=error)
    player, _ = make_player(card)
    messages = []
    player.events.message.connect(messages.append)
    assert player.play() is False
    assert player.state == STOPPED
    assert len(messages) == 1 and words in messages[0] and messages[0].startswith("Cannot play")


def test_unplugged_mid_play_pauses_with_a_message():
    card = FakeSoundCard(latency_s=0.05)
    player, _ = make_player(card)
    messages = []
    player.events.message.connect(messages.append)
    player.play()
    card.advance(3.0)
    card.unplugged = True
    card.advance(1.0)  # no callbacks any more
    player.tick()
    assert player.state == PAUSED
    assert "unplugged" in messages[-1]
    assert player.position_s() == pytest.approx(3.0, abs=0.1)
    card.unplugged = False
    assert player.play()  # a device is back: plays on from where it was
    card.advance(0.5)
    assert player.position_s() > 3.0


def test_a_device_that_silently_stops_calling_back_is_noticed():
    card = FakeSoundCard(latency_s=0.05)
    player, _ = make_player(card)
    messages = []
    player.events.message.connect(messages.append)
    player.play()
    card.advance(2.0)
    stream = card.streams[-1]
    stream.pump = lambda until_s: None  # the stream stays "active", but no more blocks come
    card.advance(0.5)
    player.tick()
    assert player.state == PLAYING  # a short gap is not yet a dead device
    card.advance(1.5)
    player.tick()
    assert player.state == PAUSED and "unplugged" in messages[-1]


def test_nothing_to_play_is_a_message_not_an_error():
    card = FakeSoundCard()
    player = Player(stream_factory=card.output_stream)
    messages = []
    player.events.message.connect(messages.append)
    assert player.play() is False and "Nothing to play" in messages[0]


# ---- engine/playback_mix.py -------------------------------------------------------------------

def test_time_stretch_keeps_the_pitch():
    sr = 22050
    t = np.arange(2 * sr) / sr
    y = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    for speed in (0.5, 1.5):
        z = playback_mix.time_stretch(y, speed)
        assert len(z) == pytest.approx(len(y) / speed, rel=0.01)
        middle = z[len(z) // 4: 3 * len(z) // 4]
        peak_hz = np.argmax(np.abs(np.fft.rfft(middle))) * sr / len(middle)
        assert peak_hz == pytest.approx(440.0, abs=5.0)
    with pytest.raises(ValueError):
        playback_mix.time_stretch(y, 2.0)
    assert playback_mix.time_stretch(y, 1.0) is y


def test_mute_and_solo_gains():
    assert playback_mix.stem_gains(3).tolist() == [1, 1, 1]
    assert playback_mix.stem_gains(3, muted={1}).tolist() == [1, 0, 1]
    assert playback_mix.stem_gains(3, soloed={2}).tolist() == [0, 0, 1]
    assert playback_mix.stem_gains(3, muted={2}, soloed={0, 2}).tolist() == [1, 0, 0]
    assert playback_mix.active_instruments(3, muted={1}) == (0, 2)
    assert playback_mix.active_instruments(3, soloed={2}, muted={2}) == ()


def test_mix_block_scales_pads_and_clips():
    out = np.empty((6, 2), np.float32)
    rec = np.array([0.5, 0.9, 0.9, 0.9], np.float32)
    midi = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5], np.float32)
    playback_mix.mix_block(rec, midi, 1, out, np.array([[1.0, 1.0], [1.0, 0.0]], np.float32))
    assert np.allclose(out[:, 0], [1.0, 1.0, 1.0, 0.5, 0.5, 0.0])  # 0.9 + 0.5 clipped; rec ends
    assert np.allclose(out[:, 1], [0.9, 0.9, 0.9, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        playback_mix.channel_gains("left")


def test_mix_block_reads_int16_tracks_at_full_scale():
    out = np.empty((4, 2), np.float32)
    rec = np.array([16384, -32768, 32767, 0], np.int16)
    playback_mix.mix_block(rec, None, 0, out, playback_mix.channel_gains("both", balance=0.0))
    assert np.allclose(out[:, 0], [0.5, -1.0, 32767 / 32768, 0.0]) and np.allclose(out[:, 1], 0.0)


def two_instrument_midi():
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    for program, pitch, start in ((0, 60, 0.0), (40, 72, 0.5)):
        inst = pretty_midi.Instrument(program=program)
        inst.notes.append(pretty_midi.Note(velocity=100, pitch=pitch, start=start, end=start + 0.4))
        midi.instruments.append(inst)
    midi.instruments.append(pretty_midi.Instrument(program=1))  # no notes
    return midi


def test_synthesize_instruments_renders_only_the_chosen_ones_into_one_track():
    midi = two_instrument_midi()
    n = playback_mix.midi_track_samples(midi, SR)
    both = playback_mix.synthesize_instruments(midi, SR)
    first = playback_mix.synthesize_instruments(midi, SR, [0])
    second = playback_mix.synthesize_instruments(midi, SR, [1, 2])
    assert all(t.dtype == np.int16 and t.shape == (n,) for t in (both, first, second))  # same length, mono
    first, second, both = (np.abs(playback_mix.to_float32(t)) for t in (first, second, both))
    late = slice(int(0.55 * SR), int(0.85 * SR))  # the second note; the first only rings out there
    assert first[: int(0.3 * SR)].max() > 0.01 and first[late].max() < 0.3 * second[late].max()
    assert second[: int(0.45 * SR)].max() < 1e-3 and second[late].max() > 0.01
    assert both[: int(0.3 * SR)].max() > 0.01 and both[int(0.5 * SR): int(0.8 * SR)].max() > 0.01
    assert playback_mix.synthesize_instruments(midi, SR, [2]) is None  # nothing to hear
    assert playback_mix.synthesize_instruments(midi, SR, []) is None


def test_decode_recording_is_mono_int16_at_the_playback_rate(tmp_path):
    import soundfile as sf

    from engine.errors import AudioError

    t = np.arange(int(1.5 * 22050)) / 22050
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 22050, subtype="PCM_16")
    y = playback_mix.decode_recording(path, 44100)
    assert y.dtype == np.int16 and y.ndim == 1 and len(y) == pytest.approx(2 * len(t), abs=2)
    expected = 0.375 * np.sin(2 * np.pi * 440 * np.arange(len(y)) / 44100)
    assert np.abs(playback_mix.to_float32(y) - expected)[1000:-1000].max() < 0.01  # mixed down, resampled
    assert playback_mix.decode_recording(path, 22050).dtype == np.int16
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"ID3" + bytes(200))
    with pytest.raises(AudioError, match="broken.mp3"):
        playback_mix.decode_recording(broken, 44100)


def test_time_stretch_is_librosas_phase_vocoder_streamed_in_blocks():
    import librosa

    sr = 22050
    rng = np.random.default_rng(0)
    t = np.arange(8 * sr) / sr  # several blocks of output frames
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t * (1 + 0.1 * t))
    y = y + 0.05 * rng.standard_normal(len(t))
    for speed in (0.5, 1.3):
        ours = playback_mix.time_stretch(y, speed)
        theirs = librosa.effects.time_stretch(y, rate=speed)
        assert ours.shape == theirs.shape and np.abs(ours - theirs).max() < 1e-3
        as_int16 = playback_mix.time_stretch(np.round(y * 32767).astype(np.int16), speed)
        assert as_int16.dtype == np.int16 and np.abs(playback_mix.to_float32(as_int16) - theirs).max() < 5e-3


def _four_part_pair(tmp_path):
    import pretty_midi
    import soundfile as sf

    from engine.align import Alignment

    midi = pretty_midi.PrettyMIDI()
    for k, program in enumerate((0, 40, 56, 73)):
        inst = pretty_midi.Instrument(program=program, name=f"part {k}")
        inst.notes += [pretty_midi.Note(90, 55 + 4 * k + j % 5, 0.3 * j, 0.3 * j + 0.25) for j in range(20)]
        midi.instruments.append(inst)
    midi_s = np.array([0.0, midi.get_end_time()])
    seconds = 7.0
    path = tmp_path / "take.wav"
    sf.write(str(path), 0.1 * np.sin(np.arange(int(seconds * 22050)) * 0.05), 22050)
    return Alignment(midi_s, midi_s, 1.0, midi.get_end_time(), seconds, midi), path, seconds


def test_mute_and_solo_mix_the_instruments_own_tracks_without_synthesizing_again(tmp_path, monkeypatch):
    from gui.playback import PLAYBACK_SR, load_recording, synthesize_warped_midi

    alignment, path, seconds = _four_part_pair(tmp_path)
    sound = synthesize_warped_midi(alignment, load_recording(path))
    stems = sound.stems
    assert stems is not None and stems.tracks.shape[0] == 4 and sorted(set(stems.stem_of)) == [0, 1, 2, 3]
    # The tracks add up to the whole performance as one pass renders it.
    whole = playback_mix.synthesize_instruments(sound.warped_midi, PLAYBACK_SR)
    summed = stems.mix(range(4))
    assert summed.shape == whole.shape
    # (not bit-identical: FluidSynth mixes the split outputs in another order; 0.6 % of the peak here)
    assert np.abs(summed.astype(np.int32) - whole).max() <= 0.01 * np.abs(whole).max()
    assert np.corrcoef(summed.astype(float), whole.astype(float))[0, 1] > 0.9999
    assert np.array_equal(sound.midi, summed)

    def no_synthesis(*args, **kwargs):
        raise AssertionError("synthesized again")

    monkeypatch.setattr(playback_mix, "synthesize_instruments", no_synthesis)
    soloed = synthesize_warped_midi(alignment, sound, soloed={2})
    assert soloed.active == (2,) and np.array_equal(soloed.midi, stems.tracks[stems.stem_of[2]])
    muted = synthesize_warped_midi(alignment, soloed, muted={0, 1, 2, 3})
    assert muted.active == () and muted.midi is None
    assert soloed.stems is stems and soloed.recording is sound.recording  # nothing decoded or rendered again
    one_track_per_source = 2 * PLAYBACK_SR * (seconds + alignment.midi.get_end_time() + playback_mix.SYNTH_TAIL_S)
    assert soloed.nbytes <= 1.01 * (one_track_per_source + stems.tracks.nbytes)


def test_no_stems_for_a_single_instrument_and_no_track_for_instruments_without_notes():
    import pretty_midi

    solo = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0, name="piano")
    piano.notes.append(pretty_midi.Note(90, 60, 0.0, 0.5))
    solo.instruments.append(piano)
    assert playback_mix.synthesize_stems(solo, 22050) is None  # nothing to mute apart: one track is enough
    duo = pretty_midi.PrettyMIDI()
    duo.instruments += [piano, pretty_midi.Instrument(40, name="silent violin")]
    stems = playback_mix.synthesize_stems(duo, 22050)
    assert stems is not None and stems.has_notes == [True, False]
    assert stems.mix([1]) is None and playback_mix.synthesize_instruments(duo, 22050, [1]) is None
    assert stems.mix([0, 1]) is not None


def test_without_room_for_stems_the_prepared_sound_holds_one_mono_16_bit_track_per_source(tmp_path, monkeypatch):
    # A piece whose instruments' own tracks would not fit in STEMS_MAX_BYTES: the prepared buffers
    # are the recording and one MIDI track (mono, 16-bit), whatever the number of instruments, and a
    # stretched program adds one copy of each 1/speed as long.
    from gui.playback import PLAYBACK_SR, buffer_bytes, load_recording, render_program, synthesize_warped_midi

    monkeypatch.setattr(playback_mix, "STEMS_MAX_BYTES", 1024)
    alignment, path, seconds = _four_part_pair(tmp_path)
    sound = synthesize_warped_midi(alignment, load_recording(path))
    assert sound.stems is None
    midi_seconds = alignment.midi.get_end_time() + playback_mix.SYNTH_TAIL_S
    one_track_per_source = 2 * PLAYBACK_SR * (seconds + midi_seconds)  # bytes
    assert len(sound.instrument_names) == 4 and sound.active == (0, 1, 2, 3)
    assert sound.recording.ndim == 1 and sound.midi.ndim == 1
    assert sound.nbytes <= 1.01 * one_track_per_source
    soloed = synthesize_warped_midi(alignment, sound, soloed={2})
    assert soloed.active == (2,) and soloed.nbytes <= 1.01 * one_track_per_source
    assert soloed.recording is sound.recording  # not decoded again
    slow = render_program(soloed, 0.5)
    assert slow.speed == 0.5 and slow.nbytes <= 1.01 * one_track_per_source / 0.5
    held = buffer_bytes(soloed.recording, soloed.midi, slow.recording, slow.midi)
    assert held <= 1.01 * one_track_per_source * (1 + 1 / 0.5)
    assert render_program(soloed, 1.0).recording is soloed.recording  # 1×: no copies
