"""The Identify panel, driven as a user would (pytest-qt, offscreen).

The library is made here: four Bach chorales from music21's corpus and the demo MIDI (Maple Leaf
Rag), with a composers.csv. The query is one chorale played 1.1× faster on strings through
another soundfont (engine.media.synthesize), cut to 20 s. The ranking test needs the trained
embedding models in models/ (with untrained ones the ranking is random); the other tests only
need model files of the right shape.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt

from engine import embed
from engine import embed_features as ef
from engine import media
from engine.text import count_noun
from gui.panels.identify import IdentifyPanel, composers_text, format_elapsed
from gui.workers import JobRunner
from tests.midi_fixtures import MUSESCORE_LITE
from tests.test_follow import FakeInputStream

REPO = Path(__file__).resolve().parent.parent
CHORALES = ("bach/bwv66.6", "bach/bwv269", "bach/bwv84.5", "bach/bwv40.8")
PLAYED = "bach_bwv269"  # the chorale the query clip plays
CLIP_START_S, CLIP_S, SPEED = 3.0, 20.0, 1.1
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def fixture_library(tmp_path_factory) -> Path:
    """A folder: the chorales + the demo MIDI, and composers.csv naming bach and joplin."""
    from engine import synthetic

    folder = tmp_path_factory.mktemp("identify_library")
    shutil.copy(REPO / "resources" / "demo" / "demo.mid", folder / "maple_leaf_rag.mid")
    rows = ["file,composer", "maple_leaf_rag.mid,joplin"]
    for work in CHORALES:
        name = work.replace("/", "_").replace(".", "-") + ".mid"
        synthetic.music21_to_pretty_midi(work).write(str(folder / name))
        rows.append(f"{name},bach")
    (folder / "composers.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def played_clip(fixture_library, tmp_path_factory) -> Path:
    """20 s of the PLAYED chorale, 1.1× faster, on strings, through the MuseScore soundfont."""
    import soundfile as sf

    midi = media.load_midi(fixture_library / f"{PLAYED}.mid")
    for inst in midi.instruments:
        inst.program = 48
        for note in inst.notes:
            note.start, note.end = note.start / SPEED, note.end / SPEED
    y = media.synthesize(midi, sr=ef.SR, soundfont=MUSESCORE_LITE)
    y = y[int(CLIP_START_S * ef.SR): int((CLIP_START_S + CLIP_S) * ef.SR)]
    path = tmp_path_factory.mktemp("identify_query") / "played.wav"
    sf.write(str(path), y, ef.SR)
    return path


@pytest.fixture
def panel(qtbot, tmp_path):
    runner = JobRunner()
    widget = IdentifyPanel(runner, recordings_dir=tmp_path / "recordings")
    qtbot.addWidget(widget)
    widget.resize(520, 600)
    widget.show()
    yield widget
    widget.shutdown()
    runner.cancel_all()
    runner.wait(60)


def _feeding(samples, fed: list):
    """A stream_factory: a fake input device that delivers ``samples`` block by block."""
    def factory(**kwargs):
        fed.append(FakeInputStream(samples, **kwargs))
        return fed[-1]
    return factory


# --- the ranking (needs the trained models) -----------------------------------------------------


def test_ranks_the_played_piece_first_and_opens_it_aligned(qtbot, tmp_path, fixture_library, played_clip):
    """The project's MIDIs are the library; the right chorale comes first; Open aligned aligns it."""
    from engine.store import Project
    from gui.main_window import MainWindow
    from gui.panels.project_panels import install_project_panels

    project_path = tmp_path / "project.earworm"
    with Project(project_path) as project:
        project.add_folder(fixture_library)
    window = MainWindow(settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat), dialogs=False,
                        warm_up=False)
    qtbot.addWidget(window)
    window.show()
    panels = install_project_panels(window, project_path)
    panel = panels.identify
    assert window.panels["Identify"].widget() is panel
    qtbot.waitUntil(lambda: window.panels["Evaluation"] in window.tabifiedDockWidgets(window.panels["Identify"]),
                    timeout=5000)  # tabbed with the other panels once laid out
    assert panel.current_source() == str(project_path)
    window.panels["Identify"].raise_()  # its tab, as a user would pick it
    errors = []
    panel.error_shown.connect(errors.append)

    with qtbot.waitSignal(panel.identified, timeout=TIMEOUT_MS) as blocker:
        panel.set_query_file(played_clip)  # builds the project's library first, then identifies
    assert not errors
    assert len(panel.library) == 5 and panel.library_source == str(project_path)
    ident = blocker.args[0].identification
    model = panel.model
    ranked = [model.index(r, 1).data() for r in range(model.rowCount())]
    assert ranked[0] == PLAYED, f"ranking: {ranked}"
    assert sorted(ranked) == sorted(Path(p).stem for p in panel.library.paths)
    assert [model.index(r, 0).data() for r in range(model.rowCount())] == ["1", "2", "3", "4", "5"]
    scores = [float(model.index(r, 3).data()) for r in range(model.rowCount())]
    assert scores == sorted(scores, reverse=True)
    assert sum(int(model.index(r, 4).data()) for r in range(model.rowCount())) == ident.n_snippets
    # The verdict line states the engine's decision with its numbers.
    assert panel.verdict.text().count(ident.verdict().split(" (")[0]) == 1
    assert f"{ident.threshold:.2f}" in panel.verdict.text() and f"{ident.known_score:.2f}" in panel.verdict.text()
    assert panel.selected_row() == 0 and panel.open_button.isEnabled()

    # A double-click on another row asks for that pair; "Open aligned" aligns the best one.
    rect = panel.table.visualRect(model.index(1, 1))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(panel.open_pair, timeout=5000) as other:
        qtbot.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    window.runner.cancel_all()
    window.runner.wait(60)
    assert other.args == [os.path.abspath(panel.model.pieces[1].path), str(played_clip)]
    assert Path(other.args[0]).stem == ranked[1]
    panel.table.selectRow(0)
    with qtbot.waitSignal(window.pair_drawn, timeout=TIMEOUT_MS) as drawn:
        qtbot.mouseClick(panel.open_button, Qt.MouseButton.LeftButton)
    pair = drawn.args[0]
    assert Path(pair.midi_path).name == f"{PLAYED}.mid" and Path(pair.audio_path) == played_clip
    assert window.session.pair is pair and pair.aligned
    window.runner.cancel_all()
    window.runner.wait(60)


