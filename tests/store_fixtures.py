"""Tiny generated media libraries for the project/labelling tests (store, labels I/O, GUI panels).

Every file is real: MIDI files written by pretty_midi, recordings written by soundfile (a few
hundred milliseconds of tones at 8 kHz), so that adding them runs the real validation.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def write_midi(path: Path, seed: int, n_notes: int = 6) -> Path:
    """A short one-instrument MIDI file whose notes depend on ``seed``."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=100 + seed % 60)
    inst = pretty_midi.Instrument(program=seed % 8)
    for k in range(n_notes):
        inst.notes.append(pretty_midi.Note(90, 55 + (seed * 7 + k * 3) % 24, 0.2 * k, 0.2 * k + 0.18))
    pm.instruments.append(inst)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))
    return path


def write_wav(path: Path, seed: int, seconds: float = 0.4, sr: int = 8000) -> Path:
    """A short recording: a tone whose pitch depends on ``seed``."""
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    y = 0.2 * np.sin(2 * np.pi * (220 + 15 * seed) * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y.astype(np.float32), sr, subtype="PCM_16")
    return path


def make_library(root: Path, n_midi: int = 3, n_audio: int = 4) -> Path:
    """``root/midi/song{i}.mid`` and ``root/audio/take{j}.wav`` (nested one level deeper for odd j)."""
    for i in range(n_midi):
        write_midi(root / "midi" / f"song{i}.mid", i)
    for j in range(n_audio):
        sub = root / "audio" / ("more" if j % 2 else "")
        write_wav(sub / f"take{j}.wav", j)
    return root


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """SHA-256 and mtime of every file under ``root``: proof that nothing was modified."""
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}
