"""Semaphores on the simulation: ``threading.Semaphore`` and ``BoundedSemaphore`` under
interception.

Members of the family in ``sockfake.sim.kernel.sync`` (a name, a creation site, the
``observed`` setting: see there).
"""

from __future__ import annotations

import _thread

from sockfake.sim.kernel.core import Kernel
from sockfake.sim.kernel.sync import Primitive
from sockfake.sim.kernel.threads import SimThread, WaitQueue

__all__ = ["SimSemaphore", "SimBoundedSemaphore"]

_get_ident = _thread.get_ident


class SimSemaphore(Primitive):
    """``threading.Semaphore``. Used as a mutex (initial value 1) it has an owner: the
    thread that took it last, while its value is 0."""

    __slots__ = ("_value", "_initial_value", "_last", "_changed")

    def __init__(self, kernel: Kernel, value: int = 1, *, observed: bool = True,
                 kind: str = "semaphore", name: str | None = None) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        super().__init__(kernel, kind, name, observed)
        self._value = value
        self._initial_value = value
        self._last = 0  # who acquired it last (threading.get_ident())
        self._changed = WaitQueue()

    @property
    def owner(self) -> SimThread | None:
        if self._initial_value != 1 or self._value or not self._last:
            return None
        return self._kernel.simulated_thread(self._last)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name} value={self._value}, "
                f"created at {self.created_at}>")

    def acquire(self, blocking: object = True, timeout: float | None = None) -> bool:
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        if self.observed:
            self._switch_point("semaphore acquire")
        if self._value > 0:
            self._value -= 1
            self._last = _get_ident()
            return True
        if not blocking or (timeout is not None and timeout <= 0):
            return False
        kernel = self._waiting_kernel("acquire()")
        deadline = None if timeout is None else kernel.deadline(timeout)
        if self.observed:
            kernel.record("semaphore-wait", self.name)
        while self._value <= 0:
            if not kernel.wait((self._changed,), deadline, self._waiting_on, on=self):
                if self._value <= 0:
                    return False
        self._value -= 1
        self._last = _get_ident()
        if self.observed:
            kernel.record("semaphore-acquire", self.name)
        return True

    def _waiting_on(self) -> str:
        owner = self.owner
        held = f", held by {owner.name}" if owner is not None else ""
        return f"semaphore {self.name} (created at {self.created_at}{held})"

    def __enter__(self) -> bool:
        return self.acquire()

    def release(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be one or more")
        self._value += n
        self._notify_waiters(self._changed, "semaphore-release", "semaphore release")

    def __exit__(self, *args: object) -> None:
        self.release()


class SimBoundedSemaphore(SimSemaphore):
    """``threading.BoundedSemaphore``."""

    __slots__ = ()

    def release(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be one or more")
        if self._value + n > self._initial_value:
            raise ValueError("Semaphore released too many times")
        super().release(n)
