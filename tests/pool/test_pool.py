"""The thread pool (``ThreadPoolMixIn``) on real sockets: workers, their bound, their deaths.

Requests run through ``process_request_thread`` on at most ``max_workers`` threads; a
worker survives ``SystemExit`` in a handler and is replaced when another
``BaseException`` kills it; ``server_close()`` stops the workers, also when two
calls overlap. The pool's defences against slow clients are in ``test_pool_defences``.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from helpers import WAIT, UpperOnceHandler as Upper, connect, recv_all, round_trip, serving

import sockfake as socketserver


def test_thread_pool_runs_process_request_thread_and_bounds_concurrency() -> None:
    lock = threading.Lock()
    state = {"active": 0, "most": 0, "queued": 0, "ran": 0}
    two_running, all_queued, release = threading.Event(), threading.Event(), threading.Event()
    clients = 6

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with lock:
                state["active"] += 1
                state["most"] = max(state["most"], state["active"])
                if state["active"] == 2:
                    two_running.set()
            release.wait(WAIT)
            with lock:
                state["active"] -= 1
            self.request.sendall(b"ok")

    class Pool(socketserver.ThreadPoolTCPServer):
        max_workers = 2
        max_slow_requests = 0  # a strict bound: slow requests stay on the pool

        def process_request(self, request: Any, client_address: Any) -> None:
            super().process_request(request, client_address)
            with lock:
                state["queued"] += 1
                if state["queued"] == clients:
                    all_queued.set()

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            with lock:
                state["ran"] += 1
            super().process_request_thread(request, client_address)

    server = Pool(("127.0.0.1", 0), Handler)
    with serving(server):
        sockets = [connect(server.server_address) for _ in range(clients)]
        try:
            assert two_running.wait(WAIT) and all_queued.wait(WAIT)
            # Six requests accepted, two running: a third must not start.
            threading.Event().wait(0.2)  # an observation window, not synchronisation
            with lock:
                assert state["active"] == 2
            release.set()
            assert [recv_all(s) for s in sockets] == [b"ok"] * clients
        finally:
            release.set()
            for s in sockets:
                s.close()
    assert state["most"] == 2
    assert state["ran"] == clients



class _Fatal(BaseException):
    """A BaseException that is neither SystemExit nor KeyboardInterrupt."""



def _exiting_once(exc_type: type[BaseException]) -> type:
    """A handler whose first request raises ``exc_type``; later ones upper-case."""
    calls: list[None] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data = self.request.recv(100)
            calls.append(None)
            if len(calls) == 1:
                raise exc_type
            self.request.sendall(data.upper())

    return Handler



@pytest.mark.parametrize(
    ("exc_type", "reported"), [(SystemExit, False), (KeyboardInterrupt, True)]
)
def test_thread_pool_worker_survives_system_exit_in_a_handler(
    exc_type: type[BaseException], reported: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[type[BaseException]] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_type))

    class Pool(socketserver.ThreadPoolTCPServer):
        max_workers = 1

    with Pool(("127.0.0.1", 0), _exiting_once(exc_type)) as server:
        with connect(server.server_address) as first:
            first.sendall(b"one")
            server.handle_request()
            assert recv_all(first) == b""  # the failed request is closed
        # With one worker, a dead worker would leave this request queued forever.
        with connect(server.server_address) as second:
            second.sendall(b"two")
            server.handle_request()
            assert recv_all(second) == b"TWO"
        workers = list(vars(server)["_pool_state"].workers)
    assert len(workers) == 1
    assert not workers[0].is_alive()
    assert seen == ([exc_type] if reported else [])



def test_thread_pool_replaces_a_worker_killed_by_a_base_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    died = threading.Event()
    seen: list[type[BaseException]] = []

    def hook(args: Any) -> None:
        seen.append(args.exc_type)
        died.set()

    monkeypatch.setattr(threading, "excepthook", hook)

    class Pool(socketserver.ThreadPoolTCPServer):
        max_workers = 1

    with Pool(("127.0.0.1", 0), _exiting_once(_Fatal)) as server:
        with connect(server.server_address) as first:
            first.sendall(b"one")
            server.handle_request()
            assert recv_all(first) == b""
        # The worker has died (threading reported it, as for any thread).
        assert died.wait(WAIT)
        with connect(server.server_address) as second:
            second.sendall(b"two")
            server.handle_request()
            assert recv_all(second) == b"TWO"
        names = [worker.name for worker in vars(server)["_pool_state"].workers]
    assert seen == [_Fatal]
    assert names == ["Pool-worker-2"]



def test_thread_pool_workers_are_stopped_by_server_close() -> None:
    server = socketserver.ThreadPoolTCPServer(("127.0.0.1", 0), Upper)
    with serving(server):
        assert round_trip(server.server_address) == b"PING"
        workers = list(vars(server)["_pool_state"].workers)
        assert workers
    assert not any(worker.is_alive() for worker in workers)


def test_overlapping_server_close_calls_on_a_pool_both_return() -> None:
    release = threading.Event()
    entered = threading.Event()

    class Blocking(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            release.wait(30)

    closing = threading.Semaphore(0)

    class Pool(socketserver.ThreadPoolTCPServer):
        def _stop_pool(self, *args: object) -> None:
            closing.release()  # this close is about to wait on the busy worker
            super()._stop_pool(*args)  # type: ignore[arg-type]

    server = Pool(("127.0.0.1", 0), Blocking)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    client = socket.create_connection(server.server_address)
    errors: list[BaseException] = []

    def close() -> None:
        try:
            server.server_close()
        except BaseException as exc:
            errors.append(exc)

    try:
        assert entered.wait(5)
        server.shutdown()
        closers = [threading.Thread(target=close) for _ in range(2)]
        for closer in closers:
            closer.start()
        assert closing.acquire(timeout=5) and closing.acquire(timeout=5)  # both overlap
        release.set()
        for closer in closers:
            closer.join(10)
        assert not errors, errors
        assert not any(closer.is_alive() for closer in closers)
    finally:
        release.set()
        client.close()
        serving.join(5)
