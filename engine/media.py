"""Loading MIDI and audio, validating them; soundfont discovery (synthesis: :mod:`engine.synth`).

Conventions
-----------
- Audio is mono float32 in [-1, 1] at the sample rate the caller asks for (``sr``, Hz);
  the default ``sr=22050`` is the alignment recipe's rate.
- MIDI is a ``pretty_midi.PrettyMIDI``; times are seconds in the MIDI's own timeline.
- Every failure on bad input raises a subclass of :class:`engine.errors.EarwormError` naming the
  file and the reason.

Soundfont discovery (first hit wins): the ``soundfont`` argument → ``$EARWORM_SOUNDFONT`` →
Debian's system GM soundfonts → the TimGM6mb.sf2 bundled with pretty_midi. ``synthesize``,
``StemRenderer`` and the synthesis constants are :mod:`engine.synth`'s, also reachable here.
Recordings decode whole (:func:`load_audio`) or block by block (:func:`audio_blocks`).
"""
from __future__ import annotations

import bisect
import os
import re
from pathlib import Path

import numpy as np

from engine.errors import AudioError, MidiError, SoundfontError

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


def load_midi(path) -> "pretty_midi.PrettyMIDI":  # noqa: F821  (imported when first needed)
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
    p = _check_file(path, MidiError)
    with open(p, "rb") as f:
        head = f.read(4)
    if head != b"MThd":
        if head == b"RIFF":
            raise MidiError(p, "RIFF-wrapped MIDI (.rmi) is not supported; extract the SMF data first")
        raise MidiError(p, "not a Standard MIDI File (no 'MThd' header)")
    try:
        midi = _lean_pretty_midi_class()(str(p))
    except Exception as exc:  # mido/pretty_midi raise many types for corrupt data
        raise MidiError(p, f"cannot parse MIDI data ({_short(exc)})") from None
    n_notes = sum(len(inst.notes) for inst in midi.instruments)
    if n_notes == 0:
        raise MidiError(p, "contains no notes")
    end = midi.get_end_time()
    if not np.isfinite(end) or end > MAX_MIDI_SECONDS:
        raise MidiError(p, f"implausible duration ({end:.0f} s): corrupt tempo map?")
    return midi


class _TickTimes:
    """pretty_midi's tick → seconds table (``PrettyMIDI.__tick_to_time``), worked out per tick when
    asked instead of stored for every tick.

    pretty_midi allocates one float64 per tick of the file: a MIDI written at 10 080 ticks per
    beat (music21 does) costs 10 MB and ~10 ms per minute of music for a table that loading reads
    a few thousand times. The times are the same numbers (the same arithmetic: each tempo
    segment's start time plus seconds-per-tick × ticks into it); anything that needs the whole
    table (``time_to_tick``, writing) gets it made then.
    """

    def __init__(self, tick_scales, n_ticks: int):
        self._starts, self._scales, self._offsets = [], [], []
        end_time = 0.0
        for (start, scale), (end, _) in zip(tick_scales[:-1], tick_scales[1:]):
            self._starts.append(start)
            self._scales.append(scale)
            self._offsets.append(end_time)
            end_time = end_time + scale * (end - start)
        self._starts.append(tick_scales[-1][0])
        self._scales.append(tick_scales[-1][1])
        self._offsets.append(end_time)
        self._n = int(n_ticks)
        self._table = None

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, tick):
        if isinstance(tick, (int, np.integer)):
            tick = int(tick) + (self._n if tick < 0 else 0)
            if not 0 <= tick < self._n:
                raise IndexError("tick out of range")
            k = bisect.bisect_right(self._starts, tick) - 1
            return np.float64(self._offsets[k] + self._scales[k] * (tick - self._starts[k]))
        return self.__array__()[tick]

    def __array__(self, dtype=None, copy=None):
        if self._table is None:
            table = np.zeros(self._n)
            for k, (start, scale, offset) in enumerate(zip(self._starts, self._scales, self._offsets)):
                stop = self._starts[k + 1] + 1 if k + 1 < len(self._starts) else self._n
                table[start:stop] = offset + scale * np.arange(min(stop, self._n) - start)
            self._table = table
        return self._table if dtype is None else self._table.astype(dtype)


_LEAN_CLASS = None


def _lean_pretty_midi_class():
    """``pretty_midi.PrettyMIDI`` keeping its tick → time table as :class:`_TickTimes`."""
    global _LEAN_CLASS
    if _LEAN_CLASS is None:
        import pretty_midi

        class LeanPrettyMIDI(pretty_midi.PrettyMIDI):
            def _update_tick_to_time(self, max_tick):
                max_scale_tick = max(ts[0] for ts in self._tick_scales)
                max_tick = max_tick if max_tick > max_scale_tick else max_scale_tick
                self._PrettyMIDI__tick_to_time = _TickTimes(self._tick_scales, max_tick + 1)

        # picklable by name, engine.media.LeanPrettyMIDI (see the module's __getattr__)
        LeanPrettyMIDI.__module__, LeanPrettyMIDI.__qualname__ = __name__, "LeanPrettyMIDI"
        _LEAN_CLASS = LeanPrettyMIDI
    return _LEAN_CLASS


