"""Third-party applications and clients, unmodified, on both networks.

The packages are in the ``test`` extra (and the ``compat`` one); a test whose package
is missing is skipped, naming it. ``client`` is each HTTP client in turn (``requests``,
``httpx``, ``urllib3``), with one interface, closed before the network's teardown
checks for leaked sockets. ``inet`` is a perfect simulated network (seed 1), intercepted
for the whole test, for code driven without the plugin's fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from compat_clients import CLIENTS  # type: ignore[import-not-found]

from sockfake.sim import SimNetwork


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients connect directly (requests and httpx read proxies from the environment)."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest, sockfake_network: Any) -> Iterator[Any]:
    """An HTTP client (made in the test's thread, so on its network), closed before
    the network's teardown (it depends on ``sockfake_network``)."""
    made = CLIENTS[request.param]()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def inet() -> Iterator[SimNetwork]:
    """A perfect simulated network (seed 1), intercepted for the whole test, closed after."""
    net = SimNetwork(seed=1, time_limit=3600)
    try:
        with net.intercept():
            yield net
    finally:
        net.close()
