"""Per-test overhead of the sockfake pytest fixtures: simulated, real, pytest-httpserver.

Generates 1,000 tests that each start a ``tcp_server`` and make one round trip,
runs them with pytest (once with ``--sockfake-network=sim``, once more with
``--sockfake-intercept=off`` too: the interception's share, once with ``real``), and
the same number of pytest-httpserver tests that each set an expectation on its
``httpserver`` fixture and make one HTTP request (the anchor: its server is started
once per session, and each test's set-up and tear-down clear it). Prints, per
contender, the mean and median set-up + tear-down time per test (the fixtures'
overhead), the same plus the server's start inside the test body (``tcp_server(Upper)``;
``httpserver.expect_request(...)``), the call time, the whole test (set-up, call and
tear-down: the per-test cost to compare, since pytest-httpserver serves in the call
from a server started once), the process's CPU time per test (every thread counted,
from the set-up of test ``WARM_UP + 1`` to the session's end, so that one-time work
(imports, the first installation of the interception) is left out: the figure the
goal is judged on, as another session's load moves it far less than the wall times),
and the wall time of the whole run. Contenders alternate round by round.

``--against DIR``: the simulated contender also runs on the sockfake checkout in
``DIR`` (put first on ``PYTHONPATH``; e.g. ``git worktree add ../base main``),
alternated with this one, for an A/B of a change in one run.

``--calls``: one more run per contender counts the Python functions and C functions
called per test in every thread (a profile hook; Python 3.12 and later): a figure the
machine's load does not move.

    python benchmarks/bench_plugin.py [--tests N] [--rounds R] [--against DIR] [--calls]
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

HTTPSERVER_TEST_FILE = """
from time import perf_counter as real_clock
import http.client


def round_trip(httpserver, record_property):
    started = real_clock()
    httpserver.expect_request("/ping").respond_with_data("PING")
    record_property("start", real_clock() - started)
    conn = http.client.HTTPConnection(httpserver.host, httpserver.port, timeout=5)
    conn.request("GET", "/ping")
    assert conn.getresponse().read() == b"PING"
    conn.close()
"""

# Tests left out of the CPU figure: the first ones pay one-time costs.
WARM_UP = 20

RECORDER = """
import json, os, sys, threading
from time import process_time as cpu_clock

durations = {"setup": [], "call": [], "teardown": [], "start": [], "cpu": [], "calls": []}
started = []
counts = {"call": 0, "c_call": 0}


def count(frame, event, arg):
    if event in counts:
        counts[event] += 1


def pytest_runtest_setup(item):
    started.append(cpu_clock())
    if os.environ.get("BENCH_CALLS") and len(started) == int(os.environ["BENCH_WARM_UP"]) + 1:
        threading.setprofile_all_threads(count)  # every thread, those started later too
        sys.setprofile(count)


def pytest_runtest_logreport(report):
    durations[report.when].append(report.duration)
    if report.when == "call":
        durations["start"].extend(v for k, v in report.user_properties if k == "start")


