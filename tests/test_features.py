"""engine.features: the blocked STFT against a plain reference, and the display spectrogram."""
from __future__ import annotations

import numpy as np
import pytest

from engine import features


def _reference_pitch_energy(y, sr, hop_length, n_fft, midi_lo, midi_hi, bins_per_semitone):
    """The textbook computation: pad, frame everything at once, numpy FFT, dense filterbank."""
    fb = features._pitch_filterbank(sr, n_fft, midi_lo, midi_hi, bins_per_semitone).astype(np.float64)
    padded = np.pad(np.asarray(y, dtype=np.float64), n_fft // 2)
    n_frames = 1 + (len(padded) - n_fft) // hop_length
    frames = np.stack([padded[k * hop_length:k * hop_length + n_fft] for k in range(n_frames)])
    return np.abs(np.fft.rfft(frames * np.hanning(n_fft + 1)[:-1], axis=1)) @ fb


@pytest.mark.parametrize("hop_length, n_fft, midi_lo, midi_hi, bps", [(512, 4096, 21, 108, 3), (256, 1024, 36, 107, 1)])
@pytest.mark.parametrize("block_frames", [7, 256])
def test_pitch_energy_matches_the_plain_stft(hop_length, n_fft, midi_lo, midi_hi, bps, block_frames):
    rng = np.random.default_rng(1)
    sr = 22050
    t = np.arange(int(2.3 * sr) + 123) / sr  # not a whole number of hops: the last frames are padded
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 98 * t) + 0.05 * rng.standard_normal(len(t))
    got = features.pitch_energy(y.astype(np.float32), sr, hop_length, n_fft, midi_lo, midi_hi, bps,
                                block_frames=block_frames)
    want = _reference_pitch_energy(y, sr, hop_length, n_fft, midi_lo, midi_hi, bps)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * want.max()
    # the first and last frames (zero-padded ends) are right too
    assert np.allclose(got[[0, -1]], want[[0, -1]], rtol=1e-3, atol=1e-4 * want.max())


