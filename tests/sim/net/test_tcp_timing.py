"""TCP timing as Linux gives it: Nagle's algorithm, delayed ACKs, TCP_NODELAY, and the
retransmission of stream segments that a lossy link takes.

The write-write-read pattern (a client writes a header, then a body, then reads the
answer) is the classic case: from the second request on the server's connection is
interactive, so it delays its ACK of the header by 40 ms to send it with the answer,
while the client's Nagle holds the body until that ACK. On Linux's loopback each such
request takes ~40 ms (``benchmarks/bench_tcp_timing.py`` measures it there), and none
with ``TCP_NODELAY``. The simulation's figures are asserted here in virtual time.
"""

from __future__ import annotations

import socket

import pytest
from differential import recv_all

from sockfake.sim import LinkConditions, SimNetwork
from sockfake.sim.net.links import GilbertElliott, retransmission_timeout
from sockfake.sim.net.tcp import DELAYED_ACK


def _serve_requests(conn: socket.socket, size: int) -> None:
    """Read requests of ``size`` bytes, answer each with b"ok", until EOF."""
    while len(recv_all(conn, size)) == size:
        conn.sendall(b"ok")


def write_write_read(net: SimNetwork, *, client_nodelay: bool, server_nodelay: bool = False,
                     requests: int = 4, server_host: str = "local") -> list[float]:
    """Virtual seconds each request of a write-write-read client takes."""
    host = net.host(server_host)
    listener = host.socket()
    listener.bind(("0.0.0.0", 7000))
    listener.listen()
    if server_nodelay:
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accept inherits it

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            _serve_requests(conn, 20)  # type: ignore[arg-type]

    server = net.thread(serve)
    server.start()
    address = "127.0.0.1" if server_host == "local" else server_host
    client = net.create_connection((address, 7000))
    if client_nodelay:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    took = []
    for _ in range(requests):
        start = net.now
        client.send(b"h" * 10)  # the header...
        client.send(b"b" * 10)  # ...the body...
        assert client.recv(10) == b"ok"  # ...and the answer
        took.append(net.now - start)
    client.close()
    server.join()
    listener.close()
    return took


def test_write_write_read_waits_for_the_delayed_ack_from_the_second_request_on() -> None:
    with SimNetwork(seed=1) as net:
        took = write_write_read(net, client_nodelay=False)
        assert took[0] == 0.0  # a new connection's first segments are acknowledged at once
        assert took[1:] == [pytest.approx(DELAYED_ACK)] * 3
        nagle = [e.details for e in net.trace.events if e.kind == "nagle"]
    assert len(nagle) == 6 and "holds 10 bytes" in nagle[0] and "sends the 10" in nagle[1]


def test_tcp_nodelay_on_the_writer_sends_at_once() -> None:
    with SimNetwork(seed=1) as net:
        assert write_write_read(net, client_nodelay=True) == [0.0] * 4
        assert not [e for e in net.trace.events if e.kind == "nagle"]


def test_tcp_nodelay_on_the_reader_alone_does_not_help() -> None:
    # The writer's Nagle holds the body; the reader's option is about its own writes.
    with SimNetwork(seed=1) as net:
        took = write_write_read(net, client_nodelay=False, server_nodelay=True)
    assert took[1:] == [pytest.approx(DELAYED_ACK)] * 3


def test_across_a_link_with_latency_the_wait_is_the_delayed_ack_plus_the_round_trip() -> None:
    with SimNetwork(seed=1, latency=0.005) as net:
        net.add_host("db")
        slow = write_write_read(net, client_nodelay=False, server_host="db")
    with SimNetwork(seed=1, latency=0.005) as net:
        net.add_host("db")
        fast = write_write_read(net, client_nodelay=True, server_host="db")
    assert fast == [pytest.approx(0.010)] * 4  # one round trip
    # The body waits for the header's ACK: a round trip more on the first request (the
    # ACK is quick), and the 40 ms the ACK waits on the others.
    assert slow[0] == pytest.approx(0.020)
    assert slow[1:] == [pytest.approx(0.005 + DELAYED_ACK + 0.005 + 0.010)] * 3


def interactive_pair(net: SimNetwork, port: int) -> tuple[socket.socket, ...]:
    """A listener and a connection (client, server) that has answered both ways within
    the ACK timeout: interactive at both ends, so their ACKs wait for answers."""
    listener = net.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    client = net.create_connection(("127.0.0.1", port))
    server, _ = listener.accept()
    for _ in range(2):
        client.send(b"q")
        assert server.recv(10) == b"q"
        server.send(b"a")
        assert client.recv(10) == b"a"
    return listener, client, server  # type: ignore[return-value]


def test_setting_tcp_nodelay_sends_what_nagle_holds() -> None:
    with SimNetwork(seed=1) as net:
        listener, client, server = interactive_pair(net, 7001)
        client.send(b"1")
        client.send(b"2")  # held: "1" is not acknowledged (the server's ACK waits)
        assert server.recv(10) == b"1"
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        start = net.now
        assert server.recv(10) == b"2"
        assert net.now == start  # pushed by setsockopt, no 40 ms wait
        for sock in (client, server, listener):
            sock.close()


def test_a_close_sends_what_nagle_holds_before_its_fin() -> None:
    with SimNetwork(seed=1) as net:
        listener, client, server = interactive_pair(net, 7002)
        client.send(b"1")
        client.send(b"2")
        client.close()
        received = b""
        while chunk := server.recv(10):
            received += chunk
        assert received == b"12"
        server.close()
        listener.close()


