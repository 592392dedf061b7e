"""shutdown() fixes over the stdlib, on the real and the simulated network alike.

Each test fails on the stdlib behaviour it replaces (or would hang, which the bounded
waits turn into a failure): on the simulation the waits are virtual, so the same
test shows the fix is in the server, not in the timing of a loaded machine.
"""

from __future__ import annotations

import socket
from typing import Any

from helpers import WAIT, connect, in_thread, recv_all, serving

import sockfake as socketserver


class Upper(socketserver.StreamRequestHandler):
    """Reads a whole line: the simulated links re-chunk writes, so one recv() would
    get part of it, and closing with the rest unread resets the client (as on Linux)."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().strip().upper())


def round_trip(network: Any, address: Any, data: bytes = b"ping") -> bytes:
    with connect(address, socket.AF_INET, network=network) as client:
        client.sendall(data + b"\n")
        return recv_all(client)


# --- -------------------------------------------------------------------------


def test_shutdown_wakes_the_loop_instead_of_waiting_for_the_poll(network: Any) -> None:
    server = socketserver.TCPServer(("127.0.0.1", 0), Upper, network=network)
    with serving(server, poll_interval=10):
        assert round_trip(network, server.server_address) == b"PING"  # the loop is running
        _, outcome = in_thread(server.shutdown, network=network)
        # A polling loop would take up to 10 s to notice; WAIT (5 s) leaves room for load.
        assert outcome["done"].wait(WAIT), "shutdown() waited for the poll interval"
        assert outcome["result"] is True


def test_an_externally_set_shutdown_flag_still_stops_the_loop(network: Any) -> None:
    server = socketserver.TCPServer(("127.0.0.1", 0), Upper, network=network)
    with serving(server, poll_interval=0.02) as thread:
        assert round_trip(network, server.server_address) == b"PING"
        server._BaseServer__shutdown_request = True  # type: ignore[attr-defined]
        thread.join(WAIT)
        assert not thread.is_alive()


def test_shutdown_from_a_handler_thread_does_not_deadlock(network: Any) -> None:
    results: list[bool] = []

    class Stopper(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            results.append(self.server.shutdown(timeout=WAIT))

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Stopper, network=network)
    with serving(server) as thread:
        round_trip(network, server.server_address)
        thread.join(WAIT)
        assert not thread.is_alive()
    assert results == [True]


def test_shutdown_from_the_serving_thread_does_not_deadlock(network: Any) -> None:
    results: list[bool] = []

    class Stopper(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            results.append(self.server.shutdown())

    server = socketserver.TCPServer(("127.0.0.1", 0), Stopper, network=network)
    with serving(server) as thread:
        round_trip(network, server.server_address)
        thread.join(WAIT)
        assert not thread.is_alive(), "a synchronous handler's shutdown() deadlocked"
    assert results == [False]  # asked to stop; it cannot wait for itself


def test_shutdown_before_serve_forever_returns_and_the_loop_exits_at_once(network: Any) -> None:
    with socketserver.TCPServer(("127.0.0.1", 0), Upper, network=network) as server:
        _, stopping = in_thread(server.shutdown, network=network)
        assert stopping["done"].wait(WAIT), "shutdown() before serve_forever() deadlocked"
        assert stopping["result"] is True
        _, serving_outcome = in_thread(server.serve_forever, network=network)
        assert serving_outcome["done"].wait(WAIT)
        assert "error" not in serving_outcome


def test_serve_forever_after_shutdown_and_close_leaves_the_closed_socket(network: Any) -> None:
    """The common race: the serving thread starts after the main thread stopped and closed."""
    server = socketserver.TCPServer(("127.0.0.1", 0), Upper, network=network)
    server.shutdown()
    server.server_close()
    _, outcome = in_thread(server.serve_forever, network=network)
    assert outcome["done"].wait(WAIT)
    assert "error" not in outcome, outcome.get("error")


def test_shutdown_with_timeout_returns_false_while_a_handler_holds_the_loop(network: Any) -> None:
    entered, release = network.event(), network.event()

    class Busy(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            release.wait(WAIT)

    server = socketserver.TCPServer(("127.0.0.1", 0), Busy, network=network)
    with serving(server) as thread, connect(server.server_address, network=network):
        assert entered.wait(WAIT)
        assert server.shutdown(timeout=0.1) is False
        release.set()
        assert server.shutdown(timeout=WAIT) is True
        thread.join(WAIT)  # the loop has stopped; the thread is returning
        assert not thread.is_alive()


def test_serve_forever_is_reusable_after_shutdown(network: Any) -> None:
    server = socketserver.TCPServer(("127.0.0.1", 0), Upper, network=network)
    try:
        for _ in range(2):
            thread, _ = in_thread(server.serve_forever, network=network)
            assert round_trip(network, server.server_address) == b"PING"
            assert server.shutdown(timeout=WAIT) is True
            thread.join(WAIT)
    finally:
        server.server_close()


