"""After ``net.intercept()`` ends and before ``net.close()``: the network's main thread
is plain Python again, so a thread it starts gets the real OS, like any thread outside
the simulation. It used to join the simulation while the stdlib it calls was real again:
a simulated thread in a real sleep or a real blocking call stalls the simulation.

Tested with the linger the pytest plugin uses (patches still installed, dispatching to
the real OS) and without it (the originals back).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from sockfake.sim import SimNetwork
from sockfake.sim.intercept import install
from sockfake.sim.intercept.dispatch import REAL


def _started_by_the_main_thread(net: SimNetwork) -> dict[str, object]:
    """What a thread started now finds: is it simulated, and is its socket (simulated
    descriptors start at 2**20)."""
    seen: dict[str, object] = {}

    def probe() -> None:
        seen["simulated"] = net.kernel.is_simulated_caller()
        with socket.socket() as sock:
            seen["simulated socket"] = sock.fileno() >= 2**20

    thread = threading.Thread(target=probe, name="after-interception")
    thread.start()
    thread.join(timeout=60)  # real: it runs at once (a simulated one would wait its turn)
    assert not thread.is_alive()
    return seen


@pytest.mark.parametrize("linger", [False, True])
def test_a_thread_started_after_the_interception_gets_the_os(linger: bool) -> None:
    with SimNetwork(seed=1) as net:
        with install.intercept(net, linger=linger):
            during = _started_by_the_main_thread(net)
        after = _started_by_the_main_thread(net)
        assert net.time() == 0.0
        # A real wait in the main thread, with the network still open: the real clock.
        before = REAL["monotonic"]()
        time.sleep(0.001)
        assert REAL["monotonic"]() > before
    install.remove_lingering()
    assert during["simulated"] is True
    assert during["simulated socket"] is True
    assert after["simulated"] is False
    assert after["simulated socket"] is False


def test_a_thread_started_in_a_second_interception_joins_it_again() -> None:
    with SimNetwork(seed=1) as net:
        with install.intercept(net):
            pass
        assert _started_by_the_main_thread(net)["simulated"] is False
        with install.intercept(net):
            assert _started_by_the_main_thread(net)["simulated"] is True


def test_without_interception_the_networks_threads_still_join_it() -> None:
    # The non-intercepted API (net.sleep, net.socket): threads the main thread starts
    # are the simulation's, as documented for SimNetwork.
    with SimNetwork(seed=1) as net:
        seen: list[bool] = []
        thread = threading.Thread(target=lambda: seen.append(net.kernel.is_simulated_caller()))
        thread.start()
        thread.join()
        assert seen == [True]


def test_the_networks_own_threads_still_join_it_after_the_interception() -> None:
    # net.thread() (sockfake's servers, a host's boot, the nemesis) is the simulation's.
    with SimNetwork(seed=1) as net:
        with install.intercept(net):
            pass
        seen: list[bool] = []
        thread = net.thread(target=lambda: seen.append(net.kernel.is_simulated_caller()))
        thread.start()
        thread.join()
        assert seen == [True]
