"""The tempo strip: the tempogram around the playhead and the tempo candidates there.

Task
----
Under the spectrogram, show the autocorrelation tempogram of the ~16 s around the playhead (or
around the middle of the visible range when nothing plays), the candidate tempi of that window
as horizontal lines labelled with bpm, salience and whether the song fits that pace (the pace
classifier, run on clips around the playhead), and the paces the user labelled as dashed lines.
Clicking a candidate line emits :attr:`TempoStrip.pace_clicked` (bpm): the labelling panel turns
that into a one-click pace label. Once a recording is analysed, the strip also computes its
whole-song candidates (classified as ``earworm tempo`` does) and emits
:attr:`TempoStrip.song_candidates_ready` (audio path, candidates): the window stores them in the
project (``gui.panels.project_panels``) and the pace panel offers them as one-click labels.

Off the GUI thread: the recording is analysed once (``engine.tempo.analyze_file``, cached on
disk) and every update (``engine.tempo.tempogram_around`` + ``local_candidates`` +
``classify_paces``, ~10–30 ms) runs on a private one-thread :class:`gui.workers.JobRunner`.
Requests are coalesced — one computation runs, only the newest request waits — so the strip is
at most one computation behind a moving playhead and never queues stale work.

Candidate labels stay readable when candidates are close (:func:`place_labels`): each label sits
on its own line; the most salient are placed first, at the left, and a label that would overlap
one already placed (or the title, or a labelled pace's tag) moves right past it, then falls back to
its short form, and is hidden (the line and its tooltip remain) only when no room is left. The
layout is redone when the strip is resized.

Conventions: x is audio time (s) on the shared axis; y is log2(bpm) (ticks labelled in bpm).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal

from engine import pace, tempo
from engine.errors import EarwormError
from gui.session import LoadedPair, Session
from gui.views import theme
from gui.views.base import MOUSE_REFERENCE, StableAxis, TimeView
from gui.views.raster_item import RasterItem, colour_table
from gui.workers import JobRunner

BPM_TICKS = (40, 60, 80, 100, 120, 160, 200, 240, 320)
COMPATIBLE_COLOUR = "#6fd35b"
INCOMPATIBLE_COLOUR = "#9aa5b8"
UNCLASSIFIED_COLOUR = "#f5a623"
LABELLED_COLOUR = "#55e6ff"
LIVE_CLIPS = 2  # clips per candidate for the live classification (the CLI uses N_CLIPS)
LABEL_X0_FRACTION = 0.1  # where the first column of candidate labels starts (clear of the title)
LABEL_GAP_PX = 6
LABELLED_TAG_POSITION = 0.98


def place_labels(rows, width_px: float, x0_px: float, obstacles=(), gap_px: float = LABEL_GAP_PX):
    """Lay out one text label per horizontal line so that no two overlap.

    Parameters
    ----------
    rows : list of (top_px, height_px, widths_px)
        In priority order (the first is placed first, leftmost); ``widths_px`` lists the widths of
        the label's forms to try, longest first (e.g. full text, then short text).
    width_px : float
        Room available; a label must end before it.
    x0_px : float
        Leftmost start of a label.
    obstacles : iterable of (left, top, right, bottom)
        Rectangles (pixels) the labels must avoid.

    Returns
    -------
    list of (x_px, form_index) or None (no room: hide the label), one per row.
    """
    placed = [tuple(r) for r in obstacles]
    out = []
    for top, height, widths in rows:
        spot = None
        for form, width in enumerate(widths):
            x = x0_px
            while x + width <= width_px:
                hits = [r for r in placed if x < r[2] + gap_px and r[0] < x + width + gap_px
                        and top < r[3] and r[1] < top + height]
                if not hits:
                    spot = (x, form)
                    break
                x = max(r[2] for r in hits) + gap_px  # just right of what it would cover
            if spot is not None:
                placed.append((x, top, x + width, top + height))
                break
        out.append(spot)
    return out


class BpmAxis(StableAxis):
    """A left axis whose values are log2(bpm), labelled in bpm at musical round tempi."""

    def tickValues(self, minVal, maxVal, size):
        ticks = [np.log2(b) for b in BPM_TICKS if minVal <= np.log2(b) <= maxVal]
        return [(1.0, ticks), (0.5, [])]

    def tickStrings(self, values, scale, spacing):
        return [f"{2 ** v:.0f}" for v in values]


@dataclass
class TempoSnapshot:
    """One update of the strip, computed off the GUI thread."""

    time_s: float
    times_s: np.ndarray
    bpm: np.ndarray
    tempogram: np.ndarray                      # (n_bpm, n_times), 0..1
    candidates: list = field(default_factory=list)  # list[engine.tempo.TempoCandidate]
    note: str = ""                             # e.g. why candidates are not classified


def analyze_recording(path, progress=None, cancel=None) -> tempo.TempoFeatures:
    """Worker: the tempo features of a recording (disk-cached)."""
    if progress:
        progress(0.0, "tempo: analysing the recording")
    return tempo.analyze_file(path)


def song_candidates(features: tempo.TempoFeatures, classify: bool = True, progress=None, cancel=None) -> list:
    """Worker: the whole recording's candidates (engine.tempo.tempo_candidates), classified with the
    song-wide clips when the model is there (as ``earworm tempo``), most salient first."""
    candidates = tempo.tempo_candidates(features)
    if classify and candidates:
        try:
            candidates = pace.classify_paces(features, candidates)
        except EarwormError:  # no model: the candidates are still worth offering
            pass
    return candidates


def snapshot_at(features: tempo.TempoFeatures, time_s: float, window_s: float = 16.0, classify: bool = True,
                progress=None, cancel=None) -> TempoSnapshot:
    """Worker: the tempogram and classified candidates around ``time_s``."""
    times, bpm, tg = tempo.tempogram_around(features, time_s, window_s)
    candidates = tempo.local_candidates(features, time_s)
    note = ""
    if classify and candidates:
        try:
            candidates = pace.classify_paces(features, candidates, n_clips=LIVE_CLIPS, center_s=time_s)
        except EarwormError as exc:  # no model: still show the tempogram and the candidates
            note = str(exc)
    return TempoSnapshot(time_s, times, bpm, tg, candidates, note)


class TempoStrip(TimeView):
    """The tempo strip (see the module docstring); a :class:`TimeView` on the shared time axis.

    Parameters
    ----------
    session : Session
    window_s : float
        Length of the tempogram shown around the playhead.
    classify : bool
        Run the pace classifier on the current candidates.
    """

    candidates_changed = Signal(object)   # list[TempoCandidate] of the window just drawn
    snapshot_drawn = Signal(object)       # TempoSnapshot
    pace_clicked = Signal(float)          # bpm of a clicked candidate line
    analysis_failed = Signal(object)      # EarwormError of the recording
    song_candidates_ready = Signal(str, object)  # audio path, list[TempoCandidate] of the whole song

    mouse_reference = MOUSE_REFERENCE + (("Click a candidate line", "add that tempo as a pace of the recording"),)
    reference_name = "tempo strip"

    def __init__(self, session: Session, window_s: float = 16.0, classify: bool = True, parent=None):
        super().__init__(session, title="Tempo", left_axis=BpmAxis("left"), parent=parent)
        self.window_s = float(window_s)
        self.classify = classify
        self.features: tempo.TempoFeatures | None = None
        self.snapshot: TempoSnapshot | None = None
        self.labelled_paces: list[float] = []
        self.song_candidates: list = []   # of the recording analysed last (song_candidates_ready)
        self._runner = JobRunner(self, max_threads=1)
        self._analysis_job = None
        self._audio_path: str | None = None
        self._busy = False
        self._pending_s: float | None = None
        self._raster = RasterItem()
        self._raster.setZValue(-10)
        lut = pg.colormap.get("inferno").getLookupTable(0.0, 1.0, 256)[:, :3]
        self._raster.set_table(colour_table(lut, 0, 255))
        self.viewbox.addItem(self._raster, ignoreBounds=True)
        self._candidate_lines: list[pg.InfiniteLine] = []
        self._labelled_lines: list[pg.InfiniteLine] = []
        self.set_y_range(np.log2(tempo.MIN_BPM) - 0.05, np.log2(tempo.MAX_BPM) + 0.05)
        self.viewbox.sigResized.connect(lambda *_: self.layout_labels())
        self.finish_init()

    # -- inputs ---------------------------------------------------------------------------------
    def set_pair(self, pair: LoadedPair | None) -> None:
        self.set_audio(None if pair is None else pair.audio_path)

    def set_audio(self, path) -> None:
        """Analyse a recording in the background (None clears the strip)."""
        if self._analysis_job is not None:
            self._analysis_job.cancel()
        self._audio_path = None if path is None else str(path)
        self.song_candidates = []
        self.set_features(None)
        if path is None:
            return
        job = self._runner.submit(analyze_recording, self._audio_path, name="tempo analysis")
        self._analysis_job = job
        job.succeeded.connect(lambda features, p=self._audio_path: self._on_analysed(p, features))
        job.failed.connect(self.analysis_failed.emit)

    def set_features(self, features: tempo.TempoFeatures | None) -> None:
        """Use already computed features (None clears) and update around the playhead."""
        self.features = features
        self.snapshot = None
        self._raster.clear()
        self._show_candidates([])
        if features is not None:
            self.request_update(self._focus_s())

    def set_labelled_paces(self, bpms) -> None:
        """Paces the user labelled for this song, drawn as dashed lines."""
        self.labelled_paces = [float(b) for b in bpms]
        for line in self._labelled_lines:
            self.viewbox.removeItem(line)
        self._labelled_lines = []
        for b in self.labelled_paces:
            line = pg.InfiniteLine(pos=np.log2(b), angle=0, movable=False,
                                   pen=pg.mkPen(LABELLED_COLOUR, width=1.5, style=Qt.PenStyle.DashLine),
                                   label=f"label {b:.0f}",
                                   labelOpts={"position": LABELLED_TAG_POSITION, "color": LABELLED_COLOUR,
                                              "anchors": [(1, 1), (1, 1)]})
            line.setZValue(15)
            self.viewbox.addItem(line, ignoreBounds=True)
            self._labelled_lines.append(line)
        self.layout_labels()

    def has_pending_work(self) -> bool:
        """True while background results this strip will draw or emit are still to come (the
        recording's analysis, the tempogram and candidates around the playhead, the whole-song
        candidates). ``--screenshot`` waits for it (bounded) before grabbing the window."""
        return bool(self._runner.active_jobs) or self._pending_s is not None

    @property
    def current_candidates(self) -> list:
        return [] if self.snapshot is None else list(self.snapshot.candidates)

    # -- updates --------------------------------------------------------------------------------
    def _focus_s(self) -> float:
        t = self.session.playhead_s
        if t is None:
            start, end = self.session.view_range_s
            t = 0.5 * (start + end)
        return float(t)

    def request_update(self, time_s: float) -> None:
        """Ask for the strip around ``time_s``; coalesced with requests made meanwhile."""
        if self.features is None:
            return
        self._pending_s = float(time_s)
        if not self._busy:
            self._start_next()

    def _start_next(self) -> None:
        if self._pending_s is None or self.features is None:
            self._busy = False
            return
        t, self._pending_s = self._pending_s, None
        self._busy = True
        job = self._runner.submit(snapshot_at, self.features, t, self.window_s, self.classify, name="tempo strip")
        features = self.features
        job.succeeded.connect(lambda snap, f=features: self._draw(snap) if f is self.features else None)
        job.finished.connect(self._start_next)

    def _on_analysed(self, path, features) -> None:
        if path != self._audio_path:
            return
        self.song_candidates = []
        self.set_features(features)  # the strip's first drawing goes first
        job = self._runner.submit(song_candidates, features, self.classify, name="tempo candidates")
        job.succeeded.connect(lambda found, p=path: self._on_song_candidates(p, found))

    def _on_song_candidates(self, path, candidates) -> None:
        if path == self._audio_path:
            self.song_candidates = list(candidates)
            self.song_candidates_ready.emit(path, list(candidates))

    def _on_playhead_moved(self, t_s) -> None:
        super()._on_playhead_moved(t_s)
        if t_s is not None:
            self.request_update(t_s)

    def on_view_range(self, start_s: float, end_s: float) -> None:
        if self.session.playhead_s is None and self.features is not None:
            self.request_update(0.5 * (start_s + end_s))

    # -- drawing --------------------------------------------------------------------------------
    def _draw(self, snap: TempoSnapshot) -> None:
        self.snapshot = snap
        if snap.times_s.size:
            dt = float(snap.times_s[1] - snap.times_s[0]) if snap.times_s.size > 1 else 0.1
            lo, hi = np.log2(snap.bpm[0]), np.log2(snap.bpm[-1])
            half_row = 0.5 * (hi - lo) / max(snap.bpm.size - 1, 1)
            rect = QRectF(float(snap.times_s[0]) - dt / 2, lo - half_row, float(snap.times_s[-1] - snap.times_s[0]) + dt,
                          hi - lo + 2 * half_row)
            cells = np.clip(snap.tempogram * 255, 0, 255).astype(np.uint8)
            self._raster.set_cells(cells, rect)
        else:
            self._raster.clear()
        self._show_candidates(snap.candidates)
        self.set_title("Tempo" + (f" — {snap.note}" if snap.note else ""))
        self.candidates_changed.emit(list(snap.candidates))
        self.snapshot_drawn.emit(snap)

    def _show_candidates(self, candidates) -> None:
        for line in self._candidate_lines:
            self.viewbox.removeItem(line)
        self._candidate_lines = []
        top = max((c.salience for c in candidates), default=1.0)
        for c in candidates:
            if c.compatible is None:
                colour, verdict = UNCLASSIFIED_COLOUR, ""
            else:
                colour = COMPATIBLE_COLOUR if c.compatible else INCOMPATIBLE_COLOUR
                verdict = f"  {'fits' if c.compatible else 'no'} {c.pace_probability:.2f}"
            short = f"{c.bpm:.0f}{'' if c.compatible is None else (' fits' if c.compatible else ' no')}"
            # Weak candidates get only the short form, so that the strong ones keep their room.
            full = f"{c.bpm:.0f} bpm  {c.salience:.2f}{verdict}" if c.salience >= 0.05 else short
            line = pg.InfiniteLine(pos=np.log2(c.bpm), angle=0, movable=False,
                                   pen=pg.mkPen(colour, width=1 + 2.5 * c.salience / max(top, 1e-9)),
                                   label=full,
                                   labelOpts={"position": LABEL_X0_FRACTION, "color": colour,
                                              "anchors": [(0, 1), (0, 1)],
                                              "fill": pg.mkBrush(theme.LABEL_BACKGROUND)})
            line.bpm = c.bpm
            line.label_forms = (full, short) if short != full else (full,)
            line.setZValue(16)
            line.setToolTip(f"{full}\nclick: label this pace")
            line.sigClicked.connect(self._on_line_clicked)
            self.viewbox.addItem(line, ignoreBounds=True)
            self._candidate_lines.append(line)
        self.layout_labels()

    def layout_labels(self) -> None:
        """Place the candidate labels so that none overlaps another (see :func:`place_labels`);
        the lines are in salience order, so the strongest candidates are placed first."""
        width, height = float(self.viewbox.width()), float(self.viewbox.height())
        if not self._candidate_lines or width <= 1 or height <= 1:
            return
        (_, _), (y_lo, y_hi) = self.viewbox.viewRange()

        def y_px(value: float) -> float:
            return (y_hi - value) / max(y_hi - y_lo, 1e-9) * height

        obstacles = []
        if self.title_item.isVisible():
            r = self.title_item.boundingRect()
            obstacles.append((0.0, 0.0, 4.0 + r.width(), 2.0 + r.height()))
        for line in self._labelled_lines:
            r = line.label.boundingRect()
            right, y = LABELLED_TAG_POSITION * width, y_px(line.value())
            obstacles.append((right - r.width(), y - r.height(), right, y))
        rows, above_line = [], []
        for line in self._candidate_lines:
            sizes = []
            for text in line.label_forms:
                line.label.setText(text)  # measured directly: a hidden InfLineLabel ignores setFormat
                sizes.append(line.label.boundingRect())
            h = max(r.height() for r in sizes)
            y = y_px(line.value())
            above = y - h >= 0  # above its line, unless that leaves the strip
            rows.append((y - h if above else y, h, [r.width() for r in sizes]))
            above_line.append(above)
        spots = place_labels(rows, width, LABEL_X0_FRACTION * width, obstacles)
        for line, spot, above in zip(self._candidate_lines, spots, above_line):
            label = line.label
            if spot is None:
                label.setVisible(False)
                continue
            x, form = spot
            label.format = line.label_forms[form]
            label.anchors = [(0, 1), (0, 1)] if above else [(0, 0), (0, 0)]
            label.orthoPos = x / width
            label.setVisible(True)  # also sets the text and the position
            label.valueChanged()

    def _on_line_clicked(self, line, event=None) -> None:
        self.pace_clicked.emit(float(line.bpm))

    # -- shutdown -------------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Cancel and wait for background work (call before closing the window)."""
        self._pending_s = None
        self._runner.cancel_all()
        self._runner.wait(timeout_s)
