"""Songs with a known tempo and meter, as MIDI, for the pace classifier's training data.

Two sources, both offline:

- **Corpus tunes** (music21's corpus: Ryan's Mammoth Collection and O'Neill's 1850 fiddle tunes,
  Essen children's songs, Bach chorales): notes in quarter lengths, with the tune's single time
  signature. Monophonic tunes get, at random, a generated accompaniment (bass and chords that
  follow the bar) and/or drums, or stay solo.
- **Generated grooves** (:func:`groove`): drums, bass, chords and a melody built on the metrical
  grid of a meter, with random instruments, styles, fills and variations, including "flat"
  styles whose accents do not reveal the meter.

A song is performed (:func:`perform`) at a beat tempo with a slow tempo drift (≤ 2 %) and onset
jitter (≤ 12 ms), so the audio is not metronomic. Quarter lengths (ql) are the time unit before
performance; ``TICKS_PER_QUARTER`` = 12 ticks per ql hold both duple and triple subdivisions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TICKS_PER_QUARTER = 12
SIMPLE_METERS = ("2/4", "3/4", "4/4", "2/2")
COMPOUND_METERS = ("6/8", "9/8", "12/8")
DRUM_KICK, DRUM_SNARE, DRUM_STICK, DRUM_CLAP = 36, 38, 37, 39
HATS = (42, 44, 51, 70, 54)  # closed hat, pedal hat, ride, maracas, tambourine
TOMS = (41, 43, 45, 47, 48, 50)
CHORD_PROGRAMS = (0, 1, 2, 4, 5, 16, 19, 24, 25, 26, 27, 40, 48, 49, 52, 61, 88, 89, 90)
MELODY_PROGRAMS = (0, 11, 13, 22, 40, 56, 57, 60, 65, 66, 68, 71, 73, 80, 81)
BASS_PROGRAMS = (32, 33, 34, 35, 36, 38, 39, 0, 42)
PROGRESSIONS = ((0, 4, 5, 3), (0, 3, 4, 0), (5, 3, 0, 4), (0, 5, 3, 4), (0, 0, 3, 4), (1, 4, 0, 0), (0, 3, 0, 4))
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)


@dataclass
class Meter:
    """A time signature as the pace labels see it."""

    ratio: str

    @property
    def compound(self) -> bool:
        num, _ = map(int, self.ratio.split("/"))
        return num % 3 == 0 and num > 3

    @property
    def beats_per_bar(self) -> int:
        num, _ = map(int, self.ratio.split("/"))
        return num // 3 if self.compound else num

    @property
    def beat_division(self) -> int:
        return 3 if self.compound else 2

    @property
    def beat_ql(self) -> float:
        _, den = map(int, self.ratio.split("/"))
        return (3 if self.compound else 1) * 4.0 / den

    @property
    def bar_ql(self) -> float:
        return self.beats_per_bar * self.beat_ql


@dataclass
class Song:
    """Notes in quarter lengths: rows of (start_ql, duration_ql, pitch, velocity, program, is_drum)."""

    song_id: str
    source: str
    meter: Meter
    notes: list = field(default_factory=list)
    length_ql: float = 0.0
    downbeat_ql: float = 0.0   # bar lines fall at downbeat_ql + k * bar_ql (a pickup shifts them)


def sample_beat_bpm(meter: Meter, rng: np.random.Generator) -> float:
    """A beat tempo, log-uniform in a range typical of the meter's notated beat."""
    lo, hi = (40.0, 125.0) if meter.compound else (50.0, 120.0) if meter.beat_ql == 2.0 else (60.0, 180.0)
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


# --- corpus tunes --------------------------------------------------------------------------------

def score_to_song(score, song_id: str, source: str, allowed=SIMPLE_METERS + COMPOUND_METERS) -> Song | None:
    """Notes of a music21 score with one allowed time signature (else None)."""
    signatures = {ts.ratioString for ts in score.recurse().getElementsByClass("TimeSignature")}
    if len(signatures) != 1 or next(iter(signatures)) not in allowed:
        return None
    meter = Meter(next(iter(signatures)))
    parts = list(score.parts) or [score]
    song = Song(song_id, source, meter)
    programs = [0, 0, 0, 0]
    for k, part in enumerate(parts):
        for n in part.stripTies().flatten().notes:
            dur = float(n.duration.quarterLength)
            if dur <= 0:
                continue  # grace notes
            for p in n.pitches:
                song.notes.append((float(n.offset), dur, int(p.midi), 80, programs[k % 4], False))
        song.length_ql = max(song.length_ql, float(part.flatten().highestTime))
    if len(song.notes) < 16:
        return None
    measures = parts[0].getElementsByClass("Measure")
    first = float(measures[0].duration.quarterLength) if len(measures) else meter.bar_ql
    song.downbeat_ql = first % meter.bar_ql  # where bar lines fall: downbeat_ql + k * bar_ql
    return song


