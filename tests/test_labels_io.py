"""Import and export of labels and scores: round trips for every format, all-or-nothing validation."""
from __future__ import annotations

import json
import sqlite3

import pytest

from engine.cli import main
from engine.errors import StoreError
from engine.labels_io import FORMATS, LabelsImportError, export_labels, import_labels
from engine.store import ALIGNMENT_CONFIDENCE, MATCH_SCORE, Project
from tests.store_fixtures import make_library, write_wav


@pytest.fixture
def lib(tmp_path):
    return make_library(tmp_path / "lib", n_midi=3, n_audio=4)


def _open(path, lib, order=("midi", "audio"), who="alice"):
    p = Project(path, who=who)
    for sub in order:  # a different order gives the same files different ids
        p.add_folder(lib / sub)
    return p


@pytest.fixture
def source(tmp_path, lib):
    p = _open(tmp_path / "a.earworm", lib)
    m = {f.name: f.id for f in p.files("midi")}
    a = {f.name: f.id for f in p.files("audio")}
    p.set_match(m["song0.mid"], a["take0.wav"], "match", "same arrangement, live")
    p.set_match(m["song0.mid"], a["take1.wav"], "no_match")
    p.set_match(m["song1.mid"], a["take2.wav"], "unsure", 'a "cover", maybe; check bridge')
    p.set_match(m["song2.mid"], a["take3.wav"], "match")
    p.set_paces(a["take0.wav"], [86, 172])
    p.add_pace(m["song1.mid"], 120.5)
    p.put_results(MATCH_SCORE, [(m["song0.mid"], a["take0.wav"], 0.1 + 0.2, None),
                                (m["song1.mid"], a["take3.wav"], -1.25e-7, None)])
    p.put_result(ALIGNMENT_CONFIDENCE, m["song2.mid"], other_id=a["take3.wav"], value=0.8125)
    yield p
    p.close()


@pytest.fixture
def target(tmp_path, lib):
    p = _open(tmp_path / "b.earworm", lib, order=("audio", "midi"), who="bob")
    yield p
    p.close()


def _labels(p):
    return {(p.file(x.midi_id).name, p.file(x.audio_id).name): (x.label, x.note, x.who, x.at) for x in p.match_labels()}


def _paces(p):
    return {p.file(x.file_id).name: p.paces(x.file_id) for x in p.pace_labels()}


def _scores(p, kind=MATCH_SCORE):
    return {(p.file(r.file_id).name, p.file(r.other_id).name): r.value for r in p.results(kind)}


def test_long_csv_round_trip_keeps_everything(tmp_path, source, target):
    out = tmp_path / "labels.csv"
    assert export_labels(source, "csv", out) == 4
    assert out.read_text().splitlines()[0] == "midi,audio,label,note,who,when"
    report = import_labels(target, "csv", out)
    assert (report.n_rows, report.n_changed) == (4, 4)
    assert _labels(target) == _labels(source)  # who and when too
    assert import_labels(target, "csv", out).n_changed == 0  # importing again changes nothing
    assert target.undo().summary == "import csv labels.csv (4 changes)"  # one undoable action
    assert target.match_labels() == []


def test_matrix_round_trip_keeps_match_and_no_match(tmp_path, source, target):
    out = tmp_path / "matrix.csv"
    assert export_labels(source, "matrix", out) == 4
    lines = out.read_text().splitlines()
    assert lines[0] == "audio,song0.mid,song1.mid,song2.mid" and len(lines) == 5
    assert "take0.wav,1,," in lines and "take2.wav,,," in lines  # unsure does not fit a 1/0 matrix
    import_labels(target, "matrix", out)
    wanted = {k: v[0] for k, v in _labels(source).items() if v[0] != "unsure"}
    assert {k: v[0] for k, v in _labels(target).items()} == wanted
    assert all(v[2] == "bob" for v in _labels(target).values())


