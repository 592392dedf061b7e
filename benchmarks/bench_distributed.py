"""What one simulated run of examples/replicated_kv.py costs, and the seed searches.

The cost: rounds alternate the buggy and the fixed store (one run each, the same
seeds), printing the median real seconds per run and per client operation, their
spread, the CPU seconds per run (less sensitive to other load) and the load average
(the machine is shared: say so next to a figure).

    python benchmarks/bench_distributed.py [--rounds 10]
    python benchmarks/bench_distributed.py --search buggy --seeds 200   # which seeds fail
    python benchmarks/bench_distributed.py --search fixed --seeds 2000  # all must pass
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replicated_kv import run  # type: ignore[import-not-found]  # noqa: E402


def cost(rounds: int) -> None:
    per_run: dict[str, list[float]] = {"buggy": [], "fixed": []}
    per_op: dict[str, list[float]] = {"buggy": [], "fixed": []}
    cpu: dict[str, list[float]] = {"buggy": [], "fixed": []}
    for seed in range(rounds):
        for name in ("buggy", "fixed") if seed % 2 == 0 else ("fixed", "buggy"):
            start, start_cpu = time.perf_counter(), time.process_time()
            outcome = run(seed, fixed=name == "fixed")
            seconds = time.perf_counter() - start
            cpu[name].append(time.process_time() - start_cpu)
            per_run[name].append(seconds)
            per_op[name].append(seconds / max(1, len(outcome.history)))
    print(f"{rounds} rounds, one run of each store a round (20 virtual s, 3 clients, "
          f"the default nemesis); load average {os.getloadavg()[0]:.2f}")
    for name in per_run:
        runs, ops = per_run[name], per_op[name]
        print(f"  {name}: {statistics.median(runs) * 1000:.0f} ms per run "
              f"(min {min(runs) * 1000:.0f}, max {max(runs) * 1000:.0f}), "
              f"{statistics.median(ops) * 1e6:.0f} us per client operation; "
              f"{statistics.median(cpu[name]) * 1000:.0f} ms of CPU per run")


def search(store: str, seeds: int) -> int:
    start = time.perf_counter()
    failing = []
    operations = 0
    for seed in range(seeds):
        outcome = run(seed, fixed=store == "fixed")
        operations += len(outcome.history)
        if not outcome.result:
            failing.append(seed)
            if len(failing) == 1:
                print(outcome.describe(), flush=True)
        if (seed + 1) % 100 == 0:
            print(f"  {seed + 1} seeds run, {len(failing)} failing", flush=True)
    elapsed = time.perf_counter() - start
    print(f"{store} store: {len(failing)} of {seeds} seeds fail the linearizability check "
          f"(first: {failing[0] if failing else None}; all: {failing}); {operations} "
          f"operations checked; {elapsed:.0f} s real; load average "
          f"{os.getloadavg()[0]:.2f}")
    return 1 if store == "fixed" and failing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--search", choices=["buggy", "fixed"])
    parser.add_argument("--seeds", type=int, default=200)
    args = parser.parse_args()
    if args.search:
        return search(args.search, args.seeds)
    cost(args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
