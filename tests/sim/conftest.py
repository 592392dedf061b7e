"""Fixtures for the simulated-network tests: a fresh network per test, always closed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sockfake.sim import SimNetwork


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    """A perfect simulated network with a fixed seed; closed (threads unwound) afterwards."""
    network = SimNetwork(seed=1)
    try:
        yield network
    finally:
        network.close()
