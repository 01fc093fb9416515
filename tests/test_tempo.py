"""Tempo candidates, the pace classifier's input and ONNX model, the model registry, `earworm tempo`."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from engine import models, pace, tempo
from engine.errors import ModelError

SR = tempo.SR


def click_track(bpm: float, duration_s: float, accent_every: int = 0, sr: int = SR) -> np.ndarray:
    """Short decaying noise bursts every beat (louder every ``accent_every`` beats)."""
    rng = np.random.default_rng(0)
    y = np.zeros(int(duration_s * sr), np.float32)
    burst = (rng.normal(size=int(0.02 * sr)) * np.exp(-np.linspace(0, 8, int(0.02 * sr)))).astype(np.float32)
    for k, t in enumerate(np.arange(0.05, duration_s - 0.05, 60.0 / bpm)):
        i = int(t * sr)
        gain = 1.0 if accent_every and k % accent_every == 0 else 0.5
        y[i:i + burst.size] += gain * burst[: y.size - i]
    return y


def near(values, target, tol=0.04):
    return any(abs(v / target - 1) <= tol for v in values)


@pytest.fixture(scope="module")
def click_features():
    return tempo.analyze(click_track(100.0, 40.0))


# --- candidates ----------------------------------------------------------------------------------

def test_click_track_candidates_contain_tempo_half_and_double(click_features):
    candidates = tempo.tempo_candidates(click_features)
    bpms = [c.bpm for c in candidates]
    assert near(bpms, 100.0) and near(bpms, 50.0) and near(bpms, 200.0), bpms
    assert abs(candidates[0].bpm - 100.0) <= 2.0  # the beat itself is the most salient
    saliences = [c.salience for c in candidates]
    assert saliences == sorted(saliences, reverse=True)
    assert sum(saliences) == pytest.approx(1.0)
    assert all(tempo.MIN_BPM <= b <= tempo.MAX_BPM for b in bpms)


@pytest.mark.parametrize("bpm", [84.0, 150.0])
def test_candidates_follow_other_tempi(bpm):
    bpms = [c.bpm for c in tempo.tempo_candidates(tempo.analyze(click_track(bpm, 30.0)))]
    assert near(bpms, bpm) and near(bpms, bpm / 2) and near(bpms, bpm * 2), bpms


def test_segments_ignore_first_and_last_when_long_enough():
    fr = SR / tempo.HOP_LENGTH
    long = tempo.segment_bounds(int(240 * fr), fr)
    assert len(long) == 8 and long[0][0] > 20 * fr and long[-1][1] < 220 * fr
    assert len(tempo.segment_bounds(int(40 * fr), fr)) == 2  # short songs keep every segment


def test_strided_tempogram_equals_librosa(click_features):
    import librosa

    onset = click_features.onset_envelope
    reference = librosa.feature.tempogram(onset_envelope=onset, sr=SR, hop_length=tempo.HOP_LENGTH)
    np.testing.assert_allclose(tempo.autocorrelation_tempogram(onset, stride=8), reference[:, ::8], atol=1e-6)


def test_tempogram_around_peaks_at_the_beat(click_features):
    times, bpm, tg = tempo.tempogram_around(click_features, time_s=20.0, window_s=10.0)
    assert tg.shape == (bpm.size, times.size) and times.size > 10
    assert times.min() >= 14.9 and times.max() <= 25.1
    strongest = bpm[np.argmax(tg.mean(axis=1))]
    assert min(abs(strongest / b - 1) for b in (100.0, 50.0)) < 0.04  # autocorrelation: beat or its multiple
    local = tempo.local_candidates(click_features, time_s=20.0)
    assert near([c.bpm for c in local], 100.0)


def test_silence_and_snippets_give_no_candidates():
    assert tempo.tempo_candidates(tempo.analyze(np.zeros(SR * 10, np.float32))) == []
    assert tempo.tempo_candidates(tempo.analyze(click_track(120.0, 2.0))) == []  # two seconds hold no tempo


# --- labels and the classifier's input -----------------------------------------------------------

def test_metrical_paces_follow_the_meter():
    np.testing.assert_allclose(tempo.metrical_paces(120, 4, 2), [30, 60, 120, 240, 480, 960])
    np.testing.assert_allclose(tempo.metrical_paces(120, 3, 2), [40, 120, 240, 480, 960])
    np.testing.assert_allclose(tempo.metrical_paces(80, 2, 3), [40, 80, 240, 480, 960])  # 6/8: no 160
    mask = tempo.compatible_mask([60, 62.9, 63.1, 90, 180], tempo.metrical_paces(120, 4, 2))
    assert mask.tolist() == [True, True, False, False, False]


def test_beat_clips_put_beats_in_columns():
    bpm = 120.0
    features = tempo.analyze(click_track(bpm, 30.0))
    frames = pace.pace_frame_features(features.log_mel_db)
    assert frames.shape == (pace.PACE_CHANNELS, features.onset_envelope.size)
    clips = pace.beat_clips(frames, features.frame_rate, [bpm, bpm * 1.5], [5.0, 5.0])
    assert clips.shape == (2, pace.PACE_CHANNELS, pace.N_BEATS, pace.STEPS_PER_BEAT)
    assert np.all(np.isfinite(clips))
    flux = clips[:, pace.N_BANDS:].mean(axis=1)             # (2, beats, steps)
    peak_columns = flux.argmax(axis=2)
    assert len(set(peak_columns[0])) <= 2                     # at the tempo: the onset stays in its column
    assert len(set(peak_columns[1])) >= 2 and np.ptp(peak_columns[1]) >= pace.STEPS_PER_BEAT // 3  # ×3/2: it moves


def test_clip_starts_are_fixed_and_inside_the_song():
    a = pace.clip_starts(200.0, 90.0)
    np.testing.assert_array_equal(a, pace.clip_starts(200.0, 90.0))
    assert a.size == pace.N_CLIPS and a.min() >= tempo.SEGMENT_S
    assert a.max() + pace.N_BEATS * 60 / 90 <= 200.0 - tempo.SEGMENT_S + 60 / 90


# --- the ONNX model and the registry -------------------------------------------------------------

def test_periodicity_features_mark_the_period_and_its_multiples(click_features):
    profile = pace.autocorrelation_profile(click_features)
    assert profile.shape == (pace.PERIODICITY_CHANNELS, pace.MAX_LAG + 1)
    features = pace.periodicity_features(profile, click_features.frame_rate, [100.0, 150.0])
    assert features.shape == (2, pace.PERIODICITY_CHANNELS, len(pace.PERIODICITY_RATIOS))
    ratios = list(pace.PERIODICITY_RATIOS)
    at_tempo, at_three_halves = features[:, 0]   # onset-envelope channel
    assert at_tempo[ratios.index(1)] > 0.8 and at_tempo[ratios.index(2)] > 0.8 and at_tempo[ratios.index(0.5)] < 0.2
    # ×3/2 of the beat: the music does not repeat at its period, but at 3/2 of it (a beat) and 3× (two)
    assert at_three_halves[ratios.index(1)] < 0.2 and at_three_halves[ratios.index(2)] < 0.2
    assert at_three_halves[ratios.index(1.5)] > 0.8 and at_three_halves[ratios.index(3)] > 0.8


def test_registry_spec_matches_the_engine():
    spec = models.get_spec("pace")
    assert [t.name for t in spec.inputs] == ["clips", "periodicity"]
    assert spec.inputs[0].shape == (None, pace.PACE_CHANNELS, pace.N_BEATS, pace.STEPS_PER_BEAT)
    assert spec.inputs[1].shape == (None, pace.PERIODICITY_CHANNELS, len(pace.PERIODICITY_RATIOS))
    assert spec.metadata["feature_version"] == pace.FEATURE_VERSION
    assert models.model_path("pace").is_file()


def test_onnx_reproduces_pytorch_outputs_stored_at_export():
    """Torch-free: the fixture holds fixed inputs and the PyTorch model's outputs on them."""
    with np.load(models.model_path("pace").with_suffix(".fixture.npz")) as z:
        clips, periodicity, expected = z["clips"], z["periodicity"], z["logits"]
    (logits,) = models.run("pace", {"clips": clips, "periodicity": periodicity})
    assert logits.shape == expected.shape == (clips.shape[0], 2)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_onnx_matches_pytorch_model():
    torch = pytest.importorskip("torch", reason="torch is a training-time dependency (make models)")
    from models.pace.net import PaceEnsemble, PaceNet, load_arrays

    path = models.model_path("pace")
    with np.load(path.with_suffix(".fixture.npz")) as z:
        fixed, fixed_p = z["clips"], z["periodicity"]
        widths, p_width = tuple(int(w) for w in z["widths"]), int(z["periodicity_width"])
        n_members = int(z["n_members"]) if "n_members" in z.files else 1
    nets = [PaceNet(in_channels=pace.PACE_CHANNELS, widths=widths, periodicity_width=p_width,
                    periodicity_size=fixed_p.shape[1] * fixed_p.shape[2]) for _ in range(n_members)]
    net = nets[0] if n_members == 1 else PaceEnsemble(nets)
    with np.load(path.with_suffix(".weights.npz")) as w:
        load_arrays(net, w)
    net.eval()
    rng = np.random.default_rng(1)
    clips = np.concatenate([fixed, rng.normal(size=(6,) + fixed.shape[1:]).astype(np.float32)])
    periodicity = np.concatenate([fixed_p, rng.uniform(-1, 1, size=(6,) + fixed_p.shape[1:]).astype(np.float32)])
    with torch.no_grad():
        expected = net(torch.from_numpy(clips), torch.from_numpy(periodicity)).numpy()
    got = models.run("pace", {"clips": clips, "periodicity": periodicity})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_missing_model_file_names_the_file(tmp_path):
    missing = tmp_path / "pace.onnx"
    with pytest.raises(ModelError, match="not found") as info:
        models.session("pace", path=missing)
    assert info.value.path == str(missing) and str(missing) in str(info.value)


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"this is not a model\n" * 10, "not a valid ONNX model")])
def test_corrupt_model_file_is_refused(tmp_path, content, reason):
    bad = tmp_path / "pace.onnx"
    bad.write_bytes(content)
    with pytest.raises(ModelError, match=reason) as info:
        models.session("pace", path=bad)
    assert info.value.path == str(bad)


