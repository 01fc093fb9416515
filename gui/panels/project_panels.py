"""Docking the project panels (library, match labels, paces) into the main window, wired together.

Task
----
:func:`install_project_panels` opens a project (the given file or the default one in the user
data dir), builds the three panels over one shared :class:`LabelSession`, docks them with
``window.add_panel`` and connects them: a MIDI activated in the library is shown in the match
panel, a recording in the pace panel; "open pair" opens it in the main views; a timer polls the
project for changes made by another window or process.

Conventions
-----------
If the project cannot be opened (locked, newer version, not a project), the window still opens:
the error is shown as a dialog and no panels are added. The returned :class:`ProjectPanels` keeps
the objects alive and closes the project when the window is destroyed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QTimer

from engine.errors import EarwormError
from engine.store import Project
from gui.panels.label_models import LabelSession, LibraryModel, MatchLabelModel, PaceModel
from gui.panels.labels import MatchLabelPanel, PaceLabelPanel
from gui.panels.library import LibraryPanel
from gui.panels.panel_common import show_error

POLL_INTERVAL_MS = 2000


@dataclass
class ProjectPanels:
    project: Project
    session: LabelSession
    library: LibraryPanel
    match: MatchLabelPanel
    paces: PaceLabelPanel
    poll_timer: QTimer
    identify: object = None  # gui.panels.identify.IdentifyPanel


def install_project_panels(window, project_path=None) -> ProjectPanels | None:
    """Open the project and dock its panels into ``window`` (a :class:`gui.main_window.MainWindow`)."""
    try:
        project = Project(project_path)
    except EarwormError as exc:
        show_error(window, exc, "Could not open the project")
        return None
    session = LabelSession(project)
    library = LibraryPanel(LibraryModel(session), runner=window.runner)
    match = MatchLabelPanel(MatchLabelModel(session), runner=window.runner)
    paces = PaceLabelPanel(PaceModel(session))
    right = Qt.DockWidgetArea.RightDockWidgetArea
    window.add_panel(library, "Library", right)  # tabbed on one side: the views keep their width
    window.add_panel(match, "Match labels", right)
    window.add_panel(paces, "Paces", right)
    window.tabifyDockWidget(window.panels["Library"], window.panels["Match labels"])
    window.tabifyDockWidget(window.panels["Match labels"], window.panels["Paces"])
    # Library matching and its evaluation (issue 6): results go into the same project.
    from gui.panels.evaluation import EvaluationPanel
    from gui.panels.matching import MatchingPanel

    matching = MatchingPanel(window.runner, project=project.path)
    evaluation = EvaluationPanel(window.runner)
    window.add_panel(matching, "Matching", right)
    window.add_panel(evaluation, "Evaluation", right)
    window.tabifyDockWidget(window.panels["Paces"], window.panels["Matching"])
    window.tabifyDockWidget(window.panels["Matching"], window.panels["Evaluation"])
    matching.open_pair.connect(window.open_pair)
    matching.result_ready.connect(evaluation.set_result)
    identify = _install_identify_panel(window, project, session)
    window.panels["Library"].raise_()
    _install_tempo_strip(window, project, paces)

    def show_midi(midi_id: int) -> None:
        window.panels["Match labels"].show()
        window.panels["Match labels"].raise_()
        match.select_midi(midi_id)
        match.candidate_table.setFocus()

    def show_audio(audio_id: int) -> None:
        window.panels["Paces"].show()
        window.panels["Paces"].raise_()
        paces.select_file(audio_id)
        paces.pace_list.setFocus()

    library.midi_activated.connect(show_midi)
    library.audio_activated.connect(show_audio)
    match.pair_opened.connect(window.open_pair)
    paces.file_opened.connect(lambda path: window.open_files([path]))

    def poll() -> None:
        try:
            session.poll()
        except EarwormError:
            pass  # a busy project is polled again at the next tick

    timer = QTimer(window, interval=POLL_INTERVAL_MS)
    timer.timeout.connect(poll)
    timer.start()
    window.destroyed.connect(lambda *_: project.close())
    panels = ProjectPanels(project, session, library, match, paces, timer, identify)
    window.project_panels = panels
    return panels


def _install_identify_panel(window, project: Project, session: LabelSession):
    """The Identify panel (issue 8): the project's MIDI files are its default library; a piece
    opened from it is aligned with the query recording in the main views."""
    from gui.panels.identify import IdentifyPanel

    panel = IdentifyPanel(window.runner, project=project.path)
    window.add_panel(panel, "Identify", Qt.DockWidgetArea.RightDockWidgetArea)
    window.tabifyDockWidget(window.panels["Evaluation"], window.panels["Identify"])
    panel.open_pair.connect(window.open_pair)
    session.files_changed.connect(lambda _: panel.mark_library_stale())
    window.destroyed.connect(lambda *_: panel.shutdown())
    return panel


def _install_tempo_strip(window, project: Project, paces: PaceLabelPanel) -> None:
    """The tempo strip under the spectrogram (issue 7): a clicked candidate becomes a pace label
    of the recording on screen, and the recording's labelled paces are drawn on the strip. The
    whole-song candidates the strip computes are stored in the project (a background job with its
    own connection) when the recording is in it — at once, or when a click adds it — and the pace
    panel then offers them as one-click labels. The pace panel follows the recording on screen
    whenever the project has it."""
    from gui.panels.label_models import store_tempo_candidates_job
    from gui.views.tempo_strip import TempoStrip

    strip = TempoStrip(window.session)
    window.add_view("tempo", strip, stretch=1, index=1)
    # A strip, not a main view: give it a fixed share once the splitter has laid out.
    QTimer.singleShot(0, lambda: window.views.set_heights({"tempo": 140}))

    def recording_id(add: bool = False) -> int | None:
        """The recording on screen in the project; added (probed, hashed) only when labelling it."""
        pair = window.session.pair
        if pair is None:
            return None
        record = project.file_by_path(pair.audio_path)
        if record is None and add:
            record = project.add_file(pair.audio_path)
        return None if record is None else record.id

    def store_song_candidates(audio_path: str, candidates) -> None:
        if not candidates:
            return
        job = window.runner.submit(store_tempo_candidates_job, project.path, audio_path, list(candidates),
                                   name="storing tempo candidates")
        job.succeeded.connect(paces.model.candidates_stored)
        job.failed.connect(lambda exc: window.statusBar().showMessage(f"tempo candidates not stored: {exc}", 8000))

    def add_clicked_pace(bpm: float) -> None:
        try:
            file_id = recording_to_label()
            if file_id is None:
                return
            if paces.model.file_id != file_id:
                paces.select_file(file_id)
            paces.model.add(bpm)
        except EarwormError as exc:
            show_error(window, exc, "Could not add the pace")

    def show_labelled(_=None) -> None:
        try:
            file_id = recording_id()
            strip.set_labelled_paces(project.paces(file_id) if file_id is not None else [])
        except EarwormError:
            strip.set_labelled_paces([])

    def follow_pair(_=None) -> None:
        """The pace panel shows the recording on screen when the project has it (as the
        Library's double-click does), so its paces and suggestions are the strip's; when the
        project lacks it, the panel's empty file box names it (its first pace adds it)."""
        try:
            file_id = recording_id()
        except EarwormError:
            file_id = None
        pair = window.session.pair
        paces.file_combo.setPlaceholderText(
            "" if pair is None else f"{Path(pair.audio_path).name}  (on screen; a pace adds it to the project)")
        if file_id is not None and paces.model.file_id != file_id:
            paces.select_file(file_id)  # its paces_changed redraws the strip's labels
        else:
            show_labelled()
            paces.model.default_candidates_changed()  # the previous recording's are gone

    def recording_to_label() -> int | None:
        """A pace typed, tapped or halved with no file chosen goes to the recording on screen."""
        try:
            file_id = recording_id()
            if file_id is not None:
                return file_id
            file_id = recording_id(add=True)
        except EarwormError as exc:
            show_error(window, exc, "Could not add the recording to the project")
            return None
        if file_id is not None and strip.song_candidates:  # just added to the project: its candidates too
            store_song_candidates(window.session.pair.audio_path, strip.song_candidates)
        return file_id

    def candidates_on_screen() -> list:
        """The strip's whole-song candidates of the recording on screen while the project lacks it."""
        try:
            return [] if recording_id() is not None else list(strip.song_candidates)
        except EarwormError:
            return []

    paces.model.default_file = recording_to_label
    paces.model.default_candidates = candidates_on_screen
    strip.song_candidates_ready.connect(lambda *_: paces.model.default_candidates_changed())

    strip.pace_clicked.connect(add_clicked_pace)
    strip.song_candidates_ready.connect(store_song_candidates)
    paces.model.paces_changed.connect(show_labelled)
    window.session.events.pair_changed.connect(follow_pair)
    window.destroyed.connect(lambda *_: strip.shutdown())
