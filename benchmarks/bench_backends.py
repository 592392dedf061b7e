"""The two backends side by side: a TCP echo round trip's wall and CPU time.

    python benchmarks/bench_backends.py [--rounds 5] [--count 3000]

One persistent connection to a ``ThreadingTCPServer`` on ``SimNetwork(seed=1)``, with
simulated threads as OS threads (``threads``, the default) and as greenlets
(``greenlet``, ``pip install 'sockfake[greenlet]'``). Rounds alternate the order;
medians with the spread (min-max). CPU time (every thread of the process) is the
work done; wall time adds the machine's load, which on a shared VM dominates it (the
scheduler shares a CPU per OS thread, so a one-thread process loses more to it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sockfake  # noqa: E402
from sockfake.sim import COMPILED, SimNetwork  # noqa: E402

BACKENDS = ("threads", "greenlet")


class Echo(sockfake.BaseRequestHandler):
    # Each benchmark is a standalone script: bench_sim.py's Echo, not imported.
    def handle(self) -> None:
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            self.request.sendall(data)


def round_trips(backend: str, count: int) -> tuple[float, float]:
    """Wall and CPU seconds per round trip."""
    net = SimNetwork(seed=1, backend=backend)
    try:
        server = sockfake.ThreadingTCPServer(("127.0.0.1", 0), Echo, network=net)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        with net.create_connection(server.server_address) as conn:
            for _ in range(50):  # warm up
                conn.sendall(b"x")
                conn.recv(10)
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(count):
                conn.sendall(b"x")
                conn.recv(10)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server.shutdown()
        server.server_close()
        thread.join()
    finally:
        net.close()
    return wall / count, cpu / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"sockfake backends (Python {sys.version.split()[0]}, simulation "
          f"{'compiled' if COMPILED else 'pure Python'}, load average {load})")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in BACKENDS}
    for round_ in range(args.rounds):
        for name in BACKENDS if round_ % 2 == 0 else BACKENDS[::-1]:
            results[name].append(round_trips(name, args.count))
    print(f"TCP round trip, median of {args.rounds} alternated rounds of {args.count} "
          "(min-max)")
    for name, values in results.items():
        walls = [wall * 1e6 for wall, _ in values]
        cpus = [cpu * 1e6 for _, cpu in values]
        print(f"  {name:9} wall {statistics.median(walls):6.1f} us ({min(walls):.1f}-"
              f"{max(walls):.1f})   CPU {statistics.median(cpus):6.1f} us ({min(cpus):.1f}-"
              f"{max(cpus):.1f})")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load}")


if __name__ == "__main__":
    main()
