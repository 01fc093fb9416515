"""engine.media: loading, validation, soundfont discovery and synthesis."""
from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from engine import media, synth
from engine.errors import AudioError, MidiError, SoundfontError
from tests.midi_fixtures import TIMGM, write_rich_midi


@pytest.fixture(scope="module")
def rich_midi(tmp_path_factory):
    return write_rich_midi(tmp_path_factory.mktemp("midi") / "rich.mid")


def test_load_midi_reads_tempo_changes_and_drums(rich_midi):
    midi = media.load_midi(rich_midi)
    tempo_times, tempi = midi.get_tempo_changes()
    assert np.allclose(sorted(set(np.round(tempi))), [76, 100, 132])
    assert any(inst.is_drum for inst in midi.instruments)
    # 12 beats at 100 bpm + 6 at 76 bpm, then 132 bpm
    assert tempo_times[1] == pytest.approx(12 * 0.6, abs=1e-3)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"this is not midi at all", "no 'MThd' header"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10\x00\x90", "cannot parse"),
    (b"RIFF\x00\x00\x00\x00RMIDdata", "RIFF"),
])
def test_load_midi_bad_files_name_file_and_reason(tmp_path, content, reason):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(content)
    with pytest.raises(MidiError) as err:
        media.load_midi(bad)
    assert str(bad) in str(err.value) and reason in str(err.value)


def test_load_midi_without_notes_is_an_error(tmp_path):
    empty = pretty_midi.PrettyMIDI()
    empty.instruments.append(pretty_midi.Instrument(0))
    path = tmp_path / "silent.mid"
    empty.write(str(path))
    with pytest.raises(MidiError, match="no notes"):
        media.load_midi(path)


def test_load_midi_missing_file():
    with pytest.raises(MidiError, match="not found"):
        media.load_midi("/nonexistent/x.mid")


@pytest.mark.parametrize("fmt, ext", [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_load_audio_formats_resample_to_sr(tmp_path, fmt, ext):
    sr_in = 44100
    t = np.arange(sr_in) / sr_in
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / f"tone.{ext}"
    sf.write(str(path), np.stack([tone, tone], axis=1), sr_in, format=fmt)
    y = media.load_audio(path, sr=22050)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 22050) < 0.06 * 22050  # mp3 pads with encoder delay
    spectrum = np.abs(np.fft.rfft(y[2000:12000]))
    assert abs(np.argmax(spectrum) * 22050 / 10000 - 440) < 5


def test_load_audio_bad_files(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(bytes(range(256)) * 40)
    short = tmp_path / "short.wav"
    sf.write(str(short), np.zeros(100), 22050)
    good = tmp_path / "good.wav"
    sf.write(str(good), np.zeros(22050), 22050)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:40])
    for path, reason in [(empty, "empty"), (garbage, "cannot decode"), (short, "too short"),
                         (truncated, ""), (tmp_path / "missing.wav", "not found")]:
        with pytest.raises(AudioError) as err:
            media.load_audio(path)
        assert str(path) in str(err.value) and reason in str(err.value)
    # libsndfile calls any file it cannot open missing; an existing file in no format it reads is not.
    for read in (media.load_audio, media.audio_duration, lambda path: list(media.audio_blocks(path))):
        with pytest.raises(AudioError) as err:
            read(garbage)
        message = str(err.value)
        assert "not in a format libsndfile can read" in message and "does not exist" not in message
        assert message.count(str(garbage)) == 1  # named once, not again in libsndfile's words


