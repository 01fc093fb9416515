"""Synthetic MIDI↔audio pairs with a known alignment, after Raffel & Ellis (ICASSP 2016).

Task
----
Given a MIDI file, make a "recording" of it that differs the way real recordings differ from
their MIDI transcriptions, and keep the *true* alignment between the two. Used by the alignment
benchmark (tests/benchmarks/), the matching benchmark, the bundled demo and the tests.

The corruptions (each drawn from a ``numpy.random.Generator``, so a seed fixes everything):

1. a smooth random tempo curve: a global tempo factor in [0.8, 1.25] (log-uniform) times a slowly
   varying factor within ±10 % (PCHIP through random control points every ~8 s, so it never
   overshoots the ±10 %);
2. cropping the first and/or the last 10 % of the rendering, each with probability 0.5 (applied
   to the rendered audio by :func:`render_recording`; the true warp already accounts for it);
3. dropping each instrument with probability 0.3, never all of them;
4. shifting each melodic instrument's GM program by ±1 (timbre change within its family);
5. scaling velocities (one gain per instrument plus a small per-note jitter).

Conventions
-----------
Three timelines, all in seconds:

- *original*: the unmodified MIDI's timeline (what an aligner sees as MIDI time);
- *rendered*: the corrupted MIDI's timeline, i.e. the synthesized audio before cropping;
- *audio*: the final recording, ``audio = rendered − crop_start_s``.

The true warp is a pair of knot arrays ``(warp_midi_s, warp_audio_s)``, strictly increasing,
linear between knots (spaced 50 ms apart) and extrapolated linearly outside them. A note at
original time ``t`` sounds at ``np.interp(t, warp_midi_s, warp_audio_s)`` in the recording.

Metrics
-------
:func:`onset_errors` scores an aligner's MIDI→audio map the way the benchmark does: for each
note of the original MIDI whose true onset lies inside the recording, the absolute onset error,
clipped at 0.5 s; summarised as the mean error and the fraction within 50 ms and 100 ms.
"""
from __future__ import annotations

import copy
import io
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------------------------
# Parameters and result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorruptionParams:
    """How strongly to corrupt a MIDI; the defaults are the benchmark's (Raffel & Ellis 2016).

    Attributes
    ----------
    tempo_factor_range : (float, float)
        Global tempo factor bounds, drawn log-uniformly (>1 plays faster).
    local_tempo_depth : float
        Maximum relative deviation of the slowly varying tempo factor (0.1 = ±10 %).
    local_tempo_period_s : float
        Spacing of the random control points of the slow tempo curve, in original seconds.
    crop_fraction : float
        Fraction of the rendering cut at the start / end when cropping.
    crop_start_prob, crop_end_prob : float
        Probability of cropping the start / the end.
    drop_instrument_prob : float
        Probability of dropping each instrument (never all of them).
    change_program_prob : float
        Probability of shifting each melodic instrument's program by ±1.
    velocity_gain_range : (float, float)
        Per-instrument velocity gain bounds (uniform).
    velocity_jitter_std : float
        Standard deviation of the per-note multiplicative velocity jitter around 1.
    knot_spacing_s : float
        Spacing of the true warp's knots, in original seconds.
    """

    tempo_factor_range: tuple[float, float] = (0.8, 1.25)
    local_tempo_depth: float = 0.10
    local_tempo_period_s: float = 8.0
    crop_fraction: float = 0.10
    crop_start_prob: float = 0.5
    crop_end_prob: float = 0.5
    drop_instrument_prob: float = 0.3
    change_program_prob: float = 1.0
    velocity_gain_range: tuple[float, float] = (0.6, 1.3)
    velocity_jitter_std: float = 0.1
    knot_spacing_s: float = 0.05


