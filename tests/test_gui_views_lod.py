"""Level of detail: the spectrogram pyramid and the batched notes item draw the right pixels."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor

from gui.session import DisplaySpectrogram
from gui.views.notes_item import NotesItem
from gui.lod import SpectrogramPyramid, cost_brightness


def _spectrogram(n_frames=20000, hop_s=0.02):
    rng = np.random.default_rng(1)
    S = rng.uniform(-80, -40, size=(30, n_frames)).astype(np.float32)
    S[10, min(12345, n_frames - 1)] = 0.0  # one loud cell, to find again at every level
    return DisplaySpectrogram(S, 40 + np.arange(30) / 3.0, np.arange(n_frames) * hop_s)


def test_pyramid_window_is_bounded_by_the_screen_and_keeps_peaks():
    spec = _spectrogram()
    pyramid = SpectrogramPyramid(spec)
    width_px = 800
    peak_t = spec.times_s[12345]
    for start, end in [(0.0, 400.0), (200.0, 260.0), (246.0, 248.0)]:
        image, t0, t1, level = pyramid.window(start, end, width_px)
        assert t0 <= start + 1e-9 or t0 <= pyramid.first_edge_s + 1e-9
        assert t1 >= end - 1e-9 or t1 >= pyramid.first_edge_s + spec.S_db.shape[1] * pyramid.frame_s - 1e-9
        assert image.shape[0] == 30
        assert image.shape[1] <= width_px + 4  # never more than one column per pixel (+ margins)
        if t0 <= peak_t <= t1:
            col = int((peak_t - t0) / (t1 - t0) * image.shape[1])
            # max pooling keeps the loud cell at whatever level is drawn
            assert image[10, max(col - 1, 0):col + 2].max() == 255
    _, _, _, coarse = pyramid.window(0.0, 400.0, width_px)
    _, _, _, fine = pyramid.window(246.0, 248.0, width_px)
    assert coarse > 0 and fine == 0


def test_pyramid_rows_span_the_pitch_bins():
    spec = _spectrogram(n_frames=100)
    pyramid = SpectrogramPyramid(spec)
    assert pyramid.pitch_lo == pytest.approx(40 - 1 / 6)
    assert pyramid.pitch_hi == pytest.approx(40 + 29 / 3 + 1 / 6)


def _plot_with_notes(qtbot, item: NotesItem, x_range, y_range):
    plot = pg.PlotWidget(background="k")
    plot.resize(900, 400)
    plot.addItem(item)
    plot.setXRange(*x_range, padding=0)
    plot.setYRange(*y_range, padding=0)
    qtbot.addWidget(plot)
    plot.show()
    qtbot.waitExposed(plot)
    return plot


def _pixel_at(plot, x, y) -> QColor:
    vb = plot.getPlotItem().getViewBox()
    pt = plot.mapFromScene(vb.mapViewToScene(QPointF(x, y)))
    return plot.grab().toImage().pixelColor(pt.x(), pt.y())


@pytest.mark.parametrize("n_notes, expected_mode", [(300, "rects"), (20000, "raster")])
def test_notes_item_draws_every_note_in_rects_or_raster(qtbot, n_notes, expected_mode):
    rng = np.random.default_rng(0)
    starts = np.sort(rng.uniform(0, 1200, n_notes))
    durations = rng.uniform(0.2, 1.0, n_notes)
    rows = rng.integers(40, 90, n_notes)
    rows[0], starts[0], durations[0] = 100, 600.0, 30.0  # a long note alone on its row, to probe
    palette = np.array([[255, 0, 0, 255], [0, 255, 0, 255]], np.uint8)
    colour_index = np.zeros(n_notes, int)
    colour_index[0] = 1
    item = NotesItem(style="fill", raster_threshold=5000)
    item.set_notes(starts, starts + durations, rows, colour_index, palette)
    bounds = item.boundingRect()
    assert bounds.left() == pytest.approx(starts.min())
    assert bounds.right() == pytest.approx((starts + durations).max())
    assert bounds.top() == pytest.approx(rows.min() - 0.42) and bounds.bottom() == pytest.approx(rows.max() + 0.42)
    plot = _plot_with_notes(qtbot, item, (0, 1200), (30, 110))
    probe = _pixel_at(plot, 615.0, 100.0)
    assert item.last_paint_mode == expected_mode
    assert item.last_painted_count == n_notes
    assert probe.green() > 200 and probe.red() < 60
    empty = _pixel_at(plot, 615.0, 105.0)  # a row with no notes stays background
    assert empty.green() < 40 and empty.red() < 40
    # zoomed into a second of music, even the dense piece is drawn as rectangles
    plot.setXRange(600.0, 601.0, padding=0)
    assert _pixel_at(plot, 600.5, 100.0).green() > 200
    assert item.last_paint_mode == "rects" and item.last_painted_count < 200


def test_visible_indices_include_long_notes_started_before_the_range():
    item = NotesItem()
    starts = np.array([0.0, 5.0, 10.0, 20.0])
    ends = np.array([30.0, 6.0, 11.0, 21.0])
    item.set_notes(starts, ends, np.array([60, 61, 62, 63]), np.zeros(4, int), np.zeros((1, 4), np.uint8))
    assert item.visible_indices(15.0, 16.0).tolist() == [0]
    assert item.visible_indices(5.5, 10.5).tolist() == [0, 1, 2]


def test_cost_brightness_lights_only_the_best_matching_quarter():
    rng = np.random.default_rng(2)
    cost = rng.uniform(0.5, 1.0, size=(40, 50)).astype(np.float32)
    diagonal = (np.arange(40), np.arange(40))
    cost[diagonal] = np.linspace(0.01, 0.02, 40)  # the valley a path would follow
    cells = cost_brightness(cost)
    assert cells.dtype == np.uint8 and cells.shape == cost.shape
    assert np.all(cells[diagonal] >= 200)  # the valley glows
    assert np.mean(cells > 0) == pytest.approx(0.25, abs=0.01)  # a quarter lit, the rest dark
    order = np.argsort(cost.ravel())
    assert np.all(np.diff(cells.ravel()[order].astype(int)) <= 0)  # lower cost, never darker
