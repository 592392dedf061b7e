"""Systematic exploration with and without each reduction: schedules run.

Per scenario, ``explore(scenario, "systematic", preemption_bound=2)`` three ways,
each capped at ``--cap`` schedules: the default (``full``: dynamic partial-order
reduction with source sets, and the memory of races already reversed so an
equivalent run does not reverse them again), ``reduction="dpor"`` (the same without
that memory) and ``reduction=False`` (every alternative at every decision). Each
cell: how it ended (``found``: a failing schedule, after that many; ``all``: every
schedule within the bound ran, none failed; ``>cap``: stopped at the cap), the
schedules run, the seconds. The kernel's finer dependencies (a connection's two
directions, a delivery after its send, a start before the started thread) apply
to all three. The scenarios, all from ``tests/race_bugs.py``:
two threads with a lock each (independent), two threads debiting one account under
one lock (fixed and buggy), and every bug and fixed version there, under
``net.intercept()`` as the plugin runs them. Counts are a function of the code, not of
the machine; the seconds are not.

    python benchmarks/bench_systematic.py              # cap 3000 schedules
    python benchmarks/bench_systematic.py --cap 300
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from race_bugs import (  # noqa: E402
    BUGS,
    FIXED,
    REAL_CODE_BUGS,
    debit_twice,
    independent_locks,
)

from sockfake.testing import explore  # noqa: E402


def systematic(bug: Callable[[Any], bool], cap: int, reduction: bool | str) -> str:
    def scenario(net: Any) -> None:
        with net.intercept():
            if bug(net):
                raise AssertionError("the bug showed")

    started = time.perf_counter()
    result = explore(scenario, "systematic", preemption_bound=2, max_schedules=cap,
                     reduction=reduction, time_limit=600)
    ending = "found" if result.failures else "all" if result.exhausted else f">{cap}"
    return f"{ending:>6} {result.schedules:>6} {time.perf_counter() - started:>6.1f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=int, default=3000)
    parser.add_argument("--only", default="", help="scenarios whose name contains this")
    args = parser.parse_args()
    scenarios: dict[str, Callable[[Any], bool]] = {
        "independent threads": independent_locks,
        "debits (fixed)": functools.partial(debit_twice, fixed=True),
        "debits (bug)": debit_twice,
        **BUGS, **REAL_CODE_BUGS,
        **{f"{name} (fixed)": bug for name, bug in FIXED.items()},
    }
    print(f"load average {os.getloadavg()[0]:.2f}; preemption bound 2, at most {args.cap} "
          "schedules; each cell: how it ended, schedules run, seconds")
    print(f"{'scenario':<32}{'full':>22}{'dpor':>22}{'none':>22}")
    for name, bug in scenarios.items():
        if args.only not in name:
            continue
        cells = [systematic(bug, args.cap, reduction) for reduction in (True, "dpor", False)]
        print(f"{name:<32}" + "".join(f"{cell:>22}" for cell in cells), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