def test_truncated_model_file_is_refused(tmp_path):
    bad = tmp_path / "pace.onnx"
    bad.write_bytes(models.model_path("pace").read_bytes()[:2000])
    with pytest.raises(ModelError):
        models.session("pace", path=bad)


def test_model_with_other_inputs_or_outputs_is_refused(tmp_path):
    good = models.model_path("pace")
    real = models.get_spec("pace")
    clips, periodicity = real.inputs
    specs = {
        "shape": models.ModelSpec("pace-test-shape", "pace.onnx",
                                  (models.TensorSpec("clips", "float32", (None, 3, 16, 24)), periodicity), real.outputs),
        "inputs are": models.ModelSpec("pace-test-in", "pace.onnx", (clips,), real.outputs),
        "type": models.ModelSpec("pace-test-type", "pace.onnx",
                                 (clips, models.TensorSpec("periodicity", "int64", periodicity.shape)), real.outputs),
        "outputs are": models.ModelSpec("pace-test-out", "pace.onnx", real.inputs,
                                        (models.TensorSpec("embedding", "float32", (None, 2)),)),
        "metadata": models.ModelSpec("pace-test-meta", "pace.onnx", real.inputs, real.outputs,
                                     metadata={"feature_version": "pace-v0"}),
    }
    try:
        for reason, spec in specs.items():
            models.register(spec)
            with pytest.raises(ModelError, match=reason) as info:
                models.session(spec.name, path=good)
            assert info.value.path == str(good)
    finally:
        for spec in specs.values():
            models.REGISTRY.pop(spec.name, None)


