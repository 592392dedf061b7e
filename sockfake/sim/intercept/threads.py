"""``threading`` and ``queue`` primitives for ``net.intercept()``: the kernel's own.

``sockfake.sim.intercept.threading_names`` and ``install`` call these makers in place
of ``threading.Lock()``, ``RLock()``, ``Condition()``, ``Semaphore()``,
``BoundedSemaphore()``, ``Event()``, ``Barrier()`` and ``queue.SimpleQueue()`` when a
simulated thread creates one. They bind a primitive of the one family
(``sockfake.sim.kernel.sync`` and its siblings: waits on virtual time, a name, a
creation site, an owner in deadlock reports) to the caller's kernel, named by its
stdlib name (``threading.Lock-3``: counters apart from ``net.lock()``'s ``lock-N``).
Only ``Barrier`` needs more than a maker: the stdlib's own class, on a simulated
condition.

``OBSERVED`` is whether what they make is observed (switch points, trace events; see
``sockfake.sim.kernel.sync``): off, as these primitives have always been, so real code's
schedules and trace digests stay what they were. ``Event`` is the exception: it was
``net.event()``'s class from the start, and stays observed.
"""

from __future__ import annotations

import threading
from typing import Any

from sockfake.sim.kernel.core import Kernel
from sockfake.sim.kernel.queues import SimSimpleQueue
from sockfake.sim.kernel.semaphores import SimBoundedSemaphore, SimSemaphore
from sockfake.sim.kernel.sync import SimCondition, SimEvent, SimLock, SimRLock

__all__ = [
    "OBSERVED",
    "new_lock",
    "new_rlock",
    "new_condition",
    "new_semaphore",
    "new_bounded_semaphore",
    "new_event",
    "new_simple_queue",
    "sim_barrier_class",
]

# Are intercepted threading and queue primitives switch points with trace events?
# (Issue 22 turns this on when exploring.)
OBSERVED = False

_real_Barrier = threading.Barrier


def new_lock(kernel: Kernel) -> SimLock:
    return SimLock(kernel, observed=OBSERVED, kind="threading.Lock")


def new_rlock(kernel: Kernel) -> SimRLock:
    return SimRLock(kernel, observed=OBSERVED, kind="threading.RLock")


def new_condition(kernel: Kernel, lock: Any = None) -> SimCondition:
    if lock is None:
        lock = new_rlock(kernel)
    return SimCondition(kernel, lock, observed=OBSERVED, kind="threading.Condition")


def new_semaphore(kernel: Kernel, value: int = 1) -> SimSemaphore:
    return SimSemaphore(kernel, value, observed=OBSERVED, kind="threading.Semaphore")


def new_bounded_semaphore(kernel: Kernel, value: int = 1) -> SimBoundedSemaphore:
    return SimBoundedSemaphore(kernel, value, observed=OBSERVED,
                               kind="threading.BoundedSemaphore")


def new_event(kernel: Kernel) -> SimEvent:
    # Observed and numbered with net.event()'s, as threading.Event always was here.
    return SimEvent(kernel)


def new_simple_queue(kernel: Kernel) -> SimSimpleQueue:
    return SimSimpleQueue(kernel, observed=OBSERVED, kind="queue.SimpleQueue")


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
            self._cond = new_condition(_kernel, new_lock(_kernel))

    SimBarrier.__name__ = SimBarrier.__qualname__ = "Barrier"
    return SimBarrier