@pytest.mark.parametrize("fmt", ["scores", "lmd"])
def test_score_round_trips_are_exact(tmp_path, source, target, fmt):
    out = tmp_path / ("scores.csv" if fmt == "scores" else "match_scores.json")
    export_labels(source, fmt, out)
    import_labels(target, fmt, out)
    assert _scores(target) == _scores(source) == {("song0.mid", "take0.wav"): 0.1 + 0.2,
                                                  ("song1.mid", "take3.wav"): -1.25e-7}
    export_labels(source, fmt, out, result_kind=ALIGNMENT_CONFIDENCE)
    import_labels(target, fmt, out, result_kind=ALIGNMENT_CONFIDENCE)
    assert _scores(target, ALIGNMENT_CONFIDENCE) == {("song2.mid", "take3.wav"): 0.8125}
    if fmt == "lmd":  # Lakh style: ids without extension, {audio: {midi: confidence}}
        assert json.loads(out.read_text()) == {"take3": {"song2": 0.8125}}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jams uses a deprecated jsonschema API
@pytest.mark.parametrize("fmt", ["jams", "paces"])
def test_pace_round_trips(tmp_path, source, target, fmt):
    out = tmp_path / ("jams" if fmt == "jams" else "paces.csv")
    assert export_labels(source, fmt, out) == 2
    if fmt == "jams":
        import jams

        jam = jams.load(str(out / "take0.jams"))
        (ann,) = jam.search(namespace="tempo")
        assert [(o.value, o.confidence) for o in ann.data] == [(86.0, 1.0), (172.0, 1.0)]
        assert ann.annotation_metadata.annotator.name == "alice"
        assert jam.file_metadata.duration == pytest.approx(0.4)
    else:
        assert out.read_text().splitlines() == ["file,bpm", "song1.mid,120.5", "take0.wav,86,172"]
    import_labels(target, fmt, out)
    assert _paces(target) == _paces(source) == {"take0.wav": [86.0, 172.0], "song1.mid": [120.5]}
    if fmt == "jams":
        assert {x.who for x in target.pace_labels()} == {"alice"}


def test_files_with_the_same_name_are_exported_by_path(tmp_path, lib, source):
    write_wav(lib / "audio" / "more" / "deeper" / "take0.wav", seed=11)
    source.add_folder(lib / "audio")
    twin = source.file_by_path(lib / "audio" / "more" / "deeper" / "take0.wav")
    source.set_match(source.files("midi")[0].id, twin.id, "no_match")
    out = tmp_path / "labels.csv"
    export_labels(source, "csv", out)
    assert str(lib / "audio" / "take0.wav") in out.read_text() and ",take0.wav," not in out.read_text()
    with _open(tmp_path / "c.earworm", lib) as c:
        import_labels(c, "csv", out)
        assert _labels(c) == _labels(source)
        (tmp_path / "short.csv").write_text("midi,audio,label\nsong0.mid,take0.wav,match\n")
        with pytest.raises(LabelsImportError, match="ambiguous"):
            import_labels(c, "csv", tmp_path / "short.csv")


# ---------------------------------------------------------------------------- validation: all bad rows, no partial write
BAD_INPUTS = {
    "csv": ("labels.csv", "midi,audio,label,note\n"
                          "song0.mid,take0.wav,match,ok\n"            # 2 good
                          "song0.mid,take9.wav,match,\n"              # 3 unknown recording
                          "song1.mid,take1.wav,perhaps,\n"            # 4 bad label
                          "\"song2.mid\",take2.wav,match\n"           # 5 too few cells
                          "song0.mid,take0.wav,no_match,\n"           # 6 duplicate of line 2
                          "take1.wav,song1.mid,match,\n",             # 7 swapped kinds
            [3, 4, 5, 6, 7]),
    "matrix": ("matrix.csv", "audio,song0.mid,song1.mid\n"
                             "take0.wav,1,0\n"                        # 2 good
                             "take1.wav,1,yes\n"                      # 3 bad cell
                             "take2.wav,1\n"                          # 4 short row
                             "take0.wav,0,0\n",                       # 5 duplicate row
               [3, 4, 5]),
    "scores": ("scores.csv", "audio,song0.mid,nope.mid\n"             # 1 unknown column
                             "take0.wav,0.5,0.25\n"
                             "take1.wav,nan,1e999\n",                 # 3 not finite
               [1, 3]),
    "lmd": ("match_scores.json", '{\n "take0": {\n  "song0": 0.5,\n  "song9": 0.1\n },\n'
                                 ' "take1": {\n  "song1": "high"\n },\n "take7": {"song0": 0.2}\n}\n',
            [4, 7, 9]),
    "paces": ("paces.csv", "file,bpm\ntake0.wav,86,172\ntake1.wav,30\nghost.wav,100\nsong0.mid\n"
                           "take2.wav,90,fast\n",
              [3, 4, 5, 6]),
}


