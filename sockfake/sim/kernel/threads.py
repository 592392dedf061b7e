"""The kernel's record of a simulated thread, its states, and the queues it waits on.

A ``SimThread`` is one thread taking part in a simulation: its turn (a ``TurnHandle``),
its state, and what it waits for (wait queues, a deadline, the lock or thread that
must act first). Only the kernel (``sockfake.sim.kernel.core``) moves a thread between
states; ``THREAD_MOVES`` is the table of the moves it makes, as h11 keeps its state
machine (and as ``sockfake.sim.net.socket_state`` keeps the sockets'). The states are
plain strings (``ThreadState``), the same words the deadlock and stall dumps print.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from sockfake.sim.kernel.backends import TurnHandle
    from sockfake.sim.kernel.core import Kernel
    from sockfake.sim.kernel.timers import Timer

__all__ = ["THREAD_MOVES", "THREAD_STATES", "SimThread", "ThreadState", "WaitQueue"]

ThreadState = Literal["new", "ready", "running", "blocked", "finished"]
THREAD_STATES: tuple[ThreadState, ...] = get_args(ThreadState)

# Every move the kernel makes, from each state to the states it may go to next.
THREAD_MOVES: dict[ThreadState, frozenset[ThreadState]] = {
    # Adopted: queued to run. The main thread runs from the start.
    "new": frozenset({"ready", "running"}),
    # Picked to run; or dropped before it ever ran (its OS thread could not start).
    "ready": frozenset({"running", "finished"}),
    # Waits (Kernel.wait), yields (yield_turn), or returns from its target.
    "running": frozenset({"blocked", "ready", "finished"}),
    # Woken (notify, timeout, signal, failed); or handed the turn directly: a thread
    # close() unwinds, the main thread after a stall or when close() is done.
    "blocked": frozenset({"ready", "running"}),
    "finished": frozenset(),
}


class WaitQueue:
    """Threads waiting for one thing to change (a socket's state, an event, a thread's end)."""

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        # A dict keeps insertion order (deterministic) and O(1) removal.
        self.waiters: dict[SimThread, None] = {}

    def notify_all(self) -> None:
        if not self.waiters:
            return
        waiters = list(self.waiters)
        self.waiters.clear()
        for thread in waiters:
            thread.kernel._make_ready(thread, "notify")


class SimThread:
    """The kernel's record of one real thread taking part in the simulation."""

    def __init__(self, kernel: Kernel, name: str, thread: threading.Thread | None) -> None:
        self.kernel = kernel
        self.name = name
        self.thread = thread
        self.go: TurnHandle = kernel.backend.new_turn()
        self.state: ThreadState = "new"
        self.waiting_on: str | Callable[[], str] = ""
        self.wait_queues: tuple[WaitQueue, ...] = ()
        self.timer: Timer | None = None
        # The current wait's deadline and its place in the timer order, until the
        # kernel makes it a timer (``Timers.schedule_deadlines``); None: no deadline.
        self.deadline: float | None = None
        self.deadline_seq = 0
        self.wake_reason = ""
        self.killed = False
        # What it raises when it unwinds (a host's crash gives its own); None: SimThreadKilled.
        self.kill_error: BaseException | None = None
        self.exited = WaitQueue()
        self.blocked_on: object | None = None  # the lock or thread that must act first
        self.sleeping = False  # in sleep(): waiting for time itself, not for an event
        # A busy loop or a spin? (Kernel.idle_poll, Kernel.read_clock.) Counted since
        # the kernel's progress count was last ``idle_epoch``: empty non-blocking polls
        # in a row with no clock read between, clock reads in a row with no poll
        # between, both together; ``spinning`` once the clock has moved for it.
        self.idle_polls = 0
        self.idle_reads = 0
        self.idle_ops = 0
        self.idle_epoch = -1
        self.spinning = False
        self.spin_jumps = 0  # clock moves in a row for its polls that brought nothing
        # Has it read the clock since the kernel's progress count was idle_epoch? Only
        # such a thread sees time pass with nothing scheduled (Kernel._charge_read).
        self.idle_clock = False
        # Virtual time charged to its clock reads with nothing scheduled, in a row
        # (Kernel._charge_read); None: not charged (it polls, or has not spun yet).
        self.charged: float | None = None
        self.ready_epoch = -1  # the progress count when its last poll found readiness
        self.ident = 0  # its threading.get_ident() once it runs (a lock's owner)
        # The host (a sim.net Host) its intercepted sockets are made on; None: the
        # network's default host. Threads it starts inherit it.
        self.host: object | None = None

    def stop_waiting(self) -> None:
        """Leave every wait queue and cancel the wake-up timer (the thread is woken)."""
        for queue in self.wait_queues:
            queue.waiters.pop(self, None)
        self.wait_queues = ()
        self.deadline = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def deadline_unscheduled(self) -> bool:
        """Does the current wait have a deadline that is not yet a timer in the heap?"""
        return self.deadline is not None and self.timer is None

    def __repr__(self) -> str:
        return f"<SimThread {self.name} {self.state}>"
