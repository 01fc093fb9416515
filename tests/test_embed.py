"""Cross-modal embeddings: features, ONNX models, retrieval, identification, `earworm identify`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine import embed as E
from engine import embed_features as ef
from engine import media, models
from engine.cli import main as cli_main
from engine.errors import ModelError
from tests.midi_fixtures import MUSESCORE_LITE

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo"


# --- features ------------------------------------------------------------------------------------


def test_midi_frames_mark_onsets_and_sustain():
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(100, 60, 1.0, 2.0))
    drums = pretty_midi.Instrument(0, is_drum=True)
    drums.notes.append(pretty_midi.Note(100, 36, 0.0, 0.1))
    pm.instruments += [inst, drums]
    roll = ef.midi_frames(pm)
    fps = ef.frames_per_second()
    row = 60 - ef.ROLL_MIDI_LO
    first, last = int(np.floor(1.0 * fps)), int(np.ceil(2.0 * fps))
    assert roll[first, row] == 1.0 and np.all(roll[first + 1:last, row] == 0.5)
    assert roll[:first, row].sum() == 0 and roll[last:, row].sum() == 0
    assert roll.sum() == roll[:, row].sum()  # the drum note is not a pitch


def test_snippets_cover_the_end_and_pad_short_input():
    starts = ef.snippet_starts(100, 10)
    assert starts[0] == 0 and starts[-1] == 100 - ef.SNIPPET_FRAMES and np.all(np.diff(starts) > 0)
    frames = np.arange(5 * 3, dtype=np.float32).reshape(5, 3) + 1
    s = ef.cut_snippets(frames, ef.snippet_starts(5, 4))
    assert s.shape == (1, 1, 3, ef.SNIPPET_FRAMES)
    np.testing.assert_array_equal(s[0, 0, :, :5], frames.T)
    assert np.all(s[0, 0, :, 5:] == 0)


def test_audio_snippets_do_not_depend_on_the_level():
    rng = np.random.default_rng(0)
    t = np.arange(3 * ef.SR) / ef.SR
    y = (np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(len(t))).astype(np.float32)
    loud = ef.audio_snippets(ef.audio_frames(0.8 * y), [0])
    quiet = ef.audio_snippets(ef.audio_frames(0.05 * y), [0])
    np.testing.assert_allclose(loud, quiet, atol=1e-4)
    assert loud.max() == pytest.approx(1.0)
    # A4 = MIDI 69 is the loudest bin.
    assert int(loud[0, 0].mean(axis=1).argmax()) == 69 - ef.AUDIO_MIDI_LO


def test_audio_frames_refuse_other_sample_rates():
    with pytest.raises(ValueError, match="22050"):
        ef.audio_frames(np.zeros(44100, np.float32), sr=44100)


# --- retrieval and scoring (pure numpy) ----------------------------------------------------------


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_retrieve_equals_brute_force_ranking():
    rng = np.random.default_rng(0)
    Q, C = _unit(rng.normal(size=(7, 32))), _unit(rng.normal(size=(50, 32)))
    idx, sims = E.retrieve(Q, C, k=5, hubness_neighbours=0)
    S = Q @ C.T
    np.testing.assert_array_equal(idx, np.argsort(-S, axis=1)[:, :5])
    np.testing.assert_allclose(sims, np.sort(S, axis=1)[:, ::-1][:, :5], rtol=1e-6)


def test_piece_similarities_take_each_pieces_best_snippet():
    rng = np.random.default_rng(1)
    lib = E.Library(names=["a", "b", "c"], paths=["a", "b", "c"], composers=["x", None, "x"],
                    vectors=_unit(rng.normal(size=(9, 32))), offsets=np.array([0, 2, 7, 9]))
    Q = _unit(rng.normal(size=(4, 32)))
    B = E.piece_similarities(Q, lib)
    S = Q @ lib.vectors.T
    expected = np.stack([S[:, 0:2].max(1), S[:, 2:7].max(1), S[:, 7:9].max(1)], axis=1)
    np.testing.assert_allclose(B, expected, rtol=1e-6)
    np.testing.assert_array_equal(lib.piece_of, [0, 0, 1, 1, 1, 1, 1, 2, 2])


def test_identify_ranks_the_matching_piece_first_and_its_composer():
    rng = np.random.default_rng(2)
    vectors = _unit(rng.normal(size=(40 * 20, 32)))
    lib = E.Library(names=[f"p{i}" for i in range(40)], paths=[f"p{i}" for i in range(40)],
                    composers=["bach" if i % 2 else "palestrina" for i in range(40)],
                    vectors=vectors, offsets=np.arange(0, 801, 20))
    clip = _unit(vectors[27 * 20 + 3: 27 * 20 + 15] + 0.05 * rng.normal(size=(12, 32)))
    result = E.identify(clip, lib, threshold=3.0)
    assert result.best.name == "p27" and result.best.votes == 12
    assert not result.unknown and result.known_score > 10
    assert result.composers[0][0] == "bach"
    assert json.loads(json.dumps(result.to_json()))["pieces"][0]["name"] == "p27"
    noise = _unit(rng.normal(size=(12, 32)))  # nothing in the library
    assert E.identify(noise, lib, threshold=3.0).unknown


def test_a_library_too_small_for_the_unknown_test_says_so_and_writes_strict_json():
    rng = np.random.default_rng(4)
    vectors = _unit(rng.normal(size=(2 * 20, 32)))
    lib = E.Library(names=["p0", "p1"], paths=["p0", "p1"], composers=[None, None],
                    vectors=vectors, offsets=np.array([0, 20, 40]))
    result = E.identify(_unit(vectors[23:30] + 0.05 * rng.normal(size=(7, 32))), lib, threshold=3.0)
    assert result.best.name == "p1" and not result.open_set_tested and not result.unknown
    doc = json.loads(json.dumps(result.to_json(), allow_nan=False))  # no Infinity / NaN in the file
    assert doc["known_score"] is None and doc["open_set_tested"] is False
    assert result.verdict().startswith("Best match: p1 (not tested")
    three = E.Library(names=["p0", "p1", "p2"], paths=["p0", "p1", "p2"], composers=[None] * 3,
                      vectors=_unit(rng.normal(size=(60, 32))), offsets=np.array([0, 20, 40, 60]))
    assert E.identify(three.vectors[25:32], three, threshold=3.0).open_set_tested


def test_chroma_verification_decides_between_pieces_the_embeddings_cannot_tell_apart():
    rng = np.random.default_rng(3)
    vectors = _unit(rng.normal(size=(20, 32)))
    twins = np.concatenate([vectors, vectors])  # two pieces with the very same snippet vectors
    harmony = [ef._mean_free_unit(rng.random((60, 12)).astype(np.float32)) for _ in range(2)]
    lib = E.Library(names=["first", "second"], paths=["first", "second"], composers=[None, None],
                    vectors=twins, offsets=np.array([0, 20, 40]), chroma=harmony)
    clip_vectors = vectors[5:12]
    clip_chroma = harmony[1][10:40]  # the clip's harmony is the second piece's
    assert E.identify(clip_vectors, lib, threshold=-np.inf, query_chroma=clip_chroma).best.name == "second"
    clip_chroma = harmony[0][10:40]
    assert E.identify(clip_vectors, lib, threshold=-np.inf, query_chroma=clip_chroma).best.name == "first"


def test_roll_chroma_of_a_triad_peaks_at_its_three_pitch_classes():
    roll = np.zeros((5, ef.N_ROLL_BINS), np.float32)
    for pitch in (60, 64, 67):  # C E G
        roll[:, pitch - ef.ROLL_MIDI_LO] = 1.0
    chroma = ef.roll_chroma(roll)
    np.testing.assert_allclose(np.linalg.norm(chroma, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(chroma.sum(axis=1), 0.0, atol=1e-5)  # mean-free
    assert set(np.argsort(-chroma[0])[:3]) == {0, 4, 7}


def test_audio_chroma_of_a_synthesized_chord_peaks_at_its_pitch_classes():
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    for pitch in (57, 61, 64):  # A C# E
        inst.notes.append(pretty_midi.Note(100, pitch, 0.0, 2.0))
    pm.instruments.append(inst)
    y = media.synthesize(pm, sr=ef.SR)
    chroma = ef.audio_chroma(ef.audio_frames(y, ef.SR))
    middle = chroma[5:15].mean(axis=0)
    assert set(np.argsort(-middle)[:3]) == {9, 1, 4}
    silent = ef.audio_chroma(np.zeros((3, ef.N_AUDIO_BINS), np.float32))
    assert np.all(silent == 0)


def test_known_score_is_high_only_when_one_piece_stands_out():
    flat = np.linspace(0.50, 0.55, 30)
    standout = np.concatenate([[0.9], flat[1:]])
    assert E.known_score(standout) > 20 > 3 > E.known_score(flat)


def test_file_summary_is_a_unit_vector():
    rng = np.random.default_rng(3)
    s = E.file_summary(_unit(rng.normal(size=(10, 32))))
    assert s.shape == (32,) and np.linalg.norm(s) == pytest.approx(1.0)
    assert np.all(E.file_summary(np.zeros((0, 32))) == 0)


# --- the ONNX models -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [E.AUDIO_MODEL, E.MIDI_MODEL])
def test_onnx_reproduces_pytorch_outputs_stored_at_export(name):
    """Torch-free: the fixture holds fixed inputs and the PyTorch model's outputs on them."""
    with np.load(models.model_path(name).with_suffix(".fixture.npz")) as z:
        snippets, expected = z["snippets"], z["embedding"]
    (got,) = models.run(name, {"snippets": snippets})
    assert got.shape == expected.shape == (len(snippets), E.EMBED_DIM)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name, n_bins", [(E.AUDIO_MODEL, ef.N_AUDIO_BINS), (E.MIDI_MODEL, ef.N_ROLL_BINS)])
