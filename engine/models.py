"""The ONNX model registry: model names → files in ``models/``, their expected inputs/outputs,
and cached onnxruntime sessions.

Task
----
Every learned component of the engine (the pace classifier of :mod:`engine.tempo`, the
embeddings of :mod:`engine.embed`, …) is an ONNX file shipped in ``models/`` and run with
onnxruntime on the CPU. Torch is a training-time dependency only. This module is the one place
that knows where those files are and what they must look like, so that a missing, corrupt or
stale model gives one clear :class:`engine.errors.ModelError` naming the file, never a
traceback from deep inside onnxruntime.

Conventions
-----------
- A :class:`ModelSpec` lists the input and output tensors by name, element type and shape;
  a dimension of ``None`` is free (batch), an int must match exactly.
- ``metadata`` in a spec are ``key: value`` pairs the ONNX file's ``metadata_props`` must carry
  (e.g. the feature recipe version the model was trained on), so a model trained for other
  features is refused instead of silently giving wrong answers.
- Sessions use the CPU execution provider with a bounded number of intra-op threads
  (``$EARWORM_ONNX_THREADS``, default ``min(2, os.cpu_count())``) and are cached per
  (file, size, mtime): rewriting a model file is picked up without restarting.
- Model files live in ``$EARWORM_MODELS_DIR`` if set, else in the repository's ``models/``
  (or the PyInstaller bundle's ``models/``).

Adding a model is a few lines: ``register(ModelSpec(name=..., filename=..., inputs=(...),
outputs=(...)))`` at the bottom of this file, then ``session("name")`` or ``run("name", feeds)``.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import ModelError

_ONNX_TYPES = {"float32": "tensor(float)", "int64": "tensor(int64)", "float16": "tensor(float16)"}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor: its name, numpy dtype name and shape (None = any size)."""

    name: str
    dtype: str
    shape: tuple


@dataclass(frozen=True)
class ModelSpec:
    """What the engine expects of one ONNX model file.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"pace"``.
    filename : str
        File name inside the models directory, e.g. ``"pace.onnx"``.
    inputs, outputs : tuple of TensorSpec
    metadata : dict
        ``metadata_props`` entries the file must carry with exactly these values.
    description : str
        One line for error messages and listings.
    """

    name: str
    filename: str
    inputs: tuple
    outputs: tuple
    metadata: dict = field(default_factory=dict)
    description: str = ""


REGISTRY: dict[str, ModelSpec] = {}
_sessions: dict[tuple, object] = {}
_lock = threading.Lock()


