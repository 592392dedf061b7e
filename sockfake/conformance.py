"""The conformance suite: behaviours every network must share, as a library function.

Each check is one behaviour of sockets and servers (an echo over TCP, IPv6, Unix
paths; refusals, resets, half-close, timeouts, errno details) written once against
the ``Network`` protocol. ``check_network(factory)`` runs every check on a fresh
network from ``factory`` and fails naming each check that does not hold: the real
network passes them all, and so must the simulation. As trio exports its stream
checks, this is for anyone who writes a ``Network``, with any test runner; sockfake's
own suite runs it on both networks (``tests/conformance``).

Checks only use 127.0.0.1, ::1 and paths in a fresh temporary directory; every wait
is bounded (10 s socket timeouts, virtual on the simulation).

Why this module passes 600 lines: it is a list of 37 checks, a dozen lines each and
independent of one another, that the author of a ``Network`` reads as one
specification; split, the list would only be scattered.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import selectors
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import sockfake as socketserver

__all__ = ["CHECKS", "check_network"]

Paths = Callable[[str], str]  # a name -> a fresh Unix socket path
Check = Callable[[Any, Paths], None]
CHECKS: dict[str, Check] = {}


def _check(function: Check) -> Check:
    CHECKS[function.__name__.removeprefix("check_")] = function
    return function


_E = TypeVar("_E", bound=BaseException)


class _Raised(Generic[_E]):
    value: _E


@contextmanager
def raises(expected: type[_E], match: str | None = None) -> Iterator[_Raised[_E]]:
    """Like ``pytest.raises``, without pytest: the block must raise ``expected``
    (whose message matches the regular expression ``match``, if given)."""
    raised: _Raised[_E] = _Raised()
    try:
        yield raised
    except expected as exc:
        if match is not None and not re.search(match, str(exc)):
            raise AssertionError(f"{exc!r} does not match {match!r}") from exc
        raised.value = exc
    else:
        raise AssertionError(f"did not raise {expected.__name__}")


def check_network(factory: Callable[[], Any], *, names: list[str] | None = None) -> None:
    """Run the checks (all, or ``names``) each on a fresh network from ``factory``.

    A network with a ``close()`` method is closed after its check. Raises
    ``AssertionError`` listing every check that failed, with its error.
    """
    unknown = sorted(set(names or ()) - set(CHECKS))
    if unknown:
        from sockfake.errors import SockfakeValueError

        raise SockfakeValueError(f"check_network(names=): unknown check(s) {', '.join(unknown)}")
    failures = []
    for name in names or sorted(CHECKS):
        directory = tempfile.mkdtemp(prefix="sfc-", dir="/tmp")
        network = factory()
        try:
            CHECKS[name](network, functools.partial(os.path.join, directory))
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            close = getattr(network, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
            shutil.rmtree(directory, ignore_errors=True)
    if failures:
        raise AssertionError(
            f"{len(failures)} of {len(names or CHECKS)} conformance checks failed:\n"
            + "\n".join(failures)
        )


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


@_check
def check_echo_tcp_ipv4(network: Any, unix_path: Paths) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=network)
    _echo_stream(network, server, socket.AF_INET)


@_check
def check_echo_tcp_ipv6(network: Any, unix_path: Paths) -> None:
    server = socketserver.ThreadingTCPServer(("::1", 0), Echo, network=network)
    assert server.socket.family == socket.AF_INET6
    _echo_stream(network, server, socket.AF_INET6)


@_check
def check_echo_unix_stream(network: Any, unix_path: Paths) -> None:
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


@_check
def check_echo_udp(network: Any, unix_path: Paths) -> None:
    server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), DatagramEcho, network=network)
    _echo_datagrams(network, server, socket.AF_INET, None)


@_check
def check_echo_unix_datagram(network: Any, unix_path: Paths) -> None:
    server = socketserver.UnixDatagramServer(unix_path("d"), DatagramEcho, network=network)
    _echo_datagrams(network, server, socket.AF_UNIX, unix_path("c"))


@_check
def check_connection_refused(network: Any, unix_path: Paths) -> None:
    probe = network.socket()
    probe.bind(("127.0.0.1", 0))
    address = probe.getsockname()
    probe.close()
    with raises(ConnectionRefusedError) as info:
        network.create_connection(address, timeout=10)
    assert info.value.errno == errno.ECONNREFUSED


@_check
def check_half_close_gives_eof_and_the_peer_can_still_write(network: Any, unix_path: Paths) -> None:
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


@_check
def check_reset_gives_connection_reset_error(network: Any, unix_path: Paths) -> None:
    with connected_pair(network) as (client, conn):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        client.close()
        with raises(ConnectionResetError) as info:
            conn.recv(10)
        assert info.value.errno == errno.ECONNRESET


@_check
def check_recv_timeout_raises_timeout_error(network: Any, unix_path: Paths) -> None:
    with connected_pair(network) as (client, conn):
        conn.settimeout(0.2)
        start = network.time()
        with raises(TimeoutError):
            conn.recv(10)
        assert network.time() - start >= 0.19


@_check
def check_makefile_readline_reads_across_chunks(network: Any, unix_path: Paths) -> None:
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


@_check
def check_second_bind_of_a_port_is_eaddrinuse(network: Any, unix_path: Paths) -> None:
    with network.socket() as first, network.socket() as second:
        first.bind(("127.0.0.1", 0))
        first.listen()
        with raises(OSError) as info:
            second.bind(first.getsockname())
        assert info.value.errno == errno.EADDRINUSE


@_check
def check_second_bind_of_a_unix_path_is_eaddrinuse(network: Any, unix_path: Paths) -> None:
    path = unix_path("busy")
    with network.socket(socket.AF_UNIX) as first, network.socket(socket.AF_UNIX) as second:
        first.bind(path)
        with raises(OSError) as info:
            second.bind(path)
        assert info.value.errno == errno.EADDRINUSE


@_check
def check_nonblocking_recv_raises_blocking_io_error(network: Any, unix_path: Paths) -> None:
    with connected_pair(network) as (_client, conn):
        conn.setblocking(False)
        with raises(BlockingIOError) as info:
            conn.recv(10)
        assert info.value.errno == errno.EAGAIN
    with network.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        with raises(BlockingIOError):
            udp.recvfrom(10)


@_check
def check_address_shapes_ipv4(network: Any, unix_path: Paths) -> None:
    with connected_pair(network) as (client, conn):
        local, peer = client.getsockname(), client.getpeername()
        assert isinstance(local, tuple) and len(local) == 2
        assert local[0] == "127.0.0.1" and isinstance(local[1], int)
        assert conn.getpeername() == local
        assert conn.getsockname() == peer


@_check
def check_address_shapes_ipv6(network: Any, unix_path: Paths) -> None:
    with connected_pair(network, socket.AF_INET6) as (client, conn):
        local = client.getsockname()
        assert len(local) == 4 and local[0] == "::1" and local[2:] == (0, 0)
        assert conn.getpeername() == local
        assert client.getpeername() == conn.getsockname()


@_check
def check_address_shapes_unix(network: Any, unix_path: Paths) -> None:
    path = unix_path("shape")
    with connected_pair(network, socket.AF_UNIX, path) as (client, conn):
        assert client.getpeername() == path
        assert client.getsockname() == ""
        assert conn.getsockname() == path
        assert conn.getpeername() == ""


@_check
def check_unconnected_getpeername_is_enotconn(network: Any, unix_path: Paths) -> None:
    with network.socket() as sock:
        with raises(OSError) as info:
            sock.getpeername()
        assert info.value.errno == errno.ENOTCONN
        assert sock.getsockname() == ("0.0.0.0", 0)


# -- errno details both networks share (each found by comparing the two) -----------------


def _closed_port(network: Any, kind: int = socket.SOCK_STREAM) -> Any:
    probe = network.socket(socket.AF_INET, kind)
    probe.bind(("127.0.0.1", 0))
    address = probe.getsockname()
    probe.close()
    return address


@_check
def check_send_on_a_stream_socket_that_is_not_connected_is_broken_pipe(
    network: Any, unix_path: Paths
) -> None:
    with network.socket() as sock:
        with raises(BrokenPipeError):
            sock.send(b"x")
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with raises(BrokenPipeError):
            sock.send(b"x")
        with raises(OSError) as info:
            sock.recv(1)
        assert info.value.errno == errno.ENOTCONN


@_check
def check_sendto_on_a_connected_stream_ignores_the_address(network: Any, unix_path: Paths) -> None:
    with connected_pair(network) as (client, conn):
        assert client.sendto(b"abc", ("127.0.0.1", 9)) == 3
        assert recv_exactly(conn, 3) == b"abc"


@_check
def check_after_a_reset_getpeername_is_enotconn(network: Any, unix_path: Paths) -> None:
    with connected_pair(network) as (client, conn):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        conn.close()
        with raises(ConnectionResetError):
            client.recv(1)
        with raises(OSError) as info:
            client.getpeername()
        assert info.value.errno == errno.ENOTCONN


@_check
def check_accept_returns_a_connection_reset_before_it_was_accepted(
    network: Any, unix_path: Paths
) -> None:
    with network.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = network.create_connection(listener.getsockname(), timeout=10)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        client.close()
        listener.settimeout(10)
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            with raises(ConnectionResetError):
                conn.recv(10)
            assert conn.recv(10) == b""


@_check
def check_a_connect_beyond_a_full_backlog_times_out(network: Any, unix_path: Paths) -> None:
    with network.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # Linux queues backlog + 1 = 1 connection
        first = network.create_connection(listener.getsockname(), timeout=10)
        with raises(TimeoutError):
            network.create_connection(listener.getsockname(), timeout=0.3)
        first.close()


@_check
def check_only_a_completed_connection_is_accepted(network: Any, unix_path: Paths) -> None:
    with network.socket() as listener, network.selector() as selector:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # room for one connection
        selector.register(listener, selectors.EVENT_READ)
        first = network.create_connection(listener.getsockname(), timeout=10)
        assert selector.select(10)  # its handshake completed: the listener is readable
        with network.socket() as second, network.selector() as connecting:
            second.setblocking(False)
            assert second.connect_ex(listener.getsockname()) == errno.EINPROGRESS
            connecting.register(second, selectors.EVENT_WRITE)
            assert connecting.select(0.3) == []  # its SYN dropped at the full queue
            conn, _ = listener.accept()
            conn.close()
            # The second connection's handshake has not completed: nothing to accept.
            listener.setblocking(False)
            with raises(BlockingIOError):
                listener.accept()
        first.close()


@_check
def check_nonblocking_connect_reports_its_end_once(network: Any, unix_path: Paths) -> None:
    with network.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with network.socket() as client, network.selector() as selector:
            client.setblocking(False)
            assert client.connect_ex(listener.getsockname()) == errno.EINPROGRESS
            selector.register(client, selectors.EVENT_WRITE)
            assert selector.select(10)
            assert client.connect_ex(listener.getsockname()) == 0
            assert client.connect_ex(listener.getsockname()) == errno.EISCONN
    address = _closed_port(network)
    with network.socket() as client, network.selector() as selector:
        client.setblocking(False)
        assert client.connect_ex(address) == errno.EINPROGRESS
        selector.register(client, selectors.EVENT_WRITE)
        assert selector.select(10)
        assert client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
        assert client.connect_ex(address) == errno.ECONNABORTED


@_check
def check_a_connect_in_timeout_mode_reports_0_once_more(network: Any, unix_path: Paths) -> None:
    with connected_pair(network) as (client, conn):  # the client connected with a timeout
        assert client.connect_ex(conn.getsockname()) == 0
        assert client.connect_ex(conn.getsockname()) == errno.EISCONN


@_check
def check_a_refused_connect_leaves_a_socket_that_can_try_again(
    network: Any, unix_path: Paths
) -> None:
    address = _closed_port(network)
    with network.socket() as client:
        assert client.connect_ex(address) == errno.ECONNREFUSED
        with raises(BrokenPipeError):
            client.send(b"x")
        assert client.connect_ex(address) == errno.ECONNREFUSED


@_check
def check_connected_udp_to_a_closed_port_is_refused(network: Any, unix_path: Paths) -> None:
    with network.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(10)
        client.connect(_closed_port(network, socket.SOCK_DGRAM))
        client.send(b"anyone?")
        with raises(ConnectionRefusedError):
            client.recv(10)


@_check
def check_unconnected_sendto_binds_the_wildcard_address(network: Any, unix_path: Paths) -> None:
    with network.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"x", _closed_port(network, socket.SOCK_DGRAM))
        assert sender.getsockname()[0] == "0.0.0.0"
        sender.connect(("127.0.0.1", 9))
        assert sender.getsockname()[0] == "127.0.0.1"


@_check
def check_udp_server_on_the_wildcard_address_answers_a_connected_client(
    network: Any, unix_path: Paths
) -> None:
    server = socketserver.UDPServer(("0.0.0.0", 0), DatagramEcho, network=network)
    port = server.server_address[1]
    with serving(server), network.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(10)
        client.connect(("127.0.0.1", port))
        client.send(b"ping")
        assert client.recv(10) == b"ping"  # the reply comes from 127.0.0.1, not 0.0.0.0


@_check
def check_unix_connect_and_sendto_a_missing_or_wrong_path(network: Any, unix_path: Paths) -> None:
    missing = unix_path("missing")
    with network.socket(socket.AF_UNIX) as stream, raises(FileNotFoundError):
        stream.connect(missing)
    with network.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dgram:
        with raises(FileNotFoundError):
            dgram.sendto(b"x", missing)
        dgram.bind(unix_path("dgram"))
        with network.socket(socket.AF_UNIX) as stream, raises(OSError) as info:
            stream.connect(unix_path("dgram"))
        assert info.value.errno == errno.EPROTOTYPE


@_check
def check_settimeout_checks_its_argument_and_the_descriptor(network: Any, unix_path: Paths) -> None:
    sock = network.socket()
    with raises(TypeError, match="'str' object cannot be interpreted as an integer"):
        sock.settimeout("1")
    with raises(ValueError, match="NaN"):
        sock.settimeout(float("nan"))
    with raises(ValueError, match="out of range"):
        sock.settimeout(-1)
    sock.settimeout(2)
    assert sock.gettimeout() == 2.0
    sock.close()
    with raises(OSError) as info:
        sock.settimeout(1)
    assert info.value.errno == errno.EBADF


@_check
def check_flag_options_read_back_as_1_and_linger_needs_a_struct(
    network: Any, unix_path: Paths
) -> None:
    with network.socket() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 5)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        for bad in (1, b"\x01\0\0\0"):
            with raises(OSError) as info:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, bad)
            assert info.value.errno == errno.EINVAL


@_check
def check_msg_dontwait_only_counts_on_a_blocking_socket(network: Any, unix_path: Paths) -> None:
    with connected_pair(network) as (client, conn):
        conn.settimeout(None)
        with raises(BlockingIOError):
            conn.recv(10, socket.MSG_DONTWAIT)
        conn.settimeout(0.1)  # CPython waits out the timeout first
        with raises(TimeoutError):
            conn.recv(10, socket.MSG_DONTWAIT)


@_check
def check_an_ipv6_socket_takes_ipv4_unless_v6only(network: Any, unix_path: Paths) -> None:
    with network.socket(socket.AF_INET6, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.bind(("::", 0))
        server.listen()
        port = server.getsockname()[1]
        with network.socket(socket.AF_INET, socket.SOCK_STREAM) as v4:
            with raises(OSError) as info:
                v4.bind(("127.0.0.1", port))  # the dual-stack socket holds the port
            assert info.value.errno == errno.EADDRINUSE
        with network.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(("127.0.0.1", port))
            conn, address = server.accept()
            with conn:
                assert address[0] == "::ffff:127.0.0.1"
                client.sendall(b"v4")
                assert recv_exactly(conn, 2) == b"v4"
    with network.socket(socket.AF_INET6, socket.SOCK_STREAM) as only:
        only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        only.bind(("::", 0))
        only.listen()
        with network.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            assert client.connect_ex(("127.0.0.1", only.getsockname()[1])) == errno.ECONNREFUSED


@_check
def check_a_reset_after_the_peers_fin_is_broken_pipe(network: Any, unix_path: Paths) -> None:
    with connected_pair(network) as (client, conn):
        conn.close()
        assert client.recv(10) == b""  # the FIN
        client.sendall(b"into the void")  # the closed peer answers with a reset
        network.sleep(0.1)
        assert client.recv(10) == b""  # Linux: CLOSE_WAIT, reads stay EOF
        with raises(BrokenPipeError):
            client.send(b"again")


@_check
def check_recvmsg_reports_a_truncated_datagram(network: Any, unix_path: Paths) -> None:
    with network.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            network.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(10)
        assert sender.sendmsg([b"0123", b"456789"], [], 0, receiver.getsockname()) == 10
        data, ancdata, flags, address = receiver.recvmsg(4)
        assert (data, ancdata) == (b"0123", [])
        assert flags & socket.MSG_TRUNC
        assert address == ("127.0.0.1", sender.getsockname()[1])


@_check
def check_an_unknown_socket_option_is_enoprotoopt(network: Any, unix_path: Paths) -> None:
    with network.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with raises(OSError) as info:
            sock.getsockopt(socket.SOL_SOCKET, 9999)
        assert info.value.errno == errno.ENOPROTOOPT
        with raises(OSError) as info:
            sock.setsockopt(socket.SOL_SOCKET, 9999, 1)
        assert info.value.errno == errno.ENOPROTOOPT
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 64
