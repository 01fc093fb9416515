"""Writing a MIDI file into another timeline by rewriting only its tempo map.

Task
----
Given a MIDI file and a monotone warp ``w`` from its time to a recording's time (piecewise linear,
a few knots), write a MIDI whose events keep their original ticks — so bars, beats and notation
stay musical — with tempo events chosen so that every tick plays at ``w(original time)``.

Why not move the events: pretty_midi's ``adjust_times`` followed by ``write`` produces one tempo
change per warped event (tens of thousands) and then fails to save (pretty-midi #223/#224).

Conventions: between two consecutive breakpoints (original tempo changes ∪ warp knots) the
composition "tick → original seconds → warped seconds" is linear, so one tempo event per breakpoint
reproduces it exactly, up to rounding the knots to whole ticks. Times the warp puts before zero
(a recording that starts later in the piece) are squeezed to zero with the fastest legal tempo.
"""
from __future__ import annotations

import bisect

import mido
import numpy as np

from engine.errors import MidiError

MIN_TEMPO_US, MAX_TEMPO_US = 1, 0xFFFFFF  # MIDI's 24-bit microseconds per quarter note


def _tempo_segments(mid: mido.MidiFile):
    """Original tempo map as (tick, seconds at tick, microseconds per beat) breakpoints."""
    changes = {0: 500000}
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                changes[tick] = msg.tempo
    ticks = sorted(changes)
    seconds, t = [0.0], 0.0
    for a, b in zip(ticks[:-1], ticks[1:]):
        t += (b - a) * changes[a] / (1e6 * mid.ticks_per_beat)
        seconds.append(t)
    return ticks, seconds, [changes[k] for k in ticks]


def write_with_warp(src_path, dst_path, knots, warp) -> int:
    """Write ``src_path`` to ``dst_path`` in the warped timeline; return the number of tempo events.

    Parameters
    ----------
    src_path, dst_path : str or Path
    knots : (np.ndarray, np.ndarray)
        Warp knots (original seconds, warped seconds), from ``Alignment.tempo_map_knots``.
    warp : callable
        The warp itself (original seconds → warped seconds), for the breakpoints.
    """
    try:
        mid = mido.MidiFile(str(src_path))
    except Exception as exc:
        raise MidiError(src_path, f"cannot parse MIDI data ({exc})") from None
    if mid.type == 2:
        raise MidiError(src_path, "type-2 MIDI files (independent sequences) cannot be warped")
    ppq = mid.ticks_per_beat
    ticks, seconds, tempos = _tempo_segments(mid)

    def tick_to_s(tick):
        k = bisect.bisect_right(ticks, tick) - 1
        return seconds[k] + (tick - ticks[k]) * tempos[k] / (1e6 * ppq)

    def s_to_tick(s):
        k = bisect.bisect_right(seconds, s) - 1
        k = max(k, 0)
        return ticks[k] + (s - seconds[k]) * 1e6 * ppq / tempos[k]

    end_tick = max(sum(m.time for m in tr) for tr in mid.tracks)
    knot_ticks = {int(round(s_to_tick(x))) for x in knots[0] if x > 0}
    breaks = sorted({0, end_tick} | set(ticks) | {k for k in knot_ticks if 0 < k < end_tick})
    new_s = np.maximum(np.asarray(warp(np.array([tick_to_s(k) for k in breaks], dtype=float))), 0.0)
    new_s = np.maximum.accumulate(new_s)

    tempo_events = []  # (absolute tick, tempo)
    for k in range(len(breaks) - 1):
        dt = breaks[k + 1] - breaks[k]
        if dt <= 0:
            continue
        us = (new_s[k + 1] - new_s[k]) * 1e6 * ppq / dt
        tempo_events.append((breaks[k], int(np.clip(round(us), MIN_TEMPO_US, MAX_TEMPO_US))))
    # Drop consecutive duplicates.
    cleaned = [tempo_events[0]] if tempo_events else [(0, 500000)]
    for ev in tempo_events[1:]:
        if ev[1] != cleaned[-1][1]:
            cleaned.append(ev)

    out = mido.MidiFile(type=max(mid.type, 1), ticks_per_beat=ppq)
    for index, track in enumerate(mid.tracks):
        absolute, tick = [], 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo" or msg.type == "end_of_track":
                continue
            absolute.append((tick, msg))
        if index == 0:
            absolute += [(t, mido.MetaMessage("set_tempo", tempo=tempo)) for t, tempo in cleaned]
            absolute.sort(key=lambda e: e[0])  # stable: tempo events after same-tick events of the original
        new_track = mido.MidiTrack()
        last = 0
        for t, msg in absolute:
            new_track.append(msg.copy(time=t - last))
            last = t
        new_track.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - last)))
        out.tracks.append(new_track)
    if new_s[0] > 0:
        _prepend_silence(out, new_s[0], ppq)
    out.save(str(dst_path))
    return len(cleaned)


def _prepend_silence(mid: mido.MidiFile, seconds: float, ppq: int):
    """Shift everything by a lead-in of ``seconds`` at 120 bpm (the MIDI starts after the audio)."""
    lead_ticks = int(round(seconds * 1e6 * ppq / 500000))
    if lead_ticks <= 0:
        return
    for index, track in enumerate(mid.tracks):
        if track:
            track[0] = track[0].copy(time=track[0].time + lead_ticks)
        if index == 0:
            track.insert(0, mido.MetaMessage("set_tempo", tempo=500000, time=0))
