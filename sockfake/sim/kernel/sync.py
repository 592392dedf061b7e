"""Blocking primitives on the simulation: one family for ``net.*`` and ``threading``.

Locks (``SimLock``, ``SimRLock``), conditions (``SimCondition``) and events (``SimEvent``)
here, semaphores (``SimSemaphore``, ``SimBoundedSemaphore``) in
``sockfake.sim.kernel.semaphores``, queues (``SimQueue``, ``SimSimpleQueue``) in
``sockfake.sim.kernel.queues``. ``net.lock()``,
``net.event()`` and ``net.queue()`` return them, and so does ``net.intercept()`` when a
simulated thread makes a ``threading.Lock``, ``RLock``, ``Condition``, ``Semaphore``,
``BoundedSemaphore``, ``Event``, ``Barrier`` (the stdlib's own logic on a ``SimCondition``)
or ``queue.SimpleQueue`` (``queue.Queue`` and ``concurrent.futures`` build on those).
They carry the stdlib's surface: ``threading.Lock``'s argument errors, ``acquire_lock``,
``_at_fork_reinit``, the ``_is_owned``/``_release_save`` protocol conditions use.

Every wait is a scheduling point of the kernel on virtual time, so a contended lock, a
condition, a future's ``result()`` or a pool worker's ``get()`` lets the other simulated
threads run and the clock advance instead of blocking the real thread that holds the
turn. A wait from a thread outside the simulation (or once the network is closed)
raises ``SockfakeRuntimeError`` instead of hanging; taking a free lock, setting an event
or putting into a queue works from any thread (unobserved: an observed acquire is a
simulated thread's, see below).

Every primitive has a name numbered per network and per kind (``lock-3`` from
``net.lock()``, ``threading.Lock-2`` from interception: separate counters, so code that
makes locks of its own shifts no number of the test's), remembers where it was created,
and a lock (or a semaphore used as one) knows its owner: a deadlock dump says what a
thread waits on, created where, held by whom, and names the wait-for cycle.

**The one setting: ``observed``.** When ``observed`` is true, every acquire, release,
notify, set, put and get (not a re-entrant acquire, not a query) is a switch point
(``Kernel.preemption_point``: an exploring scheduler may run another thread there; an
acquire also refuses a thread outside the simulation, as ``net.lock()`` always has), and
contention goes to the trace (``lock-wait``, ``lock-acquire``, ``lock-release``,
``condition-wait``, ``condition-notify``, ``semaphore-*``, ``event-set``, ``queue-put``,
``queue-get``). When false, a primitive yields only when it must block, and records
nothing: the cheapest on the hot path of real code. What ``net.lock()``, ``net.event()``
and ``net.queue()`` return is observed; what interception hands out for ``threading`` and
``queue`` is not (``sockfake.sim.intercept.threads.OBSERVED``), except ``threading.Event``
and ``Timer``'s event, observed as they always were; so schedules and trace digests are
those of the two families this one replaced. Exploration that must see real code's locks
turns it on (issue 22); it can change per object at any time (``lock.observed = True``).
"""

from __future__ import annotations

import _thread
import os
import sys
import threading
from collections import deque
from typing import Any

from sockfake.errors import SockfakeRuntimeError
from sockfake.sim.kernel.core import Kernel
from sockfake.sim.kernel.threads import SimThread, WaitQueue

__all__ = ["Primitive", "SimLock", "SimRLock", "SimCondition", "SimEvent"]

_get_ident = _thread.get_ident
_TIMEOUT_MAX = _thread.TIMEOUT_MAX

_INTERNAL_MODULES = (
    "sockfake.sim.", "sockfake.servers", "sockfake.mixins", "sockfake.pool",
    "threading", "queue", "concurrent.",
)


# Is a module sockfake's or the stdlib threading modules'? Asked for every frame of every
# primitive made (queue.Queue() makes four, each some seven frames deep), so answered once
# per module name.
_internal_module: dict[str, bool] = {}
# 3.12+: a frame's module without making the frame an object (what makes a walk of
# ``f_back`` cost microseconds: each frame it passes becomes one).
_frame_module: Any = getattr(sys, "_getframemodulename", None)


def _internal(module: str) -> bool:
    internal = _internal_module.get(module)
    if internal is None:
        internal = _internal_module[module] = module.startswith(_INTERNAL_MODULES)
    return internal


