"""Systematic exploration with and without partial-order reduction: schedules run.

Per scenario, ``explore(scenario, "systematic", preemption_bound=2)`` with the
reduction (the default) and without (``reduction=False``), each capped at
``--cap`` schedules: how many schedules ran, and how it ended (``found``: a failing
schedule, after that many; ``all``: every schedule within the bound ran, none
failed; ``>cap``: stopped at the cap). The scenarios: two threads with a lock each
(independent), two threads debiting one account under one lock (fixed and buggy),
and every bug of ``tests/race_bugs.py`` and its fixed version, under
``net.intercept()`` as the plugin runs them. Counts are a function of the code, not of
the machine; the seconds are not.

    python benchmarks/bench_systematic.py              # cap 2000 schedules
    python benchmarks/bench_systematic.py --cap 300
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from race_bugs import BUGS, FIXED, REAL_CODE_BUGS  # noqa: E402

from sockfake.testing import explore  # noqa: E402


def independent(net: Any) -> bool:
    """Two threads, each taking its own lock twice: nothing of one depends on the other."""
    locks = [threading.Lock(), threading.Lock()]
    counts = [0, 0]

    def work(index: int) -> None:
        for _ in range(2):
            with locks[index]:
                counts[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts != [2, 2]


def debits(fixed: bool) -> Callable[[Any], bool]:
    """Two threads debit 60 from 100 under one lock: check and debit in one hold, or
    (the bug) in two."""

    def run(net: Any) -> bool:
        account = {"balance": 100}
        lock = threading.Lock()

        def debit() -> None:
            with lock:
                balance = account["balance"]
                if fixed and balance >= 60:
                    account["balance"] -= 60
            if not fixed and balance >= 60:
                with lock:
                    account["balance"] -= 60

        threads = [threading.Thread(target=debit) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return account["balance"] < 0

    return run


def systematic(bug: Callable[[Any], bool], cap: int, reduction: bool) -> str:
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
    parser.add_argument("--cap", type=int, default=2000)
    args = parser.parse_args()
    scenarios: dict[str, Callable[[Any], bool]] = {
        "independent threads": independent,
        "debits (fixed)": debits(True),
        "debits (bug)": debits(False),
        **BUGS, **REAL_CODE_BUGS,
        **{f"{name} (fixed)": bug for name, bug in FIXED.items()},
    }
    print(f"load average {os.getloadavg()[0]:.2f}; preemption bound 2, at most {args.cap} "
          "schedules; each cell: how it ended, schedules run, seconds")
    print(f"{'scenario':<32}{'with reduction':>22}{'without':>22}")
    for name, bug in scenarios.items():
        cells = [systematic(bug, args.cap, reduction) for reduction in (True, False)]
        print(f"{name:<32}" + "".join(f"{cell:>22}" for cell in cells), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
