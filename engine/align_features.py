"""What the aligner compares of a recording and of a MIDI, computed in blocks and cached by content.

Task
----
:func:`recording_features` decodes a recording block by block (:func:`engine.media.audio_blocks`)
into :class:`engine.feature_stream.FeatureStream`; :func:`midi_side_features` does the same with the
MIDI rendered by FluidSynth block by block (:class:`engine.synth.StemRenderer`, each instrument
on its own stem) or computes them straight from the piano roll. Neither signal is ever held whole,
so a 20-minute pair needs a few tens of MB. Results are cached by file content + parameters
(:mod:`engine.cache`).

The synthesized stems of the last MIDI (:class:`MidiStems`, in memory or spilled to a temporary
file) let the aligner compute the features of a subset of the instruments — those the recording
contains — without rendering the MIDI again.

Conventions
-----------
``params`` is an :class:`engine.align.AlignParams`; hops in samples at ``params.sr``, windows as
long in seconds at every rate (:func:`engine.features.window_samples`). ``cancel()`` returning
True stops a synthesis (``InterruptedError``; nothing is cached).
"""
from __future__ import annotations

import concurrent.futures
import threading

import numpy as np

from engine import cache, features, media, synth
from engine.feature_stream import FeatureStream
from engine.streaming import SpillBuffer, to_int16

RECORDING_KIND, MIDI_KIND, MIDI_CHROMA_KIND = "recording/v5", "midi/v6", "midi_chroma/v5"
DISPLAY_KIND = "recording_display/v1"  # the display alone (for an alignment cached without it)
DISPLAY_KEYS = ("display_db", "display_pitches", "display_times_s", "duration_s")


def display_hop_length(params) -> int:
    """The display spectrogram's hop: 512 samples at 22 050 Hz (23 ms), the same seconds at ``params.sr``."""
    return features.window_samples(512, params.sr)


def content_hash(path, error_cls) -> str:
    """A file's content hash, after checking it is there (an error of ``error_cls`` naming it if not)."""
    media._check_file(path, error_cls)
    return cache.file_hash(path)


def _recording_energy(params) -> bool:
    """Whether the recording's ``chroma_energy`` comes from its chroma's STFT (no fine features)."""
    return params.find_instruments and not params.refine_onsets


def recording_key(audio_hash: str, params, want_display: bool) -> str:
    key_params = dict(params.feature_params(), display=want_display, fine=params.refine_onsets)
    if _recording_energy(params):
        key_params["energy"] = True
    return cache.cache_key(RECORDING_KIND, audio_hash, key_params)


def recording_features(audio_path, params, want_display: bool = False, on_display=None, between_blocks=None):
    """Chroma, the note-level features (with ``params.refine_onsets``; else the chroma's linear
    ``chroma_energy`` with ``params.find_instruments``) and the display spectrogram (if wanted) of a
    recording, cached by content. Returns (arrays, cache_hit).

    A missing or undecodable recording is an AudioError naming it. When they are computed (not
    cached), ``on_display((S_db, bin_midi_pitches, times_s), duration_s)`` is called as soon as
    the display spectrogram is made, before the onset features are finished, and
    ``between_blocks()`` after each decoded block (other work of the same thread fits in there).
    """
    from engine.errors import AudioError

    key = recording_key(content_hash(audio_path, AudioError), params, want_display)
    arrays = cache.load(key)
    if arrays is not None:
        return arrays, True
    stream = FeatureStream(params.sr, params.hop_length, params.onset_hop_length,
                           display_hop_length=display_hop_length(params) if want_display else None,
                           fine=params.refine_onsets, snap=params.refine_onsets, energy=_recording_energy(params),
                           expected_s=media.audio_duration(audio_path))
    arrays = _analyse_recording(audio_path, params, stream, between_blocks, on_display)
    cache.store(key, arrays)
    return arrays, False


def _analyse_recording(audio_path, params, stream: FeatureStream, between_blocks=None, on_display=None) -> dict:
    """Decode the recording block by block into ``stream``; its arrays and ``duration_s``."""
    for block in media.audio_blocks(audio_path, sr=params.sr):
        stream.push(block)
        if between_blocks is not None:
            between_blocks()
    shown = None if on_display is None else (lambda *display: on_display(display, stream.duration_s))
    arrays = stream.finish(on_display=shown)
    arrays["duration_s"] = np.array(stream.duration_s)
    return arrays


def _display_params(params) -> dict:
    return {"sr": params.sr, "display_hop": display_hop_length(params)}


def cached_display(audio_hash: str, params):
    """The display spectrogram and duration of a recording from the cache (nothing else is read),
    stored with its features or on its own (:func:`display_features`), or None."""
    return (cache.load(recording_key(audio_hash, params, True), names=DISPLAY_KEYS)
            or cache.load(cache.cache_key(DISPLAY_KIND, audio_hash, _display_params(params))))


