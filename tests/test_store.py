"""The project store: schema and migrations, labels and history, safety across processes and crashes."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.store_fixtures import make_library, snapshot, write_midi, write_wav

from engine.errors import StoreError
from engine.store import ALIGNMENT_CONFIDENCE, MATCH_SCORE, Project, default_project_path
from engine.store_schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION


@pytest.fixture
def lib(tmp_path):
    return make_library(tmp_path / "lib")


@pytest.fixture
def project(tmp_path, lib):
    p = Project(tmp_path / "p.earworm", who="alice")
    p.add_folder(lib)
    yield p
    p.close()


def ids(project):
    return [f.id for f in project.files("midi")], [f.id for f in project.files("audio")]


# ---------------------------------------------------------------------------- schema
def test_new_project_is_wal_with_foreign_keys_and_current_schema(tmp_path):
    path = tmp_path / "sub" / "new.earworm"
    with Project(path) as p:
        assert p.schema_version == SCHEMA_VERSION
        assert p._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    raw.close()


def test_migration_upgrades_a_version_1_project_keeping_its_labels(tmp_path, lib):
    path = tmp_path / "old.earworm"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.executescript(MIGRATIONS[0])
    raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    raw.execute("PRAGMA user_version = 1")
    midi, audio = lib / "midi" / "song0.mid", lib / "audio" / "take0.wav"
    for i, (path_, kind) in enumerate([(midi, "midi"), (audio, "audio")], start=1):
        raw.execute("INSERT INTO files (id, path, kind, content_hash, size_bytes, mtime_ns, duration_s, added_at) "
                    "VALUES (?, ?, ?, 'h', 1, 1, 1.0, 'then')", (i, str(path_), kind))
    raw.execute("INSERT INTO match_labels VALUES (1, 2, 'match', 'old note', 'bob', '2020-01-01T00:00:00')")
    raw.execute("""INSERT INTO history (action, summary, changes, who, at, state) VALUES ('match', 'old', '[{"t": "match",
                "k": [1, 2], "b": null, "a": {"label": "match", "note": "old note", "who": "bob",
                "at": "2020-01-01T00:00:00"}}]', 'bob', '2020-01-01T00:00:00', 'done')""")
    raw.close()

    with Project(path, who="alice") as p:
        assert p.schema_version == SCHEMA_VERSION == 2
        assert p.match_label(1, 2).note == "old note"
        assert [f.missing for f in p.files()] == [False, False]  # column added by step 2
        p.put_result(ALIGNMENT_CONFIDENCE, 1, other_id=2, value=0.5)  # table added by step 2
        assert p.candidates(1)[0].confidence == 0.5
        assert p.undo().summary == "old"  # the version-1 history still drives undo
        assert p.match_label(1, 2) is None
    with Project(path) as p:  # opening again does not migrate twice
        assert p.schema_version == SCHEMA_VERSION and p.can_redo()


