"""The ``greenlet`` backend: every simulated thread a greenlet on one OS thread.

``SimNetwork(backend="greenlet")`` (needs ``pip install 'sockfake[greenlet]'``). The
kernel makes the same decisions as with OS threads, so a seed gives the same trace
and digest; only the handoff differs. Handing the turn to a thread records it
(``GreenletTurn.release``); the thread that gives the turn up switches to it
(``GreenletTurn.acquire``), a greenlet switch instead of an OS wake-up. A thread
that finishes passes the turn on by making the next thread its greenlet's parent.
All of them run on the OS thread that made the network (the main thread, the hub).

Thread identity follows the simulated thread while such a network is open:
``threading.get_ident()`` (and ``_thread``'s) answers a greenlet's own number, so
``threading.current_thread()`` is its ``Thread``, the kernel's locks see their owner,
and ``threading.local()`` made meanwhile is the pure-Python one keyed by
``current_thread()``. ``contextvars`` follow greenlets natively (each starts with an
empty context, as a new thread does). C-level state CPython keeps per OS thread is
kept per simulated thread where it matters: the running asyncio loop (saved and put
back around each switch), ``signal.signal``'s main-thread check and
``_thread._count()`` (patched); the interception's stand-in for a made-before
``RLock`` keeps its owner by ``get_ident()``. The patches are process-wide, made when
the first such network opens and undone when the last closes.

What differs from OS threads: a simulated thread that blocks outside the
simulation (a real ``time.sleep``, a real lock held by another simulated thread)
blocks them all, and the stall watchdog cannot see it (no other OS thread watches);
a C-level ``threading.local`` made before is shared by every simulated thread; and
``switch_points='lines'`` and ``'opcodes'`` need OS threads (a switch inside a
``sys.monitoring`` callback leaves the events off for the greenlet switched to; a
swarm draws ``'calls'`` instead).
"""

from __future__ import annotations

import _thread
import _threading_local
import signal
import sys
import threading
from functools import partial
from typing import Any

import greenlet

import sockfake.sim.kernel.backends as backends
import sockfake.sim.kernel.core as core
import sockfake.sim.kernel.semaphores as semaphores
import sockfake.sim.kernel.sync as sync
from sockfake.errors import SockfakeRuntimeError
from sockfake.sim.kernel.backends import BackendName, TurnHandle
from sockfake.sim.kernel.threads import SimThread

__all__ = ["GreenletBackend", "GreenletTurn", "greenlet_ident"]

_real_get_ident = _thread.get_ident
_real_signal = signal.signal
_getcurrent = greenlet.getcurrent
_active = threading._active  # type: ignore[attr-defined]
_active_lock = threading._active_limbo_lock  # type: ignore[attr-defined]


class SimGreenlet(greenlet.greenlet):  # type: ignore[misc]
    """A simulated thread's greenlet, numbered (its ``threading.get_ident()``)."""

    sim_ident = 0


def _signal(signalnum: int, handler: Any) -> Any:
    """``signal.signal``: refused outside the main thread, as CPython does (it checks
    the OS thread, which every greenlet shares)."""
    if getattr(_getcurrent(), "sim_ident", 0):
        raise ValueError("signal only works in main thread of the main interpreter")
    return _real_signal(signalnum, handler)


def greenlet_ident() -> int:
    """``threading.get_ident()`` while a greenlet network is open: a simulated
    thread's greenlet answers its own number, anything else its OS thread's."""
    return getattr(_getcurrent(), "sim_ident", 0) or _real_get_ident()


class _Identity:
    """The process-wide patches that make thread identity follow greenlets."""

    def __init__(self) -> None:
        self.users = 0
        self.saved: list[tuple[Any, str, Any]] = []

    def enter(self) -> None:
        self.users += 1
        if self.users > 1:
            return
        patches: list[tuple[Any, str, Any]] = [
            (_thread, "get_ident", greenlet_ident),
            (threading, "get_ident", greenlet_ident),
            (threading, "local", _threading_local.local),
            (_thread, "_count", backends.thread_count),
            (signal, "signal", _signal),
            # The kernel's own references, taken at import (a global read is cheaper).
            (core, "_get_ident", greenlet_ident),
            (sync, "_get_ident", greenlet_ident),
            (semaphores, "_get_ident", greenlet_ident),
        ]
        for owner, name, value in patches:
            self.saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)

    def leave(self) -> None:
        self.users -= 1
        if self.users > 0:
            return
        for owner, name, value in reversed(self.saved):
            setattr(owner, name, value)
        self.saved.clear()


_identity = _Identity()


