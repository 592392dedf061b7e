"""An event loop a simulated thread cannot run is refused at once, saying what to do.

A loop made before the interception waits on the OS's selector in real time while the
clock is virtual (it hung); one made on an earlier test's network, as a module-scoped
loop (pytest-asyncio's ``loop_scope="module"``) is, failed with "the simulated network
is closed", and its self-pipe was reported as "leaked simulated socket(s)" without a
word on why.
"""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import pytest

from sockfake import SockfakeRuntimeError
from sockfake.sim import SimNetwork
from sockfake.sim.intercept.clock import MONOTONIC_BASE
from sockfake.testing import TestbedError, open_testbed

_real_clock = time.perf_counter


async def _connect_after_a_second() -> float:
    await asyncio.sleep(1)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", 9)
    return asyncio.get_running_loop().time()


def test_a_loop_made_before_the_interception_is_refused_at_once(net: SimNetwork) -> None:
    loop = asyncio.new_event_loop()
    coroutine = _connect_after_a_second()
    try:
        started = _real_clock()
        with net.intercept(), pytest.raises(SockfakeRuntimeError) as caught:
            loop.run_until_complete(coroutine)  # hung: a real epoll wait on a virtual clock
        assert _real_clock() - started < 5
        message = str(caught.value)
        assert "made before net.intercept() or outside the simulation" in message
        assert "asyncio.run()" in message
    finally:
        coroutine.close()
        loop.close()
    # What it says to do works: a loop made inside the interception.
    with net.intercept():
        assert asyncio.run(_connect_after_a_second()) == MONOTONIC_BASE + 1.0
        assert net.time() == pytest.approx(1.0)


def test_a_loop_kept_from_an_earlier_network_says_what_to_do() -> None:
    first = SimNetwork(seed=1)
    with first.intercept():
        loop = asyncio.new_event_loop()  # as a module-scoped loop is, in the first test
        loop.run_until_complete(asyncio.sleep(0))
    first.close()
    second = SimNetwork(seed=2)
    coroutine = _connect_after_a_second()
    nothing = asyncio.sleep(0)
    try:
        with second.intercept(), pytest.raises(SockfakeRuntimeError) as caught:
            loop.run_until_complete(coroutine)
        message = str(caught.value)
        assert "made on a simulated network that has closed" in message
        assert 'loop_scope="function"' in message
        # Outside any interception the closed network's own error says what happened.
        with pytest.raises(SockfakeRuntimeError, match=r"used after net.close\(\)"):
            loop.run_until_complete(nothing)
    finally:
        nothing.close()
        coroutine.close()
        second.close()
        loop.close()


def test_a_loop_left_open_is_named_in_the_leak_report() -> None:
    with pytest.raises(TestbedError) as caught, open_testbed(seed=1):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(asyncio.sleep(0))
    message = str(caught.value)
    assert "leaked simulated socket(s)" in message
    assert "the self-pipe of 1 event loop(s) still open" in message
    assert 'loop_scope="function"' in message
    loop.close()


def test_the_leak_report_survives_a_dead_weak_proxy_on_the_heap() -> None:
    """The report looks for open loops among the heap's objects: a ``weakref.proxy``
    whose referent is gone (isinstance() on it raises ReferenceError) is passed over."""

    class Referent:
        pass

    referent = Referent()
    holder = [weakref.proxy(referent)]  # the dead proxy stays on the heap
    del referent
    gc.collect()
    with pytest.raises(TestbedError) as caught, open_testbed(seed=1) as bed:
        bed.network.socket()  # leaked
    assert "leaked simulated socket(s), never closed" in str(caught.value)
    assert holder  # kept alive until the report ran
