"""The simulated socket's surface: modes, options, addresses, selectors, misuse."""

from __future__ import annotations

import errno
import selectors
import socket

import pytest

from sockfake.sim import SimNetwork, SimSocket


def test_family_type_proto_and_context_manager(net: SimNetwork) -> None:
    with net.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        assert isinstance(sock, SimSocket)
        assert (sock.family, sock.type, sock.proto) == (socket.AF_INET6, socket.SOCK_DGRAM, 0)
        assert sock.fileno() >= 0
    assert sock.fileno() == -1
    with pytest.raises(OSError) as info:
        sock.recv(1)
    assert info.value.errno == errno.EBADF


def test_unsupported_family_is_eafnosupport(net: SimNetwork) -> None:
    with pytest.raises(OSError) as info:
        net.socket(12345)
    assert info.value.errno == errno.EAFNOSUPPORT


def test_timeout_modes(net: SimNetwork) -> None:
    with net.socket() as sock:
        assert sock.gettimeout() is None and sock.getblocking()
        sock.settimeout(2)
        assert sock.gettimeout() == 2.0
        sock.setblocking(False)
        assert sock.gettimeout() == 0.0 and not sock.getblocking()
        with pytest.raises(ValueError):
            sock.settimeout(-1)


def test_socket_options(net: SimNetwork) -> None:
    with net.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8) == b"\x01" + bytes(7)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


def test_connect_ex_and_nonblocking_connect(net: SimNetwork) -> None:
    with net.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with net.socket() as client:
            client.setblocking(False)
            assert client.connect_ex(listener.getsockname()) == errno.EINPROGRESS
            with net.selector() as selector:
                selector.register(client, selectors.EVENT_WRITE)
                assert selector.select(1)[0][1] == selectors.EVENT_WRITE
            assert client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            # As Linux: the finished non-blocking connect reports 0 once, then EISCONN.
            assert client.connect_ex(listener.getsockname()) == 0
            assert client.connect_ex(listener.getsockname()) == errno.EISCONN
        with net.socket() as refused:
            assert refused.connect_ex(("127.0.0.1", 1)) == errno.ECONNREFUSED


def test_accept_timeout_and_nonblocking_accept(net: SimNetwork) -> None:
    with net.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(1.5)
        with pytest.raises(TimeoutError):
            listener.accept()
        assert net.time() == pytest.approx(1.5)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_recv_into_recvfrom_into_and_peek(net: SimNetwork) -> None:
    with net.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = net.create_connection(listener.getsockname())
        conn, address = listener.accept()
        assert address == client.getsockname()
        client.sendall(b"0123456789")
        assert conn.recv(4, socket.MSG_PEEK) == b"0123"
        buffer = bytearray(4)
        assert conn.recv_into(buffer) == 4 and buffer == b"0123"
        assert conn.recvfrom_into(buffer, 2) == (2, None)
        assert buffer[:2] == b"45"
        assert conn.recv(100) == b"6789"
        client.close()
        conn.close()


def test_selector_watches_sockets_and_times_out_virtually(net: SimNetwork) -> None:
    a = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    with net.selector() as selector:
        selector.register(a, selectors.EVENT_READ, "a")
        selector.register(b, selectors.EVENT_READ, "b")
        assert selector.select(4) == []
        assert net.time() == pytest.approx(4)
        a.sendto(b"x", b.getsockname())
        ready = selector.select(4)
        assert [key.data for key, _ in ready] == ["b"]
        assert selector.get_map()[b].data == "b"
        with pytest.raises(ValueError, match="not a simulated socket"):
            real = socket.socket()
            try:
                selector.register(real, selectors.EVENT_READ)
            finally:
                real.close()
    a.close()
    b.close()


def test_datagram_connect_filters_other_senders(net: SimNetwork) -> None:
    receiver = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    friend = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger = net.socket(socket.AF_INET, socket.SOCK_DGRAM)
    friend.connect(receiver.getsockname())
    receiver.connect(friend.getsockname())
    stranger.sendto(b"stranger", receiver.getsockname())
    friend.send(b"friend")
    assert receiver.recv(100) == b"friend"
    assert receiver.getpeername() == friend.getsockname()
    for sock in (receiver, friend, stranger):
        sock.close()


def test_stream_send_on_unconnected_socket_is_epipe_and_shutdown_enotconn(
    net: SimNetwork,
) -> None:
    with net.socket() as sock:
        with pytest.raises(BrokenPipeError) as pipe:
            sock.send(b"x")
        assert pipe.value.errno == errno.EPIPE
        with pytest.raises(OSError) as info:
            sock.recv(1)
        assert info.value.errno == errno.ENOTCONN
        with pytest.raises(OSError) as info:
            sock.shutdown(socket.SHUT_WR)
        assert info.value.errno == errno.ENOTCONN


def test_bind_twice_and_bind_foreign_address(net: SimNetwork) -> None:
    with net.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        with pytest.raises(OSError) as info:
            sock.bind(("127.0.0.1", 0))
        assert info.value.errno == errno.EINVAL
    with net.socket() as sock, pytest.raises(OSError) as info:
        sock.bind(("192.0.2.1", 0))
    assert info.value.errno == errno.EADDRNOTAVAIL
    with net.socket() as sock, pytest.raises(TypeError):
        sock.bind("not a tuple")


def test_open_sockets_tracks_leaks(net: SimNetwork) -> None:
    sock = net.socket()
    assert sock in net.open_sockets()
    sock.close()
    assert sock not in net.open_sockets()


def test_makefile_keeps_the_socket_open_until_the_file_closes(net: SimNetwork) -> None:
    with net.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = net.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        writer = conn.makefile("wb")
        conn.close()
        writer.write(b"still open\n")
        writer.flush()
        writer.close()
        with client.makefile("rb") as reader:
            assert reader.readline() == b"still open\n"
            assert reader.readline() == b""
        client.close()
