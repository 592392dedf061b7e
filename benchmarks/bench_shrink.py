"""How long Hypothesis takes to find and shrink a fault plan, by settings.

The property: a UDP counter must count a retried request once. The handler here has
the bug (it counts every datagram), so Hypothesis finds a plan that breaks it and
shrinks it. Printed side by side, alternating round by round: Hypothesis' defaults
(with ``report_multiple_bugs`` and the ``explain`` phase, which traces every line)
against the settings the documentation recommends for fault-plan searches
(docs/how-to/hypothesis.md).

    python benchmarks/bench_shrink.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from hypothesis import Phase, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from test_hypothesis_faults import increment  # type: ignore[import-not-found]  # noqa: E402

import sockfake  # noqa: E402
from sockfake.strategies import fault_plans, sim_seeds  # noqa: E402
from sockfake.testing import open_testbed  # noqa: E402


class CountsRetriesTwice(sockfake.DatagramRequestHandler):
    def handle(self) -> None:
        self.server.count += 1
        self.wfile.write(self.rfile.read() + b" %d" % self.server.count)


CONTENDERS: dict[str, dict[str, Any]] = {
    "hypothesis defaults": {},
    "recommended": {
        "report_multiple_bugs": False,
        "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    },
}


def search(extra: dict[str, Any]) -> tuple[float, int, str]:
    """Seconds to fail (find + shrink), examples run, and the shrunk plan."""
    calls = [0]
    found: list[str] = []

    @settings(max_examples=200, deadline=None, database=None, **extra)
    @given(plan=fault_plans(max_index=15), seed=sim_seeds())
    def prop(plan: Any, seed: int) -> None:
        calls[0] += 1
        found[:] = [repr(plan)]
        with open_testbed(seed=seed, latency=0.01) as bed:
            plan.apply(bed.network)
            srv = bed.udp_server(CountsRetriesTwice, concurrency="sync", count=0)
            sock = srv.client()
            counts = [increment(sock, srv.address, b"r%d" % n, net=bed.network) for n in range(3)]
            assert counts == [1, 2, 3]

    start = time.perf_counter()
    try:
        prop()
    except AssertionError:
        pass
    else:
        raise SystemExit("the buggy handler was not caught")
    return time.perf_counter() - start, calls[0], found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, int, str]]] = {name: [] for name in CONTENDERS}
    for _ in range(args.rounds):
        for name, extra in CONTENDERS.items():
            results[name].append(search(extra))
    print(f"load average {os.getloadavg()[0]:.2f}, {args.rounds} rounds, alternated")
    print(f"{'settings':<22} {'seconds (median, min-max)':<28} {'examples':<10} last shrunk plan")
    for name, runs in results.items():
        seconds = [run[0] for run in runs]
        examples = statistics.median(run[1] for run in runs)
        span = f"{statistics.median(seconds):.2f} ({min(seconds):.2f}-{max(seconds):.2f})"
        print(f"{name:<22} {span:<28} {examples:<10.0f} {runs[-1][2]}")


if __name__ == "__main__":
    main()