@dataclass
class CorruptedMidi:
    """A corrupted MIDI and the true warp from the original MIDI to the final recording.

    Attributes
    ----------
    midi : pretty_midi.PrettyMIDI
        The corrupted MIDI, in the *rendered* timeline (before cropping). Its tempo map is the
        original one (only event times were moved), so it still writes and re-reads correctly.
    warp_midi_s, warp_audio_s : np.ndarray
        Knots of the true warp: original MIDI seconds → recording seconds (strictly increasing).
    crop_start_s : float
        Seconds cut from the start of the rendering (0.0 when not cropped).
    crop_end_s : float or None
        Rendered time at which the recording ends when the end is cropped, else None (the
        rendering is kept to its end, release tail included).
    info : dict
        What was drawn: tempo factor, dropped instruments, program changes, velocity gains.
    """

    midi: object
    warp_midi_s: np.ndarray
    warp_audio_s: np.ndarray
    crop_start_s: float = 0.0
    crop_end_s: float | None = None
    info: dict = field(default_factory=dict)

    def midi_to_audio(self, times_s):
        """Map original-MIDI seconds to recording seconds (scalar or array in, same out)."""
        return warp_times(times_s, self.warp_midi_s, self.warp_audio_s)

    def audio_to_midi(self, times_s):
        """Map recording seconds back to original-MIDI seconds."""
        return warp_times(times_s, self.warp_audio_s, self.warp_midi_s)

    def ground_truth(self) -> dict:
        """Arrays and scalars to store as the pair's ground truth (``np.savez``-able, no objects)."""
        return {
            "warp_midi_s": np.asarray(self.warp_midi_s, dtype=np.float64),
            "warp_audio_s": np.asarray(self.warp_audio_s, dtype=np.float64),
            "crop_start_s": np.float64(self.crop_start_s),
            "crop_end_s": np.float64(np.nan if self.crop_end_s is None else self.crop_end_s),
        }


# --------------------------------------------------------------------------------------------
# Time warps
# --------------------------------------------------------------------------------------------


def warp_times(times_s, knots_from_s, knots_to_s):
    """Piecewise-linear map through knots, extrapolated linearly with the end segments' slopes.

    Parameters
    ----------
    times_s : float or np.ndarray
    knots_from_s, knots_to_s : np.ndarray
        Strictly increasing knot coordinates, at least two.

    Returns
    -------
    float or np.ndarray, the same shape as ``times_s``.
    """
    x = np.asarray(knots_from_s, dtype=np.float64)
    y = np.asarray(knots_to_s, dtype=np.float64)
    t = np.asarray(times_s, dtype=np.float64)
    out = np.interp(t, x, y)
    lo, hi = t < x[0], t > x[-1]
    if np.any(lo):
        out = np.where(lo, y[0] + (t - x[0]) * (y[1] - y[0]) / (x[1] - x[0]), out)
    if np.any(hi):
        out = np.where(hi, y[-1] + (t - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2]), out)
    return float(out) if np.ndim(times_s) == 0 else out


def random_tempo_warp(duration_s: float, rng: np.random.Generator, params: CorruptionParams = CorruptionParams()):
    """A smooth random time warp: global tempo factor × slowly varying factor within ±depth.

    Parameters
    ----------
    duration_s : float
        Original-timeline span the knots must cover (a margin is added for release tails).
    rng : np.random.Generator
    params : CorruptionParams

    Returns
    -------
    knots_midi_s, knots_rendered_s : np.ndarray
        Strictly increasing knots, starting at (0, 0).
    tempo_factor : float
        The global factor drawn (>1 plays faster).
    """
    from scipy.interpolate import PchipInterpolator

    lo, hi = params.tempo_factor_range
    tempo_factor = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    span_s = float(duration_s) + 10.0  # cover release tails and rounding past the last note
    n_ctrl = max(2, int(np.ceil(span_s / params.local_tempo_period_s)) + 1)
    ctrl_t = np.linspace(0.0, span_s, n_ctrl)
    ctrl_v = rng.uniform(-1.0, 1.0, n_ctrl)
    n_knots = int(np.ceil(span_s / params.knot_spacing_s)) + 1
    knots_midi_s = np.linspace(0.0, span_s, n_knots)
    # PCHIP stays within the control values: the local factor never leaves [1-depth, 1+depth].
    local = 1.0 + params.local_tempo_depth * PchipInterpolator(ctrl_t, ctrl_v)(knots_midi_s)
    seconds_per_second = 1.0 / (tempo_factor * local)  # rendered seconds per original second
    steps = 0.5 * (seconds_per_second[1:] + seconds_per_second[:-1]) * np.diff(knots_midi_s)
    knots_rendered_s = np.concatenate([[0.0], np.cumsum(steps)])
    return knots_midi_s, knots_rendered_s, tempo_factor


