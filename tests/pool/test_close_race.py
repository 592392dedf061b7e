"""server_close() never joins a thread that is recorded but not started.

A pool starts a replacement worker (when a slow request leaves it) while a
``server_close()`` may be listing the threads to join; a ThreadingMixIn server starts
a handler thread likewise. Starting and recording happen under the lock the close
lists under (the pool), or the close waits for a start under way (ThreadingMixIn),
instead of failing with ``RuntimeError: cannot join thread before it is started``.

The window is widened deterministically: the network's threads pause in ``start()``
until the test lets them go, and the test lets them go only once the closing thread
is seen waiting, for a lock or an event of the network (or has already failed, as it
did before the fix).
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import sockfake
from sockfake.real import RealNetwork

WAIT = 10.0


class _WatchedLock:
    """A lock that says when the thread named ``closer`` has to wait for it."""

    def __init__(self, contended: threading.Event) -> None:
        self._lock = threading.Lock()
        self._contended = contended

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(False):
            return True
        if not blocking:
            return False
        if threading.current_thread().name == "closer":
            self._contended.set()
        return self._lock.acquire(True, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class _WatchedEvent(threading.Event):
    """An event that says when the thread named ``closer`` waits for it unset."""

    def __init__(self, waiting: threading.Event) -> None:
        super().__init__()
        self._waiting = waiting

    def wait(self, timeout: float | None = None) -> bool:
        if not self.is_set() and threading.current_thread().name == "closer":
            self._waiting.set()
        return super().wait(timeout)


class _PausedThread(threading.Thread):
    """A thread whose ``start()`` pauses (once ``owner.pausing``) until released."""

    def __init__(self, owner: WideningNetwork, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owner = owner

    def start(self) -> None:
        owner = self._owner
        if owner.pausing(self):
            owner.pausing = lambda thread: False  # once
            owner.starting.set()
            assert owner.go.wait(WAIT), "the test never let the paused start() go"
        super().start()


class WideningNetwork(RealNetwork):
    """The real network, with a window between a thread's creation and its start."""

    def __init__(self) -> None:
        super().__init__()
        self.pausing: Any = lambda thread: False
        self.starting = threading.Event()  # a start() is paused
        self.go = threading.Event()  # let it go on
        # The closer waits for a lock or an event, or is done.
        self.progress = threading.Event()

    def thread(
        self,
        target: Any,
        args: tuple[Any, ...] = (),
        name: str | None = None,
        daemon: bool | None = None,
    ) -> threading.Thread:
        return _PausedThread(self, target=target, args=args, name=name, daemon=daemon)

    def lock(self) -> Any:
        return _WatchedLock(self.progress)

    def event(self) -> threading.Event:
        return _WatchedEvent(self.progress)


def _close_in_thread(server: Any, net: WideningNetwork, **kwargs: Any) -> tuple[
    threading.Thread, list[BaseException]
]:
    errors: list[BaseException] = []

    def close() -> None:
        try:
            server.server_close(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            net.progress.set()

    closer = threading.Thread(target=close, name="closer", daemon=True)
    closer.start()
    return closer, errors


def test_pool_close_waits_for_a_replacement_worker_being_started() -> None:
    net = WideningNetwork()
    entered = threading.Event()
    release = threading.Event()

    class Slow(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            release.wait(WAIT)

    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        max_slow_requests = 1
        slow_request_after = 0.01

    # Armed before anything runs: the watchdog starts worker 2 (the only thread of
    # that name: max_workers is 1) slow_request_after (10 ms) into the request, which
    # on a loaded machine can come before this thread sees the request start.
    net.pausing = lambda thread: thread.name.endswith("-worker-2")
    server = Pool(("127.0.0.1", 0), Slow, network=net)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    client = socket.create_connection(server.server_address, timeout=WAIT)
    try:
        assert entered.wait(WAIT)
        # The slow request leaves the pool: the watchdog starts worker 2 in its place.
        assert net.starting.wait(WAIT), "no replacement worker was started"
        assert server.shutdown(timeout=WAIT)
        closer, errors = _close_in_thread(server, net, timeout=WAIT)
        # Before the fix the close joined worker 2 at once and failed; now it waits
        # for the lock the watchdog holds while worker 2 starts.
        assert net.progress.wait(WAIT)
        net.go.set()
        release.set()
        closer.join(3 * WAIT)
        assert not closer.is_alive()
        assert not errors, errors
        assert not vars(server).get("_pool_state"), "the pool was not dropped"
    finally:
        net.go.set()
        release.set()
        client.close()
        serving.join(WAIT)


def test_threading_close_waits_for_a_handler_thread_being_started() -> None:
    net = WideningNetwork()
    handled = threading.Event()

    class Quick(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            handled.set()

    server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Quick, network=net)
    net.pausing = lambda thread: thread.name != "closer"
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    client = socket.create_connection(server.server_address, timeout=WAIT)
    try:
        # The serving thread is in process_request, its handler thread not started.
        assert net.starting.wait(WAIT), "no handler thread was started"
        server.shutdown(timeout=0)  # the loop stops once process_request returns
        closer, errors = _close_in_thread(server, net)
        assert net.progress.wait(WAIT)
        net.go.set()
        closer.join(WAIT)
        assert not closer.is_alive()
        assert not errors, errors
        # The close joined the handler thread: the request was handled first.
        assert handled.is_set()
    finally:
        net.go.set()
        client.close()
        serving.join(WAIT)
