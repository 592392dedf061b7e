"""Mix-ins that run each request concurrently: in a thread, or in a forked process.

``ThreadingMixIn`` and ``ForkingMixIn`` as the stdlib's, with the fixes: threads leave
``_threads`` as they finish, ``server_close(timeout=)`` drains then aborts (daemon
threads too), datagram replies finish before the shared socket closes; forking reaps
only its own children. The helpers here (running a request, aborting it, what is in
flight) are shared with the pool (``sockfake.pool``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from sockfake._server_checks import MAX_INTERVAL, _check_count, _check_seconds
from sockfake.network import Network, default_network

__all__ = ["ForkingMixIn", "ThreadingMixIn"]


class ForkingMixIn:
    """Mix-in class to handle each request in a new process.

    Beyond the stdlib: only children this server started are ever reaped (the
    stdlib's ``waitpid(-1)`` steals other children's exit statuses), and reaching
    ``max_children`` polls those children instead of blocking in ``waitpid``.
    """

    timeout: float | None = 300
    active_children: set[int] | None = None
    max_children = 40
    # If true, server_close() waits until all child processes complete.
    block_on_close = True
    # How often to poll for an exited child once max_children are running.
    child_poll_interval = 0.01

    network: Network

    def _check_settings(self) -> None:
        super()._check_settings()  # type: ignore[misc]
        _check_count(self, "max_children")
        _check_seconds(self, "child_poll_interval", optional=False, maximum=MAX_INTERVAL)

    def collect_children(self, *, blocking: bool = False) -> None:
        """Internal routine to wait for children that have exited."""
        if self.active_children is None:
            return
        self._reap_children(blocking=blocking)
        # Bound the number of children: poll our own children only.
        while len(self.active_children) >= self.max_children:
            if getattr(self, "_BaseServer__shutdown_request", False):
                # shutdown() is waiting for the loop: let it stop now rather than
                # when a child exits; server_close() reaps the children.
                return
            self.network.sleep(self.child_poll_interval)
            self._reap_children(blocking=False)

    def _reap_children(self, *, blocking: bool) -> None:
        assert self.active_children is not None
        for pid in sorted(self.active_children):
            try:
                flags = 0 if blocking else os.WNOHANG
                waited, _ = self.network.waitpid(pid, flags)
                if waited:
                    self.active_children.discard(pid)
            except ChildProcessError:
                # Someone else reaped it: it is gone all the same.
                self.active_children.discard(pid)
            except OSError:
                pass

    def server_activate(self) -> None:
        """Refuse at once on a network that cannot fork (the simulated one), then activate."""
        self.network.check_fork()
        super().server_activate()  # type: ignore[misc]

    def handle_timeout(self) -> None:
        """Wait for zombies after self.timeout seconds of inactivity."""
        self.collect_children()

    def service_actions(self) -> None:
        """Collect the zombie child processes regularly."""
        self.collect_children()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Fork a new subprocess to process the request."""
        pid = self.network.fork()
        if pid:
            # Parent process
            if self.active_children is None:
                self.active_children = set()
            self.active_children.add(pid)
            self.close_request(request)  # type: ignore[attr-defined]
            return
        # Child process.
        # This must never return, hence os._exit()!
        status = 1
        try:
            self.finish_request(request, client_address)  # type: ignore[attr-defined]
            status = 0
        except Exception:
            self.handle_error(request, client_address)  # type: ignore[attr-defined]
        finally:
            try:
                self.shutdown_request(request)  # type: ignore[attr-defined]
            finally:
                self.network.exit_child(status)

    def server_close(self) -> None:
        super().server_close()  # type: ignore[misc]
        self.collect_children(blocking=self.block_on_close)


