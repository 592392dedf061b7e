"""Fixtures place a server on a host, and code running on a host connects from it.

``tcp_server(H, host="db")`` binds on host ``db`` (added if the network has none).
A thread started by code running on a host belongs to that host, so under
interception the connections its code opens (``socket.create_connection``,
``requests``...) leave from that host's address.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from typing import Any

import pytest

import sockfake
from sockfake.errors import SockfakeTypeError
from sockfake.sim import SimNetwork
from sockfake.testing import open_testbed


class Whois(sockfake.StreamRequestHandler):
    """Answers with the address it sees the client at."""

    def handle(self) -> None:
        self.wfile.write(f"{self.client_address[0]}\n".encode())


def ask(address: Any) -> str:
    """Connect with the stdlib (intercepted) and read one line."""
    with socket.create_connection(address[:2], timeout=10) as conn:
        return conn.makefile("rb").readline().decode().strip()


class Relay(sockfake.StreamRequestHandler):
    """Asks the server at ``self.server.upstream`` who it is seen as, from a thread of
    its own, and relays the answer with its own host name."""

    def handle(self) -> None:
        seen: list[str] = []
        upstream = self.server.upstream
        helper = threading.Thread(target=lambda: seen.append(ask(upstream)))
        helper.start()
        helper.join()
        self.wfile.write(f"{socket.gethostname()} {seen[0]}\n".encode())


class DirectRelay(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(f"{ask(self.server.upstream)}\n".encode())


def test_a_server_on_a_host_binds_there(tcp_server: Any, sockfake_network: SimNetwork) -> None:
    srv = tcp_server(Whois, host="db")
    db = sockfake_network.host("db")
    assert srv.host == "db"
    assert srv.address[0] == db.ipv4[0] != "127.0.0.1"
    assert srv.url.startswith(f"http://{db.ipv4[0]}:")
    local = sockfake_network.host("local").ipv4[0]
    assert ask(srv.address) == local  # the test's thread is on the default host


def test_its_handlers_connect_from_its_host(tcp_server: Any, sockfake_network: SimNetwork) -> None:
    cache = tcp_server(Whois, host="cache")
    relay = tcp_server(Relay, host="db", upstream=cache.address)
    db = sockfake_network.host("db")
    assert ask(relay.address) == f"db {db.ipv4[0]}"


@pytest.mark.sockfake(handler_errors=(TimeoutError,))
def test_a_partition_between_hosts_cuts_the_handlers_connection(
    tcp_server: Any, sockfake_network: SimNetwork
) -> None:
    cache = tcp_server(Whois, host="cache")
    relay = tcp_server(DirectRelay, host="db", upstream=cache.address)
    sockfake_network.partition("db", "cache")
    # The relay's connect to cache retries its SYN and times out (10 s); the test's
    # own connection (local -> db) is not cut, and closes when the handler fails.
    started = sockfake_network.time()
    with socket.create_connection(relay.address[:2], timeout=60) as conn:
        assert conn.makefile("rb").readline() == b""
    assert sockfake_network.time() - started >= 10


def test_a_stdlib_server_built_on_a_host(tcp_server: Any, sockfake_network: SimNetwork) -> None:
    class StdlibRelay(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(f"{socket.gethostname()} {ask(self.server.upstream)}\n".encode())  # type: ignore[attr-defined]

    class Server(socketserver.ThreadingTCPServer):
        upstream: Any = None

    cache = tcp_server(Whois, host="cache")
    Server.upstream = cache.address
    relay = tcp_server(StdlibRelay, server_class=Server, host="db")
    db = sockfake_network.host("db")
    assert relay.address[0] == db.ipv4[0]
    assert ask(relay.address) == f"db {db.ipv4[0]}"


def test_udp_and_a_factory_on_a_host(
    udp_server: Any, tcp_server: Any, sockfake_network: SimNetwork
) -> None:
    class Echo(sockfake.DatagramRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.client_address[0].encode())

    srv = udp_server(Echo, host="dns")
    dns = sockfake_network.host("dns")
    assert srv.address[0] == dns.ipv4[0]
    with srv.client(timeout=10) as client:
        client.sendto(b"?", srv.address)
        assert client.recvfrom(100)[0] == sockfake_network.host("local").ipv4[0].encode()
    made = tcp_server(
        server_factory=lambda host, port: socketserver.TCPServer(
            (host, port), Whois  # type: ignore[arg-type]  # a sockfake handler: it fits
        ),
        host=dns,  # a Host works too
    )
    assert made.address[0] == dns.ipv4[0] and made.host == "dns"


def test_an_existing_host_is_used_as_it_is(tcp_server: Any, sockfake_network: SimNetwork) -> None:
    sockfake_network.add_host("db", ipv4="192.168.1.5")
    assert tcp_server(Whois, host="db").address[0] == "192.168.1.5"


@pytest.mark.parametrize("bad", [3, "", b"db"])
def test_a_bad_host_is_refused_by_name(tcp_server: Any, bad: Any) -> None:
    with pytest.raises(SockfakeTypeError, match=r"tcp_server\(host=\): expected a host name"):
        tcp_server(Whois, host=bad)


def test_a_host_of_another_network_is_refused(tcp_server: Any) -> None:
    with SimNetwork(seed=1) as other:
        with pytest.raises(ValueError, match="belongs to another network"):
            tcp_server(Whois, host=other.host("local"))


def test_the_testbed_places_servers_without_pytest_fixtures() -> None:
    with open_testbed(seed=2, intercept=True, latency=0.01) as bed:
        cache = bed.tcp_server(Whois, host="cache")
        relay = bed.tcp_server(Relay, host="db", upstream=cache.address)
        assert ask(relay.address) == f"db {bed.network.host('db').ipv4[0]}"


def test_on_the_real_network_a_host_skips_the_test() -> None:
    import unittest

    with open_testbed("real") as bed, pytest.raises(unittest.SkipTest, match="host='db'"):
        bed.tcp_server(Whois, host="db")


def test_a_thread_inherits_its_creators_host() -> None:
    # The kernel's rule, without the fixtures: Host.thread() places a thread, and the
    # threads it starts run on the same host.
    with SimNetwork(seed=3) as net, net.intercept():
        db = net.add_host("db")
        names: list[str] = []

        def inner() -> None:
            names.append(socket.gethostname())

        def outer() -> None:
            names.append(socket.gethostname())
            child = threading.Thread(target=inner)
            child.start()
            child.join()

        placed = db.thread(target=outer)
        placed.start()
        placed.join()
        names.append(socket.gethostname())
        assert names == ["db", "db", "local"]
