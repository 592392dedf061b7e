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
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from sockfake.sim.intercept.dispatch import caller_network
from sockfake.sim.intercept.threads import new_lock

__all__ = ["SharedShutdownLock", "pool_counter", "pool_init"]

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
