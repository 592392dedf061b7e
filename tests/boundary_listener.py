"""A real listener for the boundary tests: it must receive nothing from a simulation."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sockfake.sim.kernel.thread_hooks import _original_start


@dataclass
class RealListener:
    """A real TCP server and UDP socket on 127.0.0.1, served by a real thread outside
    every simulation; it counts what reaches it."""

    tcp: socket.socket
    udp: socket.socket
    accepted: int = 0
    received: int = 0
    on_accept: Callable[[socket.socket], None] | None = None
    connections: list[socket.socket] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.tcp.getsockname()[1])

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def udp_address(self) -> tuple[str, int]:
        return ("127.0.0.1", int(self.udp.getsockname()[1]))

    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def finish(self) -> None:
        """Stop serving, then count what is still queued (a connection in the backlog, a
        datagram unread): whatever reached the real kernel counts."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)
        for sock in (self.tcp, self.udp):
            sock.setblocking(False)
        while select.select([self.tcp], [], [], 0)[0]:
            conn, _ = self.tcp.accept()
            self.accepted += 1
            self.connections.append(conn)
        while select.select([self.udp], [], [], 0)[0]:
            self.received += len(self.udp.recv(65536))
        for conn in self.connections:  # what was sent before the client closed
            conn.setblocking(False)
            while select.select([conn], [], [], 0)[0]:
                data = conn.recv(65536)
                if not data:
                    break
                self.received += len(data)

    def serve(self) -> None:
        stop = self.stop
        while not stop.is_set():  # bounded: the fixture sets stop at teardown
            ready, _, _ = select.select([self.tcp, self.udp, *self.connections], [], [], 0.05)
            for sock in ready:
                if sock is self.tcp:
                    conn, _ = self.tcp.accept()
                    self.accepted += 1
                    self.connections.append(conn)
                    if self.on_accept is not None:
                        self.on_accept(conn)
                elif sock is self.udp:
                    self.received += len(sock.recv(65536))
                else:
                    data = sock.recv(65536)
                    self.received += len(data)
                    if not data:
                        self.connections.remove(sock)
                        sock.close()


@contextmanager
def real_listener_running() -> Iterator[RealListener]:
    """A real listener serving until the block ends (made outside every simulation)."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    listener = RealListener(tcp, udp)
    listener.thread = threading.Thread(target=listener.serve, name="real-listener")
    _original_start(listener.thread)  # a real thread, even if a simulation is intercepted
    try:
        yield listener
    finally:
        listener.finish()
        for sock in [tcp, udp, *listener.connections]:
            sock.close()