def test_soundfont_discovery_order(tmp_path, monkeypatch):
    monkeypatch.delenv("EARWORM_SOUNDFONT", raising=False)
    assert media.find_soundfont(TIMGM) == media.Path(TIMGM)
    monkeypatch.setenv("EARWORM_SOUNDFONT", TIMGM)
    assert media.find_soundfont() == media.Path(TIMGM)
    monkeypatch.setenv("EARWORM_SOUNDFONT", str(tmp_path / "nope.sf2"))
    with pytest.raises(SoundfontError, match="not found"):
        media.find_soundfont()
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(SoundfontError, match="not a SoundFont"):
        media.find_soundfont(fake)
    monkeypatch.delenv("EARWORM_SOUNDFONT")
    assert media.find_soundfont().is_file()  # a system GM soundfont or pretty_midi's bundled one


def test_synthesize_renders_every_instrument_at_its_time(rich_midi):
    midi = media.load_midi(rich_midi)
    y = media.synthesize(midi, sr=22050, soundfont=TIMGM)
    assert len(y) == pytest.approx((midi.get_end_time() + 1.0) * 22050, abs=2)
    assert np.all(np.isfinite(y)) and 0.01 < np.abs(y).max() <= 1.0
    # Energy rises at the note onsets: compare 50 ms after each of the first beats with the silence after the end.
    frame = lambda t: np.sqrt(np.mean(y[int(t * 22050):int((t + 0.05) * 22050)] ** 2))
    onsets = sorted({n.start for inst in midi.instruments for n in inst.notes})[:10]
    assert min(frame(t) for t in onsets) > 10 * frame(midi.get_end_time() + 0.9) + 1e-6
    # Drums alone make sound too (bank 128 on channel 10).
    drums_only = pretty_midi.PrettyMIDI()
    drums_only.instruments = [inst for inst in midi.instruments if inst.is_drum]
    assert np.abs(media.synthesize(drums_only, soundfont=TIMGM)).max() > 0.01


def test_synthesize_with_bad_soundfont(rich_midi, tmp_path):
    fake = tmp_path / "broken.sf2"
    fake.write_bytes(b"RIFF\x10\x00\x00\x00sfbk" + b"\x00" * 64)
    with pytest.raises(SoundfontError) as err:
        media.synthesize(media.load_midi(rich_midi), soundfont=fake)
    assert str(fake) in str(err.value)


def test_synthesize_sounds_the_same_every_time(rich_midi):
    """One cached synth renders the same MIDI the same way again (FluidSynth is left on a block
    boundary), and a cancelled rendering stops early without upsetting the next one."""
    midi = media.load_midi(rich_midi)
    media.synthesize(midi, sr=22050, soundfont=TIMGM)  # a brand-new synth differs in a few samples
    first = media.synthesize(midi, sr=22050, soundfont=TIMGM)
    again = media.synthesize(midi, sr=22050, soundfont=TIMGM)
    assert len(first) == len(again)
    assert np.mean(np.abs(first - again) > 1e-3) < 1e-4
    calls = []
    with pytest.raises(InterruptedError):
        media.synthesize(midi, sr=22050, soundfont=TIMGM, cancel=lambda: calls.append(1) or len(calls) > 1)
    assert len(calls) == 2
    after_cancel = media.synthesize(midi, sr=22050, soundfont=TIMGM)
    assert np.mean(np.abs(after_cancel - again) > 1e-3) < 1e-4


@pytest.mark.parametrize("fmt, ext", [("WAV", "wav"), ("FLAC", "flac"), ("MP3", "mp3")])
@pytest.mark.parametrize("sr", [22050, 11025])
def test_audio_blocks_decode_what_load_audio_decodes(tmp_path, capfd, fmt, ext, sr):
    rng = np.random.default_rng(0)
    t = np.arange(3 * 44100) / 44100
    y = 0.4 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(len(t))
    path = tmp_path / f"tone.{ext}"
    sf.write(str(path), np.stack([y, 0.5 * y], axis=1), 44100, format=fmt)
    blocks = list(media.audio_blocks(path, sr=sr, block_s=0.37))
    assert len(blocks) > 5 and all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    # the same samples as one whole read: block reads must not upset the mp3 decoder (no seeks)
    assert np.array_equal(np.concatenate(blocks), media.load_audio(path, sr=sr))
    assert "error" not in capfd.readouterr().err


