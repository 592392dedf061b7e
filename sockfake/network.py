"""The network boundary: everything a server blocks on comes through one object.

A server resolves its network once, at construction (``network=`` keyword, or the
ambient default set by :func:`use_network`, which is the real network unless told
otherwise). Servers and handlers never block on ``socket``, ``select``,
``threading`` or ``time`` directly: they ask the network. ``RealNetwork`` hands back
the stdlib's own objects, so production code pays no wrapper cost on the hot path;
``sockfake.sim.SimNetwork`` implements the same surface on a virtual clock and a
deterministic scheduler.
"""

from __future__ import annotations

import contextlib
import os
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from socket import socket as _OSSocket
from typing import Any, NoReturn, Protocol, runtime_checkable

__all__ = [
    "Network",
    "RealNetwork",
    "SockfakeError",
    "Waker",
    "default_network",
    "use_network",
]


class SockfakeError(Exception):
    """Base class for misuse of sockfake (bad arguments, wrong thread, closed network).

    Network failures stay plain stdlib exceptions (``ConnectionResetError``...);
    this family is only for mistakes in how sockfake is used. Concrete errors mix in
    ``ValueError``, ``TypeError`` or ``RuntimeError`` so ``except ValueError`` works.
    """


class SockfakeValueError(SockfakeError, ValueError):
    """A value is out of range or malformed (a loss of 1.5, a negative latency)."""


class SockfakeTypeError(SockfakeError, TypeError):
    """An argument has the wrong type."""


class SockfakeRuntimeError(SockfakeError, RuntimeError):
    """An operation is not possible in the current state (closed network, wrong thread)."""


@runtime_checkable
class Waker(Protocol):
    """A selectable object that a thread sets to wake a ``select()`` elsewhere."""

    def fileno(self) -> int: ...

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


class EventLike(Protocol):
    """What a server needs of ``threading.Event`` (the simulation's events match)."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Network(Protocol):
    """What a server needs from the world. Both networks implement all of it."""

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> Any: ...

    def selector(self) -> selectors.BaseSelector: ...

    def waker(self) -> Waker: ...

    def create_connection(self, address: tuple[str, int], timeout: float | None = None) -> Any:
        ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def thread(
        self,
        target: Callable[..., object],
        args: tuple[Any, ...] = (),
        name: str | None = None,
        daemon: bool | None = None,
    ) -> threading.Thread: ...

    def event(self) -> EventLike: ...

    def lock(self) -> Any: ...

    def queue(self, maxsize: int = 0) -> Any: ...

    def fork(self) -> int: ...

    def waitpid(self, pid: int, options: int) -> tuple[int, int]: ...

    def exit_child(self, status: int) -> NoReturn: ...


class _PipeWaker:
    """A self-pipe: ``set()`` makes the read end readable until ``clear()``.

    Writing at most one pending byte keeps ``set()`` from ever blocking, however
    often it is called.
    """

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._pending = False
        self._lock = threading.Lock()

    def fileno(self) -> int:
        return self._read_fd

    def set(self) -> None:
        with self._lock:
            if self._pending or self._write_fd < 0:
                return
            self._pending = True
            with contextlib.suppress(BlockingIOError):
                os.write(self._write_fd, b"\0")

    def clear(self) -> None:
        with self._lock:
            if not self._pending or self._read_fd < 0:
                return
            self._pending = False
            with contextlib.suppress(BlockingIOError):
                os.read(self._read_fd, 64)

    def close(self) -> None:
        with self._lock:
            for fd in (self._read_fd, self._write_fd):
                if fd >= 0:
                    os.close(fd)
            self._read_fd = self._write_fd = -1


if hasattr(selectors, "PollSelector"):
    _ServerSelector: type[selectors.BaseSelector] = selectors.PollSelector
else:  # pragma: no cover - Windows
    _ServerSelector = selectors.SelectSelector


class RealNetwork:
    """The operating system's network, threads and clock, with no wrapper on the hot path."""

    name = "real"

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> _OSSocket:
        return socket.socket(family, type, proto)

    def create_connection(
        self, address: tuple[str, int], timeout: float | None = None
    ) -> _OSSocket:
        if timeout is None:
            return socket.create_connection(address)
        return socket.create_connection(address, timeout)

    def selector(self) -> selectors.BaseSelector:
        return _ServerSelector()

    def waker(self) -> Waker:
        return _PipeWaker()

    def time(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def thread(
        self,
        target: Callable[..., object],
        args: tuple[Any, ...] = (),
        name: str | None = None,
        daemon: bool | None = None,
    ) -> threading.Thread:
        return threading.Thread(target=target, args=args, name=name, daemon=daemon)

    def event(self) -> threading.Event:
        return threading.Event()

    def lock(self) -> Any:
        return threading.Lock()

    def queue(self, maxsize: int = 0) -> Any:
        return queue.Queue(maxsize)

    def fork(self) -> int:
        return os.fork()

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        return os.waitpid(pid, options)

    def exit_child(self, status: int) -> NoReturn:
        os._exit(status)

    def __repr__(self) -> str:
        return "RealNetwork()"


REAL_NETWORK = RealNetwork()
_default: list[Network] = [REAL_NETWORK]
_default_lock = threading.Lock()


def default_network() -> Network:
    """The network a server uses when it is given none: the innermost :func:`use_network`."""
    return _default[-1]


@contextlib.contextmanager
def use_network(network: Network) -> Iterator[Network]:
    """Make ``network`` the default for servers built inside the ``with`` block.

    This is how code that cannot pass ``network=`` (``http.server.HTTPServer``,
    ``xmlrpc.server.SimpleXMLRPCServer``) runs on a simulated network.
    """
    with _default_lock:
        _default.append(network)
    try:
        yield network
    finally:
        with _default_lock:
            _default.remove(network)
