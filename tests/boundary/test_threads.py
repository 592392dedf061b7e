"""A raw ``_thread.start_new_thread`` thread joins the simulation: its sockets are
simulated, so the real listener receives nothing."""

from __future__ import annotations

import _thread
import socket
import sys
import threading

import pytest
from boundary_listener import RealListener

from sockfake.network import SockfakeRuntimeError
from sockfake.sim import SimNetwork

_captured_start_new_thread = _thread.start_new_thread  # before any interception


def test_a_raw_thread_is_adopted_into_the_simulation(quiet_listener: RealListener) -> None:
    seen: list[object] = []
    with SimNetwork(seed=1) as net, net.intercept():
        done = threading.Event()

        def raw(address: tuple[str, int], *, tag: str) -> None:
            seen.append(net.kernel.is_simulated_caller())
            try:
                socket.create_connection(address, timeout=5)
            except OSError as exc:
                seen.append(type(exc))
            seen.append(tag)
            done.set()

        ident = _thread.start_new_thread(raw, (quiet_listener.address,), {"tag": "ran"})
        assert done.wait(60)
    assert isinstance(ident, int)
    assert seen == [True, ConnectionRefusedError, "ran"]


def test_a_raw_thread_keeps_the_argument_checks() -> None:
    with SimNetwork(seed=1) as net, net.intercept():
        with pytest.raises(TypeError, match="2nd arg must be a tuple"):
            _thread.start_new_thread(print, [])  # type: ignore[call-overload]


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="the audit event _thread.start_new_thread is 3.12+"
)
def test_a_reference_taken_before_the_interception_is_refused(
    quiet_listener: RealListener,
) -> None:
    with SimNetwork(seed=1) as net, net.intercept():
        with pytest.raises(SockfakeRuntimeError, match=r"_thread.start_new_thread\(\)"):
            _captured_start_new_thread(lambda: socket.create_connection(quiet_listener.address), ())


def test_raw_threads_outside_the_simulation_are_real() -> None:
    done = _thread.allocate_lock()
    done.acquire()
    _thread.start_new_thread(done.release, ())
    assert done.acquire(timeout=30)
