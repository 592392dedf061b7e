"""``python -m sockfake serve``, run as a real process and talked to with real clients.

Echo servers on every transport and concurrency mode, stopped by a signal; bad
arguments as one line and status 2; and the hardening options: a line longer than
``--max-line`` and an idle connection are closed, a stop stays quiet while a client
does not read, ``--pool`` serves a good client past slow ones, and ``--mode`` sets
the Unix socket's permissions.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(
    r"^sockfake: serving (?P<handler>\S+) on (?P<family>tcp|udp|unix|unix-dgram) "
    r"(?P<where>.+) \((?P<mode>[^)]+)\)$"
)
START_TIMEOUT = 10.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _env(extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO_ROOT)] + ([str(extra_path)] if extra_path else [])
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    # A server that hangs is killed with SIGABRT, which dumps every thread's stack.
    env["PYTHONFAULTHANDLER"] = "1"
    return env


def _run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockfake", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        timeout=30,
    )


class Served:
    """A running ``sockfake serve`` process and what its first line announced."""

    def __init__(self, proc: subprocess.Popen[str], match: re.Match[str]) -> None:
        self.proc = proc
        self.family = match["family"]
        self.mode = match["mode"]
        self.handler = match["handler"]
        where = match["where"]
        if self.family.startswith("unix"):
            self.address: object = where
        else:
            host, _, port = where.rpartition(":")
            self.address = (host.strip("[]"), int(port))

    def stop(self, signum: int = signal.SIGINT) -> float:
        """Send ``signum``; return seconds until the process exited (status checked)."""
        start = time.monotonic()
        self.proc.send_signal(signum)
        try:
            status = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            _, err = self.proc.communicate(timeout=5)
            pytest.fail(f"no exit 5 s after {signal.Signals(signum).name}; stderr:\n{err}")
        elapsed = time.monotonic() - start
        print(f"{signal.Signals(signum).name} to exit: {elapsed * 1000:.1f} ms ({self.mode})")
        assert status == 0, self.proc.stderr.read() if self.proc.stderr else status
        return elapsed


def _read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(START_TIMEOUT):
            proc.kill()
            pytest.fail("the server printed nothing")
    return proc.stdout.readline().rstrip("\n")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Served:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sockfake", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(tmp_path),
            cwd=tmp_path,
        )
        procs.append(proc)
        line = _read_line(proc)
        match = LISTENING.match(line)
        if match is None:
            proc.kill()
            _, err = proc.communicate(timeout=5)
            pytest.fail(f"unexpected first line {line!r}; stderr: {err}")
        return Served(proc, match)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)


def _echo_stream(conn: socket.socket, payload: bytes) -> bytes:
    conn.sendall(payload + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = conn.recv(4096)
        assert chunk, "connection closed before the reply"
        reply += chunk
    return reply


@pytest.mark.parametrize("mode", [[], ["--threaded"], ["--pool", "2"], ["--sync"]])
def test_tcp_echo_then_sigint_exits_zero_promptly(serve, mode):
    server = serve("echo", "--port", "0", *mode)
    host, port = server.address
    assert host == "127.0.0.1" and port > 0
    with socket.create_connection(server.address, timeout=5) as conn:
        assert _echo_stream(conn, b"hello") == b"HELLO\n"
        assert _echo_stream(conn, b"again") == b"AGAIN\n"
        # The client stays connected and idle: the server must not wait for it.
        assert server.stop() < 1.0


def test_tcp_stops_on_sigterm(serve):
    server = serve("--port", "0")
    with socket.create_connection(server.address, timeout=5) as conn:
        assert _echo_stream(conn, b"x") == b"X\n"
    assert server.stop(signal.SIGTERM) < 1.0


@pytest.mark.parametrize("mode", [[], ["--pool", "2"], ["--sync"]])
def test_udp_echo(serve, mode):
    server = serve("--udp", "--port", "0", *mode)
    assert server.family == "udp"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        client.sendto(b"datagram", server.address)
        data, source = client.recvfrom(1024)
    assert data == b"DATAGRAM"
    assert source == server.address
    assert server.stop() < 1.0


def test_unix_stream_echo_and_path_removed(serve, tmp_path):
    path = tmp_path / "echo.sock"
    server = serve("--unix", str(path))
    assert server.family == "unix" and server.address == str(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        conn.connect(str(path))
        assert _echo_stream(conn, b"unix") == b"UNIX\n"
        assert server.stop() < 1.0
    assert not path.exists()


def test_unix_datagram_echo(serve, tmp_path):
    path = tmp_path / "dgram.sock"
    server = serve("--unix-dgram", str(path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        client.bind(str(tmp_path / "client.sock"))
        client.sendto(b"unix datagram", str(path))
        assert client.recv(1024) == b"UNIX DATAGRAM"
    assert server.stop() < 1.0


def test_stale_unix_socket_file_is_taken_over(serve, tmp_path):
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never listening: a crashed server's leftover
    server = serve("--unix", str(path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        conn.connect(str(path))
        assert _echo_stream(conn, b"ok") == b"OK\n"
    server.stop()


HANDLER_MODULE = """
import sockfake

