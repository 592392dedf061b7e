"""What a lock or a queue costs on the hot path of real code.

Under ``net.intercept()`` the ``threading.Lock`` and ``queue.Queue`` that real code makes
(``concurrent.futures``, ``logging``, a server's own queues) are the kernel's primitives
(``sockfake.sim.kernel.sync``), used by simulated threads millions of times in a long
run. This prints, per case, the median over ``--rounds`` rounds of the time per
operation in a simulated thread, for ``--ops`` operations a round:

- an acquire/release pair of the intercepted ``threading.Lock`` and a put/get pair of an
  intercepted ``queue.Queue`` (unobserved: no switch points, as interception hands them
  out), and the same with ``observed`` on (switch points and trace events);
- the same pairs on ``net.lock()`` and ``net.queue()`` (observed);
- the real ``threading.Lock`` and ``queue.Queue`` outside any simulation;
- making an intercepted ``threading.Lock()`` and ``queue.Queue()`` (a tenth as many).

Time is the measuring thread's CPU time (``time.thread_time``) unless ``--clock wall``:
on a machine shared with other work, wall time swings by tens of percent between runs.
Rounds of the cases alternate, so a machine that slows down mid-run slows each alike.

To compare two versions of the code, run the script alternately on each tree, e.g.
``PYTHONPATH=OTHER_TREE python benchmarks/bench_primitives.py --json`` (``--only`` picks
cases by name; a case a version lacks is left out), and take the medians of all rounds.

    python benchmarks/bench_primitives.py [--ops 100000] [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from sockfake.sim import SimNetwork

# Captured before any interception (which makes perf_counter virtual).
_CLOCKS: dict[str, Callable[[], float]] = {"thread": time.thread_time, "wall": time.perf_counter}
_clock = _CLOCKS["thread"]


def _lock_loop(lock: Any, ops: int) -> float:
    acquire, release = lock.acquire, lock.release
    start = _clock()
    for _ in range(ops):
        acquire()
        release()
    return (_clock() - start) / ops


def _queue_loop(q: Any, ops: int) -> float:
    put, get = q.put, q.get
    start = _clock()
    for i in range(ops):
        put(i)
        get()
    return (_clock() - start) / ops


def _make_loop(make: Callable[[], Any], ops: int) -> float:
    ops //= 10
    start = _clock()
    for _ in range(ops):
        make()
    return (_clock() - start) / ops


def _in_simulated_thread(make: Callable[[SimNetwork], Any], loop: Callable[[Any, int], float],
                         ops: int, intercept: bool, observed: bool = False) -> float:
    """``loop`` over what ``make`` returns, both in a simulated thread of a new network."""
    result: list[float] = []
    with SimNetwork(seed=1) as net:

        def body() -> None:
            thing = make(net)
            if observed:
                _observe(thing)
            result.append(loop(thing, ops))

        if intercept:
            with net.intercept():
                thread = threading.Thread(target=body)
                thread.start()
                thread.join()
        else:
            thread = net.thread(body)
            thread.start()
            thread.join()
    return result[0]


def _observe(thing: Any) -> None:
    """Turn ``observed`` on for a primitive and for those it is built of (a Queue's
    mutex and conditions)."""
    for part in (thing, getattr(thing, "mutex", None), getattr(thing, "not_empty", None),
                 getattr(thing, "not_full", None), getattr(thing, "all_tasks_done", None)):
        if part is not None and hasattr(part, "observed"):
            part.observed = True


def _has_observed_setting() -> bool:
    with SimNetwork(seed=1) as net, net.intercept():
        return hasattr(threading.Lock(), "observed")


def _cases(ops: int) -> dict[str, Callable[[], float]]:
    def intercepted(make: Callable[[SimNetwork], Any], loop: Callable[[Any, int], float],
                    observed: bool = False) -> Callable[[], float]:
        return lambda: _in_simulated_thread(make, loop, ops, intercept=True, observed=observed)

    def plain(make: Callable[[SimNetwork], Any],
              loop: Callable[[Any, int], float]) -> Callable[[], float]:
        return lambda: _in_simulated_thread(make, loop, ops, intercept=False)

    cases = {
        "intercepted threading.Lock": intercepted(lambda net: threading.Lock(), _lock_loop),
        "intercepted queue.Queue": intercepted(lambda net: queue.Queue(), _queue_loop),
    }
    if _has_observed_setting():
        cases["intercepted threading.Lock, observed"] = intercepted(
            lambda net: threading.Lock(), _lock_loop, observed=True)
        cases["intercepted queue.Queue, observed"] = intercepted(
            lambda net: queue.Queue(), _queue_loop, observed=True)
    cases.update({
        "net.lock()": plain(lambda net: net.lock(), _lock_loop),
        "net.queue()": plain(lambda net: net.queue(), _queue_loop),
        "real threading.Lock": lambda: _lock_loop(threading.Lock(), ops),
        "real queue.Queue": lambda: _queue_loop(queue.Queue(), ops),
        "making an intercepted threading.Lock()": intercepted(
            lambda net: threading.Lock, _make_loop),
        "making an intercepted queue.Queue()": intercepted(lambda net: queue.Queue, _make_loop),
    })
    return cases


def main() -> None:
    global _clock
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=100_000, help="pairs per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--clock", choices=sorted(_CLOCKS), default="thread")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: every round's seconds per operation, per case")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="only this case (repeatable)")
    args = parser.parse_args()
    _clock = _CLOCKS[args.clock]
    cases = {name: case for name, case in _cases(args.ops).items()
             if not args.only or name in args.only}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, case in cases.items():
            times[name].append(case())
    if args.json:
        print(json.dumps({"ops": args.ops, "clock": args.clock, "rounds": times}))
        return
    print(f"{args.ops:,} operations a round, median of {args.rounds} rounds "
          f"({args.clock} time), per operation:")
    for name, values in times.items():
        median = statistics.median(values) * 1e9
        spread = f"{min(values) * 1e9:.0f}-{max(values) * 1e9:.0f}"
        print(f"  {name:<40} {median:7.0f} ns  (rounds {spread})")


if __name__ == "__main__":
    main()
