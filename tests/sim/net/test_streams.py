"""Stream behaviour on the simulated network, as a handler sees it."""

from __future__ import annotations

import errno
import socket
import struct
import threading

import pytest
from helpers import EchoHandler, recv_exactly, serving

import sockfake as socketserver
from sockfake.sim import SimNetwork

LINGER_ZERO = struct.pack("ii", 1, 0)


def listener(net: SimNetwork, backlog: int = 16) -> socket.socket:
    sock = net.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    return sock  # type: ignore[return-value]


# -- backlog ------------------------------------------------------------------------


class _Idle(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        pass


def test_backlog_overflow_third_client_retries_syn_then_times_out(net: SimNetwork) -> None:
    # Linux queues backlog + 1 connections; later SYNs are dropped and retried at
    # 1, 2, 4 ... 64 s (tcp_syn_retries = 6): ETIMEDOUT after 127 s.
    server = socketserver.TCPServer(("127.0.0.1", 0), _Idle, bind_and_activate=False,
                                    network=net)
    server.request_queue_size = 1
    server.server_bind()
    server.server_activate()
    try:
        first = net.create_connection(server.server_address)
        second = net.create_connection(server.server_address)
        with pytest.raises(TimeoutError) as info:
            net.create_connection(server.server_address)
        assert info.value.errno == errno.ETIMEDOUT
        assert net.time() == pytest.approx(127.0)
        retries = [event.time for event in net.trace if event.kind == "retry"]
        assert retries == pytest.approx([1.0, 3.0, 7.0, 15.0, 31.0, 63.0])
        first.close()
        second.close()
    finally:
        server.server_close()


def test_backlog_overflow_client_gets_in_on_a_retry_once_the_server_accepts(
    net: SimNetwork,
) -> None:
    server = socketserver.TCPServer(("127.0.0.1", 0), _Idle, bind_and_activate=False,
                                    network=net)
    server.request_queue_size = 1
    server.server_bind()
    server.server_activate()
    clients = [net.create_connection(server.server_address) for _ in range(2)]

    def accept_later() -> None:
        net.sleep(5.0)
        server.handle_request()

    thread = threading.Thread(target=accept_later)
    thread.start()
    third = net.create_connection(server.server_address, timeout=60)
    # SYNs at 0, 1, 3, 7: the queue had room from 5 s on, the 7 s retry got in.
    assert net.time() == pytest.approx(7.0)
    thread.join()
    for sock in [*clients, third]:
        sock.close()
    server.server_close()


def test_connect_timeout_is_virtual_when_backlog_is_full(net: SimNetwork) -> None:
    lst = listener(net, backlog=0)
    held = net.create_connection(lst.getsockname())
    with pytest.raises(TimeoutError):
        net.create_connection(lst.getsockname(), timeout=2.5)
    assert net.time() == pytest.approx(2.5)
    held.close()
    lst.close()


# -- reset before accept, reset, half-close ----------------------------------------------


def test_accept_returns_a_connection_reset_before_it_was_accepted(net: SimNetwork) -> None:
    seen: list[object] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            try:
                seen.append(self.request.recv(10))
            except OSError as exc:
                seen.append(type(exc))
            seen.append(self.request.recv(10))

    server = socketserver.TCPServer(("127.0.0.1", 0), Handler, network=net)
    client = net.create_connection(server.server_address)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    client.close()
    server.handle_request()
    server.server_close()
    # As Linux: accept() returns it; the first read reports the reset, then EOF.
    assert seen == [ConnectionResetError, b""]


def test_half_close_peer_reads_eof_and_can_still_write(net: SimNetwork) -> None:
    got: list[bytes] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data = b""
            while chunk := self.request.recv(100):
                data += chunk
            got.append(data)
            self.request.sendall(b"bye " + data)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler, network=net)
    with serving(server):
        with net.create_connection(server.server_address) as client:
            client.sendall(b"request")
            client.shutdown(socket.SHUT_WR)
            assert recv_exactly(client, 11) == b"bye request"
            assert client.recv(10) == b""
            with pytest.raises(BrokenPipeError):
                client.send(b"more")
    assert got == [b"request"]


