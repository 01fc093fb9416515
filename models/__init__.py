"""Training recipes of Earworm Studio's ONNX models (run with ``python -m models.train_all``).

The exported ``*.onnx`` files and their model cards live next to this package; the engine loads
them through :mod:`engine.models`. Torch is needed here, never at run time.
"""