def display_features(audio_path, params, between_blocks=None) -> dict:
    """Only the display spectrogram and duration of a recording (for an alignment cached without
    it: the recording's other features are not needed again), cached on its own."""
    from engine.errors import AudioError

    def compute():
        stream = FeatureStream(params.sr, params.hop_length, params.onset_hop_length,
                               display_hop_length=display_hop_length(params), chroma=False, fine=False, snap=False)
        return _analyse_recording(audio_path, params, stream, between_blocks)

    arrays, _ = cache.cached(DISPLAY_KIND, content_hash(audio_path, AudioError), _display_params(params), compute)
    return arrays


# The MIDI is synthesized to be analysed, not heard: linear sample interpolation (a quarter less
# FluidSynth work; on the alignment benchmark no different from its 4th order).
ANALYSIS_INTERPOLATION = synth.INTERP_LINEAR
STEMS_RAM_BYTES = 32 << 20  # a couple of minutes of stems stay in memory; longer pieces' go to a temporary file


class MidiStems:
    """The synthesized stems of a MIDI at 16-bit precision and which instrument sounds on which
    stem: the features of any union of stems without rendering again. In memory when they fit in
    :data:`STEMS_RAM_BYTES`, else in a temporary file."""

    def __init__(self, stem_of, expected_samples=None):
        self.stem_of = list(stem_of)
        width = max(self.stem_of) + 1
        self.in_memory = expected_samples is None or expected_samples * width * 2 <= STEMS_RAM_BYTES
        self._blocks = []
        self.buffer = None if self.in_memory else SpillBuffer(width, np.int16, ram_bytes=0)

    def append(self, stems16) -> None:
        """One block of :func:`engine.streaming.to_int16` stems, shape (n_stems, n) (kept as it is, not copied)."""
        if self.in_memory:
            self._blocks.append(stems16)
        else:
            self.buffer.append(stems16.T)

    def can_mix(self, instruments) -> bool:
        """Whether exactly ``instruments`` (indices) make up whole stems."""
        return synth.stems_separate(self.stem_of, instruments)

    def mixes(self, instruments):
        """Blocks of the mix of ``instruments``' stems (float32)."""
        rows = sorted({self.stem_of[k] for k in instruments})
        scale = np.float32(1.0 / 32768.0)
        if self.in_memory:
            for block in self._blocks:
                yield block[rows].sum(axis=0, dtype=np.float32) * scale
            return
        for block in self.buffer.blocks():
            yield block[:, rows].sum(axis=1, dtype=np.float32) * scale

    def close(self) -> None:
        self._blocks = []
        if self.buffer is not None:
            self.buffer.close()


def midi_key_params(params, instruments=None) -> dict:
    """What the MIDI's features depend on (with the MIDI's content hash: their cache key)."""
    key_params = dict(params.feature_params(), mode=params.midi_features, fine=params.refine_onsets,
                      instruments=None if instruments is None else [int(k) for k in instruments])
    if params.midi_features == "synth":
        key_params["soundfont"] = str(media.find_soundfont(params.soundfont))
    return key_params


class MidiAnalysis:
    """The features of a rendered MIDI from its stems, block by block, and the stems kept (if asked).

    When the stems are kept (more than one), the note-level features wait (``fine`` False): the
    aligner first learns which instruments the recording contains, then computes them once, of
    those instruments (:func:`midi_side_features` with ``stems``). The features are those of the
    stems at 16-bit precision (:func:`engine.streaming.to_int16`, FluidSynth's own output):
    whatever mix of them is analysed, release tails below it are silence, as in a decoded
    recording (on the alignment benchmark the float tails cost ~1.5 ms of mean error: quiet parts
    left alone matched noise).
    """

    def __init__(self, params, stem_of, expected_s: float, keep_stems: bool, chroma: bool = True, fine=None):
        self.stems = MidiStems(stem_of, expected_s * params.sr) if keep_stems and max(stem_of) > 0 else None
        fine = params.refine_onsets and self.stems is None if fine is None else fine
        self.stream = FeatureStream(params.sr, params.hop_length, params.onset_hop_length, chroma=chroma, fine=fine,
                                    snap=False, expected_s=expected_s)
        self.complete = fine == params.refine_onsets and chroma  # everything the aligner compares

    def push(self, block) -> None:
        """One block of stems, shape (n_stems, n): float (rounded to 16 bits here) or int16 already."""
        block16 = block if block.dtype == np.int16 else to_int16(block)
        self.stream.push(block16.sum(axis=0, dtype=np.float32) * np.float32(1.0 / 32768.0))
        if self.stems is not None:
            self.stems.append(block16)

    def push_mix(self, samples) -> None:
        """A block of a mix of kept stems (:meth:`MidiStems.mixes`: on the 16-bit grid already)."""
        self.stream.push(samples)

    def finish(self) -> dict:
        arrays = self.stream.finish()
        arrays.pop("chroma_energy", None)  # the MIDI's is never used
        return arrays


