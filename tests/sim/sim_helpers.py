"""Helpers shared by the simulated-network tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sockfake as socketserver


@contextmanager
def serving(server: Any, poll_interval: float = 0.5) -> Iterator[Any]:
    """Run ``server.serve_forever`` in a (simulated) thread; shut down and close afterwards."""
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,))
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class EchoHandler(socketserver.BaseRequestHandler):
    """Echo every byte until EOF."""

    def handle(self) -> None:
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            self.request.sendall(data)


class LineEchoHandler(socketserver.StreamRequestHandler):
    """Echo line by line, through makefile() buffering."""

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


class DatagramEchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)


def recv_exactly(sock: Any, size: int) -> bytes:
    """Read exactly ``size`` bytes (bounded: fails on EOF)."""
    chunks = []
    left = size
    while left:
        data = sock.recv(left)
        if not data:
            raise EOFError(f"EOF with {left} bytes still expected")
        chunks.append(data)
        left -= len(data)
    return b"".join(chunks)
