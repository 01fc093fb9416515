"""Library matching: predictions (with a "none"), bad files, resume after a kill, Dask = local, project."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from engine import match_stages as stages
from engine.match import MatchParams, run_match
from tests.match_fixtures import N_RECORDED, N_SONGS, expected_pairs, make_match_library

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return make_match_library(tmp_path_factory.mktemp("library"))


@pytest.fixture(scope="module")
def local_result(library, tmp_path_factory):
    return run_match(library / "midi", library / "audio", run_dir=tmp_path_factory.mktemp("run_local"), n_workers=1)


def decisions(result) -> dict:
    return {m: (result.audio_names[p] if p >= 0 else "") for m, p in zip(result.midi_names, result.predicted)}


def test_small_match_predicts_recordings_and_none(local_result):
    want = dict(expected_pairs(), **{f"song{k}.mid": "" for k in range(N_RECORDED, N_SONGS)})
    assert decisions(local_result) == want
    # The right pairs are confirmed with high confidence and a clear gap; the none-MIDIs stay low.
    for m, a in expected_pairs().items():
        i = local_result.midi_names.index(m)
        assert local_result.confidence[i] >= 0.9 and local_result.gap[i] > 0.5
        assert local_result.scores[i].argmax() == local_result.audio_names.index(a)
    for k in range(N_RECORDED, N_SONGS):
        assert local_result.confidence[local_result.midi_names.index(f"song{k}.mid")] < 0.5
    assert set(np.unique(local_result.stage)) <= {1, 2, 3}
    assert np.all((local_result.scores >= 0) & (local_result.scores <= 1))


def test_bad_files_are_reported_and_skipped(library, local_result):
    bad = dict(local_result.bad_files)
    assert set(bad) == {str(library / "midi" / "broken.mid"), str(library / "audio" / "empty.wav")}
    assert "MThd" in bad[str(library / "midi" / "broken.mid")] or "MIDI" in bad[str(library / "midi" / "broken.mid")]
    assert "empty" in bad[str(library / "audio" / "empty.wav")]
    assert "broken.mid" not in local_result.midi_names and "empty.wav" not in local_result.audio_names


def test_cli_writes_matches_matrix_and_evaluation(library, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("midi,audio\n" + "".join(f"{m},{a}\n" for m, a in expected_pairs().items()) + "song4.mid,\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "match", "--midi", str(library / "midi"), "--audio", str(library / "audio"),
         "--out", str(out / "matches.csv"), "--scores", str(out / "matrix.csv"), "--gold", str(gold),
         "--run-dir", str(tmp_path / "run"), "--workers", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert proc.returncode == 0, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and any("broken.mid" in e for e in errors) and any("empty.wav" in e for e in errors)
    rows = (out / "matches.csv").read_text().splitlines()
    assert rows[0] == "midi,audio,confidence,gap" and len(rows) == 1 + N_SONGS
    got = {r.split(",")[0]: r.split(",")[1] for r in rows[1:]}
    assert got == dict(expected_pairs(), **{"song4.mid": "", "song5.mid": ""})
    matrix = (out / "matrix.csv").read_text().splitlines()
    assert matrix[0].split(",")[0] == "audio" and len(matrix[0].split(",")) == 1 + N_SONGS
    assert len(matrix) == 1 + N_RECORDED + 1  # rows: recordings (the stray one included)
    report = json.loads((out / "match_report.json").read_text())
    assert report["f1"] == 1.0 and report["rank1"] == 1.0 and report["roc_auc"] == 1.0
    assert report["stage_recall"]["prune"] == 1.0
    for png in ("match_densities.png", "match_roc.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "F1 1.0000" in proc.stdout


def test_dask_cluster_gives_the_local_result(library, local_result, tmp_path, monkeypatch):
    from distributed import LocalCluster

    monkeypatch.setenv("EARWORM_CACHE_DIR", str(tmp_path / "cache"))  # features computed on the workers
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        result = run_match(library / "midi", library / "audio", run_dir=tmp_path / "run",
                           scheduler=cluster.scheduler_address)
    assert result.counts["features_computed"] == N_SONGS + N_RECORDED + 1 + 2  # every file, the bad ones too
    assert decisions(result) == decisions(local_result)
    np.testing.assert_allclose(result.scores, local_result.scores, rtol=1e-6, atol=1e-9)
    assert sorted(result.bad_files) == sorted(local_result.bad_files)


def _run_until(args, env, ready, timeout_s=180):
    """Start ``earworm match`` in a subprocess and SIGKILL it as soon as ``ready()`` is true."""
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "match", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_killed_run_resumes_to_the_same_result(library, local_result, tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, EARWORM_CACHE_DIR=str(tmp_path / "cache"))  # a cold cache: features take a while
    args = ["--midi", str(library / "midi"), "--audio", str(library / "audio"), "--run-dir", str(run_dir),
            "--workers", "1"]
    n_files = N_SONGS + N_RECORDED + 1 + 2  # the bad ones included
    # Killed while computing features...
    _run_until(args, env, lambda: len(list((run_dir / "features").glob("*.npz"))) >= 3)
    saved = len(list((run_dir / "features").glob("*.npz")))
    assert 3 <= saved < n_files - 2
    # ...then, resumed, killed again while confirming pairs.
    confirmed = run_dir / "confirmed.jsonl"
    _run_until(args, env, lambda: confirmed.exists() and confirmed.read_text().count("\n") >= 2)
    assert len(list((run_dir / "features").glob("*.npz"))) == n_files - 2
    done = sum(1 for line in confirmed.read_text().splitlines() if line.endswith("}"))
    assert 2 <= done < local_result.counts["confirm_pairs"]
    result = run_match(library / "midi", library / "audio", run_dir=run_dir, n_workers=1)
    assert result.counts["features_computed"] == 2  # only the unreadable files are tried again
    assert result.counts["confirm_pairs_computed"] == local_result.counts["confirm_pairs"] - done
    assert decisions(result) == decisions(local_result)
    np.testing.assert_allclose(result.scores, local_result.scores, rtol=1e-6, atol=1e-9)


def test_confirmed_pairs_resume_even_after_a_torn_line(library, local_result, tmp_path):
    run_dir = tmp_path / "run"
    first = run_match(library / "midi", library / "audio", run_dir=run_dir, n_workers=1)
    lines = (run_dir / "confirmed.jsonl").read_text().splitlines()
    assert len(lines) == first.counts["confirm_pairs"] == first.counts["confirm_pairs_computed"]
    kept = len(lines) // 2
    (run_dir / "confirmed.jsonl").write_text("\n".join(lines[:kept]) + "\n" + lines[kept][:17])  # killed mid-write
    again = run_match(library / "midi", library / "audio", run_dir=run_dir, n_workers=1)
    assert again.counts["confirm_pairs_computed"] == len(lines) - kept
    assert again.counts["features_computed"] == 2  # only the bad files are tried again
    np.testing.assert_allclose(again.scores, local_result.scores, rtol=1e-6, atol=1e-9)


def test_run_dir_of_another_match_is_refused(library, tmp_path):
    from engine.match import MatchError

    run_match(library / "midi", library / "audio", MatchParams(k_confirm=1), run_dir=tmp_path / "run", n_workers=1)
    with pytest.raises(MatchError, match="another match"):
        run_match(library / "midi", library / "audio", MatchParams(k_confirm=2), run_dir=tmp_path / "run", n_workers=1)


def test_project_stores_results_and_resumes(library, local_result, tmp_path):
    from engine.store import ALIGNMENT_CONFIDENCE, MATCH_SCORE, Project

    project_path = tmp_path / "lib.earworm"
    first = run_match(library / "midi", library / "audio", run_dir=tmp_path / "run1", project=project_path, n_workers=1)
    with Project(project_path) as project:
        tag = MatchParams().tag()
        confirmed = project.results(ALIGNMENT_CONFIDENCE, params=tag)
        scores = project.results(MATCH_SCORE, params=tag)
        assert len(confirmed) == first.counts["confirm_pairs"]
        assert len(scores) == int((first.stage >= 2).sum())
        by_path = {f.id: os.path.basename(f.path) for f in project.files()}
        best = max(scores, key=lambda r: r.value if by_path[r.file_id] == "song0.mid" else -1)
        assert by_path[best.other_id] == expected_pairs()["song0.mid"]
    # A second run with a fresh run directory takes the confirmed alignments from the project.
    again = run_match(library / "midi", library / "audio", run_dir=tmp_path / "run2", project=project_path, n_workers=1)
    assert again.counts["confirm_pairs_computed"] == 0
    np.testing.assert_allclose(again.scores, local_result.scores, rtol=1e-6, atol=1e-9)


# ---- the numeric stages, by hand -----------------------------------------------------------------

def test_leave_one_out_zscores_by_hand():
    x = np.array([1.0, 2.0, 3.0, 10.0])
    z = stages.loo_z(x, x.sum(), (x * x).sum(), len(x))
    others = [np.delete(x, i) for i in range(4)]
    want = [(x[i] - o.mean()) / o.std() for i, o in enumerate(others)]
    np.testing.assert_allclose(z, want)
    rows, cols = np.array([0, 0, 0, 0, 1, 1, 1, 1]), np.array([0, 1, 2, 3, 0, 1, 2, 3])
    values = np.array([1.0, 2.0, 3.0, 10.0, 4.0, 4.5, 5.0, 4.0])
    got = stages.sparse_zscores(rows, cols, values, min_count=4)
    row_part = np.concatenate([stages.loo_z(v, v.sum(), (v * v).sum(), 4) for v in (values[:4], values[4:])])
    col_part = stages.loo_z(values, values.sum(), (values * values).sum(), len(values))  # columns have 2 < 4 entries
    np.testing.assert_allclose(got, row_part + col_part)


def test_row_margins_by_hand():
    rows = np.array([0, 0, 0, 1, 2, 2])
    values = np.array([0.2, 0.9, 0.5, 0.7, 0.1, 0.1])
    np.testing.assert_allclose(stages.row_margins(rows, values), [-0.7, 0.4, -0.4, 0.0, 0.0, 0.0])


def test_decide_gives_the_same_scores_whatever_its_block_size(monkeypatch):
    """decide() scores the full matrix in blocks of rows; the blocks must not change a thing — and
    every row keeps the cascade's order (confirmed pairs above coarse ones above pruned ones)."""
    rng = np.random.default_rng(3)
    n_midi, n_audio, k = 37, 23, 4
    Z1 = rng.standard_normal((n_midi, n_audio)).astype(np.float32)
    pm = np.repeat(np.arange(n_midi - 3), k)  # the last three MIDIs reach no coarse pair
    pa = np.concatenate([rng.choice(n_audio, k, replace=False) for _ in range(n_midi - 3)])
    confirm_idx = np.flatnonzero(np.tile(np.arange(k) < 2, n_midi - 3))
    c3 = rng.random(len(confirm_idx))
    args = (Z1, pm, pa, rng.standard_normal(len(pm)), np.ones(len(pm), bool), confirm_idx, c3)
    results = []
    for rows in (1, 5, 1000):
        monkeypatch.setattr(stages, "DECIDE_BLOCK_ROWS", rows)
        results.append(stages.decide(*args))
    for other in results[1:]:
        for key in ("scores", "stage", "best", "confidence", "gap"):
            assert np.array_equal(results[0][key], other[key])
    scores, stage = results[0]["scores"], results[0]["stage"]
    for i in range(n_midi):
        if (stage[i] == 3).any():
            assert scores[i, stage[i] == 3].min() > scores[i, stage[i] < 3].max()
        if (stage[i] == 2).any():  # ≥: capped under a low confirmed pair, both lower stages may tie
            assert scores[i, stage[i] == 2].min() >= scores[i, stage[i] == 1].max()


