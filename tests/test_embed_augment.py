"""The embeddings' training-pair augmentation (models.embed.augment): pairs stay pairs."""
import numpy as np

from engine import embed_features as ef
from models.embed import augment


def _frames(n_frames=120, n_bins=ef.N_AUDIO_BINS, seed=0):
    return np.random.default_rng(seed).random((n_frames, n_bins)).astype(np.float32)


def test_unit_stretch_is_the_engines_cut():
    frames = _frames()
    starts = np.array([0, 7, 96, 110])  # the last runs past the end: zeros, as cut_snippets gives
    expected = ef.cut_snippets(frames, starts)
    for interpolate in (True, False):
        got = augment.stretched_snippets(frames, starts, np.ones(len(starts)), interpolate)
        np.testing.assert_array_equal(got, expected)


def test_stretch_keeps_the_centre_and_scales_the_spacing():
    # Frame i holds the value i, so each output frame says which (fractional) frame it read.
    ramp = np.repeat(np.arange(200, dtype=np.float32)[:, None], 3, axis=1)
    out = augment.stretched_snippets(ramp, np.array([80]), np.array([1.5]), interpolate=True)[0, 0, 0]
    centre = 80 + (ef.SNIPPET_FRAMES - 1) / 2
    assert np.isclose(out.mean(), centre)
    np.testing.assert_allclose(np.diff(out), 1.5, atol=1e-5)
    nearest = augment.stretched_snippets(ramp, np.array([80]), np.array([1.5]), interpolate=False)[0, 0, 0]
    assert np.all(nearest == np.round(nearest)) and np.all(np.abs(nearest - out) <= 0.5)


def test_transpose_moves_bins_and_fills_the_vacated_ones():
    snippets = ef.cut_snippets(_frames(), np.array([0, 10, 20]))
    up, down, same = 3, -4, 0
    audio = augment.transpose(snippets, [up, down, same], fill_edge=True)
    roll = augment.transpose(snippets, [up, down, same], fill_edge=False)
    np.testing.assert_array_equal(audio[0, 0, up:], snippets[0, 0, :-up])
    np.testing.assert_array_equal(audio[0, 0, :up], np.repeat(snippets[0, 0, :1], up, axis=0))
    np.testing.assert_array_equal(audio[1, 0, :down], snippets[1, 0, -down:])
    np.testing.assert_array_equal(audio[1, 0, down:], np.repeat(snippets[1, 0, -1:], -down, axis=0))
    assert np.all(roll[0, 0, :up] == 0) and np.all(roll[1, 0, down:] == 0)
    np.testing.assert_array_equal(audio[2], snippets[2])
    assert not np.shares_memory(audio, snippets)


def test_draw_respects_ranges_and_switches():
    rng = np.random.default_rng(1)
    semitones, factors = augment.draw(rng, 500, (-5, 6), (0.85, 1.15))
    assert semitones.min() == -5 and semitones.max() == 6
    assert factors.min() >= 0.85 and factors.max() <= 1.15 and factors.std() > 0.05
    off_semitones, off_factors = augment.draw(rng, 10, (0, 0), None)
    assert np.all(off_semitones == 0) and np.all(off_factors == 1.0)
