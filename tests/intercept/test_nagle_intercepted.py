"""Nagle's algorithm and delayed ACKs as unmodified socket code sees them under
interception: the write-write-read stall in its own ``time.monotonic()``, and none
once it sets ``TCP_NODELAY`` (``tests/sim/net/test_tcp_timing.py`` has the model)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from sockfake.sim import SimNetwork
from sockfake.sim.net.tcp import DELAYED_ACK


def _serve(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with conn:
        while True:
            request = b""
            while len(request) < 8:
                chunk = conn.recv(100)
                if not chunk:
                    return
                request += chunk
            conn.sendall(b"ok")


def _request_times(nodelay: bool) -> list[float]:
    """What plain socket code measures for three write-write-read requests."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        server = threading.Thread(target=_serve, args=(listener,))
        server.start()
        took = []
        with socket.create_connection(listener.getsockname()) as client:
            if nodelay:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(3):
                start = time.monotonic()
                client.sendall(b"head")
                client.sendall(b"body")
                assert client.recv(10) == b"ok"
                took.append(time.monotonic() - start)
        server.join()
    return took


def test_plain_socket_code_sees_the_delayed_ack_stall_and_tcp_nodelay_end_it(
    inet: SimNetwork,
) -> None:
    assert _request_times(nodelay=False) == [0.0, pytest.approx(DELAYED_ACK),
                                             pytest.approx(DELAYED_ACK)]
    assert _request_times(nodelay=True) == [0.0, 0.0, 0.0]