def test_reset_gives_connection_reset_then_broken_pipe(net: SimNetwork) -> None:
    seen: list[object] = []
    ready = net.event()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            ready.set()
            try:
                self.request.recv(10)
            except ConnectionResetError as exc:
                seen.append(exc.errno)
            try:
                self.request.sendall(b"late reply")
            except BrokenPipeError as exc:
                seen.append(exc.errno)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler, network=net)
    with serving(server):
        client = net.create_connection(server.server_address)
        ready.wait()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        client.close()
    assert seen == [errno.ECONNRESET, errno.EPIPE]


def test_close_with_unread_data_resets_the_peer(net: SimNetwork) -> None:
    lst = listener(net)
    client = net.create_connection(lst.getsockname())
    conn, _ = lst.accept()
    conn.sendall(b"unread")
    client.close()  # unread data in its receive buffer: RST, not FIN
    with pytest.raises(ConnectionResetError):
        conn.recv(10)
    conn.close()
    lst.close()


def test_write_to_a_closed_peer_is_answered_with_a_reset(net: SimNetwork) -> None:
    lst = listener(net)
    client = net.create_connection(lst.getsockname())
    conn, _ = lst.accept()
    conn.close()
    assert client.recv(10) == b""  # FIN
    client.sendall(b"into the void")  # accepted locally; the peer answers with RST
    net.sleep(0.1)
    # As Linux: a reset after the peer's FIN (CLOSE_WAIT) is EPIPE, reads stay EOF.
    assert client.recv(10) == b""
    with pytest.raises(BrokenPipeError):
        client.send(b"again")
    client.close()
    lst.close()


# -- buffers and backpressure --------------------------------------------------------


def test_a_reader_that_stops_reading_blocks_sendall_until_the_timeout(net: SimNetwork) -> None:
    lst = listener(net)
    client = net.create_connection(lst.getsockname())
    conn, _ = lst.accept()
    conn.settimeout(3.0)
    with pytest.raises(TimeoutError):
        conn.sendall(b"x" * 1_000_000)
    assert net.time() == pytest.approx(3.0)
    # The buffers hold SO_SNDBUF + SO_RCVBUF bytes (64 KiB each by default).
    assert len(recv_exactly(client, 65536 * 2)) == 131072
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(1)
    for sock in (client, conn, lst):
        sock.close()


def test_backpressure_resumes_when_the_reader_reads(net: SimNetwork) -> None:
    lst = listener(net)
    client = net.create_connection(lst.getsockname())
    conn, _ = lst.accept()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1000)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1000)
    done: list[float] = []

    def writer() -> None:
        conn.sendall(b"y" * 10_000)
        done.append(net.time())

    thread = threading.Thread(target=writer)
    thread.start()
    net.sleep(1.0)
    assert done == []  # blocked: only 2000 bytes fit
    received = 0
    for _ in range(100):
        net.sleep(0.5)  # a slow reader: 1000 bytes every half second
        received += len(client.recv(1000))
        if received == 10_000:
            break
    thread.join()
    assert received == 10_000
    assert done and done[0] >= 4.0
    for sock in (client, conn, lst):
        sock.close()


def test_nonblocking_send_into_a_full_buffer_raises_blocking_io_error(net: SimNetwork) -> None:
    lst = listener(net)
    client = net.create_connection(lst.getsockname())
    conn, _ = lst.accept()
    conn.setblocking(False)
    sent = conn.send(b"z" * 200_000)
    assert sent == 131072
    with pytest.raises(BlockingIOError):
        conn.send(b"z")
    for sock in (client, conn, lst):
        sock.close()


# -- re-chunking -----------------------------------------------------------------------


class _OneRecvEcho(socketserver.BaseRequestHandler):
    """Buggy: assumes one recv() gets the whole message the client sent with sendall()."""

    seen: list[bytes] = []

    def handle(self) -> None:
        data = self.request.recv(1024)
        self.seen.append(data)
        self.request.sendall(data)