def register(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a model in the registry and return it."""
    REGISTRY[spec.name] = spec
    return spec


def models_dir() -> Path:
    """The directory model files are read from (see the module docstring)."""
    env = os.environ.get("EARWORM_MODELS_DIR")
    if env:
        return Path(env)
    bundle = getattr(sys, "_MEIPASS", None)  # PyInstaller one-folder/one-file bundle
    if bundle:
        return Path(bundle) / "models"
    return Path(__file__).resolve().parent.parent / "models"


def get_spec(name: str) -> ModelSpec:
    """The registered spec called ``name``; KeyError lists the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no model registered as {name!r}; known: {sorted(REGISTRY)}") from None


def model_path(name: str) -> Path:
    """Where the file of model ``name`` is expected."""
    return models_dir() / get_spec(name).filename


def intra_op_threads() -> int:
    """Threads onnxruntime may use inside one operator ($EARWORM_ONNX_THREADS, default ≤ 2)."""
    env = os.environ.get("EARWORM_ONNX_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(2, os.cpu_count() or 1))


def session(name: str, path=None):
    """A checked, cached ``onnxruntime.InferenceSession`` for model ``name``.

    Parameters
    ----------
    name : str
        A registered model name.
    path : str or Path, optional
        Use this file instead of the registered one (tests, experiments).

    Raises
    ------
    ModelError
        If the file is missing, empty, not an ONNX model onnxruntime can load, or its
        inputs/outputs/metadata differ from the spec.
    """
    spec = get_spec(name)
    p = Path(path) if path is not None else models_dir() / spec.filename
    if not p.exists():
        raise ModelError(p, f"model file not found ({spec.description or spec.name}); run `make models` to train it")
    if not p.is_file():
        raise ModelError(p, "model path is not a regular file")
    st = p.stat()
    if st.st_size == 0:
        raise ModelError(p, "model file is empty (0 bytes)")
    key = (spec.name, str(p.resolve()), st.st_size, st.st_mtime_ns, intra_op_threads(), repr(spec))
    with _lock:
        sess = _sessions.get(key)
        if sess is None:
            sess = _open_session(p)
            check_session(spec, sess, p)
            for old in [k for k in _sessions if k[:2] == key[:2]]:
                del _sessions[old]  # a rewritten file replaces its stale session
            _sessions[key] = sess
    return sess


def run(name: str, feeds: dict, path=None) -> list[np.ndarray]:
    """Run model ``name`` on ``feeds`` (input name → array); outputs in the spec's order."""
    spec = get_spec(name)
    sess = session(name, path)
    return sess.run([t.name for t in spec.outputs], feeds)


def _open_session(p: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: onnxruntime's warnings are not the user's business
    try:
        return ort.InferenceSession(str(p), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # InvalidProtobuf, Fail, InvalidGraph, … depending on the damage
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(p, f"not a valid ONNX model onnxruntime can load ({text})") from None


def _describe(shape) -> str:
    return "[" + ", ".join("N" if d is None or isinstance(d, str) else str(d) for d in shape) + "]"


def check_session(spec: ModelSpec, sess, path) -> None:
    """Raise ModelError unless ``sess`` has exactly the inputs, outputs and metadata of ``spec``."""
    for kind, expected, actual in (("input", spec.inputs, sess.get_inputs()), ("output", spec.outputs, sess.get_outputs())):
        by_name = {a.name: a for a in actual}
        names = [a.name for a in actual]
        if sorted(names) != sorted(t.name for t in expected):
            raise ModelError(path, f"model {kind}s are {names} but the engine expects {[t.name for t in expected]}")
        for t in expected:
            a = by_name[t.name]
            want_type = _ONNX_TYPES.get(t.dtype, t.dtype)
            if a.type != want_type:
                raise ModelError(path, f"{kind} {t.name!r} has type {a.type} but the engine expects {want_type}")
            shape = list(a.shape)
            ok = len(shape) == len(t.shape) and all(
                w is None or (isinstance(d, int) and d == w) for d, w in zip(shape, t.shape)
            )
            if not ok:
                raise ModelError(path, f"{kind} {t.name!r} has shape {_describe(shape)} "
                                       f"but the engine expects {_describe(t.shape)}")
    props = sess.get_modelmeta().custom_metadata_map
    for k, v in spec.metadata.items():
        if props.get(k) != str(v):
            raise ModelError(path, f"model metadata {k!r} is {props.get(k)!r} but the engine expects {str(v)!r} "
                                   "(trained for other features; retrain with `make models`)")


def clear_cache() -> None:
    """Forget every cached session (tests; freeing memory)."""
    with _lock:
        _sessions.clear()


# --- the registry --------------------------------------------------------------------------------
# Pace compatibility CNN (engine.tempo): beat-synchronous clips + periodicity vector → logits
# (compatible, is-the-beat). Shapes must equal engine.tempo's PACE_CHANNELS, N_BEATS,
# STEPS_PER_BEAT, PERIODICITY_CHANNELS, len(PERIODICITY_RATIOS) (a test checks it).
register(ModelSpec(
    name="pace",
    filename="pace.onnx",
    inputs=(TensorSpec("clips", "float32", (None, 16, 16, 24)), TensorSpec("periodicity", "float32", (None, 9, 13))),
    outputs=(TensorSpec("logits", "float32", (None, 2)),),
    metadata={"feature_version": "pace-v2"},
    description="pace-compatibility CNN",
))

# Cross-modal snippet embeddings (engine.embed): one pathway per modality into one 32-d space.
# Shapes must equal engine.embed_features' N_AUDIO_BINS / N_ROLL_BINS × SNIPPET_FRAMES.
for _name, _bins, _what in (("embed_audio", 100, "audio"), ("embed_midi", 88, "piano-roll")):
    register(ModelSpec(
        name=_name,
        filename=f"{_name}.onnx",
        inputs=(TensorSpec("snippets", "float32", (None, 1, _bins, 24)),),
        outputs=(TensorSpec("embedding", "float32", (None, 32)),),
        metadata={"feature_version": "embed-v1"},
        description=f"{_what} snippet embedding CNN",
    ))
