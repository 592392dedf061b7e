"""Issue 13 for ``python -m sockfake serve``: bounded lines, idle timeout, quiet stop, --mode."""

from __future__ import annotations

import os
import socket
import stat
import sys
import threading
import time

import pytest
from test_cli import Served, _echo_stream, _run_cli, serve  # noqa: F401 - serve is a fixture

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


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


def test_a_line_longer_than_max_line_closes_the_connection(serve):  # noqa: F811
    server = serve("--port", "0", "--max-line", "1024")
    with socket.create_connection(server.address, timeout=5) as conn:
        conn.sendall(b"x" * 4096)  # no newline: the server must not buffer it all
        assert _closed_by_server(conn, 5.0)
    with socket.create_connection(server.address, timeout=5) as conn:
        assert _echo_stream(conn, b"y" * 1000) == b"Y" * 1000 + b"\n"
    assert "Traceback" not in _stderr_after_stop(server)


def test_an_idle_connection_is_closed_after_timeout(serve):  # noqa: F811
    server = serve("--port", "0", "--timeout", "0.3")
    with socket.create_connection(server.address, timeout=5) as conn:
        assert _echo_stream(conn, b"hi") == b"HI\n"
        started = time.monotonic()
        assert _closed_by_server(conn, 5.0)
        assert time.monotonic() - started < 3.0
    assert "Traceback" not in _stderr_after_stop(server)


@pytest.mark.parametrize("mode", [[], ["--pool", "2"]])
def test_stop_is_quiet_while_a_client_does_not_read_its_replies(serve, mode):  # noqa: F811
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


def test_pool_serves_a_good_client_past_slow_ones(serve):  # noqa: F811
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


def test_mode_sets_the_unix_socket_permissions(serve, tmp_path):  # noqa: F811
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