# --- library building, recording, errors (any model files of the right shape) ------------------


def test_folder_library_builds_in_the_background_with_composers(qtbot, panel, fixture_library, played_clip):
    panel.set_library_source(fixture_library)
    progress = []
    job = panel.build_library()
    job.progressed.connect(lambda f, m: progress.append((f, m)))
    assert panel.job_row.isVisibleTo(panel) and panel.job is job
    with qtbot.waitSignal(panel.library_ready, timeout=TIMEOUT_MS) as built:
        pass
    qtbot.waitUntil(lambda: panel.job is None, timeout=5000)
    assert not panel.job_row.isVisibleTo(panel)
    library = built.args[0]
    assert len(library) == 5 and set(library.composers) == {"bach", "joplin"}
    assert panel.library_summary.text() == "5 pieces by 2 composers"
    assert progress and all(0.0 <= f <= 1.0 for f, _ in progress)
    # Identifying reuses the built library (no second build) and shows the composers' ranking.
    with qtbot.waitSignal(panel.identified, timeout=TIMEOUT_MS) as blocker:
        job = panel.set_query_file(played_clip)
        assert job.name == "identify"
    ident = blocker.args[0].identification
    assert panel.composers.text() == composers_text(ident) and panel.composers.isVisibleTo(panel)
    assert {c for c, _ in ident.composers} == {"bach", "joplin"}
    assert not panel.table.isColumnHidden(2)
    assert panel.model.index(0, 2).data() in ("bach", "joplin")


