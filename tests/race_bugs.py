"""Six classic concurrency bugs in handler code, each as a scenario on a network.

Each ``bug(network)`` runs a server whose handlers share state the wrong way and returns
True when the run showed the bug (a lost update, a double computation, a deadlock...),
False when this schedule happened to be harmless. The same scenarios run on the real
network (``REAL_NETWORK``) and on a simulated one: ``tests/sim/kernel/test_races.py`` shows the
exploration mode that finds each, ``benchmarks/bench_races.py`` measures hit rates.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import sockfake
from sockfake.errors import SimDeadlockError

CLIENTS = 2


def _serve(network: Any, handler: type, **state: Any) -> Any:
    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), handler, network=network)
    server.daemon_threads = False
    for name, value in state.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, args=(None,), daemon=True)
    thread.start()
    return server, thread


def _stop(server: Any, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(10)


def _clients(network: Any, server: Any, count: int = CLIENTS, data: bytes = b"go\n") -> None:
    """``count`` clients at once, each sends a line and reads the reply to the end."""

    def one() -> None:
        with network.create_connection(server.server_address, 10) as conn:
            conn.sendall(data)
            while conn.recv(100):
                pass

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


def lost_update_across_io(network: Any) -> bool:
    """Read a shared counter, talk to the client, write counter + 1."""

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            seen = self.server.hits
            self.wfile.write(b"counted\n")  # a switch point between read and write
            self.server.hits = seen + 1

    server, thread = _serve(network, Handler, hits=0)
    try:
        _clients(network, server)
    finally:
        _stop(server, thread)
    return bool(server.hits != CLIENTS)


def plain_increment(network: Any) -> bool:
    """``self.server.hits += 1``: one line, several bytecodes, no simulated call."""

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            for _ in range(20):
                self.server.hits += 1
            self.wfile.write(b"ok\n")

    server, thread = _serve(network, Handler, hits=0)
    try:
        _clients(network, server)
    finally:
        _stop(server, thread)
    return bool(server.hits != 20 * CLIENTS)


def check_then_act(network: Any) -> bool:
    """A cache that computes a missing entry: two handlers both see it missing."""

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            key = self.rfile.readline().strip()
            cache = self.server.cache
            if key not in cache:
                self.server.computed += 1
                value = key.upper()
                cache[key] = value
            self.wfile.write(cache[key] + b"\n")

    server, thread = _serve(network, Handler, cache={}, computed=0)
    try:
        _clients(network, server, data=b"same-key\n")
    finally:
        _stop(server, thread)
    return bool(server.computed != 1)


def two_lock_deadlock(network: Any) -> bool:
    """One handler takes lock A then B, the other B then A."""
    first, second = network.lock(), network.lock()

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            order = self.rfile.readline().strip()
            locks = (first, second) if order == b"ab" else (second, first)
            if not locks[0].acquire(timeout=2):
                return
            try:
                if not locks[1].acquire(timeout=2):
                    self.server.stuck += 1
                    return
                locks[1].release()
            finally:
                locks[0].release()
            self.wfile.write(b"done\n")

    server, thread = _serve(network, Handler, stuck=0)
    try:

        def client(order: bytes) -> None:
            with network.create_connection(server.server_address, 10) as conn:
                conn.sendall(order + b"\n")
                while conn.recv(100):
                    pass

        threads = [threading.Thread(target=client, args=(o,)) for o in (b"ab", b"ba")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    except SimDeadlockError:
        return True
    finally:
        _stop(server, thread)
    return bool(server.stuck)


def order_violation(network: Any) -> bool:
    """The serving thread publishes the greeting after it starts serving: a handler that
    runs first reads it unset."""

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            greeting = getattr(self.server, "greeting", None)
            self.wfile.write((greeting or b"NONE") + b"\n")

    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Handler, network=network)
    server.daemon_threads = False
    replies: list[bytes] = []

    def serve() -> None:
        server.serve_forever(None)

    def publish() -> None:
        server.greeting = b"hello"  # type: ignore[attr-defined]

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    publisher = threading.Thread(target=publish)
    try:
        with network.create_connection(server.server_address, 10) as conn:
            publisher.start()  # meant to be in place before any request is handled
            conn.sendall(b"hi\n")
            replies.append(conn.makefile("rb").readline())
        publisher.join(10)
    finally:
        _stop(server, thread)
    return replies != [b"hello\n"]


def use_after_close(network: Any) -> bool:
    """Two threads share one client socket; one closes it while the other still sends."""

    class Handler(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            while self.rfile.readline():
                pass

    server, thread = _serve(network, Handler)
    errors: list[BaseException] = []
    try:
        shared = network.create_connection(server.server_address, 10)

        def sender() -> None:
            try:
                for _ in range(3):
                    shared.sendall(b"data\n")
            except OSError as exc:
                errors.append(exc)

        def closer() -> None:
            shared.close()

        threads = [threading.Thread(target=sender), threading.Thread(target=closer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        _stop(server, thread)
    return bool(errors)


BUGS: dict[str, Callable[[Any], bool]] = {
    "lost update across I/O": lost_update_across_io,
    "plain +=": plain_increment,
    "check-then-act": check_then_act,
    "two-lock deadlock": two_lock_deadlock,
    "order violation": order_violation,
    "use after close": use_after_close,
}

# Socket option values the scenarios use on both networks.
_ = socket.SOL_SOCKET
