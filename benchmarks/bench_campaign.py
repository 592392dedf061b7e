"""Seeds per second per core: a small simulated test under a campaign, as pytest items,
and in a plain loop without pytest.

The test starts a ``tcp_server`` and makes one round trip. Three contenders, each in
its own single-process run (one core), alternated round by round:

- ``campaign``: ``--sockfake-campaign=N``, the N seeds as runs inside one item;
- ``items``: ``--sockfake-explore=N``, one pytest item per seed (the per-item way);
- ``loop``: ``open_testbed(seed=s, scheduling="pct")`` N times in a script, no pytest;
- ``loop-kept``: the same loop inside ``interception_kept()`` (the stdlib's patches
  installed once for the loop, not per seed); on a checkout without it (``--against``
  an older tree) the plain loop.

Each figure is seeds divided by the time from the session's start to its end (for
pytest: collection and the runs; not the interpreter's start-up), median of the
rounds with min-max; and the process's CPU time over the same span per seed (every
thread counted), which another session's load moves far less than the wall time. The
machine may be loaded by other work: the load average is printed before and after,
and every figure should be read next to it.

``--against DIR``: each contender also runs on the sockfake checkout in ``DIR`` (put
first on ``PYTHONPATH``; e.g. ``git worktree add ../base main``), alternated with
this one round by round, for an A/B of a change in one run. ``--backend greenlet``:
the simulated threads are greenlets (``--sockfake-backend``; the loop's networks too).

    python benchmarks/bench_campaign.py [--seeds N] [--rounds R] [--against DIR]
                                        [--backend threads|greenlet]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TEST_FILE = """
import sockfake


class Upper(sockfake.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())


def test_round_trip(tcp_server):
    srv = tcp_server(Upper)
    with srv.connect(timeout=5) as conn:
        conn.sendall(b"ping\\n")
        assert conn.makefile("rb").readline() == b"PING\\n"
"""

# The session's own span, on the real clock bound before any interception.
TIMER = """
import json, os
from time import perf_counter as real_clock, process_time as cpu_clock

started = []


def pytest_sessionstart(session):
    started.append((real_clock(), cpu_clock()))


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump({"seconds": real_clock() - started[0][0],
                   "cpu": cpu_clock() - started[0][1]}, out)
"""

LOOP = """
import json, os, sys
from time import perf_counter as real_clock, process_time as cpu_clock

sys.path.insert(0, os.environ["BENCH_DIR"])
from test_small import Upper

import contextlib
import sockfake.testing
from sockfake.sim.kernel.backends import set_default_backend
from sockfake.testing import open_testbed

seeds = int(sys.argv[1])
set_default_backend(sys.argv[2])
kept = getattr(sockfake.testing, "interception_kept", contextlib.nullcontext)
scope = kept() if sys.argv[3] == "kept" else contextlib.nullcontext()
started = real_clock()
cpu_started = cpu_clock()
with scope:
    for seed in range(seeds):
        with open_testbed(seed=seed, scheduling="pct") as bed:
            srv = bed.tcp_server(Upper)
            with srv.connect(timeout=5) as conn:
                conn.sendall(b"ping\\n")
                assert conn.makefile("rb").readline() == b"PING\\n"
with open(os.environ["BENCH_OUT"], "w") as out:
    json.dump({"seconds": real_clock() - started, "cpu": cpu_clock() - cpu_started}, out)
"""

PYTEST = [
    sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
    "-p", "no:randomly", "-p", "no:xdist", "--sockfake-seed=1", "test_small.py",
]


def seconds(directory: Path, contender: str, seeds: int, tree: str | None,
            backend: str) -> tuple[float, float]:
    """One run: its wall seconds and CPU seconds (session start to end)."""
    out = directory / f"{contender}.json"
    if contender == "campaign":
        command = [*PYTEST, f"--sockfake-backend={backend}", f"--sockfake-campaign={seeds}"]
    elif contender == "items":
        command = [*PYTEST, f"--sockfake-backend={backend}", f"--sockfake-explore={seeds}"]
    else:
        scope = "kept" if contender == "loop-kept" else "plain"
        command = [sys.executable, str(directory / "loop.py"), str(seeds), backend, scope]
    env = {**os.environ, "BENCH_OUT": str(out), "BENCH_DIR": str(directory)}
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
    result = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, timeout=1800, env=env,
    )
    if result.returncode != 0:
        sys.exit(f"{contender} failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    figures = json.loads(out.read_text())
    return float(figures["seconds"]), float(figures["cpu"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=300, help="seeds per run")
    parser.add_argument("--rounds", type=int, default=3, help="alternated runs per contender")
    parser.add_argument("--against", metavar="DIR", default=None,
                        help="also run each contender on the sockfake checkout in DIR")
    parser.add_argument("--backend", choices=("threads", "greenlet"), default="threads")
    args = parser.parse_args()
    load_before = os.getloadavg()
    trees: list[tuple[str, str | None]] = [("", None)]
    if args.against is not None:
        trees = [("", None), (" (against)", os.path.abspath(args.against))]
    contenders = [(f"{name}{label}", name, tree)
                  for name in ("campaign", "items", "loop", "loop-kept")
                  for label, tree in trees]
    rates: dict[str, list[float]] = {label: [] for label, _, _ in contenders}
    cpu: dict[str, list[float]] = {label: [] for label, _, _ in contenders}
    with tempfile.TemporaryDirectory(prefix="sockfake-bench-campaign-") as tmp:
        directory = Path(tmp)
        (directory / "test_small.py").write_text(TEST_FILE)
        (directory / "conftest.py").write_text(textwrap.dedent(TIMER))
        (directory / "loop.py").write_text(LOOP)
        for number in range(args.rounds):
            shift = number % len(contenders)  # the order rotates round by round
            for label, name, tree in contenders[shift:] + contenders[:shift]:
                wall, spent = seconds(directory, name, args.seeds, tree, args.backend)
                rates[label].append(args.seeds / wall)
                cpu[label].append(spent / args.seeds)
    load_after = os.getloadavg()
    print(f"one test (tcp_server + one round trip), {args.seeds} seeds per run, one process "
          f"(one core) each, pct scheduling, backend {args.backend}; {args.rounds} rounds "
          f"alternated, median (min-max)")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} "
          f"on {os.cpu_count()} cores (other work shares the machine)")
    for label, _, _ in contenders:
        values, per_seed = rates[label], cpu[label]
        print(f"{label:20} {statistics.median(values):7.0f} seeds/s per core "
              f"({min(values):.0f}-{max(values):.0f}); CPU "
              f"{statistics.median(per_seed) * 1e3:.2f} ms per seed "
              f"({min(per_seed) * 1e3:.2f}-{max(per_seed) * 1e3:.2f}): "
              f"{1 / statistics.median(per_seed):.0f} seeds per CPU second")
    ratio = statistics.median(rates["campaign"]) / statistics.median(rates["items"])
    print(f"campaign / items: {ratio:.2f}x")


if __name__ == "__main__":
    main()
