"""Shared test configuration and the fixtures that run one test on both networks."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sockfake.sim
from sockfake.network import REAL_NETWORK
from sockfake.sim import SimNetwork

# pytester drives the plugin tests (tests/plugin); pytest_plugins must live in a
# top-level conftest.
pytest_plugins = ["pytester"]


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
def unix_path() -> Iterator[Callable[[str], str]]:
    """Make short AF_UNIX paths (about 100 bytes at most) in a fresh temporary directory."""
    directory = tempfile.mkdtemp(prefix="sfc-", dir="/tmp")
    try:
        yield lambda name: f"{directory}/{name}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)
