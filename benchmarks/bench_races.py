"""Which exploration mode finds which race: hit rates, schedules to the first failure.

The six bugs of ``tests/race_bugs.py`` (lost update across I/O, plain ``+=``,
check-then-act, two-lock deadlock, order violation, use after close), each run under
N schedules (seeds) per mode, next to N runs on the real network (real threads, real
loopback). Printed per bug and mode: the hit rate, schedules until the first failure,
and the mean real milliseconds per run (what line/opcode switch points cost).

    python benchmarks/bench_races.py            # 200 schedules per mode, ~2 minutes
    python benchmarks/bench_races.py --quick    # 40
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from race_bugs import BUGS  # noqa: E402

from sockfake.network import REAL_NETWORK  # noqa: E402
from sockfake.sim import SimNetwork  # noqa: E402

MODES: dict[str, dict[str, Any]] = {
    "fifo": {"scheduling": "fifo"},
    "random": {"scheduling": "random"},
    "pct": {"scheduling": "pct"},
    "random+lines": {"scheduling": "random", "switch_points": "lines"},
    "pct+opcodes": {"scheduling": "pct", "switch_points": "opcodes"},
}


def sim_runs(bug: Any, options: dict[str, Any], runs: int) -> tuple[int, int | None, float]:
    hits, first = 0, None
    start = time.perf_counter()
    for seed in range(runs):
        with SimNetwork(seed=seed, time_limit=600, **options) as net:
            if bug(net):
                hits += 1
                first = seed + 1 if first is None else first
    return hits, first, (time.perf_counter() - start) / runs * 1000


def real_runs(bug: Any, runs: int) -> tuple[int, int | None, float]:
    hits, first = 0, None
    start = time.perf_counter()
    for run in range(runs):
        if bug(REAL_NETWORK):
            hits += 1
            first = run + 1 if first is None else first
    return hits, first, (time.perf_counter() - start) / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 schedules per mode")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    runs = args.runs or (40 if args.quick else 200)
    real = max(10, runs // 4)
    print(f"load average {os.getloadavg()[0]:.2f}; {runs} schedules per mode, "
          f"{real} real-network runs per bug")
    header = f"{'bug':<24}" + "".join(f"{mode:>22}" for mode in MODES) + f"{'real network':>22}"
    print(header)
    print(f"{'':<24}" + f"{'hits  first  ms/run':>22}" * (len(MODES) + 1))
    for name, bug in BUGS.items():
        cells = []
        for options in MODES.values():
            hits, first, ms = sim_runs(bug, options, runs)
            cells.append(f"{hits:>4}/{runs:<4} {first or '-':>5} {ms:>6.1f}")
        hits, first, ms = real_runs(bug, real)
        cells.append(f"{hits:>4}/{real:<4} {first or '-':>5} {ms:>6.1f}")
        print(f"{name:<24}" + "".join(f"{cell:>22}" for cell in cells), flush=True)


if __name__ == "__main__":
    main()
