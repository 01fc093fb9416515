"""An image item that draws fast: uint8 cells coloured through a 256-entry table into RGB32.

Why not ``pyqtgraph.ImageItem``: for uint8 data with a lookup table it builds an *indexed* QImage,
which Qt converts on every paint — about 6 ms for a screen-sized spectrogram, every frame of a pan.
Here the colouring is one numpy take into a ``Format_RGB32`` image (Qt's fastest to draw, ~0.2 ms
scaled), redone only when the data or the colours change.

Conventions: ``cells`` is (n_rows, n_columns) uint8, row 0 drawn at the bottom of ``rect`` (data
coordinates, y up); ``table`` maps a cell value to a 0xAARRGGBB colour.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter


def colour_table(lut_rgb: np.ndarray, low: float, high: float) -> np.ndarray:
    """A (256,) uint32 table: cell values ``low..high`` spread over the colour map ``lut_rgb``.

    Values at or below ``low`` get the first colour, at or above ``high`` the last.
    """
    lut_rgb = np.asarray(lut_rgb, dtype=np.uint32).reshape(-1, 3)
    n = len(lut_rgb)
    values = np.arange(256, dtype=np.float64)
    index = np.clip((values - low) / max(high - low, 1e-9) * (n - 1), 0, n - 1).round().astype(np.int64)
    rgb = lut_rgb[index]
    return (0xFF000000 | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).astype(np.uint32)


class RasterItem(pg.GraphicsObject):
    """Draws one RGB32 image into a rectangle of data coordinates."""

    def __init__(self):
        super().__init__()
        self._cells: np.ndarray | None = None
        self._table = colour_table(np.stack([np.arange(256)] * 3, axis=1), 0, 255)
        self._rgb: np.ndarray | None = None
        self._qimage: QImage | None = None
        self._rect = QRectF()

    def set_cells(self, cells: np.ndarray | None, rect: QRectF | None = None) -> None:
        """New cell values (uint8, rows × columns) and, optionally, where they go."""
        if rect is not None and rect != self._rect:
            self.prepareGeometryChange()
            self._rect = QRectF(rect)
        self._cells = None if cells is None else np.asarray(cells, dtype=np.uint8)
        self._recolour()

    def set_table(self, table: np.ndarray) -> None:
        """New colours (a (256,) uint32 table, see :func:`colour_table`)."""
        self._table = np.asarray(table, dtype=np.uint32)
        self._recolour()

    def clear(self) -> None:
        self.set_cells(None)

    @property
    def cells(self) -> np.ndarray | None:
        return self._cells

    def _recolour(self) -> None:
        if self._cells is None or self._cells.size == 0:
            self._rgb, self._qimage = None, None
        else:
            self._rgb = np.ascontiguousarray(self._table[self._cells])
            h, w = self._rgb.shape
            self._qimage = QImage(self._rgb.data, w, h, 4 * w, QImage.Format.Format_RGB32)
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(self._rect)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if self._qimage is None:
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        painter.drawImage(self._rect, self._qimage)
