"""Filling a project's library from folders, and finding files that moved.

Task
----
:func:`add_folder` walks a folder recursively, validates every MIDI and audio file it finds with
:mod:`engine.media` (a MIDI is parsed; a recording's header is read), and records path, content
hash, duration and metadata in the project. Files it cannot read are listed with the reason,
in the report and in the project. :func:`relink` finds files whose path no longer exists by their
content hash under some search folders and points the project at their new place.

Conventions
-----------
- Media files are only read, never written, renamed or moved.
- Files are recognised by extension (``engine.media.MIDI_EXTENSIONS`` / ``AUDIO_EXTENSIONS``);
  other files and hidden folders are skipped silently.
- A file already in the project whose size and modification time are unchanged is not read
  again, so rescanning a large library is quick.
- ``progress(fraction, message)`` is called from the calling thread; ``cancel()`` returning True
  stops the work at the next file, keeping what was already committed.
- Found files are committed in batches (at most ``batch_size`` files or half a second apart).
"""
from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from engine.cache import file_hash
from engine.errors import AudioError, EarwormError, StoreError
from engine.media import AUDIO_EXTENSIONS, MIDI_EXTENSIONS, MIN_AUDIO_SECONDS, audio_duration, load_midi
from engine.store_records import RelinkReport, ScanReport


@dataclass(frozen=True)
class ProbedFile:
    """What the project records about one readable media file."""

    path: str
    kind: str  # "midi" or "audio"
    content_hash: str
    size_bytes: int
    mtime_ns: int
    duration_s: float
    metadata: dict = field(default_factory=dict)


