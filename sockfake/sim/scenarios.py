"""Slow and hostile clients as scenario objects a test starts in one line.

Each scenario runs in its own simulated thread on a host of the network and records
what it saw (``reply``, ``error``, virtual ``finished_at``); ``wait()`` blocks in
virtual time until it is over::

    slow = TrickleWriter(net, server.server_address, b"hello\\n", chunk=1, interval=1.0).start()
    ...
    slow.wait()
    assert slow.reply == b"HELLO\\n"
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any, TypeVar

import sockfake.sim.net.checks as _checks
from sockfake.errors import SockfakeRuntimeError, SockfakeTypeError
from sockfake.sim.net.sockets import SimSocket
from sockfake.sim.network import Host, SimNetwork

__all__ = [
    "Scenario",
    "TrickleWriter",
    "StalledReader",
    "HalfCloseAndWait",
    "ResetMidResponse",
    "Slowloris",
]


def _positive(name: str, value: float) -> None:
    _checks.number(name, value, positive=True)


_S = TypeVar("_S", bound="Scenario")


class Scenario:
    """A client behaviour running in its own simulated thread."""

    name = "scenario"

    def __init__(self, network: SimNetwork, address: Any, *, host: str | Host | None = None,
                 family: int | None = None) -> None:
        if not isinstance(network, SimNetwork):
            raise SockfakeTypeError(
                f"a scenario runs on a SimNetwork, not {type(network).__name__}"
            )
        self.network = network
        self.address = address
        self.host = network.default_host if host is None else network.host(host)
        self.family = family
        self.reply = b""
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._done = network.event()
        self._thread: threading.Thread | None = None

    def start(self: _S) -> _S:
        """Start the client; returns self so a test can write ``s = Trickle(...).start()``."""
        if self._thread is not None:
            raise SockfakeRuntimeError(f"{self.name}: start() called twice")
        self.started_at = self.network.time()
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait (virtual time) until the scenario is over; True if it is.

        A scenario does nothing until :meth:`start`: waiting for one that was never
        started is a mistake, reported as one (not as a deadlock or a silent False).
        """
        if self._thread is None:
            raise SockfakeRuntimeError(
                f"{self.name}: wait() on a scenario that was never started; call start() first"
            )
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _main(self) -> None:
        try:
            self.run()
        except OSError as exc:
            self.error = exc
        finally:
            self.finished_at = self.network.time()
            self._done.set()

    def run(self) -> None:
        raise NotImplementedError

    def _connect(self) -> SimSocket:
        family = self.family
        if family is None:
            if isinstance(self.address, str):
                family = socket.AF_UNIX
            elif ":" in str(self.address[0]):
                family = socket.AF_INET6
            else:
                family = socket.AF_INET
        sock = self.host.socket(family, socket.SOCK_STREAM)
        sock.connect(self.address)
        return sock

    def _read_all(self, sock: SimSocket, limit: int | None = None) -> None:
        while limit is None or len(self.reply) < limit:
            want = 65536 if limit is None else limit - len(self.reply)
            data = sock.recv(want)
            if not data:
                return
            self.reply += data


class TrickleWriter(Scenario):
    """Writes ``data`` ``chunk`` bytes every ``interval`` seconds, then reads the reply."""

    name = "trickle-writer"

    def __init__(self, network: SimNetwork, address: Any, data: bytes, *, chunk: int = 1,
                 interval: float = 1.0, read_reply: bool = True, **kwargs: Any) -> None:
        super().__init__(network, address, **kwargs)
        _checks.integer("chunk", chunk, minimum=1)
        _positive("interval", interval)
        self.data = _checks.payload("data", data)
        self.chunk = chunk
        self.interval = interval
        self.read_reply = read_reply

    def run(self) -> None:
        with self._connect() as sock:
            for offset in range(0, len(self.data), self.chunk):
                if offset:
                    self.network.sleep(self.interval)
                sock.sendall(self.data[offset : offset + self.chunk])
            if self.read_reply:
                sock.shutdown(socket.SHUT_WR)
                self._read_all(sock)


class StalledReader(Scenario):
    """Sends ``request``, reads ``read_limit`` bytes of the reply, then stops reading.

    The connection stays open, unread, until ``release()``: a server writing a large
    response to it fills the buffers and blocks (backpressure).
    """

    name = "stalled-reader"

    def __init__(self, network: SimNetwork, address: Any, request: bytes, *,
                 read_limit: int = 0, **kwargs: Any) -> None:
        super().__init__(network, address, **kwargs)
        _checks.integer("read_limit", read_limit)
        self.request = _checks.payload("request", request)
        self.read_limit = read_limit
        self._release = network.event()

    def release(self) -> None:
        """Let the reader close its connection (without reading more)."""
        self._release.set()

    def run(self) -> None:
        with self._connect() as sock:
            sock.sendall(self.request)
            if self.read_limit:
                self._read_all(sock, self.read_limit)
            self._release.wait()


class HalfCloseAndWait(Scenario):
    """Sends ``request``, half-closes (SHUT_WR), then reads the reply until EOF."""

    name = "half-close"

    def __init__(self, network: SimNetwork, address: Any, request: bytes, **kwargs: Any) -> None:
        super().__init__(network, address, **kwargs)
        self.request = _checks.payload("request", request)

    def run(self) -> None:
        with self._connect() as sock:
            sock.sendall(self.request)
            sock.shutdown(socket.SHUT_WR)
            self._read_all(sock)


class ResetMidResponse(Scenario):
    """Sends ``request``, reads ``after`` bytes of the reply, then resets the connection."""

    name = "reset-mid-response"

    def __init__(self, network: SimNetwork, address: Any, request: bytes, *, after: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(network, address, **kwargs)
        self.request = _checks.payload("request", request)
        self.after = _checks.integer("after", after)

    def run(self) -> None:
        sock = self._connect()
        try:
            sock.sendall(self.request)
            self._read_all(sock, self.after)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            sock.close()


class Slowloris(Scenario):
    """Opens ``connections`` connections that send one byte of ``request`` every
    ``interval`` seconds and never finish, for ``duration`` seconds."""

    name = "slowloris"

    def __init__(self, network: SimNetwork, address: Any, *, connections: int = 10,
                 request: bytes = b"GET / HTTP/1.1\r\n", interval: float = 10.0,
                 duration: float = 60.0, **kwargs: Any) -> None:
        super().__init__(network, address, **kwargs)
        _checks.integer("connections", connections, minimum=1)
        _positive("interval", interval)
        _positive("duration", duration)
        self.connections = connections
        self.request = _checks.payload("request", request)
        self.interval = interval
        self.duration = duration
        self.opened = 0

    def run(self) -> None:
        socks: list[SimSocket] = []
        try:
            for _ in range(self.connections):
                socks.append(self._connect())
                self.opened += 1
            deadline = self.network.time() + self.duration
            position = 0
            while self.network.time() < deadline and position < len(self.request):
                for sock in socks:
                    sock.sendall(self.request[position : position + 1])
                position += 1
                self.network.sleep(self.interval)
            self.network.sleep(max(0.0, deadline - self.network.time()))
        finally:
            for sock in socks:
                sock.close()
