"""The turn: the baton that lets exactly one simulated thread run at a time.

Each simulated thread has one ``Turn``; the kernel hands the turn to a thread by
releasing its ``Turn`` and the thread runs once ``acquire()`` returns.
"""

from __future__ import annotations

import _thread
import os
import select
from typing import Any

__all__ = ["Turn"]


class Turn:
    """The turn handed to one thread: ``release()`` gives it, ``acquire()`` waits for it.

    A pipe, not a lock: ``os.write`` and ``os.read`` drop the GIL around the system
    call, so the thread handed the turn wakes without fighting the one that hands it
    over for the GIL (a lock handoff costs about twice as much). Handing the turn to
    a thread that already has it is a no-op. Falls back to a raw lock when no
    descriptor is left.
    """

    __slots__ = ("_read", "_write", "_lock", "_given")

    def __init__(self) -> None:
        self._given = False
        self._lock: Any = None
        try:
            self._read, self._write = os.pipe()
        except OSError:
            self._read = self._write = -1
            self._lock = _thread.allocate_lock()
            self._lock.acquire()

    def release(self) -> None:
        if self._given:
            return
        self._given = True
        if self._lock is not None:
            self._lock.release()
        elif self._write >= 0:
            os.write(self._write, b"\0")

    def acquire(self, timeout: float = -1) -> bool:
        if self._lock is not None:
            if not self._lock.acquire(True, timeout):
                return False
        elif self._read < 0:
            return False
        else:
            if timeout >= 0 and not select.select([self._read], [], [], timeout)[0]:
                return False
            os.read(self._read, 1)
        self._given = False
        return True

    def close(self) -> None:
        for fd in (self._read, self._write):
            if fd >= 0:
                os.close(fd)
        self._read = self._write = -1