def _creation_site() -> tuple[str, int]:
    """Where user code created a primitive: the first frame outside sockfake and the
    stdlib's threading modules (file and line; formatted only when read)."""
    # Depth 0, not 2: compiled by mypyc, sockfake's functions have no frame.
    if _frame_module is not None:
        depth = 0
        while True:
            module = _frame_module(depth)
            if not isinstance(module, str):
                break  # the stack's end, or a frame without a function: walk it below
            if not _internal(module):
                frame = sys._getframe(depth)
                return frame.f_code.co_filename, frame.f_lineno
            depth += 1
    frame = sys._getframe(0)
    while frame is not None:
        if not _internal(frame.f_globals.get("__name__", "")):
            return frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return "?", 0


def _lock_timeout(blocking: object, timeout: object) -> float:
    """A lock's ``acquire`` timeout other than -1 (forever), checked as ``_thread`` does."""
    if not isinstance(timeout, (int, float)):
        raise TypeError(f"'{type(timeout).__name__}' object cannot be interpreted as an integer")
    if not blocking:
        raise ValueError("can't specify a timeout for a non-blocking call")
    if timeout != timeout:
        raise ValueError("Invalid value NaN (not a number)")
    if timeout < 0:
        raise ValueError("timeout value must be a non-negative number")
    if timeout > _TIMEOUT_MAX:
        raise OverflowError("timeout value is too large")
    return float(timeout)


class Primitive:
    """What every primitive has: its kernel, a name, a creation site, ``observed``."""

    # A weak reference to one (as to a real lock) works in the pure build; mypyc's native
    # classes take none (as the Kernel).
    __slots__ = ("_kernel", "name", "observed", "strict", "_site_file", "_site_line",
                 "__weakref__")

    def __init__(self, kernel: Kernel, kind: str, name: str | None, observed: bool) -> None:
        self._kernel = kernel
        self.name = name or kernel.next_name(kind)
        self.observed = observed
        # Does an observed acquire refuse a thread outside the simulation (or a closed
        # network)? ``net.lock()``'s do; what interception hands real code does not (a
        # module-level cache made during a test is used by the next one).
        self.strict = True
        self._site_file, self._site_line = _creation_site()

    @property
    def created_at(self) -> str:
        """``app.py:12``: the line of user code that made it."""
        return f"{os.path.basename(self._site_file)}:{self._site_line}"

    def _waiting_kernel(self, call: str) -> Kernel:
        """The kernel, if the calling thread may wait on it; a clear error otherwise."""
        kernel = self._kernel
        if kernel.closed or not kernel.is_simulated_caller():
            raise SockfakeRuntimeError(
                f"{self.name}.{call} would block thread {threading.current_thread().name!r}, "
                "which is not part of this simulated network (the one that made it), or the "
                "network is closed: simulated locks, conditions, events and queues are "
                "waited on by that network's threads only"
            )
        return kernel

    def _notify_waiters(self, waiting: WaitQueue, kind: str, what: str) -> None:
        """After a change others may wait for (a release, a put): wake them; observed, a
        trace event ``kind`` when it wakes one, and a switch point."""
        if waiting.waiters:
            if self.observed:
                self._kernel.record(kind, self.name)
            waiting.notify_all()
        if self.observed:
            # The resource is the object, not its id: an id is reused once an object
            # is freed (a thread's internal locks), and two locks would then be one.
            self._kernel.preemption_point(what, self)

    def _switch_point(self, what: str) -> None:
        """An observed acquire: a switch point, taken by a simulated thread only."""
        kernel = self._kernel
        kernel.preemption_point(what, self, before=True)
        if self.strict:
            kernel.thread_for_caller()

    def _thread_name(self, ident: int) -> str:
        if not ident:
            return "nobody"
        thread = self._kernel.simulated_thread(ident)
        return thread.name if thread is not None else "a thread outside the simulation (or ended)"


class _Mutex(Primitive):
    """A lock's state: its owner and the threads waiting for it to be free."""

    __slots__ = ("_owner", "_released")

    def __init__(self, kernel: Kernel, kind: str, name: str | None, observed: bool) -> None:
        super().__init__(kernel, kind, name, observed)
        self._owner = 0  # the holder's threading.get_ident(); 0: free
        self._released = WaitQueue()

    @property
    def owner(self) -> SimThread | None:
        """The simulated thread holding the lock, if any (None: free, or held by a thread
        outside the simulation or one that has finished)."""
        return self._kernel.simulated_thread(self._owner) if self._owner else None

    def locked(self) -> bool:
        return self._owner != 0

    def acquire(self, blocking: object = True, timeout: object = -1) -> bool:
        raise NotImplementedError  # each lock's own

    def release(self) -> None:
        raise NotImplementedError  # each lock's own

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: object) -> None:
        self.release()

    def _at_fork_reinit(self) -> None:
        self._owner = 0

    def _contend(self, limit: float | None) -> bool:
        """Wait until the lock is free (False: the timeout passed first), then take it."""
        kernel = self._waiting_kernel("acquire()")
        deadline = None if limit is None else kernel.deadline(limit)
        if self.observed:
            kernel.record("lock-wait", f"{self.name} held by {self._thread_name(self._owner)}")
        # The state is read afresh after each wait, never narrowed across one: a build
        # compiled by mypyc would trust a narrowing another thread has since undone.
        while self._owner:
            if not kernel.wait((self._released,), deadline, self._waiting_on, on=self):
                if self._owner:
                    return False
        self._owner = _get_ident()
        if self.observed:
            kernel.record("lock-acquire", self.name)
        return True

    def _waiting_on(self) -> str:
        return (f"lock {self.name} (created at {self.created_at}, held by "
                f"{self._thread_name(self._owner)})")

    def __repr__(self) -> str:
        holder = "unlocked" if not self._owner else f"held by {self._thread_name(self._owner)}"
        return f"<{type(self).__name__} {self.name} {holder}, created at {self.created_at}>"


