"""The alignment features of a signal that arrives in blocks (decoded or synthesized).

Task
----
:class:`FeatureStream` computes what :func:`engine.features.analyse_recording` computes — chroma
at the DTW hop, fine chroma and vibrato-robust onsets at the fine hop, the sharp onsets of the
last snap, optionally the display spectrogram — from samples pushed block by block, so that the
signal is never held whole (a 20-minute recording at 22 050 Hz is 110 MB of float32; its features
a few MB). The results are those of the whole-signal functions in :mod:`engine.features`.

Conventions
-----------
As :mod:`engine.features`. Windows are given as at 22 050 Hz (4096 points for the chroma and the
display, 2048 for the fine features, half that for the sharp onsets) and scaled to ``sr``: the
same seconds at any rate. What needs the whole signal's maximum (the chroma's log compression, the
onsets' gain) is finished in :meth:`FeatureStream.finish`; the onsets' pitch energies wait for
it in a :class:`engine.streaming.SpillBuffer` (on disk beyond a few minutes).
"""
from __future__ import annotations

import numpy as np

from engine import features as F
from engine import streaming
from engine.streaming import PitchEnergyStream, SpillBuffer


def _spill(width, expected_rows):
    """A spill buffer straight to disk when ``expected_rows`` would not fit in memory anyway."""
    too_big = expected_rows is not None and expected_rows * width * 4 > streaming.SPILL_RAM_BYTES
    return SpillBuffer(width, ram_bytes=0 if too_big else None)


class FeatureStream:
    """Push mono float32 blocks with :meth:`push`; :meth:`finish` returns the features.

    Parameters
    ----------
    sr : int
    hop_length : int
        The chroma's hop (the DTW frames).
    onset_hop_length : int
        The fine features' hop, a divisor of ``hop_length``.
    display_hop_length : int, optional
        Also the display spectrogram at this hop (the chroma is folded from the same STFT when
        ``hop_length`` is a multiple of it).
    chroma, fine, snap : bool
        Which features: ``chroma``; ``fine_chroma``, ``onset_strength``, ``chroma_energy``;
        ``snap_onset_strength``.
    energy : bool
        Without ``fine``: ``chroma_energy`` all the same, the chroma's linear pitch-class
        magnitudes (what :func:`engine.refine.instrument_presence` fits).
    n_fft, n_fft_onset : int, optional
        The chroma's and the fine features' windows at ``sr`` (default: 4096 and 2048 points at
        22 050 Hz, scaled); the sharp onsets use half of ``n_fft_onset``.
    expected_s : float, optional
        About how long the signal is: what waits for :meth:`finish` goes to a temporary file from
        the start when it would not fit in :data:`engine.streaming.SPILL_RAM_BYTES`.
    """

    def __init__(self, sr, hop_length, onset_hop_length, display_hop_length=None, chroma=True, fine=True, snap=True,
                 n_fft=None, n_fft_onset=None, expected_s=None, energy=False):
        self.sr, self.hop_length, self.onset_hop_length = int(sr), int(hop_length), int(onset_hop_length)
        n_fft = n_fft or F.window_samples(4096, sr)
        n_fft_onset = n_fft_onset or F.window_samples(2048, sr)
        lo, hi = F.DISPLAY_MIDI_LO, F.DISPLAY_MIDI_HI
        self._display_hop = display_hop_length
        shared = bool(display_hop_length) and hop_length % display_hop_length == 0
        self._chroma_step = hop_length // display_hop_length if shared else 1
        self._chroma = (PitchEnergyStream(sr, display_hop_length if shared else hop_length, n_fft, lo, hi, 3)
                        if chroma or shared else None)
        self._want_chroma = chroma
        self._energy = energy and chroma and not fine
        chroma_frames = 0 if expected_s is None else int(expected_s * sr / hop_length) + 2
        fine_frames = 0 if expected_s is None else int(expected_s * sr / onset_hop_length) + 2
        self._chroma_rows, self._chroma_seen = (F.Rows(12, chroma_frames) if chroma else None), 0
        self._display = None
        if display_hop_length:
            self._display = self._chroma if shared else PitchEnergyStream(sr, display_hop_length, n_fft, lo, hi, 3)
        self._display_rows = []
        self._fine = (PitchEnergyStream(sr, onset_hop_length, n_fft_onset, F.FINE_MIDI_LO, F.FINE_MIDI_HI,
                                        F.FINE_BINS_PER_SEMITONE) if fine else None)
        self._fine_rows = F.Rows(12, fine_frames) if fine else None
        frames = fine_frames or None
        self._fine_spill = _spill(self._fine.n_bins - F.ONSET_FIRST_BIN, frames) if fine else None
        self._snap = (PitchEnergyStream(sr, onset_hop_length, n_fft_onset // 2, F.SNAP_MIDI_LO, F.SNAP_MIDI_HI)
                      if snap else None)
        self._snap_spill = _spill(self._snap.n_bins, frames) if snap else None
        self.n_samples = 0

    def push(self, samples) -> None:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.n_samples += len(samples)
        self._take(lambda stream: stream.push(samples))

    def _take(self, step) -> None:
        if self._chroma is not None:
            self._take_chroma(step(self._chroma))
        if self._display is not None and self._display is not self._chroma:
            self._display_rows.append(step(self._display))
        if self._fine is not None:
            E = step(self._fine)
            self._fine_rows.append(F._fold_chroma(E, F.FINE_MIDI_LO, F.FINE_BINS_PER_SEMITONE))
            self._fine_spill.append(E[:, F.ONSET_FIRST_BIN:])
        if self._snap is not None:
            self._snap_spill.append(step(self._snap))

    def _take_chroma(self, E) -> None:
        if self._display is self._chroma:
            self._display_rows.append(E)
        if self._want_chroma:
            first = (-self._chroma_seen) % self._chroma_step  # this block's first frame on the chroma's hop
            self._chroma_rows.append(F._fold_chroma(E[first::self._chroma_step], F.DISPLAY_MIDI_LO, 3))
        self._chroma_seen += len(E)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sr

    def finish(self, on_display=None) -> dict:
        """The features (see :func:`engine.features.analyse_recording` for the keys).

        ``on_display(display_db, display_pitches, display_times_s)`` is called as soon as the
        display is made, before the onsets are finished.
        """
        self._take(lambda stream: stream.finish())
        out = {}
        if self._want_chroma:
            C = self._chroma_rows.array()
            out["chroma"] = F._finish_chroma(C)
            if self._energy:
                out["chroma_energy"] = C  # float32 already; _finish_chroma leaves it as it is
        if self._display is not None:
            E = np.concatenate(self._display_rows)
            self._display_rows = []
            display = F._display_from_energy(E, self.sr, self._display_hop, 3, in_place=True)
            del E
            out.update(zip(("display_db", "display_pitches", "display_times_s"), display))
            if on_display is not None:
                on_display(*display)
        fps = self.sr / self.onset_hop_length
        if self._fine is not None:
            C = self._fine_rows.array()
            out["fine_chroma"] = F._finish_chroma(C)
            out["chroma_energy"] = F.pooled_energy(C, self.hop_length // self.onset_hop_length)
            del C
            out["onset_strength"] = F.superflux_onsets(self._fine_spill.blocks(), self._fine_spill.max, fps,
                                                       n_rows=self._fine_spill.n_rows)
            self._fine_spill.close()
        if self._snap is not None:
            out["snap_onset_strength"] = F.sharp_onsets(self._snap_spill.blocks(), self._snap_spill.max, fps,
                                                        n_rows=self._snap_spill.n_rows)
            self._snap_spill.close()
        return out