class Greeter(sockfake.StreamRequestHandler):
    def handle(self):
        name = self.rfile.readline().strip()
        self.wfile.write(b"hello, " + name + b"\\n")
"""


def test_module_class_handler(serve, tmp_path):
    (tmp_path / "greeting_handlers.py").write_text(HANDLER_MODULE)
    server = serve("greeting_handlers:Greeter", "--port", "0")
    assert server.handler == "greeting_handlers:Greeter"
    with socket.create_connection(server.address, timeout=5) as conn:
        assert _echo_stream(conn, b"world") == b"hello, world\n"
    server.stop()


def test_ipv6_loopback(serve):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    server = serve("--host", "::1", "--port", "0")
    with socket.create_connection(server.address, timeout=5) as conn:
        assert _echo_stream(conn, b"six") == b"SIX\n"
    server.stop()


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "abc"],
        ["--port", "70000"],
        ["--port", "-1"],
        ["sockfake_no_such_module:Handler", "--port", "0"],
        ["json:JSONDecoder", "--port", "0"],
        ["os:path", "--port", "0"],
        ["json:NoSuchName", "--port", "0"],
        ["not-a-spec", "--port", "0"],
        ["--udp", "--unix", "x.sock"],
        ["--unix", "x.sock", "--port", "0"],
        ["--pool", "0"],
        ["--sync", "--pool", "2"],
        ["--udp", "sockfake:StreamRequestHandler", "--port", "0"],
        ["sockfake:DatagramRequestHandler", "--port", "0"],
    ],
)
def test_bad_arguments_one_line_status_2(args, tmp_path):
    result = _run_cli(tmp_path, "serve", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sockfake serve: error: ")


def test_no_command_is_an_error(tmp_path):
    result = _run_cli(tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_console_entry_point_is_main():
    from sockfake import __main__, cli

    assert __main__.main is cli.main


# --- hardening options ----------------------------------------------------------------


def _closed_by_server(conn: socket.socket, within: float) -> bool:
    conn.settimeout(within)
    try:
        while True:
            if conn.recv(65536) == b"":
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _stderr_after_stop(server: Served) -> str:
    assert server.stop() < 2.0
    assert server.proc.stderr is not None
    return server.proc.stderr.read()


def test_a_line_longer_than_max_line_closes_the_connection(serve):
    server = serve("--port", "0", "--max-line", "1024")
    with socket.create_connection(server.address, timeout=5) as conn:
        conn.sendall(b"x" * 4096)  # no newline: the server must not buffer it all
        assert _closed_by_server(conn, 5.0)
    with socket.create_connection(server.address, timeout=5) as conn:
        assert _echo_stream(conn, b"y" * 1000) == b"Y" * 1000 + b"\n"
    assert "Traceback" not in _stderr_after_stop(server)


def test_an_idle_connection_is_closed_after_timeout(serve):
    server = serve("--port", "0", "--timeout", "0.3")
    with socket.create_connection(server.address, timeout=5) as conn:
        assert _echo_stream(conn, b"hi") == b"HI\n"
        started = time.monotonic()
        assert _closed_by_server(conn, 5.0)
        assert time.monotonic() - started < 3.0
    assert "Traceback" not in _stderr_after_stop(server)


@pytest.mark.parametrize("mode", [[], ["--pool", "2"]])
def test_stop_is_quiet_while_a_client_does_not_read_its_replies(serve, mode):
    server = serve("--port", "0", *mode)
    conn = socket.create_connection(server.address, timeout=5)
    stop_sending = threading.Event()

    def flood() -> None:  # lines whose replies are never read: the server's write blocks
        line = b"z" * 1023 + b"\n"
        for _ in range(16 * 1024):  # 16 MiB at most
            if stop_sending.is_set():
                return
            try:
                conn.sendall(line)
            except OSError:
                return

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    try:
        time.sleep(0.5)
        err = _stderr_after_stop(server)
    finally:
        stop_sending.set()
        conn.close()
        sender.join(5)
    assert "Traceback" not in err, err
    assert "BrokenPipe" not in err


def test_pool_serves_a_good_client_past_slow_ones(serve):
    server = serve("--port", "0", "--pool", "2")
    slow = [socket.create_connection(server.address, timeout=5) for _ in range(6)]
    try:
        for conn in slow:
            conn.sendall(b"G")  # a line that never ends
        time.sleep(0.3)
        with socket.create_connection(server.address, timeout=5) as conn:
            started = time.monotonic()
            assert _echo_stream(conn, b"good") == b"GOOD\n"
            assert time.monotonic() - started < 1.0
    finally:
        for conn in slow:
            conn.close()
    server.stop()


def test_mode_sets_the_unix_socket_permissions(serve, tmp_path):
    path = tmp_path / "m.sock"
    server = serve("--unix", str(path), "--mode", "600")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        conn.connect(str(path))
        assert _echo_stream(conn, b"m") == b"M\n"
    server.stop()


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "0", "--mode", "600"],
        ["--unix", "x.sock", "--mode", "999"],
        ["--unix", "x.sock", "--mode", "rw"],
        ["--port", "0", "--max-line", "0"],
        ["--port", "0", "--timeout", "-1"],
    ],
)
def test_bad_hardening_arguments_one_line_status_2(args, tmp_path):
    result = _run_cli(tmp_path, "serve", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sockfake serve: error: ")


# -- stop signals -----------------------------------------------------------------------
# ``sockfake serve`` exits 0 after its cleanup however many stop signals arrive.
#
# GNU ``timeout -s INT`` and impatient users send two signals close together; the
# second used to exit at once with status 130, leaving a Unix socket file behind. Each
# test starts a real ``python -m sockfake serve``, waits for its readiness line, holds a
# connection in flight (so the stop has something to drain), sends the signals back to
# back and checks the status and the cleanup.

SIGNAL_WAIT = 10.0

SIGNALS = {
    "two SIGINTs": (signal.SIGINT, signal.SIGINT),
    "five SIGINTs": (signal.SIGINT,) * 5,
    "SIGINT then SIGTERM": (signal.SIGINT, signal.SIGTERM),
}


def _stop_with(server: Served, signals: tuple[int, ...]) -> tuple[int, str]:
    for signum in signals:  # back to back: no wait between them
        server.proc.send_signal(signum)
    try:
        status = server.proc.wait(timeout=SIGNAL_WAIT)
    except Exception:
        server.proc.kill()
        raise
    err = server.proc.stderr.read() if server.proc.stderr else ""
    return status, err


@pytest.mark.parametrize("signals", list(SIGNALS.values()), ids=list(SIGNALS))
@pytest.mark.parametrize("mode", [[], ["--pool", "2"]], ids=["threaded", "pool"])
def test_stop_signals_back_to_back_exit_zero_and_remove_the_socket_file(
    serve, tmp_path: Path, signals: tuple[int, ...], mode: list[str]
) -> None:
    path = tmp_path / "s.sock"
    server = serve("--unix", str(path), "--drain", "0.2", *mode)
    assert path.exists()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(SIGNAL_WAIT)
        client.connect(str(path))
        client.sendall(b"in flight\n")
        assert client.recv(100) == b"IN FLIGHT\n"
        client.sendall(b"no newline yet")  # the handler waits in readline: in flight
        status, err = _stop_with(server, signals)
    assert status == 0, err
    assert not path.exists(), "the cleanup did not run: the socket file is left"
    assert "Traceback" not in err, err


def test_two_sigints_on_tcp_exit_zero(serve) -> None:
    server = serve("--port", "0")
    host, port = server.address
    with socket.create_connection((host, port), timeout=SIGNAL_WAIT) as client:
        client.sendall(b"ping\n")
        assert client.recv(100) == b"PING\n"
        status, err = _stop_with(server, (signal.SIGINT, signal.SIGINT))
    assert status == 0, err
    assert "Traceback" not in err, err
