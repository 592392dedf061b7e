"""Readiness on the simulation: what a selector watches, the self-pipe, the selector.

A ``Selectable`` (a simulated socket's endpoint or a waker) has a readiness mask and a
queue that is notified when the mask may have changed; ``SimSelector.select`` waits on
those queues in virtual time, so a server's ``serve_forever`` lets the clock advance.
"""

from __future__ import annotations

import selectors
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol

from sockfake.errors import SockfakeValueError
from sockfake.sim.kernel.core import Kernel
from sockfake.sim.kernel.threads import WaitQueue
from sockfake.sim.net.socket_state import ACCEPTS, State

__all__ = ["Selectable", "SimSelector", "SimWaker"]


class Selectable(Protocol):
    """What a simulated selector watches: a readiness mask and a queue to wait on."""

    @property
    def changed(self) -> WaitQueue: ...

    def ready_mask(self) -> int: ...


class SimWaker:
    """The simulated self-pipe: readable in a selector from ``set()`` until ``clear()``."""

    def __init__(
        self,
        kernel: Kernel,
        register_fd: Callable[[SimWaker], int],
        release_fd: Callable[[int], None],
    ) -> None:
        self._kernel = kernel
        self._release_fd = release_fd
        self._flag = False
        self.changed = WaitQueue()
        self._fd = register_fd(self)

    def fileno(self) -> int:
        return self._fd

    def set(self) -> None:
        self._flag = True
        self.changed.notify_all()

    def clear(self) -> None:
        self._flag = False

    def close(self) -> None:
        if self._fd >= 0:
            self._release_fd(self._fd)
            self._fd = -1

    def ready_mask(self) -> int:
        return selectors.EVENT_READ if self._flag else 0


class _SelectorMapping(Mapping[Any, selectors.SelectorKey]):
    def __init__(self, keys: dict[int, selectors.SelectorKey]) -> None:
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys[_fileobj_to_fd(fileobj)]

    def __iter__(self) -> Any:
        return iter(self._keys)


def _fileobj_to_fd(fileobj: Any) -> int:
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class SimSelector(selectors.BaseSelector):
    """A selector over simulated sockets and wakers; ``select`` waits in virtual time."""

    def __init__(self, kernel: Kernel, lookup: Callable[[int], Selectable | None],
                 clocks: Any = None) -> None:
        self._kernel = kernel
        self._lookup = lookup  # fd -> simulated socket or waker
        self._keys: dict[int, selectors.SelectorKey] = {}
        # The network, for the hosts' clocks: ``clocks_skewed`` and ``caller_clock()``.
        self._clocks = clocks

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        if not events or events & ~(selectors.EVENT_READ | selectors.EVENT_WRITE):
            raise SockfakeValueError(f"Invalid events: {events!r}")
        fd = _fileobj_to_fd(fileobj)
        if fd in self._keys:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        if self._lookup(fd) is None:
            raise SockfakeValueError(
                f"{fileobj!r} (FD {fd}) is not a simulated socket of this network: "
                "a simulated selector only watches simulated objects"
            )
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def target(self, fd: int) -> Selectable | None:
        """The simulated socket or waker behind descriptor ``fd`` (None if gone)."""
        return self._lookup(fd)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = _fileobj_to_fd(fileobj)
        try:
            return self._keys.pop(fd)
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        kernel = self._kernel
        deadline = None
        if timeout is not None:
            seconds = max(0.0, timeout)
            clocks = self._clocks
            if seconds and clocks is not None and clocks.clocks_skewed:
                # Counted on the calling thread's host clock, as its time.sleep() is.
                clock = clocks.caller_clock()
                if clock is not None:
                    seconds = clock.local_seconds(seconds)
            deadline = kernel.now + seconds
        while True:
            ready = []
            queues = []
            for fd, key in self._keys.items():
                target = self._lookup(fd)
                if target is None:
                    continue
                mask = target.ready_mask() & key.events
                if mask:
                    ready.append((key, mask))
                queues.append(target.changed)
            if ready:
                kernel.found_ready("select")  # busy, not spinning (unless it idles)
                kernel.preemption_point("select", _resource(self._lookup(ready[0][0].fd)))
                return ready
            if deadline is not None and deadline <= kernel.now:
                if timeout is not None and timeout <= 0:
                    kernel.idle_poll("select(0)")
                else:
                    kernel.preemption_point("select")
                return []
            if not kernel.wait(queues, deadline, self._describe):
                # Timed out; one last look (something may have arrived at the deadline).
                if deadline is not None and kernel.now >= deadline:
                    deadline = kernel.now

    def _describe(self) -> str:
        names = []
        for fd in self._keys:
            target = self._lookup(fd)
            names.append(repr(target) if target is not None else f"fd {fd}")
        return "select on " + ", ".join(names)

    def close(self) -> None:
        self._keys.clear()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return _SelectorMapping(self._keys)


def _resource(target: object) -> Hashable | None:
    """What a select that found ``target`` ready read (partial-order reduction): its
    connection, or a listening socket's backlog; None (anything) for a waker."""
    endpoint = getattr(target, "ep", None)
    if endpoint is None:
        return None
    return ACCEPTS if endpoint.state is State.LISTENING else endpoint.resource
