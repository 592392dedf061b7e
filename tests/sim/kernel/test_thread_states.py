"""The simulated threads' states: every move the kernel makes is in ``THREAD_MOVES``."""

from __future__ import annotations

import socket
from typing import Any, get_args

import pytest

import sockfake
import sockfake.sim
from sockfake.errors import SimDeadlockError
from sockfake.sim import SimNetwork
from sockfake.sim.kernel.threads import THREAD_MOVES, THREAD_STATES, SimThread, ThreadState


def test_the_table_names_every_state_once() -> None:
    assert get_args(ThreadState) == THREAD_STATES
    assert set(THREAD_MOVES) == set(THREAD_STATES)
    assert all(targets <= set(THREAD_STATES) for targets in THREAD_MOVES.values())
    assert not THREAD_MOVES["finished"]


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    """Every (from, to) state change of every SimThread while the test runs."""
    if sockfake.sim.COMPILED:
        pytest.skip("a compiled SimThread's attributes cannot be watched")
    seen: set[tuple[str, str]] = set()

    def get(thread: Any) -> str:
        return thread.__dict__["_watched_state"]

    def put(thread: Any, state: str) -> None:
        old = thread.__dict__.get("_watched_state")
        if old is not None and old != state:
            seen.add((old, state))
        thread.__dict__["_watched_state"] = state

    monkeypatch.setattr(SimThread, "state", property(get, put), raising=False)
    return seen


class Echo(sockfake.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(100):
                self.request.sendall(data)
        except ConnectionResetError:
            pass  # a client that timed out closes with replies unread: a reset


def test_every_move_is_in_the_table(moves: set[tuple[str, str]]) -> None:
    with SimNetwork(seed=5, scheduling="random", latency=0.01) as net:
        server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=net)
        serving = net.thread(target=server.serve_forever, args=(0.05,))
        serving.start()
        lock = net.lock()

        def client(number: int) -> None:
            with net.create_connection(server.server_address) as sock:
                sock.settimeout(0.001)  # some waits time out, some are answered
                for _ in range(3):
                    sock.sendall(b"x" * number)
                    try:
                        sock.recv(100)
                    except TimeoutError:
                        pass
                    with lock:
                        net.sleep(0.01)

        clients = [net.thread(target=client, args=(n,)) for n in range(1, 4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        server.shutdown()
        server.server_close()
        serving.join()
        # Left blocked for close() to unwind, and one never run at all.
        never = net.event()
        net.thread(target=never.wait).start()
        net.thread(target=never.wait).start()
        net.sleep(1)
        net.thread(target=lambda: None).start()
    assert moves <= {(a, b) for a, targets in THREAD_MOVES.items() for b in targets}
    assert {("new", "ready"), ("ready", "running"), ("running", "blocked"),
            ("blocked", "ready"), ("running", "finished"), ("blocked", "running")} <= moves


def test_a_deadlock_wakes_the_main_thread_by_the_table(moves: set[tuple[str, str]]) -> None:
    with SimNetwork(seed=1) as net:
        receiver = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        other = net.thread(target=lambda: receiver.recv(1), name="other")
        other.start()
        with pytest.raises(SimDeadlockError):
            other.join()  # nothing will ever arrive: the main thread is woken, failed
    assert moves <= {(a, b) for a, targets in THREAD_MOVES.items() for b in targets}
    assert ("blocked", "ready") in moves