class SimLock(_Mutex):
    """``threading.Lock`` (and ``net.lock()``): not re-entrant; any thread may release it."""

    __slots__ = ()

    def __init__(self, kernel: Kernel, *, observed: bool = True, kind: str = "lock",
                 name: str | None = None) -> None:
        super().__init__(kernel, kind, name, observed)

    # ``object``, not ``bool``: any truth value, as threading and queue take (acquire(0));
    # a build compiled by mypyc would refuse an int for a ``bool``.
    def acquire(self, blocking: object = True, timeout: object = -1) -> bool:
        limit = None if timeout == -1 else _lock_timeout(blocking, timeout)
        if self.observed:  # _switch_point(), written out: the hottest path of all
            kernel = self._kernel
            kernel.preemption_point("lock acquire", self, before=True)
            me = kernel.thread_for_caller().ident if self.strict else _get_ident()
        else:
            me = _get_ident()
        if not self._owner:
            self._owner = me
            return True
        if not blocking:
            return False
        return self._contend(limit)

    def release(self) -> None:
        if not self._owner:
            raise RuntimeError("release unlocked lock")
        self._owner = 0
        # _notify_waiters(), written out: the hottest path of all.
        released = self._released
        if released.waiters:
            if self.observed:
                self._kernel.record("lock-release", self.name)
            released.notify_all()
        if self.observed:
            self._kernel.preemption_point("lock release", self)

    # ``_thread.lock``'s old names: defs, not aliases (mypyc compiles no alias of a method).
    def acquire_lock(self, blocking: object = True, timeout: object = -1) -> bool:
        return self.acquire(blocking, timeout)

    def release_lock(self) -> None:
        self.release()

    def locked_lock(self) -> bool:
        return self.locked()


class SimRLock(_Mutex):
    """``threading.RLock``: owned by a thread, re-entrant."""

    __slots__ = ("_count",)

    def __init__(self, kernel: Kernel, *, observed: bool = True, kind: str = "rlock",
                 name: str | None = None) -> None:
        super().__init__(kernel, kind, name, observed)
        self._count = 0

    def acquire(self, blocking: object = True, timeout: object = -1) -> bool:
        limit = None if timeout == -1 else _lock_timeout(blocking, timeout)
        me = _get_ident()
        if self._owner == me:
            self._count += 1
            return True
        if self.observed:
            self._switch_point("rlock acquire")
        if not self._owner:
            self._owner = me
            self._count = 1
            return True
        if not blocking or not self._contend(limit):
            return False
        self._count = 1
        return True

    def release(self) -> None:
        if self._owner != _get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if not self._count:
            self._owner = 0
            if self._released.waiters or self.observed:
                self._notify_waiters(self._released, "lock-release", "lock release")

    def _recursion_count(self) -> int:
        return self._count if self._owner == _get_ident() else 0

    # The protocol threading.Condition uses on an RLock.
    def _is_owned(self) -> bool:
        return self._owner == _get_ident()

    def _release_save(self) -> tuple[int, int]:
        if not self._count:
            raise RuntimeError("cannot release un-acquired lock")
        state = (self._count, self._owner)
        self._count = 0
        self._owner = 0
        self._notify_waiters(self._released, "lock-release", "lock release")
        return state

    def _acquire_restore(self, state: tuple[int, int]) -> None:
        self.acquire()
        self._count, self._owner = state

    def _at_fork_reinit(self) -> None:
        super()._at_fork_reinit()
        self._count = 0

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", count={self._count}>"


class _Waiter:
    """One ``Condition.wait``: notified or not, and the queue its thread waits on."""

    __slots__ = ("notified", "queue")

    def __init__(self) -> None:
        self.notified = False
        self.queue = WaitQueue()


