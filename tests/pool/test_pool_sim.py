"""The pool's defences on the simulated network: the same as on real sockets, in virtual time.

A trickling client is cut at the request deadline, slow requests spill off the pool
at once, and shutdown and ``server_close(timeout=)`` take the virtual time they
promise, not the time a loaded machine happens to give them.
"""

from __future__ import annotations

import socket
from typing import Any

from helpers import serve_in_thread, stop_serving

import sockfake
from sockfake.sim import SimNetwork


class Upper(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


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
    thread = serve_in_thread(server)
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
    stop_serving(server, thread)



def test_pool_slow_requests_leave_the_pool_in_virtual_time(net: SimNetwork) -> None:
    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 2
        max_slow_requests = 10

    server = Pool(("127.0.0.1", 0), Upper, network=net)
    thread = serve_in_thread(server)
    slow = [slow_client(net, server.server_address) for _ in range(6)]
    net.sleep(0.5)
    started = net.time()
    assert round_trip(net, server.server_address) == b"PING\n"
    assert net.time() - started < 0.2
    for client in slow:
        client.close()
    stop_serving(server, thread)



def test_pool_spills_a_second_slow_request_at_once_in_virtual_time(net: SimNetwork) -> None:
    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        max_slow_requests = 10
        request_deadline = 30.0

    server = Pool(("127.0.0.1", 0), Upper, network=net)
    thread = serve_in_thread(server)
    slow = []
    for _ in range(2):
        slow.append(slow_client(net, server.server_address))
        net.sleep(0.5)
    started = net.time()
    assert round_trip(net, server.server_address) == b"PING\n"
    assert net.time() - started < 0.2  # not at the first one's deadline, 30 s on
    for client in slow:
        client.close()
    stop_serving(server, thread)



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
    thread = serve_in_thread(server)
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
    thread = serve_in_thread(server)
    with net.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.connect(server.server_address)
        assert entered.wait(5)
        server.shutdown()
        started = net.time()
        server.server_close(timeout=1.0)
        assert net.time() - started <= 2.0 + 1e-6
    thread.join()
    never.set()
