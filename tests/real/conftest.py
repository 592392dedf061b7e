"""Fixtures for the real-socket tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
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


def _forked_children() -> list[int]:
    """Live processes whose parent is this process (children a test forked)."""
    me = str(os.getpid())
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            children.append(int(entry))
    return children


@pytest.fixture(autouse=True)
def no_forked_child_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Kill any child a forking test left behind.

    A child forked from a multi-threaded process can deadlock on a lock another thread
    held at fork time; it would then keep pytest's output pipe open forever. Nothing
    here checks behaviour: it only keeps a failed forking test from hanging the run.
    """
    yield
    if "fork" not in request.node.name.lower() or not os.path.isdir("/proc"):
        return
    for pid in _forked_children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