def test_onnx_matches_pytorch_model(name, n_bins):
    torch = pytest.importorskip("torch", reason="torch is a training-time dependency (make models)")
    from models.embed.net import SnippetEncoder, load_arrays

    path = models.model_path(name)
    with np.load(path.with_suffix(".fixture.npz")) as z:
        fixed, widths = z["snippets"], tuple(int(w) for w in z["widths"])
    net = SnippetEncoder(n_bins, widths)
    with np.load(path.with_suffix(".weights.npz")) as w:
        load_arrays(net, w)
    net.eval()
    rng = np.random.default_rng(4)
    snippets = np.concatenate([fixed, rng.uniform(0, 1, size=(5,) + fixed.shape[1:]).astype(np.float32)])
    with torch.no_grad():
        expected = net(torch.from_numpy(snippets)).numpy()
    np.testing.assert_allclose(models.run(name, {"snippets": snippets})[0], expected, rtol=1e-4, atol=1e-4)


def test_registry_spec_matches_the_features():
    assert models.get_spec(E.AUDIO_MODEL).inputs[0].shape == (None, 1, ef.N_AUDIO_BINS, ef.SNIPPET_FRAMES)
    assert models.get_spec(E.MIDI_MODEL).inputs[0].shape == (None, 1, ef.N_ROLL_BINS, ef.SNIPPET_FRAMES)
    assert models.get_spec(E.AUDIO_MODEL).metadata["feature_version"] == ef.FEATURE_VERSION
    assert 0 < E.unknown_threshold() < 100


