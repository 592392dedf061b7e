"""``concurrent.futures`` under interception: deterministic pools.

``ThreadPoolExecutor`` and ``Future`` need little of their own: they build on
``threading``'s names, looked up at call time, so a pool made by a simulated thread
runs simulated workers. Three things are replaced:

- the pool's name counter (``pool_counter``), so worker names (which the trace shows)
  do not depend on the pools the process made before;
- its ``_threads`` (``pool_init``): a set, which ``shutdown(wait=True)`` joins in the
  order of the threads' addresses; in start order instead, so the joiner wakes at the
  same step in every run;
- ``concurrent.futures.thread._global_shutdown_lock`` (``SharedShutdownLock``): a real
  lock made at import, which ``submit()`` holds while it starts a worker and waits for
  it to run. A simulated thread switched out there kept it, and the next simulated
  ``submit()`` blocked on it for real, holding the turn (a stall, or a schedule that
  depended on real timing). Simulated threads now take a simulated lock of their
  network first, so they wait for each other in the simulation.

A pool made outside the simulation (at import, before ``net.intercept()``, by a
thread outside it) has a real work queue, and workers that are real threads outside
the simulation or none yet: a simulated thread's ``submit()`` to it would block a
worker, or the simulation, on a real queue. ``pool_submit`` hands such work to a
stand-in pool made for the duration by the simulated thread (the original's
``max_workers``, thread name prefix and initializer): simulated workers, simulated
futures, virtual time. The original is untouched, and threads outside the simulation
still use it; ``shutdown()`` from a simulated thread shuts the stand-in down too. The
stand-ins are shut down (without waiting) when the interception ends.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from sockfake.sim.intercept.dispatch import REAL as _real, caller_network
from sockfake.sim.intercept.threads import new_lock

__all__ = [
    "SharedShutdownLock", "forget_stand_ins", "pool_counter", "pool_init", "pool_shutdown",
    "pool_submit",
]  # fmt: skip

_pool_numbers: weakref.WeakKeyDictionary[Any, Iterator[int]] = weakref.WeakKeyDictionary()


def pool_counter(original: Callable[[], int]) -> Any:
    """``ThreadPoolExecutor``'s name counter, per network: worker names (which the trace
    shows) must not depend on how many pools the process made before."""

    def counter() -> int:
        net = caller_network()
        if net is None:
            return original()
        numbers = _pool_numbers.get(net)
        if numbers is None:
            numbers = _pool_numbers[net] = itertools.count()
        return next(numbers)

    return staticmethod(counter)


class SharedShutdownLock:
    """Stands in for ``_global_shutdown_lock``: a simulated thread first takes its
    network's own simulated lock (waiting in the simulation), then the real one (which
    only a thread outside the simulation, say at interpreter exit, can hold)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._per_network: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        # The simulated lock each thread holds (networks in other threads have theirs).
        self._held: dict[int, Any] = {}

    def _sim_lock(self) -> Any:
        net = caller_network()
        if net is None:
            return None
        lock = self._per_network.get(net)
        if lock is None:
            lock = self._per_network[net] = new_lock(net.kernel)
        return lock

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        lock = self._sim_lock()
        if lock is not None and not lock.acquire(blocking, timeout):
            return False
        if not self._real.acquire(blocking, timeout):
            if lock is not None:
                lock.release()
            return False
        if lock is not None:
            self._held[threading.get_ident()] = lock
        return True

    def release(self) -> None:
        lock = self._held.pop(threading.get_ident(), None)
        self._real.release()
        if lock is not None:
            lock.release()

    def locked(self) -> bool:
        return bool(self._real.locked())

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: object) -> None:
        self.release()


class _StartOrderSet(dict[Any, None]):
    """The set operations ``ThreadPoolExecutor`` uses on ``_threads``, iterated in
    insertion order (a set's order follows the members' hashes: their addresses)."""

    def add(self, item: Any) -> None:
        self[item] = None

    def discard(self, item: Any) -> None:
        self.pop(item, None)

    def remove(self, item: Any) -> None:
        del self[item]


def pool_init(original: Callable[..., None]) -> Callable[..., None]:
    """``ThreadPoolExecutor.__init__``: made by a simulated thread, its workers are
    joined in start order (see the module's docstring)."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if caller_network() is not None and isinstance(getattr(self, "_threads", None), set):
            self._threads = _StartOrderSet.fromkeys(self._threads)

    __init__.__doc__ = original.__doc__
    return __init__


# id of a pool made outside the simulation -> (it, its stand-in), for the duration.
_stand_ins: dict[int, tuple[Any, Any]] = {}


def _made_outside(pool: Any) -> bool:
    """Was ``pool`` made outside the simulation? Its work queue is the real
    ``SimpleQueue`` (a pool a simulated thread makes gets a simulated one)."""
    return isinstance(getattr(pool, "_work_queue", None), _real["SimpleQueue"])


def _stand_in(pool: Any) -> Any:
    entry = _stand_ins.get(id(pool))
    if entry is not None and entry[0] is pool:
        return entry[1]
    from concurrent.futures import thread as futures_thread

    # Made by the calling simulated thread: a simulated pool, on its network. A plain
    # ThreadPoolExecutor: a subclass's constructor may want other arguments.
    stand_in = futures_thread.ThreadPoolExecutor(
        max_workers=pool._max_workers,
        thread_name_prefix=pool._thread_name_prefix,
        initializer=pool._initializer,
        initargs=pool._initargs,
    )
    _stand_ins[id(pool)] = (pool, stand_in)
    return stand_in


def pool_submit(real_submit: Callable[..., Any]) -> Any:
    """``ThreadPoolExecutor.submit``: a simulated thread's work for a pool made outside
    the simulation runs on its stand-in (see the module docstring)."""

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if (_made_outside(self) and not self._shutdown and not self._broken
                and caller_network() is not None):
            return _stand_in(self).submit(fn, *args, **kwargs)
        return real_submit(self, fn, *args, **kwargs)

    submit.__doc__ = real_submit.__doc__
    return submit


def pool_shutdown(real_shutdown: Callable[..., Any]) -> Any:
    """``ThreadPoolExecutor.shutdown``: from a simulated thread, the stand-in of a pool
    made outside the simulation is shut down with it."""

    def shutdown(self: Any, wait: bool = True, *, cancel_futures: bool = False) -> None:
        entry = _stand_ins.get(id(self)) if _stand_ins else None
        if entry is not None and entry[0] is self and caller_network() is not None:
            entry[1].shutdown(wait=wait, cancel_futures=cancel_futures)
        real_shutdown(self, wait=wait, cancel_futures=cancel_futures)

    shutdown.__doc__ = real_shutdown.__doc__
    return shutdown


def forget_stand_ins() -> None:
    """The interception ends: each stand-in is told to stop (its idle workers leave
    when they next run, or when the network closes), so none is left for the
    network's close to kill in the middle of its wait (a CRITICAL log line)."""
    for _, stand_in in _stand_ins.values():
        stand_in.shutdown(wait=False)
    _stand_ins.clear()
