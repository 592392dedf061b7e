#!/usr/bin/env python
"""CPython's own asyncio suites, unmodified, on sockfake's simulated network.

The network-facing modules of ``test.test_asyncio`` (``MODULES``) run twice, each in a
subprocess of its own: on the real OS (the baseline) and on the simulation, where
every test (its class's and module's fixtures, ``setUp``, body, ``tearDown``) runs
inside a fresh ``SimNetwork`` with ``net.intercept()`` active, so the suite's event
loops, sockets, selectors, threads, executors, TLS and signals are the simulation's,
in virtual time. The test modules are imported while an interception is active, as
the socketserver runner does, so the names they bind at import are the dispatching
ones.

The last lines are a table, one row per module: the tests, how many pass on the OS,
how many of those pass on the simulation, and the others by category: refused (the
test needs a child process or an OS pipe/pty, which the simulation refuses with a
clear error), documented (``OS_ONLY``: the test depends on the real OS in a way a
simulation cannot be), and failed (anything else: a sockfake bug until shown otherwise).

Each test is bounded: a virtual ``time_limit`` on its network, and a real-time limit
(``faulthandler``: the stacks, the process exits, the next test goes on in a new one).

Usage (from a scratch directory: the suites create files): ``python
tests/peer/run_cpython_asyncio_on_sim.py [--module NAME ...] [-k TEXT] [--sim-only]
[--json FILE] [-v]``; ``--module`` takes a short name (``test_streams``) and can be
repeated (a module this Python lacks is listed and skipped); ``--sim-only`` skips the OS
baseline (then every test the simulation does not skip counts); ``--json`` writes every
test's outcome on both networks; ``-v`` prints each test the simulation does not pass,
its category and its error's line. ``--one {real,sim} --module NAME`` is the
subprocess's own mode: one module on one network, a JSON line as each test begins and
ends.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback
import unittest
from collections import Counter
from typing import Any

PACKAGE = "test.test_asyncio"
MODULES = (
    "test_streams", "test_sock_lowlevel", "test_server", "test_sendfile", "test_ssl",
    "test_base_events", "test_selector_events", "test_events", "test_unix_events",
)  # fmt: skip
REAL_SECONDS_PER_TEST = 120  # generous: the machine may be loaded
VIRTUAL_SECONDS_PER_TEST = 3600.0
# What the simulation says when it refuses a child process or an OS descriptor.
REFUSAL_MARKS = {
    "processes are not simulated": "a child process",
    "which cannot watch an OS descriptor": "an OS pipe or pty",
}
# Tests that pass on the OS and cannot on the simulation as it is designed, and why
# (keyed by test method: the same reason holds in every class and Python version).
# None now: loops on a frozen clock are charged virtual time, and Unix sockets have
# their files.
OS_ONLY: dict[str, str] = {}


def _flatten(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    return [case for item in suite
            for case in (_flatten(item) if isinstance(item, unittest.TestSuite) else [item])]


def _load(real: bool, module: str) -> list[unittest.TestCase]:
    import test.support

    test.support.verbose = 0
    name = f"{PACKAGE}.{module}"
    if real:
        upstream = importlib.import_module(name)
    else:
        from sockfake.sim import SimNetwork

        with SimNetwork(seed=0) as net, net.intercept():
            upstream = importlib.import_module(name)
    return _flatten(unittest.defaultTestLoader.loadTestsFromModule(upstream))


def _outcome(result: unittest.TestResult) -> tuple[str, str]:
    problems = result.errors + result.failures
    if problems:
        text = problems[0][1]
        for mark, why in REFUSAL_MARKS.items():
            if mark in text:
                return "refused", f"{why}: {_last_line(text)}"
        return "failed", _last_line(text)
    if result.unexpectedSuccesses:
        return "failed", "unexpected success"
    if result.skipped:
        return "skipped", result.skipped[0][1]
    if result.testsRun and result.wasSuccessful():
        return "passed", ""
    return "failed", "did not run"


def _last_line(text: str) -> str:
    """The exception's line of a traceback (its message may go on over more lines: a
    deadlock's thread dump), else the last line."""
    lines = text.strip().splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    after = lines[frames[-1] + 1:] if frames else []
    for line in after:
        if line and not line.startswith(" "):
            return line
    return lines[-1] if lines else ""


def _run_one(case: unittest.TestCase, real: bool, seed: int) -> tuple[str, str, int]:
    result = unittest.TestResult()
    # In a suite of its own, so that its class's and module's fixtures run.
    single = unittest.TestSuite([case])
    events = 0
    # A test that hangs: every thread's stack, and the process exits (the parent
    # records the test as failed and goes on in a new process). Not SIGALRM: the suites
    # set their own (signal.setitimer, loop.add_signal_handler(SIGALRM)).
    faulthandler.dump_traceback_later(REAL_SECONDS_PER_TEST, exit=True)
    try:
        if real:
            single.run(result)
        else:
            from sockfake.sim import SimNetwork

            net = SimNetwork(seed=seed, time_limit=VIRTUAL_SECONDS_PER_TEST)
            try:
                with net.intercept():
                    single.run(result)
                events = len(net.trace)  # proof that the test ran on the simulation
            finally:
                net.close()
    except BaseException:
        result.errors.append((case, traceback.format_exc()))
    finally:
        faulthandler.cancel_dump_traceback_later()
    status, detail = _outcome(result)
    return status, detail, events


