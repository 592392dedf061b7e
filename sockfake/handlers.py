"""Request handlers, as in ``socketserver``; they only touch the request they are given."""

from __future__ import annotations

import socket
from io import BufferedIOBase, BytesIO
from typing import Any

__all__ = ["BaseRequestHandler", "StreamRequestHandler", "DatagramRequestHandler"]


def _is_unbound_address(address: object) -> bool:
    """An unbound Unix datagram client (``None`` or empty) has no address to reply to."""
    return address is None or address == "" or address == b""


class BaseRequestHandler:
    """Base class for request handler classes.

    Instantiated for each request: the constructor sets ``request``,
    ``client_address`` and ``server``, then calls ``setup()``, ``handle()`` and,
    whatever happens, ``finish()``.
    """

    def __init__(self, request: Any, client_address: Any, server: Any) -> None:
        self.request = request
        self.client_address = client_address
        self.server = server
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    def setup(self) -> None:
        pass

    def handle(self) -> None:
        pass

    def finish(self) -> None:
        pass


class StreamRequestHandler(BaseRequestHandler):
    """Define self.rfile and self.wfile for stream sockets."""

    # Default buffer sizes for rfile, wfile. rbufsize -1 means buffered reads;
    # wbufsize 0 means unbuffered writes (a _SocketWriter) as in the stdlib.
    rbufsize = -1
    wbufsize = 0
    # A timeout to apply to the request socket, if not None.
    timeout: float | None = None
    # Disable nagle algorithm for this socket, if True.
    disable_nagle_algorithm = False

    connection: Any
    rfile: Any
    wfile: Any

    def setup(self) -> None:
        self.connection = self.request
        if self.timeout is not None:
            self.connection.settimeout(self.timeout)
        if self.disable_nagle_algorithm:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile = self.connection.makefile("rb", self.rbufsize)
        if self.wbufsize == 0:
            self.wfile = _SocketWriter(self.connection)
        else:
            self.wfile = self.connection.makefile("wb", self.wbufsize)

    def finish(self) -> None:
        if not self.wfile.closed:
            try:
                self.wfile.flush()
            except OSError:
                # A final socket error may have occurred here, such as
                # the local error ECONNABORTED.
                pass
        self.wfile.close()
        self.rfile.close()


class _SocketWriter(BufferedIOBase):
    """Simple writable BufferedIOBase implementation for a socket.

    Does not hold data in a buffer, avoiding any need to call flush().
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._sock.sendall(b)
        with memoryview(b) as view:
            return view.nbytes

    def fileno(self) -> int:
        return int(self._sock.fileno())


class DatagramRequestHandler(BaseRequestHandler):
    """Define self.rfile and self.wfile for datagram sockets.

    Beyond the stdlib: a datagram from an unbound Unix socket (no address) gets no
    reply instead of a ``TypeError`` from ``sendto(data, None)``.
    """

    packet: bytes
    socket: Any
    rfile: BytesIO
    wfile: BytesIO

    def setup(self) -> None:
        self.packet, self.socket = self.request
        self.rfile = BytesIO(self.packet)
        self.wfile = BytesIO()

    def finish(self) -> None:
        if _is_unbound_address(self.client_address):
            return
        self.socket.sendto(self.wfile.getvalue(), self.client_address)
