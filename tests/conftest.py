"""Shared test configuration and the fixtures that run one test on both networks."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sockfake.network import REAL_NETWORK
from sockfake.sim import SimNetwork

# pytester drives the plugin tests (tests/plugin); pytest_plugins must live in a
# top-level conftest.
pytest_plugins = ["pytester"]


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
