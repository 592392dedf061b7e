"""anyio's ``BlockingPortalProvider``, unmodified, shared by two threads: the first to
enter starts a blocking portal (an event loop in a worker thread) while it holds the
provider's lock, the second waits on that lock. anyio binds ``threading.Lock`` at
import (``from threading import Lock``) and a dataclass field's ``default_factory``
keeps it in ``__init__``'s closure; a provider made at import holds a real lock as an
attribute. On the simulation before this the second thread blocked the OS thread that
holds the turn on the real lock: a stall after 10 real seconds. The same calls on
the real OS give the same results.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from compat_clients import need  # type: ignore[import-not-found]

from sockfake.sim import SimNetwork

from_thread = need("anyio.from_thread")

MADE_AT_IMPORT = from_thread.BlockingPortalProvider()


async def add(a: int, b: int) -> int:
    return a + b


def share(provider: Any) -> list[int]:
    """Two threads enter ``provider`` at once and call into its portal."""
    results: list[int] = []

    def use(n: int) -> None:
        with provider as portal:
            results.append(portal.call(add, n, 10))

    threads = [threading.Thread(target=use, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(results)


PROVIDERS: dict[str, Callable[[], Any]] = {
    "made at import": lambda: MADE_AT_IMPORT,
    "made in the test": from_thread.BlockingPortalProvider,
}


@pytest.mark.parametrize("made", sorted(PROVIDERS))
def test_two_threads_share_a_portal_provider_as_on_the_real_os(made: str) -> None:
    on_the_os = share(PROVIDERS[made]())
    net = SimNetwork(seed=1, time_limit=60)
    try:
        with net.intercept():
            on_the_simulation = share(PROVIDERS[made]())
    finally:
        net.close()
    assert on_the_simulation == on_the_os == [10, 11]
