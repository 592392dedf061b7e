"""``server_class=`` takes servers built on the stdlib's socketserver as they are, and
``server_factory=`` builds servers whose constructor is not ``(address, handler)``.

On the simulated network such a server makes its socket with ``socket.socket()``,
which interception (the fixtures' default) makes simulated; on the real network it is
the stdlib's own server. Either way the fixture stops it, and a handler error fails
the test.
"""

from __future__ import annotations

import socketserver
import time
from typing import Any

import pytest

import sockfake
from sockfake.errors import SockfakeRuntimeError, SockfakeTypeError
from sockfake.testing import TestbedError, open_testbed


class Upper(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


class UdpUpper(socketserver.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


class MyThreadingServer(socketserver.ThreadingTCPServer):
    """A class of the user's (or a library's), built on the stdlib's socketserver."""

    daemon_threads = True


class AppServer(socketserver.ThreadingTCPServer):
    """A constructor that is not (address, handler), as werkzeug's make_server."""

    def __init__(self, host: str, port: int, greeting: bytes) -> None:
        self.greeting = greeting
        super().__init__((host, port), Greet)


class Greet(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.server.greeting + self.rfile.readline())  # type: ignore[attr-defined]


def ask(srv: Any, line: bytes, timeout: float = 10) -> bytes:
    with srv.connect(timeout=timeout) as conn:
        conn.sendall(line)
        reply: bytes = conn.makefile("rb").readline()
        return reply


@pytest.mark.sockfake(network="both")
def test_a_stdlib_derived_server_class_runs_as_it_is(tcp_server: Any) -> None:
    srv = tcp_server(Upper, server_class=MyThreadingServer)
    assert isinstance(srv.server, MyThreadingServer)
    assert not isinstance(srv.server, sockfake.BaseServer)  # not rebuilt on sockfake
    assert ask(srv, b"hello\n") == b"HELLO\n"


@pytest.mark.sockfake(network="both")
def test_a_stdlib_udp_server_class(udp_server: Any) -> None:
    srv = udp_server(UdpUpper, server_class=socketserver.ThreadingUDPServer)
    with srv.client(timeout=10) as client:
        client.sendto(b"ping", srv.address)
        assert client.recvfrom(100)[0] == b"PING"


@pytest.mark.sockfake(network="both")
def test_server_factory_builds_the_whole_server(tcp_server: Any) -> None:
    srv = tcp_server(server_factory=lambda host, port: AppServer(host, port, b"hi "))
    assert isinstance(srv.server, AppServer)
    assert srv.address[0] == "127.0.0.1" and srv.address[1] > 0
    assert ask(srv, b"there\n") == b"hi there\n"


@pytest.mark.sockfake(latency=0.05, loss=0.2)
def test_a_stdlib_server_under_latency_and_loss(tcp_server: Any, sockfake_network: Any) -> None:
    srv = tcp_server(server_factory=lambda host, port: AppServer(host, port, b"> "))
    for number in range(5):
        # 120 virtual seconds: a lost SYN or SYN-ACK waits Linux's 1, 2, 4 ... s, and
        # four lost tries in a row (one connect in ~60 under 20 % loss) outlast 10 s.
        assert ask(srv, b"%d\n" % number, timeout=120) == b"> %d\n" % number
    assert sockfake_network.time() >= 5 * 0.1  # a round trip each, at least


def test_the_stdlib_shutdown_is_noticed_at_its_poll_interval(
    tcp_server: Any, sockfake_network: Any
) -> None:
    srv = tcp_server(Upper, server_class=MyThreadingServer)
    assert ask(srv, b"x\n") == b"X\n"
    before = sockfake_network.time()
    assert srv.stop() == []
    assert 0 < sockfake_network.time() - before <= 0.5  # serve_forever(poll_interval=0.5)
    assert not srv.thread.is_alive()


@pytest.mark.sockfake(intercept=False)
def test_without_interception_a_stdlib_server_is_refused_by_name(tcp_server: Any) -> None:
    with pytest.raises(SockfakeRuntimeError, match=r"server_class=MyThreadingServer.*"
                       r"only under interception.*intercept=False"):
        tcp_server(Upper, server_class=MyThreadingServer)


@pytest.mark.sockfake(intercept=False)
def test_without_interception_a_factory_with_a_real_socket_is_refused(tcp_server: Any) -> None:
    with pytest.raises(SockfakeRuntimeError, match=r"server_factory=.*<lambda>.*"
                       r"only under interception"):
        tcp_server(server_factory=lambda host, port: AppServer(host, port, b""))


@pytest.mark.sockfake(intercept=False)
def test_without_interception_a_factory_of_a_sockfake_server_works(tcp_server: Any) -> None:
    class SockfakeUpper(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline().upper())

    srv = tcp_server(server_factory=lambda host, port: sockfake.ThreadingTCPServer(
        (host, port), SockfakeUpper))  # no network=: the test's network is the default
    assert ask(srv, b"abc\n") == b"ABC\n"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"server_factory": "make_server"}, r"expected a callable, not 'make_server'"),
        ({"handler": Upper, "server_factory": lambda host, port: None},
         r"the factory builds the whole server; a handler class .*Upper.* cannot be given"),
        ({"server_class": MyThreadingServer, "server_factory": lambda host, port: None},
         r"server_class= .*MyThreadingServer.* cannot be given too"),
        ({"server_factory": lambda host, port: None, "daemon_threads": True},
         r"server attributes \(daemon_threads\) cannot be set on a server the factory builds"),
        ({"server_factory": lambda host, port: object()},
         r"returned <object object .*>, not a server \(it has no serve_forever, shutdown"),
        ({}, r"tcp_server\(\) needs a request handler class \(or server_factory="),
        ({"handler": Upper, "server_class": dict},
         r"dict is not a server class .*pass server_factory= instead"),
    ],
)
def test_bad_server_arguments_are_refused_by_name(
    tcp_server: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(SockfakeTypeError, match=message):
        tcp_server(**kwargs)


def test_a_handler_error_in_a_stdlib_server_fails_the_testbed() -> None:
    class Broken(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(1)
            raise RuntimeError("handler bug")

    class Quiet(MyThreadingServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # no traceback on stderr; the testbed still sees the error

    expected = r"(?s)handler error for client.*RuntimeError: handler bug"
    with pytest.raises(TestbedError, match=expected):
        with open_testbed(seed=1, intercept=True) as bed:
            srv = bed.tcp_server(Broken, server_class=Quiet)
            with srv.connect() as conn:
                conn.sendall(b"x")
                assert conn.recv(1) == b""


def test_a_stdlib_server_stops_on_the_real_network() -> None:
    with open_testbed("real") as bed:
        srv = bed.tcp_server(Upper, server_class=MyThreadingServer)
        assert ask(srv, b"real\n") == b"REAL\n"
        assert srv.stop() == []
        assert not srv.thread.is_alive()


def test_on_the_real_network_a_finishing_daemon_handler_is_waited_for() -> None:
    # The stdlib's server_close() does not join daemon handler threads (werkzeug's and
    # dnslib's servers use them): one still finishing after its client hung up is
    # waited for, within the bound, not reported as stuck.
    class Finishing(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"ok\n")
            self.rfile.read()  # until the client hangs up
            time.sleep(1.0)  # then some work of its own, longer than the 0.5 s poll

    with open_testbed("real") as bed:
        srv = bed.tcp_server(Finishing, server_class=MyThreadingServer)  # daemon_threads
        with srv.connect(timeout=10) as conn:
            assert conn.makefile("rb").readline() == b"ok\n"
        assert srv.stop() == []


@pytest.mark.sockfake(network="both")
def test_a_unix_server_factory_is_given_the_path(unix_stream_server: Any) -> None:
    given: list[Any] = []

    def build(path: str) -> Any:
        given.append(path)
        return socketserver.ThreadingUnixStreamServer(path, Upper)

    srv = unix_stream_server(server_factory=build)
    assert given == [srv.address]
    assert ask(srv, b"unix\n") == b"UNIX\n"
