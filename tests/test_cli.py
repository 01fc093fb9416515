"""The `earworm` command line: exit codes, outputs, error lines."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from engine import media
from tests.midi_fixtures import TIMGM, render_warped, write_rich_midi


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env)


def test_align_writes_midi_and_json(tmp_path):
    midi_path = write_rich_midi(tmp_path / "a.mid", seed=5)
    audio = render_warped(media.load_midi(midi_path), lambda t: 1.05 * np.asarray(t) + 0.2, tmp_path / "a.flac")
    proc = run("align", str(midi_path), str(audio), "--out", str(tmp_path / "out.mid"), "--json", str(tmp_path / "r.json"),
               "--soundfont", TIMGM)
    assert proc.returncode == 0, proc.stderr
    assert "confidence" in proc.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert 0 <= result["confidence"] <= 1 and len(result["path"]) > 100
    assert {"midi_duration_s", "audio_duration_s", "params", "timings"} <= result.keys()
    assert media.load_midi(tmp_path / "out.mid").get_end_time() > 0


def test_bad_input_is_one_error_line_and_exit_1(tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd garbage")
    audio = tmp_path / "x.wav"
    audio.write_bytes(b"")
    proc = run("align", str(bad), str(audio))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "broken.mid" in lines[0]
    assert "Traceback" not in proc.stderr


def test_bad_usage_exits_2():
    assert run("align").returncode == 2
    assert run("no-such-command").returncode == 2


def test_a_zero_stage_size_is_a_usage_error_not_the_default(tmp_path):
    proc = run("match", "--midi", str(tmp_path), "--audio", str(tmp_path), "--k-prune", "0")
    assert proc.returncode == 2
    assert "--k-prune" in proc.stderr and "must be at least 1" in proc.stderr
    assert run("match", "--midi", str(tmp_path), "--audio", str(tmp_path), "--k-confirm", "-1").returncode == 2
