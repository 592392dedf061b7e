"""Blocking primitives on the simulation: events, locks and queues.

Each wait is a scheduling point of the kernel, so a server's ``shutdown()`` waiting on
its event, or a pool worker waiting on its queue, lets other simulated threads run and
the clock advance instead of blocking the real thread that holds the turn.

Events, locks and queues have a name (``lock-3``, numbered per network, so traces do
not depend on the process) and remember where they were created; their operations go
to the trace, and a deadlock dump says which one a thread waits on, created where,
held by whom.
"""

from __future__ import annotations

import collections
import os
import queue as _queue
import sys
from collections.abc import Callable
from typing import Any

from sockfake.sim.kernel.core import Kernel, SimThread, WaitQueue

__all__ = ["SimEvent", "SimLock", "SimQueue"]


def _creation_site() -> str:
    """Where user code created a primitive: the first frame outside sockfake and the
    stdlib's threading modules."""
    frame = sys._getframe(0)  # not 2: compiled by mypyc, sockfake's functions have no frame
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(_INTERNAL_MODULES):
            return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


_INTERNAL_MODULES = (
    "sockfake.sim.", "sockfake.servers", "sockfake.mixins", "sockfake.pool",
    "threading", "queue", "concurrent.",
)


class SimEvent:
    """``threading.Event`` on virtual time."""

    def __init__(self, kernel: Kernel, name: str | None = None) -> None:
        self._kernel = kernel
        self._flag = False
        self._changed = WaitQueue()
        self.name = name or kernel.next_name("event")
        self.created_at = _creation_site()

    def __repr__(self) -> str:
        return f"<SimEvent {self.name} {'set' if self._flag else 'unset'}, " \
               f"created at {self.created_at}>"

    def is_set(self) -> bool:
        return self._flag

    def isSet(self) -> bool:  # threading's old alias, a def (mypyc compiles no alias)
        return self._flag

    def set(self) -> None:
        if not self._flag and self._changed.waiters:
            self._kernel.record("event-set", self.name)
        self._flag = True
        self._changed.notify_all()
        self._kernel.preemption_point("event set")

    def clear(self) -> None:
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        deadline = None if timeout is None else self._kernel.now + max(0.0, timeout)
        while not self._flag:
            if not self._kernel.wait((self._changed,), deadline, self._waiting_on):
                return self._flag
        return True

    def _waiting_on(self) -> str:
        return f"event {self.name} (created at {self.created_at})"


class SimLock:
    """A non-reentrant lock whose ``acquire`` is a scheduling point."""

    def __init__(self, kernel: Kernel, name: str | None = None) -> None:
        self._kernel = kernel
        self._owner: SimThread | None = None
        self._released = WaitQueue()
        self.name = name or kernel.next_name("lock")
        self.created_at = _creation_site()

    def __repr__(self) -> str:
        holder = "unlocked" if self._owner is None else f"held by {self._owner.name}"
        return f"<SimLock {self.name} {holder}, created at {self.created_at}>"

    @property
    def owner(self) -> SimThread | None:
        """The simulated thread holding the lock, if any."""
        return self._owner

    # ``object``, not ``bool``: any truth value, as threading and queue take (acquire(0));
    # a build compiled by mypyc would refuse an int for a ``bool``.
    def acquire(self, blocking: object = True, timeout: float = -1) -> bool:
        self._kernel.preemption_point("lock acquire")
        if self._owner is None:
            self._owner = self._kernel.thread_for_caller()
            return True
        if not blocking:
            return False
        deadline = None if timeout is None or timeout < 0 else self._kernel.now + timeout
        self._kernel.record("lock-wait", f"{self.name} held by {self._owner.name}")
        while self._owner is not None:
            if not self._kernel.wait((self._released,), deadline, self._waiting_on, on=self):
                if self._owner is not None:
                    return False
        self._owner = self._kernel.thread_for_caller()
        self._kernel.record("lock-acquire", self.name)
        return True

    def _waiting_on(self) -> str:
        holder = "nobody" if self._owner is None else self._owner.name
        return f"lock {self.name} (created at {self.created_at}, held by {holder})"

    def release(self) -> None:
        if self._owner is None:
            raise RuntimeError("release unlocked lock")
        self._owner = None
        if self._released.waiters:
            self._kernel.record("lock-release", self.name)
        self._released.notify_all()
        self._kernel.preemption_point("lock release")

    def locked(self) -> bool:
        return self._owner is not None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: object) -> None:
        self.release()


class SimQueue:
    """``queue.Queue`` on virtual time (FIFO, optional bound)."""

    def __init__(self, kernel: Kernel, maxsize: int = 0, name: str | None = None) -> None:
        self._kernel = kernel
        self.maxsize = maxsize
        self._items: collections.deque[Any] = collections.deque()
        self._changed = WaitQueue()
        self.name = name or kernel.next_name("queue")
        self.created_at = _creation_site()

    def __repr__(self) -> str:
        return f"<SimQueue {self.name} {len(self._items)} items, created at {self.created_at}>"

    def _waiting_on(self, what: str) -> Callable[[], str]:
        return lambda: f"queue {self.name} {what} (created at {self.created_at})"

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def put(self, item: Any, block: object = True, timeout: float | None = None) -> None:
        deadline = None if timeout is None else self._kernel.now + timeout
        while self.full():
            if not block or not self._kernel.wait(
                (self._changed,), deadline, self._waiting_on("put")
            ):
                if self.full():
                    raise _queue.Full
        self._items.append(item)
        if self._changed.waiters:
            self._kernel.record("queue-put", self.name)
        self._changed.notify_all()
        self._kernel.preemption_point("queue put")

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)

    def get(self, block: object = True, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else self._kernel.now + timeout
        while not self._items:
            if not block or not self._kernel.wait(
                (self._changed,), deadline, self._waiting_on("get")
            ):
                if not self._items:
                    raise _queue.Empty
        item = self._items.popleft()
        if self._changed.waiters:
            self._kernel.record("queue-get", self.name)
        self._changed.notify_all()
        self._kernel.preemption_point("queue get")
        return item

    def get_nowait(self) -> Any:
        return self.get(block=False)
