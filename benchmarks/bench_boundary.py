"""What the boundary costs: an intercepted run with and without the audit hook and the
stray-socket watch (tests/boundary shows what they catch).

Each round runs the same intercepted workload in two fresh child processes, one as
shipped and one with the hook and the watch turned off, alternating which goes first.
The workload: a simulated echo server and client exchanging messages, plus clock
reads (each clock read in a simulated thread calls ``sys._getframe``, an audited event
on 3.11+, so the hook runs on it). Prints each contender's median per-round time, the
spread, the ratio and the load average (the machine may be shared: read the figures
with it).

    python benchmarks/bench_boundary.py              # 7 rounds
    python benchmarks/bench_boundary.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

_WORKLOAD = r"""
import socket, sys, threading, time
from sockfake.sim import SimNetwork
from sockfake.sim.intercept import audit, stray_sockets

if sys.argv[1] == "off":
    audit.install_once = lambda: None
    stray_sockets.begin = lambda label, kernel: None

def run():
    with SimNetwork(seed=1) as net, net.intercept():
        server = socket.create_server(("127.0.0.1", 0))
        def serve():
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data)
        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(server.getsockname()) as client:
            for _ in range(2000):
                client.sendall(b"x" * 64)
                client.recv(4096)
                time.monotonic()
        thread.join()
        server.close()

run()  # warm-up
start = time.perf_counter()
for _ in range(3):
    run()
print(time.perf_counter() - start)
"""


def _one(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _WORKLOAD, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"on": [], "off": []}
    for round_number in range(args.rounds):
        order = ("on", "off") if round_number % 2 == 0 else ("off", "on")
        for mode in order:
            times[mode].append(_one(mode))
    for mode, label in (("on", "hook and watch (as shipped)"), ("off", "neither")):
        values = times[mode]
        print(
            f"{label:28} median {statistics.median(values):.3f} s "
            f"(min {min(values):.3f}, max {max(values):.3f}, {len(values)} rounds)"
        )
    ratio = statistics.median(times["on"]) / statistics.median(times["off"])
    print(
        f"ratio on/off: {ratio:.3f}; python {sys.version.split()[0]}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
