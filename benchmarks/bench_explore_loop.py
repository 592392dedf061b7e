"""Exploration throughput without pytest: ``explore()`` of an intercepted race scenario.

Each run is its own process (one core): ``explore(scenario, N)`` (random schedules,
swarm) and ``explore(scenario, "systematic", preemption_bound=2)`` of
``tests/race_bugs.py``'s ``debit_twice(fixed=True)`` under ``net.intercept()``, as the
plugin runs such a test. Figures are schedules per CPU second of the run's process
(``process_time``, from before the first schedule to after the last), median of the
rounds. ``--against DIR``: the same runs on the sockfake checkout in ``DIR``,
alternated round by round, for an A/B of a change in one run.

    python benchmarks/bench_explore_loop.py [--schedules N] [--rounds R] [--against DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"

RUN = """
import functools, json, sys
from time import process_time
sys.path.insert(0, sys.argv[3])
from race_bugs import debit_twice
from sockfake.testing import explore

bug = functools.partial(debit_twice, fixed=True)


def scenario(net):
    with net.intercept():
        if bug(net):
            raise AssertionError("the bug showed")


kind, schedules = sys.argv[1], int(sys.argv[2])
started = process_time()
if kind == "random":
    result = explore(scenario, schedules)
else:
    result = explore(scenario, "systematic", preemption_bound=2, max_schedules=schedules)
assert not result.failures, result
print(json.dumps({"schedules": result.schedules, "cpu": process_time() - started}))
"""


def run(kind: str, schedules: int, tree: str | None) -> float:
    """One run's schedules per CPU second."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
    # ``-c`` puts the working directory first on sys.path: run it where no checkout is
    result = subprocess.run(
        [sys.executable, "-c", RUN, kind, str(schedules), str(TESTS)],
        capture_output=True, text=True, timeout=1800, env=env, check=False,
        cwd=tempfile.gettempdir(),
    )
    if result.returncode != 0:
        sys.exit(f"{kind} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return float(figures["schedules"]) / float(figures["cpu"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schedules", type=int, default=300, help="schedules per run")
    parser.add_argument("--rounds", type=int, default=3, help="alternated runs per contender")
    parser.add_argument("--against", metavar="DIR", default=None,
                        help="also run each contender on the sockfake checkout in DIR")
    args = parser.parse_args()
    load_before = os.getloadavg()
    trees: list[tuple[str, str | None]] = [("", None)]
    if args.against is not None:
        trees.append((" (against)", os.path.abspath(args.against)))
    contenders = [(f"{kind}{label}", kind, tree) for kind in ("random", "systematic")
                  for label, tree in trees]
    rates: dict[str, list[float]] = {label: [] for label, _, _ in contenders}
    for number in range(args.rounds):
        shift = number % len(contenders)  # the order rotates round by round
        for label, kind, tree in contenders[shift:] + contenders[:shift]:
            rates[label].append(run(kind, args.schedules, tree))
    load_after = os.getloadavg()
    print(f"explore() of debit_twice(fixed=True) under net.intercept(), at most "
          f"{args.schedules} schedules a run, one process each; {args.rounds} rounds "
          f"alternated, median (min-max) of schedules per CPU second")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
          f"{load_after[2]:.2f} on {os.cpu_count()} cores (other work shares the machine)")
    for label, _, _ in contenders:
        values = rates[label]
        median = statistics.median(values)
        print(f"{label:24} {median:7.0f} schedules per CPU second ({min(values):.0f}-"
              f"{max(values):.0f}); CPU {1e3 / median:.2f} ms per schedule")


if __name__ == "__main__":
    main()