def apply_warp(midi, knots_from_s, knots_to_s):
    """A copy of ``midi`` with every timed event moved through the warp.

    Notes, control changes, pitch bends, lyrics, text events, time and key signatures move;
    the tempo map (ticks↔seconds) is left as it is, so the copy still writes to a file and
    reads back with the moved times (up to tick rounding). Unlike ``PrettyMIDI.adjust_times``
    this writes no tempo events at all.
    """
    out = copy.deepcopy(midi)
    move = lambda t: warp_times(t, knots_from_s, knots_to_s)  # noqa: E731
    for inst in out.instruments:
        if inst.notes:
            starts = move(np.array([n.start for n in inst.notes]))
            ends = move(np.array([n.end for n in inst.notes]))
            for n, s, e in zip(inst.notes, starts, ends):
                n.start, n.end = float(s), float(max(e, s + 1e-3))
        for ev in list(inst.control_changes) + list(inst.pitch_bends):
            ev.time = float(move(ev.time))
    for ev in list(out.lyrics) + list(getattr(out, "text_events", [])) + list(out.time_signature_changes) + list(out.key_signature_changes):
        ev.time = float(move(ev.time))
    return out


# --------------------------------------------------------------------------------------------
# Corruption
# --------------------------------------------------------------------------------------------


def corrupt_midi(midi, rng: np.random.Generator, params: CorruptionParams = CorruptionParams()) -> CorruptedMidi:
    """Corrupt a MIDI as Raffel & Ellis (2016) did and return it with the true warp.

    Pure: ``midi`` is not modified. All randomness comes from ``rng``.

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI
        With at least one note.
    rng : np.random.Generator
    params : CorruptionParams

    Returns
    -------
    CorruptedMidi
        The corrupted MIDI (rendered timeline), the true warp (original → recording seconds),
        the crop, and what was drawn in ``info``.
    """
    if not any(inst.notes for inst in midi.instruments):
        raise ValueError("corrupt_midi: the MIDI has no notes")
    end_s = midi.get_end_time()
    knots_midi_s, knots_rendered_s, tempo_factor = random_tempo_warp(end_s, rng, params)
    warped = apply_warp(midi, knots_midi_s, knots_rendered_s)

    # Drop instruments (never all; a lone instrument is always kept), as corrupt_midi.py does.
    n_inst = len(warped.instruments)
    keep = rng.random(n_inst) >= params.drop_instrument_prob
    with_notes = np.array([bool(inst.notes) for inst in warped.instruments])
    if not np.any(keep & with_notes):
        keep[:] = False
        keep[rng.choice(np.flatnonzero(with_notes))] = True
    dropped = [i for i in range(n_inst) if not keep[i]]
    warped.instruments = [inst for inst, k in zip(warped.instruments, keep) if k]

    # Shift programs by ±1; at the ends of the range step inwards instead.
    program_changes = []
    for inst in warped.instruments:
        if inst.is_drum or rng.random() >= params.change_program_prob:
            continue
        old = int(inst.program)
        new = old + int(rng.choice([-1, 1]))
        new = 1 if new < 0 else 126 if new > 127 else new
        inst.program = new
        program_changes.append((old, new))

    # Velocities: one gain per instrument and a small jitter per note, kept in 1..127.
    gains = []
    for inst in warped.instruments:
        gain = float(rng.uniform(*params.velocity_gain_range))
        gains.append(gain)
        if inst.notes:
            jitter = 1.0 + params.velocity_jitter_std * rng.standard_normal(len(inst.notes))
            for n, j in zip(inst.notes, jitter):
                n.velocity = int(np.clip(round(n.velocity * gain * j), 1, 127))

    # Crop: decided here, applied to the rendered audio; the warp is shifted by the start crop.
    rendered_end_s = warped.get_end_time()
    crop_start_s = 0.0
    crop_end_s = None
    if rng.random() < params.crop_start_prob:
        crop_start_s = params.crop_fraction * rendered_end_s
    if rng.random() < params.crop_end_prob:
        crop_end_s = (1.0 - params.crop_fraction) * rendered_end_s

    info = {
        "tempo_factor": tempo_factor,
        "n_instruments": n_inst,
        "dropped_instruments": dropped,
        "program_changes": program_changes,
        "velocity_gains": gains,
        "crop_start_s": crop_start_s,
        "crop_end_s": crop_end_s,
        "rendered_end_s": rendered_end_s,
        "params": asdict(params),
    }
    return CorruptedMidi(warped, knots_midi_s, knots_rendered_s - crop_start_s, crop_start_s, crop_end_s, info)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