def test_prune_keeps_the_top_of_the_full_zscored_matrix():
    rng = np.random.default_rng(0)
    U = rng.standard_normal((37, 20)).astype(np.float32)
    V = rng.standard_normal((53, 20)).astype(np.float32)
    z_all = np.full((37, 53), np.nan, np.float32)
    top, top_z = stages.prune(U, V, k=5, block_rows=8, z_out=z_all)
    S = (U @ V.T).astype(np.float64)
    Z = np.zeros_like(S)
    for i in range(S.shape[0]):
        for j in range(S.shape[1]):
            r, c = np.delete(S[i], j), np.delete(S[:, j], i)
            Z[i, j] = (S[i, j] - r.mean()) / r.std() + (S[i, j] - c.mean()) / c.std()
    np.testing.assert_allclose(z_all, Z, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(top, np.argsort(-Z, axis=1, kind="stable")[:, :5])
    # Without z_out the matrix is recomputed per block (keep_below=0): the same top k.
    top_again, top_z_again = stages.prune(U, V, k=5, block_rows=8, keep_below=0)
    np.testing.assert_array_equal(top_again, top)
    np.testing.assert_array_equal(top_z_again, top_z)
    with pytest.raises(ValueError, match="z_out"):
        stages.prune(U, V, k=5, z_out=np.empty((37, 52), np.float32))
    read_only = np.empty((37, 53), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="z_out"):
        stages.prune(U, V, k=5, z_out=read_only)
    np.testing.assert_allclose(top_z, np.sort(Z, axis=1)[:, ::-1][:, :5], rtol=1e-4, atol=1e-4)


def test_prune_with_variants_scores_each_pair_by_its_best_variant():
    rng = np.random.default_rng(3)
    U = rng.standard_normal((4, 29, 20)).astype(np.float32)  # 4 variants of 29 MIDIs
    V = rng.standard_normal((41, 20)).astype(np.float32)
    best = np.max(np.einsum("vid,jd->vij", U, V), axis=0)
    np.testing.assert_allclose(stages.raw_scores(U, V), best, rtol=1e-5, atol=1e-4)
    Z = np.empty((29, 41), np.float32)
    top, _ = stages.prune(U, V, k=4, block_rows=8, z_out=Z)
    np.testing.assert_array_equal(top, np.argsort(-Z, axis=1, kind="stable")[:, :4])
    Z_single = np.empty((29, 41), np.float32)
    stages.prune(best.astype(np.float32), np.eye(41, dtype=np.float32), k=4, z_out=Z_single)
    np.testing.assert_allclose(Z, Z_single, rtol=1e-4, atol=1e-4)  # z of the best variant's scores


def test_a_recording_that_starts_inside_the_score_matches_a_sub_span_variant():
    rng = np.random.default_rng(4)
    score = np.abs(rng.standard_normal((400, 12))).astype(np.float32)
    score = np.repeat(score[::8], 8, axis=0)  # chords held 8 frames
    recording = score[40:]  # the first 10 % not played
    spans = stages.crop_spans(0.08, 2)
    assert spans == ((0.0, 1.0), (0.0, 0.92), (0.08, 1.0), (0.08, 0.92))
    variants = stages.summary_variants(score, 12, 0.4, spans)
    v = stages.summary_vector(recording, 12, 0.4)
    assert variants.shape == (4, 144) and np.allclose(np.linalg.norm(variants, axis=1), 1, atol=1e-5)
    whole, cut_start = variants[0] @ v, variants[2] @ v
    assert cut_start > whole + 0.2 and cut_start > 0.9


def test_coarse_dtw_prefers_the_same_sequence_warped():
    rng = np.random.default_rng(1)
    base = np.abs(rng.standard_normal((60, 12))).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    warped = base[np.clip((np.arange(75) * 0.8).astype(int), 0, 59)]  # slower, 25 % longer
    other = np.abs(rng.standard_normal((60, 12))).astype(np.float32)
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    scores = stages.coarse_scores(stages.pack([base]), stages.pack([warped, other]), [0, 0], [0, 1])
    assert scores[0] > 0.8 and scores[1] < 0.3


def test_summary_vector_is_unit_and_rejects_too_short():
    chroma = np.abs(np.random.default_rng(2).standard_normal((100, 12))).astype(np.float32)
    v = stages.summary_vector(chroma, n_segments=32)
    assert v.shape == (32 * 12,) and abs(np.linalg.norm(v) - 1) < 1e-5
    with pytest.raises(ValueError):
        stages.summary_vector(chroma[:10], n_segments=32)


def test_timings_give_wall_and_cpu_per_stage(local_result):
    t = local_result.timings
    stages_ = ("features", "prune", "coarse", "confirm", "decide")
    for stage in stages_ + ("total",):
        assert t[f"{stage}_s"] >= 0 and t[f"{stage}_cpu_s"] >= 0
    # In this process (n_workers=1) the stages' CPU lies within the whole run's, and the work was done.
    assert sum(t[f"{s}_cpu_s"] for s in stages_) <= t["total_cpu_s"] + 0.05
    assert t["features_cpu_s"] > 0 and t["confirm_cpu_s"] > 0
