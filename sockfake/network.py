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
import selectors
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, Protocol, runtime_checkable

from sockfake.errors import (
    SockfakeError,
    SockfakeRuntimeError,
    SockfakeTypeError,
    SockfakeValueError,
)
from sockfake.real import REAL_NETWORK, RealNetwork, _ServerSelector

__all__ = [
    "EventLike",
    "Network",
    "REAL_NETWORK",
    "RealNetwork",
    "SockfakeError",
    "SockfakeRuntimeError",
    "SockfakeTypeError",
    "SockfakeValueError",
    "Waker",
    "_ServerSelector",
    "default_network",
    "use_network",
]


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

    def check_fork(self) -> None:
        """Raise (``NotImplementedError``, naming the problem) if this network cannot
        run child processes. ``ForkingMixIn`` calls it when the server activates."""
        ...

    # Unix socket files. The real network has a filesystem; the simulated one keeps
    # its sockets' files in memory (``sockfake.sim.net.unix_files``).

    def unix_file_identity(self, path: Any) -> object | None:
        """What identifies the socket file at ``path`` (None: no file there)."""
        ...

    def remove_stale_unix_socket(self, path: Any, socket_type: int) -> None:
        """Remove the socket file at ``path`` if nothing is bound to it any more."""
        ...

    def remove_unix_socket(self, path: Any, identity: object) -> None:
        """Remove the socket file at ``path`` if it is still the one ``identity`` names."""
        ...

    # --- issue 13 (socket_mode) ---
    def chmod_unix_socket(self, path: Any, mode: int) -> None:
        """Set the permission bits of the socket file at ``path`` (servers call it
        between bind and listen). A network without files makes it a no-op."""
        ...


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
