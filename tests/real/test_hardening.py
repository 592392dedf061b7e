"""Issue 13, "Production hardening": each finding of the attack on the real servers.

Loopback and short /tmp Unix paths only; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import WAIT, connect, in_thread, needs_unix, serving, wait_until

import sockfake
from sockfake import real

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]


class Upper(sockfake.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


def round_trip(address: Any, payload: bytes = b"ping\n", timeout: float = WAIT) -> bytes:
    with socket.create_connection(address, timeout=timeout) as client:
        client.sendall(payload)
        return client.makefile("rb").readline()


def slow_clients(address: Any, count: int) -> list[socket.socket]:
    """``count`` connections that send one byte of a line and nothing more."""
    clients = []
    for _ in range(count):
        client = connect(address)
        client.sendall(b"G")
        clients.append(client)
    return clients


@contextlib.contextmanager
def closing_all(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def in_flight(server: Any) -> int:
    """Requests the pool is handling right now (0 before its first request)."""
    state = vars(server).get("_pool_state")
    return 0 if state is None else len(state.inflight)


def spilled(server: Any) -> int:
    """Requests running off the pool right now."""
    state = vars(server).get("_pool_state")
    return 0 if state is None else int(state.inflight.spilled)


def cut_within(sock: socket.socket, seconds: float) -> bool:
    """Does the server end this connection (EOF or reset) within ``seconds``?"""
    sock.settimeout(seconds)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# --- 1. slow clients cannot starve the pool ------------------------------------------


def test_pool_without_defence_is_starved_by_as_many_slow_clients_as_workers() -> None:
    """The finding itself: two slow connections hold both workers of a pool of two
    (with the defence turned off: it is on by default)."""

    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 2
        max_slow_requests = 0

    server = Pool((HOST, 0), Upper)
    with serving(server), closing_all(slow_clients(server.server_address, 2)):
        wait_until(lambda: in_flight(server) == 2, "both workers hold a slow client")
        with pytest.raises(TimeoutError):
            round_trip(server.server_address, timeout=0.5)


def test_pool_request_deadline_cuts_a_trickling_connection_and_not_as_an_error() -> None:
    errors: list[Any] = []

    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        request_deadline = 0.3

        def handle_error(self, request: Any, client_address: Any) -> None:
            errors.append(sys.exc_info()[1])

    class Lines(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(line.upper())

    server = Pool((HOST, 0), Lines)
    with serving(server), connect(server.server_address) as slowloris:
        started = time.monotonic()
        # A byte every 50 ms: no idle timeout would ever fire; the total deadline does.
        cut = False
        while time.monotonic() - started < WAIT:
            try:
                slowloris.sendall(b"x")
            except OSError:
                cut = True
                break
            slowloris.settimeout(0.05)
            try:
                if slowloris.recv(100) == b"":
                    cut = True
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                cut = True
                break
        took = time.monotonic() - started
        assert cut and took < 2.0, took
        assert round_trip(server.server_address) == b"PING\n"
    assert errors == []


def test_pool_request_deadline_cuts_a_stalled_reader_of_a_large_response() -> None:
    finished = threading.Event()

    class Big(sockfake.StreamRequestHandler):
        def handle(self) -> None:
            try:
                self.rfile.readline()
                self.wfile.write(b"x" * (16 * 1024 * 1024))
            finally:
                finished.set()

    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        request_deadline = 0.3

    server = Pool((HOST, 0), Big)
    with serving(server), connect(server.server_address) as reader:
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.sendall(b"BIG\n")  # and never read
        assert finished.wait(2.0)


def test_pool_slow_requests_leave_the_pool_so_a_good_client_is_served() -> None:
    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 2
        max_slow_requests = 50

    server = Pool((HOST, 0), Upper)
    with serving(server), closing_all(slow_clients(server.server_address, 20)):
        wait_until(lambda: in_flight(server) >= 2, "the attack holds both workers")
        assert round_trip(server.server_address, timeout=2.0) == b"PING\n"
        wait_until(lambda: spilled(server) == 20, "every slow one is off the pool")
        state = vars(server)["_pool_state"]
        # The pool's watchdog counts a request as spilled before it takes its thread out
        # of the pool and starts the replacement: wait for that, do not sample between.
        wait_until(lambda: len(state.workers) == 2, "the pool is back to max_workers")
        assert round_trip(server.server_address, timeout=2.0) == b"PING\n"


def test_pool_spills_a_new_slow_request_while_an_earlier_one_waits_for_its_deadline() -> None:
    """The watchdog, timing the first request's far deadline, still sees the next one."""

    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        max_slow_requests = 10
        request_deadline = 30.0

    server = Pool((HOST, 0), Upper)
    with serving(server), closing_all(slow_clients(server.server_address, 1)):
        # The first is off the pool; only its deadline is left to time.
        wait_until(lambda: spilled(server) == 1, "the first slow request spilled")
        with closing_all(slow_clients(server.server_address, 1)):
            wait_until(lambda: spilled(server) == 2, "the second one spilled too")
            assert round_trip(server.server_address, timeout=2.0) == b"PING\n"