def test_missing_model_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EARWORM_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="not found") as info:
        E.recording_vectors(DEMO / "demo.mp3")
    assert info.value.path == str(tmp_path / "embed_audio.onnx")


def test_mismatched_model_gives_a_clear_error(tmp_path, monkeypatch):
    """The MIDI pathway's file where the audio pathway's belongs: other input shape, refused."""
    shutil.copy(models.model_path(E.MIDI_MODEL), tmp_path / "embed_audio.onnx")
    shutil.copy(models.model_path("pace"), tmp_path / "embed_midi.onnx")
    monkeypatch.setenv("EARWORM_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="shape") as info:
        E.embed_audio_snippets(np.zeros((1, 1, ef.N_AUDIO_BINS, ef.SNIPPET_FRAMES), np.float32))
    assert info.value.path == str(tmp_path / "embed_audio.onnx")
    with pytest.raises(ModelError, match="inputs are"):
        E.embed_midi_snippets(np.zeros((1, 1, ef.N_ROLL_BINS, ef.SNIPPET_FRAMES), np.float32))


# --- identification of real music ----------------------------------------------------------------


CHORALES = ("bach/bwv66.6", "bach/bwv269", "bach/bwv84.5", "bach/bwv40.8")


@pytest.fixture(scope="module")
def fixture_library(tmp_path_factory):
    """The demo MIDI (Maple Leaf Rag) and four Bach chorales as a library folder + a composers.csv."""
    from engine import synthetic

    folder = tmp_path_factory.mktemp("library")
    shutil.copy(DEMO / "demo.mid", folder / "maple_leaf_rag.mid")
    rows = ["file,composer", "maple_leaf_rag.mid,joplin"]
    for work in CHORALES:
        midi = synthetic.music21_to_pretty_midi(work)
        name = work.replace("/", "_").replace(".", "-") + ".mid"
        midi.write(str(folder / name))
        rows.append(f"{name},bach")
    (folder / "composers.csv").write_text("\n".join(rows) + "\n")
    return folder


def _clip(path, out, start_s, duration_s):
    import soundfile as sf

    y = media.load_audio(path, sr=ef.SR)
    sf.write(str(out), y[int(start_s * ef.SR): int((start_s + duration_s) * ef.SR)], ef.SR)
    return out


def test_identifies_the_demo_recording_from_a_clip(fixture_library, tmp_path):
    clip = _clip(DEMO / "demo.mp3", tmp_path / "clip.wav", 20.0, 20.0)
    paths, composers = E.library_paths(fixture_library)
    lib = E.build_library(paths, composers)
    assert len(lib) == 5 and not lib.bad_files
    result = E.identify_recording(clip, lib)
    assert result.best.name == "maple_leaf_rag"
    assert result.best.composer == "joplin" and result.composers[0][0] == "joplin"


def test_identifies_a_chorale_played_faster_with_another_soundfont(fixture_library, tmp_path):
    import soundfile as sf

    target = fixture_library / "bach_bwv84-5.mid"
    midi = media.load_midi(target)
    for inst in midi.instruments:
        inst.program = 40  # strings instead of the file's piano
        for n in inst.notes:
            n.start, n.end = n.start / 1.15, n.end / 1.15
    y = media.synthesize(midi, sr=ef.SR, soundfont=MUSESCORE_LITE)
    sf.write(str(tmp_path / "played.wav"), y, ef.SR)
    lib = E.build_library(*E.library_paths(fixture_library))
    assert E.identify_recording(tmp_path / "played.wav", lib).best.name == "bach_bwv84-5"


def test_a_silent_clip_is_an_audio_error_naming_it(fixture_library, tmp_path):
    import soundfile as sf

    from engine.errors import AudioError

    sf.write(str(tmp_path / "hush.wav"), np.zeros(5 * ef.SR, dtype=np.float32), ef.SR)
    lib = E.build_library(*E.library_paths(fixture_library))
    with pytest.raises(AudioError, match="hush.wav.*nothing to identify"):
        E.identify_recording(tmp_path / "hush.wav", lib)


def test_build_library_lists_bad_files_and_goes_on(fixture_library, tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd garbage")
    lib = E.build_library([str(bad), str(fixture_library / "maple_leaf_rag.mid")])
    assert lib.names == ["maple_leaf_rag"]
    assert lib.bad_files[0][0] == str(bad) and "MIDI" in lib.bad_files[0][1]


# --- the command line ----------------------------------------------------------------------------


def test_cli_identify_prints_the_ranking_and_writes_json(fixture_library, tmp_path, capsys):
    clip = _clip(DEMO / "demo.mp3", tmp_path / "clip.wav", 5.0, 25.0)
    out = tmp_path / "id.json"
    assert cli_main(["identify", str(clip), "--library", str(fixture_library), "--top", "3", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "maple_leaf_rag" in text.splitlines()[2] and "(joplin)" in text
    result = json.loads(out.read_text())
    assert result["pieces"][0]["name"] == "maple_leaf_rag" and len(result["pieces"]) == 3
    assert set(result) >= {"unknown", "known_score", "threshold", "composers"}


@pytest.mark.parametrize("content", [b"", b"not audio at all" * 100])
def test_cli_identify_bad_audio_is_one_line_error(fixture_library, tmp_path, capsys, content):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(content)
    assert cli_main(["identify", str(bad), "--library", str(fixture_library)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(bad) in err[0]


def test_cli_identify_bad_library_is_one_line_error(tmp_path, capsys):
    clip = _clip(DEMO / "demo.mp3", tmp_path / "clip.wav", 0.0, 5.0)
    assert cli_main(["identify", str(clip), "--library", str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["identify", str(clip), "--library", str(empty)]) == 1
    assert "no MIDI files" in capsys.readouterr().err


def test_cli_identify_against_a_one_piece_library_names_it_untested_and_writes_strict_json(tmp_path, capsys):
    clip = _clip(DEMO / "demo.mp3", tmp_path / "clip.wav", 5.0, 20.0)
    library = tmp_path / "one"
    library.mkdir()
    (library / "demo.mid").write_bytes((DEMO / "demo.mid").read_bytes())
    out = tmp_path / "id.json"
    assert cli_main(["identify", str(clip), "--library", str(library), "--json", str(out)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "Best match: demo" in first and "not tested for an unknown piece" in first
    assert "1 piece in the library" in first
    doc = json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert doc["open_set_tested"] is False and doc["known_score"] is None and not doc["unknown"]
    assert doc["pieces"][0]["name"] == "demo"
    # The listed score is the clip's similarity to the piece, not a z-score among one piece (always 0).
    assert 0.5 < doc["pieces"][0]["score"] <= 1.0


def test_hubness_correction_stops_a_hub_from_crowding_every_query():
    """Queries sharing an offset (a soundfont's colour, say) all lean towards the candidate along
    it: a hub that tops most plain rankings. CSLS marks it down and the own candidates come up."""
    rng = np.random.default_rng(3)
    n, d = 40, 16
    offset = _unit(rng.normal(size=(1, d)))[0]
    C = rng.normal(size=(n, d))
    Q = _unit(C + 0.8 * rng.normal(size=(n, d)) + np.sqrt(d) * offset)  # query i belongs with candidate i
    C = _unit(np.vstack([C, offset]))  # candidate n: the hub
    plain, _ = E.retrieve(Q, C, k=1, hubness_neighbours=0)
    corrected, _ = E.retrieve(Q, C, k=1)
    assert np.mean(plain[:, 0] == n) > 0.5 and np.mean(corrected[:, 0] == n) < 0.25
    assert np.mean(corrected[:, 0] == np.arange(n)) > np.mean(plain[:, 0] == np.arange(n)) + 0.3
    # the ranking is CSLS's, computed by hand
    S = Q @ C.T
    r_q = np.sort(S, axis=1)[:, -10:].mean(axis=1)
    r_c = np.sort(S, axis=0)[-10:].mean(axis=0)
    np.testing.assert_array_equal(corrected[:, 0], np.argmax(2 * S - r_q[:, None] - r_c[None, :], axis=1))
    # one query: nothing to tell hubs by, the plain ranking
    one, _ = E.retrieve(Q[:1], C, k=3)
    np.testing.assert_array_equal(one, E.retrieve(Q[:1], C, k=3, hubness_neighbours=0)[0])