def midi_side_features(midi, midi_path, params, instruments=None, cancel=None, stems=None, keep_stems=False,
                       chroma=None):
    """Everything the alignment compares of the MIDI, cached by content. Returns (arrays, cache_hit, stems).

    ``arrays``: ``chroma`` at ``hop_length`` and, with ``params.refine_onsets``, ``fine_chroma``
    and ``onset_strength`` at ``onset_hop_length`` (as :func:`engine.features.fine_features`), of
    the synthesized MIDI or straight from its piano roll. ``instruments``: indices of the
    instruments to keep (``midi`` is then expected to hold only those, in order; part of the cache
    key; None: all). ``stems``: the :class:`MidiStems` of the whole MIDI, mixed instead of rendering
    again when ``instruments`` make up whole stems; ``chroma``: the whole MIDI's chroma, already
    made (with ``instruments`` None, only the note-level features are then computed).
    ``keep_stems``: return the stems of this rendering (None when nothing was rendered or there is
    one stem).
    """
    if params.midi_features not in ("pianoroll", "synth"):
        raise ValueError(f"unknown midi_features {params.midi_features!r}")
    key = None
    if midi_path is not None:
        key = cache.cache_key(MIDI_KIND, cache.file_hash(midi_path), midi_key_params(params, instruments))
        arrays = cache.load(key)
        if arrays is not None:
            return arrays, True, None
    kept = None
    if params.midi_features == "pianoroll":
        n_fft = features.window_samples(4096, params.sr)
        arrays = {"chroma": features.midi_chroma(midi, params.sr, params.hop_length, n_fft=n_fft)}
        if params.refine_onsets:
            arrays.update(features.midi_fine_features(midi, params.sr, params.onset_hop_length,
                                                      n_fft=features.window_samples(2048, params.sr)))
    elif stems is not None and stems.can_mix(range(len(stems.stem_of)) if instruments is None else instruments):
        mixed = range(len(stems.stem_of)) if instruments is None else instruments
        analysis = MidiAnalysis(params, [0], midi.get_end_time() + 1.0, keep_stems=False,
                                chroma=chroma is None or instruments is not None, fine=params.refine_onsets)
        for block in stems.mixes(mixed):
            analysis.push_mix(block)
        arrays = analysis.finish()
        if "chroma" not in arrays:
            arrays["chroma"] = chroma
    else:
        renderer = synth.StemRenderer(midi, params.sr, params.soundfont, cancel=cancel, split=keep_stems,
                                      interpolation=ANALYSIS_INTERPOLATION)
        analysis = MidiAnalysis(params, renderer.stem_of, midi.get_end_time() + 1.0, keep_stems)
        for block in renderer.blocks():
            analysis.push(block)
        arrays, kept = analysis.finish(), analysis.stems
        if not analysis.complete:  # the note-level features wait for the instruments to be known
            return arrays, False, kept
    if key is not None:
        cache.store(key, arrays)
    return arrays, False, kept


def midi_chroma_features(midi, midi_path, params, cancel=None):
    """Chroma of the MIDI (synthesized or from the piano roll), cached by content. Returns (chroma, cache_hit).

    ``cancel()`` returning True stops a synthesis early (``InterruptedError``; nothing is cached).
    """
    if params.midi_features not in ("pianoroll", "synth"):
        raise ValueError(f"unknown midi_features {params.midi_features!r}")
    key_params = dict(sr=params.sr, hop_length=params.hop_length, mode=params.midi_features)
    if params.midi_features == "synth":
        key_params["soundfont"] = str(media.find_soundfont(params.soundfont))

    def compute():
        if params.midi_features == "synth":
            stream = FeatureStream(params.sr, params.hop_length, params.onset_hop_length, fine=False, snap=False)
            renderer = synth.StemRenderer(midi, params.sr, params.soundfont, cancel=cancel, split=False,
                                          interpolation=ANALYSIS_INTERPOLATION)
            for block in renderer.blocks():
                stream.push(block[0])
            return {"chroma": stream.finish()["chroma"]}
        n_fft = features.window_samples(4096, params.sr)
        return {"chroma": features.midi_chroma(midi, params.sr, params.hop_length, n_fft=n_fft)}

    if midi_path is None:
        return compute()["chroma"], False
    arrays, hit = cache.cached(MIDI_CHROMA_KIND, cache.file_hash(midi_path), key_params, compute)
    return arrays["chroma"], hit


_midi_side_lock = threading.Lock()
_midi_side_pool = None


def midi_side_executor() -> concurrent.futures.ThreadPoolExecutor:
    """One long-lived helper thread for the MIDI side of :func:`engine.align.align`; long-lived so
    that its FluidSynth synths (cached per thread by :mod:`engine.media`) are loaded once per process."""
    global _midi_side_pool
    with _midi_side_lock:
        if _midi_side_pool is None:
            _midi_side_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="earworm-midi-side")
        return _midi_side_pool