def run_module(module: str, real: bool, k: str = "", start: int = 0) -> None:
    """Every test of one module on one network from the ``start``-th, one JSON line as
    each begins (its index and name) and one as it ends (its outcome): a test that
    kills the process is known by the line it began with."""
    tests = [t for t in _load(real, module) if k in t.id()]
    print(json.dumps({"tests": len(tests)}), flush=True)
    for index in range(start, len(tests)):
        case = tests[index]
        name = case.id().removeprefix(f"{PACKAGE}.{module}.")
        print(json.dumps({"begin": index, "name": name}), flush=True)
        before = time.perf_counter()
        status, detail, events = _run_one(case, real, index)
        outcome = {"status": status, "detail": detail, "events": events,
                   "real": round(time.perf_counter() - before, 3)}  # fmt: skip
        print(json.dumps({"end": index, "name": name, "outcome": outcome}), flush=True)


def _in_subprocess(module: str, real: bool, k: str) -> dict[str, dict[str, Any]]:
    """One module's outcomes on one network; a test that kills its process is failed
    (with the exit status) and the rest run in a new process."""
    outcomes: dict[str, dict[str, Any]] = {}
    start, total = 0, None
    while total is None or start < total:
        command = [sys.executable, os.path.abspath(__file__), "--one", "real" if real else "sim",
                   "--module", module, "-k", k, "--start", str(start)]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True, timeout=3600)
        began: dict[str, Any] | None = None
        for line in proc.stdout.splitlines():
            if not line.startswith("{"):
                continue
            message = json.loads(line)
            if "tests" in message:
                total = message["tests"]
            elif "begin" in message:
                began = message
            elif "end" in message:
                outcomes[message["name"]] = message["outcome"]
                began = None
                start = message["end"] + 1
        if proc.returncode == 0 and began is None and total is not None:
            break
        if began is None:
            raise RuntimeError(
                f"{module} on the {'OS' if real else 'simulation'} did not report "
                f"(exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        detail = f"the process died (exit {proc.returncode}): {_last_line(proc.stderr)}"
        outcomes[began["name"]] = {"status": "failed", "detail": detail, "events": 0, "real": 0}
        start = began["begin"] + 1
    return outcomes


def category(name: str, sim: dict[str, Any]) -> str:
    """Why a test that passes on the OS does not pass on the simulation."""
    if sim["status"] == "refused":
        return "refused: " + str(sim["detail"]).split(":")[0]
    if name.rpartition(".")[2] in OS_ONLY:
        return "documented"
    return "failed"


def compare(module: str, real: dict[str, Any] | None, sim: dict[str, Any]) -> dict[str, Any]:
    """One module's row: the tests that pass on the OS (without ``real``: every test
    the simulation does not skip), how many pass on the simulation, the others by
    category."""
    if real is None:
        passed = [name for name, o in sim.items() if o["status"] != "skipped"]
    else:
        passed = [name for name, o in real.items() if o["status"] == "passed"]
    both = [name for name in passed if sim.get(name, {}).get("status") == "passed"]
    others = {name: category(name, sim.get(name, {"status": "failed", "detail": "not run"}))
              for name in passed if name not in both}  # fmt: skip
    return {
        "module": module, "tests": len(sim if real is None else real),
        "os_passed": None if real is None else len(passed), "sim_passed": len(both),
        "categories": dict(Counter(others.values())), "not_passed": others,
    }  # fmt: skip


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'module':22} {'tests':>5} {'OS':>5} {'sim':>5}  not passing on the simulation")
    for row in rows:
        cats = ", ".join(f"{n} {c}" for c, n in sorted(row["categories"].items())) or "-"
        os_passed = "-" if row["os_passed"] is None else row["os_passed"]
        print(f"{row['module']:22} {row['tests']:5} {os_passed:>5} {row['sim_passed']:5}  {cats}")
    tests, sim_passed = sum(r["tests"] for r in rows), sum(r["sim_passed"] for r in rows)
    os_total = "-" if rows and rows[0]["os_passed"] is None else sum(
        r["os_passed"] for r in rows)
    print(f"{'total':22} {tests:5} {os_total:>5} {sim_passed:5}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", help="a module of test.test_asyncio")
    parser.add_argument("-k", default="", help="only tests whose id contains this")
    parser.add_argument("--json", metavar="FILE", help="write every test's outcome here")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each failure")
    parser.add_argument("--sim-only", action="store_true",
                        help="no OS baseline: every test the simulation does not skip counts")
    parser.add_argument("--one", choices=("real", "sim"), help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    modules = args.module or list(MODULES)
    missing = [m for m in modules if importlib.util.find_spec(f"{PACKAGE}.{m}") is None]
    modules = [m for m in modules if m not in missing]
    if args.one:
        run_module(modules[0], args.one == "real", args.k, args.start)
        return 0
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    report: dict[str, Any] = {"python": sys.version.split()[0], "modules": {}}
    for module in modules:
        real = None if args.sim_only else _in_subprocess(module, True, args.k)
        sim = _in_subprocess(module, False, args.k)
        row = compare(module, real, sim)
        rows.append(row)
        report["modules"][module] = {"real": real, "sim": sim, "summary": row}
        if args.verbose:
            for name, why in row["not_passed"].items():
                detail = sim.get(name, {}).get("detail", "not run")
                print(f"  {module}.{name}: {why.partition(':')[0]}: {detail}")
        sys.stdout.flush()
    where = "the simulation" if args.sim_only else "the OS against sockfake's simulation"
    print(f"CPython {report['python']} asyncio suites on {where} "
          f"({time.perf_counter() - started:.0f} s):")
    _print_table(rows)
    if missing:
        print(f"not in this Python's test package: {', '.join(missing)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
