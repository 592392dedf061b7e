"""The testing core works without pytest: docs/how-to/without-pytest.md's example, as a script."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

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


def test_explore_finds_a_race_and_its_schedule_replays_it() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from race_bugs import use_after_close

    from sockfake.sim import SimNetwork
    from sockfake.testing import explore

    def scenario(net: object) -> None:
        assert not use_after_close(net), "a sender used the socket after it was closed"

    result = explore(scenario, 50, scheduling="random", stop_at_first=True)
    assert result.first_failure is not None, str(result)
    seed, error, schedule = result.first_failure
    assert isinstance(error, AssertionError) and schedule
    assert "schedules" in str(result) and f"seed {seed}" in str(result)
    with SimNetwork(seed=seed + 1, scheduling="random", replay=schedule) as net:
        assert use_after_close(net)
    quiet = explore(scenario, 5, scheduling="fifo")
    assert quiet.failures == [] and quiet.schedules == 5
