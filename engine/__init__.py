"""Earworm Studio's headless engine: media, features, alignment, and everything built on them.

Nothing in this package imports Qt; it is usable from the CLI, tests and Dask workers alike.
"""

__version__ = "0.1.0"
