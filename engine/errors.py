"""Errors the engine raises for bad input.

Every error names the file (when there is one) and the reason, so that the CLI can print
``error: <file>: <reason>`` and the GUI can show a dialog, instead of a traceback.
"""
from __future__ import annotations

import os


class EarwormError(Exception):
    """Base class: a problem with the user's input or environment, not a bug.

    Parameters
    ----------
    path : str or os.PathLike or None
        The file the problem is about, if any.
    reason : str
        What is wrong, in words a user understands.
    """

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class MidiError(EarwormError):
    """A MIDI file that cannot be read or has nothing to align."""


class AudioError(EarwormError):
    """An audio file that cannot be decoded, is empty, or is too short."""


class SoundfontError(EarwormError):
    """No usable soundfont, or one that FluidSynth cannot load."""


class ModelError(EarwormError):
    """A missing model file, or one whose inputs/outputs are not what the engine expects."""


class StoreError(EarwormError):
    """A project database that cannot be opened, is locked, or is from a newer version."""


class AlignmentError(EarwormError):
    """Alignment could not be computed (e.g. a sequence with no frames)."""


class DeviceError(EarwormError):
    """A sound device is missing, busy, or was unplugged."""
