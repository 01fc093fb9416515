"""Loading MIDI and audio, validating them, and synthesizing MIDI with FluidSynth.

Conventions
-----------
- Audio is mono float32 in [-1, 1] at the sample rate the caller asks for (``sr``, Hz);
  the default ``sr=22050`` is the alignment recipe's rate.
- MIDI is a ``pretty_midi.PrettyMIDI``; times are seconds in the MIDI's own timeline.
- Every failure on bad input raises a subclass of :class:`engine.errors.EarwormError` naming the
  file and the reason.

Soundfont discovery (first hit wins): the ``soundfont`` argument → ``$EARWORM_SOUNDFONT`` →
Debian's system GM soundfonts → the TimGM6mb.sf2 bundled with pretty_midi.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from engine.errors import AudioError, EarwormError, MidiError, SoundfontError

DEFAULT_SR = 22050
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
MIDI_EXTENSIONS = (".mid", ".midi", ".kar", ".smf")
MIN_AUDIO_SECONDS = 0.25
MAX_MIDI_SECONDS = 4 * 3600  # longer than any piece: a sign of a corrupt tempo map

# Debian's GM soundfonts, best first (fluid-soundfont-gm, musescore-general-soundfont[-small],
# timgm6mb-soundfont). sf3 needs FluidSynth built with libsndfile (Debian's is).
SYSTEM_SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
)


def _check_file(path, error_cls) -> Path:
    """Return ``path`` as a Path after checking it exists, is a file and is not empty."""
    p = Path(path)
    if not p.exists():
        raise error_cls(p, "file not found")
    if not p.is_file():
        raise error_cls(p, "not a regular file")
    if p.stat().st_size == 0:
        raise error_cls(p, "file is empty (0 bytes)")
    return p


def load_midi(path) -> "pretty_midi.PrettyMIDI":
    """Load and validate a Standard MIDI File.

    Parameters
    ----------
    path : str or Path
        A .mid/.midi file.

    Returns
    -------
    pretty_midi.PrettyMIDI

    Raises
    ------
    MidiError
        If the file is missing, empty, not a MIDI file, truncated, or holds no notes.
    """
    import pretty_midi

    p = _check_file(path, MidiError)
    with open(p, "rb") as f:
        head = f.read(4)
    if head != b"MThd":
        if head == b"RIFF":
            raise MidiError(p, "RIFF-wrapped MIDI (.rmi) is not supported; extract the SMF data first")
        raise MidiError(p, "not a Standard MIDI File (no 'MThd' header)")
    try:
        midi = pretty_midi.PrettyMIDI(str(p))
    except Exception as exc:  # mido/pretty_midi raise many types for corrupt data
        raise MidiError(p, f"cannot parse MIDI data ({_short(exc)})") from None
    n_notes = sum(len(inst.notes) for inst in midi.instruments)
    if n_notes == 0:
        raise MidiError(p, "contains no notes")
    end = midi.get_end_time()
    if not np.isfinite(end) or end > MAX_MIDI_SECONDS:
        raise MidiError(p, f"implausible duration ({end:.0f} s): corrupt tempo map?")
    return midi


def load_audio(path, sr: int = DEFAULT_SR, mono: bool = True) -> np.ndarray:
    """Decode an audio file (wav, flac, ogg, mp3, aiff) to float32 at ``sr`` Hz.

    Parameters
    ----------
    path : str or Path
    sr : int
        Target sample rate in Hz; the file is resampled (soxr, high quality) if it differs.
    mono : bool
        Average the channels into one.

    Returns
    -------
    y : np.ndarray, float32, shape (n_samples,) if mono else (n_channels, n_samples)

    Raises
    ------
    AudioError
        If the file is missing, empty, undecodable, silent-length or shorter than 0.25 s.
    """
    import soundfile as sf

    p = _check_file(path, AudioError)
    try:
        with sf.SoundFile(str(p)) as f:
            native_sr = f.samplerate
            y = f.read(dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(p, f"cannot decode audio ({_short(exc)})") from None
    if y.shape[0] == 0:
        raise AudioError(p, "no audio frames (zero-length or truncated file)")
    if y.shape[0] / native_sr < MIN_AUDIO_SECONDS:
        raise AudioError(p, f"too short ({y.shape[0] / native_sr:.3f} s; need ≥ {MIN_AUDIO_SECONDS} s)")
    if not np.all(np.isfinite(y)):
        raise AudioError(p, "contains NaN or infinite samples")
    y = y.mean(axis=1, keepdims=True) if mono else y
    if native_sr != sr:
        import soxr

        y = soxr.resample(y, native_sr, sr, quality="HQ")
    y = np.ascontiguousarray(y.T, dtype=np.float32)
    return y[0] if mono else y


def audio_duration(path) -> float:
    """Duration of an audio file in seconds, from its header (no decoding)."""
    import soundfile as sf

    p = _check_file(path, AudioError)
    try:
        info = sf.info(str(p))
    except Exception as exc:
        raise AudioError(p, f"cannot read audio header ({_short(exc)})") from None
    return info.frames / info.samplerate


def find_soundfont(soundfont=None) -> Path:
    """Return the soundfont to synthesize with (see the module docstring for the search order).

    Raises
    ------
    SoundfontError
        If an explicitly given soundfont (argument or $EARWORM_SOUNDFONT) is missing or not a
        soundfont, or if none is found at all.
    """
    for explicit in (soundfont, os.environ.get("EARWORM_SOUNDFONT")):
        if explicit:
            return _check_soundfont(Path(explicit))
    for candidate in SYSTEM_SOUNDFONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    try:
        import pretty_midi

        bundled = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
        if bundled.is_file():
            return bundled
    except ImportError:
        pass
    raise SoundfontError(None, "no soundfont found: install timgm6mb-soundfont or set EARWORM_SOUNDFONT")


def _check_soundfont(p: Path) -> Path:
    p = _check_file(p, SoundfontError)
    with open(p, "rb") as f:
        head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise SoundfontError(p, "not a SoundFont 2/3 file (no RIFF 'sfbk' header)")
    return p


FLUID_BLOCK_SAMPLES = 64  # FluidSynth renders (and applies events) in blocks of this many samples

# FluidSynth takes ~0.1-1 s to parse a large soundfont; keep one loaded synth per (soundfont, sr)
# per thread so repeated synthesis (batch jobs, tests) does not pay that again.
_synth_local = threading.local()


def _get_synth(soundfont: Path, sr: int):
    try:
        import fluidsynth
    except (ImportError, OSError) as exc:
        raise EarwormError(None, f"FluidSynth is not available ({_short(exc)}); install libfluidsynth3") from None
    cache = getattr(_synth_local, "synths", None)
    if cache is None:
        cache = _synth_local.synths = {}
    key = (str(soundfont), int(sr))
    if key not in cache:
        synth = fluidsynth.Synth(gain=0.25, samplerate=float(sr), channels=16)
        synth.setting("synth.reverb.active", 0)
        synth.setting("synth.chorus.active", 0)
        synth.setting("synth.polyphony", 512)
        # Load a preset's samples only when a channel selects it: a GM soundfont is 30-150 MB of
        # samples, a piece uses a few presets. The sound is the same (same samples).
        synth.setting("synth.dynamic-sample-loading", 1)
        sfid = synth.sfload(str(soundfont))
        if sfid == -1:
            synth.delete()
            raise SoundfontError(soundfont, "FluidSynth could not load this soundfont (corrupt or unsupported)")
        cache[key] = (synth, sfid)
    return cache[key]


def _assign_channels(instruments) -> list[int]:
    """MIDI channel per instrument: drums on 9, others on 0-8,10-15 (shared when more than 15)."""
    melodic = [c for c in range(16) if c != 9]
    channels, by_program = [], {}
    for inst in instruments:
        if inst.is_drum:
            channels.append(9)
            continue
        if inst.program not in by_program:
            by_program[inst.program] = melodic[len(by_program) % len(melodic)]
        channels.append(by_program[inst.program])
    return channels


def synthesize(midi, sr: int = DEFAULT_SR, soundfont=None, tail_s: float = 1.0, cancel=None) -> np.ndarray:
    """Render a MIDI to mono audio with FluidSynth, all instruments in one pass.

    Notes, control changes, pitch bends and program changes are played on the channel assigned
    to each instrument (drums on channel 10, bank 128). Times come from pretty_midi, so tempo and
    time-signature changes are honoured.

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI
    sr : int
        Output sample rate in Hz.
    soundfont : str or Path, optional
        A .sf2/.sf3 file; see :func:`find_soundfont` for the default.
    tail_s : float
        Seconds rendered after the last event, for release tails.
    cancel : callable() -> bool, optional
        Polled about every 10 s of rendered audio; when it returns True, ``InterruptedError`` is
        raised (the synth is reset and stays usable).

    Returns
    -------
    y : np.ndarray, float32, shape (n_samples,)
    """
    sf_path = find_soundfont(soundfont)
    synth, sfid = _get_synth(sf_path, sr)
    synth.system_reset()
    channels = _assign_channels(midi.instruments)
    # Events: (time, order, kind, channel, a, b); order puts note-offs first at equal times.
    events = []
    for inst, ch in zip(midi.instruments, channels):
        events.append((0.0, 0, "program", ch, 128 if inst.is_drum else 0, inst.program))
        for cc in inst.control_changes:
            events.append((cc.time, 2, "cc", ch, cc.number, cc.value))
        for pb in inst.pitch_bends:
            events.append((pb.time, 2, "bend", ch, pb.pitch, 0))
        for n in inst.notes:
            events.append((n.start, 3, "on", ch, n.pitch, n.velocity))
            events.append((n.end, 1, "off", ch, n.pitch, 0))
    events.sort(key=lambda e: (e[0], e[1]))
    end_time = max(e[0] for e in events) + tail_s
    n_total = int(np.ceil(end_time * sr))
    out = np.zeros(n_total, dtype=np.float32)
    pos, next_check = 0, 0
    for t, _, kind, ch, a, b in events:
        target = min(int(round(t * sr)), n_total)
        if target > pos:
            out[pos:target] = _render(synth, target - pos)
            pos = target
            if cancel is not None and pos >= next_check:
                next_check = pos + 10 * sr
                if cancel():
                    synth.system_reset()
                    _render(synth, sr // 2)  # a reset releases the voices: let them fade out, unheard
                    _end_on_block(synth, pos + sr // 2)
                    raise InterruptedError("synthesis cancelled")
        if kind == "on":
            synth.noteon(ch, a, b)
        elif kind == "off":
            synth.noteoff(ch, a)
        elif kind == "cc":
            synth.cc(ch, a, b)
        elif kind == "bend":
            synth.pitch_bend(ch, a)
        elif kind == "program":
            if synth.program_select(ch, sfid, a, b) == -1:
                synth.program_select(ch, sfid, a, 0)  # no such preset: fall back to the bank's first
    if n_total > pos:
        out[pos:] = _render(synth, n_total - pos)
    synth.system_reset()
    _end_on_block(synth, n_total)
    return out


def _end_on_block(synth, n_rendered: int) -> None:
    """Render (and drop) silence up to FluidSynth's next 64-sample block boundary.

    FluidSynth applies events at its internal block boundaries; a synth left mid-block would
    shift every event of the next rendering by up to 64 samples, so the same MIDI would not
    sound the same twice in one process.
    """
    rest = (-n_rendered) % FLUID_BLOCK_SAMPLES
    if rest:
        synth.get_samples(rest)


def _render(synth, n_samples: int) -> np.ndarray:
    stereo = synth.get_samples(n_samples).astype(np.float32)
    return (stereo[0::2] + stereo[1::2]) * (0.5 / 32768.0)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