def media_kind(path) -> str | None:
    """"midi", "audio" or None, from the file name's extension."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in MIDI_EXTENSIONS:
        return "midi"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    return None


def probe_file(path) -> ProbedFile:
    """Validate one media file and describe it.

    Raises
    ------
    EarwormError
        (``MidiError``, ``AudioError``, …) naming the file and why it cannot be used.
    """
    p = os.path.abspath(os.fspath(path))
    kind = media_kind(p)
    if kind is None:
        raise EarwormError(p, "not a MIDI or audio file (unknown extension)")
    try:
        if kind == "midi":
            midi = load_midi(p)
            duration_s = float(midi.get_end_time())
            metadata = {
                "n_notes": sum(len(i.notes) for i in midi.instruments),
                "n_instruments": len(midi.instruments),
                "programs": sorted({int(i.program) for i in midi.instruments if not i.is_drum}),
                "has_drums": bool(any(i.is_drum for i in midi.instruments)),
                "n_tempo_changes": int(len(midi.get_tempo_changes()[0])),
                "resolution": int(midi.resolution),
            }
        else:
            import soundfile as sf

            duration_s = float(audio_duration(p))
            if duration_s < MIN_AUDIO_SECONDS:
                raise AudioError(p, f"too short ({duration_s:.3f} s; need ≥ {MIN_AUDIO_SECONDS} s)")
            info = sf.info(p)
            metadata = {"samplerate": int(info.samplerate), "channels": int(info.channels),
                        "format": info.format, "subtype": info.subtype}
        st = os.stat(p)
        content_hash = file_hash(p)
    except OSError as exc:
        raise EarwormError(p, f"cannot read the file ({exc.strerror or exc})") from None
    return ProbedFile(p, kind, content_hash, st.st_size, st.st_mtime_ns, duration_s, metadata)


def list_media_files(folder, cancel=None) -> list[str]:
    """Absolute paths of the MIDI and audio files under ``folder`` (recursive, sorted).

    Hidden folders (``.git``, ``.cache``…) are skipped and symbolic links to folders are not
    followed, so a link loop cannot trap the walk.
    """
    root = Path(folder)
    if not root.is_dir():
        raise StoreError(root, "not a folder (cannot add or search it)")
    found = []
    for dirpath, dirnames, filenames in os.walk(os.path.abspath(root)):
        if cancel is not None and cancel():
            break
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [os.path.join(dirpath, name) for name in sorted(filenames)
                  if not name.startswith(".") and media_kind(name)]
    return found


def add_folder(project, folder, progress=None, cancel=None, batch_size: int = 64) -> ScanReport:
    """Add every media file under ``folder`` to ``project``; see the module docstring.

    Returns
    -------
    ScanReport
        Paths added and updated, the number unchanged, ``(path, reason)`` of every unreadable
        file, and whether the scan was cancelled.
    """
    report = ScanReport()
    _say(progress, 0.0, f"listing {folder}")
    paths = list_media_files(folder, cancel)
    if cancel is not None and cancel():
        report.cancelled = True
        return report
    known = project._file_stats()
    batch, bad = [], []
    last_flush = time.monotonic()

    def flush():
        nonlocal batch, bad, last_flush
        if batch or bad:
            project._upsert_files(batch, bad)
        batch, bad, last_flush = [], [], time.monotonic()

    for i, path in enumerate(paths):
        if cancel is not None and cancel():
            report.cancelled = True
            break
        _say(progress, i / max(len(paths), 1), os.path.basename(path))
        previous = known.get(path)
        try:
            st = os.stat(path)
            if previous and not previous[3] and (previous[1], previous[2]) == (st.st_size, st.st_mtime_ns):
                report.unchanged += 1
                continue
            probed = probe_file(path)
        except OSError as exc:
            bad.append((path, f"cannot read the file ({exc.strerror or exc})"))
        except EarwormError as exc:
            bad.append((path, exc.reason))
        else:
            batch.append(probed)
            (report.updated if previous else report.added).append(path)
        if bad and bad[-1][0] == path:
            report.unreadable.append(bad[-1])
        if len(batch) >= batch_size or time.monotonic() - last_flush > 0.5:
            flush()
    flush()
    _say(progress, 1.0, f"{len(report.added)} added, {len(report.updated)} updated, "
                        f"{len(report.unreadable)} unreadable")
    return report


def refresh_missing(project) -> list:
    """Mark which files of the project no longer exist at their path; returns those FileRecords."""
    files = project.files()
    missing = [f for f in files if not os.path.isfile(f.path)]
    project._set_missing({f.id for f in missing}, {f.id for f in files} - {f.id for f in missing})
    return [f for f in project.files() if f.missing]


def relink(project, search_dirs, progress=None, cancel=None) -> RelinkReport:
    """Find moved files by content hash under ``search_dirs`` and record their new paths.

    Only files whose size equals a missing file's size are hashed, so a search over a large
    tree stays cheap. Each found file is used once; a file already in the project is never taken.
    """
    report = RelinkReport()
    missing = refresh_missing(project)
    if not missing:
        _say(progress, 1.0, "no missing files")
        return report
    by_size = defaultdict(list)
    for f in missing:
        by_size[f.size_bytes].append(f)
    known_paths = {f.path for f in project.files()}
    candidates = []
    for d in search_dirs:
        for path in list_media_files(d, cancel):
            try:
                if path not in known_paths and os.stat(path).st_size in by_size:
                    candidates.append(path)
            except OSError:
                continue
    found: dict[int, str] = {}
    for i, path in enumerate(candidates):
        if cancel is not None and cancel():
            report.cancelled = True
            break
        _say(progress, i / max(len(candidates), 1), f"hashing {os.path.basename(path)}")
        try:
            size, digest = os.stat(path).st_size, file_hash(path)
        except OSError:
            continue
        for f in by_size[size]:
            if f.id not in found and f.content_hash == digest:
                found[f.id] = path
                break
        if len(found) == len(missing):
            break
    moves = [(f.id, found[f.id], os.stat(found[f.id]).st_mtime_ns) for f in missing if f.id in found]
    project._move_files(moves)
    report.relinked = [(f.path, found[f.id]) for f in missing if f.id in found]
    report.still_missing = [f.path for f in missing if f.id not in found]
    _say(progress, 1.0, f"{len(report.relinked)} relinked, {len(report.still_missing)} still missing")
    return report


def _say(progress, fraction: float, message: str) -> None:
    if progress is not None:
        progress(float(fraction), message)