def test_display_spectrogram_is_in_db_below_the_loudest_cell():
    sr, hop = 22050, 512
    t = np.arange(sr) / sr
    y = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # A4
    S_db, pitches, times = features.spectrogram_for_display(y, sr, hop)
    assert S_db.dtype == np.float32 and S_db.flags["C_CONTIGUOUS"]
    assert S_db.shape == (len(pitches), len(times)) and S_db.max() == 0.0 and S_db.min() >= -80.0
    loudest_row = int(np.argmax(S_db[:, len(times) // 2]))
    assert pitches[loudest_row] == pytest.approx(69.0, abs=0.34)
    assert times[1] - times[0] == pytest.approx(hop / sr)


def test_analyse_recording_folds_chroma_from_the_display_stft():
    sr = 22050
    rng = np.random.default_rng(2)
    y = rng.standard_normal(3 * sr).astype(np.float32) * 0.1
    shared = features.analyse_recording(y, sr, 1024, 256, display_hop_length=512)
    alone = features.analyse_recording(y, sr, 1024, 256)
    assert np.allclose(shared["chroma"], alone["chroma"], atol=1e-5)
    assert np.allclose(shared["onset_strength"], alone["onset_strength"])
    assert len(shared["chroma"]) == (shared["display_db"].shape[1] + 1) // 2  # every other display frame


def test_analyse_recording_hands_over_the_display_before_the_slow_features(monkeypatch):
    calls = []
    real_onsets = features.superflux_onsets
    monkeypatch.setattr(features, "superflux_onsets", lambda *a, **k: calls.append("fine") or real_onsets(*a, **k))
    y = np.random.default_rng(3).standard_normal(2 * 22050).astype(np.float32) * 0.1
    out = features.analyse_recording(y, 22050, 1024, 256, display_hop_length=512,
                                     on_display=lambda S, p, t: calls.append(("display", S)))
    assert [c if isinstance(c, str) else c[0] for c in calls] == ["display", "fine"]
    assert calls[0][1] is out["display_db"]


def _pieces(y, rng, most=30000):
    k = 0
    while k < len(y):
        n = int(rng.integers(1, most))
        yield y[k:k + n]
        k += n


@pytest.mark.parametrize("hop_length, n_fft", [(512, 2048), (128, 1024)])
def test_pitch_energy_stream_gives_the_whole_signal_frames_from_any_blocks(hop_length, n_fft):
    from engine.streaming import PitchEnergyStream

    rng = np.random.default_rng(4)
    y = rng.standard_normal(int(3.7 * 11025) + 77).astype(np.float32)
    stream = PitchEnergyStream(11025, hop_length, n_fft, 21, 108, 3)
    got = np.concatenate([stream.push(piece) for piece in _pieces(y, rng, 3000)] + [stream.finish()])
    want = features.pitch_energy(y, 11025, hop_length, n_fft, 21, 108, 3)
    assert got.shape == want.shape == (1 + len(y) // hop_length, 264)
    assert np.allclose(got, want, rtol=1e-5, atol=1e-6 * want.max())


@pytest.mark.parametrize("display", [None, 256])
def test_feature_stream_equals_the_whole_signal_analysis(display, monkeypatch):
    from engine import streaming
    from engine.feature_stream import FeatureStream

    monkeypatch.setattr(streaming, "SPILL_RAM_BYTES", 0)  # what waits for the end goes through a temporary file
    rng = np.random.default_rng(5)
    sr = 11025
    t = np.arange(6 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.01 * np.sin(5 * t))) * (np.sin(3 * t) > 0)
         + 0.02 * rng.standard_normal(len(t))).astype(np.float32)
    whole = features.analyse_recording(y, sr, 512, 128, n_fft=2048, n_fft_onset=1024, display_hop_length=display)
    stream = FeatureStream(sr, 512, 128, display_hop_length=display)
    for piece in _pieces(y, rng, 5000):
        stream.push(piece)
    got = stream.finish()
    assert sorted(got) == sorted(whole)
    for key in whole:
        assert np.allclose(got[key], whole[key], rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(whole[key]).max()))), key


def test_spill_buffer_keeps_the_rows_in_order_in_memory_or_on_disk():
    from engine.streaming import SpillBuffer

    rng = np.random.default_rng(6)
    blocks = [rng.standard_normal((int(rng.integers(1, 50)), 7)).astype(np.float32) for _ in range(40)]
    for ram_bytes in (1 << 30, 3000, 0):
        spill = SpillBuffer(7, ram_bytes=ram_bytes)
        for block in blocks:
            spill.append(block)
        back = list(spill.blocks(min_rows=100))
        assert all(len(b) >= 100 for b in back[:-1])
        assert np.array_equal(np.concatenate(back), np.concatenate(blocks))
        assert spill.n_rows == sum(map(len, blocks)) and spill.max == max(float(b.max()) for b in blocks)
        spill.close()


def test_feature_stream_spills_to_disk_when_asked(monkeypatch):
    from engine import streaming
    from engine.feature_stream import FeatureStream

    files = []
    real = streaming.tempfile.TemporaryFile
    monkeypatch.setattr(streaming.tempfile, "TemporaryFile", lambda *a, **k: files.append(1) or real(*a, **k))
    y = np.random.default_rng(7).standard_normal(2 * 11025).astype(np.float32)
    in_memory = FeatureStream(11025, 512, 128)
    in_memory.push(y)
    want = in_memory.finish()
    assert files == []
    monkeypatch.setattr(streaming, "SPILL_RAM_BYTES", 0)
    on_disk = FeatureStream(11025, 512, 128)
    on_disk.push(y)
    got = on_disk.finish()
    assert len(files) == 2  # the fine onsets' and the sharp onsets' pitch energies
    assert all(np.array_equal(got[k], want[k]) for k in want)
