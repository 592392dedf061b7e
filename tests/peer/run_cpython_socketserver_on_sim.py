#!/usr/bin/env python
"""CPython's own ``test.test_socketserver``, unmodified, on sockfake's simulated network.

``socketserver`` is sockfake (``sys.modules``), and every test (``setUp``, body,
``tearDown``) runs inside a fresh ``SimNetwork`` with ``net.intercept()`` active: the
suite's ``threading.Thread``s, ``socket.socket``s, ``select`` calls, events and
``test.support`` helpers all run on the simulation, in virtual time.

The test module is imported while an interception is active, so the names it binds
at import time (``_real_select = select.select``) are the dispatching functions, which
stay valid afterwards and pick the simulation in each test's threads.

Each test is bounded: a virtual ``time_limit`` on its network and a real-time alarm.
Forking tests must be refused (``NotImplementedError``: processes are not simulated).

With ``--module``, another of CPython's network suites runs the same way (``http.server``,
``xmlrpc.server`` and ``wsgiref.simple_server`` are rebuilt on sockfake first): the
clients and servers of ``test_httpservers``, ``test_xmlrpc``, ``test_urllib2_localnet``,
``test_wsgiref``, ``test_imaplib``, ``test_poplib``, ``test_smtplib``, ``test_ftplib``
and ``test_httplib`` (TLS included) all run on the simulation.

Usage: ``python tests/peer/run_cpython_socketserver_on_sim.py [--module NAME] [--real]
[--json] [--seed N] [--scheduling random] [--latency S] [-k NAME] [-v]``; ``--real`` runs the
same tests on the real OS (the baseline), ``--json`` ends the output with one JSON
line, the others choose the simulated network (test i gets seed N + i). Run it from
a scratch directory: the suite creates files.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import json
import signal
import sys
import time
import traceback
import unittest
from typing import Any

import sockfake

sys.modules["socketserver"] = sockfake

import test.support  # noqa: E402

from sockfake.sim import SimNetwork  # noqa: E402

# test_all checks the stdlib module's own file (see tests/peer/test_cpython_socketserver_suite).
SKIP = {"test_all"}
# Per module, on the simulation only: tests that assume what virtual time is not.
SIM_SKIP = {
    # Its regex wants microseconds in str(datetime.now().time()), which a whole virtual
    # second (0.000000 at the start) prints without, as a real clock once in 10**6.
    "test.test_smtplib": {"test_debuglevel_2"},
}
REAL_SECONDS_PER_TEST = 60
VIRTUAL_SECONDS_PER_TEST = 3600.0
REFUSAL_MARKS = ("processes are not simulated", "ForkingMixIn on a SimNetwork")


class _Alarm(BaseException):
    """Raised by the real-time alarm; a BaseException so test code cannot swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Alarm(f"test took more than {REAL_SECONDS_PER_TEST} s of real time")


def _flatten(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    tests: list[unittest.TestCase] = []
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            tests.extend(_flatten(item))
        else:
            tests.append(item)
    return tests


# Stdlib modules that subclass socketserver classes at import: rebuilt on sockfake.
_DEPENDANTS = ("http.server", "xmlrpc.server", "wsgiref.simple_server")


def _load(real: bool, module: str) -> list[unittest.TestCase]:
    test.support.use_resources = ["network"]
    test.support.verbose = 0
    for name in _DEPENDANTS:
        sys.modules.pop(name, None)  # imported again below, on sockfake
    if real:
        upstream = importlib.import_module(module)
    else:
        with SimNetwork(seed=0) as net, net.intercept():
            upstream = importlib.import_module(module)
    if module == "test.test_socketserver":
        assert upstream.socketserver is sockfake
    suite = unittest.defaultTestLoader.loadTestsFromModule(upstream)
    skip = SKIP if module == "test.test_socketserver" else set()
    if not real:
        skip = skip | SIM_SKIP.get(module, set())
    return [t for t in _flatten(suite) if t._testMethodName not in skip]


def _outcome(result: unittest.TestResult) -> tuple[str, str]:
    problems = result.errors + result.failures
    if problems:
        text = problems[0][1]
        if any(mark in text for mark in REFUSAL_MARKS):
            return "refused", text
        return "failed", text
    if result.skipped:
        return "skipped", result.skipped[0][1]
    if result.testsRun and result.wasSuccessful():
        return "passed", ""
    return "failed", "did not run"


def _run_one(
    case: unittest.TestCase, real: bool, seed: int, network_options: dict[str, Any]
) -> tuple[str, str, float, int]:
    result = unittest.TestResult()
    virtual = 0.0
    events = 0
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(REAL_SECONDS_PER_TEST)
    # Last resort if even the unwinding hangs: dump every thread's stack and exit.
    faulthandler.dump_traceback_later(3 * REAL_SECONDS_PER_TEST, exit=True)
    try:
        if real:
            case.run(result)
        else:
            net = SimNetwork(seed=seed, time_limit=VIRTUAL_SECONDS_PER_TEST, **network_options)
            try:
                with net.intercept():
                    case.run(result)
                virtual = net.time()
                events = len(net.trace)  # proof that the test ran on the simulation
            finally:
                net.close()
    except BaseException:
        result.errors.append((case, traceback.format_exc()))
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
    status, detail = _outcome(result)
    return status, detail, virtual, events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="run on the real OS (baseline)")
    parser.add_argument("--json", action="store_true", help="end with one JSON summary line")
    parser.add_argument("-v", "--verbose", action="store_true", help="print failure tracebacks")
    parser.add_argument("-k", default="", help="only tests whose id contains this")
    parser.add_argument(
        "--module", default="test.test_socketserver",
        help="another CPython suite to run the same way (test.test_httpservers, "
        "test.test_xmlrpc, test.test_ftplib...)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first test's network")
    parser.add_argument("--scheduling", default="fifo", choices=("fifo", "random"))
    parser.add_argument("--latency", type=float, default=0.0, help="virtual seconds per link")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {"scheduling": args.scheduling}
    if args.latency:
        options["latency"] = args.latency
    tests = [t for t in _load(args.real, args.module) if args.k in t.id()]
    outcomes: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for seed, case in enumerate(tests, start=args.seed):
        name = case.id().removeprefix(args.module + ".")
        before = time.perf_counter()
        status, detail, virtual, events = _run_one(case, args.real, seed, options)
        real_seconds = time.perf_counter() - before
        outcomes[name] = {
            "status": status, "real": round(real_seconds, 3), "virtual": virtual, "events": events
        }
        if status != "passed":
            outcomes[name]["detail"] = detail.strip().splitlines()[-1] if detail else ""
        print(f"{status.upper():8} {name}  ({real_seconds:.2f} s real, {virtual:.2f} s virtual, "
              f"{events} simulated events)")
        if args.verbose and status in ("failed", "refused"):
            print(detail)
        sys.stdout.flush()
    counts = {s: sum(1 for o in outcomes.values() if o["status"] == s)
              for s in ("passed", "failed", "refused", "skipped")}
    where = "real OS" if args.real else "simulated network"
    print(f"CPython {sys.version.split()[0]} {args.module} on sockfake, {where}: "
          f"{counts['passed']} passed, {counts['failed']} failed, {counts['refused']} refused, "
          f"{counts['skipped']} skipped in {time.perf_counter() - started:.1f} s")
    if args.json:
        print(json.dumps({"counts": counts, "tests": outcomes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