class _Threads(list):  # type: ignore[type-arg]
    """Joinable list of the non-daemon handler threads; threads leave it as they finish.

    A thread leaves the list when its request is done, but is still alive for a moment
    after (unwinding, or reporting an uncaught exception through
    ``threading.excepthook``). Those are kept aside in ``_finishing`` until they are
    dead, so ``join()`` (``server_close()``) still waits for them, as the stdlib does.

    Daemon threads are not in the list (``len()`` counts what the stdlib counts) but
    are tracked aside, so a draining ``server_close(timeout=)`` can abort them too.
    The lock comes from the server's network (a simulated lock on the simulation).
    """

    def __init__(self, network: Network | None = None) -> None:
        super().__init__()
        self._network = network if network is not None else default_network()
        self._lock = self._network.lock()
        # Threads being started, with an event set once their start() has returned.
        self._starting: dict[Any, Any] = {}
        self._finishing: list[Any] = []
        self._daemons: list[Any] = []

    def append(self, thread: Any) -> None:
        with self._lock:
            if thread.daemon:
                self._daemons.append(thread)
            else:
                super().append(thread)

    def start(self, thread: Any) -> None:
        """Record ``thread``, then start it; ``join()`` waits for a start under way.

        Recorded and started apart, a ``server_close()`` in between would join a thread
        not yet started (``RuntimeError``): ``join()`` first waits for the start to
        end. A thread that fails to start leaves the list. The start itself runs
        outside the lock (the new thread may finish and ``discard()`` itself at once).
        """
        started = self._network.event()
        with self._lock:
            self._starting[thread] = started
            if thread.daemon:
                self._daemons.append(thread)
            else:
                super().append(thread)
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._starting.pop(thread, None)
                for threads in (self, self._daemons):
                    with contextlib.suppress(ValueError):
                        list.remove(threads, thread)
            raise
        finally:
            # The entry leaves _starting when the thread leaves the list.
            started.set()

    def discard(self, thread: Any) -> None:
        with self._lock:
            self._starting.pop(thread, None)
            try:
                super().remove(thread)
            except ValueError:
                with contextlib.suppress(ValueError):
                    self._daemons.remove(thread)
                return
            finishing = [t for t in self._finishing if t.is_alive()]
            finishing.append(thread)
            self._finishing = finishing

    def pop_all(self, daemons: bool = False) -> list[Any]:
        return [thread for thread, _started in self._pop_all(daemons)]

    def _pop_all(self, daemons: bool) -> list[tuple[Any, Any]]:
        """Every thread, with the event of a start under way (None: started)."""
        with self._lock:
            self[:], result = [], self[:]
            result.extend(self._finishing)
            self._finishing = []
            if daemons:
                result.extend(self._daemons)
                self._daemons = []
            return [(thread, self._starting.pop(thread, None)) for thread in result]

    def join(
        self, timeout: float | None = None, clock: Any = None, daemons: bool = False
    ) -> list[Any]:
        """Join every thread; with ``timeout``, return those still alive after it.

        With ``daemons``, daemon threads are joined too (the stdlib never joins them).
        """
        threads = self._pop_all(daemons)
        deadline = None if timeout is None else clock() + timeout
        for thread, started in threads:
            left = None if deadline is None else max(0.0, deadline - clock())
            if started is not None and not started.wait(left):
                continue  # still starting when the time ran out: left alive
            if thread.ident is None:
                continue  # its start failed: nothing to join
            thread.join(None if deadline is None else max(0.0, deadline - clock()))
        if deadline is None:
            return []
        return [t for t, started in threads if t.is_alive() or (started and not started.is_set())]

    def reap(self) -> None:
        with self._lock:
            self._starting = {t: e for t, e in self._starting.items() if not e.is_set()}
            self[:] = [thread for thread in self if thread.is_alive()]
            self._daemons = [thread for thread in self._daemons if thread.is_alive()]


class _NoThreads:
    """Degenerate version of _Threads."""

    def append(self, thread: Any) -> None:
        pass

    def start(self, thread: Any) -> None:
        thread.start()

    def discard(self, thread: Any) -> None:
        pass

    def join(
        self, timeout: float | None = None, clock: Any = None, daemons: bool = False
    ) -> list[Any]:
        return []

    def __len__(self) -> int:
        return 0


@dataclass
class _Running:
    """One request in flight: what it is, when it started, on which thread."""

    request: Any
    started: float
    thread: Any
    cut: bool = False  # its connection was shut down (deadline or eviction)
    spilled: bool = False  # it left the pool (its worker was replaced)