def test_cancel_stops_building_the_library(qtbot, panel, fixture_library, tmp_path, monkeypatch):
    monkeypatch.setenv("EARWORM_CACHE_DIR", str(tmp_path / "cold"))  # real work to cancel
    panel.set_library_source(fixture_library)
    job = panel.build_library()
    with qtbot.waitSignal(job.finished, timeout=TIMEOUT_MS):
        job.progressed.connect(lambda f, m: panel.job_row.cancel())
    assert job.state == "cancelled"
    assert panel.library is None and "cancelled" in panel.library_summary.text()
    qtbot.waitUntil(lambda: not panel.job_row.isVisibleTo(panel), timeout=5000)


def test_a_new_build_replaces_the_running_one(qtbot, panel, fixture_library, tmp_path, monkeypatch):
    monkeypatch.setenv("EARWORM_CACHE_DIR", str(tmp_path / "cold"))
    panel.set_library_source(fixture_library)
    first = panel.build_library()
    second = panel.build_library()
    with qtbot.waitSignal(first.finished, timeout=TIMEOUT_MS):
        pass
    assert first.state == "cancelled"
    assert panel.job is second and panel.job_row.job is second and panel.job_row.isVisibleTo(panel)
    with qtbot.waitSignal(second.finished, timeout=TIMEOUT_MS):
        pass
    assert second.state == "succeeded" and len(panel.library) == 5
    assert panel.job is None and not panel.job_row.isVisibleTo(panel)