_SYNTH_NAMES = ("synthesize", "StemRenderer", "INTERP_LINEAR", "INTERP_4TH_ORDER", "FLUID_BLOCK_SAMPLES")


def __getattr__(name):
    if name == "LeanPrettyMIDI":  # made on first use: pretty_midi is imported only when needed
        return _lean_pretty_midi_class()
    if name in _SYNTH_NAMES:  # synthesis lives in engine.synth (imported when first used)
        from engine import synth

        return getattr(synth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        raise AudioError(p, f"cannot decode audio ({_audio_reason(exc)})") from None
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


def audio_blocks(path, sr: int = DEFAULT_SR, block_s: float = 4.0):
    """Decode an audio file block by block: mono float32 at ``sr`` Hz, never the whole signal at once.

    The same validation as :func:`load_audio` (an :class:`AudioError` naming the file: missing,
    empty, undecodable, NaN samples, shorter than 0.25 s). Resampling (soxr, high quality) keeps its
    state from block to block.

    Yields
    ------
    np.ndarray, float32, shape (n,)
    """
    import soundfile as sf

    class SequentialSoundFile(sf.SoundFile):
        # soundfile seeks to where it is after every read of a seekable file; libsndfile answers
        # a seek in an mp3 by re-seeking its decoder, whose next frame then lacks its bit
        # reservoir (mpg123 prints errors, the samples differ). Read on, never seek.
        def seekable(self):
            return False

    p = _check_file(path, AudioError)
    try:
        f = SequentialSoundFile(str(p))
    except Exception as exc:
        raise AudioError(p, f"cannot decode audio ({_audio_reason(exc)})") from None
    with f:
        native_sr = f.samplerate
        if 0 < f.frames < MIN_AUDIO_SECONDS * native_sr:  # the header says so: before any work
            raise AudioError(p, f"too short ({f.frames / native_sr:.3f} s; need ≥ {MIN_AUDIO_SECONDS} s)")
        resampler = None
        if native_sr != sr:
            import soxr

            resampler = soxr.ResampleStream(native_sr, sr, 1, dtype="float32", quality="HQ")
        n_read, block = 0, max(1, int(block_s * native_sr))
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError(p, f"cannot decode audio ({_audio_reason(exc)})") from None
            last = len(data) < block
            if len(data):
                if not np.all(np.isfinite(data)):
                    raise AudioError(p, "contains NaN or infinite samples")
                n_read += len(data)
            elif n_read == 0:
                raise AudioError(p, "no audio frames (zero-length or truncated file)")
            if last and n_read < MIN_AUDIO_SECONDS * native_sr:
                raise AudioError(p, f"too short ({n_read / native_sr:.3f} s; need ≥ {MIN_AUDIO_SECONDS} s)")
            mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
            if resampler is not None:
                mono = resampler.resample_chunk(np.ascontiguousarray(mono), last=last)
            if len(mono):
                yield np.ascontiguousarray(mono, dtype=np.float32)
            if last:
                return


def audio_duration(path) -> float:
    """Duration of an audio file in seconds, from its header (no decoding)."""
    import soundfile as sf

    p = _check_file(path, AudioError)
    try:
        info = sf.info(str(p))
    except Exception as exc:
        raise AudioError(p, f"cannot read audio header ({_audio_reason(exc)})") from None
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


# General MIDI families, for naming unnamed instruments ("Piano", "Strings", ...).
_GM_FAMILIES = ("Piano", "Chromatic percussion", "Organ", "Guitar", "Bass", "Strings", "Ensemble", "Brass",
                "Reed", "Pipe", "Synth lead", "Synth pad", "Synth effects", "Ethnic", "Percussive",
                "Sound effects")


def instrument_label(inst) -> str:
    """What to call a pretty_midi instrument: its name, else its General MIDI family and program."""
    if inst.name.strip():
        return inst.name.strip()
    if inst.is_drum:
        return "Drums"
    return f"{_GM_FAMILIES[int(inst.program) // 8 % 16]} (program {int(inst.program) + 1})"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _audio_reason(exc: BaseException) -> str:
    """libsndfile's reason for refusing a file, without the path (the error names it already).

    libsndfile says "File does not exist or is not a regular file" of any file it cannot open,
    also of one that exists in a format it does not know; the callers have checked that the file
    exists, so that is what it means here.
    """
    text = re.sub(r"^Error opening '.*?': ", "", _short(exc))
    if "does not exist or is not a regular file" in text:
        return "not in a format libsndfile can read, such as WAV, FLAC, Ogg or MP3"
    return text