class _InFlight:
    """The requests being handled right now, with when each started.

    A draining close aborts them all; the pool's watchdog cuts those past
    ``request_deadline`` (and remembers them, so the handler's resulting error is not
    reported as a failure of the server) and moves slow ones off the pool.
    """

    def __init__(self, network: Network) -> None:
        self._lock = network.lock()
        self._requests: dict[int, _Running] = {}
        # id() of cut requests: membership only, never ordering.
        self._cut: set[int] = set()
        self._next = 0
        self.spilled = 0  # requests running off the pool right now

    def add(self, request: Any, now: float, thread: Any = None) -> int:
        with self._lock:
            self._next += 1
            self._requests[self._next] = _Running(request, now, thread)
            return self._next

    def remove(self, token: int) -> bool:
        """Forget a finished request; True if it had left the pool (its thread exits)."""
        with self._lock:
            entry = self._requests.pop(token, None)
            if entry is None:
                return False
            self._cut.discard(id(entry.request))
            if entry.spilled:
                self.spilled -= 1
            return entry.spilled

    def __len__(self) -> int:
        """How many requests are being handled right now."""
        with self._lock:
            return len(self._requests)

    def was_cut(self, request: Any) -> bool:
        with self._lock:
            return id(request) in self._cut

    def threads(self) -> list[Any]:
        with self._lock:
            return [entry.thread for entry in self._requests.values() if entry.thread]

    def police(
        self, now: float, deadline: float | None, spill_after: float | None, max_spilled: int
    ) -> tuple[list[Any], list[Any], float | None]:
        """One watchdog pass: cut requests past ``deadline``; mark requests running
        longer than ``spill_after`` as spilled (up to ``max_spilled`` at once; when full,
        the longest-running spilled request is cut to make room).

        Returns the requests to cut, the threads that left the pool, and when the
        next request reaches a limit (None: nothing in flight).
        """
        to_cut: list[Any] = []
        spilled_threads: list[Any] = []
        next_event: float | None = None

        def cut(entry: _Running) -> None:
            entry.cut = True
            self._cut.add(id(entry.request))
            to_cut.append(entry.request)

        with self._lock:
            # Spilled requests already cut, on their way out: room that is coming.
            coming = sum(1 for e in self._requests.values() if e.spilled and e.cut)
            waiting = 0  # requests due to spill that found no room
            # Tokens grow with start time: this is oldest first.
            for entry in self._requests.values():
                if entry.cut:
                    continue
                if deadline is not None:
                    if entry.started + deadline <= now:
                        cut(entry)
                        continue
                    expiry = entry.started + deadline
                    next_event = expiry if next_event is None else min(next_event, expiry)
                if spill_after is None or entry.spilled:
                    continue
                due = entry.started + spill_after
                if due > now:
                    next_event = due if next_event is None else min(next_event, due)
                    continue
                if self.spilled >= max_spilled:
                    # Full: cut the longest-running spilled request (unless enough
                    # are already on their way out); this one spills once it is gone.
                    waiting += 1
                    if waiting > coming:
                        oldest = next(
                            (e for e in self._requests.values() if e.spilled and not e.cut),
                            None,
                        )
                        if oldest is not None:
                            cut(oldest)
                            coming += 1
                    # Soon: the cut one unwinds at once, and until then this
                    # request holds a worker.
                    retry = now + min(spill_after, 0.002)
                    next_event = retry if next_event is None else min(next_event, retry)
                    continue
                entry.spilled = True
                self.spilled += 1
                spilled_threads.append(entry.thread)
        for request in to_cut:
            _abort_request(request)
        return to_cut, spilled_threads, next_event

    def abort_all(self) -> None:
        """Shut down every in-flight stream so handlers blocked on it unwind."""
        with self._lock:
            requests = [entry.request for entry in self._requests.values()]
        for request in requests:
            _abort_request(request)


def _abort_request(request: Any) -> None:
    """Shut a stream request down so a handler blocked on it unwinds."""
    if request is None or isinstance(request, tuple):
        return  # datagram requests share the server socket
    try:
        request.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _cut_at_deadline(server: Any, request: Any) -> bool:
    """Did the pool's deadline watchdog cut this request (so its error is expected)?"""
    state = vars(server).get("_pool_state")  # a ThreadPoolMixIn's (sockfake.pool)
    return state is not None and bool(state.inflight.was_cut(request))


