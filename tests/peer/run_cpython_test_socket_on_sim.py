#!/usr/bin/env python
"""CPython's own ``test.test_socket``, its client-side tests, on sockfake's simulated
network (each test inside a fresh ``SimNetwork`` with ``net.intercept()`` active), or on
the real OS with ``--real`` (the baseline).

The client-side tests are those of the classes built on ``ThreadableTest``: a server
half in the test's thread and a client half (``_testX``) in a thread of its own, over
real sockets of every kind the platform has (TCP, UDP, Unix, IPv6; CAN, RDS, TIPC and
the like skip on both networks). Everything else in ``test_socket`` checks the socket
module's own functions (``inet_pton``, ``getaddrinfo`` flags, ``socket.fromfd`` on pipes)
and is out of scope. On the simulation the suite's ``_thread.start_new_thread`` starts
a ``threading.Thread`` (see ``_ThreadModule``); nothing else of the suite is changed.

Usage (from a scratch directory): ``python tests/peer/run_cpython_test_socket_on_sim.py
[--real] [--json] [-k NAME] [-v]``; the last line says how many tests passed, failed,
were refused or skipped. ``--compare REAL.json SIM.json`` compares two ``--json``
reports: the tests that pass on the real OS only, and the simulation's share of the
real OS's passes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import unittest
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The socketserver runner's loader and per-test run (it makes socketserver sockfake).
runner: Any = importlib.import_module("run_cpython_socketserver_on_sim")

MODULE = "test.test_socket"


class _ThreadModule:
    """``_thread`` for the suite, whose client halves start with
    ``_thread.start_new_thread``: the same thread as a ``threading.Thread``, which
    joins the simulation under interception (a bare ``_thread`` thread is not one of
    the simulation's threads)."""

    def __getattr__(self, name: str) -> Any:
        import _thread

        return getattr(_thread, name)

    @staticmethod
    def start_new_thread(function: Any, args: tuple[Any, ...], kwargs: Any = None) -> int:
        import threading

        worker = threading.Thread(target=function, args=args, kwargs=kwargs or {}, daemon=True)
        worker.start()
        return worker.ident or 0


def _client_side(real: bool) -> list[Any]:
    tests = runner._load(real, MODULE)
    upstream = sys.modules[MODULE]
    if not real:
        setattr(upstream, "thread", _ThreadModule())  # noqa: B010
    threadable = upstream.ThreadableTest
    return [t for t in tests if isinstance(t, threadable)]


def run(real: bool, k: str = "", verbose: bool = False) -> dict[str, dict[str, Any]]:
    tests = [t for t in _client_side(real) if k in t.id()]
    outcomes: dict[str, dict[str, Any]] = {}
    for seed, case in enumerate(tests):
        name = case.id().removeprefix(MODULE + ".")
        before = time.perf_counter()
        # In a suite of its own, so that its class's setUpClass runs (test files).
        single: Any = unittest.TestSuite([case])
        status, detail, virtual, events = runner._run_one(single, real, seed, {})
        seconds = time.perf_counter() - before
        outcomes[name] = {"status": status, "real": round(seconds, 3), "events": events}
        if status != "passed":
            outcomes[name]["detail"] = detail.strip().splitlines()[-1] if detail else ""
        print(f"{status.upper():8} {name}  ({seconds:.2f} s real, {virtual:.2f} s virtual, "
              f"{events} simulated events)")
        if verbose and status in ("failed", "refused"):
            print(detail)
        sys.stdout.flush()
    return outcomes


def _counts(outcomes: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {s: sum(1 for o in outcomes.values() if o["status"] == s)
            for s in ("passed", "failed", "refused", "skipped")}


def _compare(real_file: str, sim_file: str) -> int:
    with open(real_file) as f:
        real = json.load(f)["tests"]
    with open(sim_file) as f:
        sim = json.load(f)["tests"]
    passed = [name for name, o in real.items() if o["status"] == "passed"]
    both = [name for name in passed if sim.get(name, {}).get("status") == "passed"]
    for name in passed:
        if name not in both:
            print(f"real only: {name}: {sim.get(name, {}).get('detail', 'not run')}")
    print(f"{len(both)} of the {len(passed)} tests that pass on the real OS pass on the "
          f"simulation ({100 * len(both) / max(1, len(passed)):.1f} %)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="run on the real OS (baseline)")
    parser.add_argument("--json", metavar="FILE", help="write the per-test report here")
    parser.add_argument("-k", default="", help="only tests whose id contains this")
    parser.add_argument("-v", "--verbose", action="store_true", help="print failure tracebacks")
    parser.add_argument("--compare", nargs=2, metavar=("REAL", "SIM"),
                        help="compare two --json reports instead of running")
    args = parser.parse_args(argv)
    if args.compare:
        return _compare(*args.compare)
    started = time.perf_counter()
    outcomes = run(args.real, args.k, args.verbose)
    counts = _counts(outcomes)
    where = "real OS" if args.real else "simulated network"
    print(f"CPython {sys.version.split()[0]} {MODULE} client-side tests on sockfake, {where}: "
          f"{counts['passed']} passed, {counts['failed']} failed, {counts['refused']} refused, "
          f"{counts['skipped']} skipped in {time.perf_counter() - started:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"where": where, "counts": counts, "tests": outcomes}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
