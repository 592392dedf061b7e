"""``threading`` and ``queue`` under interception: what their names hand out.

``threading.Lock``, ``RLock``, ``Condition``, ``Event``, ``Semaphore``,
``BoundedSemaphore``, ``Barrier``, ``Timer`` and ``queue.SimpleQueue`` become
factories: called by a simulated thread they make a primitive that waits in virtual
time (``sockfake.sim.intercept.threads``, ``sockfake.sim.kernel.sync``), called by any
other thread (or by the stdlib's own machinery, or import-time code) the real one.
``Thread.start`` becomes a switch point (the new thread runs first, as on the real
OS), and ``threading.enumerate``, ``active_count`` and ``_thread._count`` leave out the
simulation's helper threads and the simulated threads that have ended.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import sockfake.sim.kernel.backends as backends
from sockfake.sim.intercept.dispatch import (
    REAL as _real,
    _sim_kernel_for_new,
    caller_network,
    made_at_import,
)
from sockfake.sim.intercept.made_before import GuardedLock
from sockfake.sim.intercept.threads import (
    new_event,
    new_lock,
    new_rlock,
    new_simple_queue,
    sim_barrier_class,
)
from sockfake.sim.kernel.core import Kernel

__all__ = [
    "SimpleQueueDispatch",
    "active_count",
    "dispatch_class",
    "enumerate_threads",
    "lock",
    "make_barrier",
    "rlock",
    "start_yields",
    "thread_count",
    "timer_class",
]


def lock() -> Any:
    """``threading.Lock()``: a simulated lock when a simulated thread makes one."""
    kernel = _sim_kernel_for_new(1)
    if kernel is None:
        return _guarded_if_imported(_real["Lock"](), "threading.Lock")
    return new_lock(kernel)


def rlock(*args: Any, **kwargs: Any) -> Any:
    """``threading.RLock()``: a simulated one when a simulated thread makes one."""
    kernel = _sim_kernel_for_new(1)
    if kernel is None:
        return _guarded_if_imported(_real["RLock"](*args, **kwargs), "threading.RLock")
    return new_rlock(kernel)


def _guarded_if_imported(real_lock: Any, kind: str) -> Any:
    """A lock an import running in a simulated thread makes is real (the module
    outlives the simulation) and is a ``GuardedLock``: the lock itself for every
    thread, now and after the interception, except that a simulated thread that finds
    it held waits in virtual time, as for a module-level lock made before."""
    if caller_network() is None:
        return real_lock
    module = made_at_import(2)
    if module is None or sys._getframe(2).f_globals.get("__name__", "").startswith(
            "sockfake.sim."):
        return real_lock
    return GuardedLock(real_lock, f"made by the import of {module}",
                       what=f"the {kind} made by the import of {module}")


def dispatch_class(real_cls: type, make_sim: Callable[..., Any]) -> type:
    """A subclass of ``real_cls`` whose construction, in a simulated thread, makes a sim object.

    User subclasses of the patched class get the real behaviour (documented limit).
    """

    def __new__(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
        if cls is patched:
            kernel = _sim_kernel_for_new(1)
            if kernel is not None:
                return make_sim(kernel, *args, **kwargs)
        return object.__new__(cls)

    patched = type(
        real_cls.__name__,
        (real_cls,),
        {"__new__": __new__, "__module__": real_cls.__module__, "__doc__": real_cls.__doc__},
    )
    patched.__qualname__ = real_cls.__qualname__
    return patched


_SimBarrier: Any = sim_barrier_class()


def make_barrier(kernel: Kernel, parties: int, action: Any = None, timeout: Any = None) -> Any:
    return _SimBarrier(parties, action, timeout, _kernel=kernel)


def timer_class() -> type:
    real_timer: Any = _real["Timer"]

    class Timer(real_timer):  # type: ignore[misc]
        """``threading.Timer``: in a simulated thread its interval is virtual."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            net = caller_network()
            if net is not None:
                self.finished = new_event(net.kernel)

    Timer.__module__ = "threading"
    return Timer


class SimpleQueueDispatch:
    """Stands in for ``queue.SimpleQueue`` (C): simulated when a simulated thread makes one."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        kernel = _sim_kernel_for_new(1)
        if kernel is None:
            return _real["SimpleQueue"]()
        return new_simple_queue(kernel)

    __class_getitem__ = classmethod(lambda cls, item: cls)


SimpleQueueDispatch.__name__ = SimpleQueueDispatch.__qualname__ = "SimpleQueue"
SimpleQueueDispatch.__module__ = "queue"


# Callers that start threads while holding a real lock made at import time
# (ThreadPoolExecutor.submit holds concurrent.futures.thread._global_shutdown_lock):
# another simulated thread run there could block on that lock for real.
_STARTS_UNDER_A_REAL_LOCK = ("concurrent.futures", "multiprocessing")


def start_yields(start: Callable[[threading.Thread], None]) -> Any:
    """``Thread.start`` as a scheduling point: the new thread runs first.

    On the real OS a started thread runs at once, in parallel (the stdlib's own
    ``start()`` even waits for it to signal that it runs); under FIFO scheduling it
    would wait until its creator blocks, and a creator that never blocks (a server
    handling requests that need no reply) would pile up threads that a real run
    would long have finished (CPython's ``test_threads_reaped``).
    """

    def start_and_yield(self: threading.Thread) -> None:
        start(self)
        net = caller_network()
        if net is None or getattr(self, "_sockfake_thread", None) is None:
            return
        caller: str = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith(_STARTS_UNDER_A_REAL_LOCK):
            return
        net.kernel.yield_turn("thread start")

    start_and_yield.__doc__ = start.__doc__
    return start_and_yield


# -- threads the test should not see ---------------------------------------------------

_HIDDEN_NAMES = ("sockfake-watchdog", "sockfake-stray-sockets")  # WATCHER_NAME, SAMPLER_NAME


def _hidden(thread: threading.Thread) -> bool:
    return thread.daemon and thread.name in _HIDDEN_NAMES


def _finished_in_simulation(thread: threading.Thread) -> bool:
    # The kernel keeps its record (and so the Thread object) of every thread it ran.
    record = getattr(thread, "_sockfake_thread", None)
    return record is not None and record.state == "finished"


def _hide_dangling() -> None:
    """Forget helper threads, and simulated threads that have ended, in
    ``threading._dangling`` (test.support's ``reap_threads`` compares it)."""
    dangling = getattr(threading, "_dangling", None)
    if dangling is not None:
        for thread in list(dangling):
            if _hidden(thread) or _finished_in_simulation(thread):
                dangling.discard(thread)


def enumerate_threads() -> list[threading.Thread]:
    threads = _real["enumerate"]()
    _hide_dangling()
    return [t for t in threads if not _hidden(t)]


def active_count() -> int:
    return len(enumerate_threads())


def thread_count() -> int:
    hidden = [t for t in _real["enumerate"]() if _hidden(t)]
    _hide_dangling()
    # backends.thread_count: the OS's count and the simulated threads on greenlets.
    return max(0, backends.thread_count() - sum(1 for t in hidden if t.is_alive()))