def pytest_sessionfinish(session):
    warm_up = int(os.environ["BENCH_WARM_UP"])
    if len(started) > warm_up:
        durations["cpu"] = [(cpu_clock() - started[warm_up]) / (len(started) - warm_up)]
    if os.environ.get("BENCH_CALLS"):
        threading.setprofile_all_threads(None)
        sys.setprofile(None)
        tests = max(1, len(started) - warm_up)
        durations["calls"] = [counts["call"] / tests, counts["c_call"] / tests]
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(durations, out)
"""


def run(directory: Path, contender: str, tree: str | None = None,
        calls: bool = False) -> dict[str, list[float]]:
    """One pytest run of ``contender`` ("sim", "real", "httpserver"; "sim-no-intercept"
    for the simulated network without the interception; or "sim@..." for the simulated
    network on the checkout ``tree``)."""
    network = contender.partition("@")[0]
    out = directory / f"{network}.json"
    intercept = "off" if network == "sim-no-intercept" else "on"
    network = "sim" if network == "sim-no-intercept" else network
    tests = directory / ("httpserver" if network == "httpserver" else "sockfake")
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
        f"--sockfake-network={'real' if network == 'httpserver' else network}",
        f"--sockfake-intercept={intercept}",
        "--sockfake-seed=1",
        str(tests),
    ]
    env = {**os.environ, "BENCH_OUT": str(out), "BENCH_WARM_UP": str(WARM_UP),
           "BENCH_CALLS": "1" if calls else ""}
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
    started = time.perf_counter()
    result = subprocess.run(command, cwd=tests, capture_output=True, text=True, env=env)
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
    parser.add_argument("--against", metavar="DIR", default=None,
                        help="also run the simulated tests on the sockfake checkout in DIR")
    parser.add_argument("--calls", action="store_true",
                        help="one more run per contender counting the Python and C calls "
                             "per test, every thread (Python >= 3.12; independent of load)")
    args = parser.parse_args()
    if args.calls and sys.version_info < (3, 12):
        parser.error("--calls needs Python 3.12 or later (threading.setprofile_all_threads)")
    load = os.getloadavg()[0]
    # Per network, one figure per round: the mean over the tests of that run.
    try:
        import pytest_httpserver  # noqa: F401
    except ImportError:
        contenders: tuple[str, ...] = ("sim", "sim-no-intercept", "real")
        print("pytest-httpserver is not installed (pip install pytest-httpserver): no anchor")
    else:
        contenders = ("sim", "sim-no-intercept", "real", "httpserver")
    against = os.path.abspath(args.against) if args.against is not None else None
    if against is not None:
        contenders = ("sim", "sim@against", *contenders[1:])
    rounds: dict[str, dict[str, list[float]]] = {
        network: {"overhead": [], "median": [], "with_start": [], "call": [], "total": [],
                  "cpu": [], "wall": []}
        for network in contenders
    }
    with tempfile.TemporaryDirectory(prefix="sockfake-bench-") as tmp:
        directory = Path(tmp)
        for kind, fixture, source in (("sockfake", "tcp_server", TEST_FILE),
                                      ("httpserver", "httpserver", HTTPSERVER_TEST_FILE)):
            folder = directory / kind
            folder.mkdir()
            body = source + "".join(
                f"\n\ndef test_{n}({fixture}, record_property):\n"
                f"    round_trip({fixture}, record_property)\n"
                for n in range(args.tests)
            )
            (folder / "test_generated.py").write_text(body)
            (folder / "conftest.py").write_text(textwrap.dedent(RECORDER))
        for number in range(args.rounds):
            shift = number % len(contenders)  # the order rotates round by round
            for network in contenders[shift:] + contenders[:shift]:
                d = run(directory, network, against if network == "sim@against" else None)
                overhead = [s + t for s, t in zip(d["setup"], d["teardown"], strict=True)]
                figures = rounds[network]
                figures["overhead"].append(statistics.mean(overhead))
                figures["median"].append(statistics.median(overhead))
                figures["with_start"].append(
                    statistics.mean(o + s for o, s in zip(overhead, d["start"], strict=True))
                )
                figures["call"].append(statistics.mean(d["call"]))
                figures["total"].append(statistics.mean(
                    o + c for o, c in zip(overhead, d["call"], strict=True)))
                figures["cpu"].extend(d["cpu"])
                figures["wall"].append(d["wall"][0])
        calls: dict[str, list[float]] = {}
        if args.calls:
            for network in contenders:
                tree = against if network == "sim@against" else None
                calls[network] = run(directory, network, tree, calls=True)["calls"]
    print(f"{args.tests} tests, each: tcp_server(Upper) + one round trip (httpserver: an "
          f"expectation + one GET); {args.rounds} rounds alternated, median of the rounds "
          f"(min-max); Python {sys.version.split()[0]}, load average {load:.2f} (start) "
          f"{os.getloadavg()[0]:.2f} (end)")
    if against is not None:
        print(f"sim@against: the simulated tests on {against}")
    print(
        f"{'':16} {'setup+teardown mean':>24} {'median':>8} {'+ server start':>16} "
        f"{'call mean':>10} {'test mean':>10} {'CPU per test':>22} {'wall':>8}"
    )

    def cell(values: list[float], scale: float = 1e3) -> str:
        return (f"{statistics.median(values) * scale:.2f} "
                f"({min(values) * scale:.2f}-{max(values) * scale:.2f})")

    for network, figures in rounds.items():
        cpu = cell(figures["cpu"]) + " ms" if figures["cpu"] else "-"
        print(
            f"{network:16} {cell(figures['overhead']):>21} ms "
            f"{statistics.median(figures['median']) * 1e3:5.2f} ms "
            f"{statistics.median(figures['with_start']) * 1e3:13.2f} ms "
            f"{statistics.median(figures['call']) * 1e3:7.2f} ms "
            f"{statistics.median(figures['total']) * 1e3:7.2f} ms "
            f"{cpu:>22} "
            f"{statistics.median(figures['wall']):6.2f} s"
        )
    def cpu_ratio(label: str, anchor: str, goal: float) -> None:
        """The CPU per test of ``sim`` over ``anchor``'s, against the issue's goal."""
        if not rounds["sim"]["cpu"] or not rounds.get(anchor, {}).get("cpu"):
            return
        ratio = (statistics.median(rounds["sim"]["cpu"])
                 / statistics.median(rounds[anchor]["cpu"]))
        verdict = "meets" if ratio <= goal else "MISSES"
        print(f"{label}: {ratio:.2f} (goal <= {goal}): {verdict}")

    cpu_ratio("interception, CPU per test against the same test without it",
              "sim-no-intercept", 1.05)
    sim = statistics.median(rounds["sim"]["with_start"])
    verdict = "meets" if sim < 0.005 else "MISSES"
    print(f"simulated fixture overhead with the server start: {sim * 1e3:.2f} ms per test "
          f"(median of rounds): {verdict} the 5 ms target")
    for network, (python_calls, c_calls) in calls.items():
        print(f"{network:16} calls per test (every thread, after {WARM_UP} tests): "
              f"{python_calls:.0f} Python, {c_calls:.0f} C")
    if "httpserver" in rounds:
        # pytest-httpserver starts its server once per session and serves in the call:
        # the per-test cost to compare is the whole test, set-up, call and tear-down.
        sim_test = statistics.median(rounds["sim"]["total"])
        anchor = statistics.median(rounds["httpserver"]["total"])
        verdict = "meets" if sim_test <= anchor else "MISSES"
        print(f"sim/pytest-httpserver, per test (set-up + call + tear-down): "
              f"{sim_test / anchor:.2f} (goal <= 1.0): {verdict}; set-up + tear-down with "
              f"the server start alone: "
              f"{sim / statistics.median(rounds['httpserver']['with_start']):.2f}")
        cpu_ratio(f"sim/pytest-httpserver, CPU per test (every thread, after {WARM_UP} "
                  "tests)", "httpserver", 1.0)


if __name__ == "__main__":
    main()
