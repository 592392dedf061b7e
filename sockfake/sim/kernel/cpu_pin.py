"""Keeping a simulation's threads on one CPU.

Exactly one simulated thread runs at a time (the turn, ``_turn.py``), so spreading
them over cores buys no parallelism; it only makes every handoff of the turn a
cross-core wakeup. On a virtual machine that wakeup can cost tens of microseconds
(an idle virtual CPU has to be woken by the hypervisor), ten times a same-core
context switch, and a round trip on the simulated network is two handoffs. So a
network pins the thread that creates it to one CPU while it is open; the threads it
starts inherit the pin from the thread that starts them (Linux copies the mask at
thread creation), and ``close()`` gives the creating thread its own mask back.

The CPU is the one the creating thread last ran on: the OS scheduler's choice at
that moment, which already reflects the machine's load (two pytest-xdist workers
busy at once are on different CPUs). Where the OS has no affinity call (macOS,
Windows) pinning does nothing. ``SimNetwork(pin_cpu=False)`` turns it off: for a
test whose simulated threads hand work to real threads that should use every core.

Pinning changes no simulated behaviour: which thread runs is the kernel's choice,
never the OS scheduler's, so the trace and its digest are the same either way.
"""

from __future__ import annotations

import os
import threading

__all__ = ["CpuPin"]


def _last_cpu() -> int | None:
    """The CPU the calling thread last ran on (Linux: field 39 of its stat line)."""
    try:
        with open("/proc/thread-self/stat", "rb") as stat:
            line = stat.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = line[line.rfind(b")") + 2 :].split()
    try:
        return int(fields[36])  # field 39, counted from field 3
    except (IndexError, ValueError):
        return None


class CpuPin:
    """The creating thread's affinity, narrowed to one CPU until ``restore()``."""

    __slots__ = ("cpu", "_thread_id", "_saved")

    def __init__(self) -> None:
        self.cpu: int | None = None
        self._thread_id = 0
        self._saved: set[int] | None = None

    def pin(self) -> None:
        """Pin the calling thread (and so every thread it starts) to one of its CPUs."""
        if not hasattr(os, "sched_setaffinity") or self._saved is not None:
            return
        try:
            allowed = os.sched_getaffinity(0)
        except OSError:
            return
        if len(allowed) < 2:
            return  # already on one CPU
        cpu = _last_cpu()
        if cpu not in allowed:
            cpu = sorted(allowed)[os.getpid() % len(allowed)]
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            return  # a container may forbid it: the simulation runs as well, only slower
        self.cpu = cpu
        self._saved = allowed
        self._thread_id = threading.get_native_id()

    def restore(self) -> None:
        """Give the pinned thread its own mask back (from whichever thread closes)."""
        saved, self._saved = self._saved, None
        if saved is None:
            return
        try:
            os.sched_setaffinity(self._thread_id, saved)
        except OSError:
            pass  # the thread is gone: there is nothing left to restore
