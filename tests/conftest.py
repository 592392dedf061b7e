"""Shared test configuration and the fixtures that run one test on both networks."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

import sockfake.sim
from sockfake.network import REAL_NETWORK
from sockfake.sim import SimNetwork

# pytester drives the plugin tests (tests/plugin); pytest_plugins must live in a
# top-level conftest.
pytest_plugins = ["pytester"]

# No wall-clock deadline per Hypothesis example: the simulated examples run on virtual
# time, and a shared CI machine at load 16 made a 200 ms deadline fail a test whose
# examples take 60 ms when idle. pytest-timeout still turns a hang into a failure.
settings.register_profile("sockfake-tests", deadline=None)
settings.load_profile("sockfake-tests")


def pytest_configure(config: pytest.Config) -> None:
    # CI's compiled job sets this: its run must test the compiled build, not a pure
    # package that happened to come first on the path.
    wanted = os.environ.get("SOCKFAKE_EXPECT_COMPILED")
    if wanted is not None and (wanted == "1") != sockfake.sim.COMPILED:
        raise pytest.UsageError(
            f"SOCKFAKE_EXPECT_COMPILED={wanted} but the simulation imported from "
            f"{sockfake.sim.__file__} is {'compiled' if sockfake.sim.COMPILED else 'pure'}"
        )


@pytest.fixture(params=["real", "sim"])
def network(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The real network, then a simulated one (closed afterwards).

    The simulated links re-chunk writes (``chunk=3``) and add latency, so a test that
    passes there does not lean on lucky timing or on one ``recv()`` per ``sendall()``.
    On the real network the tests use only 127.0.0.1, ::1 and temporary paths.
    """
    if request.param == "real":
        yield REAL_NETWORK
        return
    net = SimNetwork(seed=11, latency=0.001, chunk=3)
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    """A perfect simulated network with a fixed seed; closed (threads unwound) afterwards."""
    network = SimNetwork(seed=1)
    try:
        yield network
    finally:
        network.close()


@pytest.fixture
def unix_path() -> Iterator[Callable[[str], str]]:
    """Make short AF_UNIX paths (about 100 bytes at most) in a fresh temporary directory."""
    directory = tempfile.mkdtemp(prefix="sfc-", dir="/tmp")
    try:
        yield lambda name: f"{directory}/{name}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


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