def test_pool_slow_requests_beyond_the_limit_cut_the_longest_running() -> None:
    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        max_slow_requests = 1

    server = Pool((HOST, 0), Upper)
    with serving(server), connect(server.server_address) as first:
        first.sendall(b"G")
        wait_until(lambda: spilled(server) == 1, "the first request is off the pool")
        with connect(server.server_address) as second:
            second.sendall(b"G")
            assert cut_within(first, 2.0)  # second needed the place: first is cut
            assert not cut_within(second, 0.2)
        assert round_trip(server.server_address) == b"PING\n"


# --- 2. pool server_close(timeout=) is bounded ---------------------------------------


def test_pool_server_close_timeout_is_bounded_when_a_handler_blocks_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    entered = threading.Event()

    class Stuck(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            release.wait(20)  # not on its connection: an abort does not reach it

    class Pool(sockfake.ThreadPoolTCPServer):
        error_logger = logging.getLogger("test_hardening.pool")

    server = Pool((HOST, 0), Stuck)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = socket.create_connection(server.server_address)
    try:
        assert entered.wait(WAIT)
        server.shutdown()
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="test_hardening.pool"):
            server.server_close(timeout=0.3)
        took = time.monotonic() - started
        assert took < 1.5, took  # about 2 x timeout
        assert "still running after abort" in caplog.text
    finally:
        release.set()
        client.close()
        thread.join(WAIT)


# --- 3. settings are checked at construction -----------------------------------------

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


# --- 4. the stale-socket probe neither blocks nor disturbs a live server -------------


def _stale_cls(base: type) -> type:
    return type("Server", (base,), {"remove_stale_socket": True})


@needs_unix
def test_stale_probe_does_not_hang_on_a_live_server_with_a_full_backlog(unix_dir: str) -> None:
    path = os.path.join(unix_dir, "s")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen(0)
    fillers = []
    try:
        for _ in range(4):  # fill the backlog (0 means one pending connection)
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            try:
                filler.connect(path)
            except BlockingIOError:
                filler.close()
                break
            fillers.append(filler)
        _, outcome = in_thread(lambda: _stale_cls(sockfake.UnixStreamServer)(path, Upper))
        assert outcome["done"].wait(2.0), "the constructor hung on the full backlog"
        assert isinstance(outcome.get("error"), OSError)
        assert outcome["error"].errno == errno.EADDRINUSE
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        for filler in fillers:
            filler.close()
        live.close()


@needs_unix
def test_stale_probe_hands_a_live_server_no_connection(unix_dir: str) -> None:
    path = os.path.join(unix_dir, "s")
    with sockfake.UnixStreamServer(path, Upper) as live:
        with pytest.raises(OSError) as caught:
            _stale_cls(sockfake.UnixStreamServer)(path, Upper)
        assert caught.value.errno == errno.EADDRINUSE
        live.socket.setblocking(False)
        with pytest.raises(BlockingIOError):
            live.socket.accept()  # nothing was queued by the probe


