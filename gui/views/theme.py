"""Colours, sizes and colour maps shared by every view (one place to restyle the window).

Conventions: colours are hex strings or RGBA tuples (0-255); sizes in device-independent pixels.
The palette is dark so that the spectrogram's colour map keeps its contrast, and note colours are
chosen to stay distinct from each other and from the spectrogram's magma/inferno ramps.
"""
from __future__ import annotations

import numpy as np

# Every time view reserves the same axis widths, so their plot areas line up to the pixel and a
# time cursor is one straight line down the window.
LEFT_AXIS_WIDTH_PX = 86
RIGHT_AXIS_WIDTH_PX = 52

BACKGROUND = "#15161a"
PANEL_BACKGROUND = "#1c1d22"
AXIS_TEXT = "#c9cbd3"
AXIS_LINE = "#5b5e69"
LABEL_TEXT = "#f0f1f5"
LABEL_BACKGROUND = (20, 21, 26, 200)

ROW_WHITE_KEY = "#23252c"
ROW_BLACK_KEY = "#1a1b20"
ROW_C_LINE = "#3b3e49"

CURSOR = (235, 235, 240, 190)
PLAYHEAD = "#4cd964"
SELECTION_BRUSH = (90, 160, 255, 45)
SELECTION_EDGE = (90, 160, 255, 160)

PATH_LINE = "#ff5b3a"
PATH_HOVER = (255, 255, 255, 150)
TEMPO_LINE = "#ffd54a"
OVERLAY_OUTLINE = "#55e6ff"

# Instrument colours (cycled): distinct hues of similar brightness.
INSTRUMENT_COLOURS = (
    "#4e9af1", "#f5a623", "#6fd35b", "#e5534b", "#b07ce8", "#45d4c0",
    "#f0d33c", "#ff7eb6", "#9aa5b8", "#c49a6c", "#7f8cff", "#b5e36a",
)
DRUM_COLOUR = "#d9d9de"

SPECTROGRAM_COLORMAPS = ("magma", "inferno", "viridis", "CET-L16", "grey")


def hex_to_rgba(colour, alpha: int = 255) -> tuple[int, int, int, int]:
    """``"#rrggbb"`` (or an RGB/RGBA tuple) → an (r, g, b, a) tuple of ints."""
    if isinstance(colour, str):
        c = colour.lstrip("#")
        return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), alpha
    return tuple(int(v) for v in colour[:3]) + (int(colour[3]) if len(colour) > 3 else alpha,)


def instrument_palette(n: int) -> np.ndarray:
    """(n, 4) uint8 RGBA colours for ``n`` instruments, cycling :data:`INSTRUMENT_COLOURS`."""
    return np.array([hex_to_rgba(INSTRUMENT_COLOURS[i % len(INSTRUMENT_COLOURS)]) for i in range(max(n, 1))],
                    dtype=np.uint8)


VELOCITY_LEVELS = 16


def velocity_palette() -> np.ndarray:
    """(VELOCITY_LEVELS, 4) uint8 colours from soft (dim blue) to loud (bright yellow)."""
    import pyqtgraph as pg

    cmap = pg.colormap.get("CET-L8")  # blue → magenta → yellow, perceptually uniform
    positions = np.linspace(0.25, 1.0, VELOCITY_LEVELS)
    return np.array([cmap.map(p, mode="byte") for p in positions], dtype=np.uint8)


def velocity_level(velocity: np.ndarray) -> np.ndarray:
    """MIDI velocities (1..127) → indices into :func:`velocity_palette`."""
    v = np.clip(np.asarray(velocity, dtype=np.int32), 1, 127)
    return ((v - 1) * VELOCITY_LEVELS // 127).astype(np.int32)


def colormap_lut(name: str, n_points: int = 256) -> np.ndarray:
    """A (n_points, 3) uint8 lookup table for a spectrogram colour map (``"grey"`` included)."""
    import pyqtgraph as pg

    if name == "grey":
        ramp = np.linspace(0, 255, n_points).astype(np.uint8)
        return np.stack([ramp, ramp, ramp], axis=1)
    return pg.colormap.get(name).getLookupTable(nPts=n_points, alpha=False)
