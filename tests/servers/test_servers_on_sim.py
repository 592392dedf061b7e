"""Every server class runs unchanged on the simulated network."""

from __future__ import annotations

import errno
import os
import socket
import sys
from typing import Any

import pytest
from helpers import serving

import sockfake as socketserver
from sockfake.sim import SimNetwork


class StreamEcho(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline()
        self.wfile.write(b"echo " + line)


class DatagramEcho(socketserver.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"echo " + self.rfile.read())


STREAM_SERVERS = [
    socketserver.TCPServer,
    socketserver.ThreadingTCPServer,
    socketserver.ThreadPoolTCPServer,
    socketserver.UnixStreamServer,
    socketserver.ThreadingUnixStreamServer,
    socketserver.ThreadPoolUnixStreamServer,
]
DATAGRAM_SERVERS = [
    socketserver.UDPServer,
    socketserver.ThreadingUDPServer,
    socketserver.ThreadPoolUDPServer,
    socketserver.UnixDatagramServer,
    socketserver.ThreadingUnixDatagramServer,
    socketserver.ThreadPoolUnixDatagramServer,
]


def _address(cls: type[Any]) -> Any:
    if cls.address_family == socket.AF_UNIX:
        return f"/srv/{cls.__name__}.sock"
    return ("127.0.0.1", 0)


@pytest.mark.parametrize("cls", STREAM_SERVERS, ids=lambda c: c.__name__)
def test_stream_server_class_serves_several_clients(net: SimNetwork, cls: type[Any]) -> None:
    server = cls(_address(cls), StreamEcho, network=net)
    with serving(server):
        for number in range(3):
            with net.socket(cls.address_family, socket.SOCK_STREAM) as client:
                client.connect(server.server_address)
                client.sendall(b"line %d\n" % number)
                with client.makefile("rb") as reader:
                    assert reader.readline() == b"echo line %d\n" % number
    assert server.socket.fileno() == -1


@pytest.mark.parametrize("cls", DATAGRAM_SERVERS, ids=lambda c: c.__name__)
def test_datagram_server_class_answers(net: SimNetwork, cls: type[Any]) -> None:
    server = cls(_address(cls), DatagramEcho, network=net)
    with serving(server):
        with net.socket(cls.address_family, socket.SOCK_DGRAM) as client:
            if cls.address_family == socket.AF_UNIX:
                client.bind("/tmp/client.sock")  # a Unix datagram client needs an address
            for number in range(3):
                client.sendto(b"%d" % number, server.server_address)
                assert client.recv(100) == b"echo %d" % number


def test_threading_server_keeps_answering_while_a_slow_client_is_served(net: SimNetwork) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), StreamEcho, network=net)
    with serving(server):
        slow = net.create_connection(server.server_address)
        slow.sendall(b"no newline yet")
        with net.create_connection(server.server_address, timeout=1) as fast:
            fast.sendall(b"quick\n")
            assert fast.recv(100) == b"echo quick\n"
        assert net.time() < 0.001
        slow.close()


def test_sync_server_is_deaf_while_a_slow_client_is_served(net: SimNetwork) -> None:
    server = socketserver.TCPServer(("127.0.0.1", 0), StreamEcho, network=net)
    with serving(server):
        slow = net.create_connection(server.server_address)
        slow.sendall(b"no newline yet")
        with net.create_connection(server.server_address, timeout=1) as fast:
            fast.sendall(b"quick\n")
            with pytest.raises(TimeoutError):
                fast.recv(100)
            slow.close()  # the handler gets EOF and the server moves on
            fast.settimeout(None)
            assert fast.recv(100) == b"echo quick\n"


@pytest.mark.skipif(not hasattr(socketserver, "ForkingTCPServer"), reason="no fork")
def test_forking_server_refuses_at_construction_with_a_clear_error(net: SimNetwork) -> None:
    with pytest.raises(NotImplementedError, match=r"ForkingMixIn.*ThreadingMixIn"):
        socketserver.ForkingTCPServer(("127.0.0.1", 0), StreamEcho, network=net)
    with pytest.raises(NotImplementedError, match="ForkingMixIn"):
        socketserver.ForkingUDPServer(("127.0.0.1", 0), StreamEcho, network=net.default_host)
    assert net.open_sockets() == []  # the failed constructor closed its socket


@pytest.mark.skipif(not hasattr(socketserver, "ForkingTCPServer"), reason="no fork")
def test_forking_server_activated_by_hand_refuses_each_request(net: SimNetwork) -> None:
    errors: list[BaseException] = []

    class Server(socketserver.ForkingTCPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            errors.append(sys.exc_info()[1])  # type: ignore[arg-type]

    server = Server(("127.0.0.1", 0), StreamEcho, bind_and_activate=False, network=net)
    server.server_bind()
    socketserver.TCPServer.server_activate(server)  # around the refusal, as old code might
    with net.create_connection(server.server_address) as client:
        server.handle_request()
        assert client.recv(10) == b""  # the request was closed
    server.server_close()
    assert len(errors) == 1 and isinstance(errors[0], NotImplementedError)
    assert "ForkingMixIn" in str(errors[0]) and "ThreadingMixIn" in str(errors[0])
    assert server.active_children is None


def test_server_close_joins_handler_threads_in_virtual_time(net: SimNetwork) -> None:
    finished: list[float] = []
    started = net.event()

    class Slow(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            started.set()
            net.sleep(30)
            finished.append(net.time())

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Slow, network=net)
    with serving(server):
        client = net.create_connection(server.server_address)
        started.wait()
    # server_close() joined the handler: it ran to its end, 30 virtual seconds later.
    assert finished == [pytest.approx(30.0)]
    client.close()


def test_unix_server_socket_files_on_the_simulation_as_on_the_os() -> None:
    # The socket file outlives the server (EADDRINUSE); remove_stale_socket removes a
    # stale one and keeps a live one; remove_socket_on_close removes the server's own.
    path = "/tmp/sockfake-stale.sock"
    cleaning = type("Cleaning", (socketserver.UnixStreamServer,),
                    {"remove_stale_socket": True, "remove_socket_on_close": True})
    with SimNetwork(seed=1) as net, net.intercept():
        socketserver.UnixStreamServer(path, StreamEcho, network=net).server_close()
        assert os.path.exists(path)
        with pytest.raises(OSError) as raised:
            socketserver.UnixStreamServer(path, StreamEcho, network=net)
        assert raised.value.errno == errno.EADDRINUSE
        with cleaning(path, StreamEcho, network=net) as live:
            with pytest.raises(OSError):
                cleaning(path, StreamEcho, network=net)  # a live server keeps its file
            assert os.path.exists(path)
            live.server_close()
        assert not os.path.exists(path)