_FORMATS = {".mp3": "MP3", ".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def add_noise(y: np.ndarray, snr_db: float, rng: np.random.Generator, color: str = "pink") -> np.ndarray:
    """``y`` plus Gaussian noise at ``snr_db`` dB below its mean power (white or pink noise)."""
    y = np.asarray(y, dtype=np.float32)
    power = float(np.mean(y.astype(np.float64) ** 2))
    if power == 0.0 or not np.isfinite(snr_db):
        return y.copy()
    return (y + gaussian_noise(len(y), power / 10.0 ** (snr_db / 10.0), rng, color)).astype(np.float32)


def gaussian_noise(n_samples: int, power: float, rng: np.random.Generator, color: str = "pink") -> np.ndarray:
    """``n_samples`` of Gaussian noise of mean power ``power`` (white, or pink: 1/f power), float64."""
    noise = rng.standard_normal(n_samples)
    if color == "pink":  # 1/f power: scale the spectrum by 1/sqrt(f)
        spec = np.fft.rfft(noise)
        spec[1:] /= np.sqrt(np.arange(1, len(spec)))
        spec[0] = 0.0
        noise = np.fft.irfft(spec, n=n_samples)
    elif color != "white":
        raise ValueError(f"noise color must be 'white' or 'pink', not {color!r}")
    return noise * np.sqrt(power / np.mean(noise ** 2))


def render_recording(
    corrupted: CorruptedMidi,
    path,
    soundfont=None,
    sr: int = 22050,
    snr_db: float = 30.0,
    rng: np.random.Generator | None = None,
    noise_color: str = "pink",
    peak: float = 0.9,
    compression_level: float | None = None,
) -> np.ndarray:
    """Synthesize a corrupted MIDI, crop it, add noise and write it (mp3, wav, flac or ogg).

    Parameters
    ----------
    corrupted : CorruptedMidi
    path : str or Path
        Output file; the format comes from the suffix.
    soundfont : str or Path, optional
        Passed to :func:`engine.media.synthesize` (use a different one than the aligner's).
    sr : int
        Sample rate in Hz of the rendering and the file.
    snr_db : float
        Signal-to-noise ratio of the added noise in dB (``inf`` for none).
    rng : np.random.Generator, optional
        For the noise; a fixed default seed when None.
    noise_color : {"pink", "white"}
    peak : float
        The result is scaled to this peak amplitude (no clipping in the encoder).
    compression_level : float, optional
        soundfile's 0 (best) … 1 (smallest) for mp3/ogg/flac.

    Returns
    -------
    y : np.ndarray, float32
        The samples written (the recording; its time 0 is rendered time ``crop_start_s``).
    """
    from engine.media import synthesize

    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported output format (use one of {sorted(_FORMATS)})")
    rng = np.random.default_rng(0) if rng is None else rng
    y = synthesize(corrupted.midi, sr=sr, soundfont=soundfont)
    start = int(round(corrupted.crop_start_s * sr))
    stop = len(y) if corrupted.crop_end_s is None else int(round(corrupted.crop_end_s * sr))
    y = add_noise(y[start:stop], snr_db, rng, noise_color)
    top = float(np.max(np.abs(y))) if len(y) else 0.0
    if top > 0:
        y = (y * (peak / top)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {} if compression_level is None or fmt == "WAV" else {"compression_level": compression_level}
    import soundfile as sf

    sf.write(str(path), y, sr, format=fmt, **kwargs)
    return y


# --------------------------------------------------------------------------------------------
# MIDI sources and edits
# --------------------------------------------------------------------------------------------

# General MIDI programs by words in music21 part names (first match wins).
_GM_BY_NAME = (
    ("piccolo", 72), ("flute", 73), ("recorder", 74), ("oboe", 68), ("english horn", 69),
    ("clarinet", 71), ("bassoon", 70), ("horn", 60), ("trumpet", 56), ("tromba", 56),
    ("trombone", 57), ("tuba", 58), ("violoncello", 42), ("cello", 42), ("contrabass", 43),
    ("double bass", 43), ("viola", 41), ("violin", 40), ("harp", 46), ("guitar", 24),
    ("organ", 19), ("harpsichord", 6), ("cembalo", 6), ("timpani", 47),
)
_VOICE_WORDS = ("soprano", "alto", "tenor", "bass", "voice", "canto", "cantus", "quinto",
                "sesto", "superius", "altus", "bassus", "contratenor", "vocal", "choir", "s.", "a.", "t.", "b.")
_KEYBOARD_WORDS = ("piano", "keyboard", "klavier", "pianoforte")
# Ensembles to replace voices with, listed high → low; parts are mapped in score order.
ENSEMBLES = {
    "strings": (40, 40, 41, 42, 43),
    "winds": (73, 68, 71, 70),
    "brass": (56, 56, 60, 57, 58),
    "choir": (52, 52, 52, 52),
    "organ": (19, 19, 19, 19),
    "mixed": (73, 40, 71, 42),
    "saxes": (64, 65, 66, 67),
}
KEYBOARDS = (0, 1, 2, 4, 5, 6, 7, 16, 19, 21)


def gm_programs_for_parts(part_names, rng: np.random.Generator | None = None) -> list[int]:
    """A General MIDI program per part from the part names; voices and keyboards get varied.

    Named instruments (violin, oboe, horn, …) keep their GM program. Voices are replaced by one
    ensemble (strings, winds, brass, …) chosen with ``rng``, high parts to high instruments.
    Keyboard parts (all staves alike) get one keyboard program chosen with ``rng``.
    Without ``rng``: voices → choir aahs (52), keyboards and unknown → acoustic grand (0).
    """
    names = [(n or "").lower() for n in part_names]
    ensemble = ENSEMBLES["choir"] if rng is None else ENSEMBLES[rng.choice(sorted(ENSEMBLES))]
    keyboard = 0 if rng is None else int(rng.choice(KEYBOARDS))
    voices = [i for i, n in enumerate(names) if _program_by_name(n) is None and any(w in n for w in _VOICE_WORDS)]
    programs = []
    for i, name in enumerate(names):
        by_name = _program_by_name(name)
        if by_name is not None:
            programs.append(by_name)
        elif i in voices:
            k = voices.index(i)
            pos = 0 if len(voices) == 1 else round(k * (len(ensemble) - 1) / (len(voices) - 1))
            programs.append(int(ensemble[pos]))
        else:  # keyboards and unnamed parts
            programs.append(keyboard)
    return programs


def _program_by_name(name: str) -> int | None:
    if any(w in name for w in _KEYBOARD_WORDS):
        return None
    for word, program in _GM_BY_NAME:
        if word in name:
            return program
    return None


def music21_to_pretty_midi(work, rng: np.random.Generator | None = None, programs=None):
    """Convert a music21 corpus work (or a parsed score) to a PrettyMIDI with GM programs.

    Parameters
    ----------
    work : str or music21.stream.Stream
        A corpus path as ``music21.corpus.parse`` takes it (``"bach/bwv66.6"``) or a stream. An
        opus (a file of many pieces) gives its first score.
    rng : np.random.Generator, optional
        Varies the timbre (see :func:`gm_programs_for_parts`); music21 itself makes every part a
        piano.
    programs : list of int, optional
        Explicit GM programs, one per instrument of the result (overrides ``rng``).

    Returns
    -------
    pretty_midi.PrettyMIDI
        One instrument per part that has notes, in score order, named after the part.
    """
    import pretty_midi
    from music21 import corpus, stream
    from music21.midi import translate

    score = corpus.parse(work) if isinstance(work, (str, Path)) else work
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    data = translate.streamToMidiFile(score).writestr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "tempo events on non-zero tracks": harmless here
        midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
    midi.instruments = [inst for inst in midi.instruments if inst.notes]
    if programs is None:
        programs = gm_programs_for_parts([inst.name for inst in midi.instruments], rng)
    if len(programs) != len(midi.instruments):
        raise ValueError(f"{len(programs)} programs for {len(midi.instruments)} instruments")
    for inst, program in zip(midi.instruments, programs):
        inst.program = int(program)
        inst.is_drum = False
    return midi


def with_tempo_changes(midi, rng: np.random.Generator, n_changes: int = 2, ratio_range=(0.7, 1.4)):
    """A copy of ``midi`` whose tempo map changes ``n_changes`` times (at beats, mid-piece).

    The music (ticks) stays; set_tempo events are added so that from each change point on the
    tempo is the current one times a ratio drawn log-uniformly from ``ratio_range``. Used to
    make MIDIs whose seconds come from a non-trivial tempo map.
    """
    import mido
    import pretty_midi

    buf = io.BytesIO()
    midi.write(buf)
    buf.seek(0)
    mf = mido.MidiFile(file=buf)
    tpb = mf.ticks_per_beat
    tracks_abs = []
    for track in mf.tracks:
        t, events = 0, []
        for msg in track:
            t += msg.time
            events.append((t, msg))
        tracks_abs.append(events)
    end_tick = max((ev[-1][0] for ev in tracks_abs if ev), default=0)
    n_beats = end_tick // tpb
    if n_beats < 8 or n_changes < 1:
        return copy.deepcopy(midi)
    beats = np.sort(rng.choice(np.arange(int(0.2 * n_beats), int(0.85 * n_beats)), size=n_changes, replace=False))
    tempo_events = sorted((t, m.tempo) for t, m in tracks_abs[0] if m.type == "set_tempo") or [(0, 500000)]
    lo, hi = np.log(ratio_range[0]), np.log(ratio_range[1])
    added = []
    for beat in beats:
        tick = int(beat) * tpb
        current = [tempo for t, tempo in tempo_events + added if t <= tick][-1]
        ratio = float(np.exp(rng.uniform(lo, hi)))
        added.append((tick, int(np.clip(round(current / ratio), 100000, 2000000))))
    # Later original tempo events are scaled by the same ratio, so the change persists.
    merged = []
    for t, msg in tracks_abs[0]:
        if msg.type == "set_tempo":
            factor = 1.0
            for tick, new in added:
                if t > tick:
                    factor = new / [tempo for tt, tempo in tempo_events if tt <= tick][-1]
            msg = msg.copy(tempo=int(np.clip(round(msg.tempo * factor), 100000, 2000000)))
        merged.append((t, msg))
    merged += [(tick, mido.MetaMessage("set_tempo", tempo=tempo, time=0)) for tick, tempo in added]
    merged.sort(key=lambda e: (e[0], e[1].type != "set_tempo", e[1].type == "end_of_track"))
    track0 = mido.MidiTrack()
    prev = 0
    for t, msg in merged:
        track0.append(msg.copy(time=t - prev))
        prev = t
    mf.tracks[0] = track0
    out = io.BytesIO()
    mf.save(file=out)
    out.seek(0)
    result = pretty_midi.PrettyMIDI(out)
    for inst, src in zip(result.instruments, midi.instruments):
        inst.name = src.name
    return result


def truncate_midi(midi, max_duration_s: float):
    """A copy of ``midi`` without anything after ``max_duration_s`` (notes are cut there)."""
    out = copy.deepcopy(midi)
    for inst in out.instruments:
        inst.notes = [n for n in inst.notes if n.start < max_duration_s - 0.05]
        for n in inst.notes:
            n.end = min(n.end, max_duration_s)
        inst.control_changes = [c for c in inst.control_changes if c.time < max_duration_s]
        inst.pitch_bends = [b for b in inst.pitch_bends if b.time < max_duration_s]
    out.instruments = [inst for inst in out.instruments if inst.notes]
    return out


def concatenate_midis(midis, gap_s: float = 1.0):
    """One PrettyMIDI playing ``midis`` one after another, ``gap_s`` apart (for long test pieces).

    Instruments with the same (program, is_drum) are merged. The result has a plain 120 bpm
    tempo map; only the seconds of the events matter.
    """
    import pretty_midi

    out = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    by_key = {}
    offset = 0.0
    for midi in midis:
        for inst in midi.instruments:
            key = (int(inst.program), bool(inst.is_drum))
            if key not in by_key:
                by_key[key] = pretty_midi.Instrument(program=key[0], is_drum=key[1], name=inst.name)
                out.instruments.append(by_key[key])
            target = by_key[key]
            target.notes.extend(pretty_midi.Note(n.velocity, n.pitch, n.start + offset, n.end + offset) for n in inst.notes)
            target.control_changes.extend(
                pretty_midi.ControlChange(c.number, c.value, c.time + offset) for c in inst.control_changes)
        offset += midi.get_end_time() + gap_s
    for inst in out.instruments:
        inst.notes.sort(key=lambda n: (n.start, n.pitch))
        inst.control_changes.sort(key=lambda c: c.time)
    return out


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def onset_errors(midi, warp_midi_s, warp_audio_s, predicted_midi_to_audio, audio_duration_s: float,
                 clip_s: float = 0.5) -> dict:
    """Score a MIDI→audio map against the true warp, note by note.

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI
        The original MIDI (the one given to the aligner); every instrument's notes count,
        including instruments dropped from the recording (their true times are still defined).
    warp_midi_s, warp_audio_s : np.ndarray
        The true warp's knots.
    predicted_midi_to_audio : callable
        The aligner's map, array of original seconds → array of recording seconds.
    audio_duration_s : float
        Length of the recording; notes whose true onset falls outside [0, duration] are skipped.
    clip_s : float
        Each note's error is clipped at this many seconds.

    Returns
    -------
    dict
        ``mean_error_s``, ``within_50ms``, ``within_100ms`` (fractions in [0, 1]), ``n_notes``,
        ``errors_s`` (the clipped per-note errors, onset order), ``offsets_s`` (signed, unclipped
        predicted − true: a constant bias shows up in its median).
    """
    onsets = np.sort(np.concatenate([[n.start for n in inst.notes] for inst in midi.instruments]))
    true_s = warp_times(onsets, warp_midi_s, warp_audio_s)
    inside = (true_s >= 0.0) & (true_s <= audio_duration_s)
    pred_s = np.asarray(predicted_midi_to_audio(onsets[inside]), dtype=np.float64)
    errors = np.minimum(np.abs(pred_s - true_s[inside]), clip_s)
    n = int(errors.size)
    return {
        "mean_error_s": float(errors.mean()) if n else float("nan"),
        "within_50ms": float(np.mean(errors <= 0.050)) if n else float("nan"),
        "within_100ms": float(np.mean(errors <= 0.100)) if n else float("nan"),
        "n_notes": n,
        "errors_s": errors,
        "offsets_s": pred_s - true_s[inside],
    }
