"""Signals in blocks: a centred STFT that takes samples as they come, and a spill buffer.

Task
----
Let the aligner analyse a recording (decoded block by block) and a synthesized MIDI (rendered
block by block) without ever holding a whole signal: a 20-minute signal at 22 050 Hz is 110 MB of
float32, its features a few MB.

- :class:`PitchEnergyStream` — the log-frequency magnitudes of :func:`engine.features.pitch_energy`
  (centred Hann STFT, STFT bins summed into pitch bins), fed any number of samples at a time;
  the frames it returns are exactly those of the whole-signal computation.
- :class:`SpillBuffer` — rows appended block by block, kept in memory up to a limit and in an
  unnamed temporary file beyond it, read back block by block: for what a feature can only finish
  once the whole signal has been seen (a normalisation by the global maximum).
- :func:`to_int16` — float samples on 16-bit levels (playback buffers, the MIDI's stems).

Conventions
-----------
``sr`` in Hz, ``hop_length`` and ``n_fft`` in samples; frame ``k`` is centred on sample
``k * hop_length`` (the signal is zero-padded by ``n_fft // 2`` at both ends), so a signal of
``n`` samples has ``1 + n // hop_length`` frames.
"""
from __future__ import annotations

import functools
import tempfile

import numpy as np

SPILL_RAM_BYTES = 8 << 20  # per buffer: a typical piece's fine features stay in memory
INT16_SCALE = 32768.0  # full scale 1.0 ↔ 32768 levels


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0, any shape) rounded to 16-bit levels and clipped; NaN → 0."""
    q = np.multiply(samples, np.float32(INT16_SCALE), dtype=np.float32)
    np.nan_to_num(q, copy=False)
    np.rint(q, out=q)
    np.clip(q, -INT16_SCALE, INT16_SCALE - 1, out=q)
    return q.astype(np.int16)


def pitch_filterbank(sr, n_fft, midi_lo, midi_hi, bins_per_semitone):
    """Matrix (n_fft//2+1, n_pitch_bins) summing STFT bins into log-frequency bins.

    Each STFT bin goes to the nearest pitch bin; pitch bins that no STFT bin falls into (low notes,
    where the STFT is coarser than a semitone) take linearly interpolated neighbours instead.
    """
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    n_bins = (midi_hi - midi_lo + 1) * bins_per_semitone
    centres = midi_lo + (np.arange(n_bins) - (bins_per_semitone - 1) / 2) / bins_per_semitone
    fb = np.zeros((len(freqs), n_bins), dtype=np.float32)
    with np.errstate(divide="ignore"):
        pitch_of_bin = 69 + 12 * np.log2(np.maximum(freqs, 1e-6) / 440.0)
    idx = np.round((pitch_of_bin - centres[0]) * bins_per_semitone).astype(int)
    ok = (idx >= 0) & (idx < n_bins) & (freqs > 0)
    fb[np.nonzero(ok)[0], idx[ok]] = 1.0
    empty = np.nonzero(fb.sum(axis=0) == 0)[0]
    for b in empty:  # interpolate between the two STFT bins around this pitch
        f = 440.0 * 2 ** ((centres[b] - 69) / 12)
        k = f * n_fft / sr
        k0 = int(np.floor(k))
        if 0 <= k0 < len(freqs) - 1:
            fb[k0, b] += 1 - (k - k0)
            fb[k0 + 1, b] += k - k0
    return fb


@functools.lru_cache(maxsize=32)
def _stft_plan(sr, n_fft, midi_lo, midi_hi, bins_per_semitone):
    """(first and last+1 STFT bin read, the filterbank transposed as a sparse matrix, the window):
    the same for every signal at these settings, so made once per process."""
    import scipy.sparse

    fb = pitch_filterbank(sr, n_fft, midi_lo, midi_hi, bins_per_semitone)
    # Only the STFT bins the filterbank reads (up to C8: about a third of them) are turned into
    # magnitudes; as a sparse matrix (about one entry per STFT bin) the sum is a few times cheaper
    # than a dense product, and single-threaded (a threaded BLAS spins on a shared machine).
    used = np.nonzero(fb.any(axis=1))[0]
    k0, k1 = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 1)
    fb_t = scipy.sparse.csr_matrix(fb[k0:k1].T)  # sparse @ dense: no format conversions per block
    return k0, k1, fb_t, np.hanning(n_fft + 1)[:-1].astype(np.float32)


class PitchEnergyStream:
    """Summed STFT magnitude per pitch bin, frame by frame, from samples pushed in any block sizes.

    ``push(samples)`` returns the frames that became complete (shape (k, n_pitch_bins), float32,
    possibly k = 0); ``finish()`` pads the end with zeros and returns the rest. Concatenated, they
    are the frames of :func:`engine.features.pitch_energy` of the whole signal.
    """

    def __init__(self, sr, hop_length, n_fft, midi_lo=21, midi_hi=108, bins_per_semitone=1, block_frames=256):
        self._k0, self._k1, self._fb_t, self._window = _stft_plan(int(sr), int(n_fft), midi_lo, midi_hi,
                                                                  bins_per_semitone)
        self.n_bins = self._fb_t.shape[0]
        self.hop_length, self.n_fft, self.block_frames = int(hop_length), int(n_fft), int(block_frames)
        self._windowed = np.empty((self.block_frames, n_fft), dtype=np.float32)
        half = n_fft // 2
        self._buf = np.zeros(half, dtype=np.float32)  # the centring pad; its first sample is at -half
        self._buf_start = -half
        self._next_frame = 0
        self.n_samples = 0
        self.n_frames = 0

    def push(self, samples) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.n_samples += len(samples)
        self._buf = np.concatenate([self._buf, samples]) if len(self._buf) else samples.copy()
        return self._frames(self._ready_frames())

    def finish(self) -> np.ndarray:
        """The remaining frames (the end zero-padded); the stream is done after this."""
        half = self.n_fft // 2
        total = 1 + self.n_samples // self.hop_length
        needed = (total - 1) * self.hop_length - half + self.n_fft  # the last frame's end
        have = self._buf_start + len(self._buf)
        if needed > have:
            self._buf = np.concatenate([self._buf, np.zeros(needed - have, dtype=np.float32)])
        return self._frames(total - self._next_frame)

    def _ready_frames(self) -> int:
        end = self._buf_start + len(self._buf)
        last = (end + self.n_fft // 2 - self.n_fft) // self.hop_length  # the last frame that fits
        return max(0, last + 1 - self._next_frame)

    def _frames(self, count: int) -> np.ndarray:
        import scipy.fft

        out = np.empty((max(count, 0), self.n_bins), dtype=np.float32)
        half, hop = self.n_fft // 2, self.hop_length
        done = 0
        while done < count:
            n = min(self.block_frames, count - done)
            k = self._next_frame + done
            offset = k * hop - half - self._buf_start
            segment = self._buf[offset:offset + (n - 1) * hop + self.n_fft]
            frames = np.lib.stride_tricks.as_strided(segment, shape=(n, self.n_fft),
                                                     strides=(segment.strides[0] * hop, segment.strides[0]))
            # scipy's FFT stays in float32 (complex64) and is ~3x faster than numpy's here.
            block = np.multiply(frames, self._window, out=self._windowed[:n])
            spectrum = scipy.fft.rfft(block, axis=1, overwrite_x=True)
            out[done:done + n] = (self._fb_t @ np.abs(spectrum[:, self._k0:self._k1]).T).T
            done += n
        self._next_frame += max(count, 0)
        self.n_frames = self._next_frame
        # Keep only the samples the next frame still needs.
        keep_from = self._next_frame * hop - half - self._buf_start
        if keep_from > 0:
            self._buf = self._buf[keep_from:].copy()
            self._buf_start += keep_from
        return out


class SpillBuffer:
    """Rows of one dtype and width, appended in blocks; in memory up to ``ram_bytes``, then on disk.

    ``blocks()`` yields them back in order, in the blocks they were appended in; ``max`` is the
    largest value appended (for normalisations that need the whole signal's maximum).
    """

    def __init__(self, width: int, dtype=np.float32, ram_bytes: int | None = None):
        self.width, self.dtype = int(width), np.dtype(dtype)
        self.ram_bytes = SPILL_RAM_BYTES if ram_bytes is None else int(ram_bytes)
        self._blocks, self._sizes, self._file = [], [], None
        self._ram = 0
        self.n_rows = 0
        self.max = -np.inf

    def append(self, rows) -> None:
        rows = np.array(rows, dtype=self.dtype, order="C", copy=True).reshape(-1, self.width)  # one copy, ours
        if not len(rows):
            return
        self.max = max(self.max, float(rows.max()))
        self.n_rows += len(rows)
        self._sizes.append(len(rows))
        if self._file is None and self._ram + rows.nbytes <= self.ram_bytes:
            self._blocks.append(rows)
            self._ram += rows.nbytes
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="earworm-spill-")
            for block in self._blocks:
                self._file.write(memoryview(block).cast("B"))
            self._blocks, self._ram = [], 0
        self._file.write(memoryview(rows).cast("B"))

    def blocks(self, min_rows: int = 4096):
        """The rows in order, in blocks of at least ``min_rows`` (but the last): consecutive small
        appended blocks are joined, so that whoever reads them pays its per-block overhead rarely."""
        pending, n_pending = [], 0
        for block in self._raw_blocks():
            pending.append(block)
            n_pending += len(block)
            if n_pending >= min_rows:
                yield pending[0] if len(pending) == 1 else np.concatenate(pending)
                pending, n_pending = [], 0
        if pending:
            yield pending[0] if len(pending) == 1 else np.concatenate(pending)

    def _raw_blocks(self):
        if self._file is None:
            yield from self._blocks
            return
        self._file.flush()
        self._file.seek(0)
        for n in self._sizes:
            data = self._file.read(n * self.width * self.dtype.itemsize)
            yield np.frombuffer(data, dtype=self.dtype).reshape(n, self.width)

    def close(self) -> None:
        self._blocks = []
        if self._file is not None:
            self._file.close()
            self._file = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001  (interpreter shutdown)
            pass


def release_memory(n_frames: int = 1 << 30) -> None:
    """Hand the memory freed by big temporary arrays back to the system now, for a long signal
    (``n_frames`` fine frames or more than ~5 minutes of them; shorter ones: nothing to gain).

    glibc keeps freed heap memory for reuse; between the stages of a long alignment that keeps
    each stage's temporaries in the resident size, and the peak adds them up. ``malloc_trim``
    costs about a millisecond; elsewhere than glibc this does nothing.
    """
    global _malloc_trim
    if n_frames < RELEASE_MIN_FRAMES:
        return
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None
RELEASE_MIN_FRAMES = 25_000  # fine frames (11.6 ms): ~5 minutes
