"""Content-addressed on-disk cache of computed arrays (synthesized audio, features).

A cache key is the hash of a file's bytes plus the parameters that produced the result, so a
renamed or moved file still hits, and an edited file misses. Entries are ``.npz`` files read with
``allow_pickle=False``: nothing in the cache can execute code.

The cache lives in ``$EARWORM_CACHE_DIR`` if set, else the platform's user cache dir
(``~/.cache/earworm`` on Linux). ``EARWORM_CACHE_DIR=off`` disables it.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

_CHUNK = 1 << 20


def cache_dir() -> Path | None:
    """The cache directory, or None when caching is disabled."""
    env = os.environ.get("EARWORM_CACHE_DIR")
    if env == "off":
        return None
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("earworm"))


def file_hash(path) -> str:
    """SHA-256 of a file's bytes (hex). Memoised per (path, size, mtime) within a process."""
    st = os.stat(path)
    return _file_hash(os.fspath(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=4096)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def cache_key(kind: str, content_hash: str, params: dict) -> str:
    """A stable key from what was computed, from which content, and with which parameters."""
    blob = json.dumps({"kind": kind, "content": content_hash, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


def load(key: str, names=None) -> dict[str, np.ndarray] | None:
    """The arrays stored under ``key`` (only ``names``, if given: the others are not read), or
    None on a miss (or an unreadable entry, or one without all of ``names``)."""
    d = cache_dir()
    if d is None:
        return None
    path = d / key[:2] / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in (npz.files if names is None else names)}
    except (OSError, ValueError, KeyError):
        return None


def store(key: str, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` under ``key`` atomically (write a temp file, then rename)."""
    d = cache_dir()
    if d is None:
        return
    sub = d / key[:2]
    try:
        sub.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=sub, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, sub / f"{key}.npz")
    except OSError:
        pass  # a full or read-only disk must not break the computation; it only loses speed


def cached(kind: str, content_hash: str, params: dict, compute: Callable[[], dict[str, np.ndarray]]):
    """Return the cached arrays for (kind, content, params), computing and storing them on a miss.

    Returns
    -------
    arrays : dict[str, np.ndarray]
    hit : bool
        Whether the result came from the cache.
    """
    key = cache_key(kind, content_hash, params)
    hit = load(key)
    if hit is not None:
        return hit, True
    arrays = compute()
    store(key, arrays)
    return arrays, False
