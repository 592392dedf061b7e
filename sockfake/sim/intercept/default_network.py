"""The default network during an interception: simulated in simulated threads.

A server built without ``network=`` (``xmlrpc.server.SimpleXMLRPCServer`` on
sockfake) takes the ambient default network. While an interception is active that
default is ``DISPATCH_NETWORK``, which forwards each call to the calling thread's
network: the simulation in a simulated thread, the real network in any other.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, NoReturn, cast

from sockfake.network import REAL_NETWORK
from sockfake.sim.intercept.dispatch import caller_network

__all__ = ["DISPATCH_NETWORK", "DispatchNetwork"]


class DispatchNetwork:
    """The default network during an interception: simulated in simulated threads."""

    name = "intercept"

    def _pick(self) -> Any:
        net = caller_network()
        return net if net is not None else REAL_NETWORK

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM,
               proto: int = 0) -> Any:
        return self._pick().socket(family, type, proto)

    def create_connection(self, address: tuple[str, int], timeout: float | None = None) -> Any:
        return self._pick().create_connection(address, timeout)

    def selector(self) -> Any:
        return self._pick().selector()

    def waker(self) -> Any:
        return self._pick().waker()

    def time(self) -> float:
        return float(self._pick().time())

    def sleep(self, seconds: float) -> None:
        self._pick().sleep(seconds)

    def thread(self, target: Callable[..., object], args: tuple[Any, ...] = (),
               name: str | None = None, daemon: bool | None = None) -> Any:
        return self._pick().thread(target, args, name, daemon)

    def event(self) -> Any:
        return self._pick().event()

    def lock(self) -> Any:
        return self._pick().lock()

    def queue(self, maxsize: int = 0) -> Any:
        return self._pick().queue(maxsize)

    def fork(self) -> int:
        return int(self._pick().fork())

    def check_fork(self) -> None:
        self._pick().check_fork()

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        return cast("tuple[int, int]", self._pick().waitpid(pid, options))

    def exit_child(self, status: int) -> NoReturn:
        self._pick().exit_child(status)
        raise AssertionError("exit_child returned")  # both networks' exit_child never do

    def unix_file_identity(self, path: Any) -> object | None:
        identity: object | None = self._pick().unix_file_identity(path)
        return identity

    def remove_stale_unix_socket(self, path: Any, socket_type: int) -> None:
        self._pick().remove_stale_unix_socket(path, socket_type)

    def remove_unix_socket(self, path: Any, identity: object) -> None:
        self._pick().remove_unix_socket(path, identity)

    def chmod_unix_socket(self, path: Any, mode: int) -> None:
        self._pick().chmod_unix_socket(path, mode)

    def __repr__(self) -> str:
        return "<sockfake intercept network: simulated in simulated threads, else real>"


DISPATCH_NETWORK = DispatchNetwork()
