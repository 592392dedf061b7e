"""Production hardening on the simulated network: the same fixes, in virtual time.

``server_close(timeout=)`` aborts daemon handler threads, ``handle_request()`` backs
off under EMFILE, ``socket_mode`` is accepted (and a no-op), bad settings fail at
construction. The pool's defences are in ``tests/pool``.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

import pytest
from helpers import serve_in_thread, stop_serving

import sockfake
from sockfake.sim import SimNetwork


class Upper(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


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
    thread = serve_in_thread(server)
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
    thread = serve_in_thread(server)
    with net.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect("/srv/mode.sock")
        client.sendall(b"hi\n")
        with client.makefile("rb") as reader:
            assert reader.readline() == b"HI\n"
    stop_serving(server, thread)


def test_bad_settings_fail_at_construction_on_the_simulated_network_too(
    net: SimNetwork,
) -> None:
    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 0

    with pytest.raises(sockfake.SockfakeValueError, match="max_workers"):
        Pool(("127.0.0.1", 0), Upper, network=net)
