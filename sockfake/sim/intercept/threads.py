"""``threading`` and ``queue`` primitives whose waits are scheduling points of a kernel.

``sockfake.sim.intercept.install`` hands these out in place of ``threading.Lock()``,
``RLock()``, ``Condition()``, ``Semaphore()``, ``BoundedSemaphore()``, ``Barrier()``,
``Timer`` and ``queue.SimpleQueue()`` when a simulated thread creates one. Every wait
goes through ``Kernel.wait`` on virtual time, so a contended lock, a condition, a
future's ``result()`` or a pool worker's ``get()`` lets the other simulated threads
run and the clock move instead of blocking the real thread that holds the turn.

An object is bound to the kernel of the thread that made it. A thread outside that
simulation (or any thread once the network is closed) may still use it as long as
it does not have to wait (take a free lock, set an event, put into a queue); a wait
from outside raises ``SockfakeRuntimeError`` instead of hanging.
"""

from __future__ import annotations

import _thread
import collections
import queue as _queue
import threading
from typing import Any

from sockfake.network import SockfakeRuntimeError
from sockfake.sim.kernel.core import Kernel, WaitQueue, current_kernel

__all__ = [
    "SimThreadingLock",
    "SimRLock",
    "SimCondition",
    "SimSemaphore",
    "SimBoundedSemaphore",
    "SimSimpleQueue",
    "sim_barrier_class",
]

_real_Barrier = threading.Barrier


def _own_kernel(kernel: Kernel, what: str) -> Kernel:
    """The kernel, if the calling thread may wait on it; a clear error otherwise."""
    if kernel.closed or current_kernel() is not kernel:
        raise SockfakeRuntimeError(
            f"{what} would block thread {threading.current_thread().name!r}, which is not "
            "part of the simulation that created this object (or the network is closed): "
            "simulated locks, conditions and queues are waited on by simulated threads only"
        )
    return kernel


def _lock_timeout(blocking: bool, timeout: float) -> float | None:
    if not blocking and timeout != -1:
        raise ValueError("can't specify a timeout for a non-blocking call")
    if timeout < 0 and timeout != -1:
        raise ValueError("timeout value must be a non-negative number")
    return None if timeout == -1 else float(timeout)


class SimThreadingLock:
    """``threading.Lock`` on virtual time: any thread may release it, as the real one."""

    __slots__ = ("_kernel", "_locked", "_released", "__weakref__")

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._locked = False
        self._released = WaitQueue()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        limit = _lock_timeout(blocking, timeout)
        if not self._locked:
            self._locked = True
            return True
        if not blocking:
            return False
        kernel = _own_kernel(self._kernel, "threading.Lock.acquire()")
        deadline = None if limit is None else kernel.now + limit
        while self._locked:
            if not kernel.wait((self._released,), deadline, "threading.Lock") and self._locked:
                return False
        self._locked = True
        return True

    acquire_lock = acquire

    def release(self) -> None:
        if not self._locked:
            raise RuntimeError("release unlocked lock")
        self._locked = False
        self._released.notify_all()

    release_lock = release

    def locked(self) -> bool:
        return self._locked

    locked_lock = locked

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: object) -> None:
        self.release()

    def _at_fork_reinit(self) -> None:
        self._locked = False

    def __repr__(self) -> str:
        state = "locked" if self._locked else "unlocked"
        return f"<{state} sockfake simulated lock>"


class SimRLock:
    """``threading.RLock`` on virtual time (owned by a thread, re-entrant)."""

    __slots__ = ("_kernel", "_owner", "_count", "_released", "__weakref__")

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._owner: int | None = None
        self._count = 0
        self._released = WaitQueue()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        limit = _lock_timeout(blocking, timeout)
        me = _thread.get_ident()
        if self._owner == me:
            self._count += 1
            return True
        if self._owner is None:
            self._owner, self._count = me, 1
            return True
        if not blocking:
            return False
        kernel = _own_kernel(self._kernel, "threading.RLock.acquire()")
        deadline = None if limit is None else kernel.now + limit
        while self._owner is not None:
            if (
                not kernel.wait((self._released,), deadline, "threading.RLock")
                and self._owner is not None
            ):
                return False
        self._owner, self._count = me, 1
        return True

    def release(self) -> None:
        if self._owner != _thread.get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if not self._count:
            self._owner = None
            self._released.notify_all()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: object) -> None:
        self.release()

    def locked(self) -> bool:
        return self._owner is not None

    # The protocol threading.Condition uses on an RLock.
    def _is_owned(self) -> bool:
        return self._owner == _thread.get_ident()

    def _release_save(self) -> tuple[int, int | None]:
        if not self._count:
            raise RuntimeError("cannot release un-acquired lock")
        state = (self._count, self._owner)
        self._count, self._owner = 0, None
        self._released.notify_all()
        return state

    def _acquire_restore(self, state: tuple[int, int | None]) -> None:
        self.acquire()
        self._count, self._owner = state

    def _at_fork_reinit(self) -> None:
        self._owner, self._count = None, 0

    def __repr__(self) -> str:
        state = "locked" if self._owner is not None else "unlocked"
        return f"<{state} sockfake simulated RLock count={self._count}>"