def _handle_request(server: Any, request: Any, client_address: Any) -> None:
    """A request on its own thread: errors go to handle_error, the request is always shut.

    A request the pool cut at ``request_deadline`` fails by design (a broken pipe, a
    reset): that goes to ``error_logger`` at INFO, not to ``handle_error``, so an
    attack does not flood stderr with tracebacks.
    """
    try:
        server.finish_request(request, client_address)
    except Exception as exc:
        if _cut_at_deadline(server, request):
            logger = getattr(server, "error_logger", None)
            if logger is not None:
                logger.info("request from %s cut at its deadline: %r", client_address, exc)
        else:
            server.handle_error(request, client_address)
    finally:
        server.shutdown_request(request)


def _join_or_warn(server: Any, threads: list[Any], timeout: float, what: str) -> None:
    """Join ``threads`` for at most ``timeout`` in all; name those left to error_logger."""
    deadline = server.network.time() + timeout
    stuck = []
    for thread in threads:
        if thread.ident is not None:  # else still starting (a paused start()): not joinable
            thread.join(max(0.0, deadline - server.network.time()))
        if thread.ident is None or thread.is_alive():
            stuck.append(thread.name)
    logger = getattr(server, "error_logger", None)
    if stuck and logger is not None:
        logger.warning("server_close: %s still running after abort: %s", what, ", ".join(stuck))


class ThreadingMixIn:
    """Mix-in class to handle each request in a new thread.

    Beyond the stdlib: finished threads leave ``_threads`` as they finish;
    ``server_close(timeout=)`` drains in-flight requests, then aborts the rest (daemon
    threads included); datagram servers let in-flight replies finish before closing
    the shared socket.
    """

    # Decides how threads will act upon termination of the main process
    daemon_threads = False
    # If true, server_close() waits until all non-daemonic threads terminate.
    block_on_close = True
    # Threads object used to track the handler threads (only with block_on_close).
    _threads: Any = _NoThreads()

    network: Network
    socket_type: int

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Same as in BaseServer but as a thread; exceptions are handled here."""
        try:
            _handle_request(self, request, client_address)
        finally:
            me = threading.current_thread()
            # The request is closed: its thread lets it go. A thread object outlives
            # its request (``threading`` holds it until the OS thread has unwound,
            # which a loaded machine delays), and kept each closed connection's
            # sockets alive with it.
            vars(me).pop("_sockfake_request", None)
            self._threads.discard(me)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a new thread to process the request."""
        if self.block_on_close and "_threads" not in vars(self):
            self._threads = _Threads(self.network)
        t = self.network.thread(
            target=self.process_request_thread, args=(request, client_address)
        )
        t.daemon = self.daemon_threads
        # Kept on the thread so a draining server_close(timeout=) can abort it.
        t._sockfake_request = request  # type: ignore[attr-defined]
        self._threads.start(t)

    def server_close(self, timeout: float | None = None) -> None:
        """Close the server; join handler threads.

        With ``timeout``, wait at most that long for in-flight requests (daemon
        threads too: ``daemon_threads`` only decides whether a plain
        ``server_close()`` waits), then shut their sockets down so blocked handlers
        unwind, and wait as long again for them. A handler that still does not return
        (it blocks on something other than its connection) is left running, with a
        warning to ``error_logger`` if set: ``server_close(timeout=)`` always returns
        within about twice ``timeout``.
        """
        datagram = self.socket_type == socket.SOCK_DGRAM
        if not datagram:
            super().server_close()  # type: ignore[misc]
        try:
            if timeout is None:
                self._threads.join()
            else:
                left = self._threads.join(timeout, self.network.time, daemons=True)
                for thread in left:
                    _abort_request(getattr(thread, "_sockfake_request", None))
                _join_or_warn(self, left, timeout, "handler thread(s)")
        finally:
            if datagram:
                super().server_close()  # type: ignore[misc]


def _report_thread_exception(exc: BaseException) -> None:
    """Report ``exc`` through ``threading.excepthook``, as an uncaught thread error is."""
    threading.excepthook(
        threading.ExceptHookArgs(
            (type(exc), exc, exc.__traceback__, threading.current_thread())
        )
    )
