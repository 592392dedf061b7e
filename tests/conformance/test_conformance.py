"""Behaviours both networks share, checked by one test body on each."""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import sockfake as socketserver

LINGER_ZERO = struct.pack("ii", 1, 0)


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


class DatagramEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)


@contextmanager
def serving(server: Any) -> Iterator[Any]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,))
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def recv_exactly(sock: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return data


@contextmanager
def connected_pair(network: Any, family: int = socket.AF_INET, address: Any = None) -> Any:
    """A listener, a client connected to it, and the accepted server side."""
    if address is None:
        address = ("::1", 0) if family == socket.AF_INET6 else ("127.0.0.1", 0)
    listener = network.socket(family, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen()
    client = network.socket(family, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(listener.getsockname())
    conn, _ = listener.accept()
    conn.settimeout(10)
    try:
        yield client, conn
    finally:
        for sock in (client, conn, listener):
            sock.close()


def _echo_stream(network: Any, server: Any, family: int) -> None:
    payload = bytes(range(256)) * 8
    with serving(server), network.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(server.server_address)
        client.sendall(payload)
        assert recv_exactly(client, len(payload)) == payload


def test_echo_tcp_ipv4(network: Any) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=network)
    _echo_stream(network, server, socket.AF_INET)


def test_echo_tcp_ipv6(network: Any) -> None:
    server = socketserver.ThreadingTCPServer(("::1", 0), Echo, network=network)
    assert server.socket.family == socket.AF_INET6
    _echo_stream(network, server, socket.AF_INET6)


def test_echo_unix_stream(network: Any, unix_path: Any) -> None:
    server = socketserver.ThreadingUnixStreamServer(unix_path("s"), Echo, network=network)
    _echo_stream(network, server, socket.AF_UNIX)


def _echo_datagrams(network: Any, server: Any, family: int, client_address: Any) -> None:
    with serving(server), network.socket(family, socket.SOCK_DGRAM) as client:
        client.settimeout(10)
        if client_address is not None:
            client.bind(client_address)
        for number in range(5):
            client.sendto(b"datagram %d" % number, server.server_address)
            data, source = client.recvfrom(100)
            assert data == b"datagram %d" % number
            assert source == server.server_address


def test_echo_udp(network: Any) -> None:
    server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), DatagramEcho, network=network)
    _echo_datagrams(network, server, socket.AF_INET, None)


def test_echo_unix_datagram(network: Any, unix_path: Any) -> None:
    server = socketserver.UnixDatagramServer(unix_path("d"), DatagramEcho, network=network)
    _echo_datagrams(network, server, socket.AF_UNIX, unix_path("c"))


def test_connection_refused(network: Any) -> None:
    probe = network.socket()
    probe.bind(("127.0.0.1", 0))
    address = probe.getsockname()
    probe.close()
    with pytest.raises(ConnectionRefusedError) as info:
        network.create_connection(address, timeout=10)
    assert info.value.errno == errno.ECONNREFUSED


def test_half_close_gives_eof_and_the_peer_can_still_write(network: Any) -> None:
    with connected_pair(network) as (client, conn):
        client.sendall(b"request")
        client.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(100):
            data += chunk
        assert data == b"request"
        conn.sendall(b"reply")
        conn.close()
        assert recv_exactly(client, 5) == b"reply"
        assert client.recv(10) == b""


def test_reset_gives_connection_reset_error(network: Any) -> None:
    with connected_pair(network) as (client, conn):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        client.close()
        with pytest.raises(ConnectionResetError) as info:
            conn.recv(10)
        assert info.value.errno == errno.ECONNRESET


def test_recv_timeout_raises_timeout_error(network: Any) -> None:
    with connected_pair(network) as (client, conn):
        conn.settimeout(0.2)
        start = network.time()
        with pytest.raises(TimeoutError):
            conn.recv(10)
        assert network.time() - start >= 0.19


def test_makefile_readline_reads_across_chunks(network: Any) -> None:
    with connected_pair(network) as (client, conn):
        reader = conn.makefile("rb")
        client.sendall(b"par")
        client.sendall(b"tial line\nsec")
        client.sendall(b"ond line\n")
        assert reader.readline() == b"partial line\n"
        assert reader.readline() == b"second line\n"
        client.shutdown(socket.SHUT_WR)
        assert reader.readline() == b""
        reader.close()


def test_second_bind_of_a_port_is_eaddrinuse(network: Any) -> None:
    with network.socket() as first, network.socket() as second:
        first.bind(("127.0.0.1", 0))
        first.listen()
        with pytest.raises(OSError) as info:
            second.bind(first.getsockname())
        assert info.value.errno == errno.EADDRINUSE


def test_second_bind_of_a_unix_path_is_eaddrinuse(network: Any, unix_path: Any) -> None:
    path = unix_path("busy")
    with network.socket(socket.AF_UNIX) as first, network.socket(socket.AF_UNIX) as second:
        first.bind(path)
        with pytest.raises(OSError) as info:
            second.bind(path)
        assert info.value.errno == errno.EADDRINUSE


def test_nonblocking_recv_raises_blocking_io_error(network: Any) -> None:
    with connected_pair(network) as (_client, conn):
        conn.setblocking(False)
        with pytest.raises(BlockingIOError) as info:
            conn.recv(10)
        assert info.value.errno == errno.EAGAIN
    with network.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        with pytest.raises(BlockingIOError):
            udp.recvfrom(10)


def test_address_shapes_ipv4(network: Any) -> None:
    with connected_pair(network) as (client, conn):
        local, peer = client.getsockname(), client.getpeername()
        assert isinstance(local, tuple) and len(local) == 2
        assert local[0] == "127.0.0.1" and isinstance(local[1], int)
        assert conn.getpeername() == local
        assert conn.getsockname() == peer


def test_address_shapes_ipv6(network: Any) -> None:
    with connected_pair(network, socket.AF_INET6) as (client, conn):
        local = client.getsockname()
        assert len(local) == 4 and local[0] == "::1" and local[2:] == (0, 0)
        assert conn.getpeername() == local
        assert client.getpeername() == conn.getsockname()


def test_address_shapes_unix(network: Any, unix_path: Any) -> None:
    path = unix_path("shape")
    with connected_pair(network, socket.AF_UNIX, path) as (client, conn):
        assert client.getpeername() == path
        assert client.getsockname() == ""
        assert conn.getsockname() == path
        assert conn.getpeername() == ""


def test_unconnected_getpeername_is_enotconn(network: Any) -> None:
    with network.socket() as sock:
        with pytest.raises(OSError) as info:
            sock.getpeername()
        assert info.value.errno == errno.ENOTCONN
        assert sock.getsockname() == ("0.0.0.0", 0)
