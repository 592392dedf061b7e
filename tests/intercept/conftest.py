"""Fixtures for the interception tests: a fresh network per test, intercepted, closed after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sockfake.sim import SimNetwork


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients must connect directly (urllib and requests read proxies from the environment)."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    """A perfect simulated network with a fixed seed; closed (threads unwound) afterwards."""
    network = SimNetwork(seed=1, time_limit=3600)
    try:
        yield network
    finally:
        network.close()


@pytest.fixture
def inet(net: SimNetwork) -> Iterator[SimNetwork]:
    """``net`` with ``net.intercept()`` active for the whole test."""
    with net.intercept():
        yield net
