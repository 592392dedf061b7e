"""What entering and leaving ``net.intercept()`` costs, and the scan of module globals in it.

At install the interception reads the globals of every loaded module that is not the
stdlib's, sockfake's or the test machinery's, for names bound before it (``from time
import monotonic``, a module-level ``threading.Lock``; see
``sockfake.sim.intercept.made_before``). A module is read in full once per process;
later interceptions look only at the names that held something. This imports a set of
third-party packages (those installed of werkzeug, flask, requests, httpx, urllib3,
aiohttp, websockets, dnspython, starlette, uvicorn, anyio, hypothesis) so there is
something to scan, then prints:

- the first scan (every module read in full), once;
- per round, alternating: an enter/exit of ``net.intercept()`` with the scan, and one
  with the scan left out; medians, spread (min-max) and the load average;
- per round, alternating: a first scan (every module read in full) reading objects'
  attributes one object deep and ``made_before._OBJECT_DEPTH`` deep
  (``app.registry.cache.lock``), and the later scan after each (the places that held
  a hit, which is what every other interception reads).

    python benchmarks/bench_intercept.py [--rounds 21]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from typing import Any

import sockfake.sim.intercept.install as install
from sockfake.sim import SimNetwork
from sockfake.sim.intercept import made_before

_real_clock = time.perf_counter  # a name that says real: not rebound by the interception

PACKAGES = ("werkzeug", "flask", "requests", "httpx", "urllib3", "aiohttp", "websockets",
            "dns.resolver", "starlette.applications", "uvicorn", "anyio", "hypothesis")


def _enter_exit(net: SimNetwork) -> float:
    start = _real_clock()
    with net.intercept():
        pass
    return _real_clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    loaded = [name for name in PACKAGES if _try_import(name)]
    modules = sum(1 for name in sys.modules if not made_before._skipped(name))
    net = SimNetwork(seed=1)
    try:
        first = _enter_exit(net)
        real_install: Any = install._rebind_made_before
        with_scan: list[float] = []
        without: list[float] = []
        for _ in range(args.rounds):
            with_scan.append(_enter_exit(net))
            install._rebind_made_before = lambda: None
            try:
                without.append(_enter_exit(net))
            finally:
                install._rebind_made_before = real_install
    finally:
        net.close()
    depths = _first_scans(args.rounds)
    print(f"packages imported: {', '.join(loaded)}; modules scanned: {modules} "
          f"(of {len(sys.modules)} loaded)")
    print(f"first enter/exit (every module read in full): {first * 1e3:.2f} ms")
    for name, times in (("enter/exit with the scan", with_scan),
                        ("enter/exit without it", without)):
        print(f"{name}: median {statistics.median(times) * 1e3:.3f} ms "
              f"(min {min(times) * 1e3:.3f}, max {max(times) * 1e3:.3f}) over {len(times)}")
    for name, times in depths.items():
        print(f"{name}: median {statistics.median(times) * 1e3:.3f} ms "
              f"(min {min(times) * 1e3:.3f}, max {max(times) * 1e3:.3f}) over {len(times)}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _first_scans(rounds: int) -> dict[str, list[float]]:
    """First and later scans reading objects one deep and ``_OBJECT_DEPTH`` deep."""
    replaced = install._replaced_originals()
    deepest = made_before._OBJECT_DEPTH
    times: dict[str, list[float]] = {}
    try:
        for _ in range(rounds):
            for depth in (1, deepest):
                made_before._OBJECT_DEPTH = depth
                made_before._scanned.clear()
                made_before._with_hits.clear()
                for scan in ("first", "later"):
                    start = _real_clock()
                    found = len(list(made_before.scan(replaced)))
                    elapsed = _real_clock() - start
                    key = f"{scan} scan, objects {depth} deep ({found} found)"
                    times.setdefault(key, []).append(elapsed)
    finally:
        made_before._OBJECT_DEPTH = deepest
    return times


def _try_import(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
