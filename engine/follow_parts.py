"""Which of the MIDI's parts the performance plays, for the online score follower.

Task
----
A performance may leave some of the MIDI's parts out: one player of a quartet practising with the
full score, a recording without the voice, a band missing its bass. Reference frames made from
every part then match the live frames poorly (a chorale's alto and tenor alone against all four
voices), and the follower drifts or loses its place. The offline aligner finds the parts a
recording lacks and aligns again without them (:func:`engine.refine.instrument_presence`); this
module does the same while following:

- :class:`ReferenceParts` — each part's *linear* energies in the reference, frame by frame (the
  chroma energies and the onset window's semitone magnitudes of :mod:`engine.follow_features`,
  before the running-level part), so the features of any subset of parts are made in one pass of
  :meth:`engine.follow_features.StreamingFeatures.finish_energies` over their sums — tens of
  milliseconds for a whole piece, no second rendering;
- :class:`PartPresence` — along the follower's path, the live chroma energies are fitted
  (non-negative least squares on normal equations summed frame by frame, as the offline test) as
  a mix of the parts' chroma energies at the matched reference frames plus a constant (noise,
  reverb). A part's fitted gain is its loudness in the performance; below ``threshold`` × the
  loudest part's, the part is not being played. A part is judged only once it has sounded in the
  reference for ``min_heard_s`` along the path (a late entry is not a missing part);
- :class:`PartsSearch` — the presence fit needs the path to be right, and a performance that
  lacks parts from its first bar can pull the path off, or stall it, before any part has been
  heard long enough to judge (the wrong bars then make the wrong parts look missing). So after
  each of the follower's global searches (:mod:`engine.follow_relocate`) that moves nothing, the
  same search runs against the MIDI without one part and (up to five parts) without two, one set
  of parts per live frame; a set that explains the performance clearly better elsewhere moves
  the follower there, and one that explains it much better where the follower stands replaces
  the reference there, each with those parts.

Conventions
-----------
- Parts are the stems of :class:`engine.synth.StemRenderer` (one per instrument when at most 15
  pitched instruments; instruments sharing a stem cannot be told apart), or for the piano-roll
  reference the instruments; ``part_of[k]`` is instrument ``k``'s part.
- Pieces with one part, or more than :data:`MAX_PARTS`, get no parts (the memory grows with
  parts × frames; the follower then uses every part all along).
- Energies are stored as float16 divided by each part's peak (a 4-minute quartet: ~7 MB).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from engine.follow_features import StreamFeatureParams, StreamingFeatures
from engine.refine import mix_gains

MAX_PARTS = 8
ACTIVE_FRACTION = 0.1  # a part sounds in a reference frame when its chroma energy is this share of its peak


@dataclass
class ReferenceParts:
    """Per-part linear energies of a follower's reference (see the module docstring).

    Attributes
    ----------
    chroma, onset : np.ndarray, float16, shapes (n_parts, n_frames, 12) and (n_parts, n_frames, 72)
        Each part's chroma energies and onset-window semitone magnitudes over its peak.
    chroma_peak, onset_peak : np.ndarray, float32, shape (n_parts,)
        The peaks they were divided by.
    part_of : np.ndarray of int, shape (n_instruments,)
    """

    chroma: np.ndarray
    onset: np.ndarray
    chroma_peak: np.ndarray
    onset_peak: np.ndarray
    part_of: np.ndarray

    @classmethod
    def from_energies(cls, chroma, onset, part_of) -> "ReferenceParts":
        """From float energies, shapes (n_parts, n_frames, 12) and (n_parts, n_frames, 72)."""
        chroma_peak = np.maximum(np.asarray(chroma).max(axis=(1, 2)), 1e-12).astype(np.float32)
        onset_peak = np.maximum(np.asarray(onset).max(axis=(1, 2)), 1e-12).astype(np.float32)
        return cls((chroma / chroma_peak[:, None, None]).astype(np.float16),
                   (onset / onset_peak[:, None, None]).astype(np.float16),
                   chroma_peak, onset_peak, np.asarray(part_of, dtype=np.int64))

    def to_arrays(self) -> dict:
        """For the cache (:meth:`from_arrays` reads them back)."""
        return {"part_chroma": self.chroma, "part_onset": self.onset, "part_chroma_peak": self.chroma_peak,
                "part_onset_peak": self.onset_peak, "part_of": self.part_of}

    @classmethod
    def from_arrays(cls, arrays: dict) -> "ReferenceParts | None":
        if "part_chroma" not in arrays:
            return None
        return cls(arrays["part_chroma"], arrays["part_onset"], arrays["part_chroma_peak"],
                   arrays["part_onset_peak"], arrays["part_of"])

    @property
    def n_parts(self) -> int:
        return len(self.chroma)

    @property
    def n_frames(self) -> int:
        return self.chroma.shape[1]

    def chroma_at(self, frame: int) -> np.ndarray:
        """Each part's chroma energies in reference frame ``frame``, shape (n_parts, 12)."""
        return self.chroma[:, frame, :].astype(np.float64) * self.chroma_peak[:, None]

    def active(self) -> np.ndarray:
        """Whether each part sounds in each reference frame, shape (n_parts, n_frames), bool."""
        level = self.chroma.astype(np.float32).sum(axis=2)
        return level >= ACTIVE_FRACTION * np.maximum(level.max(axis=1, keepdims=True), 1e-12)

    def features(self, playing, params: StreamFeatureParams) -> np.ndarray:
        """Reference features of the parts marked in ``playing`` (bool, one per part), shape
        (n_frames, 25)."""
        keep = np.nonzero(np.asarray(playing, dtype=bool))[0]
        C = np.zeros((self.n_frames, self.chroma.shape[2]), dtype=np.float32)
        Eo = np.zeros((self.n_frames, self.onset.shape[2]), dtype=np.float32)
        for p in keep:
            C += self.chroma[p].astype(np.float32) * self.chroma_peak[p]
            Eo += self.onset[p].astype(np.float32) * self.onset_peak[p]
        return StreamingFeatures(params).finish_energies(C, Eo)


