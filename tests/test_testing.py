"""The testing core works without pytest: the README's "Without pytest" example, run as a script."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import sys
    import sockfake
    from sockfake.testing import TestbedError, open_testbed

    class Upper(sockfake.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())

    with open_testbed(seed=3, latency=0.01) as bed:
        srv = bed.tcp_server(Upper)
        with srv.connect() as conn:
            conn.sendall(b"hello\\n")
            assert conn.makefile("rb").readline() == b"HELLO\\n"

    class Broken(sockfake.BaseRequestHandler):
        def handle(self):
            self.request.recv(1)
            raise RuntimeError("handler bug")

    try:
        with open_testbed(seed=3) as bed:
            srv = bed.tcp_server(Broken, error_logger=None)
            with srv.connect() as conn:
                conn.sendall(b"x")
                assert conn.recv(1) == b""  # the server closed after the error
    except TestbedError as exc:
        assert "handler bug" in str(exc), exc
    else:
        raise AssertionError("a handler error did not fail the testbed")
    assert "pytest" not in sys.modules, "sockfake.testing imported pytest"
    print("ok")
    """
)


def test_the_testing_core_runs_without_pytest() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
