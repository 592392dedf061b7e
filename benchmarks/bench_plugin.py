"""Per-test overhead of the sockfake pytest fixtures, simulated vs real network.

Generates 1,000 tests that each start a ``tcp_server`` and make one round trip,
runs them with pytest (once with ``--sockfake-network=sim``, once with ``real``),
and prints the mean and median set-up + tear-down time per test (the fixtures'
overhead; target under 5 ms on the simulated network), the same plus the
``tcp_server(Upper)`` call itself (which starts the server inside the test body), the
call time (server start plus one round trip), and the wall time of the whole run.

    python benchmarks/bench_plugin.py [--tests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TEST_FILE = """
# Bound at import, before the plugin intercepts the test: the real clock, even inside
# a simulated test (where time.perf_counter() is virtual).
from time import perf_counter as real_clock

import sockfake


class Upper(sockfake.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())


def round_trip(tcp_server, record_property):
    started = real_clock()
    srv = tcp_server(Upper)
    record_property("start", real_clock() - started)
    with srv.connect(timeout=5) as conn:
        conn.sendall(b"ping\\n")
        assert conn.makefile("rb").readline() == b"PING\\n"
"""

RECORDER = """
import json, os

durations = {"setup": [], "call": [], "teardown": [], "start": []}


def pytest_runtest_logreport(report):
    durations[report.when].append(report.duration)
    if report.when == "call":
        durations["start"].extend(v for k, v in report.user_properties if k == "start")


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(durations, out)
"""


def run(directory: Path, network: str) -> dict[str, list[float]]:
    out = directory / f"{network}.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",
        "-p",
        "no:randomly",
        f"--sockfake-network={network}",
        "--sockfake-seed=1",
        str(directory),
    ]
    started = time.perf_counter()
    result = subprocess.run(
        command,
        cwd=directory,
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_OUT": str(out)},
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"pytest failed on {network}:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    durations: dict[str, list[float]] = json.loads(out.read_text())
    durations["wall"] = [wall]
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternated runs per network")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    # Per network, one figure per round: the mean over the tests of that run.
    rounds: dict[str, dict[str, list[float]]] = {
        network: {"overhead": [], "median": [], "with_start": [], "call": [], "wall": []}
        for network in ("sim", "real")
    }
    with tempfile.TemporaryDirectory(prefix="sockfake-bench-") as tmp:
        directory = Path(tmp)
        body = TEST_FILE + "".join(
            f"\n\ndef test_{n}(tcp_server, record_property):\n"
            "    round_trip(tcp_server, record_property)\n"
            for n in range(args.tests)
        )
        (directory / "test_generated.py").write_text(body)
        (directory / "conftest.py").write_text(textwrap.dedent(RECORDER))
        for _ in range(args.rounds):
            for network in ("sim", "real"):  # alternated round by round
                d = run(directory, network)
                overhead = [s + t for s, t in zip(d["setup"], d["teardown"], strict=True)]
                figures = rounds[network]
                figures["overhead"].append(statistics.mean(overhead))
                figures["median"].append(statistics.median(overhead))
                figures["with_start"].append(
                    statistics.mean(o + s for o, s in zip(overhead, d["start"], strict=True))
                )
                figures["call"].append(statistics.mean(d["call"]))
                figures["wall"].append(d["wall"][0])
    print(f"{args.tests} tests, each: tcp_server(Upper) + one round trip; {args.rounds} "
          f"rounds alternated, median of the rounds (min-max); load average {load:.2f}")
    print(
        f"{'':6} {'setup+teardown mean':>24} {'median':>8} {'+ server start':>16} "
        f"{'call mean':>10} {'wall':>8}"
    )

    def cell(values: list[float], scale: float = 1e3) -> str:
        return (f"{statistics.median(values) * scale:.2f} "
                f"({min(values) * scale:.2f}-{max(values) * scale:.2f})")

    for network, figures in rounds.items():
        print(
            f"{network:6} {cell(figures['overhead']):>21} ms "
            f"{statistics.median(figures['median']) * 1e3:5.2f} ms "
            f"{statistics.median(figures['with_start']) * 1e3:13.2f} ms "
            f"{statistics.median(figures['call']) * 1e3:7.2f} ms "
            f"{statistics.median(figures['wall']):6.2f} s"
        )
    sim = statistics.median(rounds["sim"]["with_start"])
    verdict = "meets" if sim < 0.005 else "MISSES"
    print(f"simulated fixture overhead with the server start: {sim * 1e3:.2f} ms per test "
          f"(median of rounds): {verdict} the 5 ms target")


if __name__ == "__main__":
    main()
