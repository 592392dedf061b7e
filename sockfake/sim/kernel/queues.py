"""Queues on the simulation: ``net.queue()`` and ``queue.SimpleQueue`` under interception.

Members of the family in ``sockfake.sim.kernel.sync`` (a name, a creation site, the
``observed`` setting: see there). ``queue.Queue``, ``LifoQueue`` and ``PriorityQueue``
under interception stay the stdlib's own classes, built on that family's lock and
conditions.
"""

from __future__ import annotations

import collections
import queue as _queue
from collections.abc import Callable
from typing import Any

from sockfake.sim.kernel.core import Kernel
from sockfake.sim.kernel.sync import Primitive
from sockfake.sim.kernel.threads import WaitQueue

__all__ = ["SimQueue", "SimSimpleQueue"]


class SimQueue(Primitive):
    """``queue.Queue`` on virtual time (FIFO, optional bound): ``net.queue()``."""

    __slots__ = ("maxsize", "_items", "_changed")

    def __init__(self, kernel: Kernel, maxsize: int = 0, *, observed: bool = True,
                 kind: str = "queue", name: str | None = None) -> None:
        super().__init__(kernel, kind, name, observed)
        self.maxsize = maxsize
        self._items: collections.deque[Any] = collections.deque()
        # Getters and putters wait on one queue: a change wakes both, each looks again.
        self._changed = WaitQueue()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name} {len(self._items)} items, "
                f"created at {self.created_at}>")

    def _waiting_on(self, what: str) -> Callable[[], str]:
        return lambda: f"queue {self.name} {what} (created at {self.created_at})"

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def put(self, item: Any, block: object = True, timeout: float | None = None) -> None:
        if 0 < self.maxsize <= len(self._items):  # full(), without the call
            self._wait_while(self.full, block, timeout, "put", _queue.Full)
        self._items.append(item)
        if self._changed.waiters or self.observed:  # else nothing to do: save the call
            self._notify_waiters(self._changed, "queue-put", "queue put")

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)

    def get(self, block: object = True, timeout: float | None = None) -> Any:
        if not self._items:
            self._wait_while(self.empty, block, timeout, "get", _queue.Empty)
        item = self._items.popleft()
        if self._changed.waiters or self.observed:
            self._notify_waiters(self._changed, "queue-get", "queue get")
        return item

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def _wait_while(self, busy: Callable[[], bool], block: object, timeout: float | None,
                    what: str, error: type[Exception]) -> None:
        """Wait (if ``block``, until ``timeout``) while ``busy()``; ``error`` if it stays."""
        if not block:
            raise error
        kernel = self._waiting_kernel(f"{what}()")
        deadline = None if timeout is None else kernel.deadline(timeout)
        while busy():
            if not kernel.wait((self._changed,), deadline, self._waiting_on(what)) and busy():
                raise error


class SimSimpleQueue(SimQueue):
    """``queue.SimpleQueue``: unbounded, so a ``put`` never blocks."""

    __slots__ = ()

    def __init__(self, kernel: Kernel, *, observed: bool = True, kind: str = "simplequeue",
                 name: str | None = None) -> None:
        super().__init__(kernel, 0, observed=observed, kind=kind, name=name)

    def get(self, block: object = True, timeout: float | None = None) -> Any:
        if block and timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        return super().get(block, timeout)

    def get_nowait(self) -> Any:
        return self.get(False)
