"""The matching and evaluation panels, driven as a user would (pytest-qt, offscreen)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from gui.panels.evaluation import EvaluationPanel
from gui.panels.matching import NONE_TEXT, MatchingPanel
from gui.workers import JobRunner
from tests.match_fixtures import N_RECORDED, N_SONGS, expected_pairs, make_match_library


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return make_match_library(tmp_path_factory.mktemp("gui_library"))


@pytest.fixture
def panels(qtbot):
    runner = JobRunner()
    matching = MatchingPanel(runner, n_workers=1)
    evaluation = EvaluationPanel(runner)
    matching.result_ready.connect(evaluation.set_result)
    qtbot.addWidget(matching)
    qtbot.addWidget(evaluation)
    yield matching, evaluation
    runner.cancel_all()
    runner.wait(60)


def test_match_runs_in_the_background_and_fills_the_table(qtbot, panels, library, tmp_path):
    matching, evaluation = panels
    gold = tmp_path / "gold.csv"
    gold.write_text("midi,audio\n" + "".join(f"{m},{a}\n" for m, a in expected_pairs().items()))
    evaluation.set_gold(gold)
    matching.set_folders(library / "midi", library / "audio")
    progress = []
    job = matching.start()
    job.progressed.connect(lambda f, m: progress.append(f))
    assert not matching.run_button.isEnabled() and matching.job_row.isVisibleTo(matching)
    with qtbot.waitSignal(evaluation.evaluated, timeout=180_000):
        pass
    assert matching.run_button.isEnabled() and progress and max(progress) <= 1.0
    model = matching.model
    shown = {model.index(r, 0).data(): model.index(r, 1).data() for r in range(model.rowCount())}
    assert shown == dict(expected_pairs(), **{f"song{k}.mid": NONE_TEXT for k in range(N_RECORDED, N_SONGS)})
    assert "unreadable" in matching.summary.text()
    # The evaluation panel drew the metrics and both plots from the engine's evaluation.
    assert "F1 1.0000" in evaluation.metrics.text()
    x, y = evaluation.roc_curve.getData()
    assert len(x) >= 2 and y[-1] == 1.0
    edges, density = evaluation.match_curve.getData()
    assert len(edges) == len(density) + 1 and density.sum() > 0
    assert evaluation.threshold_line.value() == pytest.approx(0.5)


def test_double_click_opens_the_pair(qtbot, panels, library):
    matching, _ = panels
    matching.set_folders(library / "midi", library / "audio")
    with qtbot.waitSignal(matching.result_ready, timeout=180_000):
        matching.start()
    row = matching.result.midi_names.index("song0.mid")
    index = matching.model.index(row, 0)
    rect = matching.table.visualRect(index)
    qtbot.mouseClick(matching.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(matching.open_pair, timeout=5000) as blocker:
        qtbot.mouseDClick(matching.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    midi_path, audio_path = blocker.args
    assert midi_path == str(library / "midi" / "song0.mid")
    assert audio_path == str(library / "audio" / expected_pairs()["song0.mid"])
    # Enter on the selected row of another MIDI opens that one.
    other = matching.result.midi_names.index("song1.mid")
    matching.table.setFocus()
    matching.table.setCurrentIndex(matching.model.index(other, 1))
    with qtbot.waitSignal(matching.open_pair, timeout=5000) as blocker:
        qtbot.keyClick(matching.table, Qt.Key.Key_Return)
    assert blocker.args == [str(library / "midi" / "song1.mid"), str(library / "audio" / expected_pairs()["song1.mid"])]


def test_cancel_stops_the_job_and_frees_the_panel(qtbot, panels, library, tmp_path, monkeypatch):
    matching, _ = panels
    monkeypatch.setenv("EARWORM_CACHE_DIR", str(tmp_path / "cold"))  # so the job has real work to cancel
    matching.set_folders(library / "midi", library / "audio")
    job = matching.start()
    with qtbot.waitSignal(job.finished, timeout=120_000):
        job.progressed.connect(lambda f, m: matching.cancel())
    assert job.state == "cancelled"
    assert matching.run_button.isEnabled() and "cancelled" in matching.summary.text()
    assert matching.result is None


def test_bad_folder_shows_an_error(qtbot, panels, tmp_path):
    matching, _ = panels
    matching.set_folders(tmp_path / "nowhere", tmp_path / "nowhere")
    with qtbot.waitSignal(matching.error_shown, timeout=30_000) as blocker:
        matching.start()
    assert "nowhere" in blocker.args[0]
    assert matching.run_button.isEnabled()