def test_audio_blocks_bad_files_name_file_and_reason(tmp_path):
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(bytes(range(256)) * 40)
    short = tmp_path / "short.wav"
    sf.write(str(short), np.zeros(100), 22050)
    nan = tmp_path / "nan.wav"
    sf.write(str(nan), np.full(22050, np.nan), 22050, subtype="FLOAT")
    for path, reason in [(garbage, "cannot decode"), (short, "too short"), (nan, "NaN"),
                         (tmp_path / "missing.wav", "not found")]:
        with pytest.raises(AudioError) as err:
            list(media.audio_blocks(path))
        assert str(path) in str(err.value) and reason in str(err.value)


def test_stem_renderer_gives_each_instrument_its_stem(rich_midi):
    midi = media.load_midi(rich_midi)
    renderer = synth.StemRenderer(midi, sr=11025, soundfont=TIMGM, block_samples=4096)
    list(renderer.blocks())  # a brand-new synth differs in a few samples (see the synthesize test)
    blocks = list(renderer.blocks())
    stems = np.concatenate(blocks, axis=1)
    assert all(b.shape[1] <= 4096 for b in blocks) and renderer.n_stems == len(midi.instruments) == 3
    assert sorted(renderer.stem_of) == [0, 1, 2] and stems.shape[1] == pytest.approx((midi.get_end_time() + 1) * 11025, abs=2)
    for k, inst in enumerate(midi.instruments):  # each stem sounds when its instrument plays, and only then
        first = min(n.start for n in inst.notes)
        before = stems[renderer.stem_of[k], :int(first * 11025)]
        assert np.abs(stems[renderer.stem_of[k]]).max() > 0.01 and (len(before) == 0 or np.abs(before).max() < 1e-4)
    mix = np.concatenate(list(synth.StemRenderer(midi, sr=11025, soundfont=TIMGM, split=False).blocks()), axis=1)
    assert mix.shape == (1, stems.shape[1]) and np.allclose(mix[0], stems.sum(axis=0), atol=1e-5)
    again = np.concatenate(list(renderer.blocks()), axis=1)
    assert np.allclose(again, stems, atol=1e-6)  # the same rendering every time


def test_load_midi_times_are_pretty_midis_without_its_per_tick_table(rich_midi, tmp_path):
    import pickle

    mine, stock = media.load_midi(rich_midi), pretty_midi.PrettyMIDI(str(rich_midi))
    events = lambda m: ([(n.start, n.end, n.pitch, n.velocity) for i in m.instruments for n in i.notes]  # noqa: E731
                        + [(c.time, c.number, c.value) for i in m.instruments for c in i.control_changes]
                        + [(b.time, b.pitch) for i in m.instruments for b in i.pitch_bends])
    assert events(mine) == events(stock) and mine.get_end_time() == stock.get_end_time()
    table = stock._PrettyMIDI__tick_to_time
    assert len(mine._PrettyMIDI__tick_to_time) == len(table)  # the same length, but not stored tick by tick
    assert not isinstance(mine._PrettyMIDI__tick_to_time, np.ndarray)
    ticks = np.random.default_rng(0).integers(0, len(table), 300)
    assert all(mine.tick_to_time(int(t)) == stock.tick_to_time(int(t)) for t in ticks)
    assert all(mine.time_to_tick(s) == stock.time_to_tick(s) for s in np.linspace(0, stock.get_end_time() + 2, 97))
    assert np.array_equal(np.asarray(mine._PrettyMIDI__tick_to_time), table)
    again = pickle.loads(pickle.dumps(mine))  # e.g. to a worker process
    assert events(again) == events(stock)
    mine.write(str(tmp_path / "out.mid"))
    assert events(pretty_midi.PrettyMIDI(str(tmp_path / "out.mid"))) == events(stock)