class _Waiter:
    __slots__ = ("notified", "queue")

    def __init__(self) -> None:
        self.notified = False
        self.queue = WaitQueue()


class SimCondition:
    """``threading.Condition`` on virtual time, over a simulated (or any) lock."""

    def __init__(self, kernel: Kernel, lock: Any = None) -> None:
        self._kernel = kernel
        if lock is None:
            lock = SimRLock(kernel)
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release
        self._waiters: collections.deque[_Waiter] = collections.deque()

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *args: object) -> None:
        self._lock.__exit__(*args)

    def __repr__(self) -> str:
        return f"<sockfake simulated Condition({self._lock!r}, {len(self._waiters)})>"

    def _is_owned(self) -> bool:
        owned = getattr(self._lock, "_is_owned", None)
        if owned is not None:
            return bool(owned())
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def _release_save(self) -> Any:
        save = getattr(self._lock, "_release_save", None)
        if save is not None:
            return save()
        self._lock.release()
        return None

    def _acquire_restore(self, state: Any) -> None:
        restore = getattr(self._lock, "_acquire_restore", None)
        if restore is not None:
            restore(state)
        else:
            self._lock.acquire()

    def wait(self, timeout: float | None = None) -> bool:
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        kernel = _own_kernel(self._kernel, "threading.Condition.wait()")
        waiter = _Waiter()
        self._waiters.append(waiter)
        saved = self._release_save()
        try:
            deadline = None if timeout is None else kernel.now + max(0.0, timeout)
            while not waiter.notified:
                if not kernel.wait((waiter.queue,), deadline, "threading.Condition"):
                    break
            return waiter.notified
        finally:
            if not waiter.notified:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            self._acquire_restore(saved)

    def wait_for(self, predicate: Any, timeout: float | None = None) -> Any:
        kernel = self._kernel
        endtime = None
        waittime = timeout
        result = predicate()
        while not result:
            if waittime is not None:
                if endtime is None:
                    endtime = kernel.now + waittime
                else:
                    waittime = endtime - kernel.now
                    if waittime <= 0:
                        break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        while n > 0 and self._waiters:
            waiter = self._waiters.popleft()
            waiter.notified = True
            waiter.queue.notify_all()
            n -= 1

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    notifyAll = notify_all


class SimSemaphore:
    """``threading.Semaphore`` on virtual time."""

    def __init__(self, kernel: Kernel, value: int = 1) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._kernel = kernel
        self._value = value
        self._changed = WaitQueue()

    def __repr__(self) -> str:
        return f"<sockfake simulated {type(self).__name__} value={self._value}>"

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        if self._value > 0:
            self._value -= 1
            return True
        if not blocking or (timeout is not None and timeout <= 0):
            return False
        kernel = _own_kernel(self._kernel, "threading.Semaphore.acquire()")
        deadline = None if timeout is None else kernel.now + timeout
        while self._value <= 0:
            if not kernel.wait((self._changed,), deadline, "threading.Semaphore"):
                if self._value <= 0:
                    return False
        self._value -= 1
        return True

    __enter__ = acquire

    def release(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be one or more")
        self._value += n
        self._changed.notify_all()

    def __exit__(self, *args: object) -> None:
        self.release()


class SimBoundedSemaphore(SimSemaphore):
    """``threading.BoundedSemaphore`` on virtual time."""

    def __init__(self, kernel: Kernel, value: int = 1) -> None:
        super().__init__(kernel, value)
        self._initial_value = value

    def release(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be one or more")
        if self._value + n > self._initial_value:
            raise ValueError("Semaphore released too many times")
        super().release(n)


def sim_barrier_class() -> type[threading.Barrier]:
    """The stdlib's own ``Barrier`` logic, on a simulated condition."""

    class SimBarrier(_real_Barrier):
        def __init__(
            self,
            parties: int,
            action: Any = None,
            timeout: float | None = None,
            *,
            _kernel: Kernel,
        ) -> None:
            super().__init__(parties, action, timeout)
            self._cond = SimCondition(_kernel, SimThreadingLock(_kernel))

    SimBarrier.__name__ = SimBarrier.__qualname__ = "Barrier"
    return SimBarrier


class SimSimpleQueue:
    """``queue.SimpleQueue`` (unbounded FIFO) on virtual time."""

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._items: collections.deque[Any] = collections.deque()
        self._changed = WaitQueue()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self._items.append(item)
        self._changed.notify_all()

    def put_nowait(self, item: Any) -> None:
        self.put(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        if not self._items and block:
            kernel = _own_kernel(self._kernel, "queue.SimpleQueue.get()")
            deadline = None if timeout is None else kernel.now + timeout
            while not self._items:
                if not kernel.wait((self._changed,), deadline, "queue.SimpleQueue.get"):
                    break
        if not self._items:
            raise _queue.Empty
        return self._items.popleft()

    def get_nowait(self) -> Any:
        return self.get(False)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<sockfake simulated SimpleQueue size={len(self._items)}>"
