"""Fixtures for the boundary tests: a real listener that must receive nothing, and a
check that no real child process outlives a test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from boundary_listener import RealListener, real_listener_running


def _children() -> set[int]:
    """This process's live child processes (from every thread's children list)."""
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as children:
                found.update(int(pid) for pid in children.read().split())
        except OSError:
            continue
    return found


@pytest.fixture(autouse=True)
def no_child_outlives_the_test() -> Iterator[None]:
    before = _children()
    yield
    left = _children() - before
    assert not left, f"real child processes outlived the test: {sorted(left)}"


@pytest.fixture
def real_listener() -> Iterator[RealListener]:
    """A real server started outside every simulation, before it."""
    with real_listener_running() as listener:
        yield listener


@pytest.fixture
def quiet_listener(real_listener: RealListener) -> Iterator[RealListener]:
    """``real_listener`` that must have received nothing when the test ends."""
    yield real_listener
    real_listener.finish()
    assert (real_listener.accepted, real_listener.received) == (0, 0), (
        "the real listener was reached from a simulated test"
    )
