"""Importing and exporting a project's labels and scores in the formats other tools use.

Task
----
Move hand labels and match scores between a :class:`engine.store.Project` and files:

=========  ==========================================================  =====================
format     layout                                                      holds
=========  ==========================================================  =====================
csv        long CSV ``midi,audio,label,note,who,when``                 match labels
matrix     seed study: rows audio, columns MIDI, cells ``1``/``0``     match labels
scores     seed study: same layout, cells floats                       match scores
lmd        Lakh MIDI dataset ``{audio_id: {midi_id: confidence}}``     match scores (JSON)
jams       a folder of ``.jams`` files, ``tempo`` namespace, one       pace labels
           observation per pace, confidence 1.0
paces      CSV ``file,bpm[,bpm…]``, one row per file                   pace labels
=========  ==========================================================  =====================

Conventions
-----------
- A file is named by its id: the shortest of file name without extension (``lmd`` only), file
  name, or full path that is unique in the project among the files it could be. Importing
  accepts any of these (and a path relative to the imported file's folder).
- Import is all or nothing: every row is validated first; if any is bad, :class:`LabelsImportError`
  lists every bad row (line number and reason) and nothing is written. Labels are then written in
  one transaction as one undoable history action; scores replace earlier scores of the same pairs.
- In a matrix an empty cell means "no label"; ``unsure`` labels, notes, who and when do not fit
  that layout and are left out of it (the long CSV keeps them all). Imported paces are added to
  a file's set; nothing is removed.
- Export writes each file atomically (a temporary file renamed into place).
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import tempfile
import warnings
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine.errors import StoreError
from engine.store import MATCH_SCORE, Project, normalise_bpm, now_iso
from engine.store_schema import LABELS, MAX_BPM, MIN_BPM

FORMATS = ("csv", "matrix", "scores", "lmd", "jams", "paces")
CSV_HEADER = ("midi", "audio", "label", "note", "who", "when")


@dataclass(frozen=True)
class BadRow:
    """One problem found while validating an import. ``line`` is 1-based; None when not line-based."""

    source: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}" if self.line else f"{self.source}: {self.reason}"


class LabelsImportError(StoreError):
    """An import with bad rows; ``bad_rows`` lists every one. Nothing was written."""

    def __init__(self, path, bad_rows: list[BadRow]):
        self.bad_rows = list(bad_rows)
        first = self.bad_rows[0]
        where = f"line {first.line}: " if first.line else ""
        super().__init__(path, f"{len(self.bad_rows)} bad row(s), nothing imported (first: {where}{first.reason})")


@dataclass(frozen=True)
class ImportReport:
    format: str
    n_rows: int  # labels or scores read from the file
    n_changed: int  # labels that changed / scores stored


# ---------------------------------------------------------------------------- naming files
class _Ids:
    """Ids for export and their resolution on import, among the files of one kind (or all)."""

    def __init__(self, project: Project):
        self.files = project.files()
        self.by_path = {f.path: f for f in self.files}
        self.by_id = {f.id: f for f in self.files}
        self.by_name: dict[tuple, list] = defaultdict(list)
        for f in self.files:
            for scope in (f.kind, None):
                self.by_name[(scope, "name", f.name)].append(f)
                self.by_name[(scope, "stem", os.path.splitext(f.name)[0])].append(f)

    def id_of(self, f, scope: str | None, stem: bool = False) -> str:
        forms = (("stem", os.path.splitext(f.name)[0]),) if stem else ()
        for form, key in forms + (("name", f.name),):
            if len(self.by_name[(scope, form, key)]) == 1:
                return key
        return f.path

    def resolve(self, ident: str, scope: str | None, base_dir: Path):
        """The FileRecord named ``ident``, or a reason string why there is none."""
        ident = ident.strip()
        what = {"midi": "MIDI file", "audio": "recording", None: "file"}[scope]
        if not ident:
            return f"empty {what} id"
        for candidate in (ident, os.path.join(base_dir, ident)):
            f = self.by_path.get(os.path.abspath(candidate))
            if f is not None and (scope is None or f.kind == scope):
                return f
        for form in ("name", "stem"):
            found = self.by_name.get((scope, form, ident), [])
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                return f"{ident!r} is ambiguous: {len(found)} files of the project are called that (use the path)"
        return f"{ident!r} is not a {what} of this project"


# ---------------------------------------------------------------------------- export
def export_labels(project: Project, fmt: str, out, *, result_kind: str = MATCH_SCORE) -> int:
    """Write the project's labels (or scores) to ``out`` in format ``fmt``; returns rows (files) written.

    ``result_kind`` chooses which results the ``scores`` and ``lmd`` formats export.
    """
    _check_format(fmt)
    ids, out = _Ids(project), Path(out)
    midis = [f for f in ids.files if f.kind == "midi"]
    audios = [f for f in ids.files if f.kind == "audio"]
    if fmt == "csv":
        rows = [CSV_HEADER]
        for lab in project.match_labels():
            rows.append((ids.id_of(ids.by_id[lab.midi_id], "midi"), ids.id_of(ids.by_id[lab.audio_id], "audio"),
                         lab.label, lab.note, lab.who, lab.at))
        _write_csv(out, rows[:1] + sorted(rows[1:]))
        return len(rows) - 1
    if fmt in ("matrix", "scores"):
        if fmt == "matrix":
            cell = {(m.midi_id, m.audio_id): {"match": "1", "no_match": "0"}.get(m.label, "")
                    for m in project.match_labels()}
        else:
            cell = {(r.file_id, r.other_id): repr(r.value) for r in project.results(result_kind)
                    if r.other_id is not None and r.value is not None}
        header = [["audio"] + [ids.id_of(m, "midi") for m in midis]]
        body = ([ids.id_of(a, "audio")] + [cell.get((m.id, a.id), "") for m in midis] for a in audios)
        _write_csv(out, itertools.chain(header, body))  # streamed: a 5 000 × 5 000 matrix is 25 M cells
        return len(audios)
    if fmt == "lmd":
        scores: dict = {}
        for r in project.results(result_kind):
            if r.other_id is not None and r.value is not None:
                audio_id = ids.id_of(ids.by_id[r.other_id], "audio", stem=True)
                scores.setdefault(audio_id, {})[ids.id_of(ids.by_id[r.file_id], "midi", stem=True)] = r.value
        _write_text(out, json.dumps(scores, indent=1, sort_keys=True))
        return sum(len(v) for v in scores.values())
    if fmt == "paces":
        by_file = defaultdict(list)
        for p in project.pace_labels():
            by_file[p.file_id].append(p.bpm)
        rows = [["file", "bpm"]] + sorted([ids.id_of(ids.by_id[fid], None)] + [f"{b:g}" for b in sorted(bpms)]
                                          for fid, bpms in by_file.items())
        _write_csv(out, rows)
        return len(by_file)
    return _export_jams(project, ids, out)


def _export_jams(project: Project, ids: _Ids, out_dir: Path) -> int:
    import jams

    if out_dir.exists() and not out_dir.is_dir():
        raise StoreError(out_dir, "JAMS export needs a folder (one .jams file per labelled file)")
    out_dir.mkdir(parents=True, exist_ok=True)
    by_file = defaultdict(list)
    for p in project.pace_labels():
        by_file[p.file_id].append(p)
    for file_id, paces in sorted(by_file.items()):
        f = ids.by_id[file_id]
        duration_s = float(f.duration_s or 0.0)
        jam = jams.JAMS()
        jam.file_metadata.title = f.name
        jam.file_metadata.duration = duration_s
        jam.file_metadata.identifiers = {"earworm_file": ids.id_of(f, None), "content_hash": f.content_hash}
        ann = jams.Annotation(namespace="tempo", time=0.0, duration=duration_s)
        ann.annotation_metadata.annotator.name = max(paces, key=lambda p: p.at).who
        ann.annotation_metadata.data_source = "Earworm Studio hand labels"
        for p in sorted(paces, key=lambda p: p.bpm):
            ann.append(time=0.0, duration=duration_s, value=float(p.bpm), confidence=1.0)
        jam.annotations.append(ann)
        buffer = io.StringIO()
        with warnings.catch_warnings():  # jams calls a jsonschema API that jsonschema deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            jam.save(buffer)
        file_name = ids.id_of(f, None, stem=True).strip(os.sep).replace(os.sep, "_")
        _write_text(out_dir / f"{file_name}.jams", buffer.getvalue())
    return len(by_file)


# ---------------------------------------------------------------------------- import
def import_labels(project: Project, fmt: str, src, *, result_kind: str = MATCH_SCORE) -> ImportReport:
    """Validate ``src`` completely, then write its labels (or scores) to ``project`` in one go.

    Raises
    ------
    LabelsImportError
        Listing every bad row; nothing was written.
    StoreError
        If ``src`` cannot be read at all.
    """
    _check_format(fmt)
    src, ids = Path(src), _Ids(project)
    if not src.exists():
        raise StoreError(src, "file not found")
    reader = {"csv": _read_long_csv, "matrix": _read_matrix, "scores": _read_matrix, "lmd": _read_lmd,
              "jams": _read_jams, "paces": _read_paces}[fmt]
    items, bad = reader(src, ids, fmt)
    if bad:
        raise LabelsImportError(src, bad)
    if fmt in ("scores", "lmd"):
        n = project.put_results(result_kind, [(m, a, v, None) for (m, a), v in items.items()])
        return ImportReport(fmt, len(items), n)
    if fmt in ("csv", "matrix"):
        now = now_iso()
        changes = [{"t": "match", "k": [m, a], "a": {"label": lab, "note": note, "who": who or project.who,
                                                    "at": when or now}}
                   for (m, a), (lab, note, who, when) in items.items()]
    else:
        changes = [{"t": "pace", "k": [fid, bpm], "a": {"who": who or project.who, "at": now_iso()}}
                   for (fid, bpm), who in items.items()]
    n = project._apply_batch("import", f"import {fmt} {src.name}", changes)
    return ImportReport(fmt, len(items), n)


def _read_long_csv(src: Path, ids: _Ids, fmt: str):
    rows, bad = _csv_rows(src)
    items, seen = {}, {}
    if not rows:
        return items, bad + [BadRow(str(src), 1, "empty file (expected a header midi,audio,label,…)")]
    header = [h.strip().lower() for h in rows[0][1]]
    missing = [h for h in ("midi", "audio", "label") if h not in header]
    unknown = [h for h in header if h not in CSV_HEADER]
    if missing or unknown:
        reason = "header must name midi, audio, label (and optionally note, who, when)"
        return items, [BadRow(str(src), rows[0][0], f"{reason}; missing {missing}, unknown {unknown}")]
    col = {h: i for i, h in enumerate(header)}
    for line, row in rows[1:]:
        if len(row) != len(header):
            bad.append(BadRow(str(src), line, f"{len(row)} cells, expected {len(header)}"))
            continue
        get = {h: row[i].strip() for h, i in col.items()}
        reasons = []
        midi, audio = ids.resolve(get["midi"], "midi", src.parent), ids.resolve(get["audio"], "audio", src.parent)
        reasons += [x for x in (midi, audio) if isinstance(x, str)]
        if get["label"] not in LABELS:
            reasons.append(f"label {get['label']!r} is not one of {', '.join(LABELS)}")
        when = get.get("when", "")
        if when and _parse_time(when) is None:
            reasons.append(f"when {when!r} is not an ISO 8601 time")
        if not reasons:
            key = (midi.id, audio.id)
            if key in seen:
                reasons.append(f"the same pair is already labelled on line {seen[key]}")
            seen[key] = line
        if reasons:
            bad.append(BadRow(str(src), line, "; ".join(reasons)))
        else:
            items[key] = (get["label"], get.get("note", ""), get.get("who", ""), when)
    return items, bad


def _read_matrix(src: Path, ids: _Ids, fmt: str):
    rows, bad = _csv_rows(src)
    items = {}
    if not rows:
        return items, bad + [BadRow(str(src), 1, "empty file (expected a header row of MIDI ids)")]
    header_line, header = rows[0]
    midis, header_bad = [], []
    for j, ident in enumerate(header[1:], start=2):
        m = ids.resolve(ident, "midi", src.parent)
        header_bad += [f"column {j}: {m}"] if isinstance(m, str) else []
        if not isinstance(m, str) and m.id in [x.id for x in midis if x is not None]:
            header_bad.append(f"column {j}: MIDI {ident!r} appears twice")
        midis.append(None if isinstance(m, str) else m)
    if header_bad:
        bad.append(BadRow(str(src), header_line, "; ".join(header_bad)))
    seen = {}
    for line, row in rows[1:]:
        if len(row) != len(header):
            bad.append(BadRow(str(src), line, f"{len(row)} cells, expected {len(header)} (the header's)"))
            continue
        audio, reasons = ids.resolve(row[0], "audio", src.parent), []
        if isinstance(audio, str):
            reasons.append(audio)
        elif audio.id in seen:
            reasons.append(f"recording {row[0].strip()!r} already has a row (line {seen[audio.id]})")
        else:
            seen[audio.id] = line
        cells = {}
        for j, (m, text) in enumerate(zip(midis, row[1:]), start=2):
            value, why = _parse_cell(text.strip(), fmt)
            if why:
                reasons.append(f"column {j}: {why}")
            elif value is not None and m is not None:
                cells[m.id] = value
        if reasons:
            bad.append(BadRow(str(src), line, "; ".join(reasons)))
        elif not header_bad:
            for m_id, value in cells.items():
                items[(m_id, audio.id)] = value if fmt == "scores" else (value, "", "", "")
    return items, bad


def _parse_cell(text: str, fmt: str):
    """(value, None) or (None, reason); an empty cell is (None, None)."""
    if not text:
        return None, None
    if fmt == "matrix":
        label = {"1": "match", "1.0": "match", "0": "no_match", "0.0": "no_match"}.get(text)
        return (label, None) if label else (None, f"{text!r} is not 1, 0 or empty")
    value = _finite(text)
    return (value, None) if value is not None else (None, f"{text!r} is not a finite number")


def _read_lmd(src: Path, ids: _Ids, fmt: str):
    text, bad, items = _read_text(src), [], {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return items, [BadRow(str(src), exc.lineno, f"not valid JSON ({exc.msg})")]
    if not isinstance(data, dict):
        return items, [BadRow(str(src), 1, "expected an object {audio_id: {midi_id: confidence}}")]
    lines = text.splitlines()
    for audio_key, scores in data.items():
        line = _line_of(lines, audio_key, 0)
        audio = ids.resolve(audio_key, "audio", src.parent)
        if isinstance(audio, str):
            bad.append(BadRow(str(src), line, audio))
        if not isinstance(scores, dict):
            bad.append(BadRow(str(src), line, f"the value of {audio_key!r} must be an object {{midi_id: confidence}}"))
            continue
        for midi_key, value in scores.items():
            mline, reasons = _line_of(lines, midi_key, line - 1 if line else 0), []
            midi = ids.resolve(midi_key, "midi", src.parent)
            reasons += [midi] if isinstance(midi, str) else []
            number = _finite(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
            if number is None:
                reasons.append(f"confidence {value!r} is not a finite number")
            if reasons:
                bad.append(BadRow(str(src), mline, "; ".join(reasons)))
            elif not isinstance(audio, str):
                items[(midi.id, audio.id)] = number
    return items, bad


def _read_jams(src: Path, ids: _Ids, fmt: str):
    import jams

    paths = sorted(src.glob("*.jams")) if src.is_dir() else [src]
    items, bad = {}, []
    if not paths:
        bad.append(BadRow(str(src), None, "no .jams files in this folder"))
    for path in paths:
        try:
            with warnings.catch_warnings():  # see _export_jams
                warnings.simplefilter("ignore", DeprecationWarning)
                jam = jams.load(str(path), validate=True)
        except Exception as exc:  # jams raises JSON, schema and parameter errors alike
            bad.append(BadRow(str(path), None, f"not a valid JAMS file ({str(exc).splitlines()[0][:200]})"))
            continue
        target = _jams_target(jam, ids, path)
        if isinstance(target, str):
            bad.append(BadRow(str(path), None, target))
            continue
        annotations = jam.search(namespace="tempo")
        if not annotations:
            bad.append(BadRow(str(path), None, "no annotation in the 'tempo' namespace"))
        for a_index, ann in enumerate(annotations):
            who = ann.annotation_metadata.annotator.name or ""
            for o_index, obs in enumerate(ann.data):
                bpm = _finite(obs.value)
                if bpm is None or not MIN_BPM <= bpm <= MAX_BPM:
                    bad.append(BadRow(str(path), None, f"tempo annotation {a_index}, observation {o_index}: "
                                                       f"{obs.value!r} bpm is outside {MIN_BPM:g}–{MAX_BPM:g}"))
                else:
                    items[(target.id, normalise_bpm(bpm))] = who
    return items, bad


def _jams_target(jam, ids: _Ids, path: Path):
    """The project file a JAMS file is about: by content hash, then its id, title or file stem."""
    identifiers = dict(jam.file_metadata.identifiers or {})
    digest = identifiers.get("content_hash")
    by_hash = [f for f in ids.files if digest and f.content_hash == digest]
    if len(by_hash) == 1:
        return by_hash[0]
    reasons = []
    for ident in (identifiers.get("earworm_file"), jam.file_metadata.title, path.stem):
        if ident:
            found = ids.resolve(str(ident), None, path.parent)
            if not isinstance(found, str):
                return found
            reasons.append(found)
    return "; ".join(reasons) or "cannot tell which file this JAMS file is about"


def _read_paces(src: Path, ids: _Ids, fmt: str):
    rows, bad = _csv_rows(src)
    items = {}
    body = rows[1:] if rows and rows[0][1] and rows[0][1][0].strip().lower() == "file" else rows
    for line, row in body:
        cells = [c.strip() for c in row]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        target, reasons = ids.resolve(cells[0], None, src.parent), []
        reasons += [target] if isinstance(target, str) else []
        if len(cells) < 2:
            reasons.append("no bpm after the file")
        bpms = []
        for j, text in enumerate(cells[1:], start=2):
            bpm = _finite(text)
            if bpm is None or not MIN_BPM <= bpm <= MAX_BPM:
                reasons.append(f"column {j}: {text!r} is not a pace in {MIN_BPM:g}–{MAX_BPM:g} bpm")
            else:
                bpms.append(normalise_bpm(bpm))
        if reasons:
            bad.append(BadRow(str(src), line, "; ".join(reasons)))
        else:
            items.update({(target.id, b): "" for b in bpms})
    return items, bad


# ---------------------------------------------------------------------------- helpers
def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise StoreError(None, f"unknown labels format {fmt!r} (use one of {', '.join(FORMATS)})")


def _read_text(src: Path) -> str:
    try:
        return src.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise StoreError(src, "not UTF-8 text") from None
    except OSError as exc:
        raise StoreError(src, f"cannot read ({exc.strerror})") from None


def _csv_rows(src: Path) -> tuple[list[tuple[int, list[str]]], list[BadRow]]:
    """Non-empty CSV rows with the line each starts on."""
    reader, rows = csv.reader(io.StringIO(_read_text(src), newline="")), []
    start = 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        return rows, [BadRow(str(src), reader.line_num, f"malformed CSV ({exc})")]
    return rows, []


def _write_csv(path: Path, rows) -> None:
    _write_atomically(path, lambda f: csv.writer(f, lineterminator="\n").writerows(rows))


def _write_text(path: Path, text: str) -> None:
    _write_atomically(path, lambda f: f.write(text))


def _write_atomically(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise StoreError(path, f"cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as exc:
        raise StoreError(path, f"cannot write ({exc.strerror})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _parse_time(text: str):
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _line_of(lines: list[str], key: str, start: int) -> int | None:
    """The 1-based line where ``"key"`` first appears at or after line index ``start`` (JSON has no rows)."""
    needle = json.dumps(key, ensure_ascii=False)
    for i in range(start, len(lines)):
        if needle in lines[i]:
            return i + 1
    return None