def test_recording_from_the_fake_microphone_becomes_the_query(qtbot, panel, fixture_library, played_clip):
    """Record stops by itself after record_limit_s; the clip is saved as WAV and identified."""
    panel.set_library_source(fixture_library)
    panel.record_limit_s = 6.0
    y = media.load_audio(played_clip, sr=ef.SR)
    fed = []
    panel.stream_factory = _feeding(y, fed)
    states = []
    panel.recording_changed.connect(states.append)
    with qtbot.waitSignal(panel.identified, timeout=TIMEOUT_MS) as blocker:
        qtbot.mouseClick(panel.record_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    assert states == [True, False] and not panel.recording and fed[0].closed
    assert result.recorded and Path(result.audio_path).parent == panel.recordings_dir
    recorded = media.load_audio(result.audio_path, sr=ef.SR)
    assert len(recorded) == int(6.0 * ef.SR)
    np.testing.assert_allclose(recorded, y[: len(recorded)], atol=2e-4)  # 16-bit WAV of what was fed
    assert panel.query_label.text() == "recorded: " + Path(result.audio_path).name
    assert result.identification.n_snippets > 0 and panel.model.rowCount() == 5
    assert panel.record_button.text() == "● Record" and not panel.record_button.isChecked()


def test_a_second_click_stops_recording_and_shows_the_elapsed_time(qtbot, panel, fixture_library):
    panel.set_library_source(fixture_library)
    t = np.arange(int(4.0 * ef.SR)) / ef.SR
    tone = (0.3 * np.sin(2 * np.pi * 262 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    fed = []
    panel.stream_factory = _feeding(tone, fed)  # 4 s, then the fake device goes quiet
    qtbot.mouseClick(panel.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.recorder is not None and panel.recorder.elapsed_s >= 4.0, timeout=10_000)
    qtbot.waitUntil(lambda: "0:04.0" in panel.record_button.text(), timeout=5000)
    assert not panel.choose_button.isEnabled()
    assert panel.record_button.text() == "■ Stop  0:04.0"
    assert panel.query_label.text() == f"recording… 0:04.0 of {format_elapsed(panel.record_limit_s)}"
    assert panel.recording  # 4 s < the 30 s limit: still recording
    with qtbot.waitSignal(panel.identified, timeout=TIMEOUT_MS) as blocker:
        qtbot.mouseClick(panel.record_button, Qt.MouseButton.LeftButton)
    assert not panel.recording and fed[0].closed and panel.choose_button.isEnabled()
    assert media.audio_duration(blocker.args[0].audio_path) == pytest.approx(4.0, abs=0.06)


def test_no_microphone_gives_a_dialog(qtbot, panel):
    import sounddevice as sd

    def no_device(**kwargs):
        raise sd.PortAudioError("Error querying device -1")

    panel.stream_factory = no_device
    with qtbot.waitSignal(panel.error_shown, timeout=5000) as blocker:
        qtbot.mouseClick(panel.record_button, Qt.MouseButton.LeftButton)
    assert "cannot open the microphone: no sound device found" in blocker.args[0]
    assert not panel.recording and not panel.record_button.isChecked()


def test_a_corrupt_audio_file_gives_an_error_dialog(qtbot, panel, fixture_library, tmp_path):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"ID3 this is not really an mp3" * 50)
    panel.set_library_source(fixture_library)
    with qtbot.waitSignal(panel.error_shown, timeout=TIMEOUT_MS) as blocker:
        panel.set_query_file(bad)
    text = blocker.args[0]
    assert text.startswith(f"{bad}: ") and "Traceback" not in text and "Unexpected" not in text
    assert panel.model.rowCount() == 0 and not panel.open_button.isEnabled()
    qtbot.waitUntil(lambda: panel.job is None, timeout=5000)


def test_a_missing_model_says_how_to_make_it(qtbot, panel, fixture_library, played_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("EARWORM_MODELS_DIR", str(tmp_path / "no_models"))
    panel.set_library_source(fixture_library)
    with qtbot.waitSignal(panel.error_shown, timeout=TIMEOUT_MS) as blocker:
        panel.set_query_file(played_clip)
    assert "embed_midi.onnx" in blocker.args[0] and "run `make models`" in blocker.args[0]
    assert panel.library is None and panel.model.rowCount() == 0


def test_no_library_chosen_gives_a_dialog(qtbot, panel, played_clip):
    with qtbot.waitSignal(panel.error_shown, timeout=5000) as blocker:
        assert panel.set_query_file(played_clip) is None
    assert "choose a library first" in blocker.args[0]


def test_panel_option_brings_the_identify_tab_to_the_front(qtbot, tmp_path, capsys):
    from gui.app import _show_panel
    from gui.main_window import MainWindow
    from gui.panels.project_panels import install_project_panels

    window = MainWindow(settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat), dialogs=False,
                        warm_up=False)
    qtbot.addWidget(window)
    window.show()
    panels = install_project_panels(window, tmp_path / "project.earworm")
    _show_panel(window, "Identify")
    qtbot.waitUntil(lambda: not panels.identify.visibleRegion().isEmpty(), timeout=5000)
    assert panels.library.visibleRegion().isEmpty()  # the tab in front is Identify's
    assert panels.identify.recordings_dir == tmp_path / "recordings"
    _show_panel(window, "Nope")
    assert "no panel called 'Nope'" in capsys.readouterr().err


def test_verdict_and_composer_lines():
    pieces = [embed.PieceScore("bwv269", "/l/bwv269.mid", "bach", 0.91, 40),
              embed.PieceScore("rag", "/l/rag.mid", "joplin", 0.62, 3)]
    known = embed.Identification(pieces, known_score=6.5, threshold=2.0, n_snippets=43,
                                 composers=[("bach", 0.91), ("joplin", 0.62)])
    assert known.verdict() == "Known: bwv269 (score 6.50 ≥ threshold 2.00)"
    assert composers_text(known) == "Composers: bach 0.910 · joplin 0.620"
    unknown = embed.Identification(pieces, known_score=1.44, threshold=1.86, n_snippets=43)
    assert unknown.verdict() == ("Unknown — not convincingly any piece in the library "
                                 "(score 1.44 < threshold 1.86)")
    assert composers_text(unknown) == ""
    assert embed.Identification([], float("-inf"), 2.0, 0).verdict().startswith("Unknown")
    assert format_elapsed(63.25) == "1:03.2"
    assert [count_noun(n, "piece") for n in (1, 0, 5)] == ["1 piece", "0 pieces", "5 pieces"]
