"""Shared test set-up: headless Qt, a private feature cache, and small generated fixtures."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Every test session gets an empty cache, so results never depend on a previous run."""
    os.environ["EARWORM_CACHE_DIR"] = str(tmp_path_factory.mktemp("earworm-cache"))
    yield
