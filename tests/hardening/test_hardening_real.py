"""Production hardening on real sockets: settings, descriptor limits, daemon threads, modes.

Settings are checked when a server is constructed; the accept loops back off (and
still stop promptly) when the process is out of descriptors; ``server_close(timeout=)``
aborts daemon handler threads too; ``socket_mode`` sets a Unix socket's permissions
before it listens. The pool's own defences are in ``tests/pool``. Loopback and short
/tmp Unix paths only; every wait is bounded.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    WAIT,
    UpperLineHandler as Upper,
    connect,
    line_round_trip as round_trip,
    needs_unix,
    serving,
)

import sockfake

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]


# --- settings are checked at construction ---------------------------------------------

BAD_SETTINGS = [
    (sockfake.ThreadPoolTCPServer, "max_workers", 0, ValueError),
    (sockfake.ThreadPoolTCPServer, "max_workers", -1, ValueError),
    (sockfake.ThreadPoolTCPServer, "max_workers", 2.5, TypeError),
    (sockfake.ThreadPoolTCPServer, "max_workers", "4", TypeError),
    (sockfake.ThreadPoolTCPServer, "max_workers", None, TypeError),
    (sockfake.ThreadPoolTCPServer, "max_workers", True, TypeError),
    (sockfake.ThreadPoolTCPServer, "max_queued_requests", 0, ValueError),
    (sockfake.ThreadPoolTCPServer, "max_queued_requests", "8", TypeError),
    (sockfake.ThreadPoolTCPServer, "request_deadline", 0, ValueError),
    (sockfake.ThreadPoolTCPServer, "request_deadline", "1", TypeError),
    (sockfake.ThreadPoolTCPServer, "max_slow_requests", -1, ValueError),
    (sockfake.ThreadPoolTCPServer, "slow_request_after", float("inf"), ValueError),
    (sockfake.ThreadPoolTCPServer, "queue_poll_interval", 0, ValueError),
    (sockfake.TCPServer, "request_timeout", -1, ValueError),
    (sockfake.TCPServer, "request_timeout", "5", TypeError),
    (sockfake.TCPServer, "request_timeout", float("nan"), ValueError),
    (sockfake.ThreadingTCPServer, "request_timeout", 0, ValueError),
    (sockfake.TCPServer, "accept_backoff_max", 0, ValueError),
    (sockfake.TCPServer, "accept_backoff_max", None, TypeError),
    (sockfake.UDPServer, "accept_backoff_max", "1", TypeError),
    (sockfake.TCPServer, "timeout", -1, ValueError),
    (sockfake.TCPServer, "timeout", "1", TypeError),
    (sockfake.TCPServer, "request_queue_size", -1, ValueError),
    (sockfake.TCPServer, "request_queue_size", "5", TypeError),
    (sockfake.UDPServer, "max_packet_size", 0, ValueError),
    (sockfake.ForkingTCPServer, "max_children", 0, ValueError),
    (sockfake.ForkingTCPServer, "child_poll_interval", None, TypeError),
    (sockfake.TCPServer, "socket_mode", "600", TypeError),
    (sockfake.TCPServer, "socket_mode", 0o10000, ValueError),
]


@pytest.mark.parametrize(
    ("cls", "name", "value", "kind"),
    BAD_SETTINGS,
    ids=[f"{c.__name__}-{n}={v!r}" for c, n, v, _ in BAD_SETTINGS],
)
def test_a_bad_setting_fails_at_construction_naming_it(
    cls: type, name: str, value: object, kind: type[Exception]
) -> None:
    server_cls = type("Server", (cls,), {name: value})
    expected = sockfake.SockfakeValueError if kind is ValueError else sockfake.SockfakeTypeError
    with pytest.raises(expected, match=name) as caught:
        server_cls((HOST, 0), Upper)
    assert isinstance(caught.value, kind)


def test_a_bad_instance_setting_fails_at_construction_too() -> None:
    class Server(sockfake.ThreadPoolTCPServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.max_workers = "4"  # type: ignore[assignment]
            super().__init__(*args, **kwargs)

    with pytest.raises(sockfake.SockfakeTypeError, match="max_workers"):
        Server((HOST, 0), Upper)


def test_good_settings_are_accepted() -> None:
    attrs = {
        "max_workers": 2,
        "max_queued_requests": 1,
        "request_timeout": 1,
        "request_deadline": 0.5,
        "accept_backoff_max": 0.1,
        "max_slow_requests": 3,
    }
    server_cls = type("Server", (sockfake.ThreadPoolTCPServer,), attrs)
    server = server_cls((HOST, 0), Upper)
    with serving(server):
        assert round_trip(server.server_address) == b"PING\n"


# --- serve_forever at the descriptor limit --------------------------------------------

EMFILE_SCRIPT = textwrap.dedent(
    """
    import os, resource, socket, sys, threading, time
    import sockfake

    class Upper(sockfake.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())

    server = sockfake.TCPServer(("127.0.0.1", 0), Upper)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    hogs = []
    try:
        while len(hogs) < 200:
            hogs.append(os.dup(0))
    except OSError:
        pass
    loop = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    loop.start()
    time.sleep(0.3)
    print("alive" if loop.is_alive() else "dead", flush=True)
    for fd in hogs:
        os.close(fd)
    print(server.server_address[1], flush=True)
    sys.stdin.readline()  # the parent has been served
    started = time.monotonic()
    server.shutdown()
    print("shutdown %.3f" % (time.monotonic() - started), flush=True)
    server.server_close()
    """
)


def test_serve_forever_at_the_descriptor_limit_polls_and_serves_once_they_free_up() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", EMFILE_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "alive"
        port = int(proc.stdout.readline())
        assert round_trip((HOST, port)) == b"PING\n"
        proc.stdin.write("done\n")
        proc.stdin.flush()
        line = proc.stdout.readline().split()
        assert line[0] == "shutdown" and float(line[1]) < 1.0  # polled: within 0.05 s
        assert proc.wait(WAIT) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=WAIT)


# --- daemon threads are drained and aborted by server_close(timeout=) -----------------


def test_server_close_timeout_aborts_daemon_handler_threads() -> None:
    finished = threading.Event()
    entered = threading.Event()

    class Reader(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            try:
                self.request.recv(100)  # blocks until aborted
            finally:
                finished.set()

    class Server(sockfake.ThreadingTCPServer):
        daemon_threads = True  # as http.server.ThreadingHTTPServer

    server = Server((HOST, 0), Reader)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with connect(server.server_address):
        assert entered.wait(WAIT)
        assert len(server._threads) == 0  # daemon threads are not counted, as the stdlib
        server.shutdown()
        started = time.monotonic()
        server.server_close(timeout=0.2)
        assert time.monotonic() - started < 1.0
        # Aborted: the client is still connected, so only the abort ends its recv. (Waited
        # for, not sampled: under load the woken thread may run after the close returns.)
        assert finished.wait(WAIT)
    thread.join(WAIT)


def test_server_close_without_timeout_still_does_not_wait_for_daemon_threads() -> None:
    release = threading.Event()
    entered = threading.Event()

    class Waiter(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            release.wait(WAIT)

    class Server(sockfake.ThreadingTCPServer):
        daemon_threads = True

    server = Server((HOST, 0), Waiter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with connect(server.server_address):
            assert entered.wait(WAIT)
            server.shutdown()
            started = time.monotonic()
            server.server_close()
            assert time.monotonic() - started < 0.5
    finally:
        release.set()
        thread.join(WAIT)


# --- handle_request() loops back off under EMFILE -------------------------------------


class OutOfDescriptors:
    """get_request fails with EMFILE while the listening socket stays readable."""

    calls = 0

    def get_request(self) -> tuple[Any, Any]:
        type(self).calls += 1
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


def test_handle_request_loop_does_not_spin_under_emfile() -> None:
    class Server(OutOfDescriptors, sockfake.TCPServer):
        accept_backoff_max = 0.1
        timeout = 0.5

    with Server((HOST, 0), Upper) as server, connect(server.server_address):
        started = time.monotonic()
        while time.monotonic() - started < 0.5:
            server.handle_request()
        # 10, 20, 40, 80, 100, 100 ... ms pauses: a handful of calls, not thousands.
        assert Server.calls < 15, Server.calls


def test_handle_request_backoff_stays_within_its_timeout() -> None:
    class Server(OutOfDescriptors, sockfake.TCPServer):
        accept_backoff_max = 5.0
        timeout = 0.05

    with Server((HOST, 0), Upper) as server, connect(server.server_address):
        for _ in range(8):  # back-off doubles to 1.28 s, but each call keeps its timeout
            started = time.monotonic()
            server.handle_request()
            assert time.monotonic() - started < 0.5


# --- socket_mode ----------------------------------------------------------------------


@needs_unix
@pytest.mark.parametrize(
    "base", [sockfake.UnixStreamServer, sockfake.UnixDatagramServer], ids=lambda c: c.__name__
)
def test_socket_mode_is_applied_before_listen_whatever_the_umask(
    unix_dir: str, base: type
) -> None:
    path = os.path.join(unix_dir, "s")
    seen: list[int] = []

    class Server(base):  # type: ignore[misc]
        socket_mode = 0o600

        def server_activate(self) -> None:
            seen.append(stat.S_IMODE(os.stat(path).st_mode))
            super().server_activate()

    previous = os.umask(0)
    try:
        with Server(path, sockfake.BaseRequestHandler):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        os.umask(previous)
    assert seen == [0o600]


@needs_unix
def test_without_socket_mode_the_umask_applies_as_in_the_stdlib(unix_dir: str) -> None:
    path = os.path.join(unix_dir, "s")
    previous = os.umask(0o077)
    try:
        with sockfake.UnixStreamServer(path, sockfake.BaseRequestHandler):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    finally:
        os.umask(previous)


def test_socket_mode_is_ignored_by_ip_servers() -> None:
    server = type("Server", (sockfake.TCPServer,), {"socket_mode": 0o600})((HOST, 0), Upper)
    server.server_close()

