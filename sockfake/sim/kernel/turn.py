"""The turn: the baton that lets exactly one simulated thread run at a time.

Each simulated thread has one ``Turn``; the kernel hands the turn to a thread by
releasing its ``Turn`` and the thread runs once ``acquire()`` returns. This is the
``threads`` backend's turn (``sockfake.sim.kernel.backends``); the ``greenlet``
backend hands the turn by a greenlet switch instead (``greenlets``).
"""

from __future__ import annotations

import _thread
import os
import select
from typing import Any

__all__ = ["Turn"]

_POLLIN = select.POLLIN
# Captured at import: net.intercept() replaces select.poll and _thread.allocate_lock
# for simulated threads.
_new_poll = select.poll
_allocate_lock = _thread.allocate_lock
_HAS_EVENTFD = hasattr(os, "eventfd")


def _new_channel() -> tuple[int, int]:
    """A wake-up channel: one eventfd (Linux), or a pipe; its read and write ends."""
    if _HAS_EVENTFD:
        fd = os.eventfd(0)
        return fd, fd
    return os.pipe()


class Turn:
    """The turn handed to one thread: ``release()`` gives it, ``acquire()`` waits for it.

    One eventfd per thread (a pipe, two descriptors, where there is none), not a
    lock: ``os.eventfd_write`` and ``os.eventfd_read`` drop the GIL around the system
    call, so the thread handed the turn wakes without fighting the one that hands it
    over for the GIL (a raw lock's handoff measured 1.6x the eventfd's per TCP round
    trip: ``release()`` keeps the GIL, so the woken thread waits for it a second
    time). Handing the turn to a thread that already has it is a no-op. A timed wait
    uses ``poll()``, which has no descriptor-number limit (``select()`` fails above
    ``FD_SETSIZE``, 1024); the poll object is made on the first timed wait (only the
    main thread makes them). Falls back to a raw lock when no descriptor is left.
    """

    __slots__ = ("_read", "_write", "_lock", "_given", "_poll")

    def __init__(self) -> None:
        self._given = False
        self._lock: Any = None
        self._poll: Any = None
        try:
            self._read, self._write = _new_channel()
        except OSError:
            self._read = self._write = -1
            self._lock = _allocate_lock()
            self._lock.acquire()

    def release(self) -> None:
        if self._given:
            return
        self._given = True
        if self._lock is not None:
            self._lock.release()
        elif self._write >= 0:
            if _HAS_EVENTFD:
                os.eventfd_write(self._write, 1)
            else:
                os.write(self._write, b"\0")

    def acquire(self, timeout: float = -1) -> bool:
        if self._lock is not None:
            if not self._lock.acquire(True, timeout):
                return False
        elif self._read < 0:
            return False
        else:
            if timeout >= 0:
                poller = self._poll
                if poller is None:
                    poller = self._poll = _new_poll()
                    poller.register(self._read, _POLLIN)
                if not poller.poll(timeout * 1000.0):
                    return False
            if _HAS_EVENTFD:
                os.eventfd_read(self._read)
            else:
                os.read(self._read, 1)
        self._given = False
        return True

    def close(self) -> None:
        for fd in {self._read, self._write}:
            if fd >= 0:
                os.close(fd)
        self._read = self._write = -1
        self._poll = None