def test_refuses_newer_schema_and_foreign_files(tmp_path):
    newer = tmp_path / "newer.earworm"
    with Project(newer):
        pass
    raw = sqlite3.connect(newer)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer Earworm"):
        Project(newer)

    text = tmp_path / "notes.earworm"
    text.write_text("this is not a database, just some notes " * 50)
    with pytest.raises(StoreError, match="not a database"):
        Project(text)
    assert text.read_text().startswith("this is not")  # and it was not touched

    other = tmp_path / "other.sqlite"
    raw = sqlite3.connect(other)
    raw.execute("CREATE TABLE invoices (id INTEGER)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="not an Earworm project"):
        Project(other)
    with pytest.raises(StoreError, match="no such project"):
        Project(tmp_path / "absent.earworm", create=False)


def test_default_project_path(monkeypatch, tmp_path):
    monkeypatch.setenv("EARWORM_DATA_DIR", str(tmp_path))
    assert default_project_path() == tmp_path / "default.earworm"
    monkeypatch.delenv("EARWORM_DATA_DIR")
    from platformdirs import user_data_dir

    assert default_project_path().parent == Path(user_data_dir("earworm"))


# ---------------------------------------------------------------------------- library
def test_add_folder_records_files_lists_unreadable_and_never_touches_media(tmp_path, lib):
    (lib / "broken.mid").write_bytes(b"MThd garbage that is not a midi file")
    (lib / "audio" / "empty.wav").write_bytes(b"")
    (lib / "audio" / "noise.ogg").write_bytes(os.urandom(2000))
    (lib / "readme.txt").write_text("not media, skipped")
    before = snapshot(lib)
    fractions = []
    with Project(tmp_path / "p.earworm") as p:
        report = p.add_folder(lib, progress=lambda f, msg: fractions.append(f))
        assert len(report.added) == 7 and not report.cancelled
        bad = dict(report.unreadable)
        assert set(bad) == {str(lib / "broken.mid"), str(lib / "audio" / "empty.wav"), str(lib / "audio" / "noise.ogg")}
        assert "empty" in bad[str(lib / "audio" / "empty.wav")]
        assert "MIDI" in bad[str(lib / "broken.mid")] or "parse" in bad[str(lib / "broken.mid")]
        assert p.unreadable() == sorted(report.unreadable)
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        take1 = p.file_by_path(lib / "audio" / "more" / "take1.wav")
        assert take1.kind == "audio" and take1.duration_s == pytest.approx(0.4)
        assert take1.metadata["samplerate"] == 8000
        song = p.file_by_path(lib / "midi" / "song0.mid")
        assert song.metadata["n_notes"] == 6 and song.duration_s == pytest.approx(1.18, abs=0.01)
        from engine.cache import file_hash

        assert song.content_hash == file_hash(song.path)
        # a rescan reads nothing again; a changed file is refreshed, keeping its labels
        m, a = song.id, p.file_by_path(lib / "audio" / "take0.wav").id
        p.set_match(m, a, "match")
        write_wav(lib / "audio" / "take0.wav", seed=9, seconds=0.8)
        (lib / "broken.mid").unlink()
        write_midi(lib / "broken.mid", seed=5)
        again = p.add_folder(lib)
        assert again.unchanged == 6 and set(again.updated) == {str(lib / "audio" / "take0.wav")}
        assert again.added == [str(lib / "broken.mid")]
        assert str(lib / "broken.mid") not in dict(p.unreadable())
        assert p.file(a).duration_s == pytest.approx(0.8) and p.match_label(m, a).label == "match"
    after = snapshot(lib)
    for path in before:  # every file we did not rewrite ourselves is byte-for-byte and mtime identical
        if path not in (str(lib / "audio" / "take0.wav"), str(lib / "broken.mid")):
            assert after[path] == before[path]


def test_add_folder_cancel_keeps_what_was_done(tmp_path, lib):
    calls = []
    with Project(tmp_path / "p.earworm") as p:
        report = p.add_folder(lib, progress=lambda f, msg: calls.append(msg), cancel=lambda: len(calls) > 3)
        assert report.cancelled and 0 < p.count_files() == len(report.added) < 7
        rest = p.add_folder(lib)
        assert rest.unchanged == len(report.added) and p.count_files() == 7
    with pytest.raises(StoreError, match="not a folder"):
        Project(tmp_path / "q.earworm").add_folder(tmp_path / "nowhere")


def test_relink_finds_moved_files_by_content_hash(tmp_path, lib, project):
    m, _ = ids(project)
    take0 = project.file_by_path(lib / "audio" / "take0.wav")
    take2 = project.file_by_path(lib / "audio" / "take2.wav")
    take3 = project.file_by_path(lib / "audio" / "more" / "take3.wav")
    project.set_match(m[0], take0.id, "match", "the one")
    project.add_pace(take2.id, 90)
    moved = tmp_path / "moved"
    shutil.move(str(lib / "audio"), str(moved / "audio"))  # takes 0..3 move away
    (moved / "audio" / "more" / "take3.wav").unlink()  # and one is lost for good
    write_wav(moved / "decoy" / "take0.wav", seed=7)  # same name and size, different content
    assert os.path.getsize(moved / "decoy" / "take0.wav") == take0.size_bytes
    before = snapshot(moved)
    version = project.library_version()
    project.set_match(m[1], take2.id, "unsure")
    assert project.library_version() == version  # labels are not library changes

    report = project.relink([moved])
    assert project.library_version() != version
    assert len(report.relinked) == 3 and report.still_missing == [take3.path]
    assert project.file(take0.id).path == str(moved / "audio" / "take0.wav")  # not the decoy
    assert not project.file(take0.id).missing and project.file(take3.id).missing
    assert project.match_label(m[0], take0.id).note == "the one" and project.paces(take2.id) == [90.0]
    assert snapshot(moved) == before
    with Project(project.path) as again:  # the new paths are committed
        assert again.file(take2.id).path == str(moved / "audio" / "take2.wav")


# ---------------------------------------------------------------------------- labels and history
def test_labels_are_committed_at_once_and_seen_by_another_connection(project):
    m, a = ids(project)
    other = Project(project.path, who="bob")
    version = other.data_version()
    label = project.set_match(m[0], a[1], "unsure", "a cover?")
    assert (label.who, label.label) == ("alice", "unsure")
    assert other.match_label(m[0], a[1]) == label
    assert other.data_version() != version
    other.close()
    project.clear_match(m[0], a[1])
    assert project.match_label(m[0], a[1]) is None and project.history(1)[0].summary.startswith("cleared")
    assert project.undo() and project.match_label(m[0], a[1]) == label
    with pytest.raises(StoreError, match="unknown match label"):
        project.set_match(m[0], a[1], "maybe")
    with pytest.raises(StoreError, match="not a MIDI file"):
        project.set_match(a[0], a[1], "match")
    with pytest.raises(StoreError, match="not a recording"):
        project.set_match(m[0], m[1], "match")


def test_paces_are_a_validated_set(project):
    _, a = ids(project)
    assert project.add_pace(a[0], 86.004) == 86.0
    project.add_pace(a[0], 172)
    project.add_pace(a[0], 86)  # already there: no new history entry
    assert project.paces(a[0]) == [86.0, 172.0]
    assert len([h for h in project.history() if h.action == "pace"]) == 2
    for bad in (39.9, 320.5, "fast", float("nan")):
        with pytest.raises(StoreError, match="pace"):
            project.add_pace(a[0], bad)
    project.remove_pace(a[0], 86)
    project.set_paces(a[1], [60, 120, 240])
    assert project.paces(a[0]) == [172.0] and project.paces(a[1]) == [60.0, 120.0, 240.0]
    project.undo()
    assert project.paces(a[1]) == []


def test_undo_and_redo_survive_a_restart(tmp_path, project):
    m, a = ids(project)
    project.set_match(m[0], a[0], "match")
    project.set_match(m[0], a[0], "no_match", "wrong take")
    project.add_pace(a[0], 120)
    path = project.path
    project.close()

    with Project(path, who="carol") as p:
        assert p.undo().action == "pace" and p.paces(a[0]) == []
        assert p.undo().summary.startswith("no_match") and p.match_label(m[0], a[0]).label == "match"
        assert p.match_label(m[0], a[0]).who == "alice"  # the earlier label comes back exactly
    with Project(path, who="dave") as p:
        assert p.redo().summary.startswith("no_match")
        assert p.match_label(m[0], a[0]).note == "wrong take"
        log = p.history()
        assert [(h.action, h.who) for h in log[:3]] == [("redo", "dave"), ("undo", "carol"), ("undo", "carol")]
        assert all(h.at.endswith("+00:00") for h in log)
        p.set_match(m[1], a[1], "unsure")  # a new action ends the redo branch
        assert not p.can_redo() and p.redo() is None
        assert [h.state for h in p.history() if h.action == "pace"] == ["dropped"]
        while p.undo():
            pass
        assert p.match_labels() == [] and p.paces(a[0]) == []


def test_candidates_are_ranked_and_next_unlabelled_skips_labelled(project):
    m, a = ids(project)
    project.put_results(ALIGNMENT_CONFIDENCE, [(m[0], a[2], 0.9, None), (m[0], a[0], 0.4, None)])
    project.put_result(MATCH_SCORE, m[0], other_id=a[3], value=3.0)
    ranked = [c.audio.id for c in project.candidates(m[0])]
    assert ranked == [a[2], a[0], a[3], a[1]]
    assert project.next_unlabelled(m[0]).audio.id == a[2]
    project.set_match(m[0], a[2], "match")
    project.set_match(m[0], a[3], "no_match")
    assert project.next_unlabelled(m[0]).audio.id == a[0]
    project.put_result(ALIGNMENT_CONFIDENCE, m[0], other_id=a[0], value=0.1)  # replaces, not duplicates
    assert len(project.results(ALIGNMENT_CONFIDENCE, m[0])) == 2
    assert project.result(ALIGNMENT_CONFIDENCE, m[0], a[0]).value == 0.1
    project.set_match(m[0], a[0], "unsure")
    project.set_match(m[0], a[1], "unsure")
    assert project.next_unlabelled(m[0]) is None
    rows = {r.file.id: r for r in project.library_rows()}
    assert (rows[m[0]].n_match, rows[m[0]].n_no_match, rows[m[0]].n_unsure) == (1, 1, 2)
    assert rows[m[0]].best_confidence == 0.9 and rows[a[3]].best_match_score == 3.0
    assert [r.file.name for r in project.library_rows(search="take_")] == []  # '_' is literal
    assert {r.file.name for r in project.library_rows(kind="audio", search="more")} == {"take1.wav", "take3.wav"}


# ---------------------------------------------------------------------------- several processes, locks, crashes
def test_a_locked_project_gives_a_clear_error_then_works(project):
    m, a = ids(project)
    blocker = sqlite3.connect(project.path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another process writing
    impatient = Project(project.path, busy_timeout_s=0.2)
    with pytest.raises(StoreError, match="locked by another process") as err:
        impatient.set_match(m[0], a[0], "match")
    assert str(project.path) in str(err.value)
    assert impatient.match_labels() == []  # reading still works in WAL mode
    threading.Timer(0.3, lambda: blocker.execute("COMMIT")).start()
    project.set_match(m[0], a[0], "match")  # waits (5 s budget) and succeeds
    assert impatient.match_label(m[0], a[0]).label == "match"
    impatient.close()
    blocker.close()


_LABELLER = r"""
import sys
from engine.store import Project
path, who, label, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
p = Project(path, who=who, busy_timeout_s=30)
midis = [f.id for f in p.files("midi")]
audios = [f.id for f in p.files("audio")]
pairs = [(m, a) for m in midis for a in audios]
for i in range(n):
    m, a = pairs[i % len(pairs)]
    p.set_match(m, a, label, note=f"{who} {i}")
    print(f"ack {m} {a} {label} {who} {i}", flush=True)  # the screen says "saved" only now
"""


def test_two_processes_labelling_at_once_do_not_corrupt_the_project(project):
    procs = [subprocess.Popen([sys.executable, "-c", _LABELLER, str(project.path), who, label, "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for who, label in (("p1", "match"), ("p2", "no_match"))]
    outs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [o[1] for o in outs]
    assert all(len(o[0].splitlines()) == 60 for o in outs)
    assert project.integrity_check() == []
    done = [h for h in project.history(limit=1000) if h.state == "done"]
    assert len(done) == 120 and {h.who for h in done} == {"p1", "p2"}
    for label in project.match_labels():  # each pair holds the last writer's label
        last = next(h for h in done if h.summary.endswith(f"{project.file(label.midi_id).name} ↔ "
                                                          f"{project.file(label.audio_id).name}"))
        assert label.who == last.who
    while project.undo():  # the interleaved history still undoes cleanly to nothing
        pass
    assert project.match_labels() == []


def test_kill_9_mid_stream_loses_no_acknowledged_label(project):
    proc = subprocess.Popen([sys.executable, "-c", _LABELLER, str(project.path), "crash", "unsure", "100000"],
                            stdout=subprocess.PIPE, text=True)
    acked = []
    deadline = time.monotonic() + 60
    while len(acked) < 40 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("ack"):
            acked.append(line.split())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL and len(acked) >= 40
    with Project(project.path) as p:
        assert p.integrity_check() == []
        labels = {(lab.midi_id, lab.audio_id): lab for lab in p.match_labels()}
        for _, m, a, label, who, i in acked:
            pair = labels[(int(m), int(a))]
            assert pair.label == label and pair.who == who
            # the pair's note is this acknowledgement's or a later one's (pairs repeat every 12)
            assert int(pair.note.split()[1]) >= int(i)
