"""Which exploration finds which race: schedules to the first failure, hit rates.

The bugs of ``tests/race_bugs.py``: the six written against the network's own calls
(lost update across I/O, plain ``+=``, check-then-act, two-lock deadlock, order
violation, use after close) and the six written as real code is, against ``socket``,
``threading``, ``queue`` and ``concurrent.futures`` (connection cache, lost wake-up,
``Queue.join`` under a lock, forwarding servers, LWW over UDP, check-then-debit).
Each runs under N schedules (seeds 0..N-1, under ``net.intercept()`` as the plugin
runs tests) per mode: the default (``scheduling="swarm"``, what ``explore=N`` uses),
each fixed mode, systematic exploration (``explore(..., "systematic")``, preemption
bound 2, at most ``--systematic-cap`` schedules; with partial-order reduction, the
default, and without), and N/4 runs on the real network
(real threads, real loopback). Printed per bug and mode: the schedules until the first
failure (``-``: none within N), and the hits out of N.

    python benchmarks/bench_races.py            # 200 schedules per mode, ~15 minutes
    python benchmarks/bench_races.py --quick    # 40
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from race_bugs import BUGS, REAL_CODE_BUGS  # noqa: E402

from sockfake.exploration import explore  # noqa: E402
from sockfake.network import REAL_NETWORK  # noqa: E402
from sockfake.sim import SimNetwork  # noqa: E402

MODES: dict[str, dict[str, Any]] = {
    "default (swarm)": {"scheduling": "swarm"},
    "fifo": {"scheduling": "fifo"},
    "random": {"scheduling": "random"},
    "pct": {"scheduling": "pct"},
    "random+lines": {"scheduling": "random", "switch_points": "lines"},
    "pct+opcodes": {"scheduling": "pct", "switch_points": "opcodes"},
}
WIDTH = 17


def _cell(first: int | None, hits: int | None, runs: int | None) -> str:
    text = f"{first if first is not None else '-':>5}"
    if hits is not None:
        text += f" {hits:>4}/{runs:<4}"
    return f"{text:>{WIDTH}}"


def sim_runs(bug: Callable[[Any], bool], options: dict[str, Any], runs: int
             ) -> tuple[int | None, int]:
    hits, first = 0, None
    for seed in range(runs):
        with SimNetwork(seed=seed, time_limit=600, **options) as net, net.intercept():
            if bug(net):
                hits += 1
                first = seed + 1 if first is None else first
    return first, hits


def systematic_run(bug: Callable[[Any], bool], cap: int, reduction: bool = True
                   ) -> tuple[int | None, str]:
    def scenario(net: Any) -> None:
        with net.intercept():
            if bug(net):
                raise AssertionError("the bug showed")

    result = explore(scenario, "systematic", preemption_bound=2, max_schedules=cap,
                     reduction=reduction, time_limit=600)
    if result.failures:
        return result.schedules, ""
    return None, "all" if result.exhausted else f">{cap}"


def real_runs(bug: Callable[[Any], bool], runs: int) -> tuple[int | None, int]:
    hits, first = 0, None
    for run in range(runs):
        if bug(REAL_NETWORK):
            hits += 1
            first = run + 1 if first is None else first
    return first, hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 schedules per mode")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--systematic-cap", type=int, default=500)
    args = parser.parse_args()
    runs = args.runs or (40 if args.quick else 200)
    real = max(10, runs // 4)
    start = time.perf_counter()
    print(f"load average {os.getloadavg()[0]:.2f}; {runs} schedules per mode, systematic "
          f"bound 2 (at most {args.systematic_cap} schedules), {real} real-network runs "
          "per bug; each cell: schedules to the first failure, hits/runs")
    columns = [*MODES, "systematic", "no reduction", "real network"]
    print(f"{'bug':<24}" + "".join(f"{column:>{WIDTH}}" for column in columns))
    for name, bug in {**BUGS, **REAL_CODE_BUGS}.items():
        cells = []
        for options in MODES.values():
            first, hits = sim_runs(bug, options, runs)
            cells.append(_cell(first, hits, runs))
        for reduction in (True, False):
            first, note = systematic_run(bug, args.systematic_cap, reduction)
            cells.append(f"{note:>{WIDTH}}" if first is None else _cell(first, None, None))
        first, hits = real_runs(bug, real)
        cells.append(_cell(first, hits, real))
        print(f"{name:<24}" + "".join(cells), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end; "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