class PartPresence:
    """Which parts the performance plays, from live chroma energies along the follower's path.

    Parameters
    ----------
    parts : ReferenceParts
    threshold : float
        A part whose fitted gain is below this share of the loudest part's is not played.
    min_heard_frames : int
        Judge a part only after it has sounded in this many reference frames on the path.
    """

    def __init__(self, parts: ReferenceParts, threshold: float = 0.1, min_heard_frames: int = 256):
        self.parts = parts
        self.threshold = float(threshold)
        self.min_heard_frames = int(min_heard_frames)
        self._active = parts.active()
        self.reset()

    def reset(self) -> None:
        """Forget the evidence (the path it was gathered on was wrong)."""
        n = self.parts.n_parts + 1  # the parts and a constant
        self._gram = np.zeros((n, n))
        self._xty = np.zeros(n)
        self._heard = np.zeros(self.parts.n_parts, dtype=np.int64)
        self._verdict = None  # _judge's answer until new evidence arrives

    def add(self, live_chroma_energy, reference_frame: int) -> None:
        """One live frame's chroma energies (12), matched to ``reference_frame`` by the path."""
        i = int(min(max(reference_frame, 0), self.parts.n_frames - 1))
        X = np.ones((self.parts.chroma.shape[2], self.parts.n_parts + 1))
        X[:, :-1] = self.parts.chroma_at(i).T
        y = np.asarray(live_chroma_energy, dtype=np.float64)
        self._gram += X.T @ X
        self._xty += X.T @ y
        self._heard += self._active[:, i]
        self._verdict = None

    def playing(self) -> np.ndarray | None:
        """Per part: True unless the fit says it is not being played; None without evidence yet."""
        judged, loud = self._judge()
        return None if judged is None else ~judged | loud

    def heard_playing(self) -> np.ndarray:
        """Per part: True when the fit has judged it and found it played (False without evidence)."""
        judged, loud = self._judge()
        return np.zeros(self.parts.n_parts, dtype=bool) if judged is None else judged & loud

    def _judge(self):
        """Which parts have been heard long enough to judge, and which of those are loud enough;
        (None, None) without evidence. Solved once per evidence: the presence check and the parts
        search may both ask after the same frame."""
        if self._verdict is None:
            self._verdict = self._solve()
        return self._verdict

    def _solve(self):
        judged = self._heard >= self.min_heard_frames
        if judged.sum() < 2:
            return None, None  # one part is always "the loudest": nothing to compare it with
        gains = mix_gains(self._gram, self._xty)
        loudest = float(gains[judged].max())
        if not loudest > 0:
            return None, None
        return judged, gains >= self.threshold * loudest


def part_subsets(n_parts: int):
    """The sets of parts :class:`PartsSearch` tries: every part but one and (up to 5 parts) every
    part but two; bool arrays of length ``n_parts``."""
    for k in range(1, min(3 if n_parts <= 5 else 2, n_parts)):
        for left_out in itertools.combinations(range(n_parts), k):
            playing = np.ones(n_parts, dtype=bool)
            playing[list(left_out)] = False
            yield playing


