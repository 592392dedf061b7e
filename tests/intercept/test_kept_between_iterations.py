"""``interception_kept()`` and ``explore()``: one installation for a loop of networks.

Outside pytest each ``open_testbed`` (each ``net.intercept()``) installed and removed
every patch of the stdlib. Within ``interception_kept()`` (and for ``explore``'s own
loop) an interception's end leaves them in place for the next one, every patched call
going to the real OS in between; the scope's end takes them away, so nothing stays
patched after it, and a seed's digest is the same with or without the scope.
"""

from __future__ import annotations

import os
import select
import selectors
import socket
import threading
import time
from typing import Any

import pytest

import sockfake
from sockfake.exploration import explore
from sockfake.sim.intercept import install
from sockfake.sim.intercept.dispatch import REAL
from sockfake.testing import interception_kept, open_testbed

# The names a test would notice left patched.
WATCHED = [
    (socket, "socket"), (socket, "create_connection"), (socket, "getaddrinfo"),
    (socket, "socketpair"), (time, "monotonic"), (time, "sleep"), (time, "time"),
    (threading, "Lock"), (threading, "Event"), (threading, "Condition"),
    (select, "select"), (selectors, "DefaultSelector"), (os, "urandom"),
]


def originals() -> list[Any]:
    return [getattr(module, name) for module, name in WATCHED]


def left_patched(before: list[Any]) -> list[str]:
    return [f"{module.__name__}.{name}" for (module, name), old
            in zip(WATCHED, before, strict=True) if getattr(module, name) is not old]


class Upper(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


def round_trip(seed: int) -> str:
    with open_testbed(seed=seed, scheduling="pct") as bed:
        srv = bed.tcp_server(Upper)
        with srv.connect(timeout=5) as conn:
            conn.sendall(b"ping\n")
            assert conn.makefile("rb").readline() == b"PING\n"
        digest: str = bed.network.digest()
    return digest


def real_loopback_round_trip() -> None:
    """A real TCP round trip through the patched names, outside any simulation."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        assert isinstance(listener, REAL["socket"])
        with socket.create_connection(listener.getsockname(), timeout=5) as client:
            server, _ = listener.accept()
            with server:
                client.sendall(b"real")
                assert server.recv(4) == b"real"


def count_installs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the patches get installed from here on (one item per time)."""
    installs: list[int] = []
    real_install = install._install

    def counted() -> None:
        installs.append(1)
        real_install()

    monkeypatch.setattr(install, "_install", counted)
    return installs


def test_patches_stay_between_iterations_serve_the_os_and_go_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = originals()
    installs = count_installs(monkeypatch)
    patched: list[Any] = []
    with interception_kept():
        for seed in range(3):
            round_trip(seed)
            # between two iterations: patched, lingering, and the real OS behind them
            assert install.is_lingering()
            assert socket.socket is not before[0]
            patched.append(socket.socket)
            real_loopback_round_trip()
            assert abs(time.monotonic() - REAL["monotonic"]()) < 60  # the real clock
            assert type(threading.Lock()) is type(REAL["allocate_lock"]())
    assert patched[0] is patched[1] is patched[2]
    assert len(installs) == 1  # installed once, reused
    assert not install.is_lingering()
    assert left_patched(before) == []


def test_same_seed_same_digest_with_and_without_the_scope() -> None:
    plain = [round_trip(seed) for seed in (1, 2)]
    with interception_kept():
        kept = [round_trip(seed) for seed in (1, 2)]
        again = [round_trip(seed) for seed in (1, 2)]
    assert kept == plain == again
    assert plain[0] != plain[1]


def test_an_error_in_the_scope_still_takes_the_patches_away() -> None:
    before = originals()
    with pytest.raises(RuntimeError, match="boom"), interception_kept():
        round_trip(0)
        raise RuntimeError("boom")
    assert left_patched(before) == []


def test_nested_scopes_remove_at_the_outermost_end() -> None:
    before = originals()
    with interception_kept():
        with interception_kept():
            round_trip(0)
        assert install.is_lingering()  # the outer scope still keeps them
        round_trip(1)
    assert left_patched(before) == []


def test_patches_that_lingered_before_the_scope_are_left_to_their_owner() -> None:
    """The pytest plugin's lingering patches: it removes them itself."""
    with sockfake.sim.SimNetwork(seed=1) as net, install.intercept(net, linger=True):
        pass
    try:
        lingering = socket.socket
        with interception_kept():
            round_trip(0)
        assert install.is_lingering() and socket.socket is lingering
    finally:
        install.remove_lingering()


def test_explore_installs_once_and_leaves_nothing_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = originals()
    installs = count_installs(monkeypatch)
    seen: list[Any] = []

    def scenario(net: Any) -> None:
        with net.intercept():
            seen.append(socket.socket)
            if len(seen) == 3:
                raise ValueError("third schedule fails")

    result = explore(scenario, 4)
    assert result.schedules == 4 and [seed for seed, _, _ in result.failures] == [2]
    assert len(installs) == 1  # the same patches for every schedule
    assert left_patched(before) == []
    assert not install.is_lingering()

    seen.clear()
    result = explore(scenario, "systematic", preemption_bound=0)
    assert seen and len(installs) == 2
    assert left_patched(before) == []