def _switch(glet: greenlet.greenlet, *args: Any) -> None:
    """Switch to ``glet``; back here, this thread's running asyncio loop is its own
    again. CPython keeps the running loop per OS thread (C-level state no greenlet
    switch saves), so without this a loop running in one simulated thread would be
    "already running" in every other (anyio's portal threads)."""
    events = sys.modules.get("asyncio.events")  # not imported: no loop can run
    if events is None:
        glet.switch(*args)
        return
    loop = events._get_running_loop()
    glet.switch(*args)
    events._set_running_loop(loop)


class GreenletTurn:
    """A simulated thread's turn, handed by a greenlet switch."""

    __slots__ = ("_backend", "glet", "_given")

    def __init__(self, backend: GreenletBackend, glet: greenlet.greenlet) -> None:
        self._backend = backend
        self.glet: greenlet.greenlet | None = glet
        self._given = False

    def release(self) -> None:
        if self._given:
            return
        self._given = True
        self._backend.pending = self

    def acquire(self, timeout: float = -1) -> bool:
        # No timeout: the switch returns only when another thread hands the turn back,
        # and no other thread can run meanwhile.
        if not self._given:
            self._backend.switch_away(self)
        self._given = False
        return True

    def close(self) -> None:
        self.glet = None  # the finished greenlet's frame goes with it


class GreenletBackend:
    """Simulated threads as greenlets on the OS thread that made the network."""

    name: BackendName = "greenlet"
    one_os_thread = True

    def __init__(self) -> None:
        self.hub = _getcurrent()
        # The turn handed over and not yet switched to (at most one).
        self.pending: GreenletTurn | None = None
        self._closed = False
        _identity.enter()

    def new_turn(self) -> TurnHandle:
        return GreenletTurn(self, self.hub)  # start() gives a new thread its greenlet

    def switch_away(self, turn: GreenletTurn) -> None:
        """``turn``'s thread gives the turn up: run the thread it was handed to."""
        target = self.pending
        self.pending = None
        glet = target.glet if target is not None else None
        if glet is None:
            # Nobody was handed the turn (a thread parked for good after a failure, or
            # unwinding at close): the main thread goes on, as it would with OS threads.
            if _getcurrent() is self.hub:
                raise SockfakeRuntimeError(
                    "greenlet backend: the main thread waits for the turn and no simulated "
                    "thread can run")
            glet = self.hub
        _switch(glet)

    def start(self, thread: threading.Thread) -> None:
        if not thread._initialized:  # type: ignore[attr-defined]
            raise RuntimeError("thread.__init__() not called")
        if thread._started.is_set():  # type: ignore[attr-defined]
            raise RuntimeError("threads can only be started once")
        sim_thread: SimThread = thread._sockfake_thread  # type: ignore[attr-defined]
        glet = SimGreenlet(partial(self._run, thread), self.hub)
        ident = glet.sim_ident = id(glet)
        # What the stdlib's bootstrap sets in the new thread, set now: a greenlet
        # runs later, and start() returns with the ident known (as the stdlib's does).
        thread._ident = ident  # type: ignore[attr-defined]
        thread._native_id = ident  # type: ignore[attr-defined]
        with _active_lock:
            _active[ident] = thread
            backends.greenlet_threads += 1
        thread._started.set()  # type: ignore[attr-defined]
        turn = sim_thread.go
        assert isinstance(turn, GreenletTurn)
        turn.glet = glet
        # Enter it now, from the starter, and come straight back: a greenlet's
        # recursion depth starts at its starter's, and a thread first switched to from
        # deep in another's wait would add that depth to every thread it starts in turn.
        _switch(glet, _getcurrent())

    def _run(self, thread: threading.Thread, starter: greenlet.greenlet) -> None:
        """A simulated thread's whole life in its greenlet (the stdlib's bootstrap)."""
        starter.switch()  # parked until the kernel first hands it the turn
        events = sys.modules.get("asyncio.events")
        if events is not None:
            events._set_running_loop(None)  # a new thread runs no loop
        me = _getcurrent()
        try:
            thread.run()  # the kernel's wrapper: waits for the turn, runs, hands it on
        except SystemExit:
            pass
        except BaseException:
            thread._invoke_excepthook(thread)  # type: ignore[attr-defined]
        finally:
            with _active_lock:
                _active.pop(me.sim_ident, None)
                backends.greenlet_threads -= 1
            # join() and is_alive() on a stopped thread (3.10-3.12; the hooks answer
            # for 3.13's thread handle).
            thread._is_stopped = True  # type: ignore[attr-defined]
            thread._tstate_lock = None  # type: ignore[attr-defined]
            # The turn goes where the kernel handed it when the thread exited: the
            # greenlet's parent runs when it returns. (Not after close: a greenlet
            # left parked and collected later unwinds into whoever collected it.)
            if not self._closed:
                target = self.pending
                self.pending = None
                nxt = target.glet if target is not None else None
                me.parent = nxt if nxt is not None and nxt is not me else self.hub

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _identity.leave()

