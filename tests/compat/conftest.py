"""Fixtures for third-party code on the simulation: a network intercepted for the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sockfake.sim import SimNetwork


@pytest.fixture
def inet() -> Iterator[SimNetwork]:
    """A perfect simulated network (seed 1), intercepted for the whole test, closed after."""
    net = SimNetwork(seed=1, time_limit=3600)
    try:
        with net.intercept():
            yield net
    finally:
        net.close()
