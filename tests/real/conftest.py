"""Fixtures for the real-socket tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture
def unix_dir() -> Iterator[str]:
    """A short temporary directory (AF_UNIX paths are limited to about 100 bytes)."""
    path = tempfile.mkdtemp(prefix="sf-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
