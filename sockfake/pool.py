"""``ThreadPoolMixIn``: requests on a bounded pool of worker threads, with defences.

Beyond a bounded pool: a full queue leaves connections in the kernel's backlog;
``max_slow_requests`` (on by default) moves requests slower than
``slow_request_after`` off the pool (a watchdog starts a replacement worker) so slow
or stalled clients cannot hold every worker; ``request_deadline`` cuts a request past
a total time; ``server_close(timeout=)`` is bounded; ``shutdown()`` is instant even
while the accept loop waits for queue room.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from sockfake._server_checks import MAX_INTERVAL, MAX_QUEUED, _check_count, _check_seconds
from sockfake.mixins import (
    _handle_request,
    _InFlight,
    _join_or_warn,
    _report_thread_exception,
)
from sockfake.network import EventLike, Network

__all__ = ["ThreadPoolMixIn"]


class _PoolStop:
    """Sentinel telling a pool worker to exit."""


def _pass_stop(work: Any) -> None:
    """A worker leaving a closing pool passes a stop on to the next idle one.

    ``server_close()`` cannot always queue one stop per worker (the queue may hold
    fewer items than there are workers); each worker that stops hands one on, so
    every idle worker blocked in ``get()`` is reached. A full queue means requests
    are left: the worker that takes the last one hands the stop on instead.
    """
    with contextlib.suppress(queue.Full):
        work.put_nowait(_PoolStop())


@dataclass
class _PoolState:
    """Everything a running pool holds, in one place (``server._pool_state``).

    Made by the serving thread with the first request; ``server_close()`` stops it
    and drops it, so the next request starts a fresh pool. Workers and the watchdog
    are handed this object, so a straggler from a closed pool never touches the next.
    """

    work: Any  # the network's queue of (request, client_address) and _PoolStop items
    # Set whenever a worker takes an item (the queue has room) and by shutdown(): the
    # accept loop, waiting for room, wakes at once for either.
    room: EventLike
    inflight: _InFlight
    # Set by server_close(): the watchdog exits.
    stopping: EventLike
    # Set when a request starts (and by server_close()): an idle watchdog waits on it
    # with no timeout, so an idle pool schedules nothing (no polling; on the
    # simulation, no clock deadline that would hide a deadlock).
    busy: EventLike
    # Guards ``workers``, ``started``, ``closing`` and ``watchdog``: the serving thread
    # and the watchdog both start workers, under it; server_close() lists them under it.
    lock: Any
    # Guards ``idle`` and ``queued``. Apart from ``lock``, which is held while a thread
    # starts: a new worker's first step takes this one, and must not find it held.
    counts: Any
    workers: list[Any] = field(default_factory=list)
    started: int = 0  # workers started so far (names them)
    # Under ``counts``: workers waiting for an item, and requests queued not yet taken
    # (a request finds no idle worker when queued > idle: start one).
    idle: int = 0
    queued: int = 0
    lost: bool = False  # a worker died of an exception: start a replacement
    closing: bool = False  # server_close() is draining: workers exit once it is empty
    watchdog: Any = None


class ThreadPoolMixIn:
    """Mix-in class to handle requests on a bounded pool of worker threads.

    ``max_workers`` threads take requests from a queue of at most
    ``max_queued_requests``; when it is full the accept loop waits, leaving further
    connections in the kernel's backlog. Workers call ``process_request_thread``, so
    overrides written for ThreadingMixIn keep working.

    A bounded pool is what a few slow clients can starve: six connections that
    trickle their request (slowloris) or never read their response hold six workers.
    So by default (``max_slow_requests = 512``) a request still running after
    ``slow_request_after`` (5 ms) leaves the pool: a watchdog thread starts a new
    worker in its place and the request finishes on its old thread (at most
    ``max_slow_requests`` such at once; when they are all out, the longest-running
    is cut). ``max_workers`` then bounds the requests that run quickly, and the
    threads in all are at most ``max_workers + max_slow_requests`` plus the
    watchdog; ``max_slow_requests = 0`` makes ``max_workers`` a strict bound on
    every request again (CPU, a database), and the pool a target for slow clients.
    Workers start as requests need them. ``request_deadline`` bounds a
    request's total time: past it the watchdog shuts the connection down, so a handler
    blocked reading or writing unwinds. ``request_timeout`` bounds any one read or
    write. A deadline alone does not protect a pool from many slow connections (they
    queue ahead of good clients, each holding a worker until its deadline); moving
    them off the pool does. See the documentation's "Production hardening" guide.
    """

    max_workers = min(32, (os.cpu_count() or 1) + 4)
    max_queued_requests = 256
    # How often a full queue rechecks an externally set shutdown flag (shutdown()
    # itself wakes the accept loop at once).
    queue_poll_interval = 0.1
    # Opt-in: the most seconds a request may run, reading and writing included;
    # past it its connection is shut down (None: no limit).
    request_deadline: float | None = None
    # On by default: up to this many slow requests leave the pool (0: none, every
    # request counts against max_workers). A request still running after
    # slow_request_after seconds gives its worker's place to a new worker and
    # finishes on its own thread, so slow clients cannot hold every worker; when that
    # many are out, the longest-running one is cut to make room. Threads in all: at
    # most max_workers + max_slow_requests, plus one watchdog.
    max_slow_requests = 512
    slow_request_after = 0.005
    daemon_threads = True
    block_on_close = True

    network: Network
    socket_type: int

    def _check_settings(self) -> None:
        super()._check_settings()  # type: ignore[misc]
        _check_count(self, "max_workers")
        _check_count(self, "max_queued_requests", maximum=MAX_QUEUED)
        _check_seconds(self, "queue_poll_interval", optional=False, maximum=MAX_INTERVAL)
        _check_seconds(self, "request_deadline", optional=True)
        _check_count(self, "max_slow_requests", minimum=0)  # 0: off
        _check_seconds(self, "slow_request_after", optional=False, maximum=MAX_INTERVAL)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handle one request on a worker thread; exceptions are handled here."""
        _handle_request(self, request, client_address)

    def _pool(self) -> _PoolState:
        state: _PoolState | None = vars(self).get("_pool_state")
        if state is None:
            # Checked at construction too; here for a setting changed since.
            _check_count(self, "max_workers")
            _check_count(self, "max_queued_requests", maximum=MAX_QUEUED)
            network = self.network
            state = _PoolState(
                work=network.queue(self.max_queued_requests),
                room=network.event(),
                inflight=_InFlight(network),
                stopping=network.event(),
                busy=network.event(),
                lock=network.lock(),
                counts=network.lock(),
            )
            vars(self)["_pool_state"] = state
        return state

    def _pool_worker(self, state: _PoolState) -> None:
        try:
            self._pool_work(state)
        except BaseException:
            # Dying of an exception: leave the pool so the accept loop replaces us.
            with state.lock, contextlib.suppress(ValueError):
                state.workers.remove(threading.current_thread())
            state.lost = True
            raise

    def _pool_work(self, state: _PoolState) -> None:
        work, inflight, counts = state.work, state.inflight, state.counts
        while True:
            with counts:
                state.idle += 1
            try:
                item = work.get()
            finally:
                with counts:
                    state.idle -= 1
            state.room.set()
            if isinstance(item, _PoolStop):
                _pass_stop(work)
                return
            with counts:
                state.queued -= 1
            request, client_address = item
            token = inflight.add(request, self.network.time(), threading.current_thread())
            if state.watchdog is not None:
                state.busy.set()
            spilled = False
            try:
                self.process_request_thread(request, client_address)
            except (SystemExit, KeyboardInterrupt) as exc:
                # On ThreadingMixIn this ends the request's own thread and nothing
                # else; here it must not cost the pool a worker. The request is
                # already closed (process_request_thread's finally); report as a
                # dying thread would (threading is silent about SystemExit).
                if state.closing:
                    raise
                if not isinstance(exc, SystemExit):
                    _report_thread_exception(exc)
            finally:
                spilled = inflight.remove(token)
            if spilled:
                return  # this thread left the pool; a replacement took its place
            if state.closing and work.empty():
                _pass_stop(work)
                return

    def _pool_watchdog(self, state: _PoolState) -> None:
        """Police in-flight requests: ``request_deadline`` and ``max_slow_requests``."""
        network = self.network
        deadline = self.request_deadline
        max_spilled = self.max_slow_requests
        spill_after = self.slow_request_after if max_spilled else None
        logger = self.error_logger  # type: ignore[attr-defined]
        granularity = min(x for x in (deadline, spill_after) if x is not None)
        while not state.stopping.is_set():
            # Cleared before looking, so a request that starts after the look wakes
            # the untimed wait below. The timed wait is at most ``granularity``: a
            # request starting later reaches a limit no sooner than that after it.
            state.busy.clear()
            now = network.time()
            cut, spilled, next_event = state.inflight.police(
                now, deadline, spill_after, max_spilled
            )
            if spilled:
                with state.lock:
                    for thread in spilled:
                        with contextlib.suppress(ValueError):
                            state.workers.remove(thread)
                # Their places in the pool are free: fill them now (queued requests
                # would otherwise wait for the next connection); never while closing.
                self._start_workers(state, len(spilled))
                state.room.set()
            if cut and logger is not None:
                # A logger that fails must not end the watchdog (and the defences).
                with contextlib.suppress(Exception):
                    logger.info("pool: cut %d slow request(s)", len(cut))
            if next_event is None:
                # Nothing to police (idle, or only requests already cut or off the
                # pool with no deadline): sleep until a request starts or the pool stops.
                state.busy.wait()
                continue
            state.stopping.wait(max(0.001, min(next_event - now, granularity)))

    def process_request(self, request: Any, client_address: Any) -> None:
        """Queue the request for a worker (the pool starts with the first request).

        While the queue is full the accept loop waits here, but not past a
        ``shutdown()``: a request that cannot be queued by then is closed.
        """
        state = self._pool()
        item = (request, client_address)
        while True:
            with state.counts:
                state.room.clear()
                try:
                    state.work.put_nowait(item)
                except queue.Full:
                    queued = False
                else:
                    queued = True
                    state.queued += 1
                # Workers start as requests need them, up to max_workers: one more
                # when the queue holds more requests than there are idle workers.
                short = state.queued > state.idle or state.lost
                state.lost = False
            if short:
                self._start_workers(state, 1)
            if queued:
                return
            if getattr(self, "_BaseServer__shutdown_request", False):
                self.shutdown_request(request)  # type: ignore[attr-defined]
                return
            # Set when a worker takes an item or by shutdown(); the timeout only
            # bounds how late an externally set shutdown flag is noticed.
            state.room.wait(self.queue_poll_interval)

    def shutdown(self, timeout: float | None = None) -> bool:
        """As ``BaseServer.shutdown``; also wakes an accept loop waiting for queue room."""
        # The flag first, then the wake-up: the accept loop rechecks it when it wakes.
        setattr(self, "_BaseServer__shutdown_request", True)  # noqa: B010 - BaseServer's
        state: _PoolState | None = vars(self).get("_pool_state")
        if state is not None:
            state.room.set()
        return bool(super().shutdown(timeout))  # type: ignore[misc]

    def _start_workers(self, state: _PoolState, count: int) -> None:
        """Start up to ``count`` workers, never more than ``max_workers`` in all.

        Workers start as requests need them (a pool of 1,000 workers serving one
        client at a time runs one thread). A handler raising a BaseException other
        than SystemExit/KeyboardInterrupt (which workers survive) ends its worker, as
        it ends a ThreadingMixIn thread; the worker leaves the pool and the accept
        loop starts a replacement when it queues the next request. The serving
        thread starts workers, and the watchdog replaces those whose slow request
        left the pool (never while the pool closes), so a network unwinding its
        threads gets no new ones.
        """
        workers = state.workers
        name = type(self).__name__
        # Started and recorded under one lock, which server_close() takes to set
        # ``closing`` and to list the threads it joins: it never sees a thread that
        # is recorded but not started (join() would raise), nor misses one that is
        # started. A thread that fails to start leaves the record.
        with state.lock:
            if state.closing:
                return
            for _ in range(count):
                if len(workers) >= self.max_workers:
                    break
                state.started += 1
                worker = self.network.thread(
                    target=self._pool_worker,
                    args=(state,),
                    name=f"{name}-worker-{state.started}",
                )
                worker.daemon = self.daemon_threads
                workers.append(worker)  # recorded before it can serve a request
                try:
                    self._start_thread(worker)
                except BaseException:
                    workers.remove(worker)
                    raise
            policed = self.request_deadline is not None or self.max_slow_requests > 0
            if policed and state.watchdog is None:
                watchdog = self.network.thread(
                    target=self._pool_watchdog, args=(state,), name=f"{name}-watchdog"
                )
                watchdog.daemon = True
                state.watchdog = watchdog
                try:
                    self._start_thread(watchdog)
                except BaseException:
                    state.watchdog = None
                    raise

    def _start_thread(self, thread: Any) -> None:
        """Start a pool thread (called with the pool's lock held; tests widen it)."""
        thread.start()

    def server_close(self, timeout: float | None = None) -> None:
        """Close the server; let queued requests finish; stop the workers.

        With ``timeout``, requests still running after it are aborted (their
        sockets shut down so blocked handlers unwind) and queued ones are closed;
        a worker that still does not return (its handler blocks on something other
        than its connection) is left running after as long again, with a warning to
        ``error_logger``: ``server_close(timeout=)`` returns within about twice
        ``timeout``, as on ThreadingMixIn.
        """
        datagram = self.socket_type == socket.SOCK_DGRAM
        if not datagram:
            super().server_close()  # type: ignore[misc]
        try:
            state: _PoolState | None = vars(self).get("_pool_state")
            if state is not None:
                self._stop_pool(state, timeout)
                # Two overlapping server_close() calls both wait for the pool; the
                # first to finish drops it (not a pool started since).
                if vars(self).get("_pool_state") is state:
                    vars(self).pop("_pool_state", None)
        finally:
            if datagram:
                super().server_close()  # type: ignore[misc]

    def _stop_pool(self, state: _PoolState, timeout: float | None) -> None:
        work = state.work
        with state.lock:
            # From here no thread starts (see _start_workers), and every recorded
            # one has started.
            state.closing = True
            workers = list(state.workers)
        # One stop per worker; a full queue means busy workers, which exit on
        # their own once the queue is drained (they check state.closing).
        for _ in workers:
            try:
                work.put_nowait(_PoolStop())
            except queue.Full:
                break
        if not self.block_on_close:
            state.stopping.set()
            state.busy.set()
            return
        try:
            # A snapshot: the watchdog (still cutting at request_deadline while we
            # drain) moves slow requests' threads out of ``workers``. Threads of
            # requests in flight have started (they are running them).
            threads = workers + [t for t in state.inflight.threads() if t not in workers]
            deadline = None if timeout is None else self.network.time() + timeout
            for worker in threads:
                if deadline is None:
                    worker.join()
                else:
                    worker.join(max(0.0, deadline - self.network.time()))
            if timeout is None or not any(worker.is_alive() for worker in threads):
                return
            # Out of time: close what is still queued, abort what is running.
            while True:
                try:
                    item = work.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(item, _PoolStop):
                    self.shutdown_request(item[0])  # type: ignore[attr-defined]
            for _ in threads:
                try:
                    work.put_nowait(_PoolStop())
                except queue.Full:
                    break
            state.inflight.abort_all()
            _join_or_warn(self, [w for w in threads if w.is_alive()], timeout, "pool worker(s)")
        finally:
            state.stopping.set()
            state.busy.set()
            with state.lock:
                watchdog = state.watchdog
            if watchdog is not None:
                watchdog.join(1.0)
