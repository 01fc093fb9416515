"""Small MIDI and audio fixtures generated on the fly (no files in git, no network)."""
from __future__ import annotations

import mido
import numpy as np

TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
MUSESCORE_LITE = "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"


def write_rich_midi(path, seed=0, bars=8, ppq=480):
    """A type-1 MIDI with tempo and time-signature changes, piano + bass + drums, CCs and bends.

    Bars 1-3 at 100 bpm in 4/4, bars 4-5 at 76 bpm in 3/4, the rest at 132 bpm in 4/4.
    """
    rng = np.random.default_rng(seed)
    mid = mido.MidiFile(type=1, ticks_per_beat=ppq)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100), time=0))
    conductor.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(76), time=3 * 4 * ppq))
    conductor.append(mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0))
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(132), time=2 * 3 * ppq))
    conductor.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    mid.tracks.append(conductor)
    beats = 3 * 4 + 2 * 3 + (bars - 5) * 4
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    tracks = {
        "piano": (0, 0, [(b * ppq + s * ppq // 2, int(rng.choice(scale)) + 12 * int(rng.integers(-1, 2)), ppq // 2)
                         for b in range(beats) for s in range(2)]),
        "bass": (1, 33, [(b * ppq, 36 + int(rng.choice([0, 5, 7, 9])), ppq) for b in range(beats)]),
        "drums": (9, 0, [(b * ppq, 36 if b % 2 == 0 else 38, ppq // 4) for b in range(beats)]),
    }
    for name, (channel, program, notes) in tracks.items():
        events = [(0, mido.Message("program_change", channel=channel, program=program))]
        if name == "piano":
            events += [(0, mido.Message("control_change", channel=channel, control=7, value=110)),
                       (2 * ppq, mido.Message("pitchwheel", channel=channel, pitch=1000)),
                       (3 * ppq, mido.Message("pitchwheel", channel=channel, pitch=0))]
        for start, pitch, dur in notes:
            vel = int(rng.integers(70, 110))
            events.append((start, mido.Message("note_on", channel=channel, note=pitch, velocity=vel)))
            events.append((start + dur - 1, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
        events.sort(key=lambda e: e[0])
        track, last = mido.MidiTrack(), 0
        track.append(mido.MetaMessage("track_name", name=name, time=0))
        for t, msg in events:
            track.append(msg.copy(time=t - last))
            last = t
        mid.tracks.append(track)
    mid.save(str(path))
    return path


def render_warped(midi, warp, path, soundfont=MUSESCORE_LITE, noise=0.002, crop_start_s=0.0, seed=0):
    """Render ``midi`` with every event moved by ``warp`` (seconds → seconds) and a different soundfont.

    Returns the recording's path; the true audio time of MIDI time t is ``warp(t) - crop_start_s``.
    """
    import copy

    import soundfile as sf

    from engine import media

    warped = copy.deepcopy(midi)
    for inst in warped.instruments:
        inst.program = min(127, inst.program + 1) if not inst.is_drum else inst.program
        for n in inst.notes:
            n.start, n.end = float(warp(n.start)), float(warp(n.end))
        for ev in inst.control_changes + inst.pitch_bends:
            ev.time = float(warp(ev.time))
    y = media.synthesize(warped, sr=22050, soundfont=soundfont)
    y = y[int(crop_start_s * 22050):]
    y = y + noise * np.random.default_rng(seed).standard_normal(len(y)).astype(np.float32)
    sf.write(str(path), y, 22050)
    return path