def harmony_roots(song: Song, start_ql: float, n_bars: int) -> np.ndarray:
    """Pitch class of the lowest note sounding at each downbeat ``start_ql + k * bar_ql``
    (a crude chord root per bar; the previous bar's root when nothing sounds)."""
    roots, last = np.zeros(n_bars, int), 0
    for b in range(n_bars):
        t = start_ql + b * song.meter.bar_ql
        sounding = [pitch for s, d, pitch, *_ in song.notes if s <= t + 1e-6 < s + d]
        last = (min(sounding) % 12) if sounding else last
        roots[b] = last
    return roots


# --- the metrical grid ---------------------------------------------------------------------------

def metrical_weights(meter: Meter) -> np.ndarray:
    """Weight of each tick of a bar: 4 downbeat, 3 half bar (four-beat meters), 2 beat,
    1 subdivision, 0.5 second subdivision, 0 elsewhere."""
    bar_t = int(round(meter.bar_ql * TICKS_PER_QUARTER))
    beat_t = int(round(meter.beat_ql * TICKS_PER_QUARTER))
    sub_t = beat_t // meter.beat_division
    w = np.zeros(bar_t)
    w[:: max(sub_t // 2, 1)] = 0.5
    w[::sub_t] = 1
    w[::beat_t] = 2
    if meter.beats_per_bar == 4:
        w[bar_t // 2] = 3
    w[0] = 4
    return w


def _chord_pitches(root_pc: int, scale, degree: int, octave: int) -> list[int]:
    if scale is None:  # a root from a tune: major triad
        return [12 * octave + root_pc + i for i in (0, 4, 7)]
    return [12 * octave + root_pc + scale[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]


def accompaniment(meter: Meter, n_bars: int, rng, roots=None, downbeat_ql: float = 0.0,
                  drums: bool = True, bass: bool = True, chords: bool = True, melody: bool = False) -> list:
    """Generated parts over ``n_bars`` bars: a list of note rows (see :class:`Song`)."""
    w = metrical_weights(meter)
    bar_t, tpq = len(w), TICKS_PER_QUARTER
    beat_t = int(round(meter.beat_ql * tpq))
    sub_t = beat_t // meter.beat_division
    tonic = int(rng.integers(0, 12))
    scale = MAJOR if rng.random() < 0.6 else MINOR
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    flat = rng.random() < 0.15  # accents that do not reveal the meter
    notes = []

    def add(tick, dur_t, pitch, vel, program, is_drum=False):
        start = downbeat_ql + tick / tpq
        if start >= 0:
            notes.append((start, dur_t / tpq, int(pitch), int(np.clip(vel, 20, 127)), program, is_drum))

    def accent(pos, base):
        return base if flat else base * (0.7 + 0.08 * w[pos]) + rng.normal(0, 5)

    chord_of_bar = []
    for b in range(n_bars):
        if roots is not None:
            root, degree, sc = int(roots[min(b, len(roots) - 1)]), 0, None
        else:
            degree = progression[b % len(progression)]
            root, sc = tonic, scale
        chord_of_bar.append((root, degree, sc))
    if drums:
        hat = HATS[rng.integers(len(HATS))]
        hat_step = [sub_t, beat_t, max(sub_t // 2, 1)][rng.choice(3, p=[0.6, 0.25, 0.15])]
        kick_beats = rng.random(meter.beats_per_bar) < 0.4
        kick_beats[0] = True
        snare = [DRUM_SNARE, DRUM_STICK, DRUM_CLAP][rng.choice(3, p=[0.7, 0.15, 0.15])]
        style = rng.choice(["backbeat", "sparse", "four"], p=[0.65, 0.2, 0.15])
        for b in range(n_bars):
            o = b * bar_t
            for pos in range(0, bar_t, hat_step):
                add(o + pos, hat_step, hat, accent(pos, 70), 0, True)
            for k in range(meter.beats_per_bar):
                pos = k * beat_t
                if style == "four" or (kick_beats[k] and (style != "sparse" or k == 0)):
                    add(o + pos, sub_t, DRUM_KICK, accent(pos, 100), 0, True)
                if style != "sparse" and k % 2 == 1 and meter.beats_per_bar != 3 or \
                        (meter.beats_per_bar == 3 and k > 0 and style == "backbeat"):
                    add(o + pos, sub_t, snare, accent(pos, 90), 0, True)
            if rng.random() < 0.2:  # a syncopated kick
                pos = int(rng.choice(np.flatnonzero((w == 1) | (w == 0.5))))
                add(o + pos, sub_t, DRUM_KICK, 80, 0, True)
            if b % 4 == 3 and rng.random() < 0.5:  # a fill over the last beat
                step = max(sub_t // 2, 1) if rng.random() < 0.5 else sub_t
                for pos in range(bar_t - beat_t, bar_t, step):
                    add(o + pos, step, TOMS[rng.integers(len(TOMS))], 85, 0, True)
    if bass:
        program = BASS_PROGRAMS[rng.integers(len(BASS_PROGRAMS))]
        style = rng.choice(["bar", "beats", "root_fifth", "syncopated"])
        for b, (root, degree, sc) in enumerate(chord_of_bar):
            o = b * bar_t
            r = _chord_pitches(root, sc, degree, 3)[0] - 12
            if style == "bar":
                add(o, bar_t, r, accent(0, 95), program)
            elif style in ("beats", "root_fifth"):
                for k in range(meter.beats_per_bar):
                    p = r + (7 if style == "root_fifth" and k % 2 else 0)
                    add(o + k * beat_t, beat_t, p, accent(k * beat_t, 90), program)
            else:
                positions = [p for p in range(0, bar_t, sub_t) if p == 0 or rng.random() < 0.25 + 0.1 * w[p]]
                for p, q in zip(positions, positions[1:] + [bar_t]):
                    add(o + p, q - p, r + (12 if rng.random() < 0.2 else 0), accent(p, 90), program)
    if chords:
        program = CHORD_PROGRAMS[rng.integers(len(CHORD_PROGRAMS))]
        style = rng.choice(["block", "beats", "offbeats", "arpeggio"])
        for b, (root, degree, sc) in enumerate(chord_of_bar):
            o = b * bar_t
            pitches = _chord_pitches(root, sc, degree, 4)
            if style == "block":
                for p in pitches:
                    add(o, bar_t, p, accent(0, 70), program)
            elif style == "beats":
                for k in range(meter.beats_per_bar):
                    for p in pitches:
                        add(o + k * beat_t, beat_t * 0.8, p, accent(k * beat_t, 65), program)
            elif style == "offbeats":
                offs = [k * beat_t for k in range(1, meter.beats_per_bar)] if meter.beats_per_bar == 3 and not meter.compound \
                    else [k * beat_t + sub_t * (meter.beat_division - 1) for k in range(meter.beats_per_bar)]
                for pos in offs:
                    for p in pitches:
                        add(o + pos, sub_t, p, accent(pos, 65), program)
            else:
                for i, pos in enumerate(range(0, bar_t, sub_t)):
                    add(o + pos, sub_t, pitches[i % 3] + 12 * ((i // 3) % 2), accent(pos, 65), program)
    if melody:
        program = MELODY_PROGRAMS[rng.integers(len(MELODY_PROGRAMS))]
        density = rng.uniform(0.2, 0.7)
        degree = 7
        for b in range(n_bars):
            o = b * bar_t
            positions = [p for p in range(0, bar_t, max(sub_t // 2, 1)) if rng.random() < density * (0.3 + 0.3 * w[p])]
            for p, q in zip(positions, positions[1:] + [bar_t]):
                degree = int(np.clip(degree + rng.integers(-2, 3), 0, 13))
                pitch = 12 * 5 + tonic + scale[degree % 7] + 12 * (degree // 7)
                add(o + p, q - p, pitch, accent(p, 85), program)
    return notes


def groove(song_id: str, meter: Meter, rng: np.random.Generator, n_bars: int = 64) -> Song:
    """A generated song: at least two of drums, bass, chords, melody."""
    parts = rng.random(4) < (0.7, 0.8, 0.8, 0.6)
    if parts.sum() < 2:
        parts[[0, 2]] = True
    notes = accompaniment(meter, n_bars, rng, drums=parts[0], bass=parts[1], chords=parts[2], melody=parts[3])
    return Song(song_id, "groove", meter, notes, n_bars * meter.bar_ql)


def arrange(song: Song, rng: np.random.Generator) -> Song:
    """Give a tune instruments and, for monophonic ones, maybe an accompaniment (in place)."""
    programs = (MELODY_PROGRAMS[rng.integers(len(MELODY_PROGRAMS))], CHORD_PROGRAMS[rng.integers(len(CHORD_PROGRAMS))])
    song.notes = [(s, d, p, v, programs[0] if song.source != "bach" else programs[1], drum)
                  for s, d, p, v, _, drum in song.notes]
    if song.source != "bach" and rng.random() < 0.65:
        n_bars = int(np.ceil(song.length_ql / song.meter.bar_ql)) + 1
        start = song.downbeat_ql - song.meter.bar_ql if song.downbeat_ql > 0 else 0.0
        roots = harmony_roots(song, start, n_bars)
        song.notes = song.notes + accompaniment(song.meter, n_bars, rng, roots=roots, downbeat_ql=start,
                                                drums=rng.random() < 0.4, bass=True, chords=rng.random() < 0.8)
    return song


# --- performance ---------------------------------------------------------------------------------

def perform(song: Song, beat_bpm: float, rng: np.random.Generator, min_duration_s: float = 45.0,
            max_duration_s: float = 75.0):
    """Render the song's notes to a PrettyMIDI at ``beat_bpm``, looped to a duration in
    [min_duration_s, max_duration_s] (whole bars, so the meter's phase survives the loop),
    with a slow tempo drift of ≤ 2 %, onset jitter of ≤ 12 ms and, for corpus tunes, the
    metrical accents a player gives them: velocity + depth × (weight / 4 − 1/4) with the
    weights of :func:`metrical_weights` and a depth drawn per song (0 for a fifth of the songs,
    else 4–16 velocity steps). Generated grooves carry their own accents."""
    import pretty_midi

    qpm = beat_bpm * song.meter.beat_ql
    period_ql = np.ceil(song.length_ql / song.meter.bar_ql - 1e-6) * song.meter.bar_ql
    target_ql = rng.uniform(min_duration_s, max_duration_s) * qpm / 60.0
    n_loops = max(1, int(np.ceil(target_ql / period_ql)))
    total_ql = min(n_loops * period_ql, target_ql + song.meter.bar_ql)
    # Tempo drift: seconds(ql) by integrating a slowly varying seconds-per-quarter.
    grid = np.linspace(0, total_ql + 8, int((total_ql + 8) * 48) + 2)
    depth, period, phase = rng.uniform(0, 0.02), rng.uniform(20, 60), rng.uniform(0, 2 * np.pi)
    spq = 60.0 / qpm * (1 + depth * np.sin(2 * np.pi * grid / period + phase))
    seconds = np.concatenate([[0.0], np.cumsum(0.5 * (spq[1:] + spq[:-1]) * np.diff(grid))])
    jitter_s = rng.uniform(0, 0.012)
    weights = metrical_weights(song.meter)
    depth = 0.0 if song.source == "groove" or rng.random() < 0.2 else rng.uniform(4, 16)
    pm = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    instruments = {}
    for loop in range(n_loops):
        for start, dur, pitch, vel, program, is_drum in song.notes:
            s = start + loop * period_ql
            if s >= total_ql:
                continue
            key = (program, is_drum)
            if key not in instruments:
                instruments[key] = pretty_midi.Instrument(program=program, is_drum=is_drum)
            t0 = float(np.interp(s, grid, seconds)) + rng.normal(0, jitter_s)
            t1 = float(np.interp(min(s + dur, total_ql), grid, seconds))
            if depth and not is_drum:
                tick = int(round((start - song.downbeat_ql) * TICKS_PER_QUARTER)) % len(weights)
                vel = vel + depth * (weights[tick] / 4 - 0.25)
            vel = int(np.clip(vel + rng.normal(0, 6), 15, 127))
            instruments[key].notes.append(pretty_midi.Note(vel, int(np.clip(pitch, 0, 127)), max(t0, 0.0),
                                                           max(t1, max(t0, 0.0) + 0.03)))
    pm.instruments = [i for i in instruments.values() if i.notes]
    return pm