class SimCondition(Primitive):
    """``threading.Condition`` over a simulated lock (or any lock); a new ``SimRLock``
    by default."""

    __slots__ = ("_lock", "_waiters")

    def __init__(self, kernel: Kernel, lock: object = None, *, observed: bool = True,
                 kind: str = "condition", name: str | None = None) -> None:
        super().__init__(kernel, kind, name, observed)
        self._lock: Any = lock if lock is not None else SimRLock(kernel, observed=observed)
        self._waiters: deque[_Waiter] = deque()

    @property
    def owner(self) -> SimThread | None:
        """Its lock's owner, if the lock knows one."""
        owner = getattr(self._lock, "owner", None)
        return owner if isinstance(owner, SimThread) else None

    def __enter__(self) -> Any:
        return self._lock.__enter__()

    def __exit__(self, *args: object) -> Any:
        return self._lock.__exit__(*args)

    def acquire(self, *args: Any, **kwargs: Any) -> Any:
        return self._lock.acquire(*args, **kwargs)

    def release(self) -> None:
        self._lock.release()

    def __repr__(self) -> str:
        return (f"<SimCondition {self.name} ({self._lock!r}, {len(self._waiters)} waiting), "
                f"created at {self.created_at}>")

    def _is_owned(self) -> bool:
        lock = self._lock
        if isinstance(lock, SimLock):  # owned while locked, as threading says of a Lock
            return lock._owner != 0
        if isinstance(lock, SimRLock):
            return lock._owner == _get_ident()
        owned = getattr(lock, "_is_owned", None)
        if owned is not None:
            return bool(owned())
        if lock.acquire(False):
            lock.release()
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
        kernel = self._kernel
        return self._wait_until(None if timeout is None else kernel.deadline(max(0.0, timeout)))

    def _wait_until(self, deadline: float | None) -> bool:
        """``wait()`` until ``deadline``, a virtual time (None: no timeout)."""
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        kernel = self._waiting_kernel("wait()")
        waiter = _Waiter()
        self._waiters.append(waiter)
        saved = self._release_save()
        try:
            if self.observed:
                kernel.record("condition-wait", self.name)
            while not waiter.notified:
                if not kernel.wait((waiter.queue,), deadline, self._waiting_on):
                    break
            return waiter.notified
        finally:
            if not waiter.notified:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            self._acquire_restore(saved)

    def _waiting_on(self) -> str:
        return f"condition {self.name} (created at {self.created_at}): a notify"

    def wait_for(self, predicate: Any, timeout: float | None = None) -> Any:
        kernel = self._kernel
        endtime = None
        result = predicate()
        while not result:
            if timeout is not None:
                # One deadline for every wait, counted on the host's clock once.
                if endtime is None:
                    endtime = kernel.deadline(max(0.0, timeout))
                elif endtime <= kernel.now:
                    break
            self._wait_until(endtime)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        woken = 0
        waiters = self._waiters
        while woken < n and waiters:
            waiter = waiters.popleft()
            waiter.notified = True
            waiter.queue.notify_all()
            woken += 1
        if self.observed:
            if woken:
                self._kernel.record("condition-notify", f"{self.name} wakes {woken}")
            self._kernel.preemption_point("condition notify", self)

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    def notifyAll(self) -> None:  # threading's old name, a def (mypyc compiles no alias)
        self.notify(len(self._waiters))


class SimEvent(Primitive):
    """``threading.Event`` (and ``net.event()``)."""

    __slots__ = ("_flag", "_changed")

    def __init__(self, kernel: Kernel, *, observed: bool = True, kind: str = "event",
                 name: str | None = None) -> None:
        super().__init__(kernel, kind, name, observed)
        self._flag = False
        self._changed = WaitQueue()

    def __repr__(self) -> str:
        return f"<SimEvent {self.name} {'set' if self._flag else 'unset'}, " \
               f"created at {self.created_at}>"

    def is_set(self) -> bool:
        return self._flag

    def isSet(self) -> bool:  # threading's old alias, a def (mypyc compiles no alias)
        return self._flag

    def set(self) -> None:
        if self.observed and not self._flag and self._changed.waiters:
            self._kernel.record("event-set", self.name)
        self._flag = True
        self._changed.notify_all()
        if self.observed:
            self._kernel.preemption_point("event set", self)

    def clear(self) -> None:
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        kernel = self._waiting_kernel("wait()")
        deadline = None if timeout is None else kernel.deadline(max(0.0, timeout))
        while not self._flag:
            if not kernel.wait((self._changed,), deadline, self._waiting_on):
                return self._flag
        return True

    def _waiting_on(self) -> str:
        return f"event {self.name} (created at {self.created_at})"