@pytest.mark.parametrize("latency", [0.0, 0.01])
def test_rechunking_catches_a_handler_that_assumes_one_recv_per_sendall(latency: float) -> None:
    message = b"a message longer than one segment"
    for chunk, expect_whole in ((None, True), (4, False)):
        _OneRecvEcho.seen = []
        with SimNetwork(seed=3, latency=latency, chunk=chunk) as net:
            server = socketserver.TCPServer(("127.0.0.1", 0), _OneRecvEcho, network=net)
            with serving(server), net.create_connection(server.server_address) as client:
                client.sendall(message)
                client.shutdown(socket.SHUT_WR)
                reply = b""
                try:
                    while data := client.recv(1024):
                        reply += data
                except ConnectionResetError:
                    # The handler closed with unread data in its buffer: a reset.
                    assert not expect_whole
        assert (_OneRecvEcho.seen == [message]) is expect_whole
        assert (reply == message) is expect_whole
        if not expect_whole:
            assert 1 <= len(_OneRecvEcho.seen[0]) <= 4


def test_rechunked_stream_still_arrives_whole_and_in_order() -> None:
    payload = bytes(range(256)) * 40
    with SimNetwork(seed=5, chunk=7, latency=0.001, jitter=0.01) as net:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), EchoHandler, network=net)
        with serving(server), net.create_connection(server.server_address) as client:
            client.sendall(payload)
            sizes = []
            got = b""
            for _ in range(len(payload)):
                data = client.recv(4096)
                sizes.append(len(data))
                got += data
                if len(got) == len(payload):
                    break
        assert got == payload
        assert max(sizes) <= 7


# -- latency, jitter, bandwidth ----------------------------------------------------------


def _round_trip(net: SimNetwork, size: int) -> float:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), EchoHandler, network=net)
    with serving(server), net.create_connection(server.server_address) as client:
        start = net.time()
        client.sendall(b"q" * size)
        recv_exactly(client, size)
        return net.time() - start


def test_latency_delays_arrival_in_virtual_time() -> None:
    with SimNetwork(seed=1, latency=0.05) as net:
        assert _round_trip(net, 10) == pytest.approx(0.1)


def test_bandwidth_adds_transmission_time() -> None:
    with SimNetwork(seed=1, latency=0.01, bandwidth=1000) as net:
        # 500 bytes take 0.5 s each way on top of the latency.
        assert _round_trip(net, 500) == pytest.approx(2 * (0.5 + 0.01))


def test_jitter_varies_delay_within_bounds_and_keeps_streams_ordered() -> None:
    payload = bytes(range(200))
    with SimNetwork(seed=9, latency=0.1, jitter=0.05) as net:
        times = [_round_trip(net, 3) for _ in range(10)]
        # Two hundred one-byte segments sent at the same instant, each with its own
        # jitter: datagrams would overtake each other, a stream must not.
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), EchoHandler, network=net)
        with serving(server), net.create_connection(server.server_address) as client:
            for byte in payload:
                client.sendall(bytes([byte]))
            echoed = recv_exactly(client, len(payload))
    assert all(0.2 <= t < 0.3 for t in times)
    assert len(set(times)) > 1
    assert echoed == payload


def test_latency_per_link_direction(net: SimNetwork) -> None:
    far = net.add_host("far")
    net.set_conditions("local", far, both_ways=False, latency=0.2)
    server = socketserver.ThreadingTCPServer(("0.0.0.0", 0), EchoHandler, network=far)
    port = server.server_address[1]
    with serving(server), net.create_connection(("far", port)) as client:
        # The handshake's SYN takes 0.2 s out, its answer nothing back.
        assert net.time() == pytest.approx(0.2)
        start = net.time()
        client.sendall(b"ping")
        assert recv_exactly(client, 4) == b"ping"
        assert net.time() - start == pytest.approx(0.2)
