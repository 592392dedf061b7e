"""``sockfake serve`` exits 0 after its cleanup however many stop signals arrive.

GNU ``timeout -s INT`` and impatient users send two signals close together; the
second used to exit at once with status 130, leaving a Unix socket file behind. Each
test starts a real ``python -m sockfake serve``, waits for its readiness line, holds a
connection in flight (so the stop has something to drain), sends the signals back to
back and checks the status and the cleanup.
"""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

import pytest
from test_cli import Served, serve  # noqa: F401 - serve is a fixture

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

WAIT = 10.0

SIGNALS = {
    "two SIGINTs": (signal.SIGINT, signal.SIGINT),
    "five SIGINTs": (signal.SIGINT,) * 5,
    "SIGINT then SIGTERM": (signal.SIGINT, signal.SIGTERM),
}


def _stop_with(server: Served, signals: tuple[int, ...]) -> tuple[int, str]:
    for signum in signals:  # back to back: no wait between them
        server.proc.send_signal(signum)
    try:
        status = server.proc.wait(timeout=WAIT)
    except Exception:
        server.proc.kill()
        raise
    err = server.proc.stderr.read() if server.proc.stderr else ""
    return status, err


@pytest.mark.parametrize("signals", list(SIGNALS.values()), ids=list(SIGNALS))
@pytest.mark.parametrize("mode", [[], ["--pool", "2"]], ids=["threaded", "pool"])
def test_stop_signals_back_to_back_exit_zero_and_remove_the_socket_file(
    serve, tmp_path: Path, signals: tuple[int, ...], mode: list[str]  # noqa: F811
) -> None:
    path = tmp_path / "s.sock"
    server = serve("--unix", str(path), "--drain", "0.2", *mode)
    assert path.exists()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(WAIT)
        client.connect(str(path))
        client.sendall(b"in flight\n")
        assert client.recv(100) == b"IN FLIGHT\n"
        client.sendall(b"no newline yet")  # the handler waits in readline: in flight
        status, err = _stop_with(server, signals)
    assert status == 0, err
    assert not path.exists(), "the cleanup did not run: the socket file is left"
    assert "Traceback" not in err, err


def test_two_sigints_on_tcp_exit_zero(serve) -> None:  # noqa: F811
    server = serve("--port", "0")
    host, port = server.address
    with socket.create_connection((host, port), timeout=WAIT) as client:
        client.sendall(b"ping\n")
        assert client.recv(100) == b"PING\n"
        status, err = _stop_with(server, (signal.SIGINT, signal.SIGINT))
    assert status == 0, err
    assert "Traceback" not in err, err
