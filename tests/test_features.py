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
    real_fine = features.fine_features
    monkeypatch.setattr(features, "fine_features", lambda *a, **k: calls.append("fine") or real_fine(*a, **k))
    y = np.random.default_rng(3).standard_normal(2 * 22050).astype(np.float32) * 0.1
    out = features.analyse_recording(y, 22050, 1024, 256, display_hop_length=512,
                                     on_display=lambda S, p, t: calls.append(("display", S)))
    assert [c if isinstance(c, str) else c[0] for c in calls] == ["display", "fine"]
    assert calls[0][1] is out["display_db"]