def test_a_one_way_stream_is_acknowledged_when_the_reader_empties_its_buffer() -> None:
    # Not interactive: Linux acknowledges a small segment when the application has read
    # it all (tcp_cleanup_rbuf), so a reader that keeps up never makes the writer wait.
    with SimNetwork(seed=1) as net:
        listener = net.socket()
        listener.bind(("127.0.0.1", 7003))
        listener.listen()
        client = net.create_connection(("127.0.0.1", 7003))
        server, _ = listener.accept()
        for number in range(40):  # past the 16 quick ACKs of a new connection
            client.send(b"%d" % number)
            server.recv(10)
        assert net.now == 0.0
        client.send(b"x")
        client.send(b"y")  # held: the reader has not read "x" yet
        assert server.recv(10) == b"x"
        assert server.recv(10) == b"y"  # its read acknowledged "x": "y" came at once
        assert net.now == 0.0
        for sock in (client, server, listener):
            sock.close()


def test_unix_streams_have_no_nagle() -> None:
    with SimNetwork(seed=1) as net:
        listener = net.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind("/tmp/sockfake-nagle")
        listener.listen()
        left = net.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        left.connect("/tmp/sockfake-nagle")
        right, _ = listener.accept()
        for _ in range(3):  # make it interactive, as the TCP tests above
            left.send(b"q")
            right.recv(10)
            right.send(b"a")
            left.recv(10)
        for _ in range(3):
            left.send(b"a")
            left.send(b"b")
            assert right.recv(10) in (b"a", b"ab")
        assert net.now == 0.0
        for sock in (left, right, listener):
            sock.close()


# -- loss on streams: retransmission delays, never loses or reorders --------------------


def _stream_through(net: SimNetwork, payloads: list[bytes]) -> tuple[bytes, float]:
    listener = net.host("db").socket()
    listener.bind(("0.0.0.0", 7004))
    listener.listen()
    client = net.create_connection(("db", 7004))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server, _ = listener.accept()
    start = net.now
    for payload in payloads:
        client.sendall(payload)
    client.close()
    received = b""
    while chunk := server.recv(4096):
        received += chunk
    took = net.now - start
    server.close()
    listener.close()
    return received, took


def test_a_lossy_link_delays_a_stream_by_retransmissions_and_keeps_it_whole() -> None:
    payloads = [b"%04d" % n for n in range(200)]
    with SimNetwork(seed=3, latency=0.001) as net:
        net.add_host("db")
        clean, clean_took = _stream_through(net, payloads)
    with SimNetwork(seed=3, latency=0.001) as net:
        net.add_host("db")
        net.set_conditions("local", "db", loss=0.3)
        lossy, lossy_took = _stream_through(net, payloads)
        losses = [e for e in net.trace.events if e.kind == "loss"]
    assert clean == lossy == b"".join(payloads)  # in order, nothing missing or doubled
    assert clean_took == pytest.approx(0.001)
    assert losses  # the link did take segments...
    assert lossy_took >= retransmission_timeout(LinkConditions(latency=0.001), 0)  # ...late


def test_a_loss_burst_holds_a_stream_until_a_retransmission_gets_through() -> None:
    with SimNetwork(seed=3) as net:
        net.add_host("db")
        net.set_conditions("local", "db", burst_loss=GilbertElliott(p=1.0, r=0.0))
        listener = net.host("db").socket()
        listener.bind(("0.0.0.0", 7005))
        listener.listen()
        net.set_conditions("local", "db", burst_loss=None)  # let the handshake through...
        client = net.create_connection(("db", 7005))
        server, _ = listener.accept()
        net.set_conditions("local", "db", burst_loss=GilbertElliott(p=1.0, r=0.0))  # ...then
        client.send(b"first")
        client.send(b"second")
        server.settimeout(0.5)
        with pytest.raises(TimeoutError):
            server.recv(100)  # the burst takes the first retransmission, 0.2 s after
        net.set_conditions("local", "db", burst_loss=None)  # the burst ends
        server.settimeout(None)
        received = b""
        while len(received) < len(b"firstsecond"):
            received += server.recv(100)
        assert received == b"firstsecond"
        # Tries 0.2 s and 0.6 s after the send (the timeout doubles): the second is
        # the first after the burst; "second" waited behind "first".
        assert net.now == pytest.approx(0.6)
        for sock in (client, server, listener):
            sock.close()


def test_retransmission_timeout_follows_linux() -> None:
    assert retransmission_timeout(LinkConditions(), 0) == pytest.approx(0.2)  # TCP_RTO_MIN
    assert retransmission_timeout(LinkConditions(latency=0.05), 1) == pytest.approx(0.6)
    assert retransmission_timeout(LinkConditions(), 30) == 120.0  # TCP_RTO_MAX


def test_a_loop_on_a_socket_that_stays_writable_lets_the_delayed_ack_fire() -> None:
    # asyncore's TLS shutdown (CPython's test_ftplib) polls a writable socket and does
    # nothing with it until its peer answers; on Linux it spins until the delayed ACK
    # releases what Nagle holds. The simulation moves the clock for it, as for a loop
    # that finds nothing.
    with SimNetwork(seed=1) as net:
        listener, client, server = interactive_pair(net, 7006)
        answered: list[bytes] = []

        def spin() -> None:
            selector = net.selector()
            selector.register(server, 2)  # EVENT_WRITE: always ready
            for _ in range(10_000):
                if answered:
                    break
                selector.select(1.0)
            else:
                answered.append(b"the loop ran out: the clock never moved for it")
            selector.close()

        server.send(b"1")
        server.send(b"2")  # held by Nagle until the client's delayed ACK of "1"
        spinner = net.thread(spin)
        spinner.start()
        received = b""
        while len(received) < 2:
            received += client.recv(10)
        answered.append(received)
        spinner.join()
        assert answered == [b"12"] and net.now == pytest.approx(DELAYED_ACK)
        for sock in (client, server, listener):
            sock.close()
