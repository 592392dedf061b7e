"""Simulated descriptor numbers: every socket and waker of a network has one, never reused."""

from __future__ import annotations

from sockfake.sim.net.selectors import Selectable
from sockfake.sim.net.sockets import SimSocket

__all__ = ["FIRST_FD", "Descriptors"]

# Simulated descriptors start above any real one (Linux caps them at nr_open, 2**20), so
# a simulated descriptor handed to a real select()/poll() can never name a real file.
FIRST_FD = 1 << 20


class Descriptors:
    """Simulated descriptor numbers: every socket and waker has one, never reused."""

    def __init__(self) -> None:
        self.objects: dict[int, Selectable] = {}
        self._next = FIRST_FD

    def register(self, obj: Selectable) -> int:
        fd = self._next
        self._next += 1
        self.objects[fd] = obj
        return fd

    def release(self, fd: int) -> None:
        self.objects.pop(fd, None)

    def sockets(self) -> list[SimSocket]:
        return [obj for obj in self.objects.values() if isinstance(obj, SimSocket)]
