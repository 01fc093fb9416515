"""Library matching's embedding stage: its scores by hand, its place in the cascade, on and off."""
from __future__ import annotations

import numpy as np
import pytest

from engine import match_embedding as me
from engine.errors import ModelError
from engine.match import MatchError, MatchParams, run_match

# Recorded chorales (each rendered with another soundfont, its own tempo), two with no recording,
# and a recording of a chorale that is not in the MIDI folder: one style, so the stage must tell
# pieces apart, not textures.
RECORDED = ("bach/bwv66.6", "bach/bwv269", "bach/bwv84.5", "bach/bwv40.8")
MIDI_ONLY = ("bach/bwv26.6", "bach/bwv153.1")
STRAY = "bach/bwv10.7"


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# ---- the scores by hand (no models) ------------------------------------------------------------

@pytest.mark.parametrize("block_cells", [1, 40, 1 << 24])
def test_set_scores_follow_their_definition_in_any_blocking(block_cells):
    rng = np.random.default_rng(0)
    midis = [_unit(rng.standard_normal((n, 8))) for n in (3, 7, 1, 5)]
    audios = [_unit(rng.standard_normal((n, 8))) for n in (4, 2, 6)]
    got = me.set_scores(midis, audios, block_cells=block_cells)
    for i, m in enumerate(midis):
        for j, a in enumerate(audios):
            S = a @ m.T
            want = 0.5 * (S.max(axis=1).mean() + S.max(axis=0).mean())
            assert got[i, j] == pytest.approx(want, abs=1e-6)


def test_summary_candidates_are_the_top_of_the_dense_zscored_scores():
    rng = np.random.default_rng(1)
    feats_m = [{"emb_summary": v} for v in _unit(rng.standard_normal((23, 32)))]
    feats_a = [{"emb_summary": v} for v in _unit(rng.standard_normal((31, 32)))]
    Z = me.score_matrix(feats_m, feats_a, "summary")
    S = np.stack([f["emb_summary"] for f in feats_m]) @ np.stack([f["emb_summary"] for f in feats_a]).T
    i, j = 4, 9
    row, col = np.delete(S[i], j), np.delete(S[:, j], i)
    assert Z[i, j] == pytest.approx((S[i, j] - row.mean()) / row.std() + (S[i, j] - col.mean()) / col.std(), rel=1e-4)
    got = me.stage_candidates(feats_m, feats_a, 6, "summary")
    np.testing.assert_array_equal(got, np.argsort(-Z, axis=1, kind="stable")[:, :6])
    np.testing.assert_array_equal(me.top_k(Z, 6), got)
    with pytest.raises(ValueError, match="unknown embedding score"):
        me.score_matrix(feats_m, feats_a, "mean")


def test_restrict_top_chooses_by_chroma_among_the_candidates():
    Z1 = np.array([[5.0, 4.0, 3.0, 2.0, 1.0],
                   [1.0, 2.0, 3.0, 4.0, 5.0]])
    candidates = np.array([[3, 1, 4], [0, 2, 1]])
    np.testing.assert_array_equal(me.restrict_top(Z1, candidates, 2), [[1, 3], [2, 1]])
    np.testing.assert_array_equal(me.restrict_top(Z1, candidates, 24), [[1, 3, 4], [2, 1, 0]])


def test_dropped_pairs_go_to_stage_0_below_every_kept_pair():
    scores = np.array([[0.9, 0.2, 0.95, 0.1], [0.3, 0.8, 0.4, 0.7]])
    decided = {"scores": scores.copy(), "stage": np.array([[3, 1, 2, 1], [2, 3, 1, 1]], np.int8),
               "gap": np.zeros(2)}
    me.mark_dropped(decided, np.array([[0, 1], [1, 3]]))
    np.testing.assert_array_equal(decided["stage"], [[3, 1, 0, 0], [0, 3, 0, 1]])
    s = decided["scores"]
    assert s[0, 2] < s[0, 1] and s[0, 3] == 0.1  # the dropped 0.95 now ranks below the kept pairs
    assert s[1, 0] == 0.3 and s[1, 2] < 0.7
    assert decided["gap"][0] == pytest.approx(0.9 - 0.2) and decided["gap"][1] == pytest.approx(0.8 - 0.7)


def test_the_stage_off_leaves_the_parameters_identity_alone():
    # With the stage off its settings are not part of the identity (run directories stay valid).
    assert not {"embedding_k", "embedding_score"} & set(MatchParams().identity())
    assert MatchParams(embedding_k=0, embedding_score="set").tag() == MatchParams().tag()
    assert MatchParams(embedding_k=10).tag() != MatchParams().tag()
    assert MatchParams(embedding_k=10).tag() != MatchParams(embedding_k=10, embedding_score="set").tag()