def test_models_dir_can_be_moved(tmp_path, monkeypatch):
    real = models.model_path("pace")
    monkeypatch.setenv("EARWORM_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="not found"):
        models.session("pace")
    shutil.copy(real, tmp_path / "pace.onnx")
    assert models.session("pace").get_inputs()[0].name == "clips"


# --- pace classification and the CLI -------------------------------------------------------------

def test_classify_paces_fills_probabilities_and_reranks(click_features):
    before = {round(c.bpm, 6): c.salience for c in tempo.tempo_candidates(click_features)}
    candidates = pace.classify_paces(click_features, tempo.tempo_candidates(click_features))
    assert {round(c.bpm, 6) for c in candidates} == set(before)
    for c in candidates:
        assert 0.0 <= c.pace_probability <= 1.0 and 0.0 <= c.beat_probability <= 1.0
        assert c.compatible == (c.pace_probability >= 0.5)
        assert c.tempogram_salience == before[round(c.bpm, 6)]
    expected = pace.softmax(pace.beat_scores([c.bpm for c in candidates], [c.tempogram_salience for c in candidates],
                                             [c.beat_probability for c in candidates],
                                             [c.pace_probability for c in candidates]))
    np.testing.assert_allclose([c.salience for c in candidates], expected, rtol=1e-6)
    assert [c.salience for c in candidates] == sorted((c.salience for c in candidates), reverse=True)
    live = pace.classify_paces(click_features, tempo.local_candidates(click_features, 20.0), n_clips=2, center_s=20.0)
    assert all(c.compatible is not None for c in live)


def test_beat_scores_with_unit_weights_are_the_product_and_the_prior_prefers_moderate_tempi():
    bpm, salience, beat, fits = [60.0, 120.0, 240.0], [0.2, 0.3, 0.5], [0.5, 0.5, 0.5], [0.9, 0.9, 0.9]
    product = np.array(salience) * np.array(beat) * np.array(fits)
    unit = {"salience": 1.0, "beat": 1.0, "pace": 1.0, "log2_bpm": 0.0, "log2_bpm_squared": 0.0}
    np.testing.assert_allclose(pace.softmax(pace.beat_scores(bpm, salience, beat, fits, weights=unit)),
                               product / product.sum())
    flat = pace.beat_scores(bpm, [1 / 3] * 3, beat, fits, weights=dict(unit, log2_bpm_squared=-0.5))
    assert np.argmax(flat) == 1 and flat[0] == pytest.approx(flat[2])  # symmetric in octaves around 120
    no_salience = pace.beat_scores(bpm, salience, [0.9, 0.1, 0.1], fits, weights=dict(unit, salience=0.0))
    assert np.argmax(no_salience) == 0


def test_shipped_ranking_is_the_best_on_the_validation_songs():
    """engine.pace's constants follow models/pace/ranking.json (songs the classifier never saw)."""
    from pathlib import Path

    doc = json.loads((Path(__file__).resolve().parents[1] / "models" / "pace" / "ranking.json").read_text())
    on_validation = {name: r["validation_songs"]["accuracy1"] + r["validation_songs"]["accuracy2"]
                     for name, r in doc["rankings"].items()}
    assert on_validation[doc["chosen"]] >= max(on_validation.values()) - 1e-9
    assert pace.RANK_WEIGHTS == pytest.approx(doc["chosen_engine_form"], abs=1e-3)


def test_ranking_choice_takes_the_best_sum_on_validation_and_ties_go_to_the_simplest():
    from models.pace.ranking import choose

    def row(a1, a2):
        return {"validation_songs": {"accuracy1": a1, "accuracy2": a2}, "classifier_training_songs": {}}

    assert choose({"product": row(0.85, 0.98), "prior": row(0.80, 0.99), "fitted": row(0.87, 0.97)}) == "fitted"
    assert choose({"product": row(0.85, 0.98), "prior": row(0.86, 0.97), "fitted": row(0.84, 0.99)}) == "product"


def test_choice_group_is_the_songs_after_the_data_sets_own():
    """The model-choice songs continue each source's draw where the data set stops: none of them
    is in the data set, and together they are the draw of the larger counts."""
    from models.pace.data import corpus_songs

    small = {"ryans": 2, "oneills": 0, "essen": 0, "bach": 0, "groove": 3}
    more = {"ryans": 2, "oneills": 0, "essen": 0, "bach": 0, "groove": 2}
    data_set = [(song.song_id, split) for song, split in corpus_songs(small)]
    choice = [(song.song_id, split) for song, split in corpus_songs(more, after=small)]
    larger = [song.song_id for song, _ in corpus_songs({k: small[k] + more[k] for k in small})]
    assert {split for _, split in data_set} <= {"train", "test"} and {split for _, split in choice} == {"choice"}
    assert not {i for i, _ in data_set} & {i for i, _ in choice}
    assert sorted(larger) == sorted([i for i, _ in data_set] + [i for i, _ in choice])
    assert [i for i, _ in choice if i.startswith("groove")] == ["groove-0003", "groove-0004"]


def test_a_model_replaces_another_only_finding_more_tempi_without_classifying_worse():
    from models.pace.choice import ACCURACY_SLACK, replaces

    def summary(accuracy, acc1, acc2):
        return {"accuracy_candidates": accuracy, "tempo_accuracy1": acc1, "tempo_accuracy2": acc2}

    current = summary(0.96, 0.90, 0.97)
    assert replaces(summary(0.96, 0.91, 0.97), current)
    assert replaces(summary(0.96 - ACCURACY_SLACK / 2, 0.90, 0.98), current)
    assert not replaces(summary(0.96 - 2 * ACCURACY_SLACK, 0.95, 0.99), current)  # classifies worse
    assert not replaces(summary(0.97, 0.91, 0.96), current)  # the same tempo figures are not enough
    assert not replaces(current, current)


def test_model_card_reports_the_model_choice_songs_verdict(tmp_path):
    from models.pace.card import _choice_text

    def model(acc1, ranking):
        return {"ranking": ranking, "accuracy_candidates": 0.967, "tempo_accuracy1": acc1, "tempo_accuracy2": 0.975,
                "rankings": {ranking: {"accuracy1": acc1, "accuracy2": 0.975}, "other": {"accuracy1": 0.5,
                                                                                         "accuracy2": 0.99}}}

    doc = {"n_songs": 636, "by_source": {"bach": 155, "groove": 481}, "label_ceiling_accuracy1": 0.895,
           "models": {"shipped": model(0.890, "fitted"), "ensemble": model(0.877, "product")},
           "paired_tempo": {"accuracy1": {"only_first": 23, "only_second": 15}}, "second_replaces_first": False}
    path = tmp_path / "choice.json"
    assert _choice_text(path) == ""  # not run yet: no step
    path.write_text(json.dumps(doc))
    text = " ".join(_choice_text(path).split())
    assert "on 636 songs" in text and "155 bach, 481 groove" in text and "**not taken**" in text
    assert "Acc1 / Acc2 0.890 / 0.975 with its fitted ranking" in text and "0.877 / 0.975" in text
    assert "38 songs (23 only shipped, 15 only ensemble)" in text and "ensemble with its other: 0.500 / 0.990" in text
    path.write_text(json.dumps(dict(doc, second_replaces_first=True)))
    assert "**taken**" in _choice_text(path)


def test_model_card_names_each_members_kept_epoch_and_the_ensembles_validation_score():
    from models.pace.card import _members_text

    def history(*scores):  # one entry per epoch, both accuracies equal to the score
        return [{"epoch": i + 1, "accuracy_candidates": s, "accuracy_metrical": s} for i, s in enumerate(scores)]

    cfg = {"seed": 0, "threads": 2}
    single = _members_text({"history": history(0.9, 0.95, 0.93), "train_seconds": 60, "train_cpu_seconds": 90}, cfg)
    assert single.startswith("Seed 0;") and "0.9500 (epoch 2)" in single and "1.0 min wall clock" in single
    members = [{"seed": s, "history": history(*h), "threads": 1, "train_seconds": 60, "train_cpu_seconds": 60}
               for s, h in ((0, (0.96, 0.97)), (1, (0.98, 0.94)))]
    both = _members_text({"members": members, "validation": {"score": 0.975, "accuracy_candidates": 0.97,
                                                             "accuracy_metrical": 0.98},
                          "train_seconds": 120, "train_cpu_seconds": 120}, cfg)
    assert "2 members trained alike from seeds 0, 1" in both
    assert "seed 0 0.9700 (epoch 2), seed 1 0.9800 (epoch 1)" in both
    assert "The ensemble on the validation songs: 0.9750" in both
    assert "2.0 min wall clock" in both and "1 thread(s) per member" in both


def test_candidates_are_stored_in_a_project_and_read_back(tmp_path):
    from engine.store import TEMPO_CANDIDATES, Project

    wav = tmp_path / "click.wav"
    sf.write(wav, click_track(100.0, 8.0), SR)
    found = [tempo.TempoCandidate(100.0, 0.7, 0.9, True), tempo.TempoCandidate(150.0, 0.3, 0.1, False)]
    with Project(tmp_path / "p.earworm") as project:
        audio = project.add_file(wav)
        tempo.store_candidates(project, audio.id, found)
        tempo.store_candidates(project, audio.id, found[:1] + found)  # replaces, never piles up
        stored = project.results(TEMPO_CANDIDATES, audio.id, params=None)
        assert len(stored) == 1 and stored[0].value == 100.0
        back = tempo.stored_candidates(project, audio.id)
        assert [(c.bpm, c.compatible) for c in back] == [(100.0, True), (100.0, True), (150.0, False)]
        project.put_result(TEMPO_CANDIDATES, audio.id, data=[{"bpm": 96.0}, 120], params="older layout")
        assert [c.bpm for c in tempo.stored_candidates(project, audio.id)][-2:] == [96.0, 120.0]


def test_cli_tempo_stores_candidates_in_a_project(tmp_path, capsys):
    from engine.cli import main
    from engine.store import Project

    wav = tmp_path / "click.wav"
    sf.write(wav, click_track(100.0, 30.0), SR)
    out = tmp_path / "out.json"
    assert main(["tempo", str(wav), "--json", str(out), "--project", str(tmp_path / "p.earworm")]) == 0
    printed = json.loads(out.read_text())["candidates"]
    with Project(tmp_path / "p.earworm") as project:
        audio = project.file_by_path(wav)
        assert audio is not None  # the recording was added to the project
        stored = tempo.stored_candidates(project, audio.id)
    assert [round(c.bpm, 2) for c in stored] == [c["bpm"] for c in printed]
    assert [c.compatible for c in stored] == [c["compatible"] for c in printed]
    assert "stored" in capsys.readouterr().out


def drum_groove(bpm: float, beats_per_bar: int, duration_s: float = 30.0):
    """Kick on the downbeat, snare on the other beats' backbeats, hi-hat eighths, a bass note per bar."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    drums, bass = pretty_midi.Instrument(0, is_drum=True), pretty_midi.Instrument(33)
    beat_s = 60.0 / bpm
    n_beats = int(duration_s / beat_s)
    for k in range(n_beats):
        t = k * beat_s
        pos = k % beats_per_bar
        if pos == 0:
            drums.notes.append(pretty_midi.Note(110, 36, t, t + 0.1))
            bass.notes.append(pretty_midi.Note(100, 36 + 5 * ((k // beats_per_bar) % 2), t, t + beat_s * beats_per_bar * 0.9))
        elif pos % 2 == 1 or beats_per_bar == 3:
            drums.notes.append(pretty_midi.Note(95, 38, t, t + 0.1))
        for h in (0, 0.5):
            drums.notes.append(pretty_midi.Note(70 if h else 85, 42, t + h * beat_s, t + h * beat_s + 0.05))
    pm.instruments = [drums, bass]
    return pm


@pytest.mark.parametrize("meter", [4, 3])
def test_classifier_tells_metrical_levels_from_their_neighbours(meter):
    """A clean drum groove: the beat, half and double are paces of a 4/4 song; in 3/4 the bar
    (a third of the beat) is, and half the beat is not; ×3/2 and ×2/3 never are."""
    from engine.media import synthesize

    bpm = 120.0
    y = synthesize(drum_groove(bpm, meter), sr=SR, soundfont="/usr/share/sounds/sf2/TimGM6mb.sf2")
    features = tempo.analyze(y)
    fits = [bpm, 2 * bpm] + ([bpm / 2] if meter == 4 else [bpm / 3])
    misfits = [1.5 * bpm, bpm * 2 / 3] + ([bpm / 2] if meter == 3 else [])
    prob = 1 / (1 + np.exp(-pace.pace_logits(features, fits + misfits)[:, 0]))
    assert np.all(prob[: len(fits)] > 0.5), prob
    assert np.all(prob[len(fits):] < 0.5), prob


def test_cli_tempo_writes_the_documented_json(tmp_path, capsys):
    from engine.cli import main

    wav = tmp_path / "click.wav"
    sf.write(wav, click_track(100.0, 30.0), SR)
    out = tmp_path / "out.json"
    assert main(["tempo", str(wav), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert list(doc) == ["candidates"] and doc["candidates"]
    for c in doc["candidates"]:
        assert set(c) == {"bpm", "salience", "pace_probability", "compatible"}
        assert isinstance(c["compatible"], bool) and 0 <= c["pace_probability"] <= 1
    saliences = [c["salience"] for c in doc["candidates"]]
    assert saliences == sorted(saliences, reverse=True)
    assert near([c["bpm"] for c in doc["candidates"]], 100.0)
    table = capsys.readouterr().out
    assert "compatible" in table and f"{doc['candidates'][0]['bpm']:.1f}" in table


@pytest.mark.parametrize("content", [b"RIFF0000WAVEjunk", b"", None])
def test_cli_tempo_bad_file_is_one_line_error(tmp_path, capsys, content):
    from engine.cli import main

    bad = tmp_path / "song.wav"
    if content is not None:
        bad.write_bytes(content)
    assert main(["tempo", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}:") and "\n" not in err


def test_cli_tempo_missing_model_is_one_line_error(tmp_path, monkeypatch, capsys):
    from engine.cli import main

    wav = tmp_path / "click.wav"
    sf.write(wav, click_track(100.0, 12.0), SR)
    monkeypatch.setenv("EARWORM_MODELS_DIR", str(tmp_path / "nowhere"))
    assert main(["tempo", str(wav)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'nowhere' / 'pace.onnx'}:") and "not found" in err
