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

What they make is observed (switch points, trace events; see
``sockfake.sim.kernel.sync``) whenever the network explores schedules (``random``,
``pct``, the swarm, a replay: ``Kernel.preempts``), so an exploration sees real code's
locks, conditions, semaphores and queues as it sees ``net.lock()``'s; under FIFO they
are not (``OBSERVED``, off), so a plain run stays as cheap, and its schedule and trace
digest what they were. ``Event`` is observed either way: it was ``net.event()``'s
class from the start. None of them is ``strict``: an acquire from a thread outside
the simulation, or after the network closed, works as the real one would.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from sockfake.sim.kernel.core import Kernel
from sockfake.sim.kernel.queues import SimSimpleQueue
from sockfake.sim.kernel.semaphores import SimBoundedSemaphore, SimSemaphore
from sockfake.sim.kernel.sync import Primitive, SimCondition, SimEvent, SimLock, SimRLock

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

# Are intercepted threading and queue primitives switch points with trace events
# when the network does not explore? (When it does, they always are.)
OBSERVED = False

_real_Barrier = threading.Barrier


_P = TypeVar("_P", bound=Primitive)


def _lenient(primitive: _P) -> _P:
    primitive.strict = False
    return primitive


def _observed(kernel: Kernel) -> bool:
    return OBSERVED or kernel.preempts


def new_lock(kernel: Kernel) -> SimLock:
    return _lenient(SimLock(kernel, observed=_observed(kernel), kind="threading.Lock"))


def new_rlock(kernel: Kernel) -> SimRLock:
    return _lenient(SimRLock(kernel, observed=_observed(kernel), kind="threading.RLock"))


def new_condition(kernel: Kernel, lock: Any = None) -> SimCondition:
    if lock is None:
        lock = new_rlock(kernel)
    return _lenient(SimCondition(kernel, lock, observed=_observed(kernel),
                                 kind="threading.Condition"))


def new_semaphore(kernel: Kernel, value: int = 1) -> SimSemaphore:
    return _lenient(SimSemaphore(kernel, value, observed=_observed(kernel),
                                 kind="threading.Semaphore"))


def new_bounded_semaphore(kernel: Kernel, value: int = 1) -> SimBoundedSemaphore:
    return _lenient(SimBoundedSemaphore(kernel, value, observed=_observed(kernel),
                                        kind="threading.BoundedSemaphore"))


def new_event(kernel: Kernel) -> SimEvent:
    # Observed and numbered with net.event()'s, as threading.Event always was here.
    return SimEvent(kernel)


def new_simple_queue(kernel: Kernel) -> SimSimpleQueue:
    return _lenient(SimSimpleQueue(kernel, observed=_observed(kernel), kind="queue.SimpleQueue"))


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