def test_bad_embedding_settings_are_clear_errors(tmp_path, monkeypatch):
    (tmp_path / "midi").mkdir()
    (tmp_path / "audio").mkdir()
    (tmp_path / "midi" / "a.mid").write_bytes(b"MThd")
    (tmp_path / "audio" / "a.wav").write_bytes(b"RIFF")
    with pytest.raises(MatchError, match="unknown embedding score"):
        run_match(tmp_path / "midi", tmp_path / "audio", MatchParams(embedding_k=5, embedding_score="mean"),
                  run_dir=tmp_path / "run", n_workers=1)
    monkeypatch.setenv("EARWORM_MODELS_DIR", str(tmp_path / "no-models"))
    with pytest.raises(ModelError, match="embed_audio"):
        run_match(tmp_path / "midi", tmp_path / "audio", MatchParams(embedding_k=5), run_dir=tmp_path / "run2",
                  n_workers=1)


# ---- in the cascade, with the models in models/ -----------------------------------------------

@pytest.fixture(scope="module")
def chorales(tmp_path_factory):
    """``midi/``: 6 chorales (4 recorded); ``audio/``: their 4 renderings (shuffled names) + a stray one."""
    from engine import synthetic
    from tests.midi_fixtures import render_warped

    root = tmp_path_factory.mktemp("chorales")
    (root / "midi").mkdir()
    (root / "audio").mkdir()
    pairs = {}
    for k, work in enumerate(RECORDED + MIDI_ONLY):
        name = work.replace("/", "_").replace(".", "-") + ".mid"
        midi = synthetic.music21_to_pretty_midi(work)
        midi.write(str(root / "midi" / name))
        if work in RECORDED:
            take = f"take_{len(RECORDED) - 1 - k}.flac"
            render_warped(midi, lambda t, k=k: (0.9 + 0.08 * k) * np.asarray(t) + 0.4, root / "audio" / take, seed=k)
            pairs[name] = take
    render_warped(synthetic.music21_to_pretty_midi(STRAY), lambda t: 1.05 * np.asarray(t), root / "audio" / "take_x.flac")
    return root, pairs


def _decisions(result):
    return {m: (result.audio_names[p] if p >= 0 else "") for m, p in zip(result.midi_names, result.predicted)}


@pytest.fixture(scope="module")
def without_stage(chorales, tmp_path_factory):
    root, _ = chorales
    return run_match(root / "midi", root / "audio", run_dir=tmp_path_factory.mktemp("run_off"), n_workers=1)


def test_embedding_stage_keeps_the_true_pairs(chorales, without_stage, tmp_path):
    root, pairs = chorales
    result = run_match(root / "midi", root / "audio", MatchParams(embedding_k=2), run_dir=tmp_path / "run",
                       n_workers=1)
    assert result.counts["embedding_pairs"] == 6 * 5
    gold = np.zeros(result.scores.shape, bool)
    for m, a in pairs.items():
        gold[result.midi_names.index(m), result.audio_names.index(a)] = True
    assert result.stage_recall(gold)["embedding"] == 1.0
    # Each MIDI kept 2 of the 5 recordings; the other 3 are at stage 0, below the kept ones.
    assert np.all((result.stage >= 1).sum(axis=1) == 2)
    for i in range(len(result.midi_names)):
        kept, dropped = result.scores[i, result.stage[i] >= 1], result.scores[i, result.stage[i] == 0]
        assert dropped.max() < kept.min()
    want = {m: pairs.get(m, "") for m in result.midi_names}
    assert _decisions(result) == _decisions(without_stage) == want


def test_turning_the_stage_off_gives_the_old_result(chorales, without_stage, tmp_path):
    root, _ = chorales
    off = run_match(root / "midi", root / "audio", MatchParams(embedding_k=0, embedding_score="set"),
                    run_dir=tmp_path / "off", n_workers=1)
    np.testing.assert_array_equal(off.scores, without_stage.scores)
    np.testing.assert_array_equal(off.stage, without_stage.stage)
    assert "embedding" not in off.stage_recall(off.stage >= 3) and "embedding_pairs" not in off.counts
    saved = np.load(next((tmp_path / "off" / "features").glob("*.npz")))
    assert "emb_summary" not in saved.files  # no embedding computed when the stage is off
    # A stage that keeps every recording changes nothing either (the set score, through the same tasks).
    wide = run_match(root / "midi", root / "audio", MatchParams(embedding_k=99, embedding_score="set"),
                     run_dir=tmp_path / "wide", n_workers=1)
    np.testing.assert_allclose(wide.scores, without_stage.scores, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(wide.stage, without_stage.stage)
    saved = np.load(next((tmp_path / "wide" / "features").glob("*.npz")))
    assert saved["emb_vectors"].shape[1] == 32 and saved["emb_summary"].shape == (32,)
