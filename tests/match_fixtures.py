"""A tiny library for matching tests: MIDIs, renderings of some of them, a stray recording, bad files."""
from __future__ import annotations

import numpy as np

from tests.midi_fixtures import render_warped, write_rich_midi

N_SONGS, N_RECORDED = 6, 4  # song0..song3 have a recording; song4 and song5 have none


def expected_pairs() -> dict:
    """song k is recorded as take_{3-k} (so names do not give the answer away)."""
    return {f"song{k}.mid": f"take_{N_RECORDED - 1 - k}.flac" for k in range(N_RECORDED)}


def make_match_library(root):
    """``root/midi``: 6 MIDIs + a broken one; ``root/audio``: 4 renderings (each with its own tempo
    warp, another soundfont and programs), one rendering of a MIDI not in the folder, an empty file.

    Returns ``root``.
    """
    from engine import media

    (root / "midi").mkdir(parents=True)
    (root / "audio").mkdir()
    for k in range(N_SONGS):
        path = write_rich_midi(root / "midi" / f"song{k}.mid", seed=k, bars=7)
        if k < N_RECORDED:
            render_warped(media.load_midi(path), lambda t, k=k: (1.0 + 0.05 * k) * np.asarray(t) + 0.3,
                          root / "audio" / f"take_{N_RECORDED - 1 - k}.flac", seed=k)
    stray = write_rich_midi(root / "stray.mid", seed=77, bars=7)
    render_warped(media.load_midi(stray), lambda t: 0.95 * np.asarray(t), root / "audio" / "take_x.flac", seed=9)
    (root / "midi" / "broken.mid").write_bytes(b"MThd this is not a MIDI file")
    (root / "audio" / "empty.wav").write_bytes(b"")
    return root
