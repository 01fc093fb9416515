"""Writing ``metadata_props`` into exported ONNX files (what :mod:`engine.models` checks on load)."""
from __future__ import annotations

from pathlib import Path


def set_metadata(path: Path, metadata: dict, doc_string: str | None = None) -> None:
    """Set (add or overwrite) ``metadata`` entries of the ONNX file at ``path``, in place."""
    import onnx

    proto = onnx.load(str(path))
    existing = {entry.key: entry for entry in proto.metadata_props}
    for key, value in metadata.items():
        entry = existing.get(key) or proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    if doc_string is not None:
        proto.doc_string = doc_string
    onnx.save(proto, str(path))
