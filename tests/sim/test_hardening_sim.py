"""Issue 13, "Production hardening", on the simulated network: the same fixes, in virtual time."""

from __future__ import annotations

import errno
import os
import socket
import threading
from typing import Any

import pytest

import sockfake
from sockfake.sim import SimNetwork


class Upper(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


def start(server: Any) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(0.5,))
    thread.start()
    return thread


def stop(server: Any, thread: threading.Thread, timeout: float | None = None) -> None:
    server.shutdown()
    if timeout is None:
        server.server_close()
    else:
        server.server_close(timeout=timeout)
    thread.join()


def slow_client(net: SimNetwork, address: Any) -> Any:
    """A connection that sends one byte of a line and nothing more."""
    client = net.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect(address)
    client.sendall(b"G")
    return client


def round_trip(net: SimNetwork, address: Any, timeout: float = 5.0) -> bytes:
    with net.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(address)
        client.sendall(b"ping\n")
        with client.makefile("rb") as reader:
            return bytes(reader.readline())


def test_pool_request_deadline_cuts_a_trickling_client_in_virtual_time(net: SimNetwork) -> None:
    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        request_deadline = 2.0

    server = Pool(("127.0.0.1", 0), Upper, network=net)
    thread = start(server)
    with net.socket(socket.AF_INET, socket.SOCK_STREAM) as slowloris:
        slowloris.connect(server.server_address)
        started = net.time()
        slowloris.settimeout(0.5)
        for _ in range(100):  # a byte every 0.5 s, under any idle timeout
            try:
                slowloris.sendall(b"x")
                if slowloris.recv(10) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        assert 2.0 <= net.time() - started < 3.0
    assert round_trip(net, server.server_address) == b"PING\n"
    stop(server, thread)


def test_pool_slow_requests_leave_the_pool_in_virtual_time(net: SimNetwork) -> None:
    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 2
        max_slow_requests = 10

    server = Pool(("127.0.0.1", 0), Upper, network=net)
    thread = start(server)
    slow = [slow_client(net, server.server_address) for _ in range(6)]
    net.sleep(0.5)
    started = net.time()
    assert round_trip(net, server.server_address) == b"PING\n"
    assert net.time() - started < 0.2
    for client in slow:
        client.close()
    stop(server, thread)


def test_pool_spills_a_second_slow_request_at_once_in_virtual_time(net: SimNetwork) -> None:
    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        max_slow_requests = 10
        request_deadline = 30.0

    server = Pool(("127.0.0.1", 0), Upper, network=net)
    thread = start(server)
    slow = []
    for _ in range(2):
        slow.append(slow_client(net, server.server_address))
        net.sleep(0.5)
    started = net.time()
    assert round_trip(net, server.server_address) == b"PING\n"
    assert net.time() - started < 0.2  # not at the first one's deadline, 30 s on
    for client in slow:
        client.close()
    stop(server, thread)


def test_pool_shutdown_with_a_full_queue_takes_no_virtual_time(net: SimNetwork) -> None:
    release = net.event()

    class Blocking(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            release.wait(60)

    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        max_queued_requests = 1
        queue_poll_interval = 30.0

    server = Pool(("127.0.0.1", 0), Blocking, network=net)
    thread = start(server)
    clients = []
    for _ in range(3):
        client = net.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.connect(server.server_address)
        clients.append(client)
    net.sleep(1.0)  # one running, one queued, the accept loop waiting for room
    started = net.time()
    assert server.shutdown(timeout=60)
    assert net.time() - started < 0.01
    release.set()
    server.server_close()
    thread.join()
    for client in clients:
        client.close()


def test_pool_server_close_timeout_is_bounded_in_virtual_time(net: SimNetwork) -> None:
    entered = net.event()
    never = net.event()

    class Stuck(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            never.wait(1000)  # not on its connection

    server = sockfake.ThreadPoolTCPServer(("127.0.0.1", 0), Stuck, network=net)
    thread = start(server)
    with net.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.connect(server.server_address)
        assert entered.wait(5)
        server.shutdown()
        started = net.time()
        server.server_close(timeout=1.0)
        assert net.time() - started <= 2.0 + 1e-6
    thread.join()
    never.set()


def test_server_close_timeout_aborts_daemon_threads_in_virtual_time(net: SimNetwork) -> None:
    finished = net.event()

    class Reader(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            try:
                self.request.recv(100)
            finally:
                finished.set()

    class Server(sockfake.ThreadingTCPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Reader, network=net)
    thread = start(server)
    with net.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.connect(server.server_address)
        net.sleep(0.1)
        server.shutdown()
        server.server_close(timeout=0.5)
        assert finished.is_set()
    thread.join()


def test_handle_request_backs_off_under_emfile_in_virtual_time(net: SimNetwork) -> None:
    calls = [0]

    class Server(sockfake.TCPServer):
        accept_backoff_max = 0.1
        timeout = 1.0

        def get_request(self) -> tuple[Any, Any]:
            calls[0] += 1
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    server = Server(("127.0.0.1", 0), Upper, network=net)
    with net.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.connect(server.server_address)
        started = net.time()
        while net.time() - started < 1.0:
            server.handle_request()
    server.server_close()
    assert calls[0] < 20, calls[0]


def test_socket_mode_is_a_no_op_on_the_simulated_network(net: SimNetwork) -> None:
    class Server(sockfake.UnixStreamServer):
        socket_mode = 0o600

    server = Server("/srv/mode.sock", Upper, network=net)
    thread = start(server)
    with net.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect("/srv/mode.sock")
        client.sendall(b"hi\n")
        with client.makefile("rb") as reader:
            assert reader.readline() == b"HI\n"
    stop(server, thread)


def test_bad_settings_fail_at_construction_on_the_simulated_network_too(
    net: SimNetwork,
) -> None:
    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 0

    with pytest.raises(sockfake.SockfakeValueError, match="max_workers"):
        Pool(("127.0.0.1", 0), Upper, network=net)
