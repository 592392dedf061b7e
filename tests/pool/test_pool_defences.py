"""The pool's defences on real sockets: slow clients cannot hold its workers.

A pool of N workers is starved by N connections that never finish a request; the
request deadline cuts them, slow requests spill off the pool (up to a limit, then the
longest running is cut), and shutdown and ``server_close(timeout=)`` stay bounded
whatever the workers do. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import (
    WAIT,
    UpperLineHandler as Upper,
    connect,
    line_round_trip as round_trip,
    serving,
    wait_until,
)

import sockfake

HOST = "127.0.0.1"


def slow_clients(address: Any, count: int) -> list[socket.socket]:
    """``count`` connections that send one byte of a line and nothing more."""
    clients = []
    for _ in range(count):
        client = connect(address)
        client.sendall(b"G")
        clients.append(client)
    return clients



@contextlib.contextmanager
def closing_all(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()



def in_flight(server: Any) -> int:
    """Requests the pool is handling right now (0 before its first request)."""
    state = vars(server).get("_pool_state")
    return 0 if state is None else len(state.inflight)



def spilled(server: Any) -> int:
    """Requests running off the pool right now."""
    state = vars(server).get("_pool_state")
    return 0 if state is None else int(state.inflight.spilled)



def cut_within(sock: socket.socket, seconds: float) -> bool:
    """Does the server end this connection (EOF or reset) within ``seconds``?"""
    sock.settimeout(seconds)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False



def test_pool_without_defence_is_starved_by_as_many_slow_clients_as_workers() -> None:
    """The finding itself: two slow connections hold both workers of a pool of two
    (with the defence turned off: it is on by default)."""

    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 2
        max_slow_requests = 0

    server = Pool((HOST, 0), Upper)
    with serving(server), closing_all(slow_clients(server.server_address, 2)):
        wait_until(lambda: in_flight(server) == 2, "both workers hold a slow client")
        with pytest.raises(TimeoutError):
            round_trip(server.server_address, timeout=0.5)



def test_pool_request_deadline_cuts_a_trickling_connection_and_not_as_an_error() -> None:
    errors: list[Any] = []

    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        request_deadline = 0.3

        def handle_error(self, request: Any, client_address: Any) -> None:
            errors.append(sys.exc_info()[1])

    class Lines(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(line.upper())

    server = Pool((HOST, 0), Lines)
    with serving(server), connect(server.server_address) as slowloris:
        started = time.monotonic()
        # A byte every 50 ms: no idle timeout would ever fire; the total deadline does.
        cut = False
        while time.monotonic() - started < WAIT:
            try:
                slowloris.sendall(b"x")
            except OSError:
                cut = True
                break
            slowloris.settimeout(0.05)
            try:
                if slowloris.recv(100) == b"":
                    cut = True
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                cut = True
                break
        took = time.monotonic() - started
        assert cut and took < 2.0, took
        assert round_trip(server.server_address) == b"PING\n"
    assert errors == []



def test_pool_request_deadline_cuts_a_stalled_reader_of_a_large_response() -> None:
    finished = threading.Event()

    class Big(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            try:
                self.rfile.readline()
                self.wfile.write(b"x" * (16 * 1024 * 1024))
            finally:
                finished.set()

    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        request_deadline = 0.3

    server = Pool((HOST, 0), Big)
    with serving(server), connect(server.server_address) as reader:
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.sendall(b"BIG\n")  # and never read
        assert finished.wait(2.0)



def test_pool_slow_requests_leave_the_pool_so_a_good_client_is_served() -> None:
    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 2
        max_slow_requests = 50

    server = Pool((HOST, 0), Upper)
    with serving(server), closing_all(slow_clients(server.server_address, 20)):
        wait_until(lambda: in_flight(server) >= 2, "the attack holds both workers")
        assert round_trip(server.server_address) == b"PING\n"
        wait_until(lambda: spilled(server) == 20, "every slow one is off the pool")
        state = vars(server)["_pool_state"]
        # The pool's watchdog counts a request as spilled before it takes its thread out
        # of the pool and starts the replacement: wait for that, do not sample between.
        wait_until(lambda: len(state.workers) == 2, "the pool is back to max_workers")
        assert round_trip(server.server_address) == b"PING\n"



def test_pool_spills_a_new_slow_request_while_an_earlier_one_waits_for_its_deadline() -> None:
    """The watchdog, timing the first request's far deadline, still sees the next one."""

    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        max_slow_requests = 10
        request_deadline = 30.0

    server = Pool((HOST, 0), Upper)
    with serving(server), closing_all(slow_clients(server.server_address, 1)):
        # The first is off the pool; only its deadline is left to time.
        wait_until(lambda: spilled(server) == 1, "the first slow request spilled")
        with closing_all(slow_clients(server.server_address, 1)):
            wait_until(lambda: spilled(server) == 2, "the second one spilled too")
            assert round_trip(server.server_address) == b"PING\n"



def test_pool_slow_requests_beyond_the_limit_cut_the_longest_running() -> None:
    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        max_slow_requests = 1

    server = Pool((HOST, 0), Upper)
    with serving(server), connect(server.server_address) as first:
        first.sendall(b"G")
        wait_until(lambda: spilled(server) == 1, "the first request is off the pool")
        with connect(server.server_address) as second:
            second.sendall(b"G")
            assert cut_within(first, 2.0)  # second needed the place: first is cut
            assert not cut_within(second, 0.2)
        assert round_trip(server.server_address) == b"PING\n"



def test_pool_server_close_timeout_is_bounded_when_a_handler_blocks_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    entered = threading.Event()

    class Stuck(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            release.wait(20)  # not on its connection: an abort does not reach it

    class Pool(sockfake.ThreadPoolTCPServer):
        error_logger = logging.getLogger("test_hardening.pool")

    server = Pool((HOST, 0), Stuck)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = socket.create_connection(server.server_address)
    try:
        assert entered.wait(WAIT)
        server.shutdown()
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="test_hardening.pool"):
            server.server_close(timeout=0.3)
        took = time.monotonic() - started
        assert took < 1.5, took  # about 2 x timeout
        assert "still running after abort" in caplog.text
    finally:
        release.set()
        client.close()
        thread.join(WAIT)



def test_pool_shutdown_is_instant_while_the_accept_loop_waits_for_queue_room() -> None:
    release = threading.Event()

    class Blocking(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            release.wait(WAIT)

    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        max_queued_requests = 1
        max_slow_requests = 0  # the blocked request keeps its worker: the queue fills
        queue_poll_interval = 5.0  # were the wait polled, shutdown() would take 5 s

    server = Pool((HOST, 0), Blocking)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    clients = [connect(server.server_address) for _ in range(3)]
    try:
        deadline = time.monotonic() + WAIT
        state = None
        waiting = False
        while time.monotonic() < deadline:  # running, queued, and one in the accept loop
            state = vars(server).get("_pool_state")
            waiting = state is not None and state.work.full() and not state.room.is_set()
            if waiting:
                break
            time.sleep(0.01)
        assert waiting, "the accept loop never waited for queue room"
        time.sleep(0.05)
        started = time.monotonic()
        assert server.shutdown(timeout=WAIT)
        took = time.monotonic() - started
        # Instant means not one poll interval: a tenth of it leaves room for a loaded
        # machine (a wall-clock bound this tight once failed at 0.10 s under load).
        assert took < Pool.queue_poll_interval / 10, took
    finally:
        release.set()
        server.server_close()
        for client in clients:
            client.close()
        thread.join(WAIT)