@needs_unix
def test_stale_probe_keeps_a_socket_bound_but_not_listening_yet(unix_dir: str) -> None:
    path = os.path.join(unix_dir, "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as early:
        early.bind(path)  # a server between bind() and listen()
        with pytest.raises(OSError) as caught:
            _stale_cls(sockfake.UnixStreamServer)(path, Upper)
        assert caught.value.errno == errno.EADDRINUSE
        assert os.path.exists(path)


@needs_unix
@pytest.mark.parametrize("proc", ["with /proc/net/unix", "without"])
def test_stale_probe_still_removes_a_dead_socket_file(
    unix_dir: str, proc: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if proc == "without":
        monkeypatch.setattr(real, "_PROC_NET_UNIX", os.path.join(unix_dir, "no-such-table"))
    path = os.path.join(unix_dir, "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(path)
    server = _stale_cls(sockfake.UnixStreamServer)(path, Upper)
    with serving(server):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(WAIT)
            client.connect(path)
            client.sendall(b"hi\n")
            assert client.makefile("rb").readline() == b"HI\n"


@needs_unix
def test_stale_probe_without_proc_treats_a_full_backlog_as_alive(
    unix_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(real, "_PROC_NET_UNIX", os.path.join(unix_dir, "no-such-table"))
    path = os.path.join(unix_dir, "s")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            try:
                filler.connect(path)
            except BlockingIOError:
                filler.close()
                break
            fillers.append(filler)
        started = time.monotonic()
        real.REAL_NETWORK.remove_stale_unix_socket(path, socket.SOCK_STREAM)
        assert time.monotonic() - started < 1.0
        assert os.path.exists(path)
    finally:
        for filler in fillers:
            filler.close()
        live.close()


def test_bound_unix_paths_reads_the_kernel_table(tmp_path: Path) -> None:
    table = tmp_path / "unix"
    table.write_text(
        "Num       RefCount Protocol Flags    Type St Inode Path\n"
        "0000000000000000: 00000002 00000000 00010000 0001 01 1234 /run/a.sock\n"
        "0000000000000000: 00000002 00000000 00000000 0002 01 1235 @abstract\n"
        "0000000000000000: 00000003 00000000 00000000 0001 03 1236\n"
        "0000000000000000: 00000002 00000000 00000000 0001 01 1237 rel/b.sock\n"
    )
    assert real._bound_unix_paths(str(table)) == {"/run/a.sock", "rel/b.sock"}
    assert real._named_in("/run/a.sock", {"/run/a.sock"})
    assert real._named_in("/elsewhere/b.sock", {"rel/b.sock"})  # in doubt: alive
    assert not real._named_in("/run/c.sock", {"/run/a.sock", "rel/b.sock"})


# --- 5. serve_forever at the descriptor limit ----------------------------------------

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


# --- 6. shutdown() is instant with the pool's queue full -----------------------------


def test_pool_shutdown_is_instant_while_the_accept_loop_waits_for_queue_room() -> None:
    release = threading.Event()

    class Blocking(sockfake.BaseRequestHandler):
        def handle(self) -> None:
            release.wait(WAIT)

    class Pool(sockfake.ThreadPoolTCPServer):
        max_workers = 1
        max_queued_requests = 1
        queue_poll_interval = 5.0  # were the wait polled, shutdown() would take 5 s

    server = Pool((HOST, 0), Blocking)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    clients = [connect(server.server_address) for _ in range(3)]
    try:
        deadline = time.monotonic() + WAIT
        state = None
        while time.monotonic() < deadline:  # running, queued, and one in the accept loop
            state = vars(server).get("_pool_state")
            if state is not None and state.work.full() and not state.room.is_set():
                break
            time.sleep(0.01)
        time.sleep(0.05)
        started = time.monotonic()
        assert server.shutdown(timeout=WAIT)
        took = time.monotonic() - started
        assert took < 0.05, took
    finally:
        release.set()
        server.server_close()
        for client in clients:
            client.close()
        thread.join(WAIT)


# --- 7. daemon threads are drained and aborted by server_close(timeout=) -------------


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
        assert finished.is_set()
        assert time.monotonic() - started < 1.0
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


# --- 8. handle_request() loops back off under EMFILE ---------------------------------


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


# --- 10. socket_mode -----------------------------------------------------------------


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

