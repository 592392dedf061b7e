"""The simulation's backends at scale: a round trip's cost, and N concurrent clients.

    python benchmarks/bench_scale.py [--sizes 1000,10000,100000] [--rounds 3]

First a TCP echo round trip on one connection, on each backend (wall and CPU time:
CPU, every thread of the process, is the work done; wall time adds the machine's
load, which on a shared VM dominates it). Then N concurrent clients:

Every client connects (in waves of 2,000, a listen backlog's worth), waits until all
N are connected, sends one message and reads the echo, against one
``ThreadingTCPServer`` (a handler per connection), on:

- ``greenlet``: ``SimNetwork(backend="greenlet")``, simulated threads as greenlets
  (``pip install 'sockfake[greenlet]'``);
- ``threads``: ``SimNetwork()``, simulated threads as OS threads;
- ``real``: the real loopback, a real OS thread per client and per handler (the
  stdlib's way), capped by the descriptor limit (two descriptors a connection).

Each run is a subprocess of its own, so its peak RSS is its own; memory per
connection is (peak RSS - RSS before the clients) / N. Wall and CPU seconds are
printed both: on a loaded machine the scheduler shares the CPU per OS thread, so
a one-thread process (the greenlet backend) loses wall time to the load that a
process of thousands of threads does not. A contender runs a size only
up to its cap (``--threads-max``, ``--real-max``: OS threads and descriptors are
finite; the greenlet backend has none but memory). Rounds alternate the contenders'
order; medians with the spread (min-max). The load average is printed first and last.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


import sockfake  # noqa: E402
from sockfake.network import REAL_NETWORK  # noqa: E402
from sockfake.sim import COMPILED, SimNetwork  # noqa: E402

CONTENDERS = ("greenlet", "threads", "real")
_CLIENTS_PER_HOST = 4000
_WAVE = 2000


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


def print_round_trips(rounds: int, count: int) -> None:
    """The sim backends' TCP round trip, alternated: wall and CPU time."""
    results: dict[str, list[tuple[float, float]]] = {"threads": [], "greenlet": []}
    for round_ in range(rounds):
        for name in list(results)[:: 1 if round_ % 2 == 0 else -1]:
            results[name].append(round_trips(name, count))
    print(f"TCP round trip, one connection: median of {rounds} alternated rounds of {count}"
          " (min-max)")
    for name, values in results.items():
        walls = [wall * 1e6 for wall, _ in values]
        cpus = [cpu * 1e6 for _, cpu in values]
        print(f"  {name:9} wall {_spread(walls, 'us', 1):>22}  CPU {_spread(cpus, 'us', 1):>22}")


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def crowd(contender: str, clients: int) -> tuple[float, float, int, float]:
    """Wall and CPU seconds, answers, KiB per connection (in the child process)."""
    threading.stack_size(256 * 1024)  # real threads: a thread's stack is mostly untouched
    before = _rss_kib()
    started = time.perf_counter()
    cpu_started = _cpu_seconds()
    net: Any = REAL_NETWORK if contender == "real" else SimNetwork(
        seed=3, latency=0.001, time_limit=None, backend=contender)
    answers: list[bytes] = []
    try:
        server = sockfake.ThreadingTCPServer(
            ("127.0.0.1" if contender == "real" else "0.0.0.0", 0), Echo, network=net)
        server.request_queue_size = clients
        server.socket.listen(socket.SOMAXCONN)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        if contender == "real":
            address = server.server_address
            connectors = [net.create_connection]
        else:
            # A host has 4,536 ephemeral ports (as a real one has 28,232): the clients
            # come from as many client hosts as they need.
            address = (net.default_host.ipv4[0], server.server_address[1])
            connectors = [net.add_host(f"client{n}").create_connection
                          for n in range(-(-clients // _CLIENTS_PER_HOST))]
        def event() -> Any:
            return threading.Event() if contender == "real" else net.event()

        go = event()
        count_lock = threading.Lock()  # never held across a wait: fine on the simulation
        connected = [0]
        # The clients connect in waves of at most a listen backlog (Linux caps it at
        # SOMAXCONN, 4,096): a connect beyond it waits for SYN retries, and after six
        # of them fails, on the simulation as on a real host.
        waves = list(range(0, clients, _WAVE)) + [clients]
        wave_in = {end: event() for end in waves[1:]}

        def client(number: int) -> None:
            with connectors[number % len(connectors)](address) as conn:
                with count_lock:
                    connected[0] += 1
                    done = wave_in.get(connected[0])
                    if done is not None:
                        done.set()
                go.wait()
                conn.sendall(b"hello %d" % number)
                answers.append(conn.recv(100))

        threads = [threading.Thread(target=client, args=(n,), daemon=True)
                   for n in range(clients)]
        for first, end in itertools.pairwise(waves):
            for each in threads[first:end]:
                each.start()
            wave_in[end].wait()  # every connection so far open at once
        go.set()
        for each in threads:
            each.join()
        server.shutdown()
        server.server_close()
        thread.join()
    finally:
        if contender != "real":
            net.close()
    wall = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return wall, cpu, len(answers), (peak - before) / clients


Result = tuple[float, float, int, float]


def run_child(contender: str, clients: int) -> Result | str:
    command = [sys.executable, __file__, "--child", contender, str(clients)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        return f"FAILED (exit {done.returncode}): {done.stderr.strip()[-300:]}"
    wall, cpu, answered, per = done.stdout.split()
    return float(wall), float(cpu), int(answered), float(per)


def _spread(values: list[float], unit: str, digits: int) -> str:
    return (f"{statistics.median(values):.{digits}f} {unit} "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--threads-max", type=int, default=5000,
                        help="largest crowd for OS threads (two a client: the task cap)")
    parser.add_argument("--real-max", type=int, default=5000,
                        help="largest crowd on the real loopback (descriptors, tasks)")
    parser.add_argument("--round-trips", type=int, default=3000, metavar="N",
                        help="round trips per round of the per-message figure (0: skip it)")
    parser.add_argument("--child", nargs=2, metavar=("CONTENDER", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(*crowd(args.child[0], int(args.child[1])))
        return
    caps = {"greenlet": None, "threads": args.threads_max, "real": args.real_max}
    contenders = [name for name in args.contenders.split(",") if name]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"sockfake concurrent clients (Python {sys.version.split()[0]}, {os.cpu_count()} "
          f"cores, simulation {'compiled' if COMPILED else 'pure Python'}, load average "
          f"{load})")
    if args.round_trips:
        print_round_trips(args.rounds, args.round_trips)
    print("N clients held open at once, one echo each through one ThreadingTCPServer; "
          f"median of {args.rounds} alternated rounds (min-max)")
    for size in (int(s) for s in args.sizes.split(",")):
        running = [name for name in contenders if caps[name] is None or size <= caps[name]]
        results: dict[str, list[Result | str]] = {n: [] for n in running}
        for round_ in range(args.rounds):
            order = running if round_ % 2 == 0 else running[::-1]
            for name in order:
                results[name].append(run_child(name, size))
        print(f"{size:,} clients:")
        for name in contenders:
            if name not in running:
                print(f"  {name:9} not run (over --{name}-max: {caps[name]:,})")
                continue
            failed = [r for r in results[name] if isinstance(r, str)]
            good = [r for r in results[name] if not isinstance(r, str)]
            if failed or not good:
                print(f"  {name:9} {failed[0] if failed else 'no result'}")
                continue
            answered = min(r[2] for r in good)
            print(f"  {name:9} wall {_spread([r[0] for r in good], 's', 2):>22}  "
                  f"CPU {_spread([r[1] for r in good], 's', 2):>22}  "
                  f"{_spread([r[3] for r in good], 'KiB/connection', 1):>30}  "
                  f"answered {answered:,}/{size:,}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load}")


if __name__ == "__main__":
    main()
