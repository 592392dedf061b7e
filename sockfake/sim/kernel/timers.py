"""The kernel's timers: what happens next in virtual time, and when.

``Timers`` holds two things, in one order. Timers proper (``call_at``: a packet's
arrival, a SYN retransmission) sit in a heap of ``(when, seq, timer)``. The deadlines
of timed waits (``Kernel.wait`` with a deadline) are only listed: most waits end
before their deadline (a reply arrives), and the clock moves only when no thread is
ready, so a deadline becomes a timer only then (``schedule_deadlines``). A timed wait
that ends first then costs no timer, no partial and no heap entry, objects that would
otherwise outlive the wait in the heap and be walked by the garbage collector. Its
seq is taken when the wait starts, so the order is the one eager timers would have
had: by ``when``, and among equal ``when`` by ``seq``, the order they were asked for.

A cancelled timer stays in the heap until it is due (then it is skipped) or the heap
is compacted, which happens whenever it has doubled (amortised O(1)); the list of
deadlines is compacted the same way. Pops follow ``(when, seq)``, a total order, so
neither compaction changes what runs when. Trio's ``Deadlines``
(``trio/_core/_run.py``) keeps its heap the same way.

The kernel owns the clock: ``run_due(now)`` runs what is due by ``now``, and
``next_timer()`` tells the kernel where the clock jumps when nothing is ready.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sockfake.sim.kernel.threads import SimThread

__all__ = ["Timer", "Timers"]

# The timer heap is first compacted at this size, then whenever it has doubled.
_COMPACT_MIN = 1024
_INFINITY = float("inf")


def _no_callback() -> None:
    pass


class Timer:
    """One scheduled callback; ``cancel()`` it to keep it from running."""

    __slots__ = ("when", "seq", "callback", "cancelled", "wakes")

    def __init__(self, when: float, seq: int, callback: Callable[[], None],
                 wakes: SimThread | None = None) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.cancelled = False
        self.wakes = wakes  # the thread whose wait times out here (None: a network event)

    def cancel(self) -> None:
        """It will not run. It stays in the heap until due or compacted away, so it lets
        go of its callback now: that may hold a socket a long run has long closed."""
        self.cancelled = True
        self.callback = _no_callback
        self.wakes = None


class Timers:
    """Timers and pending wait deadlines in ``(when, seq)`` order (see the module)."""

    __slots__ = ("_wake", "_heap", "_compact_at", "_seq", "_deadlines",
                 "_deadlines_compact_at", "_earliest_deadline", "running")

    def __init__(self, wake: Callable[[SimThread, str], None]) -> None:
        # Called as wake(thread, "timeout") when a wait's deadline passes.
        self._wake = wake
        # Inside run_due(): what a callback wakes, no thread's operation woke.
        self.running = False
        # A heap of (when, seq, timer), cancelled timers included: (when, seq) is unique,
        # so the heap compares floats and ints in C and never the timers themselves.
        self._heap: list[tuple[float, int, Timer]] = []
        self._compact_at = _COMPACT_MIN
        self._seq = 0
        # Threads whose wait has a deadline not yet in the heap (a thread may be listed
        # twice: only its current deadline counts, see SimThread.deadline_unscheduled).
        self._deadlines: list[SimThread] = []
        self._deadlines_compact_at = _COMPACT_MIN
        self._earliest_deadline = _INFINITY  # of the listed deadlines (a lower bound)

    def __len__(self) -> int:
        """Entries in the heap, cancelled timers included (not the pending deadlines)."""
        return len(self._heap)

    def call_at(self, when: float, callback: Callable[[], None],
                wakes: SimThread | None = None) -> Timer:
        """Run ``callback`` at ``when``, after every timer asked for earlier at that time."""
        self._seq += 1
        timer = Timer(when, self._seq, callback, wakes)
        heap = self._heap
        heapq.heappush(heap, (when, timer.seq, timer))
        if len(heap) > self._compact_at:
            # Cancelled timers (a wait woken before its deadline) stay in the heap
            # until due; drop them whenever the heap has doubled (amortised O(1)).
            # Pops follow (when, seq), a total order: the layout changes nothing.
            heap[:] = [entry for entry in heap if not entry[2].cancelled]
            heapq.heapify(heap)
            self._compact_at = max(_COMPACT_MIN, 2 * len(heap))
        return timer

    def add_deadline(self, thread: SimThread, deadline: float) -> None:
        """``thread``'s wait ends at ``deadline`` unless woken first: listed now, in the
        heap only if the clock must move before the wait ends (``schedule_deadlines``)."""
        self._seq += 1
        thread.deadline = deadline
        thread.deadline_seq = self._seq
        deadlines = self._deadlines
        deadlines.append(thread)
        if deadline < self._earliest_deadline:
            self._earliest_deadline = deadline
        if len(deadlines) > self._deadlines_compact_at:
            self._compact_deadlines()

    def schedule_deadlines(self) -> None:
        """Every pending wait deadline becomes a timer (before the clock may move)."""
        for thread in self._deadlines:
            if thread.deadline_unscheduled():  # a thread may be listed twice
                assert thread.deadline is not None
                timer = Timer(thread.deadline, thread.deadline_seq,
                              functools.partial(self._wake, thread, "timeout"), wakes=thread)
                heapq.heappush(self._heap, (timer.when, timer.seq, timer))
                thread.timer = timer
        self._deadlines.clear()
        self._earliest_deadline = _INFINITY

    def _compact_deadlines(self) -> None:
        """Drop the entries of waits that ended (amortised O(1), as the heap's compaction)."""
        live = dict.fromkeys(thread for thread in self._deadlines if thread.deadline_unscheduled())
        self._deadlines = list(live)
        self._deadlines_compact_at = max(_COMPACT_MIN, 2 * len(self._deadlines))

    def next_timer(self) -> Timer | None:
        """The earliest live timer (cancelled ones at the top are dropped), if any; the
        pending deadlines become timers first."""
        if self._deadlines:
            self.schedule_deadlines()
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][2] if heap else None

    def run_due(self, now: float) -> None:
        """Run every live timer due by ``now``, in order (one a callback adds for
        ``now`` too)."""
        if self._earliest_deadline <= now:
            self.schedule_deadlines()
        heap = self._heap
        if not (heap and heap[0][0] <= now):
            return
        self.running = True
        try:
            while heap and heap[0][0] <= now:
                timer = heapq.heappop(heap)[2]
                if not timer.cancelled:
                    timer.callback()
        finally:
            self.running = False

    def live(self) -> list[Timer]:
        """The timers in the heap not cancelled, in heap order (not sorted)."""
        return [timer for _, _, timer in self._heap if not timer.cancelled]

    def pending(self) -> bool:
        """Is anything scheduled: a live timer, or a pending deadline? Read only: another
        thread (the watchdog's) may ask while the simulation runs."""
        return (any(thread.deadline is not None for thread in list(self._deadlines))
                or any(not timer.cancelled for _, _, timer in self._heap))

    def clear(self) -> None:
        """Forget every timer and deadline (the kernel is closing)."""
        self._heap.clear()
        self._deadlines.clear()
