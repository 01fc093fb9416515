"""The MIDI side of an alignment on two threads: FluidSynth renders on a helper thread, the
calling thread turns the rendered stems into features in between its own work on the recording.

Task
----
Balance the two cores of a cold alignment: the helper thread parses the MIDI and renders it
(:class:`engine.synth.StemRenderer`; FluidSynth runs without the GIL) while the calling thread
decodes and analyses the recording block by block (:func:`engine.align_features.recording_features`).
When the MIDI's note-level features wait for the instruments to be known (stems kept: more than
one instrument), the rest of the MIDI side is light and the helper does it too; otherwise it hands
the stems over in blocks through a bounded queue and the calling thread computes their features
(:class:`engine.align_features.MidiAnalysis`) between its own blocks (:meth:`MidiSide.poll`).
When the MIDI's features are cached, or come from the piano roll, the helper sends them whole.

Conventions
-----------
Errors on the helper thread (a bad MIDI, a bad soundfont) are raised on the calling thread when
it waits for what failed (:meth:`MidiSide.wait_for_midi`, :meth:`MidiSide.wait`): after its own
work on the recording, so a window shows the recording before the failure, as it always did.
:meth:`MidiSide.stop` ends the helper's work (``cancel`` too).
"""
from __future__ import annotations

import queue
import threading
import time

from engine import cache, media, synth
from engine.align_features import (ANALYSIS_INTERPOLATION, MIDI_KIND, MidiAnalysis, midi_key_params,
                                   midi_side_executor, midi_side_features)


class MidiSide:
    """The MIDI side of one alignment, started at once on the helper thread.

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI or None
        The MIDI, or None to parse ``midi_path`` on the helper thread.
    midi_path : str or None
        Enables caching of its features.
    params : engine.align.AlignParams
    keep_stems : bool
        Keep the rendered stems (``stems``) for re-mixing subsets of the instruments.
    cancel : callable() -> bool, optional

    Attributes, once :meth:`wait` returned: ``midi``, ``arrays``, ``hit``, ``stems`` (or None),
    ``timings`` (the helper's wall and CPU time).
    """

    def __init__(self, midi, midi_path, params, keep_stems: bool, cancel=None):
        self.params, self.keep_stems = params, keep_stems
        self.midi = midi
        self.arrays = self.hit = self.stems = None
        self.timings = {}
        self._queue = queue.Queue(maxsize=16)  # blocks of a few seconds of stems: a few MB at most
        self._stopped = threading.Event()
        self._analysis = self._key = self._error = None
        self._done = False
        cancelled = lambda: self._stopped.is_set() or (cancel is not None and cancel())  # noqa: E731
        midi_side_executor().submit(self._helper, midi, midi_path, cancelled)

    # -- the helper thread -----------------------------------------------------------------------
    def _put(self, item) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._stopped.is_set():
                    raise InterruptedError("the MIDI side was stopped") from None

    def _helper(self, midi, midi_path, cancelled) -> None:
        t, cpu = time.perf_counter(), time.thread_time()
        params = self.params
        try:
            if midi is None:
                midi = media.load_midi(midi_path)
                self._put(("midi", midi))
            key = None
            if midi_path is not None:
                key = cache.cache_key(MIDI_KIND, cache.file_hash(midi_path), midi_key_params(params))
                arrays = cache.load(key)
                if arrays is not None:
                    self._put(("features", arrays, True))
                    return
            if params.midi_features != "synth":
                arrays, hit, _ = midi_side_features(midi, midi_path, params, cancel=cancelled)
                self._put(("features", arrays, hit))
                return
            renderer = synth.StemRenderer(midi, params.sr, params.soundfont, cancel=cancelled, split=self.keep_stems,
                                          interpolation=ANALYSIS_INTERPOLATION)
            expected_s = midi.get_end_time() + 1.0
            if self.keep_stems and renderer.n_stems > 1:
                # The note-level features wait for the instruments to be known: what is left of the
                # MIDI side (chroma, keeping the stems) is light enough to do here, beside the
                # recording's analysis on the calling thread.
                analysis = MidiAnalysis(params, renderer.stem_of, expected_s, self.keep_stems)
                for block in renderer.blocks():
                    analysis.push(block)
                self._put(("analysed", analysis.finish(), analysis.stems, time.perf_counter() - t,
                           time.thread_time() - cpu))
                return
            self._put(("stems", renderer.stem_of, key))
            for block in renderer.blocks():
                self._put(("block", block))
            self._put(("end", time.perf_counter() - t, time.thread_time() - cpu))
        except BaseException as exc:  # noqa: BLE001  (handed to the calling thread)
            try:
                self._put(("error", exc))
            except InterruptedError:
                pass

    # -- the calling thread ----------------------------------------------------------------------
    def poll(self, wait_s: float = 0.0) -> None:
        """Take what the helper has sent so far (waiting up to ``wait_s`` for the first item)."""
        while not self._done:
            try:
                item = self._queue.get(timeout=wait_s) if wait_s > 0 else self._queue.get_nowait()
            except queue.Empty:
                return
            self._take(item)
            wait_s = 0.0

    def _take(self, item) -> None:
        kind = item[0]
        if kind == "midi":
            self.midi = item[1]
        elif kind == "features":
            self.arrays, self.hit, self._done = item[1], item[2], True
        elif kind == "stems":
            _, stem_of, self._key = item
            self._analysis = MidiAnalysis(self.params, stem_of, self.midi.get_end_time() + 1.0, self.keep_stems)
        elif kind == "block":
            self._analysis.push(item[1])
        elif kind == "end":
            self.timings = {"midi_render_s": item[1], "midi_render_cpu_s": item[2]}
            self.arrays, self.hit, self.stems = self._analysis.finish(), False, self._analysis.stems
            self._done = True
            if self._key is not None and self._analysis.complete:  # else cached once completed
                cache.store(self._key, self.arrays)
        elif kind == "analysed":
            _, self.arrays, self.stems, wall, cpu = item
            self.hit, self._done = False, True
            self.timings = {"midi_render_s": wall, "midi_render_cpu_s": cpu}
        elif kind == "error":  # raised when the caller waits for what failed (after its own work)
            self._error, self._done = item[1], True

    def wait_for_midi(self, checkpoint) -> None:
        """Until the MIDI is parsed (``checkpoint()`` between waits: it may raise to cancel); the
        helper's error if it failed before."""
        while self.midi is None:
            if self._error is not None:
                raise self._error
            checkpoint()
            self.poll(wait_s=0.1)

    def wait(self, checkpoint) -> None:
        """Until the MIDI's features are done (``checkpoint()`` between waits: it may raise to
        cancel); the helper's error if it failed."""
        while not self._done:
            checkpoint()
            self.poll(wait_s=0.1)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """End the helper's work (after an error or cancel on the calling thread)."""
        self._stopped.set()
