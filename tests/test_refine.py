"""engine.refine: instrument presence, the fine DTW pass and the note anchors, on rendered audio."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from engine import features, media, refine
from tests.midi_fixtures import TIMGM, render_warped, write_rich_midi

SR, HOP, FINE_HOP = 22050, 1024, 256
FPS = SR / FINE_HOP


def warp(t):
    t = np.asarray(t, dtype=float)
    return 1.1 * t + 0.2 * np.sin(t / 2.0) + 0.3


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    d = tmp_path_factory.mktemp("refine")
    midi = media.load_midi(write_rich_midi(d / "piece.mid", seed=5))
    return d, midi


def _without(midi, name):
    out = copy.deepcopy(midi)
    out.instruments = [i for i in out.instruments if i.name != name]
    return out


@pytest.mark.parametrize("missing", [None, "piano", "bass", "drums"])
def test_instrument_presence_finds_the_part_the_recording_lacks(rich, missing):
    d, midi = rich
    names = [i.name for i in midi.instruments]
    played = _without(midi, missing)
    y = media.load_audio(render_warped(played, lambda t: np.asarray(t, float), d / f"without_{missing}.wav"), SR)
    energy = features.fine_features(y, SR, FINE_HOP)["chroma_energy"]
    n = min(len(energy), int(midi.get_end_time() * SR / HOP))
    path = np.arange(n)  # the recording is not warped: the identity path
    share = refine.instrument_presence(midi, path, path, energy, SR, HOP)
    assert share.max() == pytest.approx(1.0)
    for name, s in zip(names, share):
        if name == missing:
            assert s < 0.1, (name, share)
        else:
            assert s > 0.3, (name, share)


def test_onset_block_decays_and_marks_frames_without_onsets():
    O = np.zeros((30, 12), dtype=np.float32)
    O[5, 3] = 1.0
    X = refine.onset_block(O, n_decay=10, power=2.0)
    assert X.shape == (30, 13) and np.allclose(np.linalg.norm(X, axis=1), 1.0)
    assert np.allclose(X[0], np.r_[np.zeros(12), 1.0])          # nothing yet: "no onset"
    assert X[5, 3] == pytest.approx(1.0)                           # the onset itself
    tail = X[5:15, 3]
    assert np.all(np.diff(tail) < 0) and tail[-1] > 0              # decays over the next frames
    assert np.allclose(X[20], np.r_[np.zeros(12), 1.0])            # and is gone after n_decay


def test_fine_path_recovers_the_onsets_from_a_reference_that_is_off(rich):
    d, midi = rich
    y = media.load_audio(render_warped(midi, warp, d / "warped.wav"), SR)
    rec = features.fine_features(y, SR, FINE_HOP)
    synth = features.fine_features(media.synthesize(midi, sr=SR, soundfont=TIMGM), SR, FINE_HOP)
    # A reference 0.2 s late and wobbling by ±0.1 s: the chroma DTW at its worst.
    ref_midi_s = np.linspace(0, midi.get_end_time(), 400)
    ref_audio_s = warp(ref_midi_s) + 0.2 + 0.1 * np.sin(ref_midi_s * 3.0)
    midi_s, audio_s = refine.fine_path(synth["fine_chroma"], synth["onset_strength"], rec["fine_chroma"],
                                       rec["onset_strength"], FPS, ref_audio_s, ref_midi_s)
    assert np.all(np.diff(midi_s) >= 0) and np.all(np.diff(audio_s) >= 0)
    onsets = np.unique([n.start for i in midi.instruments for n in i.notes if not i.is_drum])
    onsets = onsets[(onsets > 1.0) & (onsets < midi.get_end_time() - 1.0)]
    predicted = np.interp(onsets, midi_s, audio_s)
    err = np.abs(predicted - warp(onsets))
    assert np.median(err) < 0.02 and np.mean(err < 0.05) > 0.9, np.percentile(err, [50, 90])
    # the reference alone is far off
    assert np.median(np.abs(np.interp(onsets, ref_midi_s, ref_audio_s) - warp(onsets))) > 0.1


def test_note_anchors_snap_one_frame_at_most(rich):
    _, midi = rich
    times, weights = refine.onset_groups(midi)
    k = np.round(times * FPS + 0.5).astype(int)           # the frame each group's onset rises into
    O = np.zeros((k.max() + 20, 12), dtype=np.float32)
    for g in range(len(times)):
        O[k[g] + (1 if g % 2 else 3), weights[g] > 0] = 1.0  # odd groups: one frame late; even: three
    midi_s = np.array([0.0, midi.get_end_time()])
    anchor_midi, anchor_audio = refine.note_anchors(midi, midi_s, midi_s, O, FPS, midi.get_end_time() + 1.0)
    moved = np.round((anchor_audio - anchor_midi) * FPS)
    inside = np.isin(anchor_midi, times[1:-1])
    odd = np.isin(anchor_midi, times[1::2]) & inside
    even = np.isin(anchor_midi, times[0::2]) & inside
    assert np.all(moved[odd] == 1) and np.all(moved[even] == 0)
    assert np.all(np.diff(anchor_audio) >= 0)


def test_the_map_follows_the_anchors_and_goes_on_at_their_mean_tempo():
    from engine.align import Alignment

    path_midi_s = np.linspace(0, 10, 50)  # the DTW path says slope 1 …
    anchor_midi_s, anchor_audio_s = np.array([2.0, 4.0, 6.0]), np.array([3.0, 5.5, 8.0])  # … the notes 1.25
    a = Alignment(path_midi_s, path_midi_s.copy(), 1.0, 10.0, 12.0, midi=None,
                  anchor_midi_s=anchor_midi_s, anchor_audio_s=anchor_audio_s)
    assert a.midi_to_audio(4.0) == pytest.approx(5.5) and a.midi_to_audio(5.0) == pytest.approx(6.75)
    assert a.midi_to_audio(0.0) == pytest.approx(3.0 - 2 * 1.25)   # before the first anchor
    assert a.midi_to_audio(8.0) == pytest.approx(8.0 + 2 * 1.25)   # after the last
    assert a.audio_to_midi(6.75) == pytest.approx(5.0)


def _isotonic_brute_force(y, w):
    """The weighted isotonic fit by its min–max formula: f_i = max_{j<=i} min_{k>=i} mean_w(y[j..k])."""
    n = len(y)
    mean = lambda a, b: np.dot(w[a:b + 1], y[a:b + 1]) / w[a:b + 1].sum()  # noqa: E731
    return np.array([max(min(mean(j, k) for k in range(i, n)) for j in range(i + 1)) for i in range(n)])


@pytest.mark.parametrize("seed", range(6))
def test_isotonic_increasing_is_the_least_squares_non_decreasing_fit(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    y = np.cumsum(rng.normal(0.05, 0.3, n)) + rng.normal(0, 0.4, n)
    if seed % 2:
        y = np.round(y)  # ties
    w = rng.uniform(0.05, 1.0, n)
    fit = refine.isotonic_increasing(y, w)
    assert np.all(np.diff(fit) >= -1e-12)
    assert np.allclose(fit, _isotonic_brute_force(y, w), atol=1e-10)
    assert np.allclose(refine.isotonic_increasing(np.sort(y), w), np.sort(y))  # nothing to pool: unchanged
    assert np.allclose(refine.isotonic_increasing(y), _isotonic_brute_force(y, np.ones(n)), atol=1e-10)


def test_refine_onsets_never_folds_time_back():
    O = np.zeros((200, 12), dtype=np.float32)
    O[50, 0] = O[40, 4] = 1.0  # the second group's onset lies before the first's
    times, weights = np.array([1.0, 2.0]), np.eye(12)[[0, 4]]
    refined, snapped = refine.refine_onsets(times, weights, np.array([50 / 86.13, 41 / 86.13]), O, 86.13, search_s=0.2)
    assert snapped.all() and refined[0] <= refined[1]


@pytest.mark.parametrize("seed", range(4))
def test_nonnegative_least_squares_agrees_with_scipy(seed):
    from scipy.optimize import nnls

    rng = np.random.default_rng(seed)
    X = np.c_[np.abs(rng.standard_normal((300, 5))) ** 2, np.ones(300)]
    truth = np.array([-0.5, 1.5, 0.0, 0.7, 0.2, 0.1])  # the first would be negative: held at zero
    y = X @ truth + 0.05 * rng.standard_normal(300)
    gram = X.T @ X
    gram[np.diag_indices_from(gram)] += 1e-9 * np.trace(gram)
    R = np.linalg.cholesky(gram).T
    want, _ = nnls(R, np.linalg.solve(R.T, X.T @ y))
    got = refine.nonnegative_least_squares(gram, X.T @ y)
    assert np.all(got >= 0) and np.allclose(got, want, atol=1e-9)
    assert got[0] == 0.0 and got[2] < 0.05 and abs(got[1] - 1.5) < 0.3  # absent parts at or near zero


def test_the_note_level_pass_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = ("import sys; from engine import refine, align_solve, align; import numpy as np; "
            "refine.isotonic_increasing(np.array([2.0, 1.0, 3.0])); print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