@pytest.mark.parametrize("fmt", sorted(BAD_INPUTS))
def test_import_reports_every_bad_row_and_writes_nothing(tmp_path, source, fmt):
    name, text, bad_lines = BAD_INPUTS[fmt]
    src = tmp_path / name
    src.write_text(text)
    before = (_labels(source), _paces(source), _scores(source), len(source.history()))
    with pytest.raises(LabelsImportError) as err:
        import_labels(source, fmt, src)
    assert [b.line for b in err.value.bad_rows] == bad_lines
    assert all(b.reason for b in err.value.bad_rows) and str(src) in str(err.value)
    assert (_labels(source), _paces(source), _scores(source), len(source.history())) == before


def test_jams_import_reports_every_bad_file(tmp_path, source, target):
    folder = tmp_path / "jams"
    export_labels(source, "jams", folder)
    (folder / "broken.jams").write_text("{ not json")
    doc = json.loads((folder / "take0.jams").read_text())
    doc["annotations"][0]["data"][1]["value"] = 400.0
    doc["file_metadata"]["identifiers"] = {}
    (folder / "take0.jams").write_text(json.dumps(doc))
    doc["file_metadata"]["title"] = "unknown.wav"
    (folder / "unknown.jams").write_text(json.dumps(doc))
    with pytest.raises(LabelsImportError) as err:
        import_labels(target, "jams", folder)
    reasons = {b.source.rsplit("/", 1)[1]: b.reason for b in err.value.bad_rows}
    assert set(reasons) == {"broken.jams", "take0.jams", "unknown.jams"}
    assert "not a valid JAMS" in reasons["broken.jams"] and "400" in reasons["take0.jams"]
    assert "not a file of this project" in reasons["unknown.jams"]
    assert target.pace_labels() == []


def test_cli_export_import_and_bad_rows(tmp_path, source, target, capsys):
    out = tmp_path / "labels.csv"
    source.close()
    assert main(["labels", "export", "--project", str(source.path), "--format", "csv", str(out)]) == 0
    assert main(["labels", "import", "--project", str(target.path), "--format", "csv", str(out)]) == 0
    assert len(target.match_labels()) == 4
    bad = tmp_path / "bad.csv"
    bad.write_text("midi,audio,label\nsong0.mid,take0.wav,yes\nsong9.mid,take0.wav,match\n")
    capsys.readouterr()
    assert main(["labels", "import", "--project", str(target.path), "--format", "csv", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"bad row: {bad}:2: label 'yes'") and err[1].startswith(f"bad row: {bad}:3: 'song9.mid'")
    assert err[-1].startswith(f"error: {bad}: 2 bad row(s), nothing imported")
    assert main(["labels", "export", "--project", str(tmp_path / "none.earworm"), "--format", "csv", str(out)]) == 1
    assert "no such project file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["labels", "export", "--format", "xml", str(out)])
    assert exit_.value.code == 2


def test_every_format_is_covered():
    assert set(FORMATS) == {"csv", "matrix", "scores", "lmd", "jams", "paces"}
    assert set(BAD_INPUTS) | {"jams"} == set(FORMATS)


def test_import_into_a_locked_project_fails_cleanly(tmp_path, source, target):
    out = tmp_path / "labels.csv"
    export_labels(source, "csv", out)
    blocker = sqlite3.connect(target.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with Project(target.path, busy_timeout_s=0.1) as impatient:
        with pytest.raises(StoreError, match="locked by another process"):
            import_labels(impatient, "csv", out)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert target.match_labels() == []