class PartsSearch:
    """The global search against the MIDI without some of its parts, one set per live frame.

    Parameters
    ----------
    parts : ReferenceParts
    params : StreamFeatureParams
    relocator : engine.follow_relocate.Relocator
        Supplies the recent performance, the search and its pooling.
    margin : float
        A set of parts moves the follower when its match elsewhere costs this share less than the
        reference followed now (see :meth:`step`).
    switch_margin : float or None
        A set of parts replaces the reference where the follower stands when its match there costs
        this share less than the reference followed now; None: never.

    The pooled features of every set are made here, once (setup time, not per chunk). The sets
    are always the whole MIDI less one or two parts. A search takes one live frame per set (up to
    15), so the global searches it follows must be further apart than that (the default: 2 s,
    ~170 frames).
    """

    def __init__(self, parts: ReferenceParts, params: StreamFeatureParams, relocator, margin: float,
                 switch_margin: float | None = None):
        self.relocator = relocator
        self.margin = float(margin)
        self.switch_margin = switch_margin
        self.candidates = [(playing, relocator.pool(parts.features(playing, params)))
                           for playing in part_subsets(parts.n_parts)]
        self.playing_now = None
        self._queue: list = []

    def reset(self, relocator) -> None:
        """A new performance (the follower's new global search)."""
        self.relocator = relocator
        self._queue = []

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    def start(self, here: float, playing_now, base, heard_playing=None) -> None:
        """Begin a search around reference frame ``here`` (the follower's position).

        Parameters
        ----------
        here : float
        playing_now : np.ndarray of bool
            The parts of the reference followed now.
        base : engine.follow_relocate.Match
            What the relocator's own search (with that reference) just found.
        heard_playing : np.ndarray of bool, optional
            The parts the presence fit has heard played along the follower's path
            (:meth:`PartPresence.heard_playing`); a switch where the follower stands keeps them.
        """
        self._base_best, self._base_near = base.best_cost, base.near_cost
        self._near_any = base.near_cost
        self._moves, self._switches = [], []
        self.playing_now = np.array(playing_now)
        self._heard_playing = np.zeros(len(self.playing_now), dtype=bool) if heard_playing is None \
            else np.asarray(heard_playing, dtype=bool)
        self._queue = [(playing, pooled) for playing, pooled in self.candidates
                       if not np.array_equal(playing, playing_now)]

    def cancel(self) -> None:
        self._queue = []

    def step(self, here: float):
        """Try the next set of parts around ``here``; after the last one, the verdict.

        - **Move.** A set is followed from where it matches elsewhere when that match costs
          ``margin`` less than the current reference's best anywhere *and* less than the best
          match near the follower under any of the sets (the current one included) by the
          relocation margin: dropping a part can make a wrong bar match, so the follower's own
          place keeps the benefit of the doubt.
        - **Switch.** Otherwise, a set is followed from its best match near the follower when that
          match costs ``switch_margin`` less than the current reference's there, and the set keeps
          every part the presence fit has heard played. A follower that missing parts have stalled
          (a fugue whose first entry the recording leaves out) is released at once, before the
          presence fit has heard enough to judge; a clear margin keeps it from fighting that fit
          over parts that matter little.

        A switch may bring back a part the fit has left out, and a move may drop a part the fit
        has heard: the fit's verdicts were reached along a path that the restart (which starts
        the evidence over) says was wrong. Vetoing switches that bring back a part the fit heard
        silent as well scored a little worse (84.7 against 84.8 % of the 63 pairs' chunks within
        100 ms).

        Returns
        -------
        None while the search goes on or when it finds nothing; else ``(playing, target)``: the
        parts to follow and the reference frame to restart at.
        """
        if not self._queue:
            return None
        playing, pooled = self._queue.pop(0)
        match = self.relocator.search(pooled, here)
        self._near_any = min(self._near_any, match.near_cost)
        # Relative to the follower: the sets take a few frames, and the follower (like the
        # performance) moves on meanwhile — a few frames off at most, inside the restart's span.
        if not match.is_near and match.best_cost < (1.0 - self.margin) * self._base_best:
            self._moves.append((match.best_cost, match.best_frame - here, playing))
        if self.switch_margin is not None and match.near_cost < (1.0 - self.switch_margin) * self._base_near \
                and playing[self._heard_playing].all():
            self._switches.append((match.near_cost, match.near_frame - here, playing))
        if self._queue:
            return None
        # A move that still beats every near match wins; only without one, a switch.
        verdicts = [m for m in self._moves if m[0] < (1.0 - self.relocator.margin) * self._near_any] or self._switches
        if not verdicts:
            return None
        _, offset, chosen = min(verdicts, key=lambda m: m[0])
        return chosen, here + offset
